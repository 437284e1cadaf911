"""The emulator process (feature_store_emulator/cli.py, scripts/emulator_process.py): the
flush timer, the flush on shutdown, a failed start."""

from __future__ import annotations

import glob
import os
import time

import pytest
from emulator_helpers import create_group, offline_dir, rec


def test_timer_flush(sm, fsr, emulator):
    name = create_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))
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
        name = create_group(sm)
        fsr.put_record(FeatureGroupName=name,
                       Record=rec(id="a", event_time="2024-01-01T00:00:00Z"))
        assert emu.stats()["offline"]["buffered_rows"] == 1
    assert emu.proc.returncode == 0
    assert glob.glob(str(tmp_path / "data" / "**" / "*.parquet"), recursive=True)
    with pytest.raises(emulator_process.EmulatorError, match="usage"):
        emulator_process.start(tmp_path / "x", extra_args=["--no-such-flag"])
