"""Read a source's ONLINE store: the current truth for every record that is still there.

Two steps:

1. **Record ids.** From the source offline store when it has one (distinct record ids of all
   rows, delete markers included: the online store decides what still exists), read in
   parallel from Parquet; otherwise from a ListRecords scan on the driver (pages of 100).
   Caveat of the offline id source: a record written only to the online store
   (``TargetStores=["OnlineStore"]``) under an id the offline store never saw, or written in
   the last ~15 minutes (before the offline store receives it), is not found. Use
   ``id_source="scan"`` when that matters.
2. **Values.** The ids are hash-partitioned (``ids_per_partition`` ids per partition) and every
   partition calls BatchGetRecord (≤100 ids per call, ``max_workers`` calls in flight,
   ``ExpirationTimeResponse=Enabled``). Ids missing from a response are not online (deleted or
   expired) and produce no row. ``Errors`` and ``UnprocessedIdentifiers`` entries are retried
   with full-jitter backoff, as are throttling, 5xx and connection errors of whole calls;
   systemic codes (access denied, group gone), permanent errors and exhausted retries raise
   :class:`fsmigrate.errors.Aborted`: a read that can't see a record must not skip it quietly.

The result is materialised once (persisted, MEMORY_AND_DISK) so that the counts in
:class:`OnlineRead` are exact and later actions don't call BatchGetRecord again; call
``read.df.unpersist()`` when done with it. All AWS calls go through :mod:`fsmigrate.aws`.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
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
from ..errors import Aborted, BadInput, from_executor
from ..eventtime import NS, instant_ns
from ..groups import FRACTIONAL, INTEGRAL, GroupSpec
from ..parallel import Stopped, bounded_map
from ..progress import Progress
from ..storage import Store
from ..write import RateLimiter, backoff_delay
from .offline import read_offline

log = logging.getLogger(__name__)

__all__ = [
    "EXPIRES_AT",
    "TTL_SECONDS",
    "WIRE",
    "ID_FROM_OFFLINE",
    "ID_FROM_SCAN",
    "OnlineRead",
    "read_online",
    "typed_view",
    "online_schema",
    "instant_ns",
    "ttl_seconds_for",
    "list_record_ids",
    "fetch_partition",
]

# Feature names can't start with "_", so these never collide with a feature.
EXPIRES_AT = "__expires_at"
TTL_SECONDS = "__ttl_seconds"
WIRE = "__wire"
_EXPIRED = "__expired"
_ID = "__id"

ID_FROM_OFFLINE = "offline store"
ID_FROM_SCAN = "ListRecords"
ID_SOURCES = ("auto", "offline", "scan")

BATCH_GET_MAX_IDS = 100  # RecordIdentifiersValueAsString: 1-100
LIST_RECORDS_MAX_RESULTS = 100
AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class OnlineRead:
    df: DataFrame  # one row per record present online (not deleted, not expired); persisted
    id_source: str  # "offline store" | "ListRecords"
    id_source_reason: str  # why that id source
    ids_considered: int  # distinct ids asked for
    expired: int = 0  # returned by the service, but ExpiresAt <= now: dropped
    records: int = 0  # rows in df


# ---- time ------------------------------------------------------------------------------------


def ttl_seconds_for(event_time: str | None, expires_at: str | None) -> int | None:
    """The TtlDuration (s) that gives the same ExpiresAt from the same event time on a target.

    ExpiresAt = EventTime + TtlDuration, so TTL = ExpiresAt - EventTime, rounded up to whole
    seconds (at least 1, the smallest TtlDuration). None without an ExpiresAt or when the
    event time can't be parsed (then the target's default TTL applies; logged).
    """
    expires = instant_ns(expires_at)
    event = instant_ns(event_time)
    if expires is None or event is None:
        return None
    return max(1, -((event - expires) // NS))


def _now_ns(now: datetime | None) -> int:
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delta = now - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000


# ---- schema ----------------------------------------------------------------------------------


def online_schema(source: GroupSpec) -> StructType:
    """Features in the group's order (text as returned), then __expires_at and __ttl_seconds."""
    fields = [
        StructField(f.name, ArrayType(StringType()) if f.collection else StringType())
        for f in source.features
    ]
    fields += [StructField(EXPIRES_AT, StringType()), StructField(TTL_SECONDS, LongType())]
    return StructType(fields)


