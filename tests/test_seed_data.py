"""scripts/seed_data.py against the local emulator: layout, schema, semantics, online state."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jobtools import (
    expected_latest,
    instant,
    latest_rows,
    list_online_ids,
    offline_rows,
    read_online,
    unique,
)
from seed_data import (
    FEATURE_NAMES,
    VALUE_FEATURES,
    SeedError,
    SeedSpec,
    generate,
    main,
    seed,
)

FILE_RE = re.compile(
    r"year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})/(\d{8}T\d{6}Z)_[A-Za-z0-9]{16}\.parquet"
)
ISO_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z")
TYPES = {"Integral": "bigint", "Fractional": "double", "String": "string"}

# more ties/traps/deletes than the defaults, so a few hundred records surely hold each case
SPEC = dict(records=300, versions=3, delete_fraction=0.08, rewrite_fraction=0.06,
            tie_api_fraction=0.1, tie_write_fraction=0.1, order_trap_fraction=0.1, seed=11)


@pytest.fixture(scope="module")
def seeded(emulator, tmp_path_factory):
    root = tmp_path_factory.mktemp("seed-root")
    spec = SeedSpec(group=unique("seed-both"), stores="both", **SPEC)
    summary = seed(spec, endpoint_url=emulator.url, local_root=root)
    return spec, summary, root, offline_rows(Path(summary.data_dir))


def test_offline_files_use_the_offline_store_layout(seeded):
    spec, summary, root, _rows = seeded
    resolved = summary.resolved_output_s3_uri
    assert re.fullmatch(rf"s3://local-feature-store/offline/\d{{12}}/sagemaker/us-east-1/"
                        rf"offline-store/{spec.group}-\d+/data", resolved)
    data_dir = Path(summary.data_dir)
    assert data_dir == root / resolved[len("s3://"):]
    files = sorted(data_dir.rglob("*"))
    parquet = [f for f in files if f.is_file()]
    assert len(parquet) == summary.files > 24  # many hour partitions over the 3 days
    assert not [f for f in parquet if f.name.startswith(".")]  # no temporary files left
    for f in parquet:
        m = FILE_RE.fullmatch(f.relative_to(data_dir).as_posix())
        assert m, f
        table = pq.read_table(f)
        events = table.column("event_time").to_pylist()
        assert all(ISO_RE.fullmatch(v) for v in events), events
        instants = [instant(v) for v in events]
        hours = {datetime.fromtimestamp(s, UTC).strftime("%Y%m%d%H") for s, _ in instants}
        assert hours == {"".join(m.groups()[:4])}  # rows sit in their event-time hour
        latest = datetime.fromtimestamp(max(instants)[0], UTC)
        assert m.group(5) == latest.strftime("%Y%m%dT%H%M%SZ")


def test_spark_reads_schema_partitions_and_count(seeded, spark):
    _spec, summary, _root, rows = seeded
    df = spark.read.parquet(summary.data_dir)
    types = dict(df.dtypes)
    expected = {"record_id": "string", "event_time": "string"}
    expected.update({name: TYPES[ftype] for name, ftype, _ in VALUE_FEATURES})
    expected.update(write_time="timestamp", api_invocation_time="timestamp",
                    is_deleted="boolean", year="int", month="int", day="int", hour="int")
    assert types == expected
    assert df.columns[:22] == list(FEATURE_NAMES)
    assert df.columns[22:] == ["write_time", "api_invocation_time", "is_deleted",
                               "year", "month", "day", "hour"]
    total, markers = df.selectExpr("count(*)", "count_if(is_deleted)").first()  # one job
    assert total == summary.rows_offline == len(rows) == summary.rows
    assert markers == summary.delete_markers > 0


def test_rows_hold_markers_ties_traps_and_mixed_digits(seeded):
    _spec, summary, _root, rows = seeded
    markers = [r for r in rows if r["is_deleted"]]
    assert markers
    for r in markers:
        assert all(r[name] is None for name, _, _ in VALUE_FEATURES)
        assert r["record_id"] and r["event_time"]
    assert all(r["write_time"] > r["api_invocation_time"] for r in rows)

    digits = {len(ISO_RE.fullmatch(r["event_time"]).group(2) or "") for r in rows}
    assert digits == {0, 3, 9}

    by_record: dict[str, list[dict]] = {}
    for r in rows:
        by_record.setdefault(r["record_id"], []).append(r)
    assert len(by_record) == summary.records == 300
    assert 1 <= min(map(len, by_record.values())) and max(map(len, by_record.values())) <= 4

    api_ties = write_ties = traps = 0
    for versions in by_record.values():
        for i, a in enumerate(versions):
            for b in versions[i + 1:]:
                if a["event_time"] == b["event_time"]:
                    if a["api_invocation_time"] != b["api_invocation_time"]:
                        api_ties += 1
                    else:
                        assert a["write_time"] != b["write_time"]
                        write_ties += 1
                elif (a["event_time"] < b["event_time"]) != (instant(a["event_time"])
                                                            < instant(b["event_time"])):
                    traps += 1
    assert api_ties >= 5 and write_ties >= 5 and traps >= 5
    assert (api_ties, write_ties, traps) == (summary.tie_api_records,
                                             summary.tie_write_records,
                                             summary.order_trap_records)

    latest = latest_rows(rows)
    deleted = {rid for rid, r in latest.items() if r["is_deleted"]}
    assert len(deleted) == summary.deleted_records > 0
    # deleted, then written again: a marker that is not the latest row of a live record
    revived = {r["record_id"] for r in markers} - deleted
    assert len(revived) == summary.rewritten_records > 0
    for name in ("num_sessions_7d", "churn_score", "plan", "email_domain", "discount_ratio"):
        assert any(r[name] is None for r in rows if not r["is_deleted"]), name


def test_online_store_holds_exactly_the_live_latest_state(seeded, emulator):
    spec, summary, _root, rows = seeded
    fsr = boto3.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                       endpoint_url=emulator.url)
    expected = expected_latest(rows)
    assert summary.online_records == len(expected) == 300 - summary.deleted_records
    assert list_online_ids(fsr, spec.group) == set(expected)

    ids = sorted({r["record_id"] for r in rows})  # every id, deleted ones included
    got = read_online(fsr, spec.group, ids)
    assert set(got) == set(expected)
    types = {name: ftype for name, ftype, _ in VALUE_FEATURES}
    for rid, row in expected.items():
        values = got[rid]
        assert values["event_time"] == row["event_time"]
        for name, ftype in types.items():
            if row[name] is None:
                assert name not in values
            elif ftype == "Fractional":
                assert float(values[name]) == row[name]
            elif ftype == "Integral":
                assert int(values[name]) == row[name]
            else:
                assert values[name] == row[name]

    # online-only writes: the emulator buffered nothing for the offline store
    emulator.flush()
    resolved = summary.resolved_output_s3_uri[len("s3://"):]
    assert not (Path(emulator.data_dir) / resolved).exists()


def test_same_seed_same_rows_and_files_and_replace(emulator, tmp_path):
    spec = SeedSpec(group=unique("seed-det"), stores="offline", records=200, versions=4,
                    seed=5, rows_per_file=15)
    first = seed(spec, endpoint_url=emulator.url, local_root=tmp_path / "a")
    with pytest.raises(SeedError, match="already exists"):
        seed(spec, endpoint_url=emulator.url, local_root=tmp_path / "b")
    second = seed(spec, endpoint_url=emulator.url, local_root=tmp_path / "b", replace=True)
    assert first.online_records == second.online_records == 0
    dirs = [Path(first.data_dir), Path(second.data_dir)]
    listings = [sorted(p.relative_to(d).as_posix() for p in d.rglob("*.parquet")) for d in dirs]
    assert listings[0] == listings[1] and len(listings[0]) == first.files
    assert any(len(list(p.iterdir())) > 1 for p in dirs[0].rglob("hour=*"))  # several files
    for rel in listings[0]:
        assert pq.read_table(dirs[0] / rel).equals(pq.read_table(dirs[1] / rel))
    other = generate(SeedSpec(records=200, versions=4, seed=6))
    assert not other.table.equals(generate(SeedSpec(records=200, versions=4, seed=5)).table)


def test_replace_removes_the_old_data(emulator, tmp_path):
    spec = SeedSpec(group=unique("seed-rep"), stores="offline", records=50, seed=1)
    seed(spec, endpoint_url=emulator.url, local_root=tmp_path)
    again = seed(spec, endpoint_url=emulator.url, local_root=tmp_path, replace=True)
    offline_store = next(tmp_path.rglob("offline-store"))
    assert [p.name for p in offline_store.iterdir()] == [Path(again.data_dir).parent.name]
    assert len(offline_rows(Path(again.data_dir))) == again.rows_offline


def test_cli_online_only_fractional_integral_ttl(emulator, capsys):
    group = unique("seed-cli")
    argv = ["--endpoint-url", emulator.url, "--group", group, "--records", "60",
            "--stores", "online", "--event-time-type", "Fractional", "--id-type", "Integral",
            "--ttl-seconds", str(400 * 86400)]  # with a TTL the span ends at the current hour
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"] == out["rows_offline"] == 0 and out["data_dir"] is None
    assert out["online_records"] == 60 - out["deleted_records"] > 0

    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=emulator.url)
    desc = sm.describe_feature_group(FeatureGroupName=group)
    assert "OfflineStoreConfig" not in desc
    assert desc["OnlineStoreConfig"]["TtlDuration"] == {"Unit": "Seconds", "Value": 400 * 86400}
    defs = {d["FeatureName"]: d["FeatureType"] for d in desc["FeatureDefinitions"]}
    assert [d["FeatureName"] for d in desc["FeatureDefinitions"]] == list(FEATURE_NAMES)
    assert defs["record_id"] == "Integral" and defs["event_time"] == "Fractional"

    fsr = boto3.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                       endpoint_url=emulator.url)
    ids = {int(i) for i in list_online_ids(fsr, group)}
    assert len(ids) == out["online_records"] and ids <= set(range(1, 61))
    rec = fsr.get_record(FeatureGroupName=group,
                         RecordIdentifierValueAsString=str(min(ids)))["Record"]
    event = float(next(f["ValueAsString"] for f in rec if f["FeatureName"] == "event_time"))
    assert time.time() - 4 * 86400 < event < time.time() + 3600

    # the group exists now: a second run fails clearly, exit code 2
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_offline_without_local_root_fails_before_creating(emulator):
    spec = SeedSpec(group=unique("seed-noroot"), stores="both", records=5)
    with pytest.raises(SeedError, match="local_root"):
        seed(spec, endpoint_url=emulator.url)
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=emulator.url)
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_feature_group(FeatureGroupName=spec.group)


def test_fractional_event_times_mix_decimals():
    gen = generate(SeedSpec(records=300, event_time_type="Fractional", id_type="Integral"))
    assert gen.table.schema.field("event_time").type == pa.float64()
    assert gen.table.schema.field("record_id").type == pa.int64()
    decimals = {len(repr(v).split(".")[1].rstrip("0")) if not v.is_integer() else 0
                for v in gen.table.column("event_time").to_pylist()}
    assert 0 in decimals and max(decimals) >= 5 and any(1 <= d <= 3 for d in decimals)
