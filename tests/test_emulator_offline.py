"""The offline store (feature_store_emulator/offline.py, offline_layout.py): the Glue layout,
types and delete markers, read back with Spark."""

from __future__ import annotations

import glob
import os
from datetime import UTC, datetime

from emulator_helpers import (
    FILE_RE,
    create_group,
    offline_dir,
    read_offline,
    rec,
)


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