# ---- executor side: BatchGetRecord per partition ---------------------------------------------


@dataclass(frozen=True)
class _FetchJob:
    """Everything a partition needs; pickled to executors."""

    aws: AwsSettings
    group: str
    features: tuple[tuple[str, bool], ...]  # (name, is collection), in schema order
    event_time: str
    now_ns: int
    max_workers: int = 4
    max_attempts: int = 10  # consecutive attempts without progress
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0
    calls_per_second: float | None = None  # per task; None = unlimited


class _Fetcher:
    def __init__(self, job: _FetchJob, client, stop: threading.Event, rng, sleep) -> None:
        self.job = job
        self.client = client
        self.stop = stop
        self.rng = rng
        self.sleep = sleep
        self.limiter = RateLimiter(job.calls_per_second, sleep=sleep)
        self.event_index = next(
            i for i, (name, _) in enumerate(job.features) if name == job.event_time)

    def abort(self, code: str, message: str) -> None:
        self.stop.set()
        first_line = " ".join(str(message).split())[:300]
        raise Aborted(
            f"BatchGetRecord on feature group {self.job.group!r} failed with {code}: {first_line}"
        )

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped

    def fetch(self, ids: list[str]) -> list[tuple]:
        """Rows for the ids that are online; retried until every id is answered."""
        rows: list[tuple] = []
        pending = ids
        failures = 0  # consecutive attempts that answered no id
        last = ("Unprocessed", "ids returned in UnprocessedIdentifiers")
        while pending:
            self.check_stop()
            self.limiter.acquire(1)
            self.check_stop()
            try:
                response = aws.batch_get_record(self.client, self.job.group, pending)
            except AWS_ERRORS as exc:
                code = aws.error_code(exc)
                message = str(exc)
                if isinstance(exc, ClientError):
                    message = exc.response.get("Error", {}).get("Message") or message
                if aws.classify_exception(exc) in (aws.SYSTEMIC, aws.PERMANENT):
                    self.abort(code, message)
                last, retry = (code, message), pending
            else:
                rows.extend(self.row(r) for r in response.get("Records") or ())
                retry = []
                for err in response.get("Errors") or ():
                    code = err.get("ErrorCode") or "Unknown"
                    message = err.get("ErrorMessage") or ""
                    if aws.classify(code) in (aws.SYSTEMIC, aws.PERMANENT):
                        rid = err.get("RecordIdentifierValueAsString")
                        self.abort(code, f"record {rid!r}: {message}")
                    retry.append(err.get("RecordIdentifierValueAsString"))
                    last = (code, message)
                for ident in response.get("UnprocessedIdentifiers") or ():
                    retry.extend(ident.get("RecordIdentifiersValueAsString") or ())
                retry = [rid for rid in retry if rid is not None]
            if not retry:
                break
            failures = failures + 1 if len(retry) >= len(pending) else 1
            if failures >= self.job.max_attempts:
                self.abort(last[0], f"{len(retry)} ids still unanswered after "
                                    f"{failures} attempts: {last[1]}")
            pending = retry
            self.sleep(backoff_delay(failures - 1, self.job.base_delay_s,
                                     self.job.max_delay_s, self.rng))
        return rows

    def row(self, result: dict) -> tuple:
        by_name = {fv.get("FeatureName"): fv for fv in result.get("Record") or ()}
        values: list[Any] = []
        for name, is_collection in self.job.features:
            fv = by_name.get(name)
            if fv is None:
                values.append(None)
            elif is_collection:
                items = fv.get("ValueAsStringList")
                values.append(None if items is None else list(items))
            else:
                values.append(fv.get("ValueAsString"))
        expires_at = result.get("ExpiresAt")
        ttl = None
        expired = False
        if expires_at is not None:
            expires_ns = instant_ns(expires_at)
            if expires_ns is None:
                # Writing it without a TTL would make an expiring record immortal.
                self.abort("UnexpectedExpiresAt",
                           f"record {result.get('RecordIdentifierValueAsString')!r} has an "
                           f"ExpiresAt this job can't parse: {expires_at!r}")
            expired = expires_ns <= self.job.now_ns
            ttl = ttl_seconds_for(values[self.event_index], expires_at)
            if ttl is None:
                log.warning("record %r: event time %r unparseable; its TTL is not carried over",
                            result.get("RecordIdentifierValueAsString"),
                            values[self.event_index])
        return (*values, expires_at, ttl, expired)


