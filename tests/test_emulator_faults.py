"""Injected failures (feature_store_emulator/faults.py), seen through boto3."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from emulator_helpers import as_dict, emulator_group, error_of, get, raw_client
from jobtools import fv, record_ids


@pytest.fixture
def raw_fsr(emulator, boto_session):
    return raw_client(emulator, boto_session, "sagemaker-featurestore-runtime")


def test_throttling(sm, raw_fsr, faults, emulator):
    name = emulator_group(sm)
    before = emulator.stats()["throttled"]
    faults(throttle_tps=5)
    codes = []
    started = time.monotonic()
    for i in range(20):
        try:
            raw_fsr.put_record(FeatureGroupName=name, Record=fv(
                id=str(i), event_time="2024-01-01T00:00:00Z"))
            codes.append("ok")
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            codes.append(exc.response["Error"]["Code"])
    elapsed = time.monotonic() - started
    assert set(codes) == {"ok", "ThrottlingException"}
    assert 5 <= codes.count("ok") <= 5 + 5 * elapsed + 1  # a burst of 5, then 5 per second
    assert emulator.stats()["throttled"] - before == codes.count("ThrottlingException")
    sm.describe_feature_group(FeatureGroupName=name)  # the control plane is never faulted


def test_error_rate(sm, raw_fsr, faults):
    name = emulator_group(sm)
    faults(error_rate=1.0, seed=7)
    seen = set()
    for _ in range(20):
        try:
            raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
        except ClientError as exc:
            seen.add((exc.response["Error"]["Code"],
                      exc.response["ResponseMetadata"]["HTTPStatusCode"]))
    assert seen == {("InternalFailure", 500), ("ServiceUnavailable", 503)}
    faults(error_rate=0.5, seed=1)
    outcomes = []
    for _ in range(40):
        try:
            raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
            outcomes.append(True)
        except ClientError:
            outcomes.append(False)
    assert 5 <= outcomes.count(True) <= 35


def test_latency(sm, fsr, faults):
    name = emulator_group(sm)
    faults(latency_ms=150)
    start = time.perf_counter()
    get(fsr, name, "a")
    assert time.perf_counter() - start >= 0.15  # a plain GetRecord takes a few ms


def test_outage(sm, raw_fsr, faults):
    name = emulator_group(sm)
    faults(outage_seconds=0.5)
    started = time.monotonic()
    assert error_of(raw_fsr.get_record, FeatureGroupName=name,
                    RecordIdentifierValueAsString="a") == ("ServiceUnavailable", 503)
    while True:
        try:
            raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
            break
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ServiceUnavailable"
            assert time.monotonic() - started < 5
            time.sleep(0.05)
    assert time.monotonic() - started >= 0.5


def test_unprocessed_entries(sm, fsr, faults):
    name = emulator_group(sm)
    faults(unprocessed_rate=0.5, seed=3)
    entries = [{"FeatureGroupName": name, "Record": fv(id=f"r{i}",
                                                       event_time="2024-01-01T00:00:00Z")}
               for i in range(25)]
    resp = fsr.batch_write_record(Entries=entries)
    left = {as_dict(e["Record"])["id"] for e in resp["UnprocessedEntries"]}
    assert 0 < len(left) < 25 and resp["Errors"] == []
    written = set(record_ids(fsr, name))
    assert written == {f"r{i}" for i in range(25)} - left
    faults()
    fsr.batch_write_record(Entries=resp["UnprocessedEntries"])
    assert len(record_ids(fsr, name)) == 25


def test_throttle_style_429(sm, raw_fsr, faults):
    name = emulator_group(sm)
    faults(throttle_tps=1, throttle_style="429")
    statuses = set()
    for i in range(4):
        try:
            raw_fsr.put_record(FeatureGroupName=name, Record=fv(
                id=str(i), event_time="2024-01-01T00:00:00Z"))
        except ClientError as exc:
            statuses.add((exc.response["ResponseMetadata"]["HTTPStatusCode"],
                          exc.response["Error"]["Code"]))
    assert statuses == {(429, "TooManyRequestsException")}
    with pytest.raises(Exception, match="throttle_style"):
        faults(throttle_style="nope")


def test_reset_rate_drops_connections_mid_request(sm, raw_fsr, faults):
    from botocore.exceptions import ConnectionClosedError, HTTPClientError

    name = emulator_group(sm)
    faults(reset_rate=1.0)
    with pytest.raises(HTTPClientError) as err:
        raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
    assert isinstance(err.value, ConnectionClosedError) or "reset" in str(err.value).lower()
    faults(reset_rate=0.5, seed=1)
    outcomes = set()
    for _ in range(20):
        try:
            raw_fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="a")
            outcomes.add("ok")
        except HTTPClientError:
            outcomes.add("reset")
    assert outcomes == {"ok", "reset"}
