"""Feature group specs from DescribeFeatureGroup, and the source/target compatibility report."""

from __future__ import annotations

import dataclasses

import pytest
from fsmigrate.groups import (
    CONVERTED,
    DROPPED,
    EMPTY,
    INCOMPATIBLE,
    MISSING,
    OK,
    Feature,
    GroupSpec,
    check_compatibility,
    compat_table,
    spec_from_description,
    ttl_to_seconds,
)

ARN = "arn:aws:sagemaker:us-east-1:123456789012:feature-group/"


def definitions(*pairs) -> list[dict]:
    out = []
    for pair in pairs:
        name, ftype, *collection = pair
        d = {"FeatureName": name, "FeatureType": ftype}
        if collection:
            d["CollectionType"] = collection[0]
            d["CollectionConfig"] = {"VectorConfig": {"Dimension": 3}} if collection[0] == \
                "Vector" else {}
        out.append(d)
    return out


def online_offline_description() -> dict:
    return {
        "FeatureGroupArn": ARN + "customers",
        "FeatureGroupName": "customers",
        "RecordIdentifierFeatureName": "customer_id",
        "EventTimeFeatureName": "event_time",
        "FeatureDefinitions": definitions(
            ("customer_id", "String"), ("event_time", "String"), ("age", "Integral"),
            ("score", "Fractional"),
        ),
        "CreationTime": "2024-01-01T00:00:00Z",
        "OnlineStoreConfig": {
            "EnableOnlineStore": True,
            "StorageType": "Standard",
            "TtlDuration": {"Unit": "Days", "Value": 30},
        },
        "OfflineStoreConfig": {
            "S3StorageConfig": {
                "S3Uri": "s3://bucket/prefix",
                "ResolvedOutputS3Uri": "s3://bucket/prefix/123456789012/sagemaker/us-east-1/"
                                       "offline-store/customers-1704067200/data",
            },
            "DisableGlueTableCreation": False,
            "DataCatalogConfig": {"TableName": "customers_1704067200", "Catalog": "AwsDataCatalog",
                                  "Database": "sagemaker_featurestore"},
            "TableFormat": "Glue",
        },
        "ThroughputConfig": {"ThroughputMode": "OnDemand"},
        "RoleArn": "arn:aws:iam::123456789012:role/fs",
        "FeatureGroupStatus": "Created",
        "OfflineStoreStatus": {"Status": "Active"},
    }


def test_spec_online_and_offline():
    spec = spec_from_description(online_offline_description())
    assert spec.name == "customers"
    assert spec.record_id == "customer_id"
    assert spec.event_time == "event_time"
    assert spec.features == (
        Feature("customer_id", "String"), Feature("event_time", "String"),
        Feature("age", "Integral"), Feature("score", "Fractional"),
    )
    assert spec.online and spec.offline
    assert spec.kind == "online+offline"
    assert spec.stores == ("OnlineStore", "OfflineStore")
    assert spec.storage_type == "Standard"
    assert spec.offline_uri.endswith("/offline-store/customers-1704067200/data")
    assert spec.table_format == "Glue"
    assert spec.ttl_seconds == 30 * 86400
    assert spec.status == "Created"
    assert spec.feature("age") == Feature("age", "Integral")
    assert spec.feature("nope") is None


