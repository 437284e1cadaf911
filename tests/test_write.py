"""The per-partition writer: unit tests for its parts, integration tests against the emulator."""

from __future__ import annotations

import random
import threading
import time
import types
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fsmigrate.aws import AwsSettings, runtime_client
from fsmigrate.errors import Aborted, BadInput
from fsmigrate.write import (
    RateLimiter,
    WriterSettings,
    backoff_delay,
    resolve_write_api,
    write_partition,
)

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


# ---- integration: write_partition against the emulator through real boto3 -----------------

BASE = [("rid", "String"), ("ts", "String"), ("n", "Integral"), ("x", "Fractional"),
        ("s", "String")]
COLUMNS = tuple(name for name, _ in BASE)
EVENT_TIME = "2024-05-01T12:00:00Z"


def create_group(sm, features=BASE, in_memory=False) -> str:
    name = f"write-{uuid.uuid4().hex[:12]}"
    online = {"EnableOnlineStore": True}
    if in_memory:
        online["StorageType"] = "InMemory"
    defs = []
    for feature in features:
        fd = {"FeatureName": feature[0], "FeatureType": feature[1]}
        if len(feature) > 2:
            fd["CollectionType"] = feature[2]
        defs.append(fd)
    sm.create_feature_group(FeatureGroupName=name, RecordIdentifierFeatureName="rid",
                            EventTimeFeatureName="ts", FeatureDefinitions=defs,
                            OnlineStoreConfig=online)
    assert sm.describe_feature_group(FeatureGroupName=name)["FeatureGroupStatus"] == "Created"
    return name


def make_rows(n: int, prefix: str = "r") -> list[tuple]:
    return [(f"{prefix}{i:05d}", EVENT_TIME, str(i), f"{i / 4}", f"text {i}") for i in range(n)]


def read_back(fsr, group: str, ids: list[str]) -> dict[str, dict]:
    """{record id: {feature: value}} for the ids that exist (plus '_expires' when set)."""
    out: dict[str, dict] = {}
    for start in range(0, len(ids), 100):
        resp = fsr.batch_get_record(
            Identifiers=[{"FeatureGroupName": group,
                          "RecordIdentifiersValueAsString": ids[start:start + 100]}],
            ExpirationTimeResponse="Enabled")
        assert not resp["Errors"] and not resp["UnprocessedIdentifiers"]
        for rec in resp["Records"]:
            values = {fv["FeatureName"]: fv.get("ValueAsString", fv.get("ValueAsStringList"))
                      for fv in rec["Record"]}
            if "ExpiresAt" in rec:
                values["_expires"] = rec["ExpiresAt"]
            out[rec["RecordIdentifierValueAsString"]] = values
    return out


def settings_for(emulator, group: str, **kw) -> WriterSettings:
    kw.setdefault("columns", COLUMNS)
    kw.setdefault("record_id_name", "rid")
    kw.setdefault("base_delay_s", 0.005)
    kw.setdefault("max_delay_s", 0.1)
    return WriterSettings(aws=AwsSettings(endpoint_url=emulator.url), target_group=group, **kw)


@pytest.fixture
def faults(emulator):
    """Set emulator faults for one test; cleared afterwards whatever happens."""
    yield emulator.faults
    emulator.faults()


@pytest.mark.parametrize("api", ["batch", "put"])
def test_all_records_land(emulator, sm, fsr, api):
    group = create_group(sm)
    rows = make_rows(257 if api == "batch" else 60)
    # some values missing: omitted, never sent as "None"
    rows[3] = (rows[3][0], EVENT_TIME, None, "1.5", None)
    rows[4] = (rows[4][0], EVENT_TIME, "4", None, "")
    settings = settings_for(emulator, group, write_api=api, batch_size=30, max_workers=3)

    result = write_partition(iter(rows), settings)

    assert (result.written, result.failed, result.retried) == (len(rows), [], 0)
    assert result.api_calls == (len(rows) if api == "put" else 17)  # 8 x (25 + 5), then 17
    got = read_back(fsr, group, [r[0] for r in rows])
    assert len(got) == len(rows)
    for row in rows:
        expected = {k: v for k, v in zip(COLUMNS, row, strict=True) if v is not None}
        assert got[row[0]] == expected
    assert set(got["r00003"]) == {"rid", "ts", "x"}
    assert got["r00004"]["s"] == ""


