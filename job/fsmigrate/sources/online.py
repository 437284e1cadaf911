"""Read a source's ONLINE store: the current truth for every record that is still there.

Two steps:

1. **Record ids** (:mod:`.ids`). From the source offline store when it has one (distinct record
   ids of all rows, delete markers included: the online store decides what still exists),
   read in parallel from Parquet; otherwise from a ListRecords scan on the driver (pages of
   100). Caveat of the offline id source: a record written only to the online store
   (``TargetStores=["OnlineStore"]``) under an id the offline store never saw, or written in
   the last ~15 minutes (before the offline store receives it), is not found. Use
   ``id_source="scan"`` when that matters.
2. **Values** (:mod:`.online_fetch`). The ids are hash-partitioned (``ids_per_partition`` ids
   per partition) and every partition calls BatchGetRecord; ids missing from a response are
   not online (deleted or expired) and produce no row.

The result is materialised once (persisted, MEMORY_AND_DISK) so that the counts in
:class:`OnlineRead` are exact and later actions don't call BatchGetRecord again; call
``read.df.unpersist()`` when done with it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from .. import aws
from ..aws import AwsSettings
from ..errors import BadInput
from ..eventtime import now_ns
from ..groups import FRACTIONAL, INTEGRAL, GroupSpec
from ..partitions import Counters, task_share, watching
from ..storage import Store
from . import ID_SOURCES, IDS_FROM_OFFLINE, IDS_FROM_SCAN
from .ids import ID_COLUMN, offline_record_ids, scan_record_ids
from .online_fetch import FetchJob, fetch_partition

log = logging.getLogger(__name__)

# Feature names can't start with "_", so these never collide with a feature.
EXPIRES_AT = "__expires_at"
TTL_SECONDS = "__ttl_seconds"
WIRE = "__wire"
_EXPIRED = "__expired"


@dataclass(frozen=True)
class OnlineRead:
    df: DataFrame  # one row per record present online (not deleted, not expired); persisted
    id_source: str  # "offline store" | "ListRecords"
    id_source_reason: str  # why that id source
    ids_considered: int  # distinct ids asked for
    expired: int = 0  # returned by the service, but ExpiresAt <= now: dropped
    records: int = 0  # rows in df


# ---- schema ----------------------------------------------------------------------------------


def online_schema(source: GroupSpec) -> StructType:
    """Features in the group's order (text as returned), then __expires_at and __ttl_seconds."""
    fields = [
        StructField(f.name, ArrayType(StringType()) if f.collection else StringType())
        for f in source.features
    ]
    fields += [StructField(EXPIRES_AT, StringType()), StructField(TTL_SECONDS, LongType())]
    return StructType(fields)


# ---- driver side -----------------------------------------------------------------------------


def _resolve_id_source(spark: SparkSession, source: GroupSpec, store: Store,
                       id_source: str) -> tuple[str, str, DataFrame | None]:
    """(id source, reason, offline ids DataFrame or None for a scan)."""
    if id_source not in ID_SOURCES:
        raise BadInput(f"id_source must be one of {', '.join(ID_SOURCES)}, not {id_source!r}")
    if id_source == "scan":
        return IDS_FROM_SCAN, "migration.id_source: scan", None
    if id_source == "offline":
        if not source.offline:
            raise BadInput(f"migration.id_source is offline, but feature group {source.name} "
                           "has no offline store: use scan (or auto)")
        ids = offline_record_ids(spark, source, store)
        if ids is None:
            raise BadInput(f"migration.id_source is offline, but the offline store of "
                           f"{source.name} holds no files yet: use scan (or auto)")
        return IDS_FROM_OFFLINE, "migration.id_source: offline", ids
    # auto
    if not source.offline:
        return IDS_FROM_SCAN, f"online-only source ({source.storage_type or 'Standard'})", None
    if source.is_iceberg:
        return (IDS_FROM_SCAN, "the source offline store uses the Iceberg table format, "
                "which this job does not read", None)
    ids = offline_record_ids(spark, source, store)
    if ids is None:
        return IDS_FROM_SCAN, "the source offline store holds no files yet", None
    return IDS_FROM_OFFLINE, "the source has an offline store: ids read in parallel", ids