def test_spec_offline_only_iceberg_without_resolved_uri():
    desc = online_offline_description()
    del desc["OnlineStoreConfig"]
    desc["OfflineStoreConfig"]["TableFormat"] = "Iceberg"
    del desc["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
    desc["FeatureGroupStatus"] = "Creating"
    spec = spec_from_description(desc)
    assert not spec.online and spec.offline
    assert spec.kind == "offline"
    assert spec.stores == ("OfflineStore",)
    assert spec.storage_type is None
    assert spec.ttl_seconds is None
    assert spec.table_format == "Iceberg"
    assert spec.offline_uri == "s3://bucket/prefix"  # falls back to S3Uri
    assert spec.status == "Creating"


def test_spec_offline_only_defaults_to_glue_format():
    desc = online_offline_description()
    del desc["OnlineStoreConfig"]
    del desc["OfflineStoreConfig"]["TableFormat"]
    assert spec_from_description(desc).table_format == "Glue"


def test_spec_in_memory_online_only_with_collections():
    desc = {
        "FeatureGroupName": "embeddings",
        "RecordIdentifierFeatureName": "id",
        "EventTimeFeatureName": "ts",
        "FeatureDefinitions": definitions(
            ("id", "String"), ("ts", "Fractional"), ("tags", "String", "Set"),
            ("history", "Integral", "List"), ("vec", "Fractional", "Vector"),
        ),
        "OnlineStoreConfig": {"EnableOnlineStore": True, "StorageType": "InMemory",
                              "TtlDuration": {"Unit": "Hours", "Value": 6}},
        "FeatureGroupStatus": "Created",
    }
    spec = spec_from_description(desc)
    assert spec.online and not spec.offline
    assert spec.kind == "online"
    assert spec.stores == ("OnlineStore",)
    assert spec.storage_type == "InMemory"
    assert spec.offline_uri is None and spec.table_format is None
    assert spec.ttl_seconds == 6 * 3600
    assert spec.feature("tags") == Feature("tags", "String", "Set")
    assert spec.feature("history") == Feature("history", "Integral", "List")
    assert spec.feature("vec") == Feature("vec", "Fractional", "Vector", 3)
    assert spec.feature("id").collection is None


def test_spec_online_without_storage_type_is_standard():
    desc = online_offline_description()
    del desc["OnlineStoreConfig"]["StorageType"]
    del desc["OnlineStoreConfig"]["TtlDuration"]
    spec = spec_from_description(desc)
    assert spec.storage_type == "Standard"
    assert spec.ttl_seconds is None


def test_spec_status_defaults_to_created_and_spec_is_frozen():
    desc = online_offline_description()
    del desc["FeatureGroupStatus"]
    spec = spec_from_description(desc)
    assert spec.status == "Created"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("unit", "value", "seconds"),
    [("Seconds", 90, 90), ("Minutes", 5, 300), ("Hours", 2, 7200), ("Days", 1, 86400),
     ("Weeks", 2, 1_209_600)],
)
def test_ttl_units_to_seconds(unit, value, seconds):
    assert ttl_to_seconds({"Unit": unit, "Value": value}) == seconds
    desc = online_offline_description()
    desc["OnlineStoreConfig"]["TtlDuration"] = {"Unit": unit, "Value": value}
    assert spec_from_description(desc).ttl_seconds == seconds


def test_ttl_none():
    assert ttl_to_seconds(None) is None
    assert ttl_to_seconds({}) is None


# ---- compatibility -----------------------------------------------------------------------------


def group(name="g", *features: Feature, record_id="id", event_time="ts", status="Created",
          online=True, offline=True) -> GroupSpec:
    base = (Feature(record_id, "String"), Feature(event_time, "String"))
    return GroupSpec(name=name, record_id=record_id, event_time=event_time,
                     features=base + features, online=online, offline=offline, status=status)


def verdict_of(compat, name):
    matches = [v for v in compat.verdicts if v.name == name]
    assert len(matches) == 1, compat.verdicts
    return matches[0]


@pytest.mark.parametrize(
    ("src_type", "tgt_type", "expected"),
    [
        ("Integral", "Integral", OK),
        ("Fractional", "Fractional", OK),
        ("String", "String", OK),
        ("Integral", "Fractional", CONVERTED),
        ("Integral", "String", CONVERTED),
        ("Fractional", "String", CONVERTED),
        ("String", "Integral", INCOMPATIBLE),
        ("String", "Fractional", INCOMPATIBLE),
        ("Fractional", "Integral", INCOMPATIBLE),
    ],
)
def test_feature_type_rules(src_type, tgt_type, expected):
    source = group("src", Feature("f", src_type))
    target = group("tgt", Feature("f", tgt_type))
    compat = check_compatibility(source, target)
    v = verdict_of(compat, "f")
    assert (v.source, v.target, v.verdict) == (src_type, tgt_type, expected)
    assert compat.ok is (expected != INCOMPATIBLE)
    mapped = [m.name for m in compat.mappings]
    assert ("f" in mapped) is (expected != INCOMPATIBLE)
    if expected == CONVERTED:
        assert v.reason == f"{src_type} values sent as {tgt_type}"
    if expected == INCOMPATIBLE:
        assert compat.first_problem() == f"feature f: incompatible ({src_type} cannot be " \
            f"written as {tgt_type})"