def fetch_partition(ids: Iterable[str], job: _FetchJob, client=None, rng=None,
                    sleep=None) -> Iterator[tuple]:
    """BatchGetRecord for one partition's ids, ``job.max_workers`` calls in flight.

    Yields (features..., expires_at, ttl_seconds, expired) per record found online.
    ``client``/``rng``/``sleep`` are for tests.
    """
    stop = threading.Event()
    client = client or aws.runtime_client(job.aws, max(10, job.max_workers + 2))
    wait_fn = sleep if sleep is not None else stop.wait  # waits end early once aborted
    fetcher = _Fetcher(job, client, stop, rng or random.Random(), wait_fn)
    ids = (i for i in ids if i is not None)
    for rows in bounded_map(fetcher.fetch, ids, BATCH_GET_MAX_IDS, job.max_workers, stop,
                            "fsmigrate-read"):
        yield from rows


# ---- driver side -----------------------------------------------------------------------------


class ListRecordsRefused(Aborted):
    """ListRecords answered with a permanent error (e.g. the group has no online store)."""


def list_record_ids(group: str, client, include_soft_deleted: bool = False,
                    max_attempts: int = 10, calls_per_second: float | None = None,
                    rng=None, sleep=None) -> list[str]:
    """Every record id ListRecords returns (pages of 100), in order, without duplicates.

    Throttling, 5xx and connection errors are retried with backoff; running out of attempts or
    a systemic error raises Aborted, a permanent error ListRecordsRefused.
    """
    rng = rng or random.Random()
    sleep = sleep or time.sleep
    limiter = RateLimiter(calls_per_second, sleep=sleep)
    seen: dict[str, None] = {}
    token: str | None = None
    while True:
        attempt = 0
        while True:
            limiter.acquire(1)
            attempt += 1
            try:
                page, token = aws.list_record_ids(client, group, token,
                                                  LIST_RECORDS_MAX_RESULTS, include_soft_deleted)
                break
            except AWS_ERRORS as exc:
                kind = aws.classify_exception(exc)
                code = aws.error_code(exc)
                if kind == aws.PERMANENT:
                    raise ListRecordsRefused(f"ListRecords on feature group {group!r} failed "
                                             f"with {code}") from None
                if kind == aws.SYSTEMIC or attempt >= max_attempts:
                    message = " ".join(str(exc).split())[:300]
                    raise Aborted(f"ListRecords on feature group {group!r} failed with "
                                  f"{code} (attempt {attempt}): {message}") from None
                sleep(backoff_delay(attempt - 1, 0.05, 10.0, rng))
        for rid in page:
            seen.setdefault(rid, None)
        if not token:
            return list(seen)


