"""The read stage: the source's records to migrate, selected and encoded for the target.

An offline-only source gives the latest non-deleted state of every record from its Parquet; a
source with an online store gives its current values (the truth). Both are filtered, cut by
--resume-from and encoded as the target expects (select.py's transforms).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from .groups import Compatibility, Feature, GroupSpec
from .plan import Counts, shuffle_partitions
from .select import (
    after_record_id,
    apply_filter,
    count_selection,
    drop_deleted,
    encode_for_target,
    latest_state,
)
from .settings import Settings
from .sources import IDS_FROM_OFFLINE
from .sources.offline import footer_stats, read_offline
from .sources.online import TTL_SECONDS, WIRE, read_online, typed_view
from .storage import Store

SAMPLE_RECORDS = 3


@dataclass
class Selection:
    encoded: DataFrame  # target feature columns as wire text, one row per record to write
    counts: Counts
    files: int = 0
    bytes: int = 0
    cached: list[DataFrame] = field(default_factory=list)
    id_source: str = ""
    id_source_reason: str = ""

    def unpersist(self) -> None:
        for df in self.cached:
            df.unpersist()


def select_offline(spark: SparkSession, settings: Settings, source: GroupSpec,
                   compat: Compatibility, store: Store, filter_query: str | None,
                   resume_from: str | None) -> Selection:
    """Latest non-deleted state per record from the offline store, filtered, encoded."""
    raw = read_offline(spark, source, store)
    if raw is None:
        empty = spark.createDataFrame([], wire_schema(m.target for m in compat.mappings))
        return Selection(empty, Counts(), id_source=IDS_FROM_OFFLINE)
    stats = footer_stats(raw, store)
    parallelism = spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.shuffle.partitions", shuffle_partitions(stats.rows, parallelism))
    latest = latest_state(raw, source.record_id, source.event_time)
    latest = latest.persist(StorageLevel.MEMORY_AND_DISK)
    chosen = after_record_id(apply_filter(drop_deleted(latest), filter_query),
                             source.record_id, resume_from)
    counts = count_selection(latest, source.record_id, filter_query, resume_from, stats.rows)
    # An offline store keeps no expiry: the target's default TTL (if any) applies.
    encoded = encode_for_target(chosen, list(compat.mappings))
    return Selection(encoded, counts, stats.files, stats.bytes, cached=[latest],
                     id_source=IDS_FROM_OFFLINE)


def select_online(spark: SparkSession, settings: Settings, source: GroupSpec,
                  compat: Compatibility, store: Store, filter_query: str | None,
                  resume_from: str | None) -> Selection:
    """Current values from the source's online store (the truth), filtered, encoded."""
    m = settings.migration
    read = read_online(spark, source, store, settings.aws, m.id_source,
                       max_workers=m.max_workers, max_attempts=m.max_attempts,
                       progress_interval=m.progress_interval_seconds)
    typed = typed_view(read.df, source)
    matched = apply_filter(typed, filter_query)
    chosen = after_record_id(matched, source.record_id, resume_from)
    matched_n = matched.count()
    selected = chosen.count() if resume_from else matched_n
    counts = Counts(records=read.ids_considered,
                    deleted_skipped=read.ids_considered - read.records - read.expired,
                    expired_skipped=read.expired, filtered_out=read.records - matched_n,
                    before_resume_from=matched_n - selected, selected=selected)
    keep = (TTL_SECONDS,) if m.ttl == "source" else ()
    encoded = encode_for_target(chosen.select(f"{WIRE}.*"), list(compat.mappings), keep=keep)
    return Selection(encoded, counts, cached=[read.df], id_source=read.id_source,
                     id_source_reason=read.id_source_reason)


def select_records(spark: SparkSession, settings: Settings, source: GroupSpec,
                   compat: Compatibility, store: Store, filter_query: str | None) -> Selection:
    select = select_online if source.online else select_offline
    return select(spark, settings, source, compat, store, filter_query,
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
