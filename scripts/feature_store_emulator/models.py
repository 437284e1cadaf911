"""The Feature Store backend: every operation's semantics, no HTTP (moto's ``models.py``).

One backend serves all regions; groups are keyed by (region, name). Methods take the request's
fields as parsed by responses.py and return the operation's output as a dict, or raise
ApiError. One re-entrant lock guards the registry and the online stores; the offline store has
its own (offline.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from . import records as checks
from .exceptions import ApiError, RequestInvalid, cp_validation, not_found, validation
from .groups import OFFLINE, ONLINE, Group, new_group, update_group
from .offline import OfflineStore
from .online import render
from .utils import decode_token, encode_token, page_offset, ttl_seconds

MAX_BATCH_GET_IDENTIFIERS = 100  # Identifiers per call, and record ids per identifier
MAX_BATCH_WRITE_ENTRIES = 25
MAX_LIST_RESULTS = 100
OFFLINE_STATUSES = ("Active", "Blocked", "Disabled")


def _never() -> bool:
    return False


class FeatureStoreBackend:
    def __init__(self, data_dir: str, describe_page_size: int = 100,
                 offline_delay_s: float = 0.0, sink: bool = False):
        self.describe_page_size = describe_page_size
        # validate every write as usual, store none: a benchmark measures its client, not this
        self.sink = sink
        self.lock = threading.RLock()
        self.groups: dict[tuple[str, str], Group] = {}
        self.by_arn: dict[str, Group] = {}
        self.offline = OfflineStore(data_dir, offline_delay_s)
        self._last_api_us = 0

    def api_time_us(self) -> int:
        """Strictly increasing microseconds, so api_invocation_time breaks ties in order."""
        now = time.time_ns() // 1000
        with self.lock:
            if now <= self._last_api_us:
                now = self._last_api_us + 1
            self._last_api_us = now
        return now

    def find(self, region: str, name_or_arn: Any, status: int) -> Group:
        """The group for a name or ARN; ResourceNotFound with the protocol's status."""
        if not isinstance(name_or_arn, str) or not name_or_arn:
            raise validation("FeatureGroupName is required")
        if name_or_arn.startswith("arn:"):
            group = self.by_arn.get(name_or_arn.lower())
        else:
            group = self.groups.get((region, name_or_arn))
        if group is None:
            raise not_found(name_or_arn, status)
        return group

    def find_runtime(self, region: str, name: Any, not_found_listed: bool = True) -> Group:
        """The group of a runtime call. Each operation answers a missing group with an error
        its model lists: GetRecord, ListRecords and BatchWriteRecord list ResourceNotFound
        (404); PutRecord, DeleteRecord and BatchGetRecord do not (botocore's
        sagemaker-featurestore-runtime service-2.json, ``operations.<Op>.errors``), and there
        the service answers ValidationError "Resource Not Found ..." (DESIGN.md §2)."""
        try:
            return self.find(region, name, 404)
        except ApiError as err:
            if not_found_listed or err.code != "ResourceNotFound":
                raise
            raise validation(err.message) from None

    def _find_online(self, region: str, name: Any, not_found_listed: bool = True) -> Group:
        group = self.find_runtime(region, name, not_found_listed)
        if not group.online:
            raise validation(f"Feature group {group.name} has no online store")
        return group

    # ---- control plane ---------------------------------------------------------------------

    def create_feature_group(self, region: str, req: dict) -> dict:
        group = new_group(region, req)
        with self.lock:
            if (region, group.name) in self.groups:
                raise ApiError("ResourceInUse", f"Resource Already Exists: FeatureGroup with "
                               f"name {group.name} already exists. Choose a different name.", 400)
            self.groups[(region, group.name)] = group
            self.by_arn[group.arn] = group
        return {"FeatureGroupArn": group.arn}

    def describe_feature_group(self, region: str, req: dict) -> dict:
        with self.lock:
            group = self.find(region, req.get("FeatureGroupName"), 400)
            token = req.get("NextToken")
            start = (page_offset(token, cp_validation, group.arn, len(group.features))
                     if token else 0)
            return group.describe(start, self.describe_page_size)

    def list_feature_groups(self, region: str, req: dict) -> dict:
        with self.lock:
            groups = [g for (r, _), g in self.groups.items() if r == region]
        contains = req.get("NameContains")
        if contains:
            groups = [g for g in groups if contains.lower() in g.name.lower()]
        status = req.get("FeatureGroupStatusEquals")
        if status and status != "Created":
            groups = []
        off_status = req.get("OfflineStoreStatusEquals")
        if off_status:
            groups = [g for g in groups if g.offline and off_status == g.offline_status]
        after, before = req.get("CreationTimeAfter"), req.get("CreationTimeBefore")
        if after is not None:
            groups = [g for g in groups if g.creation > float(after)]
        if before is not None:
            groups = [g for g in groups if g.creation < float(before)]
        sort_by = req.get("SortBy") or "CreationTime"
        keys = {"Name": lambda g: g.name, "CreationTime": lambda g: (g.creation, g.name),
                "FeatureGroupStatus": lambda g: g.name,
                "OfflineStoreStatus": lambda g: (not g.offline, g.name)}
        if sort_by not in keys:
            raise cp_validation("Invalid SortBy")
        groups.sort(key=keys[sort_by],
                    reverse=(req.get("SortOrder") or "Descending") == "Descending")
        max_results = req.get("MaxResults") or 10
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise cp_validation("MaxResults must be between 1 and 100")
        token = req.get("NextToken")
        start = page_offset(token, cp_validation) if token else 0
        out: dict = {"FeatureGroupSummaries": [g.summary() for g in
                                               groups[start:start + max_results]]}
        if start + max_results < len(groups):
            out["NextToken"] = encode_token({"o": start + max_results})
        return out

    def update_feature_group(self, region: str, req: dict) -> dict:
        with self.lock:
            group = self.find(region, req.get("FeatureGroupName"), 400)
            update_group(group, req)
            return {"FeatureGroupArn": group.arn}

    def delete_feature_group(self, region: str, req: dict) -> dict:
        with self.lock:
            group = self.find(region, req.get("FeatureGroupName"), 400)
            del self.groups[(group.region, group.name)]
            self.by_arn.pop(group.arn, None)
            group.online_records.clear()
        return {}

    # ---- runtime: writes -------------------------------------------------------------------

    def _apply_put(self, group: Group, rec: checks.ValidRecord, targets: tuple[str, ...],
                   ttl_secs: int | None, api_us: int, now_ns: int) -> None:
        """Store one validated record (caller holds the lock); in sink mode, drop it."""
        if self.sink:
            return
        if ONLINE in targets:
            group.online_records.put(rec.rid, rec.values, rec.event_ns, ttl_secs, now_ns)
        if OFFLINE in targets:
            self.offline.append(group, rec.values, rec.event_ns, api_us)

    def put_record(self, region: str, name: Any, record: Any, targets: Any, ttl: Any) -> None:
        group = self.find_runtime(region, name, not_found_listed=False)
        targets = checks.target_stores(group, targets)
        rec = checks.validate_record(group, record)
        ttl_secs = checks.effective_ttl(group, ttl)
        api_us = self.api_time_us()
        with self.lock:
            self._apply_put(group, rec, targets, ttl_secs, api_us, time.time_ns())

    def batch_write_record(self, region: str, entries: Any, default_ttl: Any,
                           unprocessed: Callable[[], bool] = _never) -> dict:
        """Entries are checked one by one: a bad entry goes to ``Errors``, the rest are
        written; an entry for which ``unprocessed()`` says so is handed back untouched. A
        value that breaks the model's shape constraints or a size quota (records.check_string)
        rejects the whole call: nothing is written."""
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_BATCH_WRITE_ENTRIES:
            raise validation(f"Entries must contain 1..{MAX_BATCH_WRITE_ENTRIES} entries")
        if default_ttl is not None:
            ttl_seconds(default_ttl)
        errors, left, prepared = [], [], []
        for entry in entries:
            if unprocessed():
                left.append(entry)
                continue
            try:
                if not isinstance(entry, dict):
                    raise validation("Each entry must be a structure")
                group = self.find_runtime(region, entry.get("FeatureGroupName"))
                targets = checks.target_stores(group, entry.get("TargetStores"))
                rec = checks.validate_record(group, entry.get("Record"))
                ttl = entry.get("TtlDuration")
                ttl_secs = checks.effective_ttl(group, ttl if ttl is not None else default_ttl)
                prepared.append((group, rec, targets, ttl_secs, self.api_time_us()))
            except RequestInvalid:
                raise
            except ApiError as err:
                errors.append({"Entry": entry, "ErrorCode": err.code,
                               "ErrorMessage": err.message})
        with self.lock:
            now_ns = time.time_ns()
            for group, rec, targets, ttl_secs, api_us in prepared:
                if self.groups.get((group.region, group.name)) is group:  # not deleted since
                    self._apply_put(group, rec, targets, ttl_secs, api_us, now_ns)
        return {"Errors": errors, "UnprocessedEntries": left}

    def delete_record(self, region: str, name: Any, rid: Any, event_time: Any, targets: Any,
                      mode: Any) -> bool:
        """DeleteRecord; True when the online record changed."""
        group = self.find_runtime(region, name, not_found_listed=False)
        if not rid:
            raise validation("RecordIdentifierValueAsString is required")
        if mode not in (None, "SoftDelete", "HardDelete"):
            raise validation("DeletionMode must be SoftDelete or HardDelete")
        targets = checks.target_stores(group, targets)
        checks.check_record_id(group, rid)
        if event_time is None:
            raise validation("EventTime is required")
        event_ns = checks.event_ns(group, event_time)
        api_us = self.api_time_us()
        changed = False
        with self.lock:
            if ONLINE in targets:
                changed = group.online_records.delete(rid, event_ns, event_time,
                                                      mode == "HardDelete", time.time_ns())
            if OFFLINE in targets and not self.sink:  # a marker: id, event time, nulls
                values = {group.record_id: rid, group.event_time: event_time}
                self.offline.append(group, values, event_ns, api_us, deleted=True)
        return changed

    # ---- runtime: reads --------------------------------------------------------------------

    def get_record(self, region: str, name: Any, rid: Any, feature_names: Any,
                   expiry: Any) -> dict:
        group = self.find_runtime(region, name)
        if rid is None:
            raise validation("RecordIdentifierValueAsString is required")
        with_expiry = _expiry_flag(expiry)
        if not group.online:
            raise validation(f"Feature group {group.name} has no online store")
        wanted = checks.feature_filter(group, feature_names)
        with self.lock:
            found = group.online_records.get(rid, time.time_ns())
        return {} if found is None else render(*found, wanted, with_expiry)

    def batch_get_record(self, region: str, identifiers: Any, expiry: Any,
                         unprocessed: Callable[[], bool] = _never) -> dict:
        """Per identifier: a group that cannot be read puts each of its ids in ``Errors``;
        missing or deleted ids are left out; ``unprocessed()`` ids come back to retry."""
        limit = MAX_BATCH_GET_IDENTIFIERS
        if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= limit:
            raise validation(f"Identifiers must contain 1..{limit} entries")
        with_expiry = _expiry_flag(expiry or "Disabled")
        for ident in identifiers:
            if not isinstance(ident, dict):
                raise validation("Each identifier must be a structure")
            ids = ident.get("RecordIdentifiersValueAsString")
            if not isinstance(ids, list) or not 1 <= len(ids) <= limit:
                raise validation(f"RecordIdentifiersValueAsString must contain 1..{limit} "
                                 "values")
        found_records, errors, left = [], [], []
        for ident in identifiers:
            gname = ident.get("FeatureGroupName")
            ids = ident["RecordIdentifiersValueAsString"]
            try:
                group = self._find_online(region, gname, not_found_listed=False)
                wanted = checks.feature_filter(group, ident.get("FeatureNames"))
            except ApiError as err:
                errors += [{"FeatureGroupName": gname, "RecordIdentifierValueAsString": rid,
                            "ErrorCode": err.code, "ErrorMessage": err.message} for rid in ids]
                continue
            skipped, found = [], []
            with self.lock:
                now_ns = time.time_ns()
                for rid in ids:
                    if unprocessed():
                        skipped.append(rid)
                        continue
                    hit = group.online_records.get(rid, now_ns) if isinstance(rid, str) else None
                    if hit is not None:
                        found.append((rid, hit))
            for rid, (record, expires) in found:
                item = {"FeatureGroupName": group.name, "RecordIdentifierValueAsString": rid}
                item.update(render(record, expires, wanted, with_expiry))
                item.setdefault("Record", [])
                found_records.append(item)
            if skipped:
                left.append(dict(ident, RecordIdentifiersValueAsString=skipped))
        return {"Records": found_records, "Errors": errors, "UnprocessedIdentifiers": left}

    def list_records(self, region: str, name: Any, max_results: Any, token: Any,
                     include_deleted: bool) -> dict:
        group = self._find_online(region, name)
        if max_results is None:
            max_results = MAX_LIST_RESULTS
        if (not isinstance(max_results, int) or isinstance(max_results, bool)
                or not 1 <= max_results <= MAX_LIST_RESULTS):
            raise validation(f"MaxResults must be between 1 and {MAX_LIST_RESULTS}")
        after = None
        if token:
            data = decode_token(token)
            if data.get("g") != group.arn or not isinstance(data.get("k"), str):
                raise validation("Invalid NextToken")
            after = data["k"]
        with self.lock:
            ids, last = group.online_records.page(after, max_results, include_deleted,
                                                  time.time_ns())
        out: dict = {"RecordIdentifiers": ids}
        if last is not None:
            out["NextToken"] = encode_token({"g": group.arn, "k": last})
        return out

    # ---- emulator administration -----------------------------------------------------------

    def flush(self, due_only: bool = False) -> dict:
        return self.offline.flush(due_only)

    def set_offline_status(self, region: str, req: dict) -> dict:
        """Admin: set a group's OfflineStoreStatus (Active | Blocked | Disabled, the sagemaker
        model's OfflineStoreStatusValue enum) and BlockedReason, as DescribeFeatureGroup and
        ListFeatureGroups show them."""
        status = req.get("OfflineStoreStatus")
        if status not in OFFLINE_STATUSES:
            raise validation(f"OfflineStoreStatus must be one of {', '.join(OFFLINE_STATUSES)}")
        with self.lock:
            group = self.find(region, req.get("FeatureGroupName"), 404)
            if not group.offline:
                raise validation(f"Feature group {group.name} has no offline store")
            group.offline_status = status
            group.offline_blocked_reason = (req.get("BlockedReason") or None
                                            if status == "Blocked" else None)
            return {"FeatureGroupName": group.name, "OfflineStoreStatus": status}

    def reset(self) -> dict:
        """Forget every group and record; delete the offline files written so far."""
        with self.lock:
            self.groups.clear()
            self.by_arn.clear()
        return {"files_removed": self.offline.reset()}

    def stats(self) -> dict:
        out = self.offline.stats()
        out["sink"] = self.sink
        with self.lock:
            out["groups"] = len(self.groups)
            out["online_records"] = sum(len(g.online_records) for g in self.groups.values())
        return out


def _expiry_flag(value: Any) -> bool:
    if value not in ("Enabled", "Disabled"):
        raise validation("ExpirationTimeResponse must be Enabled or Disabled")
    return value == "Enabled"
