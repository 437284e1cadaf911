"""--verify's comparison rules (pure): one record as sent against what the target returns."""

from __future__ import annotations

from dataclasses import replace

from fsmigrate.aws import AwsSettings
from fsmigrate.eventtime import NS, instant_ns
from fsmigrate.verify_records import (
    DIFFERENT,
    EXPIRED_SINCE,
    KEPT_NEWER,
    MATCHED,
    MISSING,
    VerifyJob,
    compare,
)

T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-01T12:00:00.5Z"
NOW = instant_ns("2024-05-02T00:00:00Z")
COLUMNS = ("id", "t", "n", "x", "tags")
TYPES = (("id", "String", False), ("t", "String", False), ("n", "Integral", False),
         ("x", "Fractional", False), ("tags", "String", True))


def job(**changes) -> VerifyJob:
    base = VerifyJob(aws=AwsSettings(), group="g", columns=COLUMNS, types=TYPES, record_id="id",
                     event_time="t", ttl_column=None, default_ttl=None, target_was_empty=True,
                     now_ns=NOW)
    return replace(base, **changes)


SENT = {"id": "r1", "t": T0, "n": "5", "x": "1.50", "tags": ["a", "b"]}


def test_same_values_match_numbers_as_numbers_and_times_as_instants():
    got = {"id": "r1", "t": "2024-05-01T12:00:00.000Z", "n": "5", "x": "1.5",
           "tags": ["a", "b"]}
    assert compare(job(), SENT, got) == (MATCHED, [])


def test_a_changed_value_or_list_is_different_and_names_the_features():
    got = {**SENT, "n": "6", "tags": ["a"]}
    assert compare(job(), SENT, got) == (DIFFERENT, ["n", "tags"])
    assert compare(job(), SENT, {k: v for k, v in SENT.items() if k != "x"}) == (
        DIFFERENT, ["x"])


def test_missing_unless_its_expiry_has_passed_since():
    assert compare(job(), SENT, None) == (MISSING, [])
    # event time + 3600 s is before NOW: it expired after it was written
    assert compare(job(default_ttl=3600), SENT, None) == (EXPIRED_SINCE, [])
    assert compare(job(default_ttl=86400 * 30), SENT, None) == (MISSING, [])


def test_expires_at_is_event_time_plus_the_ttl_the_record_got():
    ttl_job = job(columns=(*COLUMNS, "__ttl_seconds"), ttl_column="__ttl_seconds",
                  default_ttl=60)
    sent = {**SENT, "__ttl_seconds": 7200}
    right = {**SENT, "ExpiresAt": "2024-05-01T14:00:00Z"}
    assert compare(ttl_job, sent, right) == (MATCHED, [])
    # the per-record TTL wins over the target's default; none sent -> the default applies
    assert compare(ttl_job, {**SENT, "__ttl_seconds": None},
                   {**SENT, "ExpiresAt": "2024-05-01T12:01:00Z"}) == (MATCHED, [])
    assert compare(ttl_job, sent, {**SENT, "ExpiresAt": "2024-05-01T15:00:00Z"}) == (
        DIFFERENT, ["ExpiresAt"])
    assert compare(job(), SENT, {**SENT, "ExpiresAt": "2024-05-01T15:00:00Z"}) == (
        DIFFERENT, ["ExpiresAt"])


def test_a_newer_or_equal_time_target_record_is_kept_newer_not_written():
    # PutRecord: the online store takes a record only when its EventTime is greater.
    newer = {**SENT, "t": T1, "n": "99"}
    assert compare(job(), SENT, newer) == (KEPT_NEWER, ["t"])
    same_time_other_values = {**SENT, "n": "99"}
    assert compare(job(target_was_empty=False), SENT, same_time_other_values) == (
        KEPT_NEWER, ["n"])
    # an empty target had nothing to keep: the same difference is a real one
    assert compare(job(target_was_empty=True), SENT, same_time_other_values) == (
        DIFFERENT, ["n"])
    older = {**SENT, "t": "2024-05-01T11:00:00Z"}
    assert compare(job(), SENT, older) == (DIFFERENT, ["t"])


def test_verify_rows_ttl_and_expiry_use_ns_precision():
    # ExpiresAt rendered to the second still matches an event time with a fraction
    ttl_job = job(default_ttl=10)
    sent = {**SENT, "t": T1}
    got = {**sent, "ExpiresAt": "2024-05-01T12:00:10Z"}
    assert compare(ttl_job, sent, got)[0] == MATCHED
    assert instant_ns(got["ExpiresAt"]) + NS > instant_ns(T1) + 10 * NS
