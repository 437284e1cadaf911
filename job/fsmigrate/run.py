"""The pipeline, driven from the driver: settings -> specs -> plan -> read -> select -> write ->
run state -> report. Executors only run `write_partitions`' closure."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from . import aws, report
from .clear import check_clear_allowed, clear_target, confirm_clear, plan_clear
from .errors import Aborted, BadInput, from_executor
from .groups import (
    Compatibility,
    Feature,
    GroupSpec,
    check_compatibility,
    compat_table,
    spec_from_description,
)
from .plan import (
    Counts,
    Plan,
    estimate,
    format_plan,
    group_summary,
    partition_count,
    shuffle_partitions,
)
from .progress import Progress
from .runstate import RunFolder
from .select import (
    after_record_id,
    apply_filter,
    count_selection,
    drop_deleted,
    encode_for_target,
    latest_state,
    normalize_filter,
)
from .settings import Settings
from .sources.offline import footer_stats, read_offline
from .sources.online import TTL_SECONDS, WIRE, read_online, typed_view
from .storage import Store, join
from .write import WriterSettings, resolve_write_api, write_partition

log = logging.getLogger(__name__)

SAMPLE_RECORDS = 3
ID_FROM_OFFLINE_ROWS = "offline store"


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
    id_source: str = ""
    id_source_reason: str = ""


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
        empty = spark.createDataFrame([], wire_schema(m.target for m in compat.mappings))
        return Selection(empty, Counts(), id_source=ID_FROM_OFFLINE_ROWS)
    stats = footer_stats(raw, store)
    parallelism = spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.shuffle.partitions", shuffle_partitions(stats.rows, parallelism))
    latest = latest_state(raw, source.record_id, source.event_time)
    latest = latest.persist(StorageLevel.MEMORY_AND_DISK)
    chosen = after_record_id(apply_filter(drop_deleted(latest), filter_query),
                             source.record_id, resume_from)
    counts = count_selection(latest, source.record_id, filter_query, resume_from, stats.rows)
    # An offline store keeps no expiry: the target's default TTL (if any) applies.
    encoded = encode_for_target(chosen, list(compat.mappings))
    return Selection(encoded, counts, stats.files, stats.bytes, cached=[latest],
                     id_source=ID_FROM_OFFLINE_ROWS)


def select_online(spark: SparkSession, settings: Settings, source: GroupSpec,
                  compat: Compatibility, store: Store, filter_query: str | None,
                  resume_from: str | None) -> Selection:
    """Current values from the source's online store (the truth), filtered, encoded."""
    m = settings.migration
    read = read_online(spark, source, store, settings.aws, m.id_source,
                       max_workers=m.max_workers, max_attempts=m.max_attempts,
                       progress_interval=m.progress_interval_seconds)
    typed = typed_view(read.df, source)
    matched = apply_filter(typed, filter_query)
    chosen = after_record_id(matched, source.record_id, resume_from)
    matched_n = matched.count()
    selected = chosen.count() if resume_from else matched_n
    counts = Counts(records=read.ids_considered,
                    deleted_skipped=read.ids_considered - read.records - read.expired,
                    expired_skipped=read.expired, filtered_out=read.records - matched_n,
                    before_resume_from=matched_n - selected, selected=selected)
    keep = (TTL_SECONDS,) if m.ttl == "source" else ()
    encoded = encode_for_target(chosen.select(f"{WIRE}.*"), list(compat.mappings), keep=keep)
    return Selection(encoded, counts, cached=[read.df], id_source=read.id_source,
                     id_source_reason=read.id_source_reason)


