"""The online store's semantics (feature_store_emulator/online.py): newest event time wins,
deletes, TTL and ListRecords."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from emulator_helpers import emulator_group, error_of, get, raw_client, read_offline
from jobtools import fv, record_ids


@pytest.fixture
def raw_fsr(emulator, boto_session):
    return raw_client(emulator, boto_session, "sagemaker-featurestore-runtime")


def test_newest_event_time_wins_across_fraction_precisions(sm, fsr, spark, emulator):
    name = emulator_group(sm)

    def put(t, label):
        fsr.put_record(FeatureGroupName=name, Record=fv(id="r", event_time=t, label=label))

    put("2024-01-01T00:00:00.5Z", "half")
    put("2024-01-01T00:00:00Z", "older, 0 digits")  # sorts after '.5Z' as a string
    assert get(fsr, name, "r")["label"] == "half"
    put("2024-01-01T00:00:00.500000001Z", "newest, 9 digits")
    put("2024-01-01T00:00:00.123Z", "older, 3 digits")
    assert get(fsr, name, "r")["label"] == "newest, 9 digits"
    df = read_offline(spark, emulator, sm, name)
    assert df.count() == 4  # older writes still reach the offline store


def test_equal_event_time_is_historic(sm, fsr, spark, emulator):
    """PutRecord docs (botocore model, PutRecord documentation): "If a new record's EventTime
    is greater, the new record is written to both the OnlineStore and OfflineStore. Otherwise,
    the record is a historic record and it is written only to the OfflineStore." Equal is not
    greater: the online record stays, the offline store gets the row."""
    name = emulator_group(sm)
    for label in ("first", "same instant, later call"):
        fsr.put_record(FeatureGroupName=name, Record=fv(
            id="r", event_time="2024-01-01T00:00:00.5Z", label=label))
    # the same instant written with other digits is still equal
    fsr.put_record(FeatureGroupName=name, Record=fv(
        id="r", event_time="2024-01-01T00:00:00.500Z", label="same, 3 digits"))
    assert get(fsr, name, "r")["label"] == "first"
    rows = read_offline(spark, emulator, sm, name).select("label").collect()
    assert sorted(r.label for r in rows) == ["first", "same instant, later call",
                                             "same, 3 digits"]


def test_newest_wins_with_fractional_event_times(sm, fsr):
    features = [{"FeatureName": "id", "FeatureType": "Integral"},
                {"FeatureName": "ts", "FeatureType": "Fractional"},
                {"FeatureName": "v", "FeatureType": "String"}]
    name = emulator_group(sm, features=features, event_time="ts")
    for ts, v in [("1700000000.5", "a"), ("1700000000", "older"), ("1.7000000005e9", "same"),
                  ("1700000000.25", "older too"), ("1700000001", "newest")]:
        fsr.put_record(FeatureGroupName=name, Record=fv(id="42", ts=ts, v=v))
    assert get(fsr, name, "42") == {"id": "42", "ts": "1700000001", "v": "newest"}
    for bad in ("2024-01-01T00:00:00Z", "soon", "1e999"):
        assert error_of(fsr.put_record, FeatureGroupName=name,
                        Record=fv(id="42", ts=bad)) == ("ValidationError", 400)


def test_list_records_paginates(sm, fsr, raw_fsr):
    name = emulator_group(sm)
    ids = [f"id-{i:02d}" for i in range(25)]
    for start in range(0, 25, 25):
        fsr.batch_write_record(Entries=[
            {"FeatureGroupName": name, "Record": fv(id=i, event_time="2024-01-01T00:00:00Z")}
            for i in ids[start:start + 25]])
    pages, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = fsr.list_records(FeatureGroupName=name, MaxResults=10, **kw)
        pages.append(page["RecordIdentifiers"])
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sorted(sum(pages, [])) == ids
    again = fsr.list_records(FeatureGroupName=name, MaxResults=10)["RecordIdentifiers"]
    assert again == pages[0]  # stable order
    assert error_of(raw_fsr.list_records, FeatureGroupName=name, MaxResults=101) == (
        "ValidationError", 400)
    assert error_of(raw_fsr.list_records, FeatureGroupName=name, NextToken="nonsense") == (
        "ValidationError", 400)
    offline_only = emulator_group(sm, online=False)
    assert error_of(fsr.list_records, FeatureGroupName=offline_only) == ("ValidationError", 400)


def test_soft_delete_hides_and_a_newer_put_revives(sm, fsr):
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=fv(id="r", event_time="2024-01-01T00:00:05Z"))
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T00:00:06Z", DeletionMode="SoftDelete")
    assert get(fsr, name, "r") == {}
    assert fsr.batch_get_record(Identifiers=[{
        "FeatureGroupName": name, "RecordIdentifiersValueAsString": ["r"]}])["Records"] == []
    assert record_ids(fsr, name) == [] and record_ids(fsr, name, True) == ["r"]
    fsr.put_record(FeatureGroupName=name, Record=fv(id="r", event_time="2024-01-01T00:00:04Z"))
    assert get(fsr, name, "r") == {}  # older than the delete: offline only
    fsr.put_record(FeatureGroupName=name, Record=fv(id="r", event_time="2024-01-01T00:00:07Z"))
    assert get(fsr, name, "r")["event_time"] == "2024-01-01T00:00:07Z"
    # a stale SoftDelete leaves the online record alone (AWS: the marker still goes offline)
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T00:00:07Z", DeletionMode="SoftDelete")
    assert get(fsr, name, "r")["event_time"] == "2024-01-01T00:00:07Z"


def test_hard_delete(sm, fsr):
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=fv(id="r", event_time="2024-01-01T00:00:05Z"))
    assert error_of(fsr.delete_record, FeatureGroupName=name, RecordIdentifierValueAsString="r",
                    EventTime="2024-01-01T00:00:05Z", DeletionMode="HardDelete") == (
        "ValidationError", 400)
    assert get(fsr, name, "r")["id"] == "r"
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T00:00:05.001Z", DeletionMode="HardDelete")
    assert get(fsr, name, "r") == {} and record_ids(fsr, name, True) == []
    # an older put now lands online again: nothing is left to compare with
    fsr.put_record(FeatureGroupName=name, Record=fv(id="r", event_time="2024-01-01T00:00:01Z"))
    assert get(fsr, name, "r")["event_time"] == "2024-01-01T00:00:01Z"
    # deleting an id that is not there succeeds
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="ghost",
                      EventTime="2024-01-01T00:00:00Z", DeletionMode="HardDelete")
    assert error_of(fsr.delete_record, FeatureGroupName=name, RecordIdentifierValueAsString="r",
                    EventTime="yesterday") == ("ValidationError", 400)


def test_ttl_and_expires_at(sm, fsr):
    name = emulator_group(sm, ttl={"Unit": "Minutes", "Value": 30})
    fsr.put_record(FeatureGroupName=name, Record=fv(id="a", event_time="2030-01-01T00:00:00Z"))
    fsr.put_record(FeatureGroupName=name, Record=fv(id="b", event_time="2030-01-01T00:00:00Z"),
                   TtlDuration={"Unit": "Weeks", "Value": 1})
    fsr.batch_write_record(TtlDuration={"Unit": "Seconds", "Value": 90}, Entries=[
        {"FeatureGroupName": name, "Record": fv(id="c", event_time="2030-01-01T00:00:00.5Z")},
        {"FeatureGroupName": name, "Record": fv(id="d", event_time="2030-01-01T00:00:00Z"),
         "TtlDuration": {"Unit": "Days", "Value": 1}}])

    def expires(rid):
        return fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString=rid,
                              ExpirationTimeResponse="Enabled").get("ExpiresAt")

    assert expires("a") == "2030-01-01T00:30:00Z"
    assert expires("b") == "2030-01-08T00:00:00Z"
    assert expires("c") == "2030-01-01T00:01:30.5Z"
    assert expires("d") == "2030-01-02T00:00:00Z"
    assert "ExpiresAt" not in fsr.get_record(FeatureGroupName=name,
                                             RecordIdentifierValueAsString="a")


def test_expired_records_are_not_returned(sm, fsr):
    name = emulator_group(sm)
    past = (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    soon = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fsr.put_record(FeatureGroupName=name, Record=fv(id="old", event_time=past),
                   TtlDuration={"Unit": "Seconds", "Value": 10})
    fsr.put_record(FeatureGroupName=name, Record=fv(id="new", event_time=soon),
                   TtlDuration={"Unit": "Hours", "Value": 1})
    assert get(fsr, name, "old") == {}
    assert get(fsr, name, "new")["id"] == "new"
    got = fsr.batch_get_record(Identifiers=[{"FeatureGroupName": name,
                                             "RecordIdentifiersValueAsString": ["old", "new"]}])
    assert [r["RecordIdentifierValueAsString"] for r in got["Records"]] == ["new"]
    assert record_ids(fsr, name, True) == ["new"]
    assert error_of(fsr.put_record, FeatureGroupName=name, Record=fv(id="x", event_time=soon),
                    TtlDuration={"Unit": "Fortnights", "Value": 1}) == ("ValidationError", 400)
