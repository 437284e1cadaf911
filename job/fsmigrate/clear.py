"""--clear-target: remove what the target holds before the migration writes to it.

Order of work, all driven from the driver:

1. the guards: :func:`check_clear_allowed` (not the source, no shared offline prefix, not
   Iceberg) and :func:`confirm_clear` (``--yes``, ``migration.confirm_clear: NAME`` or the name
   typed at a terminal);
2. the online record ids: ListRecords (paginated, soft-deleted records included), or, when this
   botocore or the service lacks ListRecords, the distinct ids of the target's offline store
   (every id it ever saw, so a superset of what the online store can hold);
3. the online records: DeleteRecord ``HardDelete`` with ``TargetStores=["OnlineStore"]`` (no
   delete markers land in the offline store we are about to empty), across Spark partitions
   with a few threads each, rate-limited by ``migration.max_tps`` like the writes and retried
   on throttling, 5xx and connection errors. A record whose stored event time is not older
   than now (future-dated) is read with GetRecord and deleted with an instant just after it;
4. only when every online delete succeeded: every object under the target's
   ResolvedOutputS3Uri, then a listing that must come back empty.

Any online delete that ultimately fails raises :class:`Aborted` before the offline store is
touched, so a rerun finds the same ids and the migration never writes onto a half-cleared
target. All AWS calls go through :mod:`fsmigrate.aws`.

On real AWS the offline store receives rows up to ~15 minutes after they were written: records
put into the target just before the clear can still land in S3 afterwards. Step 4's final
listing catches what is there by then; stop writers to the target before clearing it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pyspark import AccumulatorParam, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import aws
from .aws import AwsSettings
from .errors import Aborted, BadInput
from .eventtime import instant_ns
from .groups import FRACTIONAL, ONLINE_STORE, GroupSpec
from .parallel import Stopped, bounded_map
from .plan import partition_count
from .progress import Progress
from .settings import Settings
from .sources.online import ListRecordsRefused, list_record_ids
from .storage import Store, split_s3
from .write import RateLimiter, backoff_delay

log = logging.getLogger(__name__)

IDS_FROM_LIST_RECORDS = "ListRecords"
IDS_FROM_OFFLINE = "offline store"

AWS_ERRORS = (ClientError, BotoCoreError)
LIST_MAX_ATTEMPTS = 8  # ListRecords pages (driver side), throttling/5xx/connection errors
MAX_EVENT_TIME_BUMPS = 3  # future-dated record rewritten again while we delete it
FAILURE_SAMPLES = 5  # failed ids per partition brought back to the driver for the message
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---- guards ----------------------------------------------------------------------------------

def s3_prefix(uri: str) -> str:
    """`s3://bucket/key/` with one trailing slash (s3a/s3n read as s3), for prefix comparisons."""
    text = uri.strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() in ("s3", "s3a", "s3n"):
        text = "s3://" + rest
    bucket, key = split_s3(text)
    key = key.strip("/")
    return f"s3://{bucket}/{key}/" if key else f"s3://{bucket}/"


def check_clear_allowed(source: GroupSpec, target: GroupSpec) -> None:
    """Refuse a clear that would destroy the source or that this job can't do correctly."""
    if source.name == target.name:
        raise BadInput(f"--clear-target would delete the source {source.name}: "
                       "pick a different --target")
    if target.offline and (target.table_format or "Glue") == "Iceberg":
        raise BadInput(f"--clear-target cannot clear {target.name}: its offline store is in the "
                       "Iceberg table format (files are tracked by table metadata); clear it "
                       "through its catalog, or run without --clear-target")
    if source.offline_uri and target.offline_uri:
        src, tgt = s3_prefix(source.offline_uri), s3_prefix(target.offline_uri)
        if src.startswith(tgt) or tgt.startswith(src):
            raise BadInput(f"--clear-target: the offline store of {target.name} ({tgt}) overlaps "
                           f"the source's ({src}), so clearing it would delete source data: "
                           "use a target with its own offline S3 location")


