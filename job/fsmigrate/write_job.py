"""The write stage on the driver: the selected records, partitioned by record id, written by
every task (write.py), with one checkpoint and one failure file per partition.

The driver writes the checkpoints, of the tasks Spark counts as successful (their accumulator
notes), as they come in. A task writing them itself could checkpoint half a partition: when
Spark kills a task (a cancelled or failed job) its Python worker sees the end of its input
as a normal end, and would go on to report the partition finished.
"""

from __future__ import annotations

import logging
import threading
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .encode import ENTRY, with_entries
from .groups import GroupSpec
from .pacing import Health, shared
from .partitions import Counters, for_each_partition, task_share
from .plan import Plan
from .progress import LiveFeed, LiveReporter
from .runstate import RunFolder
from .settings import Settings
from .sources.online import TTL_SECONDS
from .write import WriterSettings, write_partition

log = logging.getLogger(__name__)

COUNTERS = ("written", "failed", "retried", "throttled", "api_calls")

def write_partitions(spark: SparkSession, encoded: DataFrame, plan: Plan, target: GroupSpec,
                     settings: Settings, folder: RunFolder, record_id: str,
                     finished: frozenset[int], collection_features: frozenset[str],
                     total: int) -> dict[str, int]:
    """foreachPartition over a hash partitioning of the record id (stable across resumes)."""
    sc = spark.sparkContext
    ttl_column = TTL_SECONDS if TTL_SECONDS in encoded.columns else None
    stores = tuple(plan.target_stores) or None
    # BatchWriteRecord over the fast sender: Spark builds each entry's JSON (after the shuffle)
    prepared = plan.write_api == "batch" and settings.target_aws.sender == "fast"
    columns = (record_id, *([ttl_column] if ttl_column else []), ENTRY) if prepared \
        else tuple(encoded.columns)
    writer = WriterSettings(
        aws=settings.target_aws,
        target_group=target.name,
        columns=columns,
        record_id_name=record_id,
        collection_features=collection_features,
        ttl_column=ttl_column,
        target_stores=stores,
        batch_size=plan.batch_size,
        max_workers=plan.max_workers,
        write_api=plan.write_api,
        tps_per_task=task_share(plan.max_tps, plan.partitions, sc),
        # bounded by time, not attempts: a service blip is ridden out, a long outage aborts
        max_attempts=None,
        retry_budget_s=settings.migration.retry_budget_seconds,
    )

    feed = LiveFeed.for_spark(sc)
    address = feed.address if feed else None

    def write_one_partition(rows) -> tuple[dict[str, int], list[dict]]:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId()
        if partition in finished:
            return {}, []
        started, cpu_started = time.time(), time.process_time()
        reporter = LiveReporter(address, str(partition), attempt=context.attemptNumber())
        health = shared(("health", writer.target_group), Health)

        def live(total) -> None:
            reporter.report({"written": total.written, "failed": len(total.failed),
                             "retried": total.retried, "throttled": total.throttled,
                             "api_calls": total.api_calls,
                             "outage_seconds": round(health.outage_seconds(), 1)})

        try:
            result = write_partition(rows, writer, on_batch=live)
        finally:
            reporter.report({}, done=True)
        folder.write_failures(partition, result.failed)
        stats = {"written": result.written, "failed": len(result.failed),
                 "retried": result.retried, "throttled": result.throttled,
                 "api_calls": result.api_calls, "seconds": round(time.time() - started, 3),
                 # the Python worker's CPU: reading rows, building requests, boto3, threads
                 "cpu_seconds": round(time.process_time() - cpu_started, 3)}
        return stats, [{"partition": partition, **stats}]

    if finished:
        # pmod(hash(id), n) is the partition repartition(n, id) gives a row: rows of finished
        # partitions are dropped before the shuffle instead of being shuffled and skipped.
        part = F.expr(f"pmod(hash(`{record_id}`), {plan.partitions})")
        encoded = encoded.where(~part.isin(list(finished)))
    partitioned = encoded.repartition(plan.partitions, F.col(record_id))
    if prepared:
        partitioned = with_entries(partitioned, target.name, record_id, collection_features,
                                   ttl_column, stores)
    counters = Counters(sc, COUNTERS)
    saver = CheckpointSaver(folder, counters)
    try:
        return for_each_partition(partitioned, write_one_partition, counters, total,
                                  settings.migration.progress_interval_seconds, live=feed)
    finally:
        saver.close()  # the partitions finished before a failure or a cancel count too
        if feed is not None:
            feed.close()


class CheckpointSaver:
    """Writes the checkpoint of every partition whose task succeeded (a note of `counters`),
    every `interval` seconds while the write runs and once more at :meth:`close`."""

    def __init__(self, folder: RunFolder, counters: Counters, interval: float = 1.0) -> None:
        self.folder, self.counters, self.interval = folder, counters, interval
        self._saved = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except Exception:  # noqa: BLE001 - close() tries again, and raises
                log.warning("could not write checkpoints yet", exc_info=True)

    def save(self) -> None:
        with self._lock:
            notes = self.counters.notes  # appended to as tasks succeed
            for note in notes[self._saved:]:
                stats = dict(note)
                self.folder.write_checkpoint(stats.pop("partition"), stats)
                self._saved += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.save()
