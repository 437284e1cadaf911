"""Event times as the service takes them: ISO-8601 UTC or fractional unix seconds.

One grammar for the whole job: :func:`instant_ns` (driver and executors) and
``select.event_time_key`` (Spark, built from :data:`ISO_EVENT_TIME_SPARK`) accept the same
strings. It is the service's: ``yyyy-MM-ddTHH:mm:ss[.f{1,9}]Z`` (the sagemaker model's
EventTimeFeatureName docs name ``yyyy-MM-dd'T'HH:mm:ssZ`` and ``...ss.SSSZ``; the service keeps
up to 9 digits, DESIGN.md §2). A string it refuses is unparseable here too.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Groups: 1 the whole seconds, 3 the fraction digits. ASCII digits only, and no year 0000
# (Python's datetime has none; Spark's would parse it): the stricter reading of the grammar.
ISO_EVENT_TIME = (r"((?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
                  r"(\.([0-9]{1,9}))?Z")
# Java regex for Spark's rlike: \z is the very end (Java's $ allows a final "\n").
ISO_EVENT_TIME_SPARK = f"^{ISO_EVENT_TIME}\\z"
_ISO = re.compile(ISO_EVENT_TIME)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def instant_ns(text: str | None) -> int | None:
    """Nanoseconds since the epoch for an event time or ExpiresAt as the service writes them.

    ISO-8601 UTC (``2024-05-01T12:00:00Z``, 0-9 fraction digits) or fractional unix seconds
    (``1714564800.25``), parsed exactly (Decimal, floored to the nanosecond). None when it is
    neither (see the module docstring: the service's grammar, nothing more lenient).
    """
    if text is None:
        return None
    m = _ISO.fullmatch(text)
    if m:
        whole, _, frac = m.groups()
        try:
            dt = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return None
        secs = calendar.timegm(dt.timetuple())
        return secs * NS + (int(frac.ljust(9, "0")) if frac else 0)
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
    """An instant in microseconds as ``seconds.ffffff`` (Fractional: unix seconds) or as
    ``yyyy-MM-ddTHH:mm:ss.SSSZ`` (String: a documented format, so milliseconds, floored)."""
    if fractional:
        sign, magnitude = ("-", -micros) if micros < 0 else ("", micros)
        secs, frac = divmod(magnitude, 1_000_000)
        return f"{sign}{secs}.{frac:06d}"
    dt = _EPOCH + timedelta(microseconds=micros - micros % 1000)
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z")


def now_event_time(fractional: bool) -> str:
    return format_event_time(time.time_ns() // 1000, fractional)


def event_time_after(stored: str, fractional: bool) -> str | None:
    """The first instant strictly after `stored` that :func:`format_event_time` can write:
    the next microsecond (Fractional) or millisecond (String). None when it doesn't parse."""
    ns = instant_ns(stored)
    if ns is None:
        return None
    if fractional:
        return format_event_time(ns // 1000 + 1, True)
    return format_event_time((ns // 1_000_000 + 1) * 1000, False)
