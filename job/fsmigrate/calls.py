"""The one call loop every AWS operation of the job goes through.

stop check -> pace (rate limiter) -> call -> classify (:func:`fsmigrate.aws.describe_error`) ->
retry with backoff | fail | abort. What "fail" and "abort" mean, and how many attempts an
operation gets, is its :class:`RetryPolicy`: the writer fails a record on a permanent error, the
reader aborts. Systemic errors (access denied, group gone) always abort: the other threads of
the task stop at their next check and :class:`fsmigrate.errors.Aborted` ends the task.

The seams for later changes are here and only here: the limiter is an object with
``acquire``/``feedback`` (adaptive pacing can live behind them), the retry budget is a policy
field.
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
from .parallel import check

T = TypeVar("T")

FAIL = "fail"
ABORT = "abort"


def backoff_delay(attempt: int, base: float, cap: float, rng) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)); attempt 0 is the first retry."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 60))
    return rng.uniform(0.0, ceiling)


class RateLimiter:
    """Thread-safe token bucket in requests (records or calls) per second; None = unlimited.

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

    def feedback(self, kind: str | None) -> None:
        """The outcome of a call (an aws kind, None for success). A fixed rate ignores it."""


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
    max_attempts: int = 8
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0
    # None: throttles count as attempts; else a separate budget for them (back-pressure is not
    # a broken record).
    throttle_attempts: int | None = None
    # Attempts count only while no progress is made (batch reads: a call that answered some ids
    # starts the count again).
    reset_on_progress: bool = False
    on_permanent: str = FAIL  # a whole call rejected as invalid
    on_exhausted: str = FAIL  # attempts ran out


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
                 sleep: Callable[[float], Any] | None = None,
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

    @classmethod
    def paced(cls, group: str, policy: RetryPolicy, rate: float | None, rng=None,
              clock: Callable[[], float] | None = None,
              sleep: Callable[[float], Any] | None = None,
              gone: Callable[[], bool] | None = None) -> Caller:
        """A caller with its own stop event and a limiter of `rate` requests/s (None: no cap)."""
        stop = threading.Event()
        wait = sleep if sleep is not None else stop.wait
        return cls(group, policy, RateLimiter(rate, clock=clock, sleep=wait), stop, rng, wait,
                   gone)

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
        last = ("Unprocessed", "entries returned unprocessed")
        while pending:
            check(self.stop)
            self.limiter.acquire(cost(pending))
            check(self.stop)
            if attempts:
                tally.retried += len(pending)
            attempts += 1
            tally.api_calls += 1
            try:
                retry, reason = send(pending)
            except aws.AWS_ERRORS as exc:
                kind, code, message = aws.describe_error(exc)
                self.limiter.feedback(kind)
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
                self.limiter.feedback(None)
            if not retry:
                return
            last = reason or last
            progress = len(retry) < len(pending)
            strikes = 1 if p.reset_on_progress and progress else strikes + 1
            if p.throttle_attempts is None:
                exhausted = strikes >= p.max_attempts
            else:
                exhausted = (throttles >= p.throttle_attempts
                             or strikes - throttles >= p.max_attempts)
            if exhausted:
                if p.on_exhausted == ABORT:
                    self.abort(op, last[0], f"{len(retry)} still unanswered after {strikes} "
                                            f"attempts: {last[1]}")
                raise CallFailed(last[0], last[1], attempts, retry)
            pending = retry
            self.sleep(backoff_delay(strikes - 1, p.base_delay_s, p.max_delay_s, self.rng))
            check(self.stop)