def clear_prompt(target_name: str) -> str:
    return f"Type the target group name ({target_name}) to delete all its records: "


def confirm_clear(settings: Settings, target_name: str, stdin_isatty: bool,
                  ask: Callable[[str], str]) -> None:
    """Pass when --yes, `migration.confirm_clear: <target>`, or the name typed at a terminal.

    The typed answer must be the exact name (surrounding whitespace ignored). Without a
    terminal nothing is asked and the clear is refused: nothing has been deleted.
    """
    if settings.yes or settings.migration.confirm_clear == target_name:
        return
    if stdin_isatty:
        try:
            answer = ask(clear_prompt(target_name))
        except EOFError:
            answer = None
        if answer is not None and answer.strip() == target_name:
            return
    raise BadInput(f"--clear-target deletes every record of {target_name}: confirm with --yes, "
                   f"migration.confirm_clear: {target_name}, or answer the prompt")


# ---- event times -----------------------------------------------------------------------------

def format_event_time(micros: int, fractional: bool) -> str:
    """An instant in microseconds as `yyyy-MM-ddTHH:mm:ss.ffffffZ` or `seconds.ffffff`."""
    if fractional:
        sign, magnitude = ("-", -micros) if micros < 0 else ("", micros)
        secs, frac = divmod(magnitude, 1_000_000)
        return f"{sign}{secs}.{frac:06d}"
    dt = _EPOCH + timedelta(microseconds=micros)
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}.{dt.microsecond:06d}Z")


