"""The local Feature Store emulator, driven only through boto3 (and Spark for offline files)."""

from __future__ import annotations

import glob
import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ISO_EVENT = {"FeatureName": "event_time", "FeatureType": "String"}
FEATURES = [
    {"FeatureName": "id", "FeatureType": "String"},
    ISO_EVENT,
    {"FeatureName": "amount", "FeatureType": "Fractional"},
    {"FeatureName": "count", "FeatureType": "Integral"},
    {"FeatureName": "label", "FeatureType": "String"},
]
BUCKET_URI = "s3://emu-bucket/offline"
FILE_RE = re.compile(r"\d{8}T\d{6}Z_[A-Za-z0-9]{16}\.parquet")


# ---- helpers -------------------------------------------------------------------------------

def uniq(prefix: str = "g") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_group(sm, name=None, features=None, online=True, offline=True, record_id="id",
                 event_time="event_time", ttl=None, storage=None, **extra) -> str:
    name = name or uniq()
    kwargs = dict(FeatureGroupName=name, RecordIdentifierFeatureName=record_id,
                  EventTimeFeatureName=event_time, FeatureDefinitions=features or FEATURES,
                  **extra)
    if online:
        cfg = {"EnableOnlineStore": True}
        if ttl:
            cfg["TtlDuration"] = ttl
        if storage:
            cfg["StorageType"] = storage
        kwargs["OnlineStoreConfig"] = cfg
    if offline:
        kwargs["OfflineStoreConfig"] = {"S3StorageConfig": {"S3Uri": BUCKET_URI}}
    sm.create_feature_group(**kwargs)
    return name


def rec(**values) -> list[dict]:
    out = []
    for name, value in values.items():
        key = "ValueAsStringList" if isinstance(value, list) else "ValueAsString"
        out.append({"FeatureName": name, key: value})
    return out


def as_dict(record) -> dict:
    return {fv["FeatureName"]: fv.get("ValueAsString", fv.get("ValueAsStringList"))
            for fv in record}


def error_of(call, *args, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    resp = info.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def offline_dir(emulator, sm, name) -> str:
    uri = sm.describe_feature_group(FeatureGroupName=name)["OfflineStoreConfig"][
        "S3StorageConfig"]["ResolvedOutputS3Uri"]
    bucket, _, key = uri[len("s3://"):].partition("/")
    return os.path.join(str(emulator.data_dir), bucket, key)


def read_offline(spark, emulator, sm, name):
    emulator.flush()
    return spark.read.parquet(offline_dir(emulator, sm, name))


def get(fsr, name, rid, **kw) -> dict:
    resp = fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString=rid, **kw)
    return as_dict(resp["Record"]) if "Record" in resp else {}


def all_definitions(sm, name) -> list[dict]:
    defs, token = [], None
    while True:
        page = sm.describe_feature_group(FeatureGroupName=name,
                                         **({"NextToken": token} if token else {}))
        defs += page["FeatureDefinitions"]
        token = page.get("NextToken")
        if not token:
            return defs


@pytest.fixture
def raw_fsr(emulator, boto_session):
    """Runtime client without retries or client-side validation, to see raw answers."""
    return boto_session.client(
        "sagemaker-featurestore-runtime", region_name="us-east-1", endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False))


@pytest.fixture
def raw_sm(emulator, boto_session):
    return boto_session.client(
        "sagemaker", region_name="us-east-1", endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False))


@pytest.fixture
def faults(emulator):
    emulator.faults()
    yield emulator
    emulator.faults()


# ---- control plane -------------------------------------------------------------------------

def test_create_and_describe(sm):
    before = int(time.time())
    name = create_group(sm, ThroughputConfig={"ThroughputMode": "OnDemand"},
                        Description="orders")
    d = sm.describe_feature_group(FeatureGroupName=name)
    assert d["FeatureGroupArn"] == (
        f"arn:aws:sagemaker:us-east-1:123456789012:feature-group/{name.lower()}")
    assert d["FeatureGroupStatus"] == "Created"
    assert d["OfflineStoreStatus"]["Status"] == "Active"
    assert [f["FeatureName"] for f in d["FeatureDefinitions"]] == [
        f["FeatureName"] for f in FEATURES]
    assert d["OnlineStoreConfig"]["EnableOnlineStore"] is True
    offline = d["OfflineStoreConfig"]
    assert offline["TableFormat"] == "Glue"
    resolved = offline["S3StorageConfig"]["ResolvedOutputS3Uri"]
    m = re.fullmatch(rf"{BUCKET_URI}/123456789012/sagemaker/us-east-1/offline-store/"
                     rf"{name}-(\d+)/data", resolved)
    assert m and before <= int(m.group(1)) <= int(time.time())
    assert d["CreationTime"].timestamp() == pytest.approx(time.time(), abs=30)
    assert d["Description"] == "orders"
    assert not d.get("NextToken")


