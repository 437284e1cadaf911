"""One feature group's online store: the newest record per id, TTL expiry, ListRecords order.

Not thread-safe on its own: the backend (models.py) holds its lock around every call. The
representation (a record's FeatureValue list as sent) is private to this module, so a compact
one can replace it without touching callers.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .exceptions import validation
from .utils import NS, iso_from_ns


@dataclass(slots=True)
class OnlineRecord:
    record: list[dict] | None  # FeatureValues verbatim; None once soft-deleted
    event_ns: int
    expires_ns: int | None
    deleted: bool = False


def replaces(event_ns: int, current: OnlineRecord | None) -> bool:
    """Whether a write with this event time becomes the online record.

    PutRecord docs (botocore sagemaker-featurestore-runtime PutRecord documentation): "If a
    new record's EventTime is greater, the new record is written to both the OnlineStore and
    OfflineStore. Otherwise, the record is a historic record and it is written only to the
    OfflineStore." So an equal event time is historic: the online record stays as it is.
    """
    return current is None or event_ns > current.event_ns


class OnlineTable:
    def __init__(self) -> None:
        self._records: dict[str, OnlineRecord] = {}
        self._sorted_ids: list[str] | None = None  # ListRecords order, rebuilt when ids change

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records = {}
        self._sorted_ids = None

    def current(self, rid: str, now_ns: int) -> OnlineRecord | None:
        """The stored record (soft-deleted ones included); an expired one is dropped."""
        cur = self._records.get(rid)
        if cur is not None and cur.expires_ns is not None and now_ns >= cur.expires_ns:
            self._remove(rid)
            return None
        return cur

    def _remove(self, rid: str) -> None:
        del self._records[rid]
        self._sorted_ids = None

    def put(self, rid: str, record: list[dict], event_ns: int, ttl_secs: int | None,
            now_ns: int) -> bool:
        """Store the record when it is newer than the current one; True when stored."""
        cur = self.current(rid, now_ns)
        if not replaces(event_ns, cur):
            return False
        expires = event_ns + ttl_secs * NS if ttl_secs is not None else None
        if cur is None:
            self._sorted_ids = None
        self._records[rid] = OnlineRecord(record, event_ns, expires)
        return True

    def delete(self, rid: str, event_ns: int, event_time: str, hard: bool, now_ns: int) -> bool:
        """DeleteRecord online; True when the online record changed.

        A delete not newer than the stored record: HardDelete is refused ("400
        ValidationException", DeleteRecord docs); SoftDelete leaves the record alone while its
        marker still goes to the offline store (documented AWS behaviour).
        """
        cur = self.current(rid, now_ns)
        if cur is None:
            return False
        if event_ns <= cur.event_ns:
            if hard:
                raise validation(
                    f"EventTime {event_time} of the HardDelete must be later than the "
                    f"EventTime {iso_from_ns(cur.event_ns)} of the existing record")
            return False
        if hard:
            self._remove(rid)
        else:
            cur.record, cur.event_ns, cur.deleted = None, event_ns, True
        return True

    def get(self, rid: str, now_ns: int) -> tuple[list[dict], int | None] | None:
        """(FeatureValues, expires ns) of a live record, None when absent or deleted."""
        cur = self.current(rid, now_ns)
        if cur is None or cur.deleted:
            return None
        return cur.record, cur.expires_ns

    def page(self, after: str | None, limit: int, include_deleted: bool,
             now_ns: int) -> tuple[list[str], str | None]:
        """Up to ``limit`` ids after ``after`` in id order; and the id to resume after, if
        any ids are left (expired or deleted ones are skipped, not returned)."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self._records)
        ids = self._sorted_ids
        pos = bisect.bisect_right(ids, after) if after is not None else 0
        out: list[str] = []
        last = None
        while pos < len(ids) and len(out) < limit:
            rid = ids[pos]
            pos += 1
            last = rid
            cur = self._records.get(rid)
            if cur is None or (cur.expires_ns is not None and now_ns >= cur.expires_ns):
                continue
            if cur.deleted and not include_deleted:
                continue
            out.append(rid)
        return out, (last if pos < len(ids) else None)


def render(record: list[dict], expires_ns: int | None, wanted: set[str] | None,
           with_expiry: bool) -> dict:
    """The GetRecord / BatchGetRecord view: ``Record`` (only ``wanted`` features) and
    ``ExpiresAt`` when asked for."""
    if wanted is not None:
        record = [fv for fv in record if fv.get("FeatureName") in wanted]
    out: dict = {}
    if record:
        out["Record"] = record
    if with_expiry and expires_ns is not None:
        out["ExpiresAt"] = iso_from_ns(expires_ns)
    return out
