"""The write stage on the driver: the selected records, partitioned by record id, written by
every task (write.py), with one checkpoint and one failure file per partition."""

from __future__ import annotations

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
    prepared = plan.write_api == "batch" and settings.aws.sender == "fast"
    columns = (record_id, *([ttl_column] if ttl_column else []), ENTRY) if prepared \
        else tuple(encoded.columns)
    writer = WriterSettings(
        aws=settings.aws,
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
        folder.write_checkpoint(partition, stats)
        return stats, []

    if finished:
        # pmod(hash(id), n) is the partition repartition(n, id) gives a row: rows of finished
        # partitions are dropped before the shuffle instead of being shuffled and skipped.
        part = F.expr(f"pmod(hash(`{record_id}`), {plan.partitions})")
        encoded = encoded.where(~part.isin(list(finished)))
    partitioned = encoded.repartition(plan.partitions, F.col(record_id))
    if prepared:
        partitioned = with_entries(partitioned, target.name, record_id, collection_features,
                                   ttl_column, stores)
    try:
        return for_each_partition(partitioned, write_one_partition, Counters(sc, COUNTERS),
                                  total, settings.migration.progress_interval_seconds,
                                  live=feed)
    finally:
        if feed is not None:
            feed.close()