def test_iceberg_table_format_is_stored(sm):
    name = uniq()
    sm.create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName="id",
        EventTimeFeatureName="event_time", FeatureDefinitions=FEATURES,
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": BUCKET_URI + "/"},
                            "TableFormat": "Iceberg"})
    d = sm.describe_feature_group(FeatureGroupName=name)
    assert d["OfflineStoreConfig"]["TableFormat"] == "Iceberg"
    assert "OnlineStoreConfig" not in d
    assert "//123456789012" not in d["OfflineStoreConfig"]["S3StorageConfig"][
        "ResolvedOutputS3Uri"]


def _defs(*pairs):
    return [{"FeatureName": n, "FeatureType": t} for n, t in pairs]


BASE = (("id", "String"), ("event_time", "String"))


@pytest.mark.parametrize("overrides", [
    {"FeatureGroupName": "bad name"},
    {"FeatureGroupName": "-leading-dash"},
    {"FeatureDefinitions": _defs(*BASE, ("has space", "String"))},
    {"FeatureDefinitions": _defs(*BASE, ("is_deleted", "String"))},
    {"FeatureDefinitions": _defs(*BASE, ("write_time", "String"))},
    {"FeatureDefinitions": _defs(*BASE, ("api_invocation_time", "String"))},
    {"FeatureDefinitions": _defs(*BASE, ("x", "String"), ("x", "Integral"))},
    {"RecordIdentifierFeatureName": "missing"},
    {"EventTimeFeatureName": "missing"},
    {"FeatureDefinitions": _defs(("id", "Fractional"), ("event_time", "String"))},
    {"FeatureDefinitions": _defs(("id", "String"), ("event_time", "Integral"))},
    {"FeatureDefinitions": _defs(*BASE) + [
        {"FeatureName": "tags", "FeatureType": "String", "CollectionType": "List"}]},
    {"OnlineStoreConfig": {"EnableOnlineStore": True, "StorageType": "InMemory"}},
    {"OnlineStoreConfig": {"EnableOnlineStore": False}, "OfflineStoreConfig": None},
    {"FeatureDefinitions": _defs(*BASE, *((f"f{i}", "String") for i in range(2499)))},
])
def test_create_validation(raw_sm, overrides):
    kwargs = dict(FeatureGroupName=uniq(), RecordIdentifierFeatureName="id",
                  EventTimeFeatureName="event_time", FeatureDefinitions=_defs(*BASE),
                  OnlineStoreConfig={"EnableOnlineStore": True},
                  OfflineStoreConfig={"S3StorageConfig": {"S3Uri": BUCKET_URI}})
    kwargs.update(overrides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    assert error_of(raw_sm.create_feature_group, **kwargs) == ("ValidationException", 400)


def test_collections_need_in_memory(sm, fsr):
    features = _defs(*BASE) + [
        {"FeatureName": "tags", "FeatureType": "String", "CollectionType": "List"},
        {"FeatureName": "emb", "FeatureType": "Fractional", "CollectionType": "Vector",
         "CollectionConfig": {"VectorConfig": {"Dimension": 2}}}]
    name = create_group(sm, features=features, offline=False, storage="InMemory")
    fsr.put_record(FeatureGroupName=name, Record=rec(
        id="a", event_time="2024-01-01T00:00:00Z", tags=["x", "y"], emb=["0.5", "1"]))
    assert get(fsr, name, "a")["tags"] == ["x", "y"]
    bad = [rec(id="a", event_time="2024-01-01T00:00:01Z", tags="x"),
           rec(id="a", event_time="2024-01-01T00:00:01Z", emb=["1"]),
           rec(id=["a"], event_time="2024-01-01T00:00:01Z")]
    for record in bad:
        assert error_of(fsr.put_record, FeatureGroupName=name, Record=record) == (
            "ValidationError", 400)


def test_resource_in_use_and_not_found(sm):
    name = create_group(sm)
    assert error_of(create_group, sm, name=name) == ("ResourceInUse", 400)
    missing = uniq("missing")
    for call in (sm.describe_feature_group, sm.delete_feature_group):
        assert error_of(call, FeatureGroupName=missing) == ("ResourceNotFound", 400)
    assert error_of(sm.update_feature_group, FeatureGroupName=missing,
                    FeatureAdditions=_defs(("x", "String"))) == ("ResourceNotFound", 400)


def test_list_feature_groups_filters_and_paginates(sm):
    prefix = uniq("lst")
    names = [create_group(sm, name=f"{prefix}-{i}") for i in range(3)]
    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = sm.list_feature_groups(NameContains=prefix, MaxResults=2, SortBy="Name",
                                      SortOrder="Ascending", **kw)
        assert len(page["FeatureGroupSummaries"]) <= 2
        seen += [s["FeatureGroupName"] for s in page["FeatureGroupSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names
    summary = sm.list_feature_groups(NameContains=f"{prefix}-1")["FeatureGroupSummaries"]
    assert [(s["FeatureGroupName"], s["FeatureGroupStatus"]) for s in summary] == [
        (names[1], "Created")]


def test_update_feature_group(sm, fsr):
    name = create_group(sm)
    sm.update_feature_group(FeatureGroupName=name, FeatureAdditions=_defs(("extra", "Integral")))
    sm.update_feature_group(FeatureGroupName=name,
                            OnlineStoreConfig={"TtlDuration": {"Unit": "Days", "Value": 3}})
    sm.update_feature_group(FeatureGroupName=name, ThroughputConfig={
        "ThroughputMode": "Provisioned", "ProvisionedReadCapacityUnits": 10,
        "ProvisionedWriteCapacityUnits": 20})
    d = sm.describe_feature_group(FeatureGroupName=name)
    assert d["FeatureDefinitions"][-1] == {"FeatureName": "extra", "FeatureType": "Integral"}
    assert d["OnlineStoreConfig"]["TtlDuration"] == {"Unit": "Days", "Value": 3}
    assert d["ThroughputConfig"]["ProvisionedWriteCapacityUnits"] == 20
    assert d["LastUpdateStatus"]["Status"] == "Successful"
    assert "LastModifiedTime" in d
    fsr.put_record(FeatureGroupName=name, Record=rec(
        id="a", event_time="2030-01-01T00:00:00Z", extra="7"))
    got = fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a",
                         ExpirationTimeResponse="Enabled")
    assert got["ExpiresAt"] == "2030-01-04T00:00:00Z"
    for bad in (_defs(("extra", "String")), _defs(("write_time", "String"))):
        assert error_of(sm.update_feature_group, FeatureGroupName=name,
                        FeatureAdditions=bad) == ("ValidationException", 400)


def test_feature_limit_on_update(sm):
    name = create_group(sm, features=_defs(*BASE, *((f"f{i}", "String") for i in range(2448))))
    more = _defs(*((f"g{i}", "String") for i in range(51)))
    assert error_of(sm.update_feature_group, FeatureGroupName=name, FeatureAdditions=more) == (
        "ResourceLimitExceeded", 400)
    sm.update_feature_group(FeatureGroupName=name, FeatureAdditions=more[:50])
    assert len(all_definitions(sm, name)) == 2500


def test_describe_paginates_feature_definitions(sm):
    features = _defs(*BASE, *((f"f{i:03d}", "Fractional") for i in range(248)))
    name = create_group(sm, features=features)
    pages, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = sm.describe_feature_group(FeatureGroupName=name, **kw)
        pages.append(len(page["FeatureDefinitions"]))
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [100, 100, 50]
    assert error_of(sm.describe_feature_group, FeatureGroupName=name,
                    NextToken="garbage") == ("ValidationException", 400)


def test_delete_feature_group(sm, fsr):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))
    sm.delete_feature_group(FeatureGroupName=name)
    assert error_of(sm.describe_feature_group, FeatureGroupName=name) == (
        "ResourceNotFound", 400)
    assert error_of(fsr.get_record, FeatureGroupName=name,
                    RecordIdentifierValueAsString="a") == ("ResourceNotFound", 404)
    create_group(sm, name=name)  # the name is free again, with an empty online store
    assert get(fsr, name, "a") == {}


