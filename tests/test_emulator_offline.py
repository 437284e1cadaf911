"""The offline store (feature_store_emulator/offline.py, offline_layout.py): the Glue layout,
types and delete markers, read back with Spark."""

from __future__ import annotations

import glob
import os
from datetime import UTC, datetime

from emulator_helpers import FILE_RE, emulator_group, read_offline
from jobtools import fv, offline_dir


def test_delete_markers_in_offline_files(sm, fsr, spark, emulator):
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=fv(
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


def test_spark_reads_offline_store(sm, fsr, spark, emulator):
    features = [{"FeatureName": "id", "FeatureType": "Integral"},
                {"FeatureName": "ts", "FeatureType": "Fractional"},
                {"FeatureName": "amount", "FeatureType": "Fractional"},
                {"FeatureName": "label", "FeatureType": "String"}]
    name = emulator_group(sm, features=features, event_time="ts")
    t1 = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()
    t2 = datetime(2024, 3, 1, 5, 0, 0, tzinfo=UTC).timestamp()
    fsr.batch_write_record(Entries=[
        {"FeatureGroupName": name, "Record": fv(id="1", ts=str(t1), amount="1.25")},
        {"FeatureGroupName": name, "Record": fv(id="2", ts=str(t2), label="b")}])
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


def test_layout_writer_partitions_by_event_hour(tmp_path):
    """offline_layout.write_table directly (the emulator's flush and seed_data.py share it)."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq
    from feature_store_emulator import offline_layout

    hour = 3600 * 10**9
    # two rows before 1970 (a negative instant floors into the previous hour), five in one hour
    event_ns = [-1, -hour, 5, hour - 1, 7, 3, 2]
    write_us = [9, 8, 7, 6, 5, 1, 1]  # within an hour, files keep write_time order (stable)
    schema = offline_layout.schema([("id", "String"), ("t", "Fractional")])
    table = pa.Table.from_arrays([
        pa.array([str(i) for i in range(7)]), pa.array([ns / 1e9 for ns in event_ns]),
        pa.array(write_us, pa.int64()).view(offline_layout.TIMESTAMP),
        pa.array(write_us, pa.int64()).view(offline_layout.TIMESTAMP),
        pa.array([False] * 7)], schema=schema)
    paths = offline_layout.write_table(table, pa.array(event_ns), tmp_path / "data",
                                       random.Random(1), rows_per_file=2)
    layout = [p.relative_to(tmp_path / "data").as_posix().rsplit("_", 1)[0] for p in paths]
    assert layout == ["year=1969/month=12/day=31/hour=23/19691231T235959Z",
                      "year=1970/month=01/day=01/hour=00/19700101T000000Z",
                      "year=1970/month=01/day=01/hour=00/19700101T000000Z",
                      "year=1970/month=01/day=01/hour=00/19700101T005959Z"]
    # 5 rows in hour 0 with at most 2 per file: 3 files of about equal size
    assert [pq.read_table(p).column("id").to_pylist() for p in paths] == [
        ["1", "0"], ["5"], ["6", "4"], ["3", "2"]]
    assert all(FILE_RE.fullmatch(p.name) for p in paths)
    assert not list((tmp_path / "data").rglob(".*"))  # no temporary files left
    again = offline_layout.write_table(table, pa.array(event_ns), tmp_path / "again",
                                       random.Random(1), rows_per_file=2)
    assert [p.name for p in again] == [p.name for p in paths]  # a seeded rng: same names
