"""Outages pause, throttling slows: the writer against the emulator's faults, through real
boto3 (the time-bounded retries, the shared health gate and the adaptive pacing of calls.py)."""

from __future__ import annotations

import threading
import time

import pytest
from fsmigrate.errors import Aborted
from fsmigrate.write import write_partition
from test_write import make_group, make_rows, settings_for


def budgeted(emulator, group, budget: float, **kw):
    kw = {"write_api": "put", "max_workers": 4, "batch_size": 20, **kw}
    return settings_for(emulator, group, max_attempts=None, retry_budget_s=budget,
                        base_delay_s=0.02, max_delay_s=1.0, **kw)


def test_an_outage_shorter_than_the_budget_ends_with_nothing_failed(emulator, sm, faults):
    group = make_group(sm)
    rows = make_rows(120)
    faults(outage_seconds=3)
    before = emulator.stats()["operations"].get("PutRecord", {}).get("requests", 0)
    started = time.monotonic()

    result = write_partition(rows, budgeted(emulator, group, 30.0))

    assert (result.written, result.failed) == (len(rows), [])
    assert time.monotonic() - started >= 3.0
    refused = emulator.stats()["operations"]["PutRecord"]["requests"] - before - len(rows)
    # the threads waited at the gate while one probed: a handful of calls per second, not a
    # storm of 4 threads retrying every ~50 ms for 3 s
    assert 0 < refused <= 40, refused


def test_an_outage_longer_than_the_budget_aborts(emulator, sm, faults):
    group = make_group(sm)
    faults(outage_seconds=60)
    started = time.monotonic()
    with pytest.raises(Aborted, match="every call has failed for .* retry budget"):
        write_partition(make_rows(40), budgeted(emulator, group, 2.0))
    assert 2.0 <= time.monotonic() - started < 10.0


@pytest.mark.parametrize("fault", [{"reset_rate": 0.2, "seed": 4},
                                   {"throttle_tps": 30, "throttle_style": "429"},
                                   {"error_rate": 0.05, "seed": 2}])
def test_resets_429s_and_5xx_end_with_every_record_written(emulator, sm, faults, fault):
    group = make_group(sm)
    rows = make_rows(150)
    faults(**fault)

    result = write_partition(rows, budgeted(emulator, group, 60.0))

    assert (result.written, result.failed) == (len(rows), [])
    assert result.retried > 0


def test_adaptive_pacing_settles_under_a_throttling_target(emulator, sm, faults):
    """No max_tps, a target that takes K requests/s: after a settling time the job runs at
    >= 90 % of K with <= 5 % of its calls throttled. Judged by ratios of the emulator's counts
    between two samples, not by wall-clock thresholds."""
    group = make_group(sm)
    k = 40.0
    faults(throttle_tps=k)
    rows = make_rows(int(k * 16))
    settings = budgeted(emulator, group, 60.0, max_workers=4, batch_size=10)
    done = threading.Event()
    result = []
    worker = threading.Thread(target=lambda: (result.append(write_partition(rows, settings)),
                                              done.set()))

    def sample():
        op = emulator.stats()["operations"].get("PutRecord", {})
        return time.monotonic(), op.get("requests", 0), op.get("errors", {})

    worker.start()
    time.sleep(4.0)  # settling (the first second also drains the target's full bucket)
    t0, req0, err0 = sample()
    time.sleep(8.0)
    t1, req1, err1 = sample()
    worker.join(120)
    assert done.is_set() and result[0].failed == []

    def throttled(errors):
        return errors.get("ThrottlingException", 0) if isinstance(errors, dict) else 0

    calls = req1 - req0
    refused = throttled(err1) - throttled(err0)
    pace = (calls - refused) / (t1 - t0)
    assert pace >= 0.9 * k, (pace, k)
    assert refused <= 0.05 * calls, (refused, calls)
