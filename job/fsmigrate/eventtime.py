"""Event times as the service writes them: ISO-8601 UTC or fractional unix seconds."""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

NS = 1_000_000_000

# yyyy-MM-ddTHH:mm:ss[.fraction](Z|±HH:MM); the service writes Z and 0-9 fraction digits.
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})"
)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def instant_ns(text: str | None) -> int | None:
    """Nanoseconds since the epoch for an event time or ExpiresAt as the service writes them.

    ISO-8601 (``2024-05-01T12:00:00Z``, 0-9 fraction digits, beyond 9 truncated; a ``±HH:MM``
    offset is honoured) or fractional unix seconds (``1714564800.25``), parsed exactly
    (Decimal, floored to the nanosecond). None when it is neither.
    """
    if text is None:
        return None
    text = text.strip()
    m = _ISO.fullmatch(text)
    if m:
        y, mo, d, h, mi, s, frac, zone = m.groups()
        try:
            datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError:
            return None
        secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
        if zone != "Z":
            sign = -1 if zone[0] == "+" else 1  # 12:00+02:00 is 10:00Z
            digits = zone[1:].replace(":", "")
            secs += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        nanos = int(frac[:9].ljust(9, "0")) if frac else 0
        return secs * NS + nanos
    if _NUMBER.fullmatch(text):
        try:
            dec = Decimal(text)
        except InvalidOperation:
            return None
        if not dec.is_finite():
            return None
        return int((dec * NS).to_integral_value(rounding=ROUND_FLOOR))
    return None
