"""--clear-target: remove what the target holds before the migration writes to it.

Order of work, all driven from the driver:

1. the guards (:mod:`.clear_guards`): not the source, no shared offline prefix, not Iceberg,
   and the confirmation;
2. the online record ids (:mod:`.sources.ids`): ListRecords (paginated, soft-deleted records
   included), or, when this botocore or the service lacks ListRecords, the distinct ids of the
   target's offline store (every id it ever saw, so a superset of what the online store holds);
3. the online records (:mod:`.clear_online`);
4. only when every online delete succeeded: the offline store (:mod:`.clear_offline`).

Any online delete that ultimately fails raises :class:`Aborted` before the offline store is
touched, so a rerun finds the same ids and the migration never writes onto a half-cleared
target.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from . import aws
from .aws import AwsSettings
from .calls import BUDGET_S
from .clear_guards import check_clearable
from .clear_offline import delete_offline, offline_objects
from .clear_online import check_online_empty, delete_online
from .errors import BadInput
from .groups import GroupSpec
from .settings import Settings
from .sources import IDS_FROM_OFFLINE, IDS_FROM_SCAN
from .sources.ids import offline_record_ids, scan_record_ids_if_possible
from .storage import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClearPlan:
    target: str
    online_ids_source: str | None  # "ListRecords", "offline store"; None: no online store
    online_records: int
    offline_objects: int
    offline_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _online_ids(spark: SparkSession, target: GroupSpec, store: Store, aws_settings: AwsSettings,
                retry_budget_s: float) -> tuple[str, list[str] | DataFrame | None]:
    ids = scan_record_ids_if_possible(aws.runtime_client(aws_settings), target.name,
                                      retry_budget_s=retry_budget_s)
    if ids is not None:
        return IDS_FROM_SCAN, ids
    if not target.offline:
        raise BadInput(f"cannot list the online records of {target.name} (no ListRecords) and it "
                       "has no offline store to take record ids from: use boto3 >= 1.44.8")
    return IDS_FROM_OFFLINE, offline_record_ids(spark, target, store)


def _count(ids: list[str] | DataFrame | None) -> int:
    if ids is None:
        return 0
    return len(ids) if isinstance(ids, list) else ids.count()


def plan_clear(spark: SparkSession, target: GroupSpec, store: Store,
               aws_settings: AwsSettings, retry_budget_s: float = BUDGET_S) -> ClearPlan:
    """What --clear-target would delete (for --dry-run): nothing is changed."""
    source, online = None, 0
    if target.online:
        source, ids = _online_ids(spark, target, store, aws_settings, retry_budget_s)
        online = _count(ids)
    objects = offline_objects(target, store)
    return ClearPlan(target.name, source, online, len(objects), sum(b for _, b in objects))


def clear_target(spark: SparkSession, target: GroupSpec, store: Store,
                 settings: Settings) -> dict[str, int]:
    """Delete every online record, then every offline object, of the target.

    Returns {online_deleted, online_failed, offline_deleted}. Raises Aborted when any online
    delete ultimately fails (the offline store is then left alone) or on a systemic error.
    """
    check_clearable(target)
    started = time.monotonic()
    deleted = 0
    if target.online:
        source, ids = _online_ids(spark, target, store, settings.target_aws,
                                  settings.migration.retry_budget_seconds)
        if isinstance(ids, DataFrame):  # counted, then deleted: read the offline store once
            ids = ids.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            total = _count(ids)
            log.info("%d online record ids of %s from %s", total, target.name, source)
            if total:
                deleted = delete_online(spark, target, ids, total, settings)["deleted"]
        finally:
            if isinstance(ids, DataFrame):
                ids.unpersist()
        if source == IDS_FROM_SCAN:
            check_online_empty(target, settings.target_aws)
    offline_deleted = delete_offline(target, store)
    log.info("cleared %s in %.1f s: %d online records, %d offline objects deleted", target.name,
             time.monotonic() - started, deleted, offline_deleted)
    return {"online_deleted": deleted, "online_failed": 0, "offline_deleted": offline_deleted}