def now_event_time(fractional: bool) -> str:
    return format_event_time(time.time_ns() // 1000, fractional)


def event_time_after(stored: str, fractional: bool) -> str | None:
    """The first whole microsecond strictly after `stored` (None when it doesn't parse)."""
    ns = instant_ns(stored)
    if ns is None:
        return None
    return format_event_time(ns // 1000 + 1, fractional)


# ---- the per-partition deleter (runs on executors) -------------------------------------------

@dataclass(frozen=True)
class DeleteSettings:
    aws: AwsSettings
    group: str
    event_time_feature: str
    fractional_event_time: bool = False  # event time feature is Fractional (unix seconds)
    max_workers: int = 4  # threads per partition
    chunk_size: int = 10  # ids handed to one thread at a time (one DeleteRecord call each)
    tps_per_task: float | None = None  # DeleteRecord calls/s this task may make
    max_attempts: int = 8  # for 5xx and connection errors
    throttle_attempts: int = 32  # throttling is back-pressure, not a broken record
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0


@dataclass
class DeleteResult:
    deleted: int = 0  # online records gone (deleted now, or already absent)
    failed: list[dict] = field(default_factory=list)  # {record_id, error_code, message, attempts}
    retried: int = 0
    throttled: int = 0
    api_calls: int = 0
    bumped: int = 0  # future-dated records deleted with an event time after their own

    def add(self, other: DeleteResult) -> None:
        self.deleted += other.deleted
        self.failed.extend(other.failed)
        self.retried += other.retried
        self.throttled += other.throttled
        self.api_calls += other.api_calls
        self.bumped += other.bumped


class _Failed(Exception):
    def __init__(self, code: str, message: str, attempts: int) -> None:
        super().__init__(code, message, attempts)
        self.code, self.message, self.attempts = code, message, attempts


class _Deleter:
    def __init__(self, s: DeleteSettings, client, rng, sleep, limiter: RateLimiter,
                 stop: threading.Event) -> None:
        self.s, self.client, self.rng, self.sleep = s, client, rng, sleep
        self.limiter, self.stop = limiter, stop

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped

    def call(self, op: str, fn: Callable[[], Any], result: DeleteResult) -> Any:
        """fn() with retries; _Failed on a permanent error or when attempts run out."""
        attempt = throttles = 0
        while True:
            self.check_stop()
            self.limiter.acquire(1)
            self.check_stop()
            if attempt:
                result.retried += 1
            attempt += 1
            result.api_calls += 1
            try:
                return fn()
            except AWS_ERRORS as exc:
                code = aws.error_code(exc)
                message = str(exc)
                if isinstance(exc, ClientError):
                    message = exc.response.get("Error", {}).get("Message") or message
                kind = aws.classify_exception(exc)
                if kind == aws.SYSTEMIC:
                    self.stop.set()
                    first_line = " ".join(message.split())[:300]
                    raise Aborted(f"{op} on feature group {self.s.group!r} failed with {code}: "
                                  f"{first_line}") from None
                if kind == aws.PERMANENT:
                    raise _Failed(code, message, attempt) from None
                if kind == aws.THROTTLED:
                    result.throttled += 1
                    throttles += 1
                if (throttles >= self.s.throttle_attempts
                        or attempt - throttles >= self.s.max_attempts):
                    raise _Failed(code, message, attempt) from None
            self.sleep(backoff_delay(attempt - 1, self.s.base_delay_s, self.s.max_delay_s,
                                     self.rng))

    def delete_ids(self, ids: list[str]) -> DeleteResult:
        result = DeleteResult()
        for rid in ids:
            self.delete_one(rid, result)
        return result

    def delete_one(self, rid: str, result: DeleteResult) -> None:
        fractional = self.s.fractional_event_time
        event_time = now_event_time(fractional)
        attempts = bumps = 0
        while True:
            try:
                self.call("DeleteRecord", lambda et=event_time: aws.delete_record(
                    self.client, self.s.group, rid, et, [ONLINE_STORE], "HardDelete"), result)
                result.deleted += 1
                return
            except _Failed as failure:
                attempts += failure.attempts
                code, message = failure.code, failure.message
            if code != "ValidationError" or bumps >= MAX_EVENT_TIME_BUMPS:
                self.fail(result, rid, code, message, attempts)
                return
            # HardDelete needs an event time later than the stored one: read the stored one.
            try:
                stored = self.stored_event_time(rid, result)
            except _Failed as failure:
                self.fail(result, rid, failure.code, f"GetRecord: {failure.message}",
                          attempts + failure.attempts)
                return
            if stored is None:  # gone already (deleted or expired meanwhile)
                result.deleted += 1
                return
            stored_ns, ours_ns = instant_ns(stored), instant_ns(event_time)
            later = event_time_after(stored, fractional)
            if later is None or stored_ns is None or ours_ns is None or stored_ns < ours_ns:
                # Not an event-time conflict: the ValidationError stands.
                self.fail(result, rid, code, message, attempts)
                return
            event_time = later
            bumps += 1
            if bumps == 1:
                result.bumped += 1

    def stored_event_time(self, rid: str, result: DeleteResult) -> str | None:
        feature = self.s.event_time_feature
        response = self.call("GetRecord", lambda: aws.get_record(
            self.client, self.s.group, rid, [feature]), result)
        for fv in response.get("Record") or ():
            if fv.get("FeatureName") == feature:
                return fv.get("ValueAsString")
        return None

    def fail(self, result: DeleteResult, rid: str, code: str, message: str,
             attempts: int) -> None:
        result.failed.append({"record_id": rid, "error_code": code,
                              "message": " ".join(str(message).split())[:300],
                              "attempts": attempts})


def delete_partition(ids: Iterable[str], settings: DeleteSettings, client=None, rng=None,
                     sleep=None) -> DeleteResult:
    """HardDelete (online store only) every record id; raises Aborted on a systemic error."""
    stop = threading.Event()
    if client is None:
        client = aws.runtime_client(settings.aws, max_pool=max(10, settings.max_workers + 2))
    wait_fn = sleep if sleep is not None else stop.wait  # waits end early once aborted
    limiter = RateLimiter(settings.tps_per_task, sleep=wait_fn)
    deleter = _Deleter(settings, client, rng or random.Random(), wait_fn, limiter, stop)
    total = DeleteResult()
    for result in bounded_map(deleter.delete_ids, ids, settings.chunk_size, settings.max_workers,
                              stop, "fsmigrate-clear"):
        total.add(result)
    return total


# ---- record ids ------------------------------------------------------------------------------

def list_online_ids(client, group: str, rng=None, sleep=time.sleep) -> list[str] | None:
    """Every id ListRecords gives (soft-deleted included); None when ListRecords is unavailable.

    Throttling, 5xx and connection errors are retried; a systemic error raises Aborted.
    """
    if not aws.has_list_records(client):
        log.warning("this botocore has no ListRecords: record ids of %s come from its offline "
                    "store", group)
        return None
    try:
        return list_record_ids(group, client, include_soft_deleted=True,
                               max_attempts=LIST_MAX_ATTEMPTS, rng=rng, sleep=sleep)
    except ListRecordsRefused as exc:
        log.warning("%s: record ids come from the offline store", exc)
        return None


def offline_ids(spark: SparkSession, target: GroupSpec, store: Store) -> DataFrame | None:
    """Distinct record ids (as strings) in the target's offline store; None when it is empty.

    Every id the offline store saw, deleted or not: a record whose latest offline row is a
    delete marker can still be online (a SoftDelete that was not newer leaves it there).
    """
    from .sources.offline import read_offline  # local: keeps plain imports light

    if not target.offline or not target.offline_uri or not store.list(target.offline_uri):
        return None
    df = read_offline(spark, target, store)
    if df is None:
        return None
    rid = F.col(target.record_id)
    return df.where(rid.isNotNull()).select(rid.cast("string").alias("record_id")).distinct()


def _online_ids(spark: SparkSession, target: GroupSpec, store: Store,
                aws_settings: AwsSettings) -> tuple[str, list[str] | DataFrame | None]:
    ids = list_online_ids(aws.runtime_client(aws_settings), target.name)
    if ids is not None:
        return IDS_FROM_LIST_RECORDS, ids
    if not target.offline:
        raise BadInput(f"cannot list the online records of {target.name} (no ListRecords) and it "
                       "has no offline store to take record ids from: use boto3 >= 1.44.8")
    return IDS_FROM_OFFLINE, offline_ids(spark, target, store)


def _count(ids: list[str] | DataFrame | None) -> int:
    if ids is None:
        return 0
    return len(ids) if isinstance(ids, list) else ids.count()


# ---- offline objects -------------------------------------------------------------------------

def offline_objects(target: GroupSpec, store: Store) -> list[tuple[str, int]]:
    """(URI, bytes) of every object under the target's ResolvedOutputS3Uri."""
    if not target.offline or not target.offline_uri:
        return []
    uri = target.offline_uri
    if store.local_path(uri) is None:  # real S3: one listing gives keys and sizes
        bucket, key = split_s3(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        try:
            listed = aws.s3_list_objects(aws.s3_client(store.aws), bucket, prefix)
        except AWS_ERRORS as exc:
            raise Aborted(f"cannot list the offline store of {target.name} at {uri}: "
                          f"{aws.error_code(exc)}") from None
        return [(f"s3://{bucket}/{k}", size) for k, size in listed]
    out = []
    for obj in store.list(uri):
        try:
            out.append((obj, os.path.getsize(store.local_path(obj))))
        except FileNotFoundError:  # removed since the listing
            pass
    return out


def _prune_empty_dirs(root: str) -> None:
    """Remove the empty folders a local clear leaves (S3 has none), `root` included."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        try:
            os.rmdir(folder)
        except OSError:  # not empty, or gone
            pass


def delete_offline(target: GroupSpec, store: Store,
                   objects: list[tuple[str, int]] | None = None) -> int:
    """Delete every object under the target's ResolvedOutputS3Uri; returns how many."""
    if not target.offline or not target.offline_uri:
        return 0
    uri = target.offline_uri
    objects = offline_objects(target, store) if objects is None else objects
    uris = [u for u, _ in objects]
    local = store.local_path(uri)
    try:
        if local is None:
            bucket, _ = split_s3(uri)
            keys = [split_s3(u)[1] for u in uris]
            aws.s3_delete_keys(aws.s3_client(store.aws), bucket, keys)  # 1,000 keys a call
        else:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(store.delete, uris))
            _prune_empty_dirs(local)
    except AWS_ERRORS as exc:
        raise Aborted(f"deleting the offline store of {target.name} at {uri} failed with "
                      f"{aws.error_code(exc)}: check s3:DeleteObject permission and rerun "
                      "with --clear-target") from None
    left = offline_objects(target, store)
    if left:
        raise Aborted(f"{len(left)} offline objects of {target.name} are still under {uri} after "
                      f"the delete (first: {left[0][0]}): stop writers to the target, check "
                      "s3:DeleteObject permission and rerun with --clear-target")
    return len(uris)


# ---- plan and clear (driver) -----------------------------------------------------------------

@dataclass(frozen=True)
class ClearPlan:
    target: str
    online_ids_source: str | None  # "ListRecords", "offline store"; None: no online store
    online_records: int
    offline_objects: int
    offline_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan_clear(spark: SparkSession, target: GroupSpec, store: Store,
               aws_settings: AwsSettings) -> ClearPlan:
    """What --clear-target would delete (for --dry-run): nothing is changed."""
    source, online = None, 0
    if target.online:
        source, ids = _online_ids(spark, target, store, aws_settings)
        online = _count(ids)
    objects = offline_objects(target, store)
    return ClearPlan(target.name, source, online, len(objects), sum(b for _, b in objects))


_PY_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Aborted|BadInput): .+")


def _spark_error_line(exc: Exception) -> str:
    """The Python error inside Spark's wrapping (the executor's traceback), else the headline."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    python = [ln for ln in lines if _PY_ERROR_LINE.match(ln)
              and not ln.startswith(("py4j.", "org.apache.", "java."))]
    return (python[0] if python else lines[0] if lines else type(exc).__name__)[:300]


class _ListParam(AccumulatorParam):
    def zero(self, value):
        return []

    def addInPlace(self, value1, value2):  # noqa: N802 - pyspark's name
        value1.extend(value2)
        return value1


_COUNTERS = ("deleted", "failed", "retried", "throttled", "api_calls", "bumped")


def _delete_online(spark: SparkSession, target: GroupSpec, ids: list[str] | DataFrame,
                   total: int, settings: Settings) -> dict[str, int]:
    sc = spark.sparkContext
    m = settings.migration
    partitions = partition_count(total, m.partition_records, sc.defaultParallelism)
    concurrent = max(1, min(partitions, sc.defaultParallelism))
    event_feature = target.feature(target.event_time)
    deleter = DeleteSettings(
        aws=settings.aws,
        group=target.name,
        event_time_feature=target.event_time,
        fractional_event_time=bool(event_feature and event_feature.type == FRACTIONAL),
        max_workers=m.max_workers,
        throttle_attempts=max(32, 4 * m.max_attempts),
        tps_per_task=(m.max_tps / concurrent) if m.max_tps else None,
        max_attempts=m.max_attempts,
    )
    counters = {name: sc.accumulator(0) for name in _COUNTERS}
    problems = sc.accumulator([], _ListParam())  # failure samples and systemic errors

    def delete_one_partition(rows) -> None:
        try:
            result = delete_partition((row[0] for row in rows), deleter)
        except Aborted as exc:
            problems.add([{"aborted": str(exc)}])
            return
        for name in _COUNTERS:
            value = getattr(result, name)
            counters[name].add(len(value) if name == "failed" else value)
        problems.add(result.failed[:FAILURE_SAMPLES])

    if isinstance(ids, list):  # from ListRecords, already on the driver: no shuffle needed
        partitioned = sc.parallelize([(i,) for i in ids], partitions)
    else:
        partitioned = ids.repartition(partitions).rdd

    def snapshot() -> dict[str, int]:
        counts = {name: acc.value for name, acc in counters.items()}
        counts["written"] = counts["deleted"]  # Progress counts "written" as done
        return counts

    log.info("deleting %d online records of %s in %d partitions", total, target.name,
             partitions)
    with Progress(snapshot, total, m.progress_interval_seconds, phase="clear"):
        try:
            partitioned.foreachPartition(delete_one_partition)
        except Exception as exc:  # the Spark job itself failed: the target is half-cleared
            raise Aborted(f"clearing the online store of {target.name} failed: "
                          f"{_spark_error_line(exc)}; rerun with --clear-target") from None
    counts = {name: acc.value for name, acc in counters.items()}
    aborted = [p["aborted"] for p in problems.value if "aborted" in p]
    if aborted:
        raise Aborted(f"--clear-target stopped: {aborted[0]}")
    if counts["failed"]:
        first = next(p for p in problems.value if "record_id" in p)
        raise Aborted(f"--clear-target: {counts['failed']:,} of {total:,} online records of "
                      f"{target.name} could not be deleted (e.g. {first['record_id']!r}: "
                      f"{first['error_code']} {first['message']}); nothing was written: fix "
                      "the cause and rerun")
    log.info("deleted %d online records of %s (%d future-dated, %d retries, %d throttled)",
             counts["deleted"], target.name, counts["bumped"], counts["retried"],
             counts["throttled"])
    return counts


def _check_online_empty(target: GroupSpec, aws_settings: AwsSettings) -> None:
    client = aws.runtime_client(aws_settings)
    try:
        left, _ = aws.list_record_ids(client, target.name, max_results=1,
                                      include_soft_deleted=True)
    except AWS_ERRORS as exc:
        log.warning("could not check that %s's online store is empty: %s", target.name,
                    aws.error_code(exc))
        return
    if left:
        raise Aborted(f"the online store of {target.name} still holds records after the clear "
                      f"(e.g. {left[0]!r}): stop writers to the target and rerun with "
                      "--clear-target")


def clear_target(spark: SparkSession, target: GroupSpec, store: Store,
                 settings: Settings) -> dict[str, int]:
    """Delete every online record, then every offline object, of the target.

    Returns {online_deleted, online_failed, offline_deleted}. Raises Aborted when any online
    delete ultimately fails (the offline store is then left alone) or on a systemic error.
    """
    if target.offline and (target.table_format or "Glue") == "Iceberg":
        raise BadInput(f"--clear-target cannot clear {target.name}: its offline store is in the "
                       "Iceberg table format; clear it through its catalog")
    started = time.monotonic()
    deleted = 0
    if target.online:
        source, ids = _online_ids(spark, target, store, settings.aws)
        if isinstance(ids, DataFrame):  # counted, then deleted: read the offline store once
            ids = ids.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            total = _count(ids)
            log.info("%d online record ids of %s from %s", total, target.name, source)
            if total:
                deleted = _delete_online(spark, target, ids, total, settings)["deleted"]
        finally:
            if isinstance(ids, DataFrame):
                ids.unpersist()
        if source == IDS_FROM_LIST_RECORDS:
            _check_online_empty(target, settings.aws)
    offline_deleted = delete_offline(target, store)
    log.info("cleared %s in %.1f s: %d online records, %d offline objects deleted", target.name,
             time.monotonic() - started, deleted, offline_deleted)
    return {"online_deleted": deleted, "online_failed": 0, "offline_deleted": offline_deleted}
