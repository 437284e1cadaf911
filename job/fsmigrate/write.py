"""Per-partition writer: batching, worker threads, rate limit, retries, failures.

Runs on executors from ``foreachPartition``. Rows arrive as tuples (or Spark Rows) whose values
follow ``WriterSettings.columns``; each becomes one Feature Store record. Rows are read
``batch_size`` at a time and handed to a small thread pool with bounded in-flight work, so a
partition is never held in memory. All AWS calls go through :mod:`fsmigrate.aws`.

Calls go through :class:`fsmigrate.calls.Caller` (pacing, backoff, classification):

* throttling, 5xx, connection errors (whole call or per batch entry) and entries returned in
  ``UnprocessedEntries``: retried with full-jitter exponential backoff up to ``max_attempts``,
  then the records fail with the last error code;
* a value the service would refuse (:mod:`fsmigrate.limits`) fails its record before sending;
* permanent errors (``ValidationError`` ...): the record fails at once, never retried; a whole
  BatchWriteRecord call rejected that way is split in halves until the refused record is
  alone, so its neighbours are written;
* "not found" (``ResourceNotFound``, or ``ValidationError`` "Resource Not Found" from the
  calls whose model lists no ResourceNotFound): retried, unless DescribeFeatureGroup confirms
  the group is gone;
* systemic errors (``AccessForbidden``, a group confirmed gone ...): queued work is cancelled
  and :class:`fsmigrate.errors.Aborted` is raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import aws, encode
from .aws import AwsSettings
from .calls import Caller, CallFailed, RetryPolicy, Tally
from .errors import BadInput
from .limits import entry_problem, record_problem, value_problem
from .parallel import bounded_map

log = logging.getLogger(__name__)

BATCH_WRITE_MAX_ENTRIES = 25  # BatchWriteRecordEntries: 1-25
AUTO = "auto"
UNPROCESSED = "Unprocessed"  # the retry reason of entries handed back, not an AWS code
WRITE_APIS = ("batch", "put")  # BatchWriteRecord, PutRecord; AUTO picks one of them


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
    max_attempts: int | None = 8  # None: retries bounded by retry_budget_s only
    retry_budget_s: float | None = None  # see calls.RetryPolicy.budget_s
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0

    def __post_init__(self) -> None:
        if self.record_id_name not in self.columns:
            raise BadInput(f"record identifier {self.record_id_name!r} is not among the columns")
        if self.ttl_column is not None and self.ttl_column not in self.columns:
            raise BadInput(f"ttl column {self.ttl_column!r} is not among the columns")
        if self.ttl_column == self.record_id_name:
            raise BadInput("the ttl column cannot be the record identifier")
        if self.batch_size < 1 or self.max_workers < 1 or (self.max_attempts or 1) < 1:
            raise BadInput("batch_size, max_workers and max_attempts must be at least 1")
        if self.tps_per_task is not None and self.tps_per_task <= 0:
            raise BadInput("tps_per_task must be positive (or None for unlimited)")
        if self.write_api not in (*WRITE_APIS, AUTO):
            raise BadInput(f"write_api must be batch, put or auto, not {self.write_api!r}")

    @property
    def policy(self) -> RetryPolicy:
        """A record that can't be written fails (into the failure files); the task goes on."""
        return RetryPolicy(self.max_attempts, self.base_delay_s, self.max_delay_s,
                           budget_s=self.retry_budget_s)


@dataclass
class PartitionResult(Tally):
    written: int = 0
    failed: list[dict] = field(default_factory=list)  # {record, error_code, message, attempts}

    def add(self, other: PartitionResult) -> None:
        super().add(other)
        self.written += other.written
        self.failed.extend(other.failed)


def resolve_write_api(requested: str, client) -> str:
    """'auto' -> 'batch' when the client's botocore knows BatchWriteRecord, else 'put'."""
    if requested == AUTO:
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


