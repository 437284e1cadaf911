"""Event times as the service writes them: parsing, TTLs, and the event times of deletes."""

from __future__ import annotations

import re

import pytest
from fsmigrate.eventtime import (
    NS,
    event_time_after,
    instant_ns,
    now_event_time,
    ttl_seconds_for,
)

# ---- parsing and TTL ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T00:00:01.123456789Z", 1_123_456_789),
        ("1970-01-01T00:00:01.1234567891Z", None),  # the service takes at most 9 digits
        ("1970-01-01T02:00:00+02:00", None),  # and only Z
        ("2024-05-01T12:00:00Z", 1714564800 * NS),
        ("1714564800", 1714564800 * NS),
        ("1714564800.25", 1714564800 * NS + 250_000_000),
        ("1714564800.000000001", 1714564800 * NS + 1),
        ("-0.5", -500_000_000),
        ("2024-02-30T00:00:00Z", None),
        ("yesterday", None),
        ("NaN", None),
        (None, None),
    ],
)
def test_instant_ns_parses_iso_and_fractional_seconds(text, expected):
    assert instant_ns(text) == expected


def test_ttl_seconds_reproduces_expires_at_rounding_up():
    assert ttl_seconds_for("2024-05-01T12:00:00Z", "2024-05-03T12:00:00Z") == 172800
    assert ttl_seconds_for("1714564800.25", "2024-05-01T12:30:00.25Z") == 1800
    assert ttl_seconds_for("100.2", "1970-01-01T00:03:20.5Z") == 101  # 100.3 s -> 101
    assert ttl_seconds_for("2024-05-01T12:00:00.9Z", "2024-05-01T12:00:00.95Z") == 1
    assert ttl_seconds_for("2024-05-01T12:00:00Z", None) is None
    assert ttl_seconds_for("garbage", "2024-05-01T12:00:00Z") is None


def test_event_times_for_deletes():
    """CreateFeatureGroup's EventTimeFeatureName docs (sagemaker model): String event times
    are "yyyy-MM-dd'T'HH:mm:ssZ and yyyy-MM-dd'T'HH:mm:ss.SSSZ" (milliseconds); Fractional
    ones "a Unix timestamp in seconds". DeleteRecord's EventTime is sent that way."""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", now_event_time(False))
    assert re.fullmatch(r"\d{10}\.\d{6}", now_event_time(True))
    # the first whole millisecond (ISO) / microsecond (seconds) strictly after the stored one
    assert event_time_after("2099-12-31T23:59:59.123456789Z", False) == \
        "2099-12-31T23:59:59.124Z"
    assert event_time_after("2099-12-31T23:59:59.123Z", False) == "2099-12-31T23:59:59.124Z"
    assert event_time_after("2099-12-31T23:59:59Z", False) == "2099-12-31T23:59:59.001Z"
    assert event_time_after("2099-12-31T23:59:59.999Z", False) == "2100-01-01T00:00:00.000Z"
    assert event_time_after("4102444800.5", True) == "4102444800.500001"
    assert event_time_after("4102444800", True) == "4102444800.000001"
    assert event_time_after("not a time", False) is None


SAMPLES = ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5Z", "2024-05-01T12:00:00.123456789Z",
           "2024-05-01T12:00:00.1234567891Z", "2024-05-01T12:00:00+02:00",
           "2024-05-01 12:00:00Z", " 2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z\n",
           "2024-02-30T00:00:00Z", "2024-05-01T12:00:00", "yesterday", "",
           # the calendar: no year 0, no Feb 29 outside leap years, no leap second, no 24:00
           "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2023-02-29T00:00:00Z",
           "2024-02-29T23:59:59.999999999Z", "2016-12-31T23:59:60Z", "2024-01-01T24:00:00Z",
           "9999-12-31T23:59:59.9Z", "1969-12-31T23:59:59.000000001Z",
           "\u0662\u0660\u0662\u0664-05-01T12:00:00Z"]  # Arabic-Indic digits: ASCII only


def test_one_event_time_grammar_for_the_driver_and_spark(spark):
    """instant_ns (online reads, clear) and select.event_time_key (offline selection) accept
    the same strings, and give the same instants: the service's own grammar (String event
    times: ISO-8601 UTC with Z, up to 9 fraction digits, as the emulator and DESIGN.md §2)."""
    from fsmigrate.select import event_time_key
    from pyspark.sql.types import StringType, StructField, StructType

    df = spark.createDataFrame([(s,) for s in SAMPLES],
                               StructType([StructField("t", StringType())]))
    keys = {r.t: r.k for r in df.select("t", event_time_key("t", StringType()).alias("k"))
            .collect()}
    for text in SAMPLES:
        ns = instant_ns(text)
        key = keys[text]
        got = None if key is None else key.seconds * NS + key.nanos
        assert got == ns, text
    assert instant_ns("2024-05-01T12:00:00+02:00") is None  # the service wants Z
    assert instant_ns("2024-05-01T12:00:00.1234567891Z") is None  # at most 9 digits
