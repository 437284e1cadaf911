"""The one call loop every AWS operation of the job goes through.

stop check -> pace (rate limiter) -> call -> classify (:func:`fsmigrate.aws.describe_error`) ->
retry with backoff | fail | abort. What "fail" and "abort" mean, and how many attempts an
operation gets, is its :class:`RetryPolicy`: the writer fails a record on a permanent error, the
reader aborts. Systemic errors (access denied, group gone) always abort: the other threads of
the task stop at their next check and :class:`fsmigrate.errors.Aborted` ends the task.

Retries are bounded by time (``RetryPolicy.budget_s``) as well as, optionally, by attempts.
Pacing and the target's health, shared by the tasks of one Python worker, are
:mod:`fsmigrate.pacing`'s.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import aws
from .errors import Aborted
from .pacing import AdaptiveLimiter, Health, OutageTooLong, RateLimiter, shared
from .parallel import check

T = TypeVar("T")

FAIL = "fail"
ABORT = "abort"
BUDGET_S = 300.0  # migration.retry_budget_seconds' default


def backoff_delay(attempt: int, base: float, cap: float, rng) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)); attempt 0 is the first retry."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 60))
    return rng.uniform(0.0, ceiling)


@dataclass
class Tally:
    """What the calls of one piece of work cost. Throttles: throttled calls and entries."""

    retried: int = 0  # items (records, ids) sent again
    throttled: int = 0
    api_calls: int = 0

    def add(self, other: Tally) -> None:
        self.retried += other.retried
        self.throttled += other.throttled
        self.api_calls += other.api_calls


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int | None = 8  # None: bounded by budget_s only
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0
    # None: throttles count as attempts; else a separate budget for them (back-pressure is not
    # a broken record).
    throttle_attempts: int | None = None
    # Attempts count only while no progress is made (batch reads: a call that answered some ids
    # starts the count again).
    reset_on_progress: bool = False
    on_permanent: str = FAIL  # a whole call rejected as invalid
    on_exhausted: str = FAIL  # attempts or budget ran out
    # Seconds from the first failure of a call's items after which they are given up (as
    # on_exhausted says); an outage (every call failing) this long aborts. None: no time bound.
    budget_s: float | None = None


class CallFailed(Exception):
    """The operation failed under a FAIL policy; the items are still the caller's to report."""

    def __init__(self, code: str, message: str, attempts: int, items: list | None = None) -> None:
        super().__init__(code, message, attempts)
        self.code, self.message, self.attempts = code, message, attempts
        self.items = items or []  # what was still pending


# send(pending) -> (items to send again, (code, message) why) for calls answered in part
Send = Callable[[list[T]], tuple[list[T], tuple[str, str] | None]]


