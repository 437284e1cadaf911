"""Unit tests for fsmigrate.wire: feature values as the text the service receives."""

from __future__ import annotations

import math
import random
import struct

import pytest
from chispa import assert_df_equality
from fsmigrate.groups import FRACTIONAL, INTEGRAL, STRING, Feature, FeatureMapping
from fsmigrate.wire import encode_for_target
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    FloatType,
    LongType,
    StringType,
    StructField,
    StructType,
)

# ---- encode_for_target -----------------------------------------------------------------------


def mapping(name, source_type, target_type, collection=None):
    source = None if source_type is None else Feature(name, source_type, collection)
    return FeatureMapping(name, source, Feature(name, target_type, collection))


ENCODE_SCHEMA = StructType(
    [
        StructField("i", LongType()),
        StructField("d", DoubleType()),
        StructField("s", StringType()),
        StructField("et", StringType()),
        StructField("f", FloatType()),
    ]
)


def encoded(spark, rows, mappings, schema=ENCODE_SCHEMA):
    return encode_for_target(spark.createDataFrame(rows, schema), mappings)


def strings_df(spark, names, rows):
    return spark.createDataFrame(rows, StructType([StructField(n, StringType()) for n in names]))


def test_encode_each_type_pair(spark):
    big = 2**62 + 1  # not exactly representable as a double
    rows = [
        (5, 1.5, "7", "2024-01-01T00:00:00.500Z", 0.1),
        (big, 0.1, "hello", "2024-01-01T00:00:00Z", -2.5),
        (-3, -0.0, "", "1704067200.5", 3.0),
    ]
    mappings = [
        mapping("i", INTEGRAL, INTEGRAL),
        mapping("d", FRACTIONAL, FRACTIONAL),
        mapping("s", STRING, STRING),
        mapping("et", STRING, STRING),  # event time: exactly as stored
        mapping("f", FRACTIONAL, FRACTIONAL),
    ]
    expected = strings_df(
        spark,
        ["i", "d", "s", "et", "f"],
        [
            ("5", "1.5", "7", "2024-01-01T00:00:00.500Z", "0.1"),
            (str(big), "0.1", "hello", "2024-01-01T00:00:00Z", "-2.5"),
            ("-3", "-0.0", "", "1704067200.5", "3.0"),
        ],
    )
    assert_df_equality(encoded(spark, rows, mappings), expected)


def test_encode_doubles_as_plain_decimals_like_other_clients(spark):
    """Java would write 1.7040672005E9 and 5.0E-5; the service gets the plain digits, as a
    fractional-second event time must read. Far-out exponents keep the scientific form."""
    values = [1704067200.5, 1e10, 5e-05, -150000000.0, 12345678.9, -0.000123, 1e23, 2e-300]
    rows = [(v,) for v in values]
    schema = StructType([StructField("d", DoubleType())])
    expected = strings_df(spark, ["d"], [
        ("1704067200.5",), ("10000000000.0",), ("0.00005",), ("-150000000.0",),
        ("12345678.9",), ("-0.000123",), ("9.999999999999999E22",), ("2.0E-300",)])
    mappings = [mapping("d", FRACTIONAL, FRACTIONAL)]
    assert_df_equality(encoded(spark, rows, mappings, schema), expected)


