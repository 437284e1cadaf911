"""The read stage: the source's records to migrate, selected and encoded for the target.

An offline-only source gives the latest non-deleted state of every record from its Parquet; a
source with an online store gives its current values (the truth). Both are filtered, cut by
--resume-from and encoded as the target expects (select.py's and wire.py's transforms).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from .eventtime import NS, now_ns
from .groups import Compatibility, Feature, GroupSpec
from .plan import Counts, shuffle_partitions
from .select import (
    after_record_id,
    apply_filter,
    count_selection,
    drop_deleted,
    event_time_key,
    latest_state,
    unparseable_rows,
)
from .settings import Settings
from .sources import IDS_FROM_OFFLINE
from .sources.offline import footer_stats, read_offline
from .sources.online import TTL_SECONDS, WIRE, check_offline_status, read_online, typed_view
from .storage import Store
from .wire import encode_for_target

SAMPLE_RECORDS = 3
# Feature names can't start with "_": these never collide with a feature.
_BAD_TIME = "__unparseable_event_times"
_EXPIRES_ON_ARRIVAL = "__expires_on_arrival"


@dataclass
class Selection:
    encoded: DataFrame  # target feature columns as wire text, one row per record to write
    counts: Counts
    files: int = 0
    bytes: int = 0
    cached: list[DataFrame] = field(default_factory=list)
    id_source: str = ""
    id_source_reason: str = ""
    notes: list[str] = field(default_factory=list)  # what the plan must say (risks, refusals)

    def unpersist(self) -> None:
        for df in self.cached:
            df.unpersist()


def arrival_ttl(target: GroupSpec, ttl_policy: str, record_ttl: str | None) -> Column | None:
    """Seconds of TTL a record gets in the target (ExpiresAt = event time + TTL), None: none.

    Only an online target expires records. A per-record TTL (``ttl: source``, carried from the
    source's ExpiresAt) wins; otherwise the target's default applies.
    """
    if not target.online or ttl_policy == "none":
        return None
    default = F.lit(target.ttl_seconds) if target.ttl_seconds else None
    if record_ttl is not None and ttl_policy == "source":
        return F.coalesce(F.col(record_ttl), default) if default is not None else \
            F.col(record_ttl)
    return default


def expired_on_arrival(df: DataFrame, event_time: str, ttl: Column | None,
                       now: int | None = None) -> Column:
    """True for a record whose ExpiresAt (event time + ttl) is not after now: the target would
    hold it expired from the start (the service drops it on read), so it is not written."""
    if ttl is None:
        return F.lit(False)
    key = event_time_key(event_time, df.schema[event_time].dataType)
    now = now_ns() if now is None else now
    now_s, now_n = divmod(now, NS)
    expires_s = key.getField("seconds") + ttl
    return F.coalesce(
        (expires_s < F.lit(now_s))
        | ((expires_s == F.lit(now_s)) & (key.getField("nanos") <= F.lit(now_n))),
        F.lit(False))  # unparseable event times are counted elsewhere


def _arriving(chosen: DataFrame, source: GroupSpec, target: GroupSpec, ttl_policy: str,
              resume_from: str | None, matched: DataFrame) -> tuple[DataFrame, int, int, int]:
    """(records that arrive alive, matched count, chosen count, expired on arrival): one
    aggregate over ``chosen`` (plus one count when --resume-from cuts)."""
    record_ttl = TTL_SECONDS if TTL_SECONDS in chosen.columns else None
    flagged = chosen.withColumn(_EXPIRES_ON_ARRIVAL, expired_on_arrival(
        chosen, source.event_time, arrival_ttl(target, ttl_policy, record_ttl)))
    stats = flagged.agg(F.count(F.lit(1)).alias("n"),
                        F.count_if(F.col(_EXPIRES_ON_ARRIVAL)).alias("expired")).collect()[0]
    chosen_n, expired = int(stats["n"]), int(stats["expired"])
    matched_n = matched.count() if resume_from else chosen_n
    alive = flagged.where(~F.col(_EXPIRES_ON_ARRIVAL)).drop(_EXPIRES_ON_ARRIVAL)
    return alive, matched_n, chosen_n, expired


def select_offline(spark: SparkSession, settings: Settings, source: GroupSpec,
                   target: GroupSpec, compat: Compatibility, store: Store,
                   filter_query: str | None, resume_from: str | None) -> Selection:
    """Latest non-deleted state per record from the offline store, filtered, encoded."""
    m = settings.migration
    notes = [n for n in [check_offline_status(source, m.allow_inactive_offline_store)] if n]
    raw = read_offline(spark, source, store)
    if raw is None:
        empty = spark.createDataFrame([], wire_schema(m_.target for m_ in compat.mappings))
        return Selection(empty, Counts(), id_source=IDS_FROM_OFFLINE, notes=notes)
    stats = footer_stats(raw, store)
    parallelism = spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.shuffle.partitions", shuffle_partitions(stats.rows, parallelism))
    latest = latest_state(raw, source.record_id, source.event_time, unparseable_col=_BAD_TIME)
    # Read twice (counts, then the write): choosing each column's compression scheme costs a
    # fifth of the plan (dictionary and run-length statistics per value); MEMORY_AND_DISK
    # spills what memory doesn't hold.
    spark.conf.set("spark.sql.inMemoryColumnarStorage.compressed", "false")
    latest = latest.persist(StorageLevel.MEMORY_AND_DISK)
    # A record with a row whose event time doesn't parse has no known latest version: it is
    # counted and left out, never decided by treating that row as the oldest.
    parsed = latest.where(F.col(_BAD_TIME) == 0).drop(_BAD_TIME)
    chosen = after_record_id(apply_filter(drop_deleted(parsed), filter_query),
                             source.record_id, resume_from)
    record_ttl = TTL_SECONDS if TTL_SECONDS in latest.columns else None
    ttl, now = arrival_ttl(target, m.ttl, record_ttl), now_ns()
    alive = chosen.where(~expired_on_arrival(chosen, source.event_time, ttl, now))
    counts = count_selection(latest, source.record_id, filter_query, resume_from, stats.rows,
                             bad_col=_BAD_TIME,
                             expiring=expired_on_arrival(latest, source.event_time, ttl, now))
    if counts.bad_event_time:
        bad = latest.where(F.col(_BAD_TIME) > 0)
        examples = [r[0] for r in bad.select(F.col(source.record_id).cast("string"))
                    .limit(5).collect()]
        bad_rows = unparseable_rows(raw, source.event_time)  # a second pass, only here
        notes.append(f"{counts.bad_event_time:,} records ({bad_rows:,} rows) have an event "
                     f"time that doesn't parse and are not migrated, e.g. {', '.join(examples)}")
    # An offline store keeps no expiry: the target's default TTL (if any) applies.
    encoded = encode_for_target(alive, list(compat.mappings))
    return Selection(encoded, counts, stats.files, stats.bytes, cached=[latest],
                     id_source=IDS_FROM_OFFLINE, notes=notes)


def select_online(spark: SparkSession, settings: Settings, source: GroupSpec,
                  target: GroupSpec, compat: Compatibility, store: Store,
                  filter_query: str | None, resume_from: str | None) -> Selection:
    """Current values from the source's online store (the truth), filtered, encoded."""
    m = settings.migration
    read = read_online(spark, source, store, settings.source_aws, m.id_source,
                       max_workers=m.max_workers, max_tps=m.read_tps,
                       retry_budget_s=m.retry_budget_seconds,
                       progress_interval=m.progress_interval_seconds,
                       allow_inactive_offline=m.allow_inactive_offline_store)
    typed = typed_view(read.df, source)
    matched = apply_filter(typed, filter_query)
    chosen = after_record_id(matched, source.record_id, resume_from)
    alive, matched_n, chosen_n, expired = _arriving(chosen, source, target, m.ttl, resume_from,
                                                    matched)
    counts = Counts(records=read.ids_considered,
                    deleted_skipped=read.ids_considered - read.records - read.expired,
                    expired_skipped=read.expired, filtered_out=read.records - matched_n,
                    before_resume_from=matched_n - chosen_n, expired_on_arrival=expired,
                    selected=chosen_n - expired)
    keep = (TTL_SECONDS,) if m.ttl == "source" else ()
    encoded = encode_for_target(alive.select(f"{WIRE}.*"), list(compat.mappings), keep=keep)
    notes = [read.id_source_reason] if read.id_source == IDS_FROM_OFFLINE else []
    return Selection(encoded, counts, cached=[read.df], id_source=read.id_source,
                     id_source_reason=read.id_source_reason, notes=notes)


def select_records(spark: SparkSession, settings: Settings, source: GroupSpec,
                   target: GroupSpec, compat: Compatibility, store: Store,
                   filter_query: str | None) -> Selection:
    select = select_online if source.online else select_offline
    return select(spark, settings, source, target, compat, store, filter_query,
                  settings.migration.resume_from)


def wire_schema(features: Iterable[Feature]) -> StructType:
    """Encoded records: each feature as the text sent (a list of texts for collections)."""
    return StructType([
        StructField(f.name, ArrayType(StringType()) if f.collection else StringType())
        for f in features
    ])


def sample_records(encoded: DataFrame, n: int = SAMPLE_RECORDS) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.asDict().items() if v is not None}
            for row in encoded.limit(n).collect()]
