"""Read a source's ONLINE store: the current truth for every record that is still there.

Two steps:

1. **Record ids** (:mod:`.ids`). By default (``auto``) the distinct record ids of the source
   offline store (all rows, delete markers included: the online store decides what still
   exists), read in parallel from Parquet, united with a ListRecords scan on the driver: the
   scan finds records written only to the online store (``TargetStores=["OnlineStore"]``) and
   those written within the offline delivery delay (~15 minutes), which the offline store
   never shows. ``id_source="offline"`` skips the scan (faster; may miss those, and the plan
   says so); ``id_source="scan"`` uses ListRecords alone.
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
from ..calls import BUDGET_S
from ..errors import BadInput
from ..eventtime import now_ns
from ..groups import FRACTIONAL, INTEGRAL, GroupSpec
from ..partitions import Counters, skip_zip_rescans, task_share, watching
from ..storage import Store
from . import ID_SOURCES, IDS_FROM_BOTH, IDS_FROM_OFFLINE, IDS_FROM_SCAN, OFFLINE_IDS_MISS
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


def check_offline_status(spec: GroupSpec, allow_inactive: bool) -> str | None:
    """None when the offline store can be trusted for reads; else a note for the plan (when
    ``allow_inactive``) or BadInput. A Blocked store stopped receiving records (replication
    failed) and a Disabled one never will: its files are not the group's state."""
    status = spec.offline_status
    if not spec.offline or status in (None, "Active"):
        return None
    note = (f"the offline store of {spec.name} is {status}, not Active: its files may lack "
            "recent records")
    if not allow_inactive:
        raise BadInput(f"{note}; set migration.allow_inactive_offline_store: true to read it "
                       "anyway")
    return note


def _offline_ids_alone(spark: SparkSession, source: GroupSpec, store: Store,
                       allow_inactive: bool, why: str, instead: str
                       ) -> tuple[str, str, DataFrame, bool]:
    """The offline store's ids without a scan; the reason says what they may miss."""
    note = check_offline_status(source, allow_inactive)
    ids = offline_record_ids(spark, source, store)
    if ids is None:
        raise BadInput(f"{why}, but the offline store of {source.name} holds no files yet: "
                       f"{instead}")
    reason = f"{why}; {OFFLINE_IDS_MISS}" + (f"; {note}" if note else "")
    return IDS_FROM_OFFLINE, reason, ids, False


def _resolve_id_source(spark: SparkSession, source: GroupSpec, store: Store, id_source: str,
                       can_scan: bool, allow_inactive: bool
                       ) -> tuple[str, str, DataFrame | None, bool]:
    """(id source, reason, offline ids DataFrame or None, scan ListRecords too).

    ``auto`` (the default) never skips a live record: the offline ids united with a ListRecords
    scan, which sees what the offline store can't (online-only writes, the delivery delay).
    Only when this botocore has no ListRecords does it fall back to the offline ids alone, and
    the reason says what that may miss.
    """
    if id_source not in ID_SOURCES:
        raise BadInput(f"id_source must be one of {', '.join(ID_SOURCES)}, not {id_source!r}")
    if id_source == "scan":
        return IDS_FROM_SCAN, "migration.id_source: scan", None, True
    if id_source == "offline":
        if not source.offline:
            raise BadInput(f"migration.id_source is offline, but feature group {source.name} "
                           "has no offline store: use scan (or auto)")
        return _offline_ids_alone(spark, source, store, allow_inactive,
                                  "migration.id_source: offline", "use scan (or auto)")
    # auto
    if not source.offline:
        return (IDS_FROM_SCAN, f"online-only source ({source.storage_type or 'Standard'})",
                None, True)
    if source.is_iceberg:
        return (IDS_FROM_SCAN, "the source offline store uses the Iceberg table format, "
                "which this job does not read", None, True)
    if not can_scan:
        return _offline_ids_alone(spark, source, store, allow_inactive,
                                  "this botocore has no ListRecords", "install a newer boto3")
    ids = offline_record_ids(spark, source, store) if source.offline_status in (
        None, "Active") else None  # a scan sees every online record: a Blocked store adds none
    if ids is None:
        why = ("holds no files yet" if source.offline_status in (None, "Active")
               else f"is {source.offline_status}")
        return IDS_FROM_SCAN, f"ListRecords (the source offline store {why})", None, True
    return (IDS_FROM_BOTH, "the offline store's ids (in parallel) united with a ListRecords "
            "scan, which also sees online-only and recent records", ids, True)


def read_online(spark: SparkSession, source: GroupSpec, store: Store,
                aws_settings: AwsSettings, id_source: str = "auto",
                now: datetime | None = None, max_workers: int = 4,
                ids_per_partition: int = 2000, max_tps: float | None = None,
                retry_budget_s: float = BUDGET_S, progress_interval: float = 5.0,
                allow_inactive_offline: bool = False) -> OnlineRead:
    """The source's online records, one row each, values exactly as the service returned them.

    ``id_source``: ``auto`` (the offline store's ids united with a ListRecords scan; see
    :func:`_resolve_id_source`), ``offline`` (BadInput without one; fast, but may miss
    records) or ``scan`` (ListRecords).
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
    if max_workers < 1 or ids_per_partition < 1:
        raise BadInput("max_workers and ids_per_partition must be at least 1")
    if max_tps is not None and not max_tps > 0:
        raise BadInput(f"max_tps must be positive, got {max_tps}")
    if source.feature(source.event_time) is None:
        raise BadInput(f"feature group {source.name}: event time feature {source.event_time!r} "
                       "is not among its features")
    now = now_ns(now)
    client = aws.runtime_client(aws_settings)
    kind, reason, offline_ids, scan = _resolve_id_source(
        spark, source, store, id_source, aws.has_list_records(client), allow_inactive_offline)
    sc = spark.sparkContext
    log.info("reading the online store of %s; record ids from %s (%s)", source.name, kind,
             reason)

    scan_ids = scan_record_ids(source.name, client, retry_budget_s=retry_budget_s,
                               calls_per_second=max_tps) if scan else []
    if offline_ids is None:
        considered = len(scan_ids)
        partitions = max(1, math.ceil(considered / ids_per_partition))
        ids_rdd = sc.parallelize(scan_ids, partitions)
    else:
        if scan_ids:
            scanned = spark.createDataFrame([(i,) for i in scan_ids], f"{ID_COLUMN} string")
            offline_ids = offline_ids.union(scanned).distinct()
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
        retry_budget_s=retry_budget_s,
        calls_per_second=task_share(max_tps, partitions, sc),
    )
    schema = StructType([*online_schema(source).fields, StructField(_EXPIRED, BooleanType())])
    counters = Counters(sc, ("asked",))

    def fetch_and_count(ids: Iterator[str]) -> Iterator[tuple]:
        skip_zip_rescans()
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