@dataclass
class _Pending:
    """One record on its way: the row (for the failure output), its id and the request part."""

    row: Sequence
    record_id: str | None
    entry: dict[str, Any]  # BatchWriteRecord entry; PutRecord takes its fields as kwargs


class _PartitionWriter:
    def __init__(self, settings: WriterSettings, client, caller: Caller, api: str) -> None:
        self.s = settings
        self.client = client
        self.caller = caller
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
        self.entry_index = encode.entry_index(cols)  # rows with an entry built by Spark

    def encode(self, row: Sequence) -> _Pending:
        if self.entry_index is not None:
            # the entry is JSON text; only the fast BatchWriteRecord sender takes it
            return _Pending(row, row[self.id_index], row[self.entry_index])
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

    def problem(self, p: _Pending) -> str | None:
        """Why the service would refuse this record, found before sending it (or None)."""
        if p.record_id is None:
            return f"record identifier {self.s.record_id_name!r} is missing"
        if isinstance(p.entry, str):  # JSON built by Spark (the fast sender's path)
            return entry_problem(p.entry, p.record_id)
        row = p.row
        for i, name, _ in self.plan:
            problem = value_problem(name, row[i])
            if problem:
                return problem
        return record_problem(p.entry["Record"], p.record_id)

    def failure(self, p: _Pending, code: str, message: str, attempts: int) -> dict:
        record = encode.record_of(self.s.columns, p.row)
        return {"record": record, "error_code": code, "message": message, "attempts": attempts}

    # -- one batch of rows (runs in a worker thread) --

    def write_rows(self, rows: list[Sequence]) -> PartitionResult:
        result = PartitionResult()
        pending: list[_Pending] = []
        for row in rows:
            p = self.encode(row)
            problem = self.problem(p)
            if problem:
                result.failed.append(self.failure(p, "ValidationError", problem, 0))
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

        def send(pending: list[_Pending]):
            nonlocal attempt
            attempt += 1
            response = aws.batch_write_record(self.client, [p.entry for p in pending])
            return self.sort_response(pending, response, attempt, result)

        try:
            self.caller.send_all("BatchWriteRecord", chunk, send, result, cost=len)
        except CallFailed as failed:  # the whole request rejected, or retries used up
            if len(failed.items) > 1 and _rejected_as_a_whole(failed):
                # one refused record fails the call: halve until it is alone (log2(25) ≈ 5
                # rounds), so its neighbours are written
                half = len(failed.items) // 2
                result.retried += len(failed.items)
                self.batch_chunk(failed.items[:half], result)
                self.batch_chunk(failed.items[half:], result)
                return
            for p in failed.items:
                result.failed.append(self.failure(p, failed.code, failed.message,
                                                  failed.attempts))

    def sort_response(self, chunk: list[_Pending], response: dict, attempt: int,
                      result: PartitionResult):
        """Split a BatchWriteRecord response into written, failed and to-retry records."""
        errors = response.get("Errors") or []
        unprocessed = response.get("UnprocessedEntries") or []
        if not errors and not unprocessed:
            result.written += len(chunk)
            return [], None
        by_id: dict[str | None, list[int]] = {}
        for i, p in enumerate(chunk):
            by_id.setdefault(p.record_id, []).append(i)
        status: dict[int, tuple[str, str] | None] = {}  # index -> (code, message); None: retry

        unmatched = 0

        def match(entry: dict | None) -> int | None:
            nonlocal unmatched
            rid = self.entry_record_id(entry)
            candidates = by_id.get(rid)
            if not candidates:
                unmatched += 1
                log.warning("BatchWriteRecord returned an entry for unknown record id %r", rid)
                return None
            return candidates.pop(0)  # each sent record is answered at most once

        retry_reason: tuple[str, str] | None = None
        for err in errors:
            code = err.get("ErrorCode") or "Unknown"
            message = err.get("ErrorMessage") or ""
            kind = self.caller.entry_error("BatchWriteRecord", code, message, result)
            index = match(err.get("Entry"))
            if index is None:
                continue
            if kind == aws.PERMANENT:
                status[index] = (code, message)
            else:
                status[index] = None
                retry_reason = (code, message)
        for entry in unprocessed:
            index = match(entry)
            if index is not None:
                status[index] = None
        if unmatched:
            # An answer about a record we cannot name: any unanswered one may be it, so none
            # is counted as written; they are sent again (a re-sent record is harmless).
            for i in range(len(chunk)):
                status.setdefault(i, None)
            retry_reason = ("UnmatchedResponse", f"{unmatched} entries of the answer did not "
                            "match a sent record")
        retry: list[_Pending] = []
        for i, p in enumerate(chunk):
            if i not in status:
                result.written += 1
            elif status[i] is None:
                retry.append(p)
            else:
                code, message = status[i]
                result.failed.append(self.failure(p, code, message, attempt))
        if retry_reason is None and retry:
            retry_reason = (UNPROCESSED, "entry returned in UnprocessedEntries")
        return retry, retry_reason

    def entry_record_id(self, entry: dict | None) -> str | None:
        for fv in (entry or {}).get("Record") or ():
            if fv.get("FeatureName") == self.s.record_id_name:
                return fv.get("ValueAsString")
        return None

    def put_one(self, p: _Pending, result: PartitionResult) -> None:
        entry = p.entry
        try:
            self.caller.call("PutRecord", lambda: aws.put_record(
                self.client, entry["FeatureGroupName"], entry["Record"],
                entry.get("TargetStores"), entry.get("TtlDuration")), result)
        except CallFailed as failed:
            result.failed.append(self.failure(p, failed.code, failed.message, failed.attempts))
        else:
            result.written += 1


