"""Runtime input checks: TargetStores, event times, feature values, FeatureNames, TTL.

Every value constraint of the service lives here, so a new one (a length limit, a forbidden
character) is added in one place for PutRecord and BatchWriteRecord alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .exceptions import request_validation, validation
from .groups import OFFLINE, ONLINE, Feature, Group
from .utils import (
    FLOAT_RE,
    MAX_EVENT_NS,
    MIN_EVENT_NS,
    parse_fractional_ns,
    parse_iso_ns,
    ttl_seconds,
)

INT_RE = re.compile(r"[+-]?\d+")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# botocore sagemaker-featurestore-runtime service-2.json, shape ValueAsString:
# {"type": "string", "max": 358400, "pattern": ".*"}. The service checks patterns with Java's
# regex, whose "." matches anything but a line terminator, so ".*" refuses these characters.
MAX_VALUE_CHARS = 358_400
LINE_TERMINATOR_RE = re.compile("[\n\r\u0085\u2028\u2029]")
# Feature Store quotas page: "Maximum size of a record: 350 KB", "Maximum size of a record
# identifier: 2 KB" (UTF-8 bytes of the feature names and values).
MAX_RECORD_BYTES = 350 * 1024
MAX_RECORD_ID_BYTES = 2 * 1024


@dataclass(slots=True)
class ValidRecord:
    """A record that passed every check."""

    rid: str
    event_ns: int
    values: dict[str, Any]  # feature name -> ValueAsString (or ValueAsStringList), as sent


def target_stores(group: Group, stores: Any) -> tuple[str, ...]:
    if stores is None or stores == []:
        return group.stores
    if not isinstance(stores, list) or len(stores) > 2:
        raise validation("TargetStores must be a list of 1..2 stores")
    for s in stores:
        if s not in (ONLINE, OFFLINE):
            raise validation(f"Invalid TargetStore '{s}': must be OnlineStore or OfflineStore")
        if s not in group.stores:
            raise validation(f"TargetStores contains {s} but the feature group {group.name} "
                             f"has no {s}")
    return tuple(dict.fromkeys(stores))


def event_ns(group: Group, value: Any, what: str = "EventTime") -> int:
    """An event time as an instant in ns: ISO-8601 for String, unix seconds for Fractional."""
    ftype = group.by_name[group.event_time].type
    ns = None
    if isinstance(value, str):
        ns = parse_fractional_ns(value) if ftype == "Fractional" else parse_iso_ns(value)
    if ns is None:
        fmt = ("a unix timestamp in seconds" if ftype == "Fractional"
               else "an ISO-8601 string yyyy-MM-ddTHH:mm:ss[.f{1,9}]Z")
        raise validation(f"Invalid {what} value '{value}': must be {fmt}")
    if not MIN_EVENT_NS <= ns < MAX_EVENT_NS:
        raise validation(f"{what} value '{value}' is out of range")
    return ns


def check_string(name: str, value: str) -> None:
    """The ValueAsString shape's own constraints (max length, pattern ``.*``).

    A request that breaks its model's constraints is refused before the operation runs, so in
    a BatchWriteRecord the whole call fails, not one entry (the docs say nothing either way:
    this is the stricter reading, the one a client must survive).
    """
    if len(value) > MAX_VALUE_CHARS:
        raise request_validation(f"Value for feature '{name}' is {len(value)} characters long: "
                                 f"the maximum is {MAX_VALUE_CHARS}")
    m = LINE_TERMINATOR_RE.search(value)
    if m:
        raise request_validation(f"Value for feature '{name}' does not match pattern '.*': "
                                 f"it contains U+{ord(m.group()):04X} at position {m.start()}")


def check_scalar(feat: Feature, value: Any) -> None:
    if not isinstance(value, str):
        raise validation(f"Value for feature '{feat.name}' must be a string")
    check_string(feat.name, value)
    if feat.type == "Integral":
        if not INT_RE.fullmatch(value) or not INT64_MIN <= int(value) <= INT64_MAX:
            raise validation(f"Value '{value}' for feature '{feat.name}' is not a valid "
                             "Integral (64-bit integer)")
    elif feat.type == "Fractional":
        if not FLOAT_RE.fullmatch(value) or float(value) in (float("inf"), float("-inf")):
            raise validation(f"Value '{value}' for feature '{feat.name}' is not a valid "
                             "Fractional")


def _check_value(feat: Feature, fv: dict) -> Any:
    """The value of one FeatureValue (the careful path, with precise messages)."""
    name = feat.name
    has_scalar, has_list = "ValueAsString" in fv, "ValueAsStringList" in fv
    if has_scalar == has_list:
        raise validation(f"Feature '{name}' needs exactly one of ValueAsString and "
                         "ValueAsStringList")
    if not feat.collection:
        if has_list:
            raise validation(f"Feature '{name}' is a scalar feature: use ValueAsString")
        value = fv["ValueAsString"]
        check_scalar(feat, value)
        return value
    if not has_list:
        raise validation(f"Feature '{name}' is a {feat.collection} feature: use "
                         "ValueAsStringList")
    items = fv["ValueAsStringList"]
    if not isinstance(items, list):
        raise validation(f"ValueAsStringList of '{name}' must be a list")
    if len(items) > MAX_VALUE_CHARS:  # ValueAsStringList shape: "max": 358400
        raise request_validation(f"ValueAsStringList of '{name}' has {len(items)} values: "
                                 f"the maximum is {MAX_VALUE_CHARS}")
    for item in items:
        check_scalar(feat, item)
    if feat.collection == "Vector" and len(items) != feat.dimension:
        raise validation(f"Vector feature '{name}' needs {feat.dimension} values, "
                         f"got {len(items)}")
    if feat.collection == "Set" and len(set(items)) != len(items):
        raise validation(f"Set feature '{name}' has duplicate values")
    return items


def validate_record(group: Group, record: Any) -> ValidRecord:
    """Check a PutRecord/BatchWriteRecord ``Record``; ValidationError on the first problem."""
    if type(record) is not list or not record:
        raise validation("Record must contain at least one feature value")
    values: dict = {}
    kinds = group.kinds
    int_match, float_match = INT_RE.fullmatch, FLOAT_RE.fullmatch
    bad_char = LINE_TERMINATOR_RE.search
    chars = 0  # names + values, in characters: the exact byte size only when it may matter
    for fv in record:
        if type(fv) is not dict:
            raise validation("Each feature value must be a structure")
        name = fv.get("FeatureName")
        kind = kinds.get(name)
        if kind is None:
            raise validation(f"Feature '{name}' is not defined in feature group {group.name}")
        if name in values:
            raise validation(f"Feature '{name}' appears more than once in the record")
        value = fv.get("ValueAsString")
        # fast path: a scalar feature with exactly FeatureName + ValueAsString
        if kind != "C" and type(value) is str and len(fv) == 2:
            if kind == "S":
                ok = len(value) <= MAX_VALUE_CHARS and not bad_char(value)
            elif kind == "I":
                ok = bool(int_match(value)) and (len(value) < 18
                                                 or INT64_MIN <= int(value) <= INT64_MAX)
            else:
                ok = bool(float_match(value)) and not ("e" in value or "E" in value
                                                       or len(value) > 300)
            if ok:
                values[name] = value
                chars += len(name) + len(value)
                continue
        value = values[name] = _check_value(group.by_name[name], fv)
        chars += len(name) + (len(value) if isinstance(value, str)
                              else sum(len(v) for v in value))
    rid = values.get(group.record_id)
    if rid is None or rid == "":
        raise validation(f"Record identifier feature '{group.record_id}' is missing")
    check_id_size(rid)
    if chars * 4 > MAX_RECORD_BYTES:  # UTF-8 takes at most 4 bytes a character
        size = sum(len(fv["FeatureName"].encode()) + _value_bytes(values[fv["FeatureName"]])
                   for fv in record)
        if size > MAX_RECORD_BYTES:
            raise request_validation(f"Record is {size} bytes: the maximum record size is "
                                     f"{MAX_RECORD_BYTES} bytes (350 KB)")
    evt = values.get(group.event_time)
    if evt is None:
        raise validation(f"Event time feature '{group.event_time}' is missing")
    return ValidRecord(rid, event_ns(group, evt), values)


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    return sum(len(v.encode()) for v in value)


def check_id_size(rid: str) -> None:
    """Quotas page: a record identifier is at most 2 KB (the stricter, whole-call reading as
    for ``check_string``)."""
    if len(rid) * 4 > MAX_RECORD_ID_BYTES and len(rid.encode()) > MAX_RECORD_ID_BYTES:
        raise request_validation(f"Record identifier is {len(rid.encode())} bytes: the maximum "
                                 f"is {MAX_RECORD_ID_BYTES} bytes (2 KB)")


def check_record_id(group: Group, rid: str) -> None:
    """A RecordIdentifierValueAsString: a ValueAsString at most 2 KB long that fits an
    Integral identifier's type."""
    feat = group.by_name[group.record_id]
    check_string(feat.name, rid)
    check_id_size(rid)
    if feat.type == "Integral":
        check_scalar(feat, rid)


def feature_filter(group: Group, names: Any) -> set[str] | None:
    """FeatureNames of GetRecord/BatchGetRecord; None means all."""
    if names is None or names == []:
        return None
    if not isinstance(names, list):
        raise validation("FeatureNames must be a list")
    for n in names:
        if n not in group.by_name:
            raise validation(f"Feature '{n}' is not defined in feature group {group.name}")
    return set(names)


def effective_ttl(group: Group, ttl: Any) -> int | None:
    """TtlDuration of the request in seconds, else the group's default."""
    secs = ttl_seconds(ttl)
    return secs if secs is not None else group.ttl_seconds
