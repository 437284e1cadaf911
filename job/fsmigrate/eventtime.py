"""Event times as the service writes them: ISO-8601 UTC or fractional unix seconds."""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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


def now_ns(now: datetime | None = None) -> int:
    """Nanoseconds since the epoch of `now` (naive means UTC; default: the current time)."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delta = now - _EPOCH
    return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000


def ttl_seconds_for(event_time: str | None, expires_at: str | None) -> int | None:
    """The TtlDuration (s) that gives the same ExpiresAt from the same event time on a target.

    ExpiresAt = EventTime + TtlDuration, so TTL = ExpiresAt - EventTime, rounded up to whole
    seconds (at least 1, the smallest TtlDuration). None without an ExpiresAt or when the
    event time can't be parsed (then the target's default TTL applies; logged).
    """
    expires = instant_ns(expires_at)
    event = instant_ns(event_time)
    if expires is None or event is None:
        return None
    return max(1, -((event - expires) // NS))


def format_event_time(micros: int, fractional: bool) -> str:
    """An instant in microseconds as `yyyy-MM-ddTHH:mm:ss.ffffffZ` or `seconds.ffffff`."""
    if fractional:
        sign, magnitude = ("-", -micros) if micros < 0 else ("", micros)
        secs, frac = divmod(magnitude, 1_000_000)
        return f"{sign}{secs}.{frac:06d}"
    dt = _EPOCH + timedelta(microseconds=micros)
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}.{dt.microsecond:06d}Z")


def now_event_time(fractional: bool) -> str:
    return format_event_time(time.time_ns() // 1000, fractional)


def event_time_after(stored: str, fractional: bool) -> str | None:
    """The first whole microsecond strictly after `stored` (None when it doesn't parse)."""
    ns = instant_ns(stored)
    if ns is None:
        return None
    return format_event_time(ns // 1000 + 1, fractional)