@pytest.mark.parametrize(
    ("src", "tgt", "expected"),
    [
        (Feature("f", "String", "List"), Feature("f", "String", "List"), OK),
        (Feature("f", "Integral", "List"), Feature("f", "Fractional", "List"), CONVERTED),
        (Feature("f", "String", "List"), Feature("f", "String", "Set"), INCOMPATIBLE),
        (Feature("f", "String", "List"), Feature("f", "String"), INCOMPATIBLE),
        (Feature("f", "String"), Feature("f", "String", "Set"), INCOMPATIBLE),
        (Feature("f", "Fractional", "Vector"), Feature("f", "Fractional", "List"), INCOMPATIBLE),
        (Feature("f", "String", "Set"), Feature("f", "Integral", "Set"), INCOMPATIBLE),
    ],
)
def test_collection_rules(src, tgt, expected):
    compat = check_compatibility(group("src", src), group("tgt", tgt))
    v = verdict_of(compat, "f")
    assert v.verdict == expected
    if src.collection:
        assert v.source == f"{src.type} {src.collection}"
    assert compat.ok is (expected != INCOMPATIBLE)


def test_missing_target_feature_is_an_error_by_default():
    source = group("src")
    target = group("tgt", Feature("new_feature", "Integral"))
    compat = check_compatibility(source, target)
    v = verdict_of(compat, "new_feature")
    assert v.verdict == MISSING and v.source is None and v.target == "Integral"
    assert not compat.ok
    assert "missing_features: empty" in compat.first_problem()
    assert "new_feature" not in [m.name for m in compat.mappings]


def test_missing_target_feature_left_empty_when_allowed():
    source = group("src")
    target = group("tgt", Feature("new_feature", "String", "List"))
    compat = check_compatibility(source, target, missing_features="empty")
    v = verdict_of(compat, "new_feature")
    assert v.verdict == EMPTY == "left empty"
    assert v.target == "String List"
    assert compat.ok
    mapping = next(m for m in compat.mappings if m.name == "new_feature")
    assert mapping.source is None and mapping.target == Feature("new_feature", "String", "List")


@pytest.mark.parametrize("which", ["record_id", "event_time"])
def test_missing_id_or_event_time_is_never_left_empty(which):
    # the source lacks the target's record id / event time feature (and names differ)
    source = GroupSpec("src", "id", "ts", (Feature("id", "String"), Feature("ts", "String")),
                       True, True)
    kwargs = {"record_id": "id", "event_time": "ts", which: "other"}
    target = GroupSpec("tgt", kwargs["record_id"], kwargs["event_time"],
                       (Feature(kwargs["record_id"], "String"),
                        Feature(kwargs["event_time"], "String")), True, True)
    compat = check_compatibility(source, target, missing_features="empty")
    assert verdict_of(compat, "other").verdict == MISSING
    assert not compat.ok
    assert "other" not in [m.name for m in compat.mappings]


def test_source_only_features_are_dropped():
    source = group("src", Feature("legacy", "Integral"), Feature("kept", "String"))
    target = group("tgt", Feature("kept", "String"))
    compat = check_compatibility(source, target)
    v = verdict_of(compat, "legacy")
    assert (v.verdict, v.source, v.target) == (DROPPED, "Integral", None)
    assert compat.ok  # dropping is allowed
    assert "legacy" not in [m.name for m in compat.mappings]
    assert verdict_of(compat, "kept").verdict == OK


def test_record_identifier_name_differs_is_a_problem():
    source = group("src", record_id="id")
    target = group("tgt", record_id="customer_id")
    compat = check_compatibility(source, target, missing_features="empty")
    assert not compat.ok
    assert compat.problems[0] == "record identifier differs: source id, target customer_id"
    assert compat.first_problem() == compat.problems[0]


def test_event_time_name_differs_is_a_problem():
    source = group("src", event_time="ts")
    target = group("tgt", event_time="event_time")
    compat = check_compatibility(source, target, missing_features="empty")
    assert not compat.ok
    assert "event time feature differs: source ts, target event_time" in compat.problems


def test_event_time_type_must_match_exactly():
    source = GroupSpec("src", "id", "ts", (Feature("id", "String"), Feature("ts", "Integral")),
                       True, True)
    target = GroupSpec("tgt", "id", "ts", (Feature("id", "String"), Feature("ts", "Fractional")),
                       True, True)
    compat = check_compatibility(source, target)
    assert verdict_of(compat, "ts").verdict == INCOMPATIBLE
    assert not compat.ok


