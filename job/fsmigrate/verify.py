"""--verify: read the target back (BatchGetRecord, paced) and compare it with what was sent.

For every chosen written record: each feature's text (numbers compared as numbers, the event
time as an instant), and ExpiresAt when a TTL applies (event time + the TTL the record got,
to the second: the service may render it coarser). Outcomes:

- ``matched``;
- ``missing``: not in the target's online store (and not expired since);
- ``different``: a value, the event time or ExpiresAt differs;
- ``target_kept_newer``: the target holds a newer event time, or the same event time with
  other values while the target was not empty before the run. AWS keeps the online record
  unless the new event time is greater (PutRecord docs): that is the service's rule, not a
  loss, so it is counted apart and never as written;
- ``expired_since_written``: gone, but its ExpiresAt has passed since.

Missing, different and target-kept-newer records go to ``<run>/verify/`` as JSON lines with
the expected and actual record; missing or different ones make the exit code 1.
A sample (``sample:N``) is read on the driver; ``all`` runs on every partition.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import aws
from .aws import AwsSettings
from .eventtime import now_ns
from .groups import GroupSpec
from .partitions import Counters, for_each_partition, task_share
from .runstate import RunFolder
from .settings import verify_sample_size
from .sources.online import TTL_SECONDS
from .storage import Store
from .verify_records import COUNTERS, KEPT_NEWER, MISMATCHES, VerifyJob, verify_rows

if TYPE_CHECKING:
    from .plan import Plan
    from .settings import Settings

log = logging.getLogger(__name__)


# ---- the stage ---------------------------------------------------------------------------------


def target_emptiness(target: GroupSpec, store: Store, client) -> tuple[bool | None, str]:
    """(is the target empty, how that was found): one cheap call, before anything is written."""
    if target.online and aws.has_list_records(client):
        try:
            ids, _ = aws.list_records_page(client, target.name, None, 1, True)
        except aws.AWS_ERRORS as exc:
            return None, f"ListRecords failed: {aws.error_code(exc)}"
        return not ids, "ListRecords MaxResults=1"
    if target.offline and target.offline_uri and not target.is_iceberg:
        held = _any_file(store, target.offline_uri)
        how = "its offline store" + ("" if not target.online else
                                     "; this botocore can't list the online store")
        return (False if held else (None if target.online else True)), how
    return None, "this botocore has no ListRecords"


def _any_file(store: Store, uri: str) -> bool:
    local = store.local_path(uri)
    if local is None:
        from .storage import split_s3

        bucket, key = split_s3(uri)
        page = aws.s3_client(store.aws).list_objects_v2(
            Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        return bool(page.get("Contents"))
    import os

    return any(files for _, _, files in os.walk(local))


@dataclass(frozen=True)
class VerifyRequest:
    mode: str  # none | sample:N | all
    target: GroupSpec
    record_id: str  # the record id's column in the encoded rows (the target's record id)
    ttl_policy: str
    target_was_empty: bool
    read_tps: float | None
    max_workers: int
    retry_budget_s: float
    progress_interval: float
    partitions: int


def verify(spark: SparkSession, encoded: DataFrame, request: VerifyRequest, folder: RunFolder,
           aws_settings: AwsSettings) -> dict[str, Any] | None:
    """Verify the written records of ``encoded`` (failed ones left out); the report's section.
    None when there is nothing to verify with (mode none, or a target without online store)."""
    size = verify_sample_size(request.mode)
    target = request.target
    if size == 0:
        return None
    if not target.online:
        log.warning("--verify reads the target's online store; %s has none: not verified",
                    target.name)
        return {"mode": request.mode, "skipped": "the target has no online store"}
    started = time.monotonic()
    folder.clear_verify()
    written = _without_failures(spark, encoded, folder, request.record_id)
    ttl_column = TTL_SECONDS if TTL_SECONDS in encoded.columns else None
    types = tuple((f.name, f.type, f.collection is not None) for f in target.features
                  if f.name in encoded.columns)
    sc = spark.sparkContext
    default_ttl = target.ttl_seconds if request.ttl_policy != "none" else None
    base = dict(aws=aws_settings, group=target.name, columns=tuple(encoded.columns),
                types=types, record_id=request.record_id, event_time=target.event_time,
                ttl_column=ttl_column, default_ttl=default_ttl,
                target_was_empty=request.target_was_empty, now_ns=now_ns(),
                max_workers=request.max_workers, retry_budget_s=request.retry_budget_s)
    if size is not None:
        # A deterministic spread over the ids: top-N by a hash, no full sort.
        sample = written.orderBy(F.xxhash64(F.col(request.record_id))).limit(size).collect()
        job = VerifyJob(**base, calls_per_second=request.read_tps)
        result = verify_rows([tuple(r) for r in sample], job)
        folder.write_verify(0, result.records)
        counts = result.counts
    else:
        job = VerifyJob(**base, calls_per_second=task_share(request.read_tps,
                                                            request.partitions, sc))

        def verify_partition(rows) -> tuple[dict[str, int], list[dict]]:
            from pyspark import TaskContext

            result = verify_rows(rows, job)
            folder.write_verify(TaskContext.get().partitionId(), result.records)
            return result.counts, []

        partitioned = written.repartition(request.partitions, F.col(request.record_id))
        total = written.count()
        counts = for_each_partition(partitioned, verify_partition, Counters(sc, COUNTERS), total,
                                    request.progress_interval, phase="verify", done="checked")
    seconds = round(time.monotonic() - started, 3)
    checked = counts.get("checked", 0)
    section = {"mode": request.mode, **{k: counts.get(k, 0) for k in COUNTERS},
               "seconds": seconds,
               "seconds_per_10k": round(seconds * 10_000 / checked, 2) if checked else None,
               "read_calls_per_record": round(counts.get("api_calls", 0) / checked, 4)
               if checked else None,
               "mismatches": folder.verify_uri if any(counts.get(k) for k in
                                                      (*MISMATCHES, KEPT_NEWER)) else None}
    log.info("verified %d records of %s: %s", checked, target.name, section)
    return section


def _without_failures(spark: SparkSession, encoded: DataFrame, folder: RunFolder,
                      record_id: str) -> DataFrame:
    failed = sorted({str(f["record"].get(record_id)) for f in folder.failures()
                     if isinstance(f.get("record"), dict)})
    if not failed:
        return encoded
    ids = spark.createDataFrame([(i,) for i in failed], "__failed_id string")
    return encoded.join(ids, F.col(record_id) == F.col("__failed_id"), "left_anti")


def verify_run(spark: SparkSession, encoded: DataFrame, plan: Plan, target: GroupSpec,
               settings: Settings, folder: RunFolder) -> dict[str, Any] | None:
    """The verify stage of a run (migration.verify / --verify), under the run's plan."""
    m = settings.migration
    request = VerifyRequest(
        mode=m.verify, target=target, record_id=target.record_id, ttl_policy=plan.ttl,
        target_was_empty=bool(plan.target_empty), read_tps=m.read_tps,
        max_workers=m.max_workers, retry_budget_s=m.retry_budget_seconds,
        progress_interval=m.progress_interval_seconds, partitions=plan.partitions)
    try:
        return verify(spark, encoded, request, folder, settings.target_aws)
    except Exception as exc:  # a read that can't finish must not undo a finished write
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                      type(exc).__name__)[:300]
        log.warning("verification of %s did not finish: %s", target.name, reason)
        return {"mode": m.verify, "skipped": f"verification did not finish: {reason}"}


def exit_code(section: dict[str, Any] | None) -> int:
    """1 when verification found a record missing or different, else 0."""
    return 1 if section and any(section.get(k) for k in MISMATCHES) else 0


def format_verify(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    if section.get("skipped"):
        return [f"  verify            {section['mode']}: skipped ({section['skipped']})"]
    lines = [
        f"  verify            {section['mode']}: {section['checked']:,} read back; "
        f"{section['matched']:,} matched, {section['missing']:,} missing, "
        f"{section['different']:,} different, {section['target_kept_newer']:,} target kept "
        f"newer, {section['expired_since_written']:,} expired since written",
        f"  verify cost       {section['seconds']:,.1f} s, {section['api_calls']:,} "
        f"BatchGetRecord calls",
    ]
    if section.get("mismatches"):
        lines.append(f"  verify records in {section['mismatches']}")
    return lines
