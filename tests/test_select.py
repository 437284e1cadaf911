"""Unit tests for fsmigrate.select: latest state, deletes, filter, resume-from."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import pytest
from chispa import assert_df_equality
from fsmigrate.errors import BadInput
from fsmigrate.plan import Counts
from fsmigrate.select import (
    after_record_id,
    apply_filter,
    count_selection,
    drop_deleted,
    event_time_key,
    latest_state,
    normalize_filter,
)
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

T0 = datetime(2024, 5, 1, 12, 0, 0)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)


def offline_schema(event_time_type=None) -> StructType:
    """The source offline store as read: features, then the three offline-only columns."""
    return StructType(
        [
            StructField("id", StringType()),
            StructField("event_time", event_time_type or StringType()),
            StructField("amount", LongType()),
            StructField("score", DoubleType()),
            StructField("label", StringType()),
            StructField("write_time", TimestampType()),
            StructField("api_invocation_time", TimestampType()),
            StructField("is_deleted", BooleanType()),
        ]
    )


def put(rid, et, amount=None, score=None, label=None, write=T0, api=T0):
    return (rid, et, amount, score, label, write, api, False)


def delete(rid, et, write=T0, api=T0):
    return (rid, et, None, None, None, write, api, True)


def offline_df(spark, rows, event_time_type=None):
    return spark.createDataFrame(rows, offline_schema(event_time_type))


def latest(spark, rows, event_time_type=None):
    return latest_state(offline_df(spark, rows, event_time_type), "id", "event_time")


# ---- normalize_filter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        (None, None),
        ("amount > 1", "amount > 1"),
        ("  WHERE amount > 1  ", "amount > 1"),
        ("where amount > 1", "amount > 1"),
        ("Where\n\tamount > 1", "amount > 1"),
        ("WHERE(amount > 1)", "(amount > 1)"),
        ("whereabouts = 'x'", "whereabouts = 'x'"),  # a column that starts with "where"
        ("label = 'WHERE x'", "label = 'WHERE x'"),  # only a leading keyword goes
    ],
)
def test_normalize_filter(query, expected):
    assert normalize_filter(query) == expected


@pytest.mark.parametrize("query", ["", "   \n ", "WHERE", "WHERE ", " where\t"])
def test_an_empty_filter_is_refused_not_read_as_everything(query):
    with pytest.raises(BadInput, match="is empty"):
        normalize_filter(query)


# ---- event_time_key --------------------------------------------------------------------------


def keys_of(spark, values, data_type):
    df = spark.createDataFrame([(v,) for v in values], StructType([StructField("t", data_type)]))
    rows = df.select(event_time_key("t", data_type).alias("k")).collect()
    return [None if r.k is None else (r.k.seconds, r.k.nanos) for r in rows]


def test_event_time_key_iso_is_exact_instant(spark):
    values = [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.5Z",
        "2024-01-01T00:00:00.500Z",
        "2024-01-01T00:00:00.123456788Z",
        "2024-01-01T00:00:00.123456789Z",
        "2024-01-01T00:00:01Z",
        "1969-12-31T23:59:59.999999999Z",
        "0001-01-01T00:00:00Z",
    ]
    assert keys_of(spark, values, StringType()) == [
        (1704067200, 0),
        (1704067200, 500_000_000),
        (1704067200, 500_000_000),
        (1704067200, 123_456_788),
        (1704067200, 123_456_789),
        (1704067201, 0),
        (-1, 999_999_999),
        (-62135596800, 0),
    ]


def test_event_time_key_sorts_as_instants_not_strings(spark):
    # As strings "...:00Z" > "...:00.5Z" ('Z' > '.'); as instants it is the other way round.
    values = [
        "2024-01-01T00:00:01Z",
        "2024-01-01T00:00:00.123456789Z",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.5Z",
        "2024-01-01T00:00:00.123456788Z",
        "2024-01-01T00:00:00.250Z",
    ]
    assert sorted(values) != values  # the trap is real
    df = spark.createDataFrame([(v,) for v in values], "t string")
    ordered = [r.t for r in df.orderBy(event_time_key("t", StringType())).collect()]
    assert ordered == [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.123456788Z",
        "2024-01-01T00:00:00.123456789Z",
        "2024-01-01T00:00:00.250Z",
        "2024-01-01T00:00:00.5Z",
        "2024-01-01T00:00:01Z",
    ]


@pytest.mark.parametrize("ansi", ["false", "true"])
def test_event_time_key_unparseable_is_null(spark, ansi):
    # ANSI mode (a cluster's choice) turns a bad cast into an error: the key's casts only see
    # text the grammar accepted, so a bad event time is a null key there too, not a failed plan
    values = [
        "garbage",
        "",
        None,
        "2024-01-01 00:00:00Z",  # space instead of T
        "2024-01-01T00:00:00",  # no Z
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:00:00.Z",  # a dot without digits
        "2024-01-01T00:00:00.1234567890Z",  # 10 fraction digits
        "2024-02-30T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "abc.defZ",  # text after a dot that is no number
        "2024-01-01T00:00:00.12x4Z",
        "2024-02-30T00:00:00.5Z",
    ]
    spark.conf.set("spark.sql.ansi.enabled", ansi)
    try:
        assert keys_of(spark, values, StringType()) == [None] * len(values)
    finally:
        spark.conf.unset("spark.sql.ansi.enabled")


def test_event_time_key_ignores_session_time_zone(spark):
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        # the second one is in New York's spring-forward gap, the third in its repeated hour
        keys = keys_of(spark, ["2024-07-01T12:00:00.25Z", "2024-03-10T02:30:00Z",
                               "2024-11-03T01:30:00.5Z"], StringType())
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert keys == [(1719835200, 250_000_000), (1710037800, 0), (1730597400, 500_000_000)]


def test_event_time_key_fractional_seconds(spark):
    d = 1_700_000_000.25
    next_up = math.nextafter(d, math.inf)  # one ulp (~238 ns) later
    values = [d, next_up, 1.5, -1.5, 0.0, float("nan"), float("inf"), float("-inf"), 1e300, None]
    keys = keys_of(spark, values, DoubleType())
    assert keys[:5] == [
        (1_700_000_000, 250_000_000),
        (1_700_000_000, 250_000_238),
        (1, 500_000_000),
        (-2, 500_000_000),
        (0, 0),
    ]
    assert keys[5:] == [None] * 5


def test_event_time_key_rejects_other_types():
    with pytest.raises(ValueError, match="event time"):
        event_time_key("t", TimestampType())


# ---- latest_state ----------------------------------------------------------------------------


def test_latest_by_event_time_with_mixed_fraction_digits(spark):
    rows = [
        # a: 0 vs 1 digit, the string trap: "...:00Z" is the older one
        put("a", "2024-01-01T00:00:00.5Z", amount=2),
        put("a", "2024-01-01T00:00:00Z", amount=1),
        # b: differs only in the 9th digit; the newer row arrives first
        put("b", "2024-01-01T00:00:00.123456789Z", amount=9),
        put("b", "2024-01-01T00:00:00.123456788Z", amount=8),
        # c: 3 digits vs 9 digits vs none
        put("c", "2024-01-01T00:00:00.999Z", amount=3),
        put("c", "2024-01-01T00:00:00.999000001Z", amount=4),
        put("c", "2023-12-31T23:59:59Z", amount=5),
        # d: a single row
        put("d", "2024-01-01T00:00:00Z", amount=7),
    ]
    expected = offline_df(spark, [rows[0], rows[2], rows[5], rows[7]])
    assert_df_equality(latest(spark, rows), expected, ignore_row_order=True)


def test_latest_by_fractional_second_event_time(spark):
    d = 1_700_000_000.25
    rows = [
        put("a", d, amount=1),
        put("a", math.nextafter(d, math.inf), amount=2),
        put("a", d - 0.5, amount=0),
        put("b", 1_699_999_999.9, amount=3),
        put("b", 1_700_000_000.0, amount=4),
    ]
    expected = offline_df(spark, [rows[1], rows[4]], DoubleType())
    assert_df_equality(latest(spark, rows, DoubleType()), expected, ignore_row_order=True)


def test_latest_tie_on_event_time_decided_by_api_invocation_time(spark):
    et = "2024-01-01T00:00:00.000Z"
    rows = [
        put("a", et, amount=1, api=T1, write=T0),  # newer call, older write: wins
        put("a", et, amount=2, api=T0, write=T2),
        put("a", "2024-01-01T00:00:00Z", amount=3, api=T0, write=T0),  # same instant
    ]
    expected = offline_df(spark, [rows[0]])
    assert_df_equality(latest(spark, rows), expected)


def test_latest_tie_on_event_and_api_time_decided_by_write_time(spark):
    et = "2024-01-01T00:00:00Z"
    rows = [
        put("a", et, amount=1, api=T1, write=T1),
        put("a", et, amount=2, api=T1, write=T2),
        put("a", et, amount=3, api=T0, write=T2),
    ]
    expected = offline_df(spark, [rows[1]])
    assert_df_equality(latest(spark, rows), expected)


def test_latest_unparseable_event_time_loses(spark):
    rows = [put("a", "not a time", amount=1, api=T2), put("a", "1970-01-01T00:00:00Z", amount=2)]
    assert latest(spark, rows).first().amount == 2


def test_latest_flags_records_with_an_unparseable_event_time(spark):
    """With ``unparseable_col``, a record with any unparseable row is flagged (1), whatever
    its other rows; the others (0) keep their newest row. The flag comes from the same sorted
    window: no second window, so the per-id limit still runs before the shuffle."""
    rows = [
        put("ok", "2024-01-01T00:00:00Z", amount=1), put("ok", "2024-01-02T00:00:00Z", amount=2),
        put("bad", "2024-01-02T00:00:00Z", amount=3, api=T2), put("bad", "nonsense", amount=4),
        put("null", None, amount=5),
    ]
    out = latest_state(offline_df(spark, rows), "id", "event_time", unparseable_col="bad")
    flags = {r.id: (r.bad, r.amount) for r in out.collect()}
    assert {k: v[0] for k, v in flags.items()} == {"ok": 0, "bad": 1, "null": 1}
    assert flags["ok"][1] == 2
    assert [f.name for f in out.schema][-1] == "bad"
    plan = out._jdf.queryExecution().executedPlan().toString()
    below_shuffle = plan[plan.index("Exchange"):]
    assert "WindowGroupLimit" in below_shuffle, plan


def test_latest_keeps_input_columns_order_and_types(spark):
    df = offline_df(spark, [put("a", "2024-01-01T00:00:00Z", 1, 1.5, "x")]).select(
        "label", "write_time", "id", "is_deleted", "event_time", "score", "api_invocation_time"
    )
    out = latest_state(df, "id", "event_time")
    assert [(f.name, f.dataType) for f in out.schema] == [(f.name, f.dataType) for f in df.schema]


def test_latest_is_deterministic_on_full_tie(spark):
    et = "2024-01-01T00:00:00Z"
    rows = [put("a", et, amount=n) for n in range(20)]
    results = set()
    for seed in range(2):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        df = offline_df(spark, shuffled).repartition(3)
        results.add(latest_state(df, "id", "event_time").first().amount)
    assert len(results) == 1


def test_latest_long_record_ids(spark):
    schema = StructType(
        [
            StructField("id", LongType()),
            StructField("event_time", StringType()),
            StructField("write_time", TimestampType()),
            StructField("api_invocation_time", TimestampType()),
            StructField("is_deleted", BooleanType()),
        ]
    )
    rows = [
        (1, "2024-01-01T00:00:01Z", T0, T0, False),
        (1, "2024-01-01T00:00:02Z", T0, T0, True),
        (2, "2024-01-01T00:00:01Z", T0, T0, False),
    ]
    df = spark.createDataFrame(rows, schema)
    expected = spark.createDataFrame([rows[1], rows[2]], schema)
    assert_df_equality(latest_state(df, "id", "event_time"), expected, ignore_row_order=True)


# ---- drop_deleted ----------------------------------------------------------------------------


def test_delete_marker_as_latest_drops_the_record(spark):
    rows = [
        put("a", "2024-01-01T00:00:00Z", amount=1),
        delete("a", "2024-01-01T00:00:00.5Z"),
        put("b", "2024-01-01T00:00:00Z", amount=2),
    ]
    out = drop_deleted(latest(spark, rows))
    assert_df_equality(out, offline_df(spark, [rows[2]]))


def test_older_delete_then_newer_put_is_kept(spark):
    rows = [
        put("a", "2024-01-01T00:00:00Z", amount=1),
        delete("a", "2024-01-01T00:00:01Z"),
        put("a", "2024-01-01T00:00:01.000000001Z", amount=3),
    ]
    assert_df_equality(drop_deleted(latest(spark, rows)), offline_df(spark, [rows[2]]))


def test_null_is_deleted_counts_as_present(spark):
    df = offline_df(spark, [("a", "2024-01-01T00:00:00Z", 1, None, None, T0, T0, None)])
    assert drop_deleted(df).count() == 1


# ---- apply_filter ----------------------------------------------------------------------------


def test_filter_none_returns_input(spark):
    df = offline_df(spark, [put("a", "2024-01-01T00:00:00Z", amount=1)])
    assert apply_filter(df, None) is df


def test_filter_with_leading_where(spark):
    rows = [put("a", "2024-01-01T00:00:00Z", amount=1), put("b", "2024-01-01T00:00:00Z", amount=5)]
    df = offline_df(spark, rows)
    expected = offline_df(spark, [rows[1]])
    assert_df_equality(apply_filter(df, "WHERE amount > 2"), expected)
    assert_df_equality(apply_filter(df, "  where amount > 2 and label is null"), expected)


def test_filter_sees_latest_state_only(spark):
    rows = [
        # a: an old version matches, the latest does not -> not selected
        put("a", "2024-01-01T00:00:00Z", amount=100),
        put("a", "2024-01-02T00:00:00Z", amount=1),
        # b: matched before being deleted -> stays deleted
        put("b", "2024-01-01T00:00:00Z", amount=100),
        delete("b", "2024-01-02T00:00:00Z"),
        # c: the latest version matches -> selected, with its latest values
        put("c", "2024-01-01T00:00:00Z", amount=1),
        put("c", "2024-01-02T00:00:00Z", amount=200),
    ]
    query = "amount > 50"
    raw = offline_df(spark, rows)
    assert {r.id for r in apply_filter(raw, query).collect()} == {"a", "b", "c"}  # the trap

    selected = apply_filter(drop_deleted(latest_state(raw, "id", "event_time")), query)
    assert_df_equality(selected, offline_df(spark, [rows[5]]))


def test_filter_cannot_resurrect_a_deleted_record(spark):
    rows = [put("b", "2024-01-01T00:00:00Z", amount=100), delete("b", "2024-01-02T00:00:00Z")]
    raw = offline_df(spark, rows)
    for query in ["amount = 100 or is_deleted", "true"]:
        assert apply_filter(drop_deleted(latest_state(raw, "id", "event_time")), query).count() == 0


@pytest.mark.parametrize(
    "query, expect",
    [
        ("amount = = 1", "Syntax error"),
        ("amount > 1; drop table x", "Syntax error"),
        ("nope > 1", "`nope` cannot be resolved"),
        ("amount + 1", "of type bigint, not boolean"),
        ("label", "of type string, not boolean"),
        ("WHERE amount >\n 0 and", "alias"),  # Spark would read it as `(amount > 0) AS and`
        ("amount > 0 -- note", None),  # a comment is fine
        ("max(amount) > 1", "INVALID_WHERE_CONDITION"),
        ("java_method('java.lang.System','exit',0) IS NULL", "calls java_method()"),
        ("reflect('java.lang.Thread','sleep',1L) IS NULL", "calls reflect()"),
        ("assert_true(amount < 0) IS NULL", "calls assert_true()"),
        ("amount > 0 or raise_error('x') is null", "calls raise_error()"),
        ("rand() < 0.5", "calls rand()"),
        ("uuid() = label", "calls uuid()"),
        ("event_time < current_timestamp", "uses current_timestamp"),
        ("event_time < now()", "calls now()"),
        ("my_udf(amount)", "calls my_udf(): not a built-in"),
        ("db.fn(amount) > 1", "calls db.fn()"),
        ("exists(array(amount), x -> rand() > x)", "calls rand()"),
        ("amount IN (SELECT 1)", "subquery"),
        ("abs(amount) > 0 or upper(label) = 'X'", None),  # built-ins are fine
    ],
)
def test_bad_filter_raises_one_line_bad_input(spark, query, expect):
    df = offline_df(spark, [put("a", "2024-01-01T00:00:00Z", amount=1)])
    if expect is None:
        assert apply_filter(df, query).count() == 1
        return
    with pytest.raises(BadInput) as info:
        apply_filter(df, query)
    message = str(info.value)
    assert "\n" not in message
    assert repr(normalize_filter(query)) in message
    assert expect in message
    assert "fix" in message or "remove" in message or "not allowed" in message or "only" in message
    assert "== SQL ==" not in message and "Filter" not in message


# ---- after_record_id -------------------------------------------------------------------------


def test_after_record_id_strings(spark):
    df = spark.createDataFrame([(i,) for i in ["a", "b", "ba", "c", "B", "", None]], "id string")
    out = after_record_id(df, "id", "b")
    expected = spark.createDataFrame([("ba",), ("c",)], "id string")
    assert_df_equality(out, expected)
    assert after_record_id(df, "id", None) is df


def test_after_record_id_long_ids_compare_as_strings(spark):
    df = spark.createDataFrame([(i,) for i in [1, 2, 9, 10, 11, 100, -5]], "id long")
    out = after_record_id(df, "id", "10")
    # "100" > "11" > "10" and "2", "9" > "10"; "1" and "-5" sort before.
    expected = spark.createDataFrame([(2,), (9,), (11,), (100,)], "id long")
    assert_df_equality(out, expected)


# ---- count_selection -------------------------------------------------------------------------


def test_count_selection_in_one_pass_matches_the_chain(spark):
    rows = [
        put("a", "2024-01-01T00:00:00Z", amount=1),  # live, filtered out
        put("b", "2024-01-01T00:00:00Z", amount=5),  # matched, before --resume-from
        put("c", "2024-01-01T00:00:00Z", amount=9),
        delete("c", "2024-01-02T00:00:00Z"),  # deleted
        put("d", "2024-01-01T00:00:00Z"),  # filter is null: filtered out
        put("e", "2024-01-01T00:00:00Z", amount=10),
        put("e", "2024-01-02T00:00:00Z", amount=1),  # latest no longer matches: filtered out
        put("f", "2024-01-01T00:00:00Z", amount=7),  # selected
        put("g", "2024-01-01T00:00:00Z", amount=1),
        put("g", "2024-01-02T00:00:00Z", amount=8),  # latest matches: selected
    ]
    latest_rows = latest(spark, rows)
    counts = count_selection(latest_rows, "id", "WHERE amount > 2", "c", rows_scanned=10)
    assert counts == Counts(rows_scanned=10, records=7, deleted_skipped=1, filtered_out=3,
                            before_resume_from=1, selected=2)
    chosen = after_record_id(apply_filter(drop_deleted(latest_rows), "amount > 2"), "id", "c")
    assert sorted(r.id for r in chosen.collect()) == ["f", "g"]
    assert count_selection(latest_rows, "id", None, None) == Counts(records=7, deleted_skipped=1,
                                                                   selected=6)


def test_count_selection_refuses_a_bad_filter(spark):
    with pytest.raises(BadInput, match="not boolean"):
        count_selection(latest(spark, [put("a", "2024-01-01T00:00:00Z")]), "id", "amount", None)