def write_partition(rows: Iterable[Sequence], settings: WriterSettings, client=None,
                    rng=None, clock=None, sleep=None,
                    on_batch: Callable[[PartitionResult], Any] | None = None) -> PartitionResult:
    """Write one partition's rows to ``settings.target_group``.

    Returns the counts and the failed records; raises :class:`Aborted` on a systemic error.
    ``rng``/``clock``/``sleep`` are for tests (backoff jitter, rate limiter, waits).
    """
    if client is None:
        client = aws.writer_client(settings.aws, max(10, settings.max_workers + 2))
    api = resolve_write_api(settings.write_api, client)
    caller = Caller.paced(settings.target_group, settings.policy, settings.tps_per_task, rng=rng,
                          clock=clock, sleep=sleep,
                          gone=group_gone_check(settings.aws, settings.target_group))
    writer = _PartitionWriter(settings, client, caller, api)
    total = PartitionResult()
    for result in bounded_map(writer.write_rows, rows, settings.batch_size, settings.max_workers,
                              caller.stop, "fsmigrate-write"):
        total.add(result)
        if on_batch is not None:  # live progress (the running total)
            on_batch(total)
    return total


def _rejected_as_a_whole(failed: CallFailed) -> bool:
    """The request itself was refused as invalid (not: retries ran out)."""
    return failed.code != UNPROCESSED and aws.classify(failed.code) == aws.PERMANENT


def group_gone_check(aws_settings: AwsSettings, group: str) -> Callable[[], bool]:
    """gone() -> True once DescribeFeatureGroup says the group does not exist.

    The runtime answers "not found" sporadically for groups that exist (DESIGN.md §2), so a
    task aborts only when the control plane confirms it; any other answer means "retry". The
    control-plane client is built on the first "not found" only.
    """
    lock = threading.Lock()
    clients: list = []

    def gone() -> bool:
        with lock:
            if not clients:
                clients.append(aws.control_client(aws_settings))
        try:
            clients[0].describe_feature_group(FeatureGroupName=group)
        except aws.AWS_ERRORS as exc:
            kind, code, message = aws.describe_error(exc)
            log.warning("DescribeFeatureGroup %s after a 'not found': %s %s", group, code,
                        aws.shorten(message))
            return kind == aws.NOT_FOUND
        return False

    return gone