EDGES = [
    (0.0, "0.0"), (-0.0, "-0.0"),  # negative zero keeps its sign
    (5e-324, "4.9E-324"), (-5e-324, "-4.9E-324"),  # subnormals: beyond 1e-20, scientific
    (2.2250738585072014e-308, "2.2250738585072014E-308"),
    (1e20, "100000000000000000000.0"), (-1e20, "-100000000000000000000.0"),
    (9.999999999999999e20, "999999999999999900000.0"), (1e21, "1.0E21"), (-1e21, "-1.0E21"),
    (1e-20, "0.00000000000000000001"), (-1e-20, "-0.00000000000000000001"),
    (1.2345678901234567e-20, "0.000000000000000000012345678901234567"),
    (1.0000000000000001e-20, "0.000000000000000000010000000000000001"),
    (9.999999999999998e-21, "9.999999999999998E-21"), (1e-21, "1.0E-21"),  # next below 1e-20
    (1.0000000000000002e20, "100000000000000020000.0"),
    (1e7, "10000000.0"), (9999999.0, "9999999.0"), (12345678.25, "12345678.25"),
    (0.001, "0.001"), (0.0009999999999999998, "0.0009999999999999998"), (0.0009, "0.0009"),
    (-0.00012, "-0.00012"), (9999999.999999998, "9999999.999999998"),
    (1.0000000000000002, "1.0000000000000002"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
]


def test_encode_plain_decimal_edges(spark):
    """Boundaries of the plain form (±20 orders of magnitude, Java's own switch at 1e-3 and
    1e7), signed zero, subnormals, NaN and the infinities."""
    df = spark.createDataFrame([(v,) for v, _ in EDGES], "d double")
    out = [r.d for r in encode_for_target(df, [mapping("d", FRACTIONAL, FRACTIONAL)]).collect()]
    assert list(zip([v for v, _ in EDGES], out, strict=True)) == EDGES


def test_encode_plain_decimal_floats(spark):
    values = [1e10, 1.5e-5, -3.4028235e38, 1e-20, 1e-45, 0.1, -0.0]
    df = spark.createDataFrame([(v,) for v in values], "f float")
    out = [r.f for r in encode_for_target(df, [mapping("f", FRACTIONAL, FRACTIONAL)]).collect()]
    assert out == ["10000000000.0", "0.000015", "-3.4028235E38", "0.00000000000000000001",
                   "1.4E-45", "0.1", "-0.0"]


def test_encode_converted_pairs(spark):
    big = 2**62 + 1
    rows = [(5, 2.25, "42", "x", None), (big, 1e21, "-1.5", "x", None)]
    mappings = [
        mapping("i", INTEGRAL, FRACTIONAL),  # integer text, exact even for large longs
        mapping("d", FRACTIONAL, STRING),  # the number's text
        mapping("s", STRING, INTEGRAL),  # online sources: values already text, verbatim
    ]
    out = encoded(spark, rows, mappings)
    expected = strings_df(
        spark, ["i", "d", "s"], [("5", "2.25", "42"), (str(big), "1.0E21", "-1.5")]
    )
    assert_df_equality(out, expected)
    integral_to_string = encoded(spark, rows, [mapping("i", INTEGRAL, STRING)])
    assert [r.i for r in integral_to_string.collect()] == ["5", str(big)]


def test_encode_nulls_mean_omit(spark):
    rows = [(None, None, None, None, None)]
    mappings = [mapping(n, t, t) for n, t in [("i", INTEGRAL), ("d", FRACTIONAL), ("s", STRING)]]
    out = encoded(spark, rows, mappings).collect()
    assert out[0].asDict() == {"i": None, "d": None, "s": None}


def test_encode_nan_and_infinities_pass_through(spark):
    rows = [(1, v, "x", "x", v) for v in [float("nan"), float("inf"), float("-inf")]]
    out = encoded(spark, rows, [mapping("d", FRACTIONAL, FRACTIONAL)])
    expected = strings_df(spark, ["d"], [("NaN",), ("Infinity",), ("-Infinity",)])
    assert_df_equality(out, expected)


def test_encode_collections_and_target_only_features(spark):
    schema = StructType(
        [
            StructField("tags", ArrayType(StringType())),
            StructField("nums", ArrayType(LongType())),
            StructField("s", StringType()),
        ]
    )
    rows = [(["a", "b", "a"], [1, 2], "x"), (None, None, None), ([], [], "y")]
    mappings = [
        mapping("tags", STRING, STRING, collection="List"),
        mapping("nums", INTEGRAL, INTEGRAL, collection="Set"),
        mapping("extra", None, STRING),  # target-only: left empty
        mapping("extra_list", None, STRING, collection="Vector"),
        mapping("s", STRING, STRING),
    ]
    out = encode_for_target(spark.createDataFrame(rows, schema), mappings)
    expected_schema = StructType(
        [
            StructField("tags", ArrayType(StringType())),
            StructField("nums", ArrayType(StringType())),
            StructField("extra", StringType()),
            StructField("extra_list", ArrayType(StringType())),
            StructField("s", StringType()),
        ]
    )
    expected = spark.createDataFrame(
        [
            (["a", "b", "a"], ["1", "2"], None, None, "x"),
            (None, None, None, None, None),
            ([], [], None, None, "y"),
        ],
        expected_schema,
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_encode_output_columns_follow_mappings(spark):
    mappings = [
        mapping("s", STRING, STRING),
        mapping("missing", None, INTEGRAL),
        mapping("i", INTEGRAL, INTEGRAL),
    ]
    out = encoded(spark, [(1, 1.0, "a", "t", 1.0)], mappings)
    assert out.columns == ["s", "missing", "i"]
    assert [f.dataType for f in out.schema] == [StringType()] * 3


@pytest.mark.parametrize(
    "schema, m",
    [
        ("v string", mapping("v", STRING, STRING, collection="List")),
        ("v array<string>", mapping("v", STRING, STRING)),
    ],
)
def test_encode_scalar_collection_mismatch_raises(spark, schema, m):
    df = spark.createDataFrame([], schema)
    with pytest.raises(ValueError, match="'v'"):
        encode_for_target(df, [m])


def test_encode_float_round_trip_property(spark):
    rnd = random.Random(20240501)
    values = [
        0.1, 0.2 + 0.1, 1 / 3, 2e-3, 1e23, 2e23, 1e21, 1e22, 1e7, 9999999.0, 1e-4, 123456789.125,
        5e-324, 4.35e-322, 2.2250738585072009e-308, 2.2250738585072014e-308,
        1.7976931348623157e308, -1.7976931348623157e308, -5e-324, 0.0, -0.0,
        float(2**53 + 1), float(2**63), 1_700_000_000.123456,
    ]  # fmt: skip
    while len(values) < 20_000:  # every bit pattern: subnormal, tiny, huge, negative
        d = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(d):
            values.append(d)
    values += [rnd.uniform(-1e6, 1e6) for _ in range(5_000)]
    values += [float(rnd.randint(-(2**62), 2**62)) for _ in range(5_000)]
    df = spark.createDataFrame([(v,) for v in values], "d double")
    out = encode_for_target(df, [mapping("d", FRACTIONAL, FRACTIONAL)]).collect()
    assert len(out) == len(values)
    bad = [
        (v, r.d)
        for v, r in zip(values, out, strict=True)
        if float(r.d) != v or math.copysign(1.0, float(r.d)) != math.copysign(1.0, v)
    ]
    assert bad == []


def test_encode_keeps_named_columns_unchanged_after_features(spark):
    df = spark.createDataFrame([(7, 2.5, "a", "t", 1.0)], ENCODE_SCHEMA)
    out = encode_for_target(df, [mapping("d", FRACTIONAL, FRACTIONAL)], keep=["i"])
    expected = spark.createDataFrame(
        [("2.5", 7)], StructType([StructField("d", StringType()), StructField("i", LongType())])
    )
    assert_df_equality(out, expected)
