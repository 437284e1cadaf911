"""Record ids of a group: a ListRecords scan (driver) or the distinct ids of its offline store.

The online read asks BatchGetRecord for them; the clear deletes them.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import aws
from ..calls import ABORT, BUDGET_S, Caller, CallFailed, RetryPolicy, Tally
from ..errors import Aborted
from ..groups import GroupSpec
from ..pacing import RateLimiter
from ..storage import Store
from .offline import read_offline

log = logging.getLogger(__name__)

ID_COLUMN = "__id"  # feature names can't start with "_": never collides with a feature
LIST_RECORDS_MAX_RESULTS = 100


class ListRecordsRefused(Aborted):
    """ListRecords answered with a permanent error (e.g. the group has no online store)."""


def scan_record_ids(group: str, client, include_soft_deleted: bool = False,
                    retry_budget_s: float = BUDGET_S, calls_per_second: float | None = None,
                    rng=None, sleep=None, clock=None) -> list[str]:
    """Every record id ListRecords returns (pages of 100), in order, without duplicates.

    Throttling, 5xx and connection errors are retried with backoff for up to retry_budget_s
    seconds; running out of it or a systemic error raises Aborted, a permanent error
    ListRecordsRefused.
    """
    caller = Caller(group, RetryPolicy(None, on_exhausted=ABORT, budget_s=retry_budget_s),
                    RateLimiter(calls_per_second, sleep=sleep, clock=clock), rng=rng,
                    sleep=sleep, clock=clock)
    seen: dict[str, None] = {}
    token: str | None = None
    while True:
        try:
            page, token = caller.call("ListRecords", lambda t=token: aws.list_records_page(
                client, group, t, LIST_RECORDS_MAX_RESULTS, include_soft_deleted), Tally())
        except CallFailed as failed:
            raise ListRecordsRefused(f"ListRecords on feature group {group!r} failed with "
                                     f"{failed.code}") from None
        for rid in page:
            seen.setdefault(rid, None)
        if not token:
            return list(seen)


def scan_record_ids_if_possible(client, group: str, retry_budget_s: float = BUDGET_S, rng=None,
                                sleep=None) -> list[str] | None:
    """Every id ListRecords gives (soft-deleted included); None when ListRecords is unavailable
    (this botocore lacks it, or the service refuses it). A systemic error raises Aborted."""
    if not aws.has_list_records(client):
        log.warning("this botocore has no ListRecords: record ids of %s come from its offline "
                    "store", group)
        return None
    try:
        return scan_record_ids(group, client, include_soft_deleted=True,
                               retry_budget_s=retry_budget_s, rng=rng, sleep=sleep)
    except ListRecordsRefused as exc:
        log.warning("%s: record ids come from the offline store", exc)
        return None


def offline_record_ids(spark: SparkSession, spec: GroupSpec, store: Store) -> DataFrame | None:
    """Distinct record ids (as strings, column ``__id``) in the group's offline store; None when
    it has none or holds no files yet.

    Every id the offline store saw, deleted or not: the online store decides what still exists
    (a record whose latest offline row is a delete marker can still be online).
    """
    if not spec.offline or not spec.offline_uri:
        return None
    raw = read_offline(spark, spec, store)
    if raw is None:
        return None
    # Integral ids are int64 in Parquet; the online store's id is their decimal text.
    rid = F.col(spec.record_id).cast("string")
    return raw.select(rid.alias(ID_COLUMN)).where(F.col(ID_COLUMN).isNotNull()).distinct()
