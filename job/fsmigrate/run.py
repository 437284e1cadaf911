"""The pipeline, driven from the driver: settings -> specs -> plan -> read -> select -> write ->
run state -> report. Executors only run `write_partitions`' closure."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import aws, report
from .errors import Aborted, BadInput
from .groups import (
    Compatibility,
    GroupSpec,
    check_compatibility,
    compat_table,
    spec_from_description,
)
from .plan import Counts, Plan, estimate, format_plan, group_summary, partition_count
from .progress import Progress
from .runstate import RunFolder
from .select import (
    after_record_id,
    apply_filter,
    drop_deleted,
    encode_for_target,
    latest_state,
    normalize_filter,
)
from .settings import Settings
from .sources.offline import footer_stats, read_offline
from .storage import Store
from .write import WriterSettings, resolve_write_api, write_partition

log = logging.getLogger(__name__)

SAMPLE_RECORDS = 3


@dataclass
class Phases:
    """Wall-clock seconds per phase, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._started, 3)
        self._started = now


@dataclass
class Selection:
    encoded: DataFrame  # target feature columns as wire text, one row per record to write
    counts: Counts
    files: int = 0
    bytes: int = 0
    cached: list[DataFrame] = field(default_factory=list)


def describe(settings: Settings, name: str, role: str) -> GroupSpec:
    client = aws.control_client(settings.aws)
    try:
        return spec_from_description(aws.describe_feature_group(client, name))
    except Exception as exc:
        code = aws.error_code(exc)
        if code in ("ResourceNotFound", "ResourceNotFoundException", "ValidationException"):
            raise BadInput(f"{role} feature group {name} not found in {settings.aws.region}: "
                           "check the name and aws.region") from None
        if aws.classify(code) == aws.SYSTEMIC:
            raise Aborted(f"cannot describe {role} feature group {name}: {code}") from None
        raise


def select_offline(spark: SparkSession, settings: Settings, source: GroupSpec,
                   compat: Compatibility, store: Store, filter_query: str | None,
                   resume_from: str | None) -> Selection:
    """Latest non-deleted state per record from the offline store, filtered, encoded."""
    raw = read_offline(spark, source, store)
    if raw is None:
        empty = spark.createDataFrame([], encode_schema(spark, compat))
        return Selection(empty, Counts())
    stats = footer_stats(raw, store)
    latest = latest_state(raw, source.record_id, source.event_time)
    latest = latest.persist(StorageLevel.MEMORY_AND_DISK)
    live = drop_deleted(latest)
    matched = apply_filter(live, filter_query)
    chosen = after_record_id(matched, source.record_id, resume_from)
    records, live_n, matched_n = latest.count(), live.count(), matched.count()
    selected = chosen.count() if resume_from else matched_n
    counts = Counts(rows_scanned=stats.rows, records=records, deleted_skipped=records - live_n,
                    filtered_out=live_n - matched_n, before_resume_from=matched_n - selected,
                    selected=selected)
    encoded = encode_for_target(chosen, list(compat.mappings))
    return Selection(encoded, counts, stats.files, stats.bytes, cached=[latest])


def encode_schema(spark: SparkSession, compat: Compatibility):
    from pyspark.sql.types import ArrayType, StringType, StructField, StructType

    return StructType([
        StructField(m.name, ArrayType(StringType()) if m.target.collection else StringType())
        for m in compat.mappings
    ])


def sample_records(encoded: DataFrame, n: int = SAMPLE_RECORDS) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.asDict().items() if v is not None}
            for row in encoded.limit(n).collect()]


def make_plan(settings: Settings, spark: SparkSession, source: GroupSpec, target: GroupSpec,
              compat: Compatibility, selection: Selection, write_api: str) -> Plan:
    m = settings.migration
    parallelism = spark.sparkContext.defaultParallelism
    partitions = partition_count(selection.counts.selected, m.partition_records, parallelism)
    calls, seconds, rate = estimate(selection.counts.selected, write_api, m.max_tps)
    return Plan(
        run_id=settings.run_id,
        source=group_summary(source),
        target=group_summary(target),
        strategy="offline latest state" if not source.online else "online current state",
        id_source="offline store",
        id_source_reason="source offline store, latest row per record id",
        target_stores=list(target.stores),
        write_api=write_api,
        batch_size=m.batch_size,
        max_workers=m.max_workers,
        max_tps=m.max_tps,
        filter_query=normalize_filter(m.filter_query),
        resume_from=m.resume_from,
        partitions=partitions,
        partition_records=m.partition_records,
        counts=selection.counts,
        source_files=selection.files,
        source_bytes=selection.bytes,
        expected_api_calls=calls,
        expected_seconds=round(seconds, 1),
        expected_rate=rate,
        features=compat.as_rows(),
        samples=sample_records(selection.encoded),
        ttl=m.ttl,
    )


# ---- writing ---------------------------------------------------------------------------------

COUNTERS = ("written", "failed", "retried", "throttled", "api_calls")


