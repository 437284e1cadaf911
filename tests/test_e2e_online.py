"""End to end: the real `spark-submit job/migrate.py` against the emulator, with ONLINE sources
(the source online store is the truth), online-only and offline-only targets, TTL carried
over, and --clear-target. Expected states are read back from the emulator with boto3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jobtools import (
    create_group,
    expected_latest,
    fv,
    list_online_ids,
    mismatches,
    offline_dir,
    offline_rows,
    online_state,
    op_total,
    output,
    plan_of,
    report_of,
    spark_submit,
    write_conf,
)
from seed_data import SeedSpec, feature_definitions, feature_types, seed

SOURCE = "e2e-online-src"
SPEC = SeedSpec(group=SOURCE, records=800, versions=3, stores="both", seed=23)
TYPES = dict(feature_types(SPEC))
UPDATE_TIME = "2024-06-01T00:00:00.5Z"  # after every seeded event (they span 2024-01-01..04)
DELETE_TIME = "2024-06-02T00:00:00Z"


# ---- helpers -----------------------------------------------------------------------------------

def runtime_errors(emulator) -> dict[str, int]:
    out: dict[str, int] = {}
    for op, entry in emulator.stats()["operations"].items():
        for code, n in entry.get("errors", {}).items():
            out[f"{op}:{code}"] = n
    return out


def migrate(emulator, conf, source: str, target: str, *extra: str):
    return spark_submit(["--conf", str(conf), "--source", source, "--target", target, *extra])


# ---- the Online+Offline source, changed online after seeding -------------------------------

@pytest.fixture(scope="module")
def both_source(emulator, boto_session):
    """Seeded Online+Offline source, then: online-only updates (some of deleted records),
    HardDeletes and SoftDeletes. Returns (the source's online state, ids in its offline store,
    what was done)."""
    fsr = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                              endpoint_url=emulator.url)
    summary = seed(SPEC, endpoint_url=emulator.url, local_root=emulator.data_dir, replace=True)
    all_ids = sorted(f"r{i:07d}" for i in range(SPEC.records))
    live = sorted(expected_latest(offline_rows(summary.data_dir)))
    dead = sorted(set(all_ids) - set(live))
    updated, hard, soft, revived = live[0:60:2], live[1:60:3], live[200:230], dead[:5]
    hard = [rid for rid in hard if rid not in updated]
    for rid in updated:  # a partial record: whole-record overwrite, online only
        fsr.put_record(FeatureGroupName=SOURCE, TargetStores=["OnlineStore"], Record=fv(
            record_id=rid, event_time=UPDATE_TIME, age="77", country="ZZ",
            avg_order_value="1.50", segment="online-only"))
    for rid in revived:  # deleted in the offline store, alive online: online wins
        fsr.put_record(FeatureGroupName=SOURCE, TargetStores=["OnlineStore"], Record=fv(
            record_id=rid, event_time=UPDATE_TIME, age="30", plan="pro", latitude="-0.000010"))
    for rids, mode in ((hard, "HardDelete"), (soft, "SoftDelete")):
        for rid in rids:
            fsr.delete_record(FeatureGroupName=SOURCE, RecordIdentifierValueAsString=rid,
                              EventTime=DELETE_TIME, DeletionMode=mode)
    emulator.flush()
    truth = online_state(fsr, SOURCE)
    # The changes took effect at the source (guards the test's own premises).
    assert not (set(hard) | set(soft)) & truth.keys()
    assert truth[updated[0]]["segment"] == "online-only" and "device" not in truth[updated[0]]
    assert set(revived) <= truth.keys()
    assert len(truth) == len(live) - len(hard) - len(soft) + len(revived)
    return truth, all_ids, {"updated": updated, "hard": hard, "soft": soft, "revived": revived}


def test_online_and_offline_source_online_store_is_the_truth(both_source, emulator, sm, fsr,
                                                           tmp_path):
    truth, all_ids, changes = both_source
    target = "e2e-online-both"
    create_group(sm, target, feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    done = migrate(emulator, conf, SOURCE, target, "--run-id", "online-both")
    assert done.returncode == 0, output(done)[-3000:]
    got = online_state(fsr, target)
    assert got.keys() == truth.keys()
    assert got == truth  # the same features, the same strings
    assert got[changes["revived"][0]]["latitude"] == "-0.000010"  # text sent verbatim
    report = report_of(emulator, "online-both")
    assert report["records"] == len(all_ids)  # every id of the offline store was asked for
    assert report["selected"] == report["written"] == len(truth)
    assert report["deleted_skipped"] == len(all_ids) - len(truth)
    assert report["failed"] == 0 and report["exit_code"] == 0
    plan = plan_of(emulator, "online-both")
    assert plan["id_source"] == "offline store + ListRecords"
    assert plan["strategy"] == "online store current values"


def test_online_only_in_memory_source_with_lists(emulator, sm, fsr, tmp_path):
    source, target = "e2e-mem-src", "e2e-mem-tgt"
    definitions = [
        {"FeatureName": "record_id", "FeatureType": "String"},
        {"FeatureName": "event_time", "FeatureType": "String"},
        {"FeatureName": "tags", "FeatureType": "String", "CollectionType": "List"},
        {"FeatureName": "amount", "FeatureType": "Fractional"},
        {"FeatureName": "visits", "FeatureType": "Integral"},
    ]
    for name in (source, target):
        create_group(sm, name, definitions, offline=False, storage="InMemory")
    shapes = [[], ["solo"], ["b", "a", "b"], ["x,y", "naïve", 'say "hi"', "[1, 2]"],
              [str(i) for i in range(40)], None]
    records = []
    for i in range(260):
        records.append(fv(record_id=f"m{i:04d}", event_time=f"2024-05-01T00:{i % 60:02d}:00Z",
                          tags=shapes[i % len(shapes)],
                          amount=None if i % 7 == 0 else f"{i}.{i % 10}0",
                          visits=str(i * 3 - 100)))
    for start in range(0, len(records), 25):
        resp = fsr.batch_write_record(Entries=[
            {"FeatureGroupName": source, "Record": r} for r in records[start:start + 25]])
        assert not resp["Errors"] and not resp["UnprocessedEntries"]
    truth = online_state(fsr, source)
    assert len(truth) == 260 and truth["m0003"]["tags"] == shapes[3]

    conf = write_conf(tmp_path / "c.yaml", emulator)
    done = migrate(emulator, conf, source, target, "--run-id", "online-mem")
    assert done.returncode == 0, output(done)[-3000:]
    assert plan_of(emulator, "online-mem")["id_source"] == "ListRecords"
    got = online_state(fsr, target)
    assert got == truth
    for i, shape in enumerate(shapes):
        rid = f"m{i:04d}"
        assert got[rid].get("tags") == shape, rid  # lists intact: order, duplicates, empty
    report = report_of(emulator, "online-mem")
    assert report["records"] == report["selected"] == report["written"] == 260


def test_ttl_is_carried_over(emulator, sm, fsr, tmp_path):
    source, target = "e2e-ttl-src", "e2e-ttl-tgt"
    definitions = [
        {"FeatureName": "record_id", "FeatureType": "String"},
        {"FeatureName": "event_time", "FeatureType": "String"},
        {"FeatureName": "v", "FeatureType": "Integral"},
    ]
    create_group(sm, source, definitions, ttl={"Unit": "Days", "Value": 1})
    create_group(sm, target, definitions, ttl={"Unit": "Days", "Value": 3})  # another default
    now = datetime.now(UTC).replace(microsecond=0)

    def iso(moment: datetime, fraction: str = "") -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"

    fractions = ("", ".5", ".123", ".123456789")
    per_record = [{"Unit": "Hours", "Value": 2}, {"Unit": "Minutes", "Value": 90},
                  {"Unit": "Weeks", "Value": 1}, {"Unit": "Seconds", "Value": 7201},
                  {"Unit": "Days", "Value": 3}]
    for i in range(20):  # the group's default TTL
        fsr.put_record(FeatureGroupName=source, Record=fv(
            record_id=f"t{i:02d}", event_time=iso(now - timedelta(minutes=i), fractions[i % 4]),
            v=str(i)))
    for i, ttl in enumerate(per_record, start=20):
        fsr.put_record(FeatureGroupName=source, TtlDuration=ttl, Record=fv(
            record_id=f"t{i:02d}", event_time=iso(now - timedelta(minutes=i), fractions[i % 4]),
            v=str(i)))
    fsr.put_record(FeatureGroupName=source, TtlDuration={"Unit": "Seconds", "Value": 5},
                   Record=fv(record_id="t99-expired", event_time=iso(now - timedelta(hours=1)),
                             v="99"))
    emulator.flush()
    source_ids = sorted(list_online_ids(fsr, source))
    assert len(source_ids) == 25 and "t99-expired" not in source_ids

    conf = write_conf(tmp_path / "c.yaml", emulator)
    done = migrate(emulator, conf, source, target, "--run-id", "online-ttl")
    assert done.returncode == 0, output(done)[-3000:]
    assert online_state(fsr, target) == online_state(fsr, source)
    differ = {}
    for rid in source_ids:
        want = fsr.get_record(FeatureGroupName=source, RecordIdentifierValueAsString=rid,
                              ExpirationTimeResponse="Enabled")["ExpiresAt"]
        got = fsr.get_record(FeatureGroupName=target, RecordIdentifierValueAsString=rid,
                             ExpirationTimeResponse="Enabled").get("ExpiresAt")
        # ExpiresAt - EventTime is a whole number of seconds at the source, so the TTL the job
        # derives (rounded up to whole seconds, sources/online.py) reproduces it exactly.
        if got != want:
            differ[rid] = (want, got)
    assert differ == {}
    expired = fsr.get_record(FeatureGroupName=target, RecordIdentifierValueAsString="t99-expired")
    assert "Record" not in expired
    report = report_of(emulator, "online-ttl")
    assert report["records"] == 26 and report["selected"] == report["written"] == 25
    # The emulator (like AWS once the record is hard-deleted) never returns an expired record,
    # so the job can't tell it from a deleted one: it is skipped either way.
    assert report["expired_skipped"] + report["deleted_skipped"] == 1


def test_offline_only_target(both_source, emulator, sm, fsr, tmp_path):
    truth, _, _ = both_source
    target = "e2e-online-to-offline"
    create_group(sm, target, feature_definitions(SPEC), online=False)
    conf = write_conf(tmp_path / "c.yaml", emulator)
    errors_before = runtime_errors(emulator)
    done = migrate(emulator, conf, SOURCE, target, "--run-id", "online-offline-only")
    assert done.returncode == 0, output(done)[-3000:]
    assert runtime_errors(emulator) == errors_before  # no call (online or other) failed
    report = report_of(emulator, "online-offline-only")
    assert report["written"] == len(truth) and report["failed"] == 0
    assert plan_of(emulator, "online-offline-only")["target_stores"] == ["OfflineStore"]
    emulator.flush()
    rows = offline_rows(offline_dir(emulator, sm, target))
    assert len(rows) == len(truth)  # every record once
    assert not any(r["is_deleted"] for r in rows)
    assert mismatches(truth, {r["record_id"]: r for r in rows}, TYPES) == []


def test_clear_target(both_source, emulator, sm, fsr, tmp_path):
    truth, _, _ = both_source
    target = "e2e-clear-tgt"
    create_group(sm, target, feature_definitions(SPEC))
    stale = sorted(truth)[:20]
    for i in range(30):  # records the source doesn't have
        fsr.put_record(FeatureGroupName=target, Record=fv(
            record_id=f"zz-old-{i:02d}", event_time="2023-01-01T00:00:00Z", age="1"))
    for i, rid in enumerate(stale):  # the source's ids, other values; 5 future-dated
        when = "2030-01-01T00:00:00Z" if i < 5 else "2023-06-01T00:00:00Z"
        fsr.put_record(FeatureGroupName=target, Record=fv(
            record_id=rid, event_time=when, age="2", country="XX"))
    emulator.flush()
    old_files = sorted(offline_dir(emulator, sm, target).rglob("*.parquet"))
    assert old_files
    before = online_state(fsr, target)
    assert len(before) == 50
    conf = write_conf(tmp_path / "c.yaml", emulator)

    # (a) no --yes, no terminal: refused, nothing deleted
    done = migrate(emulator, conf, SOURCE, target, "--clear-target", "--run-id", "clear-no")
    assert done.returncode == 2, output(done)[-3000:]
    assert "confirm with --yes" in output(done)
    assert online_state(fsr, target) == before
    assert all(f.exists() for f in old_files)

    # (c) --dry-run: says what it would delete, deletes (and writes) nothing
    deletes = op_total(emulator, ("DeleteRecord",))
    writes = op_total(emulator, ("BatchWriteRecord",))
    done = migrate(emulator, conf, SOURCE, target, "--clear-target", "--dry-run",
                   "--run-id", "clear-dry")
    assert done.returncode == 0, output(done)[-3000:]
    assert (f"first deletes 50 online records and {len(old_files)} offline objects"
            in done.stdout)
    clear_plan = plan_of(emulator, "clear-dry")["clear_target"]
    assert (clear_plan["online_records"], clear_plan["offline_objects"]) == (50, len(old_files))
    assert op_total(emulator, ("DeleteRecord",)) == deletes
    assert op_total(emulator, ("BatchWriteRecord",)) == writes
    assert online_state(fsr, target) == before
    assert all(f.exists() for f in old_files)

    # (b) --yes: the target ends up holding exactly the migrated state
    done = migrate(emulator, conf, SOURCE, target, "--clear-target", "--yes",
                   "--run-id", "clear-yes")
    assert done.returncode == 0, output(done)[-3000:]
    assert f"cleared {target}: 50 online records, {len(old_files)} offline objects" in done.stdout
    got = online_state(fsr, target)
    assert not {rid for rid in got if rid.startswith("zz-old")}
    assert got == truth
    assert not [f for f in old_files if f.exists()]
    emulator.flush()
    rows = offline_rows(offline_dir(emulator, sm, target))
    assert sorted(r["record_id"] for r in rows) == sorted(truth)
    assert mismatches(truth, {r["record_id"]: r for r in rows}, TYPES) == []

    # (d) target == source: refused before anything happens
    source_before = list_online_ids(fsr, SOURCE)
    done = migrate(emulator, conf, SOURCE, SOURCE, "--clear-target", "--yes")
    assert done.returncode == 2, output(done)[-3000:]
    assert "same feature group" in output(done)
    assert list_online_ids(fsr, SOURCE) == source_before
