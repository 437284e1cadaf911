"""The admin endpoints (feature_store_emulator/admin.py, stats.py): stats and reset."""

from __future__ import annotations

import glob
import os

import pytest
from emulator_helpers import emulator_group, error_of, get
from jobtools import fv, offline_dir


def test_stats_count_operations_and_errors(emulator, sm, fsr):
    def counters():
        ops = emulator.stats()["operations"]
        return {(op, key, code): n for op, entry in ops.items() for key, val in entry.items()
                for code, n in (val.items() if isinstance(val, dict) else [(None, val)])}

    before = counters()
    name = emulator_group(sm)
    t0 = "2024-01-01T00:00:00Z"
    fsr.batch_write_record(Entries=[
        {"FeatureGroupName": name, "Record": fv(id=str(i), event_time=t0)} for i in range(3)
    ] + [{"FeatureGroupName": name, "Record": fv(id="x", count="no", event_time=t0)}])
    get(fsr, name, "0")
    error_of(fsr.put_record, FeatureGroupName=name, Record=fv(id="a"))
    after = counters()
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert delta == {
        ("CreateFeatureGroup", "requests", None): 1,
        ("BatchWriteRecord", "requests", None): 1,
        ("BatchWriteRecord", "entries", None): 4,
        ("BatchWriteRecord", "records", None): 3,
        ("BatchWriteRecord", "entry_errors", None): 1,
        ("BatchWriteRecord", "errors", "ValidationError"): 1,
        ("GetRecord", "requests", None): 1,
        ("GetRecord", "records", None): 1,
        ("PutRecord", "requests", None): 1,
        ("PutRecord", "errors", "ValidationError"): 1,
    }


def test_reset_clears_everything(clean_emulator, sm, fsr):
    name = emulator_group(sm)
    fsr.put_record(FeatureGroupName=name, Record=fv(id="a", event_time="2024-01-01T00:00:00Z"))
    directory = offline_dir(clean_emulator, sm, name)
    clean_emulator.flush()
    assert glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True)
    clean_emulator.faults(latency_ms=5)
    clean_emulator.reset()
    assert not os.path.exists(directory)
    stats = clean_emulator.stats()
    assert stats["faults"] == {} and stats["operations"] == {}
    assert stats["offline"]["files_written"] == 0
    assert error_of(sm.describe_feature_group, FeatureGroupName=name)[0] == "ResourceNotFound"


def test_offline_store_status_can_be_blocked(emulator, sm):
    """sagemaker model: DescribeFeatureGroup's OfflineStoreStatus {Status: Active | Blocked |
    Disabled, BlockedReason}; /_emulator/offline-status sets it."""
    import emulator_process

    name = emulator_group(sm)
    emulator.offline_status(name, "Blocked", "replication failed")
    d = sm.describe_feature_group(FeatureGroupName=name)
    assert d["OfflineStoreStatus"] == {"Status": "Blocked", "BlockedReason": "replication failed"}
    listed = sm.list_feature_groups(NameContains=name, OfflineStoreStatusEquals="Blocked")
    assert [g["FeatureGroupName"] for g in listed["FeatureGroupSummaries"]] == [name]
    emulator.offline_status(name, "Active")
    assert sm.describe_feature_group(FeatureGroupName=name)["OfflineStoreStatus"] == {
        "Status": "Active"}
    with pytest.raises(emulator_process.EmulatorError, match="400"):
        emulator.offline_status(name, "Broken")
    with pytest.raises(emulator_process.EmulatorError, match="404"):
        emulator.offline_status(name + "-missing", "Blocked")
