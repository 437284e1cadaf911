"""Runtime writes and reads (feature_store_emulator/records.py and the runtime half of
models.py): value checks, TargetStores, PutRecord/GetRecord and the batch operations."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from emulator_helpers import BASE, emulator_group, error_of, get, raw_client, read_offline
from jobtools import definitions, fv, unique


@pytest.fixture
def raw_fsr(emulator, boto_session):
    return raw_client(emulator, boto_session, "sagemaker-featurestore-runtime")


def test_put_get_roundtrip_is_verbatim(sm, fsr):
    name = emulator_group(sm)
    record = fv(id="r1", event_time="2024-03-01T10:00:00.120Z", amount="1.50", count="007",
                label="  spaced ü ")
    fsr.put_record(FeatureGroupName=name, Record=record)
    resp = fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="r1")
    assert resp["Record"] == record
    assert "ExpiresAt" not in resp
    arn = sm.describe_feature_group(FeatureGroupName=name)["FeatureGroupArn"]
    assert get(fsr, arn, "r1", FeatureNames=["amount", "label"]) == {
        "amount": "1.50", "label": "  spaced ü "}
    missing = fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="nope")
    assert missing["ResponseMetadata"]["HTTPStatusCode"] == 200 and "Record" not in missing
    assert error_of(fsr.get_record, FeatureGroupName=name, RecordIdentifierValueAsString="r1",
                    FeatureNames=["unknown"]) == ("ValidationError", 400)


def test_put_overwrites_the_whole_record(sm, fsr):
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=fv(
        id="r", event_time="2024-01-01T00:00:00Z", amount="1.0", label="x"))
    fsr.put_record(FeatureGroupName=name, Record=fv(
        id="r", event_time="2024-01-01T00:00:01Z", count="3"))
    assert get(fsr, name, "r") == {"id": "r", "event_time": "2024-01-01T00:00:01Z",
                                   "count": "3"}


@pytest.mark.parametrize("record", [
    fv(id="a", event_time="2024-01-01T00:00:00Z", nope="1"),
    fv(id="a", event_time="2024-01-01T00:00:00Z", count="1.5"),
    fv(id="a", event_time="2024-01-01T00:00:00Z", count="12x"),
    fv(id="a", event_time="2024-01-01T00:00:00Z", amount="abc"),
    fv(id="a", event_time="2024-01-01T00:00:00Z", amount="1e999"),
    fv(id="a", event_time="2024-01-01T00:00:00Z", count="9223372036854775808"),
    fv(id="a", event_time="2024-01-01T00:00:00Z") + [
        {"FeatureName": "label", "ValueAsString": "x", "ValueAsStringList": ["x"]}],
    fv(id="a", event_time="2024-01-01T00:00:00Z", label="x") + fv(label="y"),
    fv(id="a", event_time="2024-01-01 00:00:00"),
    fv(id="a", event_time="2024-01-01T00:00:00+00:00"),
    fv(id="a", event_time="2024-01-01T00:00:00.1234567890Z"),
    fv(id="a", event_time="1704067200"),
    fv(id="a", amount="1"),
    fv(event_time="2024-01-01T00:00:00Z", amount="1"),
    fv(id="a", event_time="2024-01-01T00:00:00Z", label=["x"]),
])
def test_put_validation_errors(sm, fsr, record):
    name = emulator_group(sm)
    assert error_of(fsr.put_record, FeatureGroupName=name, Record=record) == (
        "ValidationError", 400)
    assert get(fsr, name, "a") == {}


def test_collections_need_in_memory(sm, fsr):
    features = definitions(*BASE) + [
        {"FeatureName": "tags", "FeatureType": "String", "CollectionType": "List"},
        {"FeatureName": "emb", "FeatureType": "Fractional", "CollectionType": "Vector",
         "CollectionConfig": {"VectorConfig": {"Dimension": 2}}}]
    name = emulator_group(sm, features=features, offline=False, storage="InMemory")
    fsr.put_record(FeatureGroupName=name, Record=fv(
        id="a", event_time="2024-01-01T00:00:00Z", tags=["x", "y"], emb=["0.5", "1"]))
    assert get(fsr, name, "a")["tags"] == ["x", "y"]
    bad = [fv(id="a", event_time="2024-01-01T00:00:01Z", tags="x"),
           fv(id="a", event_time="2024-01-01T00:00:01Z", emb=["1"]),
           fv(id=["a"], event_time="2024-01-01T00:00:01Z")]
    for record in bad:
        assert error_of(fsr.put_record, FeatureGroupName=name, Record=record) == (
            "ValidationError", 400)


def test_target_stores(sm, fsr, spark, emulator):
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, TargetStores=["OnlineStore"],
                   Record=fv(id="online", event_time="2024-01-01T00:00:00Z"))
    fsr.put_record(FeatureGroupName=name, TargetStores=["OfflineStore"],
                   Record=fv(id="offline", event_time="2024-01-01T00:00:00Z"))
    assert get(fsr, name, "online")["id"] == "online"
    assert get(fsr, name, "offline") == {}
    ids = [r.id for r in read_offline(spark, emulator, sm, name).select("id").collect()]
    assert ids == ["offline"]
    offline_only = emulator_group(sm, online=False)
    assert error_of(fsr.put_record, FeatureGroupName=offline_only, TargetStores=["OnlineStore"],
                    Record=fv(id="a", event_time="2024-01-01T00:00:00Z")) == (
        "ValidationError", 400)
    assert error_of(fsr.get_record, FeatureGroupName=offline_only,
                    RecordIdentifierValueAsString="a") == ("ValidationError", 400)
    fsr.put_record(FeatureGroupName=offline_only,
                   Record=fv(id="a", event_time="2024-01-01T00:00:00Z"))


def test_batch_get_record(sm, fsr, raw_fsr):
    g1, g2 = emulator_group(sm), emulator_group(sm, ttl={"Unit": "Hours", "Value": 2})
    fsr.put_record(FeatureGroupName=g1, Record=fv(id="a", event_time="2024-01-01T00:00:00Z",
                                                  label="A"))
    fsr.put_record(FeatureGroupName=g2, Record=fv(id="b", event_time="2030-01-01T00:00:00Z",
                                                  label="B"))
    missing = unique("missing")
    resp = fsr.batch_get_record(ExpirationTimeResponse="Enabled", Identifiers=[
        {"FeatureGroupName": g1, "RecordIdentifiersValueAsString": ["a", "zzz"],
         "FeatureNames": ["label"]},
        {"FeatureGroupName": g2, "RecordIdentifiersValueAsString": ["b"]},
        {"FeatureGroupName": missing, "RecordIdentifiersValueAsString": ["x"]},
    ])
    by_group = {r["FeatureGroupName"]: r for r in resp["Records"]}
    assert set(by_group) == {g1, g2}
    assert by_group[g1]["Record"] == [{"FeatureName": "label", "ValueAsString": "A"}]
    assert by_group[g1]["RecordIdentifierValueAsString"] == "a"
    assert "ExpiresAt" not in by_group[g1]
    assert by_group[g2]["ExpiresAt"] == "2030-01-01T02:00:00Z"
    # BatchGetRecord's model lists no ResourceNotFound (service-2.json, its "errors")
    assert [(e["FeatureGroupName"], e["ErrorCode"]) for e in resp["Errors"]] == [
        (missing, "ValidationError")]
    assert resp["Errors"][0]["ErrorMessage"].startswith("Resource Not Found")
    assert resp["UnprocessedIdentifiers"] == []
    too_many = [{"FeatureGroupName": g1, "RecordIdentifiersValueAsString":
                 [str(i) for i in range(101)]}]
    assert error_of(raw_fsr.batch_get_record, Identifiers=too_many) == ("ValidationError", 400)


def test_batch_write_record(sm, fsr, raw_fsr):
    name = emulator_group(sm)
    missing = unique("missing")
    entries = [
        {"FeatureGroupName": name, "Record": fv(id="ok1", event_time="2024-01-01T00:00:00Z")},
        {"FeatureGroupName": name, "Record": fv(id="bad", event_time="2024-01-01T00:00:00Z",
                                                count="x")},
        {"FeatureGroupName": missing, "Record": fv(id="x", event_time="2024-01-01T00:00:00Z")},
        {"FeatureGroupName": name, "Record": fv(id="ok2", event_time="2024-01-01T00:00:00Z"),
         "TargetStores": ["OnlineStore"]},
    ]
    resp = fsr.batch_write_record(Entries=entries)
    assert resp["UnprocessedEntries"] == []
    assert [(e["Entry"]["FeatureGroupName"], e["ErrorCode"]) for e in resp["Errors"]] == [
        (name, "ValidationError"), (missing, "ResourceNotFound")]
    assert resp["Errors"][0]["Entry"]["Record"] == entries[1]["Record"]
    assert get(fsr, name, "ok1")["id"] == "ok1" and get(fsr, name, "ok2")["id"] == "ok2"
    assert get(fsr, name, "bad") == {}
    one = entries[0]
    assert error_of(raw_fsr.batch_write_record, Entries=[]) == ("ValidationError", 400)
    assert error_of(raw_fsr.batch_write_record, Entries=[one] * 26) == ("ValidationError", 400)


LONG_ID = "i" * 2049
BIG = "x" * 120_000  # three of them pass the 358,400-character value limit but not 350 KB


@pytest.mark.parametrize("record, why", [
    # ValueAsString: {"max": 358400, "pattern": ".*"} (service-2.json); Java's "." excludes
    # line terminators
    (fv(id="a", event_time="2024-01-01T00:00:00Z", label="x" * 358_401), "358400"),
    (fv(id="a", event_time="2024-01-01T00:00:00Z", label="two\nlines"), "U+000A"),
    (fv(id="a", event_time="2024-01-01T00:00:00Z", label="cr\r"), "U+000D"),
    (fv(id="a", event_time="2024-01-01T00:00:00Z", label="nel\u0085"), "U+0085"),
    (fv(id="a", event_time="2024-01-01T00:00:00Z", label="ls\u2028"), "U+2028"),
    (fv(id="a", event_time="2024-01-01T00:00:00Z", label="ps\u2029"), "U+2029"),
    # quotas page: record <= 350 KB, record identifier <= 2 KB
    (fv(id="a", event_time="2024-01-01T00:00:00Z", label=BIG, big1=BIG, big2=BIG),
     "350 KB"),
    (fv(id=LONG_ID, event_time="2024-01-01T00:00:00Z"), "2 KB"),
])
def test_value_constraints_reject_the_put_and_the_whole_batch(sm, fsr, raw_fsr, record, why):
    features = definitions(*BASE, ("label", "String"), ("big1", "String"), ("big2", "String"))
    name = emulator_group(sm, features=features)
    with pytest.raises(ClientError) as info:
        raw_fsr.put_record(FeatureGroupName=name, Record=record)
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert why in info.value.response["Error"]["Message"]
    # BatchWriteRecord: a model/quota constraint rejects the call, its neighbours included
    good = {"FeatureGroupName": name, "Record": fv(id="good", event_time="2024-01-01T00:00:00Z")}
    assert error_of(raw_fsr.batch_write_record, Entries=[
        good, {"FeatureGroupName": name, "Record": record}]) == ("ValidationError", 400)
    assert get(fsr, name, "good") == {} and get(fsr, name, "a") == {}
    assert get(fsr, name, LONG_ID) == {}


def test_values_at_the_limits_are_accepted(sm, fsr):
    features = definitions(*BASE, ("label", "String"), ("count", "Integral"),
                           ("amount", "Fractional"))
    name = emulator_group(sm, features=features)
    rid = "é" * 1024  # 2,048 UTF-8 bytes: exactly 2 KB
    record = fv(id=rid, event_time="2024-01-01T00:00:00Z", label="tab\tand \u00a0 ok" +
                "y" * 300_000, count="-9223372036854775808", amount="1.7976931348623157e308")
    fsr.put_record(FeatureGroupName=name, Record=record)
    got = get(fsr, name, rid)
    assert got["count"] == "-9223372036854775808" and len(got["label"]) == 300_012
    for count in ("9223372036854775808", "-9223372036854775809"):  # Integral: signed 64-bit
        assert error_of(fsr.put_record, FeatureGroupName=name, Record=fv(
            id="b", event_time="2024-01-01T00:00:00Z", count=count)) == ("ValidationError", 400)
    for amount in ("1e309", "NaN", "Infinity", "-inf"):  # Fractional: a finite IEEE-754 double
        assert error_of(fsr.put_record, FeatureGroupName=name, Record=fv(
            id="b", event_time="2024-01-01T00:00:00Z", amount=amount)) == ("ValidationError", 400)
