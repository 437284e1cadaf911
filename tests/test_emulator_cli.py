"""The emulator process (feature_store_emulator/cli.py, scripts/emulator_process.py): the
flush timer, the flush on shutdown, a failed start."""

from __future__ import annotations

import glob
import os
import time

import pytest
from emulator_helpers import emulator_group
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
