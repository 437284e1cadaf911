"""Running a function over Spark partitions from the driver: the write, the clear's deletes and
the online read all do it the same way.

* :func:`partition_count`: how many partitions for so many records;
* :func:`task_share`: each task's part of ``max_tps`` (the job-wide cap split across the tasks
  that run at once);
* :class:`Counters`: named accumulators (plus a list of notes) the tasks add to and the driver
  reads for progress and totals;
* :func:`watching`: live :class:`~fsmigrate.progress.Progress` around a Spark action, with the
  one unwrap of executor errors (:func:`fsmigrate.errors.from_executor`);
* :func:`jit_sized_code`: the stages of a partition job (the write's wire encoding of a wide
  group, verification's too) with no generated method too big for the JIT;
* :func:`for_each_partition`: the four together for a ``foreachPartition`` job;
* :func:`skip_zip_rescans` and :func:`freeze_survivors`: what every task calls first (a
  Python 3.11 cost and a PySpark cost per task).
"""

from __future__ import annotations

import gc
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from pyspark import AccumulatorParam, SparkContext

from .errors import from_executor
from .progress import LiveFeed, Progress


def skip_zip_rescans() -> None:
    """Stop PySpark's per-task import-cache reset from re-reading every zip on ``sys.path``.

    Before each task a reused Python worker calls ``importlib.invalidate_caches()``. On Python
    3.10 and 3.11 (Glue 5.0, EMR 7) that re-reads the directory of every zip on the path
    (pyspark.zip, py4j's zip, the job's --py-files zip): 55 ms of CPU per task with pyspark.zip
    and py4j alone, 90 % of a worker's samples on small partitions (CPython issue 103200, made
    lazy in 3.12).
    Those zips never change while a worker lives (Spark refuses to replace an added file), so
    their importers keep what they read. Called at the start of every task; the first task of
    each worker has already paid once.
    """
    if sys.version_info >= (3, 12):
        return
    import zipimport

    if zipimport.zipimporter.invalidate_caches is not _keep_zip_directory:
        zipimport.zipimporter.invalidate_caches = _keep_zip_directory


def _keep_zip_directory(self) -> None:  # zipimporter.invalidate_caches before Python 3.10
    return None


_tasks_started = 0  # in this Python worker


def freeze_survivors() -> None:
    """Keep PySpark's per-task full garbage collection from walking the worker's whole heap.

    After every task a reused Python worker runs ``gc.collect()`` (pyspark/daemon.py): 40-50 ms
    of CPU with pyspark, boto3's service models and the job loaded, ~10 µs per record at 5,000
    records per partition. What is still alive when a worker's second task starts (modules,
    clients and their models: the daemon has just collected the first task's garbage) is moved
    by ``gc.freeze()`` where the collector no longer looks; it is still freed as usual when
    nothing refers to it, and what later tasks allocate is collected as before.
    """
    global _tasks_started
    _tasks_started += 1
    if _tasks_started == 2:
        gc.freeze()


# HotSpot never JIT-compiles a method of more than 8,000 bytes of bytecode (HugeMethodLimit).
# The whole-stage code of the wire encoding of a wide group (22 features: 22,080 bytes) is
# bigger and ran 2x slower than Spark's per-expression code; 8000 is Spark's own advice for
# HotSpot (the setting's doc). Only for the partition jobs: the plan's stages were slower
# without whole-stage code.
HUGE_METHOD = "spark.sql.codegen.hugeMethodLimit"
HOTSPOT_HUGE_METHOD_BYTES = 8000


@contextmanager
def jit_sized_code(spark) -> Iterator[None]:
    """Stages run inside fall back to per-expression code where a whole-stage method is too
    big for the JIT, unless spark-submit was given its own limit."""
    if spark.sparkContext.getConf().get(HUGE_METHOD) is not None:
        yield
        return
    before = spark.conf.get(HUGE_METHOD)
    spark.conf.set(HUGE_METHOD, str(HOTSPOT_HUGE_METHOD_BYTES))
    try:
        yield
    finally:
        spark.conf.set(HUGE_METHOD, before)


def partition_count(selected: int, partition_records: int, parallelism: int) -> int:
    """Bounded partitions (progress and resume are per partition), at least one per core."""
    by_size = math.ceil(selected / partition_records) if selected else 1
    if by_size >= parallelism:
        return by_size
    return max(1, min(parallelism, math.ceil(selected / 100)))


def task_share(max_tps: float | None, partitions: int, sc: SparkContext) -> float | None:
    """Requests/s one task may make so that the tasks running at once stay under max_tps."""
    if not max_tps:
        return None
    return max_tps / max(1, min(partitions, sc.defaultParallelism))


class _ListParam(AccumulatorParam):
    def zero(self, value):
        return []

    def addInPlace(self, value1, value2):  # noqa: N802 - pyspark's name
        value1.extend(value2)
        return value1


class Counters:
    """Named counters summed over the tasks, and notes (small dicts) brought back from them.

    Picklable into a task's closure: tasks call :meth:`add`, the driver :meth:`snapshot`.
    """

    def __init__(self, sc: SparkContext, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self._accumulators = {name: sc.accumulator(0) for name in self.names}
        self._notes = sc.accumulator([], _ListParam())

    def add(self, counts: dict[str, int], notes: list[dict] | None = None) -> None:
        for name in self.names:
            value = counts.get(name, 0)
            if value:
                self._accumulators[name].add(value)
        if notes:
            self._notes.add(notes)

    def snapshot(self) -> dict[str, int]:
        return {name: acc.value for name, acc in self._accumulators.items()}

    @property
    def notes(self) -> list[dict]:
        return list(self._notes.value)


@contextmanager
def watching(counters: Counters, total: int, interval: float, phase: str | None = None,
             done: str = "written",
             on_error: Callable[[Exception], Exception] = from_executor,
             live: LiveFeed | None = None) -> Iterator[None]:
    """Progress of the Spark action run inside (counter `done` counts as done), with the
    running tasks' counts from `live`; an executor's error comes out as ``on_error(exc)`` (by
    default our Aborted, unwrapped)."""

    def snapshot() -> dict[str, int]:
        counts = counters.snapshot()
        if live is not None:
            counts = live.add_to(counts)
        counts["written"] = counts.get(done, 0)  # Progress counts "written" as done
        return counts

    with Progress(snapshot, total, interval, phase=phase):
        try:
            yield
        except Exception as exc:
            raise on_error(exc) from None


def for_each_partition(data: Any, work: Callable[[Iterator], tuple[dict[str, int], list[dict]]],
                       counters: Counters, total: int, interval: float, phase: str | None = None,
                       done: str = "written",
                       on_error: Callable[[Exception], Exception] = from_executor,
                       live: LiveFeed | None = None) -> dict[str, int]:
    """``work(rows) -> (counts, notes)`` on every partition of `data` (a DataFrame or an RDD);
    the summed counts."""

    def task(rows: Iterator) -> None:
        skip_zip_rescans()
        freeze_survivors()
        counts, notes = work(rows)
        counters.add(counts, notes)

    session = getattr(data, "sparkSession", None)  # an RDD: its SQL plan was made when taken
    sized = jit_sized_code(session) if session is not None else nullcontext()
    # the setting outermost: the progress thread, which reads the session, never sees it change
    with sized, watching(counters, total, interval, phase, done, on_error, live):
        data.foreachPartition(task)
    return counters.snapshot()
