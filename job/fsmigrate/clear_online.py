"""--clear-target's online part: DeleteRecord ``HardDelete`` of every record id.

``TargetStores=["OnlineStore"]``: no delete markers land in the offline store about to be
emptied. Across Spark partitions with a few threads each, paced by ``migration.max_tps`` like
the writes and retried on throttling, 5xx and connection errors (calls.py). A record whose
stored event time is not older than now (future-dated) is read with GetRecord and deleted with
an instant just after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from . import aws
from .aws import AwsSettings
from .calls import BUDGET_S, Caller, CallFailed, RetryPolicy, Tally
from .errors import Aborted, executor_error_line, from_executor
from .eventtime import event_time_after, instant_ns, now_event_time
from .groups import FRACTIONAL, ONLINE_STORE, GroupSpec
from .parallel import bounded_map
from .partitions import Counters, for_each_partition, partition_count, task_share
from .settings import Settings

log = logging.getLogger(__name__)

MAX_EVENT_TIME_BUMPS = 3  # future-dated record rewritten again while we delete it
FAILURE_SAMPLES = 5  # failed ids per partition brought back to the driver for the message
COUNTERS = ("deleted", "failed", "retried", "throttled", "api_calls", "bumped")


# ---- the per-partition deleter (runs on executors) -------------------------------------------

@dataclass(frozen=True)
class DeleteSettings:
    aws: AwsSettings
    group: str
    event_time_feature: str
    fractional_event_time: bool = False  # event time feature is Fractional (unix seconds)
    max_workers: int = 4  # threads per partition
    chunk_size: int = 10  # ids handed to one thread at a time (one DeleteRecord call each)
    tps_per_task: float | None = None  # DeleteRecord calls/s this task may make
    retry_budget_s: float = BUDGET_S  # see calls.RetryPolicy.budget_s
    base_delay_s: float = 0.05
    max_delay_s: float = 10.0

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(None, self.base_delay_s, self.max_delay_s,
                           budget_s=self.retry_budget_s)


@dataclass
class DeleteResult(Tally):
    deleted: int = 0  # online records gone (deleted now, or already absent)
    failed: list[dict] = field(default_factory=list)  # {record_id, error_code, message, attempts}
    bumped: int = 0  # future-dated records deleted with an event time after their own

    def add(self, other: DeleteResult) -> None:
        super().add(other)
        self.deleted += other.deleted
        self.failed.extend(other.failed)
        self.bumped += other.bumped


class _Deleter:
    def __init__(self, s: DeleteSettings, client, caller: Caller) -> None:
        self.s, self.client, self.caller = s, client, caller

    def delete_ids(self, ids: list[str]) -> DeleteResult:
        result = DeleteResult()
        for rid in ids:
            self.delete_one(rid, result)
        return result

    def delete_one(self, rid: str, result: DeleteResult) -> None:
        fractional = self.s.fractional_event_time
        event_time = now_event_time(fractional)
        attempts = bumps = 0
        while True:
            try:
                self.caller.call("DeleteRecord", lambda et=event_time: aws.delete_record(
                    self.client, self.s.group, rid, et, [ONLINE_STORE], "HardDelete"), result)
                result.deleted += 1
                return
            except CallFailed as failure:
                attempts += failure.attempts
                code, message = failure.code, failure.message
            if code != "ValidationError" or bumps >= MAX_EVENT_TIME_BUMPS:
                self.fail(result, rid, code, message, attempts)
                return
            # HardDelete needs an event time later than the stored one: read the stored one.
            try:
                stored = self.stored_event_time(rid, result)
            except CallFailed as failure:
                self.fail(result, rid, failure.code, f"GetRecord: {failure.message}",
                          attempts + failure.attempts)
                return
            if stored is None:  # gone already (deleted or expired meanwhile)
                result.deleted += 1
                return
            stored_ns, ours_ns = instant_ns(stored), instant_ns(event_time)
            later = event_time_after(stored, fractional)
            if later is None or stored_ns is None or ours_ns is None or stored_ns < ours_ns:
                # Not an event-time conflict: the ValidationError stands.
                self.fail(result, rid, code, message, attempts)
                return
            event_time = later
            bumps += 1
            if bumps == 1:
                result.bumped += 1

    def stored_event_time(self, rid: str, result: DeleteResult) -> str | None:
        feature = self.s.event_time_feature
        response = self.caller.call("GetRecord", lambda: aws.get_record(
            self.client, self.s.group, rid, [feature]), result)
        for fv in response.get("Record") or ():
            if fv.get("FeatureName") == feature:
                return fv.get("ValueAsString")
        return None

    def fail(self, result: DeleteResult, rid: str, code: str, message: str,
             attempts: int) -> None:
        result.failed.append({"record_id": rid, "error_code": code,
                              "message": aws.shorten(message), "attempts": attempts})


def delete_partition(ids: Iterable[str], settings: DeleteSettings, client=None, rng=None,
                     sleep=None, clock=None) -> DeleteResult:
    """HardDelete (online store only) every record id; raises Aborted on a systemic error or an
    outage longer than the retry budget. ``client``/``rng``/``sleep``/``clock``: tests."""
    if client is None:
        client = aws.runtime_client(settings.aws, max_pool=max(10, settings.max_workers + 2))
    caller = Caller.paced(settings.group, settings.policy, settings.tps_per_task, rng=rng,
                          sleep=sleep, clock=clock)
    deleter = _Deleter(settings, client, caller)
    total = DeleteResult()
    for result in bounded_map(deleter.delete_ids, ids, settings.chunk_size, settings.max_workers,
                              caller.stop, "fsmigrate-clear"):
        total.add(result)
    return total


# ---- the Spark job (driver) ------------------------------------------------------------------

def delete_online(spark: SparkSession, target: GroupSpec, ids: list[str] | DataFrame,
                  total: int, settings: Settings) -> dict[str, int]:
    """Delete every id across partitions; Aborted when any delete ultimately failed."""
    sc = spark.sparkContext
    m = settings.migration
    partitions = partition_count(total, m.partition_records, sc.defaultParallelism)
    event_feature = target.feature(target.event_time)
    deleter = DeleteSettings(
        aws=settings.target_aws,
        group=target.name,
        event_time_feature=target.event_time,
        fractional_event_time=bool(event_feature and event_feature.type == FRACTIONAL),
        max_workers=m.max_workers,
        tps_per_task=task_share(m.max_tps, partitions, sc),
        retry_budget_s=m.retry_budget_seconds,
    )

    def delete_one_partition(rows) -> tuple[dict[str, int], list[dict]]:
        # An abort is brought back as a note, not raised: the driver says which one it was.
        try:
            result = delete_partition((row[0] for row in rows), deleter)
        except Aborted as exc:
            return {}, [{"aborted": str(exc)}]
        counts = {name: getattr(result, name) for name in COUNTERS if name != "failed"}
        counts["failed"] = len(result.failed)
        return counts, result.failed[:FAILURE_SAMPLES]

    if isinstance(ids, list):  # from ListRecords, already on the driver: no shuffle needed
        partitioned = sc.parallelize([(i,) for i in ids], partitions)
    else:
        partitioned = ids.repartition(partitions).rdd

    def spark_failed(exc: Exception) -> Exception:  # the target is half-cleared
        unwrapped = from_executor(exc)
        if isinstance(unwrapped, Aborted):
            return Aborted(f"--clear-target stopped: {unwrapped}")
        return Aborted(f"clearing the online store of {target.name} failed: "
                       f"{executor_error_line(exc)}; rerun with --clear-target")

    log.info("deleting %d online records of %s in %d partitions", total, target.name,
             partitions)
    counters = Counters(sc, COUNTERS)
    counts = for_each_partition(partitioned, delete_one_partition, counters, total,
                                m.progress_interval_seconds, phase="clear", done="deleted",
                                on_error=spark_failed)
    notes = counters.notes
    aborted = [p["aborted"] for p in notes if "aborted" in p]
    if aborted:
        raise Aborted(f"--clear-target stopped: {aborted[0]}")
    if counts["failed"]:
        first = next(p for p in notes if "record_id" in p)
        raise Aborted(f"--clear-target: {counts['failed']:,} of {total:,} online records of "
                      f"{target.name} could not be deleted (e.g. {first['record_id']!r}: "
                      f"{first['error_code']} {first['message']}); nothing was written: fix "
                      "the cause and rerun")
    log.info("deleted %d online records of %s (%d future-dated, %d retries, %d throttled)",
             counts["deleted"], target.name, counts["bumped"], counts["retried"],
             counts["throttled"])
    return counts


def check_online_empty(target: GroupSpec, aws_settings: AwsSettings) -> None:
    """After deleting the ids ListRecords gave: none may be left (a writer still at work)."""
    client = aws.runtime_client(aws_settings)
    try:
        left, _ = aws.list_records_page(client, target.name, max_results=1,
                                        include_soft_deleted=True)
    except aws.AWS_ERRORS as exc:
        log.warning("could not check that %s's online store is empty: %s", target.name,
                    aws.error_code(exc))
        return
    if left:
        raise Aborted(f"the online store of {target.name} still holds records after the clear "
                      f"(e.g. {left[0]!r}): stop writers to the target and rerun with "
                      "--clear-target")
