"""The pipeline, driven from the driver: open the run -> check the groups -> read -> plan ->
clear -> write -> report. Each stage lives in its own module; executors only run the closures
of the write, the clear and the online read."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pyspark.sql import SparkSession

from . import aws, report
from .clear import clear_target, plan_clear
from .clear_guards import check_clear_allowed, confirm_clear
from .groups import GroupSpec, check_groups, describe
from .plan import Plan, format_plan, make_plan
from .read import Selection, sample_records, select_records
from .resume import open_run, retry_failures
from .runstate import RunFolder
from .select import normalize_filter
from .settings import Settings
from .storage import Store
from .verify import target_emptiness, verify_run
from .write import resolve_write_api
from .write_job import write_partitions


def run(settings: Settings, spark_factory: Callable[[], SparkSession]) -> int:
    """Everything that can refuse the job (settings, groups, compatibility, confirmations) runs
    before Spark starts, so bad input fails in seconds."""
    if settings.retry_failures:
        return retry_failures(settings, spark_factory)
    return migrate(settings, spark_factory)


def migrate(settings: Settings, spark_factory: Callable[[], SparkSession]) -> int:
    phases = report.Phases()
    store = Store(settings.aws, settings.local_root)
    settings, folder, earlier_plan = open_run(settings, store)

    m = settings.migration
    source = describe(settings.source_aws, settings.source, "source")
    target = describe(settings.target_aws, settings.target, "target")
    phases.mark("describe")
    compat = check_groups(source, target, m.missing_features, m.ttl)
    if m.clear_target:
        check_clear_allowed(source, target)
        if not m.dry_run:
            confirm_clear(settings, target.name, sys.stdin.isatty(), input)

    write_api = resolve_write_api(m.write_api, aws.runtime_client(settings.target_aws))
    spark = spark_factory()
    filter_query = normalize_filter(m.filter_query)
    selection = select_records(spark, settings, source, target, compat, store, filter_query)
    plan = make_plan(settings, spark.sparkContext.defaultParallelism, source, target, compat,
                     selection, write_api, filter_query, sample_records(selection.encoded))
    if earlier_plan is not None:
        plan.partitions = earlier_plan.partitions  # the partitioning the checkpoints refer to
        # what the target held before this run's first write
        plan.target_empty = earlier_plan.target_empty
        plan.target_empty_how = earlier_plan.target_empty_how
    elif m.clear_target:
        plan.target_empty, plan.target_empty_how = True, "cleared before writing"
    else:
        plan.target_empty, plan.target_empty_how = target_emptiness(
            target, store, aws.runtime_client(settings.target_aws))
    phases.mark("plan")
    if earlier_plan is not None and not earlier_plan.dry_run and folder.has_report():
        return reverify(spark, selection, plan, target, settings, folder, phases)

    if m.clear_target:
        plan.clear_target = plan_clear(spark, target, store, settings.target_aws,
                                       m.retry_budget_seconds).to_json()
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
    verified = verify_run(spark, selection.encoded, plan, target, settings, folder)
    if verified is not None:
        phases.mark("verify")
    selection.unpersist()
    return report.finish(plan, totals, checkpoints, phases, folder, verified)


def reverify(spark: SparkSession, selection: Selection, plan: Plan, target: GroupSpec,
             settings: Settings, folder: RunFolder, phases: report.Phases) -> int:
    """--resume of a finished run: verify the target again (the source as it reads now), write
    nothing; report.json gets the new verification."""
    print(f"run {settings.run_id} is finished: verifying {target.name} again ("
          f"{settings.migration.verify}), nothing written")
    verified = verify_run(spark, selection.encoded, plan, target, settings, folder)
    phases.mark("verify")
    selection.unpersist()
    result = report.with_verify(folder.read_report(), verified)
    result["phases_seconds"] = {**result.get("phases_seconds", {}),
                                "reverify": phases.seconds.get("verify", 0.0)}
    folder.write_report(result)
    print(report.format_summary(result))
    return result["exit_code"]
