"""report.build's exit code: records that no partition accounted for are never a clean exit."""

from __future__ import annotations

import pytest
from fsmigrate import report
from fsmigrate.plan import Counts, Plan
from fsmigrate.runstate import RunFolder
from fsmigrate.storage import Store


def plan(selected: int) -> Plan:
    return Plan(run_id="r1", source={"name": "a"}, target={"name": "b"}, strategy="s",
                id_source="offline store", id_source_reason="", target_stores=["OnlineStore"],
                write_api="batch", batch_size=100, max_workers=4, max_tps=None,
                filter_query=None, resume_from=None, partitions=2, partition_records=500,
                counts=Counts(records=selected, selected=selected))


@pytest.mark.parametrize(
    ("checkpoints", "exit_code", "unaccounted"),
    [
        ({0: (60, 0), 1: (40, 0)}, 0, 0),
        ({0: (60, 0), 1: (38, 2)}, 1, 0),
        ({0: (60, 0)}, 3, 40),  # partition 1's checkpoint never reached the driver
        ({}, 3, 100),  # e.g. executors wrote their run state to their own disks
    ],
)
def test_exit_code_counts_unaccounted_records(tmp_path, checkpoints, exit_code, unaccounted):
    folder = RunFolder.at(Store(), str(tmp_path / "runs"), "r1")
    for partition, (written, failed) in checkpoints.items():
        folder.write_checkpoint(partition, {"written": written, "failed": failed})
    result = report.build(plan(100), {"written": 0}, {}, {"write": 1.0}, folder)
    assert (result["exit_code"], result["unaccounted"]) == (exit_code, unaccounted)
    summary = report.format_summary(result)
    assert ("unaccounted" in summary) == bool(unaccounted)
    if unaccounted:
        assert "--resume r1" in summary