def _resolve_id_source(spark: SparkSession, source: GroupSpec, store: Store,
                       id_source: str) -> tuple[str, str, DataFrame | None]:
    """(id source, reason, offline ids DataFrame or None for a scan)."""
    if id_source not in ID_SOURCES:
        raise BadInput(f"id_source must be one of {', '.join(ID_SOURCES)}, not {id_source!r}")
    if id_source == "scan":
        return ID_FROM_SCAN, "migration.id_source: scan", None
    if id_source == "offline":
        if not source.offline:
            raise BadInput(f"migration.id_source is offline, but feature group {source.name} "
                           "has no offline store: use scan (or auto)")
        ids = _offline_ids(spark, source, store)
        if ids is None:
            raise BadInput(f"migration.id_source is offline, but the offline store of "
                           f"{source.name} holds no files yet: use scan (or auto)")
        return ID_FROM_OFFLINE, "migration.id_source: offline", ids
    # auto
    if not source.offline:
        return ID_FROM_SCAN, f"online-only source ({source.storage_type or 'Standard'})", None
    if (source.table_format or "Glue") == "Iceberg":
        return (ID_FROM_SCAN, "the source offline store uses the Iceberg table format, "
                "which this job does not read", None)
    ids = _offline_ids(spark, source, store)
    if ids is None:
        return ID_FROM_SCAN, "the source offline store holds no files yet", None
    return ID_FROM_OFFLINE, "the source has an offline store: ids read in parallel", ids


def _offline_ids(spark: SparkSession, source: GroupSpec, store: Store) -> DataFrame | None:
    raw = read_offline(spark, source, store)
    if raw is None:
        return None
    # Integral ids are int64 in Parquet; the online store's id is their decimal text.
    rid = F.col(source.record_id).cast("string")
    return raw.select(rid.alias(_ID)).where(F.col(_ID).isNotNull()).distinct()


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
    now_ns = _now_ns(now)
    kind, reason, offline_ids = _resolve_id_source(spark, source, store, id_source)
    sc = spark.sparkContext
    log.info("reading the online store of %s; record ids from %s (%s)", source.name, kind,
             reason)

    if offline_ids is None:
        scan_ids = list_record_ids(source.name, aws.runtime_client(aws_settings),
                                   max_attempts=max_attempts, calls_per_second=max_tps)
        considered = len(scan_ids)
        partitions = max(1, math.ceil(considered / ids_per_partition))
        ids_rdd = sc.parallelize(scan_ids, partitions)
    else:
        offline_ids = offline_ids.persist(StorageLevel.MEMORY_AND_DISK)
        considered = offline_ids.count()
        partitions = max(1, math.ceil(considered / ids_per_partition))
        ids_rdd = offline_ids.repartition(partitions, F.col(_ID)).rdd.map(lambda row: row[0])

    concurrent = max(1, min(partitions, sc.defaultParallelism))
    job = _FetchJob(
        aws=aws_settings,
        group=source.name,
        features=tuple((f.name, f.collection is not None) for f in source.features),
        event_time=source.event_time,
        now_ns=now_ns,
        max_workers=max_workers,
        max_attempts=max_attempts,
        calls_per_second=(max_tps / concurrent) if max_tps else None,
    )
    schema = StructType([*online_schema(source).fields, StructField(_EXPIRED, BooleanType())])
    ids_done = sc.accumulator(0)

    def fetch_and_count(ids: Iterator[str]) -> Iterator[tuple]:
        asked = 0

        def counted() -> Iterator[str]:
            nonlocal asked
            for rid in ids:
                asked += 1
                yield rid

        yield from fetch_partition(counted(), job=job)
        ids_done.add(asked)

    rows = ids_rdd.mapPartitions(fetch_and_count)
    raw = spark.createDataFrame(rows, schema).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with Progress(lambda: {"written": ids_done.value}, considered, progress_interval,
                      phase="read online"):
            stats = raw.agg(
                F.count(F.lit(1)).alias("rows"),
                F.coalesce(F.sum(F.col(_EXPIRED).cast("long")), F.lit(0)).alias("expired"),
            ).collect()[0]
    except Exception as exc:
        raw.unpersist()
        raise from_executor(exc) from None
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
