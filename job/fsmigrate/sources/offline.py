"""Read a source offline store (Glue table format) straight from its Parquet files."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from ..errors import BadInput
from ..groups import GroupSpec
from ..storage import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineFiles:
    files: int
    rows: int  # exact: summed from the Parquet footers
    bytes: int


def data_uri(spec: GroupSpec) -> str:
    if not spec.offline or not spec.offline_uri:
        raise BadInput(f"feature group {spec.name} has no offline store to read")
    if spec.is_iceberg:
        raise BadInput(f"feature group {spec.name} uses the Iceberg table format, which this job "
                       "does not read yet: migrate from a Glue-format offline store")
    return spec.offline_uri


def offline_schema(spec: GroupSpec) -> StructType:
    """The offline store's columns as the group defines them. Reading with it skips Spark's
    schema inference pass, and files written before a feature was added read it as null."""
    spark_types = {"Integral": LongType(), "Fractional": DoubleType(), "String": StringType()}
    fields = [StructField(f.name, spark_types[f.type]) for f in spec.features]
    fields += [StructField("write_time", TimestampType()),
               StructField("api_invocation_time", TimestampType()),
               StructField("is_deleted", BooleanType())]
    return StructType(fields)


def read_offline(spark: SparkSession, spec: GroupSpec, store: Store) -> DataFrame | None:
    """The offline store's rows (no partition columns); None when it holds no files.

    recursiveFileLookup turns Spark's partition discovery off: the year=/month=/day=/hour=
    folders never become columns, so a feature named `year`, `Month`, `day` or `HOUR` (legal
    in the API) keeps its own value instead of being replaced by the folder's.
    """
    path = store.spark_path(data_uri(spec))
    schema = offline_schema(spec)
    try:
        df = spark.read.schema(schema).option("recursiveFileLookup", "true").parquet(path)
    except Exception as exc:  # Spark raises AnalysisException for a missing path
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            log.warning("offline store of %s has no files yet at %s", spec.name, path)
            return None
        raise
    return df.select(*schema.fieldNames())


def footer_stats(df: DataFrame, store: Store) -> OfflineFiles:
    """Row count from Parquet footers (no scan of the data), file count and bytes."""
    import pyarrow.parquet as pq

    files = df.inputFiles()
    filesystem = _arrow_filesystem(store, files)

    def rows_and_bytes(uri: str) -> tuple[int, int]:
        path = uri.removeprefix("file:")
        if filesystem is not None:
            path = path.split("://", 1)[-1]
        with (filesystem.open_input_file(path) if filesystem else open(path, "rb")) as fh:
            meta = pq.ParquetFile(fh).metadata
            size = fh.size() if filesystem else fh.seek(0, 2)
        return meta.num_rows, size

    with ThreadPoolExecutor(max_workers=16) as pool:
        stats = list(pool.map(rows_and_bytes, files))
    return OfflineFiles(len(files), sum(r for r, _ in stats), sum(b for _, b in stats))


def _arrow_filesystem(store: Store, files: list[str]):
    if not any(f.startswith(("s3://", "s3a://", "s3n://")) for f in files):
        return None
    from pyarrow import fs

    kwargs = {"region": store.aws.region}
    if store.aws.s3_endpoint_url:
        kwargs["endpoint_override"] = store.aws.s3_endpoint_url
    else:
        # the source's offline bucket may be in another region than the job (aws.source.region)
        bucket = files[0].split("://", 1)[1].split("/", 1)[0]
        try:
            kwargs["region"] = fs.resolve_s3_region(bucket)
        except OSError:  # not allowed to ask: the job's region, as before
            pass
    return fs.S3FileSystem(**kwargs)
