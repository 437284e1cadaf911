"""Reading a source offline store straight from its Parquet files (real files, real Spark)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsmigrate.errors import BadInput
from fsmigrate.groups import Feature, GroupSpec
from fsmigrate.sources.offline import footer_stats, read_offline
from fsmigrate.storage import Store

URI = "s3://bucket/prefix/123456789012/sagemaker/us-east-1/offline-store/g-1700000000/data"


def spec(*extra: Feature, table_format: str = "Glue") -> GroupSpec:
    features = (Feature("id", "String"), Feature("t", "String"), Feature("n", "Integral"),
                *extra)
    return GroupSpec("g", "id", "t", features, online=False, offline=True, offline_uri=URI,
                     table_format=table_format)


def write_file(root, hour: int, rows: list[dict], schema: pa.Schema) -> None:
    data = root / "bucket" / URI.split("bucket/", 1)[1]
    folder = data / f"year=2024/month=01/day=01/hour={hour:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema),
                   folder / f"20240101T{hour:02d}0000Z_abcdefghijklmnop.parquet")


META = [("write_time", pa.timestamp("us", tz="UTC")),
        ("api_invocation_time", pa.timestamp("us", tz="UTC")), ("is_deleted", pa.bool_())]
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def row(i: int, **extra) -> dict:
    return {"id": f"r{i}", "t": "2024-01-01T00:00:00Z", "n": i, "write_time": WHEN,
            "api_invocation_time": WHEN, "is_deleted": False, **extra}


def test_reads_the_layout_drops_partitions_and_fills_features_added_later(spark, tmp_path):
    old = pa.schema([("id", pa.string()), ("t", pa.string()), ("n", pa.int64()), *META])
    new = pa.schema([*old, ("added", pa.float64())])
    write_file(tmp_path, 0, [row(1), row(2)], old)
    write_file(tmp_path, 1, [row(3, added=1.5)], new)
    df = read_offline(spark, spec(Feature("added", "Fractional")), Store(local_root=str(tmp_path)))
    assert df.columns == ["id", "t", "n", "added", "write_time", "api_invocation_time",
                          "is_deleted"]
    got = {r["id"]: (r["n"], r["added"]) for r in df.collect()}
    assert got == {"r1": (1, None), "r2": (2, None), "r3": (3, 1.5)}
    stats = footer_stats(df, Store(local_root=str(tmp_path)))
    assert (stats.files, stats.rows) == (2, 3) and stats.bytes > 0


def test_no_files_yet_reads_as_none(spark, tmp_path):
    assert read_offline(spark, spec(), Store(local_root=str(tmp_path))) is None


def test_iceberg_source_is_refused(spark, tmp_path):
    with pytest.raises(BadInput, match="Iceberg table format"):
        read_offline(spark, spec(table_format="Iceberg"), Store(local_root=str(tmp_path)))


def test_features_named_like_partition_folders_keep_their_own_values(spark, tmp_path):
    # Features `year`, `Month`, `DAY`, `hour` are legal; the files also sit in year=/month=/
    # day=/hour= folders, whose values must not replace the features' own.
    extra = (Feature("year", "Integral"), Feature("Month", "String"), Feature("DAY", "Fractional"),
             Feature("hour", "String"))
    schema = pa.schema([("id", pa.string()), ("t", pa.string()), ("n", pa.int64()),
                        ("year", pa.int64()), ("Month", pa.string()), ("DAY", pa.float64()),
                        ("hour", pa.string()), *META])
    write_file(tmp_path, 5, [row(1, year=1999, Month="june", DAY=3.5, hour=None)], schema)
    df = read_offline(spark, spec(*extra), Store(local_root=str(tmp_path)))
    assert [(r["year"], r["Month"], r["DAY"], r["hour"]) for r in df.collect()] == [
        (1999, "june", 3.5, None)]
