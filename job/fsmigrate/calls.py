"""The one call loop every AWS operation of the job goes through.

stop check -> pace (rate limiter) -> call -> classify (:func:`fsmigrate.aws.describe_error`) ->
retry with backoff | fail | abort. What "fail" and "abort" mean, and how many attempts an
operation gets, is its :class:`RetryPolicy`: the writer fails a record on a permanent error, the
reader aborts. Systemic errors (access denied, group gone) always abort: the other threads of
the task stop at their next check and :class:`fsmigrate.errors.Aborted` ends the task.

Retries are bounded by time (``RetryPolicy.budget_s``) as well as, optionally, by attempts.
Two pieces of state are shared by every task of one Python worker process (PySpark reuses
workers, so later tasks start from what earlier ones learnt), keyed by feature group:

* :class:`Health`: when every call has failed (5xx, connection errors) for a second, callers
  stop sending and one probes at a time with exponential backoff; the first answer reopens the
  gate. An outage longer than the retry budget aborts the task (exit 3, resumable).
* :class:`AdaptiveLimiter`: AIMD pacing under an optional hard cap (``max_tps``): on throttling
  the rate drops to what is getting through (at most once per hold time), while calls are
  paced it grows a few percent per second.
"""

from __future__ import annotations

import os
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

    def feedback(self, kind: str | None, n: int = 1) -> None:
        """The outcome of a call of n tokens (an aws kind, None for success). A fixed rate
        ignores it."""


class AdaptiveLimiter(RateLimiter):
    """AIMD over a token bucket: `ceiling` (None: none) is a hard cap, never exceeded.

    Unlimited (or at the ceiling) until the first throttle; then the rate becomes what got
    through in the last second, and every later throttle multiplies it by `decrease`, at most
    once per `hold_s` (the throttles of one overshoot arrive together). While acquires have to
    wait (the limiter is what holds the pace) the rate grows by `increase` per second. A target
    that throttles at K settles a little under K with few throttled calls: the emulator's and
    the service's token buckets absorb the short overshoots.
    """

    def __init__(self, ceiling: float | None, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Any] | None = None, decrease: float = 0.9,
                 increase: float = 0.05, hold_s: float = 0.5, min_rate: float = 0.5) -> None:
        super().__init__(ceiling, clock=clock, sleep=sleep)
        self.ceiling = ceiling
        self.decrease, self.increase = decrease, increase
        self.hold_s, self.min_rate = hold_s, min_rate
        self._ok: list[tuple[float, int]] = []  # (time, tokens) of recent successes
        self._started = self._clock()
        self._decreased = float("-inf")
        self._grown = self._started

    def _set_rate(self, rate: float) -> None:
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        self.rate = max(self.min_rate, rate)
        self.capacity = max(1.0, self.rate / 4.0)
        self._tokens = min(self._tokens, self.capacity)

    def acquire(self, n: int = 1) -> float:
        waited = super().acquire(n)
        if waited > 0 and self.rate is not None and (
                self.ceiling is None or self.rate < self.ceiling):
            with self._lock:
                now = self._clock()
                self._set_rate(self.rate * (1.0 + self.increase * min(now - self._grown, 1.0)))
                self._grown = now
        return waited

    def feedback(self, kind: str | None, n: int = 1) -> None:
        from .aws import THROTTLED

        with self._lock:
            now = self._clock()
            if kind is None:
                self._ok.append((now, n))
                if len(self._ok) > 4096 or (self._ok and self._ok[0][0] < now - 2.0):
                    self._ok = [e for e in self._ok if e[0] >= now - 1.0]
                return
            # hold: the calls in flight when we slowed down, and those the target's emptied
            # bucket still refuses, are throttled too: one decrease answers them all
            if kind != THROTTLED or now - self._decreased < self.hold_s:
                return
            self._decreased = self._grown = now
            if self.rate is None or self.rate == self.ceiling:
                # what got through in the last second is the target's answer to our pace
                got = sum(k for t, k in self._ok if t >= now - 1.0)
                base = got if got > 0 else (self.rate or 10.0) / 2
                self._set_rate(min(base, self.rate or base))
            else:
                self._set_rate(self.rate * self.decrease)


class Health:
    """Whether the target answers, shared by the callers of one process for one group.

    Down when every call has failed (5xx, connection errors: kind RETRYABLE) for `quiet_s`.
    While down, callers wait at :meth:`wait_turn`; one at a time probes, the probes backing
    off exponentially (jittered) up to `probe_cap_s`. Any answer (success, throttle, a refusal)
    reopens the gate.
    """

    def __init__(self, quiet_s: float = 1.0, probe_base_s: float = 0.5, probe_cap_s: float = 8.0,
                 clock: Callable[[], float] | None = None, rng=None) -> None:
        self.quiet_s, self.probe_base_s, self.probe_cap_s = quiet_s, probe_base_s, probe_cap_s
        self._clock = clock or time.monotonic
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self._probe_delay = probe_base_s
        self._next_probe = 0.0
        self._probing_until = 0.0  # a probe in flight (expires: its thread may have stopped)
        self.waits = 0  # seconds spent waiting at the gate, summed over threads (for progress)

    def outage_seconds(self) -> float:
        """How long every call has failed, once that has lasted quiet_s; else 0."""
        with self._lock:
            return self._down_for(self._clock())

    def _down_for(self, now: float) -> float:
        if self._failing_since is None or now - self._failing_since < self.quiet_s:
            return 0.0
        return now - self._failing_since

    def answered(self) -> None:
        with self._lock:
            self._failing_since = None
            self._probe_delay = self.probe_base_s
            self._probing_until = 0.0

    def failed(self) -> None:
        with self._lock:
            now = self._clock()
            if self._failing_since is None:
                self._failing_since = now
            self._probing_until = 0.0
            if self._down_for(now):
                self._next_probe = now + self._probe_delay * self._rng.uniform(0.5, 1.0)
                self._probe_delay = min(self.probe_cap_s, self._probe_delay * 2)

    def wait_turn(self, stop: threading.Event, sleep: Callable[[float], Any],
                  budget_s: float | None) -> float:
        """Return when this caller may send (the gate is open, or it is this caller's turn
        to probe); the outage's length so far. Raises :class:`OutageTooLong` past budget_s."""
        while True:
            with self._lock:
                now = self._clock()
                down = self._down_for(now)
                if not down:
                    return 0.0
                if budget_s is not None and down >= budget_s:
                    raise OutageTooLong(down)
                if now >= self._next_probe and now >= self._probing_until:
                    self._probing_until = now + 60.0
                    return down
                wait = min(max(self._next_probe - now, 0.05), 1.0)
            sleep(wait)
            check(stop)


class OutageTooLong(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


_shared_lock = threading.Lock()
_shared: dict[tuple, Any] = {}


def shared(key: tuple, make: Callable[[], T]) -> T:
    """One object per process and key (the pid too: a forked child starts afresh)."""
    key = (os.getpid(), *key)
    with _shared_lock:
        obj = _shared.get(key)
        if obj is None:
            obj = _shared[key] = make()
        return obj


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

