"""The call loop: backoff, and the retry/fail/abort decisions of each policy."""

from __future__ import annotations

import random
import threading

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from fsmigrate.calls import (
    ABORT,
    Caller,
    CallFailed,
    RetryPolicy,
    Tally,
    backoff_delay,
)
from fsmigrate.errors import Aborted
from fsmigrate.pacing import Health, RateLimiter
from fsmigrate.parallel import Stopped
from jobtools import FakeClock

# ---- backoff ----------------------------------------------------------------------------------


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


# ---- the loop, with a scripted call ----------------------------------------------------------


def error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code}  happened\n here"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class Script:
    """A call that raises or returns the next step; records how often it was called."""

    def __init__(self, *steps) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        step = self.steps.pop(0) if self.steps else "ok"
        if isinstance(step, Exception):
            raise step
        return step


def caller(policy: RetryPolicy, sleeps: list | None = None) -> Caller:
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return Caller("g", policy, rng=random.Random(1), sleep=record)


def test_retryable_errors_are_retried_with_backoff_and_tallied():
    sleeps: list[float] = []
    call = Script(error("ThrottlingException"), error("ServiceUnavailable", 503),
                  EndpointConnectionError(endpoint_url="http://x"), "done")
    tally = Tally()
    assert caller(RetryPolicy(max_attempts=5), sleeps).call("Op", call, tally) == "done"
    assert call.calls == 4 and len(sleeps) == 3
    assert (tally.api_calls, tally.retried, tally.throttled) == (4, 3, 1)


def test_permanent_error_fails_at_once_under_the_fail_policy():
    call = Script(error("ValidationError"))
    with pytest.raises(CallFailed) as info:
        caller(RetryPolicy()).call("Op", call, Tally())
    assert (info.value.code, info.value.attempts, call.calls) == ("ValidationError", 1, 1)
    assert info.value.message == "ValidationError  happened\n here"


def test_permanent_error_aborts_under_the_abort_policy_with_one_short_line():
    with pytest.raises(Aborted) as info:
        caller(RetryPolicy(on_permanent=ABORT)).call("Op", Script(error("ValidationError")),
                                                     Tally())
    assert str(info.value) == ("Op on feature group 'g' failed with ValidationError: "
                               "ValidationError happened here")


def test_systemic_error_aborts_and_stops_the_other_threads():
    c = caller(RetryPolicy())
    with pytest.raises(Aborted, match="AccessDeniedException"):
        c.call("Op", Script(error("AccessDeniedException", 403)), Tally())
    assert c.stop.is_set()
    with pytest.raises(Stopped):  # the next call of any thread stops before sending
        c.call("Op", Script("ok"), Tally())


def test_exhausted_attempts_fail_or_abort_as_the_policy_says():
    call = Script(*[error("InternalFailure", 500)] * 3)
    with pytest.raises(CallFailed) as info:
        caller(RetryPolicy(max_attempts=3)).call("Op", call, Tally())
    assert (info.value.code, info.value.attempts, call.calls) == ("InternalFailure", 3, 3)
    with pytest.raises(Aborted, match="after 2 attempts"):
        caller(RetryPolicy(max_attempts=2, on_exhausted=ABORT)).call(
            "Op", Script(*[error("InternalFailure", 500)] * 2), Tally())


def test_throttles_have_their_own_budget_when_the_policy_gives_one():
    call = Script(*[error("ThrottlingException")] * 6, "ok")
    policy = RetryPolicy(max_attempts=2, throttle_attempts=10)
    assert caller(policy).call("Op", call, Tally()) == "ok"  # 6 throttles > max_attempts
    with pytest.raises(CallFailed):
        caller(RetryPolicy(max_attempts=2, throttle_attempts=3)).call(
            "Op", Script(*[error("ThrottlingException")] * 3), Tally())


def test_send_all_resends_what_is_left_and_resets_on_progress():
    # Each call answers one item: with reset_on_progress, 2 attempts suffice for 5 items.
    sent: list[list[int]] = []

    def send(pending):
        sent.append(list(pending))
        return pending[1:], ("Unprocessed", "later")

    tally = Tally()
    caller(RetryPolicy(max_attempts=2, reset_on_progress=True)).send_all(
        "Op", [1, 2, 3, 4, 5], send, tally, cost=len)
    assert sent == [[1, 2, 3, 4, 5], [2, 3, 4, 5], [3, 4, 5], [4, 5], [5]]
    assert (tally.api_calls, tally.retried) == (5, 4 + 3 + 2 + 1)
    with pytest.raises(CallFailed) as info:  # without the reset the same run gives up
        caller(RetryPolicy(max_attempts=2)).send_all("Op", [1, 2, 3], send, Tally())
    assert info.value.items == [3] and info.value.code == "Unprocessed"


def test_the_limiter_paces_every_attempt():
    class Counting(RateLimiter):
        def __init__(self):
            super().__init__(None)
            self.acquired: list[int] = []
            self.outcomes: list[str | None] = []

        def acquire(self, n=1):
            self.acquired.append(n)
            return 0.0

        def feedback(self, kind, n=1):
            self.outcomes.append(kind)

    limiter = Counting()
    c = Caller("g", RetryPolicy(), limiter, threading.Event(), sleep=lambda s: None)
    c.call("Op", Script(error("ThrottlingException"), "ok"), Tally())
    assert limiter.acquired == [1, 1]
    assert limiter.outcomes == ["throttled", None]


def budget_caller(clock: FakeClock, budget: float) -> Caller:
    return Caller("g", RetryPolicy(max_attempts=None, budget_s=budget, max_delay_s=2.0),
                  rng=random.Random(1), sleep=clock.sleep, clock=clock,
                  health=Health(clock=clock, rng=random.Random(2)))


def test_retries_are_bounded_by_time_not_attempts():
    clock = FakeClock()
    call = Script(*[error("InternalFailure", 500)] * 40, "done")
    assert budget_caller(clock, 300.0).call("Op", call, Tally()) == "done"  # 40 attempts
    # an item failing for longer than the budget while other calls succeed fails alone
    clock = FakeClock()
    c = budget_caller(clock, 5.0)

    def flaky():
        c.health.answered()  # the others' calls keep succeeding: no outage
        raise error("InternalFailure", 500)

    with pytest.raises(CallFailed):
        c.call("Op", flaky, Tally())
    assert 5.0 <= clock.now - 1000.0 < 10.0


def test_an_outage_longer_than_the_budget_aborts():
    clock = FakeClock()
    call = Script(*[error("ServiceUnavailable", 503)] * 1000)
    with pytest.raises(Aborted, match="every call has failed for .* retry budget"):
        budget_caller(clock, 20.0).call("Op", call, Tally())
    assert 20.0 <= clock.now - 1000.0 < 30.0
    assert call.calls < 25  # waited at the gate, probing, instead of hammering


def test_a_429_is_throttling_whatever_its_code():
    from fsmigrate import aws

    assert aws.classify("TooManyRequestsException", 429) == aws.THROTTLED
    assert aws.classify("Unknown", 429) == aws.THROTTLED
