"""The partition harness: the rate share, counters summed over tasks, executor errors."""

from __future__ import annotations

import pytest
from fsmigrate.errors import Aborted
from fsmigrate.partitions import Counters, for_each_partition, partition_count, task_share


def test_partition_count_bounds_partitions_and_keeps_every_core_busy():
    assert partition_count(0, 5000, 4) == 1
    assert partition_count(50_000, 5000, 4) == 10  # by size
    assert partition_count(1000, 5000, 4) == 4  # at least one per core...
    assert partition_count(150, 5000, 4) == 2  # ...but not fewer than ~100 records each


def test_task_share_splits_max_tps_over_the_tasks_running_at_once(spark):
    sc = spark.sparkContext  # 4 cores in the test session
    assert task_share(None, 10, sc) is None
    assert task_share(100.0, 10, sc) == 25.0
    assert task_share(100.0, 2, sc) == 50.0  # fewer partitions than cores
    assert task_share(100.0, 0, sc) == 100.0


def test_counters_and_notes_come_back_from_every_partition(spark):
    sc = spark.sparkContext
    counters = Counters(sc, ("seen", "odd"))

    def work(rows):
        values = [row for row in rows]
        odd = [v for v in values if v % 2]
        return {"seen": len(values), "odd": len(odd)}, [{"first_odd": odd[0]}] if odd else []

    totals = for_each_partition(sc.parallelize(range(100), 5), work, counters, 100, 60.0,
                                done="seen")
    assert totals == {"seen": 100, "odd": 50}
    assert len(counters.notes) == 5
    assert sorted(n["first_odd"] for n in counters.notes) == [1, 21, 41, 61, 81]


def test_our_aborted_comes_back_from_an_executor_as_itself(spark):
    sc = spark.sparkContext

    def work(rows):
        raise Aborted("PutRecord on feature group 'g' failed with AccessForbidden: no")

    with pytest.raises(Aborted) as info:
        for_each_partition(sc.parallelize(range(4), 2), work, Counters(sc, ("n",)), 4, 60.0)
    assert str(info.value) == "PutRecord on feature group 'g' failed with AccessForbidden: no"


def test_other_executor_errors_go_to_on_error(spark):
    sc = spark.sparkContext

    def work(rows):
        raise KeyError("boom")

    with pytest.raises(RuntimeError, match="^wrapped: KeyError: 'boom'$"):
        for_each_partition(sc.parallelize(range(4), 2), work, Counters(sc, ("n",)), 4, 60.0,
                           on_error=lambda exc: RuntimeError(f"wrapped: {_line(exc)}"))


def _line(exc: Exception) -> str:
    from fsmigrate.errors import executor_error_line

    return executor_error_line(exc)


@pytest.mark.parametrize("master, max_failures, expected", [
    ("local[*]", None, "local[*,4]"),
    ("local[2]", None, "local[2,4]"),
    ("local", None, "local[1,4]"),
    ("local[2]", "6", "local[2,6]"),  # spark.task.maxFailures, as on a cluster
    ("local[2]", "junk", "local[2,4]"),
    ("local[2,1]", "6", "local[2,1]"),  # said explicitly: kept
    ("yarn", None, "yarn"),
    ("local-cluster[2,1,1024]", None, "local-cluster[2,1,1024]"),
])
def test_local_mode_retries_a_failed_task_like_a_cluster(master, max_failures, expected):
    from fsmigrate.cli import local_with_retries

    assert local_with_retries(master, max_failures) == expected


def test_tasks_skip_the_per_task_rescan_of_zips_on_the_path(spark):
    # PySpark calls importlib.invalidate_caches() before every task; on Python 3.11 that
    # re-reads each zip's directory on sys.path (pyspark.zip, py4j): ~150 ms per task.
    sc = spark.sparkContext
    counters = Counters(sc, ("tasks",))

    def work(rows):
        import importlib
        import sys
        import zipimport

        list(rows)
        zips = [i for i in sys.path_importer_cache.values()
                if isinstance(i, zipimport.zipimporter)]
        reads = []
        real = zipimport._read_directory
        zipimport._read_directory = lambda path: reads.append(path) or real(path)
        try:
            importlib.invalidate_caches()
        finally:
            zipimport._read_directory = real
        return {"tasks": 1}, [{"zips": len(zips), "rereads": len(reads)}]

    for_each_partition(sc.parallelize(range(40), 8), work, counters, 40, 60.0, done="tasks")
    notes = counters.notes
    assert len(notes) == 8
    assert all(n["zips"] >= 1 for n in notes)  # pyspark.zip is on the workers' path
    assert [n["rereads"] for n in notes] == [0] * 8


def test_a_workers_long_lived_objects_are_frozen_from_its_second_task(spark):
    """PySpark's daemon runs gc.collect() after every task of a reused worker; from a worker's
    second task on, what its first left alive is out of the collector's reach (gc.freeze)."""
    sc = spark.sparkContext
    counters = Counters(sc, ("tasks",))

    def work(rows):
        import gc
        import os

        list(rows)
        return {"tasks": 1}, [{"pid": os.getpid(), "frozen": gc.get_freeze_count()}]

    for_each_partition(sc.parallelize(range(80), 16), work, counters, 80, 60.0, done="tasks")
    by_worker: dict[int, list[dict]] = {}
    for note in counters.notes:
        by_worker.setdefault(note["pid"], []).append(note)
    assert sum(len(n) for n in by_worker.values()) == 16
    assert any(len(n) >= 2 for n in by_worker.values())  # workers are reused
    later = [n for notes in by_worker.values() for n in notes if n["frozen"]]
    assert len(later) >= 16 - len(by_worker)  # all but (at most) each worker's first task
    # pyspark, py4j and the job's modules are frozen: many thousands of objects
    assert min(n["frozen"] for n in later) > 10_000


class _SettingProbe:
    """Stands where the live feed is: read on the driver while the Spark action runs."""

    def __init__(self, spark, key: str) -> None:
        self.spark, self.key, self.seen = spark, key, []

    def add_to(self, counts: dict[str, int]) -> dict[str, int]:
        self.seen.append(self.spark.conf.get(self.key))
        return counts


def test_a_partition_job_over_a_dataframe_runs_with_the_jits_method_size_limit(spark):
    """The write and verification go through for_each_partition with the encoded DataFrame:
    its stages are planned with hugeMethodLimit 8000 (partitions.jit_sized_code) for the whole
    job, progress included, and the session's own value is back after."""
    from fsmigrate.partitions import HOTSPOT_HUGE_METHOD_BYTES, HUGE_METHOD

    probe = _SettingProbe(spark, HUGE_METHOD)
    counters = Counters(spark.sparkContext, ("rows",))

    def work(rows):
        import time

        time.sleep(0.3)  # long enough for a few progress snapshots
        return {"rows": len(list(rows))}, []

    df = spark.range(40).repartition(2)
    for_each_partition(df, work, counters, 40, 0.05, done="rows", live=probe)
    assert counters.snapshot()["rows"] == 40
    # every snapshot, from before the action to the final one after it, sees the limit
    assert len(probe.seen) >= 3 and set(probe.seen) == {str(HOTSPOT_HUGE_METHOD_BYTES)}
    assert spark.conf.get(HUGE_METHOD) == "65535"  # the session's own value, back after
