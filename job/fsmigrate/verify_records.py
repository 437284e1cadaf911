"""Verifying one partition's records: read them back (BatchGetRecord) and compare each with
what was sent. The stage around it (sample or all, the verify/ files, the report's section) is
:mod:`fsmigrate.verify`'s; the outcomes are described there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .aws import AwsSettings
from .calls import BUDGET_S, Tally
from .eventtime import NS, instant_ns
from .groups import FRACTIONAL, INTEGRAL
from .sources.online_fetch import FetchJob, fetch_partition

MATCHED, MISSING, DIFFERENT = "matched", "missing", "different"
KEPT_NEWER, EXPIRED_SINCE = "target_kept_newer", "expired_since_written"
OUTCOMES = (MATCHED, MISSING, DIFFERENT, KEPT_NEWER, EXPIRED_SINCE)
MISMATCHES = (MISSING, DIFFERENT)  # these make the exit code 1
COUNTERS = (*OUTCOMES, "checked", "api_calls", "retried", "throttled")


@dataclass(frozen=True)
class VerifyJob:
    """Everything a partition needs to verify its records; pickled to executors."""

    aws: AwsSettings
    group: str  # the target
    columns: tuple[str, ...]  # the encoded rows' columns (features, then maybe a TTL column)
    types: tuple[tuple[str, str, bool], ...]  # (feature, type, is collection) per feature column
    record_id: str
    event_time: str
    ttl_column: str | None  # per-record TTL seconds as sent
    default_ttl: int | None  # the target's default TTL (online target, ttl policy not none)
    target_was_empty: bool
    now_ns: int
    max_workers: int = 4
    retry_budget_s: float = BUDGET_S
    calls_per_second: float | None = None

    def fetch_job(self) -> FetchJob:
        return FetchJob(aws=self.aws, group=self.group,
                        features=tuple((name, coll) for name, _, coll in self.types),
                        event_time=self.event_time, now_ns=self.now_ns,
                        max_workers=self.max_workers, retry_budget_s=self.retry_budget_s,
                        calls_per_second=self.calls_per_second)


@dataclass
class Outcome:
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in COUNTERS})
    records: list[dict[str, Any]] = field(default_factory=list)  # not matched, for verify/


# ---- comparing one record --------------------------------------------------------------------


def _same_scalar(expected: str, actual: str, kind: str) -> bool:
    if expected == actual:
        return True
    try:
        if kind == INTEGRAL:
            return int(expected) == int(actual)
        if kind == FRACTIONAL:
            e, a = float(expected), float(actual)
            return e == a or (math.isnan(e) and math.isnan(a))
    except (TypeError, ValueError):
        return False
    return False


def _same(expected: Any, actual: Any, kind: str, collection: bool) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if collection:
        return len(expected) == len(actual) and all(
            _same_scalar(e, a, kind) for e, a in zip(expected, actual, strict=True))
    return _same_scalar(expected, actual, kind)


def compare(job: VerifyJob, sent: dict[str, Any], got: dict[str, Any] | None) -> tuple[str, list]:
    """(outcome, the fields that differ) for one record: what was sent vs what was read."""
    event_ns = instant_ns(sent.get(job.event_time))
    ttl = sent.get(job.ttl_column) if job.ttl_column else None
    ttl = ttl if ttl is not None else job.default_ttl
    expires_ns = event_ns + ttl * NS if ttl is not None and event_ns is not None else None
    if got is None:
        if expires_ns is not None and expires_ns <= job.now_ns:
            return EXPIRED_SINCE, []
        return MISSING, []
    got_event_ns = instant_ns(got.get(job.event_time))
    if got_event_ns is not None and event_ns is not None and got_event_ns > event_ns:
        return KEPT_NEWER, [job.event_time]
    fields = []
    for name, kind, collection in job.types:
        if name == job.event_time:
            if got_event_ns != event_ns:
                fields.append(name)
        elif not _same(sent.get(name), got.get(name), kind, collection):
            fields.append(name)
    got_expires = instant_ns(got.get("ExpiresAt"))
    if (expires_ns is None) != (got_expires is None) or (
            expires_ns is not None and abs(got_expires - expires_ns) >= NS):
        fields.append("ExpiresAt")
    if not fields:
        return MATCHED, []
    if got_event_ns == event_ns and not job.target_was_empty:
        # Same event time: the service kept the record it had (it only replaces on a greater
        # one); with an empty target there was nothing to keep, so it is a real difference.
        return KEPT_NEWER, fields
    return DIFFERENT, fields


def verify_rows(rows: Iterable[Sequence], job: VerifyJob, client=None, sleep=None) -> Outcome:
    """Read back the records of ``rows`` (encoded, in ``job.columns`` order) and compare."""
    out = Outcome()
    pending: dict[str, dict[str, Any]] = {}  # sent, by record id, until its answer is in
    id_index = job.columns.index(job.record_id)

    def ids() -> Iterator[str]:
        for row in rows:
            sent = dict(zip(job.columns, row, strict=True))
            rid = row[id_index]
            pending[rid] = sent
            yield rid

    def note(outcome: str, fields: list, sent: dict, got: dict | None) -> None:
        out.counts[outcome] += 1
        out.counts["checked"] += 1
        if outcome != MATCHED:
            out.records.append({"record_id": sent[job.record_id], "outcome": outcome,
                                "fields": fields, "expected": _plain(sent), "actual": got})

    tally = Tally()
    names = [name for name, _, _ in job.types]
    for values in fetch_partition(ids(), job.fetch_job(), client=client, sleep=sleep,
                                  tally=tally):
        got = {k: v for k, v in zip(names, values, strict=False) if v is not None}
        if values[len(names)] is not None:
            got["ExpiresAt"] = values[len(names)]
        sent = pending.pop(got.get(job.record_id), None)
        if sent is None:
            continue  # an id we didn't ask for: nothing to compare it with
        note(*compare(job, sent, got), sent, got)
    for sent in pending.values():
        note(*compare(job, sent, None), sent, None)
    out.counts.update(api_calls=tally.api_calls, retried=tally.retried,
                      throttled=tally.throttled)
    return out


def _plain(sent: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sent.items() if v is not None}
