"""Per-partition writer: batching, worker threads, rate limit, retries, failures.

Runs on executors from ``foreachPartition``. Rows arrive as tuples (or Spark Rows) whose values
follow ``WriterSettings.columns``; each becomes one Feature Store record. Rows are read
``batch_size`` at a time and handed to a small thread pool with bounded in-flight work, so a
partition is never held in memory. All AWS calls go through :mod:`fsmigrate.aws`.

Error handling (codes classified by :func:`fsmigrate.aws.classify`):

* throttling, 5xx, connection errors (whole call or per batch entry) and entries returned in
  ``UnprocessedEntries``: retried with full-jitter exponential backoff up to ``max_attempts``,
  then the records fail with the last error code;
* permanent errors (``ValidationError`` ...): the record fails at once, never retried (a whole
  BatchWriteRecord call rejected that way fails every record in it);
* systemic errors (``AccessForbidden``, ``ResourceNotFound`` ...): queued work is cancelled and
  :class:`fsmigrate.errors.Aborted` is raised.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import aws
from .aws import AwsSettings
from .errors import Aborted, BadInput
from .parallel import Stopped, bounded_map

log = logging.getLogger(__name__)

BATCH_WRITE_MAX_ENTRIES = 25  # BatchWriteRecordEntries: 1-25
WRITE_APIS = ("batch", "put")
# What a call may raise that we classify; anything else is a bug and ends the task.
AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class WriterSettings:
    aws: AwsSettings
    target_group: str
    columns: tuple[str, ...]  # names of the incoming row values, in order
    record_id_name: str  # one of columns
    collection_features: frozenset[str] = frozenset()  # values are lists -> ValueAsStringList
    ttl_column: str | None = None  # TTL seconds (int) or None -> per-record TtlDuration
    target_stores: tuple[str, ...] | None = None  # None = the group's default stores
    batch_size: int = 100  # records handed to one worker thread at a time
    max_workers: int = 4  # threads per partition
    write_api: str = "batch"  # "batch" (BatchWriteRecord), "put" (PutRecord) or "auto"
    tps_per_task: float | None = None  # records/s this task may send; None = unlimited
    max_attempts: int = 8
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0

    def __post_init__(self) -> None:
        if self.record_id_name not in self.columns:
            raise BadInput(f"record identifier {self.record_id_name!r} is not among the columns")
        if self.ttl_column is not None and self.ttl_column not in self.columns:
            raise BadInput(f"ttl column {self.ttl_column!r} is not among the columns")
        if self.ttl_column == self.record_id_name:
            raise BadInput("the ttl column cannot be the record identifier")
        if self.batch_size < 1 or self.max_workers < 1 or self.max_attempts < 1:
            raise BadInput("batch_size, max_workers and max_attempts must be at least 1")
        if self.tps_per_task is not None and self.tps_per_task <= 0:
            raise BadInput("tps_per_task must be positive (or None for unlimited)")
        if self.write_api not in (*WRITE_APIS, "auto"):
            raise BadInput(f"write_api must be batch, put or auto, not {self.write_api!r}")


@dataclass
class PartitionResult:
    written: int = 0
    failed: list[dict] = field(default_factory=list)  # {record, error_code, message, attempts}
    retried: int = 0  # records re-sent (any reason)
    throttled: int = 0  # throttling responses seen (whole calls and batch entries)
    api_calls: int = 0

    def add(self, other: PartitionResult) -> None:
        self.written += other.written
        self.failed.extend(other.failed)
        self.retried += other.retried
        self.throttled += other.throttled
        self.api_calls += other.api_calls


# ---- small pieces -------------------------------------------------------------------------

def resolve_write_api(requested: str, client) -> str:
    """'auto' -> 'batch' when the client's botocore knows BatchWriteRecord, else 'put'."""
    if requested == "auto":
        return "batch" if aws.has_batch_write(client) else "put"
    if requested == "batch":
        if not aws.has_batch_write(client):
            raise BadInput(
                "write_api 'batch' needs BatchWriteRecord, which this botocore lacks "
                "(use 'put' or 'auto', or a newer boto3)"
            )
        return "batch"
    if requested == "put":
        return "put"
    raise BadInput(f"write_api must be batch, put or auto, not {requested!r}")


def backoff_delay(attempt: int, base: float, cap: float, rng) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)); attempt 0 is the first retry."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 60))
    return rng.uniform(0.0, ceiling)


class RateLimiter:
    """Thread-safe token bucket in records/s; ``rate=None`` means unlimited.

    ``acquire(n)`` reserves n tokens and sleeps until they are paid for, so concurrent callers
    queue up fairly and a request larger than the bucket still works (it waits n/rate).
    The bucket starts full; ``burst`` (tokens) defaults to a quarter second of rate, at least 1.
    """

    def __init__(self, rate: float | None, burst: float | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Any] | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, (rate or 0.0) / 4.0)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._last = self._clock()

    def acquire(self, n: int = 1) -> float:
        """Take n tokens, sleeping as needed; returns the seconds slept."""
        if self.rate is None or n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait_s = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s