def test_region_comes_from_the_credential_scope(emulator, boto_session, sm):
    eu = boto_session.client("sagemaker", region_name="eu-west-1", endpoint_url=emulator.url)
    name = create_group(eu)
    d = eu.describe_feature_group(FeatureGroupName=name)
    assert ":eu-west-1:" in d["FeatureGroupArn"]
    assert "/sagemaker/eu-west-1/offline-store/" in (
        d["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"])
    assert error_of(sm.describe_feature_group, FeatureGroupName=name)[0] == "ResourceNotFound"


def test_missing_authorization_is_forbidden(emulator, boto_session):
    def raw(method, path, body=None, headers=None):
        req = urllib.request.Request(emulator.url + path, data=body, method=method,
                                     headers=headers or {})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        return info.value

    from botocore import UNSIGNED

    unsigned = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                                   endpoint_url=emulator.url,
                                   config=Config(signature_version=UNSIGNED))
    assert error_of(unsigned.get_record, FeatureGroupName="anything",
                    RecordIdentifierValueAsString="a") == ("AccessForbidden", 403)
    err = raw("GET", "/FeatureGroup/anything?RecordIdentifierValueAsString=a")
    assert err.code == 403
    assert err.headers["x-amzn-ErrorType"] == "AccessForbidden"
    assert json.loads(err.read())["__type"] == "AccessForbidden"
    err = raw("POST", "/", b"{}", {"X-Amz-Target": "SageMaker.ListFeatureGroups",
                                   "Content-Type": "application/x-amz-json-1.1",
                                   "Authorization": "Basic abc"})
    assert err.code == 403
    assert json.loads(err.read())["__type"] == "AccessDeniedException"


