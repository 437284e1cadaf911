"""The write stage's driver side: checkpoints of the tasks Spark counted as successful."""

from __future__ import annotations

import time

from fsmigrate.runstate import RunFolder
from fsmigrate.storage import Store
from fsmigrate.write_job import CheckpointSaver


class Notes:
    """Stands in for Counters: its notes grow as tasks succeed."""

    def __init__(self) -> None:
        self.notes: list[dict] = []


def test_checkpoints_are_written_as_tasks_succeed_and_at_close(tmp_path):
    folder = RunFolder(Store(), str(tmp_path / "run"))
    counters = Notes()
    saver = CheckpointSaver(folder, counters, interval=0.05)
    try:
        counters.notes.append({"partition": 3, "written": 10, "failed": 1})
        deadline = time.monotonic() + 5
        while 3 not in folder.checkpoints() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert folder.checkpoints() == {3: {"written": 10, "failed": 1}}  # while running
        counters.notes.append({"partition": 0, "written": 5, "failed": 0})
    finally:
        saver.close()
    # the last ones at close; a partition without a successful task has none
    assert folder.checkpoints() == {3: {"written": 10, "failed": 1},
                                    0: {"written": 5, "failed": 0}}