def read_online(spark: SparkSession, source: GroupSpec, store: Store,
                aws_settings: AwsSettings, id_source: str = "auto",
                now: datetime | None = None, max_workers: int = 4,
                ids_per_partition: int = 2000, max_tps: float | None = None,
                max_attempts: int = 10, progress_interval: float = 5.0) -> OnlineRead:
    """The source's online records, one row each, values exactly as the service returned them.

    ``id_source``: ``auto`` (offline store when the source has a Glue-format one with files,
    else ListRecords), ``offline`` (BadInput without one) or ``scan`` (ListRecords).
    Schema: one column per source feature, in the group's order, holding the returned text
    (string; array<string> for collection features, from ValueAsStringList; null when the
    record lacks the feature); ``__expires_at`` (the ExpiresAt string, null when none) and
    ``__ttl_seconds`` (long: ExpiresAt - event time rounded up to whole seconds, the TtlDuration
    that gives the target record the same ExpiresAt; null when no ExpiresAt).
    Records whose ExpiresAt <= ``now`` (default: the current time) are dropped and counted in
    ``expired``. ``max_tps`` caps BatchGetRecord (and ListRecords) calls per second across the
    read (the service's BatchGetRecord quota is 500 TPS per account).
    """
    if not source.online:
        raise BadInput(f"feature group {source.name} has no online store to read")
    if max_workers < 1 or ids_per_partition < 1 or max_attempts < 1:
        raise BadInput("max_workers, ids_per_partition and max_attempts must be at least 1")
    if max_tps is not None and not max_tps > 0:
        raise BadInput(f"max_tps must be positive, got {max_tps}")
    if source.feature(source.event_time) is None:
        raise BadInput(f"feature group {source.name}: event time feature {source.event_time!r} "
                       "is not among its features")
    now = now_ns(now)
    kind, reason, offline_ids = _resolve_id_source(spark, source, store, id_source)
    sc = spark.sparkContext
    log.info("reading the online store of %s; record ids from %s (%s)", source.name, kind,
             reason)

    if offline_ids is None:
        scan_ids = scan_record_ids(source.name, aws.runtime_client(aws_settings),
                                   max_attempts=max_attempts, calls_per_second=max_tps)
        considered = len(scan_ids)
        partitions = max(1, math.ceil(considered / ids_per_partition))
        ids_rdd = sc.parallelize(scan_ids, partitions)
    else:
        offline_ids = offline_ids.persist(StorageLevel.MEMORY_AND_DISK)
        considered = offline_ids.count()
        partitions = max(1, math.ceil(considered / ids_per_partition))
        ids_rdd = offline_ids.repartition(partitions, F.col(ID_COLUMN)).rdd.map(lambda row: row[0])

    job = FetchJob(
        aws=aws_settings,
        group=source.name,
        features=tuple((f.name, f.collection is not None) for f in source.features),
        event_time=source.event_time,
        now_ns=now,
        max_workers=max_workers,
        max_attempts=max_attempts,
        calls_per_second=task_share(max_tps, partitions, sc),
    )
    schema = StructType([*online_schema(source).fields, StructField(_EXPIRED, BooleanType())])
    counters = Counters(sc, ("asked",))

    def fetch_and_count(ids: Iterator[str]) -> Iterator[tuple]:
        asked = 0

        def counted() -> Iterator[str]:
            nonlocal asked
            for rid in ids:
                asked += 1
                yield rid

        yield from fetch_partition(counted(), job=job)
        counters.add({"asked": asked})

    rows = ids_rdd.mapPartitions(fetch_and_count)
    raw = spark.createDataFrame(rows, schema).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with watching(counters, considered, progress_interval, phase="read online",
                      done="asked"):
            stats = raw.agg(
                F.count(F.lit(1)).alias("rows"),
                F.coalesce(F.sum(F.col(_EXPIRED).cast("long")), F.lit(0)).alias("expired"),
            ).collect()[0]
    except Exception:
        raw.unpersist()
        raise
    finally:
        if offline_ids is not None:
            offline_ids.unpersist()
    expired = int(stats["expired"])
    records = int(stats["rows"]) - expired
    log.info("online store of %s: %d ids considered, %d records online, %d expired dropped",
             source.name, considered, records, expired)
    df = raw.where(~F.col(_EXPIRED)).drop(_EXPIRED)
    return OnlineRead(df=df, id_source=kind, id_source_reason=reason, ids_considered=considered,
                      expired=expired, records=records)


# ---- typed view for --filter-query -----------------------------------------------------------


def typed_view(df: DataFrame, source: GroupSpec) -> DataFrame:
    """The online rows with the source's types, for a --filter-query; wire text kept aside.

    Contract: every source feature column is cast as the offline store types it (Integral ->
    bigint, Fractional -> double, String -> string; collection features stay array<string>),
    so ``f_int > 5`` or ``score >= 0.5`` mean what they mean on the offline store.
    Text that doesn't parse as its type reads as null here. Column ``__wire`` is a struct of
    the input's columns exactly as read (features as returned text, then ``__expires_at``
    and ``__ttl_seconds``): after filtering (and resume-from, which casts ids to string), select
    ``__wire.*`` to get read_online's schema back and send the values verbatim: "1.50" stays
    "1.50", never re-rendered from a double. ``__expires_at`` and ``__ttl_seconds`` are also
    kept as top-level columns.
    """
    casts = {INTEGRAL: "bigint", FRACTIONAL: "double"}
    columns = []
    for feature in source.features:
        c = F.col(f"`{feature.name}`")
        target = None if feature.collection else casts.get(feature.type)
        if target is None:
            columns.append(c.alias(feature.name))
        else:
            # try_cast: malformed text gives null (not an error) even with ANSI mode on.
            columns.append(F.expr(f"try_cast(`{feature.name}` AS {target})").alias(feature.name))
    wire = F.struct(*[F.col(f"`{name}`") for name in df.columns]).alias(WIRE)
    extras = [F.col(name) for name in (EXPIRES_AT, TTL_SECONDS) if name in df.columns]
    return df.select(*columns, *extras, wire)
