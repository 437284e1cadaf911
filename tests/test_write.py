"""The per-partition writer: unit tests for its parts, integration tests against the emulator."""

from __future__ import annotations

import random
import threading
import types

import pytest
from fsmigrate.aws import AwsSettings, runtime_client
from fsmigrate.errors import BadInput
from fsmigrate.write import RateLimiter, WriterSettings, backoff_delay, resolve_write_api

# ---- unit: rate limiter, backoff, write api, settings --------------------------------------


class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


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


class UpperBound:
    def uniform(self, a, b):
        return b


def test_backoff_grows_exponentially_up_to_the_cap():
    delays = [backoff_delay(a, 0.05, 1.0, UpperBound()) for a in range(8)]
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert backoff_delay(5000, 0.05, 10.0, UpperBound()) == 10.0  # no overflow


def test_backoff_is_full_jitter_within_bounds():
    rng = random.Random(7)
    for attempt in range(10):
        ceiling = min(2.0, 0.01 * 2**attempt)
        samples = [backoff_delay(attempt, 0.01, 2.0, rng) for _ in range(500)]
        assert all(0.0 <= d <= ceiling for d in samples)
        # full jitter spreads over the whole range, not just near the ceiling
        assert min(samples) < 0.1 * ceiling
        assert max(samples) > 0.9 * ceiling


def test_resolve_write_api():
    client = runtime_client(AwsSettings(endpoint_url="http://127.0.0.1:9"))
    assert resolve_write_api("auto", client) == "batch"
    assert resolve_write_api("batch", client) == "batch"
    assert resolve_write_api("put", client) == "put"
    with pytest.raises(BadInput):
        resolve_write_api("bulk", client)

    old = types.SimpleNamespace(meta=types.SimpleNamespace(
        service_model=types.SimpleNamespace(operation_names=["PutRecord", "GetRecord"])))
    assert resolve_write_api("auto", old) == "put"
    with pytest.raises(BadInput, match="BatchWriteRecord"):
        resolve_write_api("batch", old)


def test_writer_settings_are_validated():
    aws = AwsSettings()
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a", "b"), "c")
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a", "b"), "a", ttl_column="x")
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a",), "a", write_api="bulk")
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a",), "a", tps_per_task=0)