@pytest.mark.parametrize("side", ["source", "target"])
@pytest.mark.parametrize("status", ["Creating", "CreateFailed", "Deleting"])
def test_group_not_created_is_a_problem(side, status):
    groups = {"source": group("src"), "target": group("tgt")}
    groups[side] = dataclasses.replace(groups[side], status=status)
    compat = check_compatibility(groups["source"], groups["target"])
    assert not compat.ok
    name = groups[side].name
    assert compat.problems == (
        f"feature group {name} is {status}, not Created: wait until it is Created",)


def test_identical_groups_are_ok():
    features = (Feature("a", "Integral"), Feature("b", "Fractional"), Feature("c", "String"))
    compat = check_compatibility(group("src", *features), group("tgt", *features))
    assert compat.ok
    assert compat.problems == ()
    assert all(v.verdict == OK for v in compat.verdicts)
    assert [m.name for m in compat.mappings] == ["id", "ts", "a", "b", "c"]


def test_every_problem_is_one_line():
    source = group("src", Feature("f", "String"), Feature("g", "Integral"), status="Creating",
                   record_id="rid", event_time="et")
    target = group("tgt", Feature("f", "Integral"), Feature("h", "Integral"), record_id="id",
                   event_time="ts")
    compat = check_compatibility(source, target)
    assert len(compat.problems) == 3
    for problem in compat.problems:
        assert "\n" not in problem
    only_features = check_compatibility(
        group("src", Feature("f", "String")), group("tgt", Feature("f", "Integral")))
    assert only_features.problems == ()
    first = only_features.first_problem()
    assert first.startswith("feature f: incompatible") and "\n" not in first


def test_compat_table_lists_every_feature():
    source = group("src", Feature("same", "String"), Feature("wide", "Integral"),
                   Feature("bad", "String"), Feature("legacy", "Integral"))
    target = group("tgt", Feature("same", "String"), Feature("wide", "Fractional"),
                   Feature("bad", "Integral"), Feature("new", "String"))
    compat = check_compatibility(source, target, missing_features="empty")
    table = compat_table(compat)
    lines = table.splitlines()
    assert lines[0] == "Compatibility report"
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"id", "ts", "same", "wide", "bad", "new", "legacy"}
    assert rows["same"].rstrip().endswith(OK)
    assert "Integral -> Fractional" in rows["wide"] and CONVERTED in rows["wide"]
    assert INCOMPATIBLE in rows["bad"] and "String cannot be written as Integral" in rows["bad"]
    assert "- -> String" in rows["new"] and EMPTY in rows["new"]
    assert "Integral -> -" in rows["legacy"] and DROPPED in rows["legacy"]
    assert len(compat.as_rows()) == 7
    assert {r["name"]: r["verdict"] for r in compat.as_rows()}["legacy"] == DROPPED


def test_compat_table_shows_problems_and_indent():
    compat = check_compatibility(group("src", record_id="rid"), group("tgt"),
                                 missing_features="empty")
    table = compat_table(compat, indent="    ")
    lines = table.splitlines()
    assert all(line.startswith("    ") for line in lines)
    assert lines[1] == "      problem: record identifier differs: source rid, target id"


def test_vector_dimension_is_part_of_compatibility():
    """sagemaker model: FeatureDefinition.CollectionConfig.VectorConfig.Dimension; the service
    refuses a Vector value whose length is not the target's dimension."""
    desc = {"FeatureGroupName": "v", "RecordIdentifierFeatureName": "id",
            "EventTimeFeatureName": "ts", "FeatureGroupStatus": "Created",
            "FeatureDefinitions": definitions(("id", "String"), ("ts", "Fractional"),
                                              ("vec", "Fractional", "Vector"))}
    assert spec_from_description(desc).feature("vec") == Feature("vec", "Fractional", "Vector", 3)
    src = Feature("f", "Fractional", "Vector", 4)
    for tgt, expected in [(Feature("f", "Fractional", "Vector", 4), OK),
                          (Feature("f", "Fractional", "Vector", 8), INCOMPATIBLE)]:
        compat = check_compatibility(group("src", src), group("tgt", tgt))
        v = verdict_of(compat, "f")
        assert v.verdict == expected
        assert v.source == "Fractional Vector(4)"
    assert "dimension 4 -> 8" in verdict_of(compat, "f").reason
    assert compat.ok is False