def test_auto_picks_batch_write(emulator, sm, fsr):
    group = create_group(sm)
    result = write_partition(make_rows(50), settings_for(emulator, group, write_api="auto"))
    assert (result.written, result.api_calls) == (50, 2)


def test_collections_and_ttl(emulator, sm, fsr):
    features = [("rid", "String"), ("ts", "String"), ("tags", "String", "List"),
                ("scores", "Fractional", "List"), ("n", "Integral")]
    group = create_group(sm, features, in_memory=True)
    columns = ("rid", "ts", "tags", "scores", "n", "ttl")
    now = datetime.now(UTC).replace(microsecond=0)
    ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")  # TTL counts from the event time: keep it recent

    def at(seconds):
        return (now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = [
        ("a", ts, ["x", "y"], ["0.5", "1.5"], "1", 3600),
        ("b", ts, [], None, "2", None),
        ("c", ts, ("p",), ["2"], None, 60),
    ]
    for api in ("batch", "put"):
        settings = settings_for(emulator, group, columns=columns, write_api=api,
                                collection_features=frozenset({"tags", "scores"}),
                                ttl_column="ttl")
        result = write_partition(rows, settings)
        assert (result.written, result.failed) == (3, [])
        got = read_back(fsr, group, ["a", "b", "c"])
        assert got["a"] == {"rid": "a", "ts": ts, "tags": ["x", "y"],
                            "scores": ["0.5", "1.5"], "n": "1", "_expires": at(3600)}
        assert got["b"] == {"rid": "b", "ts": ts, "tags": [], "n": "2"}  # no TTL, no expiry
        assert got["c"]["tags"] == ["p"] and got["c"]["_expires"] == at(60)
        assert "ttl" not in got["c"]


@pytest.mark.parametrize("api", ["batch", "put"])
def test_validation_errors_fail_at_once_and_the_rest_is_written(emulator, sm, fsr, api):
    group = create_group(sm)
    rows = make_rows(40)
    bad = {5: "five", 17: "1.5", 33: "12abc"}
    for i, text in bad.items():
        rows[i] = (rows[i][0], EVENT_TIME, text, "0", "s")
    rows.append((None, EVENT_TIME, "1", "1", "no id"))
    settings = settings_for(emulator, group, write_api=api, max_workers=2, batch_size=20)

    result = write_partition(rows, settings)

    assert result.written == 40 - len(bad)
    assert result.retried == 0
    by_id = {f["record"]["rid"]: f for f in result.failed}
    assert set(by_id) == {rows[i][0] for i in bad} | {None}
    for i, text in bad.items():
        failure = by_id[rows[i][0]]
        assert failure["error_code"] == "ValidationError"
        assert failure["attempts"] == 1
        assert text in failure["message"]
        assert failure["record"] == dict(zip(COLUMNS, rows[i], strict=True))
    assert by_id[None]["attempts"] == 0  # no record id: never sent
    got = read_back(fsr, group, [r[0] for r in rows[:40]])
    assert set(got) == {r[0] for i, r in enumerate(rows[:40]) if i not in bad}


@pytest.mark.parametrize("api", ["batch", "put"])
def test_throttling_is_retried_until_written(emulator, sm, fsr, faults, api):
    group = create_group(sm)
    # the emulator's bucket starts full: 300 records = 12 calls at 4/s, 50 puts at 25/s
    rows = make_rows(300 if api == "batch" else 50)
    settings = settings_for(emulator, group, write_api=api, max_workers=4, batch_size=25,
                            max_attempts=40, base_delay_s=0.01, max_delay_s=0.2)
    faults(throttle_tps=4 if api == "batch" else 25)

    result = write_partition(rows, settings)

    assert (result.written, result.failed) == (len(rows), [])
    assert result.throttled > 0 and result.retried > 0
    assert result.api_calls > len(rows) // (25 if api == "batch" else 1)
    assert len(read_back(fsr, group, [r[0] for r in rows])) == len(rows)


@pytest.mark.parametrize("api", ["batch", "put"])
def test_server_errors_are_retried(emulator, sm, fsr, faults, api):
    group = create_group(sm)
    rows = make_rows(250 if api == "batch" else 60)
    faults(error_rate=0.4, seed=11)

    result = write_partition(rows, settings_for(emulator, group, write_api=api,
                                                max_attempts=30))

    assert (result.written, result.failed) == (len(rows), [])
    assert result.retried > 0 and result.throttled == 0
    assert len(read_back(fsr, group, [r[0] for r in rows])) == len(rows)


def test_unprocessed_entries_are_retried(emulator, sm, fsr, faults):
    group = create_group(sm)
    rows = make_rows(250)
    faults(unprocessed_rate=0.3, seed=5)

    result = write_partition(rows, settings_for(emulator, group, max_attempts=30))

    assert (result.written, result.failed) == (len(rows), [])
    assert result.retried > 0
    assert result.api_calls > 10
    assert len(read_back(fsr, group, [r[0] for r in rows])) == len(rows)


@pytest.mark.parametrize("api", ["batch", "put"])
def test_an_outage_longer_than_the_retry_budget_fails_the_records(emulator, sm, fsr, faults,
                                                                     api):
    group = create_group(sm)
    rows = make_rows(30)
    settings = settings_for(emulator, group, write_api=api, max_attempts=3, base_delay_s=0.01,
                            max_delay_s=0.02, max_workers=4, batch_size=10)
    op = "BatchWriteRecord" if api == "batch" else "PutRecord"
    before = emulator.stats()["operations"].get(op, {}).get("requests", 0)
    faults(outage_seconds=30)

    result = write_partition(rows, settings)

    # every request is one of ours: botocore's own retries are off
    assert emulator.stats()["operations"][op]["requests"] - before == result.api_calls
    assert result.written == 0
    assert len(result.failed) == 30
    assert {f["attempts"] for f in result.failed} == {3}
    assert {f["error_code"] for f in result.failed} == {"ServiceUnavailable"}
    assert result.api_calls == 3 * (3 if api == "batch" else 30)  # one call per 10-row batch
    assert sorted(f["record"]["rid"] for f in result.failed) == [r[0] for r in rows]
    faults()
    assert read_back(fsr, group, [r[0] for r in rows]) == {}


@pytest.mark.parametrize("api", ["batch", "put"])
def test_unknown_group_aborts_promptly(emulator, api):
    consumed = 0

    def rows():
        nonlocal consumed
        for row in make_rows(100_000):
            consumed += 1
            yield row

    settings = settings_for(emulator, "no-such-group", write_api=api, max_workers=4,
                            batch_size=50)
    with pytest.raises(Aborted, match="no-such-group.*ResourceNotFound") as info:
        write_partition(rows(), settings)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 3
    # streaming with bounded in-flight work: only a few batches were ever read
    assert consumed <= 50 * (2 * 4 + 2)


def test_tps_per_task_limits_the_rate(emulator, sm, fsr):
    group = create_group(sm)
    rows = make_rows(400)
    settings = settings_for(emulator, group, tps_per_task=250.0, max_workers=4, batch_size=25)

    start = time.monotonic()
    result = write_partition(rows, settings)
    elapsed = time.monotonic() - start

    assert result.written == 400
    # 400 records at 250/s with a 62-record burst: ~1.35 s; loose bounds
    assert 1.0 <= elapsed < 6.0
