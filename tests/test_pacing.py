"""Pacing and health: the rate limiter, adaptive (AIMD) pacing and the outage gate, on a fake
clock."""

from __future__ import annotations

import random
import threading

import pytest
from fsmigrate.pacing import AdaptiveLimiter, Health, OutageTooLong, RateLimiter
from jobtools import FakeClock

# ---- rate limiter ------------------------------------------------------------------------------


def test_rate_limiter_holds_the_rate_with_a_fake_clock():
    clock = FakeClock()
    limiter = RateLimiter(100.0, burst=10, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(100):
        limiter.acquire(10)  # 1,000 records at 100/s
    # the first 10 come from the full bucket, the other 990 take 9.9 s
    assert clock.now - start == pytest.approx(9.9)


def test_rate_limiter_refills_while_idle_but_not_beyond_its_burst():
    clock = FakeClock()
    limiter = RateLimiter(50.0, burst=5, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(5) == 0.0
    clock.now += 60.0  # a minute idle refills only up to the burst
    assert limiter.acquire(5) == 0.0
    assert limiter.acquire(5) == pytest.approx(0.1)


def test_rate_limiter_requests_larger_than_the_bucket_wait_their_share():
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=1, clock=clock, sleep=clock.sleep)
    limiter.acquire(1)
    assert limiter.acquire(25) == pytest.approx(2.5)


def test_rate_limiter_queues_concurrent_callers():
    # The clock stands still, so every caller's wait is its place in the queue: the lock must
    # hand out distinct reservations 0.25 s apart.
    clock = FakeClock()
    limiter = RateLimiter(100.0, burst=25, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            w = limiter.acquire(25)
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([0.25 * i for i in range(80)])


def test_rate_limiter_unlimited_never_sleeps():
    def no_sleep(seconds):
        raise AssertionError("slept")

    limiter = RateLimiter(None, sleep=no_sleep)
    for _ in range(1000):
        assert limiter.acquire(25) == 0.0


# ---- adaptive pacing and outages, on a fake clock ------------------------------------------


class BucketTarget:
    """A target that throttles at `k` requests/s: a token bucket with a one-second burst, as
    the emulator's ``throttle_tps``."""

    def __init__(self, k: float, clock: FakeClock) -> None:
        self.k, self.clock = k, clock
        self.tokens, self.last = k, clock.now

    def answer(self) -> bool:
        now = self.clock.now
        self.tokens = min(self.k, self.tokens + (now - self.last) * self.k)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def paced_run(k: float, seconds: float, ceiling: float | None = None):
    """One sender through an AdaptiveLimiter against BucketTarget(k), 0.2 ms per call;
    (time, ok) of every call."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(ceiling, clock=clock, sleep=clock.sleep)
    target = BucketTarget(k, clock)
    calls = []
    end = clock.now + seconds
    while clock.now < end:
        limiter.acquire(1)
        ok = target.answer()
        calls.append((clock.now, ok))
        limiter.feedback(None if ok else "throttled", 1)
        clock.now += 0.0002
    return calls, clock.now - seconds


@pytest.mark.parametrize("k", [20.0, 200.0, 2000.0])
def test_adaptive_pacing_settles_near_the_targets_limit_with_few_throttles(k):
    calls, start = paced_run(k, 70.0)
    settled = [ok for t, ok in calls if t >= start + 10.0]  # judged after 10 s
    rate = sum(settled) / 60.0
    throttled = settled.count(False) / len(settled)
    assert rate >= 0.9 * k, (rate, k)
    assert throttled <= 0.05, throttled


def test_adaptive_pacing_never_exceeds_its_ceiling():
    calls, start = paced_run(1000.0, 20.0, ceiling=50.0)
    sent = [t for t, _ in calls if t >= start + 1.0]
    assert len(sent) / 19.0 <= 50.0 * 1.01
    assert all(ok for _, ok in calls)  # under the target's limit: never throttled


def test_health_gates_callers_during_an_outage_and_lets_one_probe():
    clock = FakeClock()
    health = Health(quiet_s=1.0, probe_base_s=0.5, probe_cap_s=4.0, clock=clock,
                    rng=random.Random(1))
    stop = threading.Event()
    health.failed()
    assert health.wait_turn(stop, clock.sleep, None) == 0.0  # one failure is not an outage
    clock.now += 1.5
    health.failed()
    assert health.outage_seconds() == pytest.approx(1.5)
    waited_from = clock.now
    assert health.wait_turn(stop, clock.sleep, None) > 0  # waits, then this caller probes
    assert clock.now > waited_from
    # a second caller waits while the probe is in flight ...
    before = len(clock.sleeps)
    health.answered()  # ... and the probe's answer reopens the gate
    assert health.wait_turn(stop, clock.sleep, None) == 0.0
    assert len(clock.sleeps) == before
    # probes back off exponentially up to the cap
    health.failed()
    clock.now += 1.0
    delays = []
    for _ in range(8):
        health.failed()
        delays.append(health._next_probe - clock.now)
    assert delays[-1] <= 4.0 and delays[-1] > delays[0]
    with pytest.raises(OutageTooLong):
        clock.now += 10.0
        health.wait_turn(stop, clock.sleep, 5.0)

