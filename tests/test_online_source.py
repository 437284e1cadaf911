"""Reading a source's online store: unit tests for the parts, then the emulator + real Spark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fsmigrate.aws import AwsSettings
from fsmigrate.errors import Aborted, BadInput
from fsmigrate.eventtime import NS, instant_ns
from fsmigrate.groups import Feature, GroupSpec
from fsmigrate.select import apply_filter
from fsmigrate.sources import IDS_FROM_BOTH, IDS_FROM_OFFLINE, IDS_FROM_SCAN, OFFLINE_IDS_MISS
from fsmigrate.sources.online import (
    EXPIRES_AT,
    TTL_SECONDS,
    WIRE,
    check_offline_status,
    online_schema,
    read_online,
    typed_view,
)
from fsmigrate.storage import Store
from jobtools import create_group, fv, group_spec, put_records, unique
from pyspark.sql.types import ArrayType, DoubleType, LongType, StringType


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_bad_id_source_choices_are_bad_input():
    features = (Feature("id", "String"), Feature("et", "String"))
    online_only = GroupSpec("g", "id", "et", features, online=True, offline=False)
    store = Store()
    with pytest.raises(BadInput, match="no offline store"):
        read_online(None, online_only, store, AwsSettings(), id_source="offline")
    with pytest.raises(BadInput, match="id_source must be one of"):
        read_online(None, online_only, store, AwsSettings(), id_source="bogus")
    offline_only = GroupSpec("g", "id", "et", features, online=False, offline=True)
    with pytest.raises(BadInput, match="no online store"):
        read_online(None, offline_only, store, AwsSettings())


# ---- emulator: an online+offline source with updates, deletes and TTLs -----------------------

FEATURES = [("id", "String"), ("event_time", "String"), ("f_int", "Integral"),
            ("f_frac", "Fractional"), ("f_str", "String")]
OLD = "2024-05-01T12:00:00Z"
UPDATED = "2024-05-02T00:00:00.123456789Z"


@pytest.fixture(scope="module")
def clients(emulator, boto_session):
    sm = boto_session.client("sagemaker", region_name="us-east-1", endpoint_url=emulator.url)
    fsr = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                              endpoint_url=emulator.url)
    return sm, fsr


@pytest.fixture(scope="module")
def settings(emulator):
    aws_settings = AwsSettings(region="us-east-1", endpoint_url=emulator.url)
    return aws_settings, Store(aws=aws_settings, local_root=str(emulator.data_dir))


@pytest.fixture(scope="module")
def source(emulator, clients):
    """40 offline+online records; 4 updated online only, 4 deleted, TTLs; one online-only id."""
    sm, fsr = clients
    name = unique("online-src")
    create_group(sm, name, FEATURES, record_id="id", s3_uri="s3://online-tests/fs")
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(40):
        fsr.put_record(FeatureGroupName=name, Record=fv(
            id=f"r{i:02d}", event_time=OLD, f_int=str(i), f_frac=f"{i}.50",
            f_str=None if i == 7 else f"s{i}"))
    for i in range(1, 5):  # newer values, online store only
        fsr.put_record(FeatureGroupName=name, TargetStores=["OnlineStore"], Record=fv(
            id=f"r{i:02d}", event_time=UPDATED, f_int=str(100 + i), f_frac="9.25", f_str="upd"))
    for i in (10, 11, 12):
        fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString=f"r{i}",
                          EventTime="2024-05-03T00:00:00Z", DeletionMode="HardDelete")
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r13",
                      EventTime="2024-05-03T00:00:00Z", DeletionMode="SoftDelete")
    ttls = {  # id: (event time, TtlDuration)
        "r20": (iso(now - timedelta(hours=1)), {"Unit": "Days", "Value": 2}),
        "r21": (iso(now - timedelta(hours=1)), {"Unit": "Seconds", "Value": 1}),  # expired
        "r22": (iso(now - timedelta(minutes=10)), {"Unit": "Hours", "Value": 1}),
        "r23": (iso(now - timedelta(minutes=5)).replace("Z", ".5Z"),
                {"Unit": "Minutes", "Value": 30}),
    }
    for rid, (event_time, ttl) in ttls.items():
        fsr.put_record(FeatureGroupName=name, TtlDuration=ttl, Record=fv(
            id=rid, event_time=event_time, f_int="-3", f_frac="1.50", f_str="ttl"))
    fsr.put_record(FeatureGroupName=name, TargetStores=["OnlineStore"], Record=fv(
        id="zz-online-only", event_time=OLD, f_int="1", f_frac="2.0"))
    emulator.flush()
    return group_spec(sm, name), now


def online_truth(fsr, spec: GroupSpec, ids) -> dict[str, dict]:
    """What GetRecord says, per id present online: {feature: text, __expires_at: ...}."""
    out = {}
    for rid in ids:
        got = fsr.get_record(FeatureGroupName=spec.name, RecordIdentifierValueAsString=rid,
                             ExpirationTimeResponse="Enabled")
        if not got.get("Record"):
            continue
        row = {f.name: None for f in spec.features}
        for item in got["Record"]:
            row[item["FeatureName"]] = item.get("ValueAsString", item.get("ValueAsStringList"))
        row[EXPIRES_AT] = got.get("ExpiresAt")
        out[rid] = row
    return out


def rows_by_id(df, id_col="id") -> dict[str, dict]:
    return {r[id_col]: r.asDict(recursive=True) for r in df.collect()}


OFFLINE_IDS = [f"r{i:02d}" for i in range(40)] + ["r20", "r21", "r22", "r23"]


@pytest.fixture(scope="module")
def auto_read(spark, settings, source):
    """read_online with id_source auto, done once: (OnlineRead, rows by id)."""
    spec, _ = source
    aws_settings, store = settings
    read = read_online(spark, spec, store, aws_settings, ids_per_partition=15)
    return read, rows_by_id(read.df)


def test_default_id_source_finds_online_only_records(clients, source, auto_read):
    # zz-online-only was written with TargetStores=[OnlineStore]: it never reaches the offline
    # store, so the offline ids alone would skip a live record without a word.
    _, fsr = clients
    spec, _ = source
    read, got = auto_read
    assert read.id_source == IDS_FROM_BOTH and "ListRecords" in read.id_source_reason
    assert read.ids_considered == 41  # r00..r39 (deleted ones asked too) + zz-online-only
    assert read.df.schema == online_schema(spec)
    truth = online_truth(fsr, spec, sorted(set(OFFLINE_IDS)) + ["zz-online-only"])
    assert {k: {c: v for c, v in row.items() if c != TTL_SECONDS} for k, row in got.items()} \
        == truth
    assert not {"r10", "r11", "r12", "r13", "r21"} & set(got)
    assert got["zz-online-only"]["f_int"] == "1" and got["zz-online-only"]["f_str"] is None
    assert got["r01"]["f_int"] == "101" and got["r01"]["event_time"] == UPDATED
    assert got["r07"]["f_str"] is None and got["r05"]["f_frac"] == "5.50"
    assert read.records == len(got) == 40 - 5 + 1 and read.expired == 0


def test_offline_id_source_is_opt_in_and_says_what_it_may_miss(spark, settings, source,
                                                               auto_read):
    spec, _ = source
    aws_settings, store = settings
    _, auto = auto_read
    fast = read_online(spark, spec, store, aws_settings, id_source="offline")
    assert fast.id_source == IDS_FROM_OFFLINE and OFFLINE_IDS_MISS in fast.id_source_reason
    assert rows_by_id(fast.df) == {k: v for k, v in auto.items() if k != "zz-online-only"}


def test_scan_returns_the_same_rows_as_the_default(spark, settings, source, auto_read):
    spec, _ = source
    aws_settings, store = settings
    _, auto = auto_read
    scan = read_online(spark, spec, store, aws_settings, id_source="scan", max_workers=2)
    assert (scan.id_source, scan.id_source_reason) == (IDS_FROM_SCAN, "migration.id_source: scan")
    got = rows_by_id(scan.df)
    assert scan.ids_considered == len(got) == len(auto)
    assert got == auto


def test_inactive_offline_store_is_refused_unless_allowed():
    features = (Feature("id", "String"), Feature("et", "String"))
    blocked = GroupSpec("g", "id", "et", features, online=False, offline=True,
                        offline_status="Blocked")
    with pytest.raises(BadInput, match="offline store of g is Blocked, not Active.*"
                                       "allow_inactive_offline_store"):
        check_offline_status(blocked, allow_inactive=False)
    assert "Blocked" in check_offline_status(blocked, allow_inactive=True)
    for status in ("Active", None):
        active = GroupSpec("g", "id", "et", features, online=False, offline=True,
                           offline_status=status)
        assert check_offline_status(active, allow_inactive=False) is None


def test_ttl_seconds_reproduce_expires_at(auto_read):
    _, got = auto_read
    assert (got["r20"][TTL_SECONDS], got["r22"][TTL_SECONDS], got["r23"][TTL_SECONDS]) == (
        172800, 3600, 1800)
    for rid in ("r20", "r22", "r23"):
        row = got[rid]
        assert instant_ns(row["event_time"]) + row[TTL_SECONDS] * NS == instant_ns(
            row[EXPIRES_AT])
    assert got["r00"][EXPIRES_AT] is None and got["r00"][TTL_SECONDS] is None


def test_records_expired_by_now_are_dropped_and_counted(spark, settings, source):
    spec, now = source
    aws_settings, store = settings
    later = now + timedelta(hours=2)  # r22 (now+50 min) and r23 (now+25 min) are gone by then
    read = read_online(spark, spec, store, aws_settings, now=later)
    got = rows_by_id(read.df)
    assert read.expired == 2 and read.records == len(got) == 40 - 5 - 2 + 1  # + zz-online-only
    assert "r20" in got and not {"r22", "r23"} & set(got)


def test_typed_view_filters_like_the_offline_store_and_keeps_wire_text(source, auto_read):
    spec, _ = source
    read, rows = auto_read
    view = typed_view(read.df, spec)
    types = {f.name: f.dataType for f in view.schema.fields}
    assert (types["f_int"], types["f_frac"], types["f_str"]) == (
        LongType(), DoubleType(), StringType())
    picked = apply_filter(view, "WHERE f_int > 5 AND f_frac < 30")
    ids = sorted(r["id"] for r in picked.collect())
    excluded = {10, 11, 12, 13, 20, 21, 22, 23}  # deleted, or f_int = -3 (the TTL records)
    assert ids == [f"r{i:02d}" for i in range(1, 30) if i not in excluded and i != 5 or i < 5]
    wire = picked.select(f"{WIRE}.*")
    assert wire.schema == read.df.schema
    assert rows_by_id(wire) == {k: v for k, v in rows.items() if k in ids}
    r20 = view.where("id = 'r20'").collect()[0]
    assert r20["f_frac"] == 1.5 and r20[WIRE]["f_frac"] == "1.50" and r20[WIRE]["f_int"] == "-3"


# ---- emulator: an online-only InMemory source with collections -------------------------------


def asked_ids(emulator) -> int:
    """Record ids asked for in BatchGetRecord calls so far (all groups)."""
    op = emulator.stats()["operations"].get("BatchGetRecord") or {}
    return op.get("identifiers", 0)


def test_inmemory_source_is_scanned_with_lists_intact(spark, emulator, clients, settings):
    sm, fsr = clients
    aws_settings, store = settings
    name = unique("online-mem")
    create_group(sm, name, [("id", "String"), ("ts", "Fractional"), ("tags", "String", "List"),
                            ("score", "Fractional")], offline=False, storage="InMemory",
                 ttl={"Unit": "Days", "Value": 30}, record_id="id", event_time="ts")
    base = int(datetime.now(UTC).timestamp()) - 1000
    put_records(fsr, name, [  # two ListRecords pages
        fv(id=f"m{i:03d}", ts=f"{base + i}.25",
           tags=[] if i == 5 else ["a", "", "x, y", f"t{i}"][: 1 + i % 4],
           score="0.10" if i % 3 else None)
        for i in range(130)])
    spec = group_spec(sm, name)

    asked_before = asked_ids(emulator)
    read = read_online(spark, spec, store, aws_settings, ids_per_partition=40)
    assert (read.id_source, read.id_source_reason) == (IDS_FROM_SCAN,
                                                       "online-only source (InMemory)")
    assert read.df.schema["tags"].dataType == ArrayType(StringType())
    got = rows_by_id(read.df)
    truth = online_truth(fsr, spec, [f"m{i:03d}" for i in range(130)])
    assert read.ids_considered == len(got) == 130
    assert {k: {c: v for c, v in row.items() if c != TTL_SECONDS} for k, row in got.items()} \
        == truth
    assert got["m003"]["tags"] == ["a", "", "x, y", "t3"] and got["m005"]["tags"] == []
    assert {row[TTL_SECONDS] for row in got.values()} == {30 * 86400}
    assert got["m000"]["score"] is None and got["m001"]["score"] == "0.10"
    view = typed_view(read.df, spec)
    assert view.schema["tags"].dataType == ArrayType(StringType())
    assert view.where("ts >= 0 AND size(tags) = 4").count() == 32
    # materialised once: collecting and filtering again don't call BatchGetRecord again
    assert asked_ids(emulator) - asked_before == 130


# ---- emulator: faults -------------------------------------------------------------------------


def make_plain_group(sm, fsr, prefix: str, count: int, offline: bool = False) -> GroupSpec:
    name = unique(prefix)
    create_group(sm, name, [("id", "Integral"), ("et", "String"), ("v", "String")],
                 offline=offline, record_id="id", event_time="et", s3_uri="s3://online-tests/fs")
    put_records(fsr, name, [fv(id=str(i), et=OLD, v=f"v{i}") for i in range(count)])
    return group_spec(sm, name)


def test_throttling_and_unprocessed_ids_still_return_every_record(spark, emulator, clients,
                                                                   settings, faults):
    sm, fsr = clients
    aws_settings, store = settings
    spec = make_plain_group(sm, fsr, "online-throttle", 700)
    before = emulator.stats()["throttled"]
    faults(throttle_tps=8, unprocessed_get_rate=0.2, seed=11)
    read = read_online(spark, spec, store, aws_settings, id_source="scan",
                       ids_per_partition=350, max_workers=4)
    got = rows_by_id(read.df)
    faults()
    assert emulator.stats()["throttled"] > before
    assert read.ids_considered == len(got) == read.records == 700
    assert got["699"] == {"id": "699", "et": OLD, "v": "v699", EXPIRES_AT: None,
                          TTL_SECONDS: None}


def test_group_gone_after_planning_aborts_the_read(spark, emulator, clients, settings):
    sm, fsr = clients
    aws_settings, store = settings
    spec = make_plain_group(sm, fsr, "online-gone", 30, offline=True)
    emulator.flush()
    sm.delete_feature_group(FeatureGroupName=spec.name)  # offline files stay behind
    with pytest.raises(Aborted, match="ResourceNotFound"):  # BatchGetRecord, on an executor
        read_online(spark, spec, store, aws_settings)
    with pytest.raises(Aborted, match="ListRecords .* ResourceNotFound"):  # on the driver
        read_online(spark, spec, store, aws_settings, id_source="scan")
