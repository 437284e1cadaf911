"""limits.py: what the service refuses, found before sending (botocore model: ValueAsString
max 358400, pattern '.*' in Java's sense; quotas page: record <= 350 KB, id <= 2 KB)."""

from __future__ import annotations

import json

import pytest
from fsmigrate.limits import MAX_VALUE_CHARS, entry_problem, value_problem


def entry(value: str) -> str:
    """A BatchWriteRecord entry as Spark's to_json writes it (non-ASCII characters raw)."""
    return json.dumps({"FeatureGroupName": "g", "Record": [
        {"FeatureName": "id", "ValueAsString": "r1"},
        {"FeatureName": "text", "ValueAsString": value}]}, ensure_ascii=False)


@pytest.mark.parametrize("terminator", ["\n", "\r", "\u0085", "\u2028", "\u2029"])
def test_prepared_entry_with_a_line_terminator_is_refused(terminator):
    problem = entry_problem(entry(f"a{terminator}b"), "r1")
    assert problem is not None and f"U+{ord(terminator):04X}" in problem


@pytest.mark.parametrize("value", ["plain", "a\\nb (a backslash, then n)", "tab\there", "ü é"])
def test_prepared_entry_that_only_looks_suspicious_passes(value):
    assert entry_problem(entry(value), "r1") is None


def test_prepared_entry_checks_sizes_like_a_built_record():
    assert "358400" in entry_problem(entry("x" * (MAX_VALUE_CHARS + 1)), "r1")
    big = json.dumps({"Record": [{"FeatureName": f"f{i}", "ValueAsString": "y" * 300_000}
                                 for i in range(2)]})
    assert "350 KB" in entry_problem(big, "r1")
    assert "2 KB" in entry_problem(entry("ok"), "é" * 1100)


def test_value_problem_matches_entry_problem_on_the_same_text():
    for text in ("ok", "a\nb", "x" * (MAX_VALUE_CHARS + 1)):
        assert (value_problem("text", text) is None) == (entry_problem(entry(text), "r1") is None)