def wire_schema(features: Iterable[Feature]) -> StructType:
    """Encoded records: each feature as the text sent (a list of texts for collections)."""
    return StructType([
        StructField(f.name, ArrayType(StringType()) if f.collection else StringType())
        for f in features
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
        strategy=("online store current values" if source.online
                  else "offline store latest state"),
        id_source=selection.id_source,
        id_source_reason=selection.id_source_reason or "latest row per record id",
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
        ttl_column=TTL_SECONDS if TTL_SECONDS in encoded.columns else None,
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
        started, cpu_started = time.time(), time.process_time()
        result = write_partition(rows, writer)
        folder.write_failures(partition, result.failed)
        stats = {"written": result.written, "failed": len(result.failed),
                 "retried": result.retried, "throttled": result.throttled,
                 "api_calls": result.api_calls, "seconds": round(time.time() - started, 3),
                 # the Python worker's CPU: reading rows, building requests, boto3, threads
                 "cpu_seconds": round(time.process_time() - cpu_started, 3)}
        folder.write_checkpoint(partition, stats)
        for name in COUNTERS:
            accumulators[name].add(stats[name])

    if finished:
        # pmod(hash(id), n) is the partition repartition(n, id) gives a row: rows of finished
        # partitions are dropped before the shuffle instead of being shuffled and skipped.
        part = F.expr(f"pmod(hash(`{record_id}`), {plan.partitions})")
        encoded = encoded.where(~part.isin(list(finished)))
    partitioned = encoded.repartition(plan.partitions, F.col(record_id))

    def snapshot() -> dict[str, int]:
        return {name: acc.value for name, acc in accumulators.items()}

    with Progress(snapshot, total, settings.migration.progress_interval_seconds):
        try:
            partitioned.foreachPartition(write_one_partition)
        except Exception as exc:
            raise from_executor(exc) from None
    return snapshot()


# ---- the whole run ---------------------------------------------------------------------------

def run(settings: Settings, spark_factory: Callable[[], SparkSession]) -> int:
    """Everything that can refuse the job (settings, groups, compatibility, confirmations) runs
    before Spark starts, so bad input fails in seconds."""
    if settings.retry_failures:
        return retry_failures(settings, spark_factory)
    return migrate(settings, spark_factory)


def migrate(settings: Settings, spark_factory: Callable[[], SparkSession]) -> int:
    phases = Phases()
    store = Store(settings.aws, settings.local_root)
    folder = RunFolder.at(store, settings.output_uri, settings.run_id)
    earlier_plan = None
    if settings.resume:
        if not folder.has_plan():
            raise BadInput(f"no plan.json for run {settings.resume} under {settings.output_uri}: "
                           "check --resume and output.uri")
        earlier_plan = Plan.from_json(folder.read_plan())
        if earlier_plan.retry_of:
            raise BadInput(f"run {settings.resume} re-sent the failures of run "
                           f"{earlier_plan.retry_of}: run --retry-failures "
                           f"{earlier_plan.retry_of} again instead")
        settings = _settings_from_plan(settings, earlier_plan)
        if earlier_plan.clear_target is not None and not folder.was_cleared():
            # A dry run's plan, or a run interrupted while clearing: clear before writing.
            # Only the latter was confirmed already.
            settings = replace(settings, yes=settings.yes or not earlier_plan.dry_run,
                               migration=replace(settings.migration, clear_target=True))
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
    if m.ttl == "none" and target.ttl_seconds:
        raise BadInput(f"migration.ttl: none, but {target.name} expires records "
                       f"{target.ttl_seconds} s after their event time by default and a record "
                       "cannot opt out: use ttl: target_default or a target without a default TTL")
    if m.clear_target:
        check_clear_allowed(source, target)
        if not m.dry_run:
            confirm_clear(settings, target.name, sys.stdin.isatty(), input)

    write_api = resolve_write_api(m.write_api, aws.runtime_client(settings.aws))
    spark = spark_factory()
    select = select_online if source.online else select_offline
    selection = select(spark, settings, source, compat, store, normalize_filter(m.filter_query),
                       m.resume_from)
    plan = make_plan(settings, spark, source, target, compat, selection, write_api)
    if earlier_plan is not None:
        plan.partitions = earlier_plan.partitions  # the partitioning the checkpoints refer to
    phases.mark("plan")

    if m.clear_target:
        plan.clear_target = plan_clear(spark, target, store, settings.aws).to_json()
    if m.dry_run:
        plan.dry_run = True
        print(format_plan(plan, compat))
        folder.write_plan(plan.to_json())
        print(f"dry run: nothing written. Plan saved to {folder.plan_uri}; carry it out with "
              f"--resume {settings.run_id}")
        return 0
    if earlier_plan is None or earlier_plan.dry_run:
        folder.write_plan(plan.to_json())
    print(format_plan(plan))
    if m.clear_target:
        cleared = clear_target(spark, target, store, settings)
        folder.mark_cleared(cleared)
        phases.mark("clear")
        print(f"cleared {target.name}: {cleared['online_deleted']:,} online records, "
              f"{cleared['offline_deleted']:,} offline objects deleted")

    checkpoints = folder.checkpoints() if earlier_plan else {}
    done_before = sum(c["written"] + c["failed"] for c in checkpoints.values())
    collections = frozenset(m_.name for m_ in compat.mappings if m_.target.collection)
    totals = write_partitions(spark, selection.encoded, plan, target, settings, folder,
                              source.record_id, frozenset(checkpoints), collections,
                              max(0, plan.counts.selected - done_before))
    phases.mark("write")
    for df in selection.cached:
        df.unpersist()
    return _finish(plan, totals, checkpoints, phases, folder)


def retry_failures(settings: Settings, spark_factory: Callable[[], SparkSession]) -> int:
    """Re-send exactly the records in an earlier run's failure files, as a new run."""
    phases = Phases()
    store = Store(settings.aws, settings.local_root)
    ref = settings.retry_failures or ""
    earlier = RunFolder(store, ref if "/" in ref else join(settings.output_uri, ref))
    if not earlier.has_plan():
        raise BadInput(f"no plan.json in {earlier.uri}: pass a run id under output.uri or the "
                       "run folder's URI to --retry-failures")
    old = Plan.from_json(earlier.read_plan())
    _settings_from_plan(settings, old)  # refuses a --source/--target that differ from the run's
    failures = [f["record"] for f in earlier.failures()]
    folder = RunFolder.at(store, settings.output_uri, settings.run_id)
    if folder.has_plan():
        raise BadInput(f"run {settings.run_id} exists already: pick another --run-id")
    if not failures:
        print(f"run {old.run_id} has no failed records: nothing to retry")
        return 0
    target = describe(settings, old.target["name"], "target")
    phases.mark("describe")
    m = settings.migration
    write_api = resolve_write_api(m.write_api, aws.runtime_client(settings.aws))

    columns = [f.name for f in target.features if any(f.name in r for r in failures)]
    extra = [c for c in failures[0] if c not in columns]  # e.g. the TTL column
    schema = wire_schema(f for f in target.features if f.name in columns)
    for column in extra:
        schema = schema.add(column, LongType())
    spark = spark_factory()
    rows = [tuple(r.get(c) for c in columns + extra) for r in failures]
    records = spark.createDataFrame(rows, schema)
    parallelism = spark.sparkContext.defaultParallelism
    plan = replace(
        old, run_id=settings.run_id, strategy=f"retry the failed records of run {old.run_id}",
        counts=Counts(records=len(failures), selected=len(failures)), write_api=write_api,
        batch_size=m.batch_size, max_workers=m.max_workers, max_tps=m.max_tps,
        partitions=partition_count(len(failures), m.partition_records, parallelism),
        samples=sample_records(records), clear_target=None, retry_of=old.run_id)
    folder.write_plan(plan.to_json())
    phases.mark("plan")
    print(format_plan(plan))
    collections = frozenset(f.name for f in target.features if f.collection)
    totals = write_partitions(spark, records, plan, target, settings, folder, target.record_id,
                              frozenset(), collections, len(failures))
    phases.mark("write")
    return _finish(plan, totals, {}, phases, folder)


def _finish(plan: Plan, totals: dict[str, int], checkpoints_before: dict[int, dict],
            phases: Phases, folder: RunFolder) -> int:
    result = report.build(plan, totals, checkpoints_before, phases.seconds, folder)
    folder.write_report(result)
    print(report.format_summary(result))
    return result["exit_code"]


def _settings_from_plan(settings: Settings, plan: Plan) -> Settings:
    """A resumed run keeps the choices its plan recorded."""
    for role, given in (("source", settings.source), ("target", settings.target)):
        planned = getattr(plan, role)["name"]
        if given and given != planned:
            raise BadInput(f"--{role} {given} differs from run {plan.run_id}'s {role} {planned}: "
                           f"drop --{role} or start a new run")
    m = replace(settings.migration, filter_query=plan.filter_query, resume_from=plan.resume_from,
                batch_size=plan.batch_size, max_workers=plan.max_workers,
                write_api=plan.write_api, max_tps=plan.max_tps, dry_run=False,
                clear_target=False, ttl=plan.ttl)
    return replace(settings, source=plan.source["name"], target=plan.target["name"], migration=m)