# ---- runtime: reads and writes -------------------------------------------------------------

def test_put_get_roundtrip_is_verbatim(sm, fsr):
    name = create_group(sm)
    record = rec(id="r1", event_time="2024-03-01T10:00:00.120Z", amount="1.50", count="007",
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
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(
        id="r", event_time="2024-01-01T00:00:00Z", amount="1.0", label="x"))
    fsr.put_record(FeatureGroupName=name, Record=rec(
        id="r", event_time="2024-01-01T00:00:01Z", count="3"))
    assert get(fsr, name, "r") == {"id": "r", "event_time": "2024-01-01T00:00:01Z",
                                   "count": "3"}


def test_newest_event_time_wins_across_fraction_precisions(sm, fsr, spark, emulator):
    name = create_group(sm)

    def put(t, label):
        fsr.put_record(FeatureGroupName=name, Record=rec(id="r", event_time=t, label=label))

    put("2024-01-01T00:00:00.5Z", "half")
    put("2024-01-01T00:00:00Z", "older, 0 digits")  # sorts after '.5Z' as a string
    assert get(fsr, name, "r")["label"] == "half"
    put("2024-01-01T00:00:00.500000001Z", "newest, 9 digits")
    put("2024-01-01T00:00:00.123Z", "older, 3 digits")
    assert get(fsr, name, "r")["label"] == "newest, 9 digits"
    put("2024-01-01T00:00:00.500000001Z", "same instant, later call")
    assert get(fsr, name, "r")["label"] == "same instant, later call"
    df = read_offline(spark, emulator, sm, name)
    assert df.count() == 5  # older writes still reach the offline store


def test_newest_wins_with_fractional_event_times(sm, fsr):
    features = [{"FeatureName": "id", "FeatureType": "Integral"},
                {"FeatureName": "ts", "FeatureType": "Fractional"},
                {"FeatureName": "v", "FeatureType": "String"}]
    name = create_group(sm, features=features, event_time="ts")
    for ts, v in [("1700000000.5", "a"), ("1700000000", "older"), ("1.7000000005e9", "same"),
                  ("1700000000.25", "older too"), ("1700000001", "newest")]:
        fsr.put_record(FeatureGroupName=name, Record=rec(id="42", ts=ts, v=v))
    assert get(fsr, name, "42") == {"id": "42", "ts": "1700000001", "v": "newest"}
    for bad in ("2024-01-01T00:00:00Z", "soon", "1e999"):
        assert error_of(fsr.put_record, FeatureGroupName=name,
                        Record=rec(id="42", ts=bad)) == ("ValidationError", 400)


@pytest.mark.parametrize("record", [
    rec(id="a", event_time="2024-01-01T00:00:00Z", nope="1"),
    rec(id="a", event_time="2024-01-01T00:00:00Z", count="1.5"),
    rec(id="a", event_time="2024-01-01T00:00:00Z", count="12x"),
    rec(id="a", event_time="2024-01-01T00:00:00Z", amount="abc"),
    rec(id="a", event_time="2024-01-01T00:00:00Z", amount="1e999"),
    rec(id="a", event_time="2024-01-01T00:00:00Z", count="9223372036854775808"),
    rec(id="a", event_time="2024-01-01T00:00:00Z") + [
        {"FeatureName": "label", "ValueAsString": "x", "ValueAsStringList": ["x"]}],
    rec(id="a", event_time="2024-01-01T00:00:00Z", label="x") + rec(label="y"),
    rec(id="a", event_time="2024-01-01 00:00:00"),
    rec(id="a", event_time="2024-01-01T00:00:00+00:00"),
    rec(id="a", event_time="2024-01-01T00:00:00.1234567890Z"),
    rec(id="a", event_time="1704067200"),
    rec(id="a", amount="1"),
    rec(event_time="2024-01-01T00:00:00Z", amount="1"),
    rec(id="a", event_time="2024-01-01T00:00:00Z", label=["x"]),
])
def test_put_validation_errors(sm, fsr, record):
    name = create_group(sm)
    assert error_of(fsr.put_record, FeatureGroupName=name, Record=record) == (
        "ValidationError", 400)
    assert get(fsr, name, "a") == {}


