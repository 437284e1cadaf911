"""End to end with AWS's offline delivery delay: an emulator of its own that keeps every row
out of the source's offline store for 10 minutes (AWS: ~15), so records written through the
API just before a migration are only in the online store. The real `spark-submit
job/migrate.py`, default settings, must still find them (ListRecords) and migrate them all;
a re-run changes nothing, since an equal event time is historic online."""

from __future__ import annotations

import pytest
from jobtools import (
    create_group,
    fv,
    offline_dir,
    offline_rows,
    online_state,
    output,
    plan_of,
    put_records,
    report_of,
    spark_submit,
    write_conf,
)

SOURCE, TARGET = "e2e-delayed-src", "e2e-delayed-tgt"
DEFINITIONS = [
    {"FeatureName": "record_id", "FeatureType": "String"},
    {"FeatureName": "event_time", "FeatureType": "String"},
    {"FeatureName": "visits", "FeatureType": "Integral"},
    {"FeatureName": "amount", "FeatureType": "Fractional"},
    {"FeatureName": "plan", "FeatureType": "String"},
    {"FeatureName": "note", "FeatureType": "String"},
]
RECORDS = 200


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    """An emulator whose offline delivery takes longer than this module runs."""
    import emulator_process

    emu = emulator_process.start(tmp_path_factory.mktemp("delayed-data"),
                                 extra_args=("--offline-delay-seconds", "600"))
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def clients(delayed, boto_session):
    def client(service):
        return boto_session.client(service, region_name="us-east-1", endpoint_url=delayed.url)

    return client("sagemaker"), client("sagemaker-featurestore-runtime")


def offline_files(emulator, sm, group: str) -> list:
    folder = offline_dir(emulator, sm, group)
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def record(i: int, second: int, plan: str) -> list[dict]:
    return fv(record_id=f"d{i:04d}", event_time=f"2024-05-01T00:{second // 60:02d}:"
              f"{second % 60:02d}{'.5' if i % 3 == 0 else ''}Z",
              visits=str(i * 7 - 300), amount=None if i % 9 == 0 else f"{i}.25",
              plan=plan, note=f'naïve, "{i}"' if i % 4 else None)


def test_records_not_yet_delivered_offline_are_migrated(delayed, clients, tmp_path):
    sm, fsr = clients
    for name in (SOURCE, TARGET):
        create_group(sm, name, DEFINITIONS)
    # 150 through BatchWriteRecord (both stores), 30 PutRecord online only, 20 PutRecord to
    # both; then 40 of them updated online only with a later event time.
    put_records(fsr, SOURCE, [record(i, i, "basic") for i in range(150)])
    for i in range(150, RECORDS):
        fsr.put_record(FeatureGroupName=SOURCE, Record=record(i, i, "basic"),
                       **({"TargetStores": ["OnlineStore"]} if i < 180 else {}))
    updated = list(range(0, RECORDS, 5))
    for i in updated:
        fsr.put_record(FeatureGroupName=SOURCE, TargetStores=["OnlineStore"],
                       Record=record(i, 600 + i, "updated"))
    truth = online_state(fsr, SOURCE)
    assert len(truth) == RECORDS and truth["d0005"]["plan"] == "updated"
    # Control: the delay is really on, nothing reached the source's offline store.
    assert offline_files(delayed, sm, SOURCE) == []

    conf = write_conf(tmp_path / "c.yaml", delayed)
    args = ["--conf", str(conf), "--source", SOURCE, "--target", TARGET]
    done = spark_submit([*args, "--run-id", "delayed-1"])
    assert done.returncode == 0, output(done)[-3000:]
    assert online_state(fsr, TARGET) == truth  # same ids, features and strings
    # The default id source is the offline store + ListRecords; with no offline files yet the
    # job lists ids with ListRecords alone, and says why.
    plan = plan_of(delayed, "delayed-1")
    assert plan["id_source"] == "ListRecords"
    assert plan["id_source_reason"] == "ListRecords (the source offline store holds no files yet)"
    assert plan["strategy"] == "online store current values"
    report = report_of(delayed, "delayed-1")
    assert report["records"] == report["written"] == RECORDS
    assert report["failed"] == 0 and report["exit_code"] == 0

    # The same migration again: every record arrives with the event time the target already
    # holds, which AWS treats as historic (online record kept; offline row appended).
    done = spark_submit([*args, "--run-id", "delayed-2"])
    assert done.returncode == 0, output(done)[-3000:]
    after = online_state(fsr, TARGET)
    assert after == truth
    assert after["d0010"]["plan"] == "updated" and after["d0011"]["plan"] == "basic"
    report = report_of(delayed, "delayed-2")
    # The verify sample (default sample:1000, so all 200) reads back the same event time and the
    # same values: that is "matched", not "target_kept_newer" (which needs a newer event time,
    # or an equal one with other values), so the report counts every record as written.
    assert report["verify"]["matched"] == RECORDS
    assert report["written"] == RECORDS and report["target_kept_newer"] == 0
    assert report["failed"] == 0 and report["exit_code"] == 0
    assert offline_files(delayed, sm, SOURCE) == []  # still undelivered after both runs

    # Both runs really wrote every record: delivered now, the target's offline store holds two
    # rows per record (the second run's historic rows go there only), both the source's values.
    delayed.flush()
    rows = offline_rows(offline_dir(delayed, sm, TARGET))
    assert sorted(r["record_id"] for r in rows) == sorted([*truth, *truth])
    assert {(r["record_id"], r["plan"], r["visits"]) for r in rows} == {
        (rid, values["plan"], int(values["visits"])) for rid, values in truth.items()}
