"""Feature groups through the control plane (feature_store_emulator/groups.py and the
control-plane half of models.py), driven only through boto3."""

from __future__ import annotations

import re
import time

import pytest
from emulator_helpers import BASE, BUCKET_URI, FEATURES, emulator_group, error_of, get, raw_client
from jobtools import definitions, fv, unique


@pytest.fixture
def raw_sm(emulator, boto_session):
    return raw_client(emulator, boto_session, "sagemaker")


def all_definitions(sm, name) -> list[dict]:
    found, token = [], None
    while True:
        page = sm.describe_feature_group(FeatureGroupName=name,
                                         **({"NextToken": token} if token else {}))
        found += page["FeatureDefinitions"]
        token = page.get("NextToken")
        if not token:
            return found


def test_create_and_describe(sm):
    before = int(time.time())
    name = emulator_group(sm, ThroughputConfig={"ThroughputMode": "OnDemand"},
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
    name = unique()
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


@pytest.mark.parametrize("overrides", [
    {"FeatureGroupName": "bad name"},
    {"FeatureGroupName": "-leading-dash"},
    {"FeatureDefinitions": definitions(*BASE, ("has space", "String"))},
    {"FeatureDefinitions": definitions(*BASE, ("is_deleted", "String"))},
    {"FeatureDefinitions": definitions(*BASE, ("write_time", "String"))},
    {"FeatureDefinitions": definitions(*BASE, ("api_invocation_time", "String"))},
    {"FeatureDefinitions": definitions(*BASE, ("x", "String"), ("x", "Integral"))},
    {"RecordIdentifierFeatureName": "missing"},
    {"EventTimeFeatureName": "missing"},
    {"FeatureDefinitions": definitions(("id", "Fractional"), ("event_time", "String"))},
    {"FeatureDefinitions": definitions(("id", "String"), ("event_time", "Integral"))},
    {"FeatureDefinitions": definitions(*BASE) + [
        {"FeatureName": "tags", "FeatureType": "String", "CollectionType": "List"}]},
    {"OnlineStoreConfig": {"EnableOnlineStore": True, "StorageType": "InMemory"}},
    {"OnlineStoreConfig": {"EnableOnlineStore": False}, "OfflineStoreConfig": None},
    {"FeatureDefinitions": definitions(*BASE, *((f"f{i}", "String") for i in range(2499)))},
])
def test_create_validation(raw_sm, overrides):
    kwargs = dict(FeatureGroupName=unique(), RecordIdentifierFeatureName="id",
                  EventTimeFeatureName="event_time", FeatureDefinitions=definitions(*BASE),
                  OnlineStoreConfig={"EnableOnlineStore": True},
                  OfflineStoreConfig={"S3StorageConfig": {"S3Uri": BUCKET_URI}})
    kwargs.update(overrides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    assert error_of(raw_sm.create_feature_group, **kwargs) == ("ValidationException", 400)


def test_resource_in_use_and_not_found(sm):
    name = emulator_group(sm)
    assert error_of(emulator_group, sm, name=name) == ("ResourceInUse", 400)
    missing = unique("missing")
    for call in (sm.describe_feature_group, sm.delete_feature_group):
        assert error_of(call, FeatureGroupName=missing) == ("ResourceNotFound", 400)
    assert error_of(sm.update_feature_group, FeatureGroupName=missing,
                    FeatureAdditions=definitions(("x", "String"))) == ("ResourceNotFound", 400)


def test_list_feature_groups_filters_and_paginates(sm):
    prefix = unique("lst")
    names = [emulator_group(sm, name=f"{prefix}-{i}") for i in range(3)]
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
    name = emulator_group(sm)
    sm.update_feature_group(FeatureGroupName=name,
                            FeatureAdditions=definitions(("extra", "Integral")))
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
    fsr.put_record(FeatureGroupName=name, Record=fv(
        id="a", event_time="2030-01-01T00:00:00Z", extra="7"))
    got = fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a",
                         ExpirationTimeResponse="Enabled")
    assert got["ExpiresAt"] == "2030-01-04T00:00:00Z"
    for bad in (definitions(("extra", "String")), definitions(("write_time", "String"))):
        assert error_of(sm.update_feature_group, FeatureGroupName=name,
                        FeatureAdditions=bad) == ("ValidationException", 400)


def test_feature_limit_on_update(sm):
    features = definitions(*BASE, *((f"f{i}", "String") for i in range(2448)))
    name = emulator_group(sm, features=features)
    more = definitions(*((f"g{i}", "String") for i in range(51)))
    assert error_of(sm.update_feature_group, FeatureGroupName=name, FeatureAdditions=more) == (
        "ResourceLimitExceeded", 400)
    sm.update_feature_group(FeatureGroupName=name, FeatureAdditions=more[:50])
    assert len(all_definitions(sm, name)) == 2500


def test_describe_paginates_feature_definitions(sm):
    features = definitions(*BASE, *((f"f{i:03d}", "Fractional") for i in range(248)))
    name = emulator_group(sm, features=features)
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
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=fv(id="a", event_time="2024-01-01T00:00:00Z"))
    sm.delete_feature_group(FeatureGroupName=name)
    assert error_of(sm.describe_feature_group, FeatureGroupName=name) == (
        "ResourceNotFound", 400)
    assert error_of(fsr.get_record, FeatureGroupName=name,
                    RecordIdentifierValueAsString="a") == ("ResourceNotFound", 404)
    emulator_group(sm, name=name)  # the name is free again, with an empty online store
    assert get(fsr, name, "a") == {}
