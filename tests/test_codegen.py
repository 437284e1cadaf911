"""No stage of the job falls back from generated code to interpreted evaluation: with Spark's
fall-back switched off, a compile failure (e.g. a method past the JVM's 64 KB) raises instead
of logging an ERROR with a Java stack trace and running slower. Covers the expressions the
plan and the write phase run over a wide group (the seed's 22 features)."""

from __future__ import annotations

from datetime import datetime

import pytest
from fsmigrate.groups import FRACTIONAL, INTEGRAL, STRING, Feature, FeatureMapping
from fsmigrate.select import drop_deleted, latest_state
from fsmigrate.wire import encode_for_target
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

SPARK_TYPES = {INTEGRAL: LongType(), FRACTIONAL: DoubleType(), STRING: StringType()}
# The seed's features after record_id and event_time: 7 Fractional, 7 Integral, 6 String.
FEATURES = [(f"d{i}", FRACTIONAL) for i in range(7)] + [(f"i{i}", INTEGRAL) for i in range(7)] \
    + [(f"s{i}", STRING) for i in range(6)]


@pytest.fixture
def no_fallback(spark):
    settings = {"spark.sql.codegen.fallback": "false",
                "spark.sql.codegen.factoryMode": "CODEGEN_ONLY"}
    before = {k: spark.conf.get(k, None) for k in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    yield spark
    for key, value in before.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


def wide_offline(spark):
    schema = StructType(
        [StructField("record_id", StringType()), StructField("event_time", StringType())]
        + [StructField(name, SPARK_TYPES[t]) for name, t in FEATURES]
        + [StructField("write_time", TimestampType()),
           StructField("api_invocation_time", TimestampType()),
           StructField("is_deleted", BooleanType())])
    when = datetime(2024, 1, 1)
    values = {FRACTIONAL: [1704067200.5, 1e-5], INTEGRAL: [7, -3], STRING: ["x", "y"]}
    rows = [(f"r{n % 5}", f"2024-01-01T00:00:0{n}.5Z",
             *[values[t][n % 2] for _, t in FEATURES], when, when, n == 9) for n in range(10)]
    return spark.createDataFrame(rows, schema)


def test_plan_and_encoding_of_a_wide_group_compile(no_fallback):
    latest = drop_deleted(latest_state(wide_offline(no_fallback), "record_id", "event_time"))
    mappings = [FeatureMapping(name, Feature(name, t), Feature(name, t))
                for name, t in [("record_id", STRING), ("event_time", STRING), *FEATURES]]
    out = encode_for_target(latest, mappings).collect()  # raises if codegen fails
    assert sorted(r.record_id for r in out) == ["r0", "r1", "r2", "r3"]  # r4's latest: deleted
    assert {r.d0 for r in out} == {"1704067200.5", "0.00001"}  # versions 5..8 alternate


def test_encoding_double_collections_compiles(no_fallback):
    schema = StructType([StructField(f"a{i}", ArrayType(DoubleType())) for i in range(4)])
    df = no_fallback.createDataFrame([tuple([[1e10, 2.5e-7]] * 4)], schema)
    mappings = [FeatureMapping(f"a{i}", Feature(f"a{i}", FRACTIONAL, "List"),
                               Feature(f"a{i}", FRACTIONAL, "List")) for i in range(4)]
    out = encode_for_target(df, mappings).first()
    assert list(out) == [["10000000000.0", "0.00000025"]] * 4