class Caller:
    """The call loop for one group, shared by the threads of one task (or the driver)."""

    def __init__(self, group: str, policy: RetryPolicy, limiter: RateLimiter | None = None,
                 stop: threading.Event | None = None, rng=None,
                 sleep: Callable[[float], Any] | None = None, health: Health | None = None,
                 clock: Callable[[], float] | None = None,
                 gone: Callable[[], bool] | None = None) -> None:
        self.group = group
        # gone() confirms a "not found" (aws.NOT_FOUND); without it one aborts at once
        self.gone = gone
        self.policy = policy
        self.stop = stop or threading.Event()
        # Without an injected sleep, waits end early once the task is aborted.
        self.sleep = sleep or self.stop.wait
        self.limiter = limiter or RateLimiter(None)
        self.rng = rng or random.Random()
        self.clock = clock or time.monotonic
        self.health = health or Health(clock=self.clock, rng=self.rng)

    @classmethod
    def paced(cls, group: str, policy: RetryPolicy, rate: float | None, rng=None,
              clock: Callable[[], float] | None = None,
              sleep: Callable[[float], Any] | None = None,
              gone: Callable[[], bool] | None = None) -> Caller:
        """A caller with its own stop event, adaptive pacing under a hard cap of `rate`
        requests/s (None: no cap) and the process's health of the group's target.

        With injected clock or sleep (tests) the limiter and health are the caller's own; in
        a job they are shared by the tasks a Python worker runs, one after another or at once.
        """
        stop = threading.Event()
        wait = sleep if sleep is not None else stop.wait
        if clock is not None or sleep is not None:
            return cls(group, policy, AdaptiveLimiter(rate, clock=clock, sleep=wait), stop, rng,
                       wait, clock=clock, gone=gone)
        limiter = shared(("limiter", group, rate), lambda: AdaptiveLimiter(rate))
        health = shared(("health", group), Health)
        return cls(group, policy, limiter, stop, rng, wait, health, gone=gone)

    def abort(self, op: str, code: str, message: str) -> None:
        self.stop.set()
        raise Aborted(f"{op} on feature group {self.group!r} failed with {code}: "
                      f"{aws.shorten(message)}") from None

    def not_found(self, op: str, code: str, message: str) -> None:
        """Abort on a "not found" once ``gone()`` confirms it; otherwise it is retried."""
        if self.gone is None:
            self.abort(op, code, message)
        if self.gone():
            self.abort(op, code, f"{message} (DescribeFeatureGroup: ResourceNotFound)")

    def entry_error(self, op: str, code: str, message: str, tally: Tally) -> str:
        """The kind of an error returned for one entry of a batch call; aborts when systemic."""
        kind = aws.classify(code, None, message)
        if kind == aws.NOT_FOUND:
            self.not_found(op, code, message)
        if kind == aws.SYSTEMIC:
            self.abort(op, code, message)
        if kind == aws.THROTTLED:
            tally.throttled += 1
        self.limiter.feedback(kind)
        return kind

    def _outage_abort(self, op: str, seconds: float, last: tuple[str, str]) -> None:
        self.abort(op, last[0], f"every call has failed for {seconds:.0f} s, longer than the "
                                f"retry budget (migration.retry_budget_seconds): {last[1]}")

    def call(self, op: str, fn: Callable[[], Any], tally: Tally) -> Any:
        """fn() (one request) under the policy; its response."""
        out: list[Any] = []

        def send(pending: list[None]) -> tuple[list[None], None]:
            out.append(fn())
            return [], None

        self.send_all(op, [None], send, tally)
        return out[0]

    def send_all(self, op: str, items: Sequence[T], send: Send, tally: Tally,
                 cost: Callable[[list[T]], int] = lambda pending: 1) -> None:
        """send(pending) until it leaves nothing to send again, under the policy.

        ``send`` handles what a response answers (written, failed, rows) and returns what is to
        be sent again. A whole call that raises is classified here: systemic aborts, permanent
        fails or aborts as the policy says, anything else is sent again after a backoff.
        """
        p = self.policy
        pending = list(items)
        attempts = strikes = throttles = 0
        first_failure: float | None = None
        last = ("Unprocessed", "entries returned unprocessed")
        while pending:
            check(self.stop)
            try:
                self.health.wait_turn(self.stop, self.sleep, p.budget_s)
            except OutageTooLong as out:
                self._outage_abort(op, out.seconds, last)
            n = cost(pending)
            self.limiter.acquire(n)
            check(self.stop)
            if attempts:
                tally.retried += len(pending)
            attempts += 1
            tally.api_calls += 1
            try:
                retry, reason = send(pending)
            except aws.AWS_ERRORS as exc:
                kind, code, message = aws.describe_error(exc)
                self.limiter.feedback(kind, n)
                if kind == aws.RETRYABLE:
                    self.health.failed()
                else:
                    self.health.answered()
                if kind == aws.NOT_FOUND:
                    self.not_found(op, code, message)
                if kind == aws.SYSTEMIC:
                    self.abort(op, code, message)
                if kind == aws.PERMANENT:
                    if p.on_permanent == ABORT:
                        self.abort(op, code, message)
                    raise CallFailed(code, message, attempts, pending) from None
                if kind == aws.THROTTLED:
                    tally.throttled += 1
                    throttles += 1
                retry, reason = pending, (code, message)
            else:
                self.health.answered()
                self.limiter.feedback(None, n * (len(pending) - len(retry)) // len(pending))
            if not retry:
                return
            last = reason or last
            now = self.clock()
            first_failure = now if first_failure is None else first_failure
            progress = len(retry) < len(pending)
            strikes = 1 if p.reset_on_progress and progress else strikes + 1
            if p.max_attempts is None:
                exhausted = False
            elif p.throttle_attempts is None:
                exhausted = strikes >= p.max_attempts
            else:
                exhausted = (throttles >= p.throttle_attempts
                             or strikes - throttles >= p.max_attempts)
            over_budget = p.budget_s is not None and now - first_failure >= p.budget_s
            if over_budget:
                outage = self.health.outage_seconds()
                if outage >= p.budget_s:
                    self._outage_abort(op, outage, last)
            if exhausted or over_budget:
                if p.on_exhausted == ABORT:
                    self.abort(op, last[0], f"{len(retry)} still unanswered after {strikes} "
                                            f"attempts: {last[1]}")
                raise CallFailed(last[0], last[1], attempts, retry)
            pending = retry
            self.sleep(backoff_delay(strikes - 1, p.base_delay_s, p.max_delay_s, self.rng))
            check(self.stop)

