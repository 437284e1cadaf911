"""BatchGetRecord for one partition of record ids (runs on executors).

Calls of ≤100 ids, ``max_workers`` in flight, ``ExpirationTimeResponse=Enabled``. Ids missing
from a response are not online (deleted or expired) and produce no row. ``Errors`` and
``UnprocessedIdentifiers`` entries are sent again, as are whole calls that were throttled or
failed with 5xx or connection errors, for up to ``retry_budget_s`` (an outage that long ends the
read); systemic codes (access denied, group gone), permanent errors and exhausted retries abort
the read: a read that can't see a record must not skip it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .. import aws
from ..aws import AwsSettings
from ..calls import ABORT, BUDGET_S, Caller, RetryPolicy, Tally
from ..eventtime import instant_ns, ttl_seconds_for
from ..parallel import bounded_map

log = logging.getLogger(__name__)

BATCH_GET_MAX_IDS = 100  # RecordIdentifiersValueAsString: 1-100


@dataclass(frozen=True)
class FetchJob:
    """Everything a partition needs; pickled to executors."""

    aws: AwsSettings
    group: str
    features: tuple[tuple[str, bool], ...]  # (name, is collection), in schema order
    event_time: str
    now_ns: int
    max_workers: int = 4
    retry_budget_s: float = BUDGET_S  # see calls.RetryPolicy.budget_s
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0
    calls_per_second: float | None = None  # per task; None = unlimited

    @property
    def policy(self) -> RetryPolicy:
        """A reader never skips a record: anything but a retry ends the read."""
        return RetryPolicy(None, self.base_delay_s, self.max_delay_s, reset_on_progress=True,
                           on_permanent=ABORT, on_exhausted=ABORT, budget_s=self.retry_budget_s)


class _Fetcher:
    def __init__(self, job: FetchJob, client, caller: Caller, tally: Tally | None = None) -> None:
        self.job = job
        self.client = client
        self.caller = caller
        self.tally = tally  # the calls of every thread, summed (under the lock)
        self.lock = threading.Lock()
        self.event_index = next(
            i for i, (name, _) in enumerate(job.features) if name == job.event_time)

    def fetch(self, ids: list[str]) -> list[tuple]:
        """Rows for the ids that are online; retried until every id is answered."""
        rows: list[tuple] = []
        tally = Tally()

        def send(pending: list[str]):
            response = aws.batch_get_record(self.client, self.job.group, pending)
            rows.extend(self.row(r) for r in response.get("Records") or ())
            retry: list[str | None] = []
            reason = None
            for err in response.get("Errors") or ():
                code = err.get("ErrorCode") or "Unknown"
                message = err.get("ErrorMessage") or ""
                rid = err.get("RecordIdentifierValueAsString")
                if self.caller.entry_error("BatchGetRecord", code, message, tally) \
                        == aws.PERMANENT:
                    self.caller.abort("BatchGetRecord", code, f"record {rid!r}: {message}")
                retry.append(rid)
                reason = (code, message)
            for ident in response.get("UnprocessedIdentifiers") or ():
                retry.extend(ident.get("RecordIdentifiersValueAsString") or ())
            return [rid for rid in retry if rid is not None], reason

        self.caller.send_all("BatchGetRecord", ids, send, tally)
        if self.tally is not None:
            with self.lock:
                self.tally.add(tally)
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
                self.caller.abort(
                    "BatchGetRecord", "UnexpectedExpiresAt",
                    f"record {result.get('RecordIdentifierValueAsString')!r} has an ExpiresAt "
                    f"this job can't parse: {expires_at!r}")
            expired = expires_ns <= self.job.now_ns
            ttl = ttl_seconds_for(values[self.event_index], expires_at)
            if ttl is None:
                log.warning("record %r: event time %r unparseable; its TTL is not carried over",
                            result.get("RecordIdentifierValueAsString"),
                            values[self.event_index])
        return (*values, expires_at, ttl, expired)


def fetch_partition(ids: Iterable[str], job: FetchJob, client=None, rng=None,
                    sleep=None, tally: Tally | None = None, clock=None) -> Iterator[tuple]:
    """BatchGetRecord for one partition's ids, ``job.max_workers`` calls in flight.

    Yields (features..., expires_at, ttl_seconds, expired) per record found online; the calls
    made are added to ``tally`` when given. ``client``/``rng``/``sleep``/``clock`` are for tests.
    """
    client = client or aws.runtime_client(job.aws, max(10, job.max_workers + 2))
    caller = Caller.paced(job.group, job.policy, job.calls_per_second, rng=rng, sleep=sleep,
                          clock=clock)
    fetcher = _Fetcher(job, client, caller, tally)
    ids = (i for i in ids if i is not None)
    for rows in bounded_map(fetcher.fetch, ids, BATCH_GET_MAX_IDS, job.max_workers, caller.stop,
                            "fsmigrate-read"):
        yield from rows