# ---- the writer ---------------------------------------------------------------------------

@dataclass
class _Pending:
    """One record on its way: the row (for the failure output), its id and the request part."""

    row: Sequence
    record_id: str | None
    entry: dict[str, Any]  # BatchWriteRecord entry; PutRecord takes its fields as kwargs


class _PartitionWriter:
    def __init__(self, settings: WriterSettings, client, rng, sleep, limiter: RateLimiter,
                 stop: threading.Event, api: str) -> None:
        self.s = settings
        self.client = client
        self.rng = rng
        self.sleep = sleep
        self.limiter = limiter
        self.stop = stop
        self.api = api
        cols = settings.columns
        self.id_index = cols.index(settings.record_id_name)
        self.ttl_index = cols.index(settings.ttl_column) if settings.ttl_column else None
        # (index, name, value key) for every column that is a feature
        self.plan = tuple(
            (i, name,
             "ValueAsStringList" if name in settings.collection_features else "ValueAsString")
            for i, name in enumerate(cols) if name != settings.ttl_column
        )
        self.stores = list(settings.target_stores) if settings.target_stores else None

    # -- encoding --

    def encode(self, row: Sequence) -> _Pending:
        record = []
        for i, name, key in self.plan:
            value = row[i]
            if value is None:
                continue
            if key == "ValueAsString":
                if type(value) is not str:
                    value = str(value)
            elif not isinstance(value, list):
                value = list(value)
            record.append({"FeatureName": name, key: value})
        entry: dict[str, Any] = {"FeatureGroupName": self.s.target_group, "Record": record}
        if self.stores:
            entry["TargetStores"] = self.stores
        if self.ttl_index is not None:
            ttl = row[self.ttl_index]
            if ttl is not None:
                entry["TtlDuration"] = {"Unit": "Seconds", "Value": int(ttl)}
        rid = row[self.id_index]
        return _Pending(row, None if rid is None else str(rid), entry)

    def failure(self, p: _Pending, code: str, message: str, attempts: int) -> dict:
        record = dict(zip(self.s.columns, p.row, strict=False))
        return {"record": record, "error_code": code, "message": message, "attempts": attempts}

    # -- control --

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped

    def abort(self, code: str, message: str, op: str) -> None:
        self.stop.set()
        first_line = " ".join(str(message).split())[:300]
        raise Aborted(
            f"{op} on feature group {self.s.target_group!r} failed with {code}: {first_line}"
        )

    def backoff(self, retry_number: int) -> None:
        self.sleep(backoff_delay(retry_number, self.s.base_delay_s, self.s.max_delay_s, self.rng))
        self.check_stop()

    # -- one batch of rows (runs in a worker thread) --

    def write_rows(self, rows: list[Sequence]) -> PartitionResult:
        result = PartitionResult()
        pending: list[_Pending] = []
        for row in rows:
            p = self.encode(row)
            if p.record_id is None:
                result.failed.append(self.failure(
                    p, "ValidationError",
                    f"record identifier {self.s.record_id_name!r} is missing", 0))
            else:
                pending.append(p)
        if self.api == "batch":
            for start in range(0, len(pending), BATCH_WRITE_MAX_ENTRIES):
                self.batch_chunk(pending[start:start + BATCH_WRITE_MAX_ENTRIES], result)
        else:
            for p in pending:
                self.put_one(p, result)
        return result

    def batch_chunk(self, chunk: list[_Pending], result: PartitionResult) -> None:
        """BatchWriteRecord for ≤25 records, retried until each is written or failed."""
        attempt = 0
        last_code, last_message = "Unprocessed", "entry returned in UnprocessedEntries"
        while chunk:
            self.check_stop()
            self.limiter.acquire(len(chunk))
            self.check_stop()
            if attempt > 0:
                result.retried += len(chunk)
            attempt += 1
            result.api_calls += 1
            try:
                response = aws.batch_write_record(self.client, [p.entry for p in chunk])
            except AWS_ERRORS as exc:
                kind, code, message = self.classify_call(exc, "BatchWriteRecord")
                if kind == aws.PERMANENT:  # the whole request was rejected: never retried
                    for p in chunk:
                        result.failed.append(self.failure(p, code, message, attempt))
                    return
                if kind == aws.THROTTLED:
                    result.throttled += 1
                last_code, last_message = code, message
            else:
                chunk, last_code, last_message = self.sort_response(
                    chunk, response, attempt, result, last_code, last_message)
                if not chunk:
                    return
            if attempt >= self.s.max_attempts:
                for p in chunk:
                    result.failed.append(self.failure(p, last_code, last_message, attempt))
                return
            self.backoff(attempt - 1)

    def sort_response(self, chunk: list[_Pending], response: dict, attempt: int,
                      result: PartitionResult, last_code: str, last_message: str):
        """Split a BatchWriteRecord response into written, failed and to-retry records."""
        errors = response.get("Errors") or []
        unprocessed = response.get("UnprocessedEntries") or []
        if not errors and not unprocessed:
            result.written += len(chunk)
            return [], last_code, last_message
        by_id: dict[str | None, list[int]] = {}
        for i, p in enumerate(chunk):
            by_id.setdefault(p.record_id, []).append(i)
        status: dict[int, tuple[str, str] | None] = {}  # index -> (code, message); None: retry

        def match(entry: dict | None) -> int | None:
            rid = self.entry_record_id(entry)
            candidates = by_id.get(rid)
            if not candidates:
                log.warning("BatchWriteRecord returned an entry for unknown record id %r", rid)
                return None
            return candidates.pop(0)

        retry_reason: tuple[str, str] | None = None
        for err in errors:
            index = match(err.get("Entry"))
            code = err.get("ErrorCode") or "Unknown"
            message = err.get("ErrorMessage") or ""
            kind = aws.classify(code)
            if kind == aws.SYSTEMIC:
                self.abort(code, message, "BatchWriteRecord")
            if index is None:
                continue
            if kind == aws.PERMANENT:
                status[index] = (code, message)
            else:
                if kind == aws.THROTTLED:
                    result.throttled += 1
                status[index] = None
                retry_reason = (code, message)
        for entry in unprocessed:
            index = match(entry)
            if index is not None:
                status[index] = None
        retry: list[_Pending] = []
        for i, p in enumerate(chunk):
            if i not in status:
                result.written += 1
            elif status[i] is None:
                retry.append(p)
            else:
                code, message = status[i]
                result.failed.append(self.failure(p, code, message, attempt))
        if retry_reason is not None:
            last_code, last_message = retry_reason
        elif retry:
            last_code, last_message = "Unprocessed", "entry returned in UnprocessedEntries"
        return retry, last_code, last_message

    def entry_record_id(self, entry: dict | None) -> str | None:
        for fv in (entry or {}).get("Record") or ():
            if fv.get("FeatureName") == self.s.record_id_name:
                return fv.get("ValueAsString")
        return None

    def put_one(self, p: _Pending, result: PartitionResult) -> None:
        entry = p.entry
        attempt = 0
        while True:
            self.check_stop()
            self.limiter.acquire(1)
            self.check_stop()
            if attempt > 0:
                result.retried += 1
            attempt += 1
            result.api_calls += 1
            try:
                aws.put_record(self.client, entry["FeatureGroupName"], entry["Record"],
                               entry.get("TargetStores"), entry.get("TtlDuration"))
            except AWS_ERRORS as exc:
                kind, code, message = self.classify_call(exc, "PutRecord")
                if kind == aws.THROTTLED:
                    result.throttled += 1
                if kind == aws.PERMANENT or attempt >= self.s.max_attempts:
                    result.failed.append(self.failure(p, code, message, attempt))
                    return
                self.backoff(attempt - 1)
            else:
                result.written += 1
                return

    def classify_call(self, exc: Exception, op: str) -> tuple[str, str, str]:
        """(kind, code, message) for an exception from a call; aborts on systemic errors."""
        code = aws.error_code(exc)
        message = str(exc)
        if isinstance(exc, ClientError):
            message = exc.response.get("Error", {}).get("Message") or message
        kind = aws.classify_exception(exc)
        if kind == aws.SYSTEMIC:
            self.abort(code, message, op)
        return kind, code, message


def write_partition(rows: Iterable[Sequence], settings: WriterSettings, client=None,
                    rng=None, clock=None, sleep=None) -> PartitionResult:
    """Write one partition's rows to ``settings.target_group``.

    Returns the counts and the failed records; raises :class:`Aborted` on a systemic error.
    ``rng``/``clock``/``sleep`` are for tests (backoff jitter, rate limiter, waits).
    """
    stop = threading.Event()
    if client is None:
        client = aws.runtime_client(settings.aws, max(10, settings.max_workers + 2))
    api = resolve_write_api(settings.write_api, client)
    # Without an injected sleep, waits end early once the partition is aborted.
    wait_fn = sleep if sleep is not None else stop.wait
    limiter = RateLimiter(settings.tps_per_task, clock=clock, sleep=wait_fn)
    writer = _PartitionWriter(settings, client, rng or random.Random(), wait_fn, limiter, stop,
                              api)
    total = PartitionResult()
    for result in bounded_map(writer.write_rows, rows, settings.batch_size, settings.max_workers,
                              stop, "fsmigrate-write"):
        total.add(result)
    return total