def write_partitions(spark: SparkSession, encoded: DataFrame, plan: Plan, target: GroupSpec,
                     settings: Settings, folder: RunFolder, record_id: str,
                     finished: frozenset[int], collection_features: frozenset[str],
                     total: int) -> dict[str, int]:
    """foreachPartition over a hash partitioning of the record id (stable across resumes)."""
    sc = spark.sparkContext
    accumulators = {name: sc.accumulator(0) for name in COUNTERS}
    concurrent = max(1, min(plan.partitions, sc.defaultParallelism))
    writer = WriterSettings(
        aws=settings.aws,
        target_group=target.name,
        columns=tuple(encoded.columns),
        record_id_name=record_id,
        collection_features=collection_features,
        target_stores=tuple(plan.target_stores) or None,
        batch_size=plan.batch_size,
        max_workers=plan.max_workers,
        write_api=plan.write_api,
        tps_per_task=(plan.max_tps / concurrent) if plan.max_tps else None,
        max_attempts=settings.migration.max_attempts,
    )

    def write_one_partition(rows) -> None:
        from pyspark import TaskContext

        partition = TaskContext.get().partitionId()
        if partition in finished:
            return
        started = time.time()
        result = write_partition(rows, writer)
        folder.write_failures(partition, result.failed)
        stats = {"written": result.written, "failed": len(result.failed),
                 "retried": result.retried, "throttled": result.throttled,
                 "api_calls": result.api_calls, "seconds": round(time.time() - started, 3)}
        folder.write_checkpoint(partition, stats)
        for name in COUNTERS:
            accumulators[name].add(stats[name])

    partitioned = encoded.repartition(plan.partitions, F.col(record_id))

    def snapshot() -> dict[str, int]:
        return {name: acc.value for name, acc in accumulators.items()}

    with Progress(snapshot, total, settings.migration.progress_interval_seconds):
        try:
            partitioned.foreachPartition(write_one_partition)
        except Exception as exc:
            raise _executor_error(exc) from None
    return snapshot()


def _executor_error(exc: Exception) -> Exception:
    """Spark wraps an executor's exception in a Java one; bring our Aborted back out."""
    text = str(exc)
    marker = "fsmigrate.errors.Aborted: "
    if marker in text:
        message = text.split(marker, 1)[1].splitlines()[0]
        return Aborted(message)
    return exc


# ---- the whole run ---------------------------------------------------------------------------

def run(settings: Settings, spark_factory: Callable[[], SparkSession]) -> int:
    """Everything that can refuse the job (settings, groups, compatibility) runs before Spark
    starts, so bad input fails in seconds."""
    phases = Phases()
    store = Store(settings.aws, settings.local_root)
    folder = RunFolder.at(store, settings.output_uri, settings.run_id)
    if settings.resume:
        if not folder.has_plan():
            raise BadInput(f"no plan.json for run {settings.resume} under {settings.output_uri}: "
                           "check --resume and output.uri")
        settings = _settings_from_plan(settings, Plan.from_json(folder.read_plan()))
    elif folder.has_plan():
        raise BadInput(f"run {settings.run_id} exists already under {settings.output_uri}: "
                       f"use --resume {settings.run_id} or another --run-id")

    m = settings.migration
    source = describe(settings, settings.source, "source")
    target = describe(settings, settings.target, "target")
    compat = check_compatibility(source, target, m.missing_features)
    phases.mark("describe")
    if not compat.ok:
        print(compat_table(compat))
        raise BadInput(f"{source.name} -> {target.name} is not compatible: "
                       f"{compat.first_problem()}")

    write_api = resolve_write_api(m.write_api, aws.runtime_client(settings.aws))
    spark = spark_factory()
    selection = select_offline(spark, settings, source, compat, store,
                               normalize_filter(m.filter_query), m.resume_from)
    plan = make_plan(settings, spark, source, target, compat, selection, write_api)
    if settings.resume:
        plan.partitions = Plan.from_json(folder.read_plan()).partitions
    phases.mark("plan")

    if m.dry_run:
        print(format_plan(plan, compat))
        folder.write_plan(plan.to_json())
        print(f"dry run: nothing written. Plan saved to {folder.plan_uri}")
        return 0
    if not settings.resume:
        folder.write_plan(plan.to_json())
    print(format_plan(plan))

    checkpoints = folder.checkpoints() if settings.resume else {}
    done_before = sum(c["written"] + c["failed"] for c in checkpoints.values())
    collections = frozenset(m_.name for m_ in compat.mappings if m_.target.collection)
    totals = write_partitions(spark, selection.encoded, plan, target, settings, folder,
                              source.record_id, frozenset(checkpoints), collections,
                              max(0, plan.counts.selected - done_before))
    phases.mark("write")
    for df in selection.cached:
        df.unpersist()

    result = report.build(plan, totals, checkpoints, phases.seconds, folder)
    folder.write_report(result)
    print(report.format_summary(result))
    return result["exit_code"]


def _settings_from_plan(settings: Settings, plan: Plan) -> Settings:
    """A resumed run keeps the choices its plan recorded."""
    m = replace(settings.migration, filter_query=plan.filter_query, resume_from=plan.resume_from,
                batch_size=plan.batch_size, max_workers=plan.max_workers,
                write_api=plan.write_api, max_tps=plan.max_tps, dry_run=False,
                clear_target=False)
    return replace(settings, source=plan.source["name"], target=plan.target["name"], migration=m)