def test_unknown_group_is_resource_not_found(fsr):
    name = uniq("missing")
    calls = [
        (fsr.put_record, dict(Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))),
        (fsr.get_record, dict(RecordIdentifierValueAsString="a")),
        (fsr.list_records, {}),
        (fsr.delete_record, dict(RecordIdentifierValueAsString="a",
                                 EventTime="2024-01-01T00:00:00Z")),
    ]
    for call, kwargs in calls:
        assert error_of(call, FeatureGroupName=name, **kwargs) == ("ResourceNotFound", 404)


def test_target_stores(sm, fsr, spark, emulator):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, TargetStores=["OnlineStore"],
                   Record=rec(id="online", event_time="2024-01-01T00:00:00Z"))
    fsr.put_record(FeatureGroupName=name, TargetStores=["OfflineStore"],
                   Record=rec(id="offline", event_time="2024-01-01T00:00:00Z"))
    assert get(fsr, name, "online")["id"] == "online"
    assert get(fsr, name, "offline") == {}
    ids = [r.id for r in read_offline(spark, emulator, sm, name).select("id").collect()]
    assert ids == ["offline"]
    offline_only = create_group(sm, online=False)
    assert error_of(fsr.put_record, FeatureGroupName=offline_only, TargetStores=["OnlineStore"],
                    Record=rec(id="a", event_time="2024-01-01T00:00:00Z")) == (
        "ValidationError", 400)
    assert error_of(fsr.get_record, FeatureGroupName=offline_only,
                    RecordIdentifierValueAsString="a") == ("ValidationError", 400)
    fsr.put_record(FeatureGroupName=offline_only,
                   Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))


def test_batch_get_record(sm, fsr, raw_fsr):
    g1, g2 = create_group(sm), create_group(sm, ttl={"Unit": "Hours", "Value": 2})
    fsr.put_record(FeatureGroupName=g1, Record=rec(id="a", event_time="2024-01-01T00:00:00Z",
                                                   label="A"))
    fsr.put_record(FeatureGroupName=g2, Record=rec(id="b", event_time="2030-01-01T00:00:00Z",
                                                   label="B"))
    missing = uniq("missing")
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
    assert [(e["FeatureGroupName"], e["ErrorCode"]) for e in resp["Errors"]] == [
        (missing, "ResourceNotFound")]
    assert resp["UnprocessedIdentifiers"] == []
    too_many = [{"FeatureGroupName": g1, "RecordIdentifiersValueAsString":
                 [str(i) for i in range(101)]}]
    assert error_of(raw_fsr.batch_get_record, Identifiers=too_many) == ("ValidationError", 400)


