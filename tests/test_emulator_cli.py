"""The emulator process (feature_store_emulator/cli.py, scripts/emulator_process.py): the
flush timer, the flush on shutdown, a failed start, sink mode."""

from __future__ import annotations

import glob
import os
import time

import pytest
from emulator_helpers import emulator_group, error_of
from jobtools import fv, offline_dir


def test_timer_flush(sm, fsr, emulator):
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=fv(id="a", event_time="2024-01-01T00:00:00Z"))
    directory = offline_dir(emulator, sm, name)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        if glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True):
            break
        time.sleep(0.1)
    assert glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True)


def test_shutdown_flushes_and_start_reports_failures(tmp_path, boto_session):
    import emulator_process

    emu = emulator_process.start(tmp_path / "data", extra_args=["--flush-interval", "0"])
    with emu:
        sm = boto_session.client("sagemaker", region_name="us-east-1", endpoint_url=emu.url)
        fsr = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                                  endpoint_url=emu.url)
        name = emulator_group(sm)
        fsr.put_record(FeatureGroupName=name,
                       Record=fv(id="a", event_time="2024-01-01T00:00:00Z"))
        assert emu.stats()["offline"]["buffered_rows"] == 1
    assert emu.proc.returncode == 0
    assert glob.glob(str(tmp_path / "data" / "**" / "*.parquet"), recursive=True)
    with pytest.raises(emulator_process.EmulatorError, match="usage"):
        emulator_process.start(tmp_path / "x", extra_args=["--no-such-flag"])


def test_offline_delivery_waits_the_delay(tmp_path, boto_session):
    """AWS developer guide (feature-store-offline): rows reach the offline store after a delay
    (up to ~15 minutes). A timer flush delivers a row only once it is that old;
    /_emulator/flush delivers everything at once."""
    import emulator_process

    emu = emulator_process.start(tmp_path / "data", extra_args=[
        "--flush-interval", "0.1", "--offline-delay-seconds", "1.5"])
    with emu:
        sm = boto_session.client("sagemaker", region_name="us-east-1", endpoint_url=emu.url)
        fsr = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                                  endpoint_url=emu.url)
        name = emulator_group(sm)
        started = time.monotonic()
        fsr.put_record(FeatureGroupName=name,
                       Record=fv(id="a", event_time="2024-01-01T00:00:00Z"))
        time.sleep(0.5)
        assert emu.stats()["offline"]["buffered_rows"] == 1  # not due yet
        while (not emu.stats()["offline"]["rows_written"]
               and time.monotonic() - started < 10):
            time.sleep(0.1)
        assert time.monotonic() - started >= 1.5
        assert emu.stats()["offline"]["rows_written"] == 1
        fsr.put_record(FeatureGroupName=name,
                       Record=fv(id="b", event_time="2024-01-01T00:00:00Z"))
        assert emu.flush() == {"files": 1, "rows": 1}  # on demand: now


def test_sink_validates_counts_and_stores_nothing(tmp_path, boto_session):
    """--sink (benchmarks): every write is checked as usual, none is stored."""
    import emulator_process

    emu = emulator_process.start(tmp_path / "data", extra_args=["--sink"])
    with emu:
        sm = boto_session.client("sagemaker", region_name="us-east-1", endpoint_url=emu.url)
        fsr = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                                  endpoint_url=emu.url)
        name = emulator_group(sm)
        good = [fv(id=f"r{i}", event_time="2024-01-01T00:00:00Z", count=str(i))
                for i in range(3)]
        fsr.put_record(FeatureGroupName=name, Record=good[0])
        bad = fv(id="x", event_time="2024-01-01T00:00:00Z", count="1.5")
        out = fsr.batch_write_record(Entries=[{"FeatureGroupName": name, "Record": r}
                                              for r in [*good[1:], bad]])
        assert [(e["Entry"]["Record"], e["ErrorCode"]) for e in out["Errors"]] == [
            (bad, "ValidationError")]
        assert error_of(fsr.put_record, FeatureGroupName=name,
                        Record=fv(id="y", event_time="yesterday")) == ("ValidationError", 400)
        fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r0",
                          EventTime="2024-01-02T00:00:00Z")
        assert "Record" not in fsr.get_record(FeatureGroupName=name,
                                              RecordIdentifierValueAsString="r1")
        stats = emu.stats()
        ops = stats["operations"]
        assert (ops["PutRecord"]["records"], ops["BatchWriteRecord"]["records"]) == (1, 2)
        assert ops["BatchWriteRecord"]["errors"] == {"ValidationError": 1}
        assert (stats["offline"]["sink"], stats["offline"]["online_records"],
                stats["offline"]["buffered_rows"]) == (True, 0, 0)
        assert emu.flush() == {"files": 0, "rows": 0}
