"""One feature group's online store: the newest record per id, TTL expiry, ListRecords order.

Not thread-safe on its own: the backend (models.py) holds its lock around every call.

A record is stored compactly (a million 22-feature records in well under 2 GB, not 7.5 GB as
FeatureValue dicts): its feature names as one tuple shared by every record with the same names
in the same order, and its values joined into one string. No value contains a line terminator
(records.check_string refuses them: the service's ``.*`` pattern), so line terminators can
separate values and mark lists; GetRecord renders the FeatureValues back in the order sent.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from .exceptions import validation
from .utils import NS, iso_from_ns

SEP = "\n"  # between values
LIST = "\u2028"  # leads a ValueAsStringList
ITEM = "\r"  # before each item of a list


@dataclass(slots=True)
class OnlineRecord:
    names: tuple[str, ...]  # FeatureNames in the order sent (shared, see OnlineTable._names)
    blob: str | None  # the values (encode); None once soft-deleted
    event_ns: int
    expires_ns: int | None

    @property
    def deleted(self) -> bool:
        return self.blob is None


def encode(values: dict[str, Any]) -> str:
    """Validated values (name -> ValueAsString or ValueAsStringList) as one string."""
    try:
        return SEP.join(values.values())  # scalars only: the common case
    except TypeError:
        return SEP.join(v if type(v) is str else LIST + "".join([ITEM + i for i in v])
                        for v in values.values())


def decode(names: tuple[str, ...], blob: str) -> list[dict]:
    """The FeatureValues of an encoded record."""
    out = []
    for name, value in zip(names, blob.split(SEP), strict=True):
        if value[:1] == LIST:
            out.append({"FeatureName": name, "ValueAsStringList": value[1:].split(ITEM)[1:]})
        else:
            out.append({"FeatureName": name, "ValueAsString": value})
    return out


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
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per name order

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records = {}
        self._sorted_ids = None
        self._names = {}

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

    def put(self, rid: str, values: dict[str, Any], event_ns: int, ttl_secs: int | None,
            now_ns: int) -> bool:
        """Store the record (validated values by feature name, in the order sent) when it is
        newer than the current one; True when stored."""
        cur = self.current(rid, now_ns)
        if not replaces(event_ns, cur):
            return False
        expires = event_ns + ttl_secs * NS if ttl_secs is not None else None
        if cur is None:
            self._sorted_ids = None
        names = tuple(values)
        names = self._names.setdefault(names, names)
        self._records[rid] = OnlineRecord(names, encode(values), event_ns, expires)
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
            cur.blob, cur.event_ns = None, event_ns
        return True

    def get(self, rid: str, now_ns: int) -> tuple[list[dict], int | None] | None:
        """(FeatureValues, expires ns) of a live record, None when absent or deleted."""
        cur = self.current(rid, now_ns)
        if cur is None or cur.blob is None:
            return None
        return decode(cur.names, cur.blob), cur.expires_ns

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
