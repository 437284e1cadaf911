"""Pacing of the calls to a target, and the state the tasks of one Python worker share.

PySpark reuses workers, so later tasks start from what earlier ones learnt; :func:`shared`
keeps one object per process and key (feature group):

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
from collections.abc import Callable
from typing import Any, TypeVar

from .parallel import check

T = TypeVar("T")


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
