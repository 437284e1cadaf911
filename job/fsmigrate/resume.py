"""Runs that continue an earlier one: --resume (finish a run under its saved plan) and
--retry-failures (re-send exactly the records of a run's failure files, as a new run)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pyspark.sql import SparkSession
from pyspark.sql.types import LongType

from . import aws, report
from .errors import BadInput
from .groups import describe
from .partitions import partition_count
from .plan import Counts, Plan, format_plan
from .read import sample_records, wire_schema
from .runstate import RunFolder
from .settings import Settings
from .storage import Store, join
from .write import resolve_write_api
from .write_job import write_partitions


def open_run(settings: Settings, store: Store) -> tuple[Settings, RunFolder, Plan | None]:
    """This run's folder, and for --resume the earlier plan and the settings it recorded."""
    folder = RunFolder.at(store, settings.output_uri, settings.run_id)
    if not settings.resume:
        if folder.has_plan():
            raise BadInput(f"run {settings.run_id} exists already under {settings.output_uri}: "
                           f"use --resume {settings.run_id} or another --run-id")
        return settings, folder, None
    if not folder.has_plan():
        raise BadInput(f"no plan.json for run {settings.resume} under {settings.output_uri}: "
                       "check --resume and output.uri")
    earlier = Plan.from_json(folder.read_plan())
    if earlier.retry_of:
        raise BadInput(f"run {settings.resume} re-sent the failures of run "
                       f"{earlier.retry_of}: run --retry-failures {earlier.retry_of} again "
                       "instead")
    settings = settings_from_plan(settings, earlier)
    if earlier.clear_target is not None and not folder.was_cleared():
        # A dry run's plan, or a run interrupted while clearing: clear before writing.
        # Only the latter was confirmed already.
        settings = replace(settings, yes=settings.yes or not earlier.dry_run,
                           migration=replace(settings.migration, clear_target=True))
    return settings, folder, earlier


def settings_from_plan(settings: Settings, plan: Plan) -> Settings:
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


def retry_failures(settings: Settings, spark_factory: Callable[[], SparkSession]) -> int:
    """Re-send exactly the records in an earlier run's failure files, as a new run."""
    phases = report.Phases()
    store = Store(settings.aws, settings.local_root)
    ref = settings.retry_failures or ""
    earlier = RunFolder(store, ref if "/" in ref else join(settings.output_uri, ref))
    if not earlier.has_plan():
        raise BadInput(f"no plan.json in {earlier.uri}: pass a run id under output.uri or the "
                       "run folder's URI to --retry-failures")
    old = Plan.from_json(earlier.read_plan())
    settings_from_plan(settings, old)  # refuses a --source/--target that differ from the run's
    failures = [f["record"] for f in earlier.failures()]
    folder = RunFolder.at(store, settings.output_uri, settings.run_id)
    if folder.has_plan():
        raise BadInput(f"run {settings.run_id} exists already: pick another --run-id")
    if not failures:
        print(f"run {old.run_id} has no failed records: nothing to retry")
        return 0
    target = describe(settings.target_aws, old.target["name"], "target")
    phases.mark("describe")
    m = settings.migration
    write_api = resolve_write_api(m.write_api, aws.runtime_client(settings.target_aws))

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
    return report.finish(plan, totals, {}, phases, folder)
