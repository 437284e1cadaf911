"""What the service refuses in a record, checked before the record is sent.

Sources: botocore's sagemaker-featurestore-runtime service-2.json, shape ValueAsString
``{"type": "string", "max": 358400, "pattern": ".*"}`` (the service matches patterns with Java's
regex, whose "." stops at a line terminator: \\n, \\r, U+0085, U+2028, U+2029); the Feature Store
quotas page (record <= 350 KB, record identifier <= 2 KB); Integral is a signed 64-bit integer
and Fractional an IEEE-754 double (a non-finite float has no text the service accepts).
A refused value in a BatchWriteRecord can reject the whole call, so it must not be sent.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_VALUE_CHARS = 358_400
MAX_RECORD_BYTES = 350 * 1024
MAX_RECORD_ID_BYTES = 2 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_TERMINATOR_CHARS = "\n\r\u0085\u2028\u2029"
_LINE_TERMINATOR = re.compile(f"[{_TERMINATOR_CHARS}]")


def value_problem(name: str, value: Any) -> str | None:
    """Why the service would refuse this row value (before conversion to text), or None."""
    t = type(value)
    if t is str:
        return _text_problem(name, value)
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            return f"value of {name!r} is outside the 64-bit Integral range"
        return None
    if t is float:
        return None if math.isfinite(value) else f"value of {name!r} is not a finite number"
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_VALUE_CHARS:  # ValueAsStringList: "max": 358400
            return f"{name!r} has {len(value)} values: more than {MAX_VALUE_CHARS}"
        for item in value:
            problem = value_problem(name, item)
            if problem:
                return problem
        return None
    return _text_problem(name, str(value)) if value is not None else None


def _text_problem(name: str, text: str) -> str | None:
    if len(text) > MAX_VALUE_CHARS:
        return (f"value of {name!r} is {len(text)} characters long: more than "
                f"{MAX_VALUE_CHARS} (ValueAsString max)")
    m = _LINE_TERMINATOR.search(text)
    if m:
        return (f"value of {name!r} contains U+{ord(m.group()):04X} at position {m.start()}: "
                "the service refuses line breaks (ValueAsString pattern '.*')")
    return None


def record_problem(record: list[dict], record_id: str) -> str | None:
    """Why the service would refuse this encoded Record as a whole (size limits), or None."""
    if len(record_id) * 4 > MAX_RECORD_ID_BYTES:  # UTF-8: at most 4 bytes a character
        size = len(record_id.encode())
        if size > MAX_RECORD_ID_BYTES:
            return f"record identifier is {size} bytes: more than 2 KB"
    chars = 0
    for fv in record:
        value = fv.get("ValueAsString")
        chars += len(fv["FeatureName"]) + (len(value) if value is not None else
                                           sum(map(len, fv.get("ValueAsStringList") or ())))
    if chars * 4 > MAX_RECORD_BYTES:
        size = sum(len(fv["FeatureName"].encode())
                   + sum(len(v.encode()) for v in ([fv["ValueAsString"]]
                                                   if "ValueAsString" in fv
                                                   else fv["ValueAsStringList"]))
                   for fv in record)
        if size > MAX_RECORD_BYTES:
            return f"record is {size} bytes: more than 350 KB"
    return None


# In an entry's JSON text a line terminator shows as an escape (\n, \r, \uXXXX) or raw.
_MAYBE_TERMINATOR = re.compile(r"\\[nr]|\\u(?:0085|2028|2029)|" + _LINE_TERMINATOR.pattern,
                               re.IGNORECASE)


def entry_problem(entry_json: str, record_id: str) -> str | None:
    """record_problem and value_problem for a BatchWriteRecord entry already encoded as JSON
    text (built by Spark). A cheap scan first; only a suspicious or large entry is parsed."""
    if len(entry_json) * 4 <= MAX_RECORD_BYTES and len(record_id) * 4 <= MAX_RECORD_ID_BYTES \
            and not _maybe_terminator(entry_json):
        return None
    record = json.loads(entry_json)["Record"]
    for fv in record:
        value = fv.get("ValueAsString", fv.get("ValueAsStringList"))
        problem = value_problem(fv["FeatureName"], value)
        if problem:
            return problem
    return record_problem(record, record_id)


def _maybe_terminator(entry_json: str) -> bool:
    """_MAYBE_TERMINATOR.search, with its usual answer (no backslash, no raw terminator) found
    by substring tests: ~100x cheaper than the regex on a typical entry."""
    if "\\" not in entry_json:
        if entry_json.isascii():  # O(1) on a str: then only \n and \r can be in it raw
            if "\n" not in entry_json and "\r" not in entry_json:
                return False
        elif not any(t in entry_json for t in _TERMINATOR_CHARS):
            return False
    return _MAYBE_TERMINATOR.search(entry_json) is not None
