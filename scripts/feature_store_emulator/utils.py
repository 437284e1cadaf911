"""Time and token helpers shared by the model modules (no state, no HTTP)."""

from __future__ import annotations

import base64
import calendar
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from .exceptions import validation

ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
NS = 1_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_EVENT_NS = -62135596800 * NS  # 0001-01-01T00:00:00Z
MAX_EVENT_NS = 253402300800 * NS  # 10000-01-01T00:00:00Z
ISO_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")
FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
TTL_UNITS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}


def parse_iso_ns(value: str) -> int | None:
    """``yyyy-MM-ddTHH:mm:ss[.f{1,9}]Z`` -> ns since the epoch; None when malformed."""
    m = ISO_RE.fullmatch(value)
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    except ValueError:
        return None
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    return secs * NS + (int(frac.ljust(9, "0")) if frac else 0)


def parse_fractional_ns(value: str) -> int | None:
    """Fractional unix seconds -> ns (exact, via Decimal); None when malformed."""
    if not FLOAT_RE.fullmatch(value):
        return None
    try:
        dec = Decimal(value)
        if not dec.is_finite() or abs(dec) > Decimal(10) ** 12:
            return None
        return int((dec * NS).to_integral_value(rounding=ROUND_FLOOR))
    except (InvalidOperation, ValueError):
        return None


def iso_from_ns(ns: int) -> str:
    secs, rem = divmod(ns, NS)
    text = (EPOCH + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if rem:
        text += "." + f"{rem:09d}".rstrip("0")
    return text + "Z"


def ttl_seconds(ttl: Any, error=validation) -> int | None:
    """Validate a TtlDuration structure; None when absent."""
    if ttl is None:
        return None
    if not isinstance(ttl, dict):
        raise error("TtlDuration must be a structure with Unit and Value")
    unit, value = ttl.get("Unit"), ttl.get("Value")
    if unit not in TTL_UNITS:
        raise error(f"TtlDuration.Unit must be one of {', '.join(TTL_UNITS)}")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise error("TtlDuration.Value must be an integer >= 1")
    return value * TTL_UNITS[unit]


def encode_token(obj: Any) -> str:
    """An opaque NextToken (urlsafe base64 of compact JSON)."""
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: Any, error=validation) -> dict:
    """The dict behind a NextToken; ``error("Invalid NextToken")`` for anything else."""
    data = None
    if isinstance(token, str):
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (ValueError, TypeError):
            data = None
    if not isinstance(data, dict):
        raise error("Invalid NextToken")
    return data


def page_offset(token: Any, error, owner: str | None = None, limit: int | None = None) -> int:
    """The offset in a NextToken made by encode_token({"o": offset} or with "g": owner);
    the owner and the upper bound are checked when given."""
    data = decode_token(token, error)
    offset = data.get("o")
    if ((owner is not None and data.get("g") != owner) or not isinstance(offset, int)
            or (limit is not None and not 0 <= offset <= limit)):
        raise error("Invalid NextToken")
    return offset