def test_batch_write_record(sm, fsr, raw_fsr):
    name = create_group(sm)
    missing = uniq("missing")
    entries = [
        {"FeatureGroupName": name, "Record": rec(id="ok1", event_time="2024-01-01T00:00:00Z")},
        {"FeatureGroupName": name, "Record": rec(id="bad", event_time="2024-01-01T00:00:00Z",
                                                 count="x")},
        {"FeatureGroupName": missing, "Record": rec(id="x", event_time="2024-01-01T00:00:00Z")},
        {"FeatureGroupName": name, "Record": rec(id="ok2", event_time="2024-01-01T00:00:00Z"),
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


def test_list_records_paginates(sm, fsr, raw_fsr):
    name = create_group(sm)
    ids = [f"id-{i:02d}" for i in range(25)]
    for start in range(0, 25, 25):
        fsr.batch_write_record(Entries=[
            {"FeatureGroupName": name, "Record": rec(id=i, event_time="2024-01-01T00:00:00Z")}
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
    offline_only = create_group(sm, online=False)
    assert error_of(fsr.list_records, FeatureGroupName=offline_only) == ("ValidationError", 400)


# ---- deletes -------------------------------------------------------------------------------

def _listed(fsr, name, include=False):
    return fsr.list_records(FeatureGroupName=name, IncludeSoftDeletedRecords=include)[
        "RecordIdentifiers"]


def test_soft_delete_hides_and_a_newer_put_revives(sm, fsr):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(id="r", event_time="2024-01-01T00:00:05Z"))
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T00:00:06Z", DeletionMode="SoftDelete")
    assert get(fsr, name, "r") == {}
    assert fsr.batch_get_record(Identifiers=[{
        "FeatureGroupName": name, "RecordIdentifiersValueAsString": ["r"]}])["Records"] == []
    assert _listed(fsr, name) == [] and _listed(fsr, name, include=True) == ["r"]
    fsr.put_record(FeatureGroupName=name, Record=rec(id="r", event_time="2024-01-01T00:00:04Z"))
    assert get(fsr, name, "r") == {}  # older than the delete: offline only
    fsr.put_record(FeatureGroupName=name, Record=rec(id="r", event_time="2024-01-01T00:00:07Z"))
    assert get(fsr, name, "r")["event_time"] == "2024-01-01T00:00:07Z"
    # a stale SoftDelete leaves the online record alone (AWS: the marker still goes offline)
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T00:00:07Z", DeletionMode="SoftDelete")
    assert get(fsr, name, "r")["event_time"] == "2024-01-01T00:00:07Z"


def test_hard_delete(sm, fsr):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(id="r", event_time="2024-01-01T00:00:05Z"))
    assert error_of(fsr.delete_record, FeatureGroupName=name, RecordIdentifierValueAsString="r",
                    EventTime="2024-01-01T00:00:05Z", DeletionMode="HardDelete") == (
        "ValidationError", 400)
    assert get(fsr, name, "r")["id"] == "r"
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T00:00:05.001Z", DeletionMode="HardDelete")
    assert get(fsr, name, "r") == {} and _listed(fsr, name, include=True) == []
    # an older put now lands online again: nothing is left to compare with
    fsr.put_record(FeatureGroupName=name, Record=rec(id="r", event_time="2024-01-01T00:00:01Z"))
    assert get(fsr, name, "r")["event_time"] == "2024-01-01T00:00:01Z"
    # deleting an id that is not there succeeds
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="ghost",
                      EventTime="2024-01-01T00:00:00Z", DeletionMode="HardDelete")
    assert error_of(fsr.delete_record, FeatureGroupName=name, RecordIdentifierValueAsString="r",
                    EventTime="yesterday") == ("ValidationError", 400)


def test_delete_markers_in_offline_files(sm, fsr, spark, emulator):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(
        id="r", event_time="2024-01-01T00:00:00Z", amount="2.5", label="x"))
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T00:30:00Z", DeletionMode="SoftDelete")
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r",
                      EventTime="2024-01-01T01:00:00Z", DeletionMode="HardDelete")
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="s",
                      EventTime="2024-01-01T02:00:00Z", TargetStores=["OnlineStore"])
    rows = read_offline(spark, emulator, sm, name).orderBy("event_time").collect()
    assert [(r.id, r.event_time, r.is_deleted, r.amount, r.label, r.hour) for r in rows] == [
        ("r", "2024-01-01T00:00:00Z", False, 2.5, "x", 0),
        ("r", "2024-01-01T00:30:00Z", True, None, None, 0),
        ("r", "2024-01-01T01:00:00Z", True, None, None, 1),
    ]


# ---- TTL -----------------------------------------------------------------------------------

def test_ttl_and_expires_at(sm, fsr):
    name = create_group(sm, ttl={"Unit": "Minutes", "Value": 30})
    fsr.put_record(FeatureGroupName=name, Record=rec(id="a", event_time="2030-01-01T00:00:00Z"))
    fsr.put_record(FeatureGroupName=name, Record=rec(id="b", event_time="2030-01-01T00:00:00Z"),
                   TtlDuration={"Unit": "Weeks", "Value": 1})
    fsr.batch_write_record(TtlDuration={"Unit": "Seconds", "Value": 90}, Entries=[
        {"FeatureGroupName": name, "Record": rec(id="c", event_time="2030-01-01T00:00:00.5Z")},
        {"FeatureGroupName": name, "Record": rec(id="d", event_time="2030-01-01T00:00:00Z"),
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
    name = create_group(sm)
    past = (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    soon = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fsr.put_record(FeatureGroupName=name, Record=rec(id="old", event_time=past),
                   TtlDuration={"Unit": "Seconds", "Value": 10})
    fsr.put_record(FeatureGroupName=name, Record=rec(id="new", event_time=soon),
                   TtlDuration={"Unit": "Hours", "Value": 1})
    assert get(fsr, name, "old") == {}
    assert get(fsr, name, "new")["id"] == "new"
    got = fsr.batch_get_record(Identifiers=[{"FeatureGroupName": name,
                                             "RecordIdentifiersValueAsString": ["old", "new"]}])
    assert [r["RecordIdentifierValueAsString"] for r in got["Records"]] == ["new"]
    assert _listed(fsr, name, include=True) == ["new"]
    assert error_of(fsr.put_record, FeatureGroupName=name, Record=rec(id="x", event_time=soon),
                    TtlDuration={"Unit": "Fortnights", "Value": 1}) == ("ValidationError", 400)


# ---- faults and admin ----------------------------------------------------------------------

def test_throttling(sm, raw_fsr, faults):
    name = create_group(sm)
    before = faults.stats()["throttled"]
    faults.faults(throttle_tps=5)
    codes = []
    started = time.monotonic()
    for i in range(20):
        try:
            raw_fsr.put_record(FeatureGroupName=name, Record=rec(
                id=str(i), event_time="2024-01-01T00:00:00Z"))
            codes.append("ok")
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            codes.append(exc.response["Error"]["Code"])
    elapsed = time.monotonic() - started
    assert set(codes) == {"ok", "ThrottlingException"}
    assert 5 <= codes.count("ok") <= 5 + 5 * elapsed + 1  # a burst of 5, then 5 per second
    assert faults.stats()["throttled"] - before == codes.count("ThrottlingException")
    sm.describe_feature_group(FeatureGroupName=name)  # the control plane is never faulted


def test_error_rate(sm, raw_fsr, faults):
    name = create_group(sm)
    faults.faults(error_rate=1.0, seed=7)
    seen = set()
    for _ in range(20):
        try:
            raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
        except ClientError as exc:
            seen.add((exc.response["Error"]["Code"],
                      exc.response["ResponseMetadata"]["HTTPStatusCode"]))
    assert seen == {("InternalFailure", 500), ("ServiceUnavailable", 503)}
    faults.faults(error_rate=0.5, seed=1)
    outcomes = []
    for _ in range(40):
        try:
            raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
            outcomes.append(True)
        except ClientError:
            outcomes.append(False)
    assert 5 <= outcomes.count(True) <= 35


def test_latency(sm, fsr, faults):
    name = create_group(sm)
    faults.faults(latency_ms=150)
    start = time.perf_counter()
    get(fsr, name, "a")
    assert time.perf_counter() - start >= 0.15  # a plain GetRecord takes a few ms


def test_outage(sm, raw_fsr, faults):
    name = create_group(sm)
    faults.faults(outage_seconds=0.5)
    started = time.monotonic()
    assert error_of(raw_fsr.get_record, FeatureGroupName=name,
                    RecordIdentifierValueAsString="a") == ("ServiceUnavailable", 503)
    while True:
        try:
            raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
            break
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ServiceUnavailable"
            assert time.monotonic() - started < 5
            time.sleep(0.05)
    assert time.monotonic() - started >= 0.5


def test_unprocessed_entries(sm, fsr, faults):
    name = create_group(sm)
    faults.faults(unprocessed_rate=0.5, seed=3)
    entries = [{"FeatureGroupName": name, "Record": rec(id=f"r{i}",
                                                        event_time="2024-01-01T00:00:00Z")}
               for i in range(25)]
    resp = fsr.batch_write_record(Entries=entries)
    left = {as_dict(e["Record"])["id"] for e in resp["UnprocessedEntries"]}
    assert 0 < len(left) < 25 and resp["Errors"] == []
    written = set(_listed(fsr, name))
    assert written == {f"r{i}" for i in range(25)} - left
    faults.faults()
    fsr.batch_write_record(Entries=resp["UnprocessedEntries"])
    assert len(_listed(fsr, name)) == 25


def test_stats_count_operations_and_errors(emulator, sm, fsr):
    def counters():
        ops = emulator.stats()["operations"]
        return {(op, key, code): n for op, entry in ops.items() for key, val in entry.items()
                for code, n in (val.items() if isinstance(val, dict) else [(None, val)])}

    before = counters()
    name = create_group(sm)
    t0 = "2024-01-01T00:00:00Z"
    fsr.batch_write_record(Entries=[
        {"FeatureGroupName": name, "Record": rec(id=str(i), event_time=t0)} for i in range(3)
    ] + [{"FeatureGroupName": name, "Record": rec(id="x", count="no", event_time=t0)}])
    get(fsr, name, "0")
    error_of(fsr.put_record, FeatureGroupName=name, Record=rec(id="a"))
    after = counters()
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert delta == {
        ("CreateFeatureGroup", "requests", None): 1,
        ("BatchWriteRecord", "requests", None): 1,
        ("BatchWriteRecord", "entries", None): 4,
        ("BatchWriteRecord", "records", None): 3,
        ("BatchWriteRecord", "entry_errors", None): 1,
        ("BatchWriteRecord", "errors", "ValidationError"): 1,
        ("GetRecord", "requests", None): 1,
        ("GetRecord", "records", None): 1,
        ("PutRecord", "requests", None): 1,
        ("PutRecord", "errors", "ValidationError"): 1,
    }


def test_reset_clears_everything(clean_emulator, sm, fsr):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))
    directory = offline_dir(clean_emulator, sm, name)
    clean_emulator.flush()
    assert glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True)
    clean_emulator.faults(latency_ms=5)
    clean_emulator.reset()
    assert not os.path.exists(directory)
    stats = clean_emulator.stats()
    assert stats["faults"] == {} and stats["operations"] == {}
    assert stats["offline"]["files_written"] == 0
    assert error_of(sm.describe_feature_group, FeatureGroupName=name)[0] == "ResourceNotFound"


# ---- offline store through Spark -----------------------------------------------------------

def test_spark_reads_offline_store(sm, fsr, spark, emulator):
    features = [{"FeatureName": "id", "FeatureType": "Integral"},
                {"FeatureName": "ts", "FeatureType": "Fractional"},
                {"FeatureName": "amount", "FeatureType": "Fractional"},
                {"FeatureName": "label", "FeatureType": "String"}]
    name = create_group(sm, features=features, event_time="ts")
    t1 = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()
    t2 = datetime(2024, 3, 1, 5, 0, 0, tzinfo=UTC).timestamp()
    fsr.batch_write_record(Entries=[
        {"FeatureGroupName": name, "Record": rec(id="1", ts=str(t1), amount="1.25")},
        {"FeatureGroupName": name, "Record": rec(id="2", ts=str(t2), label="b")}])
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="2",
                      EventTime=str(t2 + 1))
    df = read_offline(spark, emulator, sm, name)
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    assert types == {"id": "bigint", "ts": "double", "amount": "double", "label": "string",
                     "write_time": "timestamp", "api_invocation_time": "timestamp",
                     "is_deleted": "boolean", "year": "int", "month": "int", "day": "int",
                     "hour": "int"}
    rows = sorted(df.collect(), key=lambda r: r.ts)
    assert [(r.id, r.ts, r.amount, r.label, r.is_deleted, r.year, r.month, r.day, r.hour)
            for r in rows] == [
        (1, t1, 1.25, None, False, 2024, 2, 29, 23),
        (2, t2, None, "b", False, 2024, 3, 1, 5),
        (2, t2 + 1, None, None, True, 2024, 3, 1, 5)]
    assert all(r.write_time >= r.api_invocation_time for r in rows)
    files = glob.glob(os.path.join(offline_dir(emulator, sm, name), "year=*", "month=*",
                                   "day=*", "hour=*", "*"))
    names = sorted(os.path.basename(f) for f in files)
    assert len(names) == 2 and all(FILE_RE.fullmatch(n) for n in names)
    assert names[0].startswith("20240229T235959Z_") and names[1].startswith("20240301T050001Z_")


def test_timer_flush(sm, fsr, emulator):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))
    directory = offline_dir(emulator, sm, name)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        if glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True):
            break
        time.sleep(0.1)
    assert glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True)


def test_shutdown_flushes_and_start_reports_failures(tmp_path, boto_session):
    import emulator_process

    emu = emulator_process.start(tmp_path / "data", extra_args=["--flush-interval", "0"])
    with emu:
        sm = boto_session.client("sagemaker", region_name="us-east-1", endpoint_url=emu.url)
        fsr = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                                  endpoint_url=emu.url)
        name = create_group(sm)
        fsr.put_record(FeatureGroupName=name,
                       Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))
        assert emu.stats()["offline"]["buffered_rows"] == 1
    assert emu.proc.returncode == 0
    assert glob.glob(str(tmp_path / "data" / "**" / "*.parquet"), recursive=True)
    with pytest.raises(emulator_process.EmulatorError, match="usage"):
        emulator_process.start(tmp_path / "x", extra_args=["--no-such-flag"])
