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


def whole_stage_method_sizes(df) -> list[int]:
    """The largest method's bytecode size of every whole-stage-codegen subtree `df` runs."""
    jvm = df.sparkSession.sparkContext._jvm
    plan = df._jdf.queryExecution().executedPlan()
    sizes, todo = [], [plan]
    while todo:
        node = todo.pop()
        if node.getClass().getSimpleName() == "AdaptiveSparkPlanExec":
            todo.append(node.executedPlan())
        if node.getClass().getSimpleName() == "WholeStageCodegenExec":
            code = node.doCodeGen()._2()
            compiled = jvm.org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator \
                .compile(code)
            sizes.append(compiled._2().maxMethodCodeSize())
        children = node.children()
        todo.extend(children.apply(i) for i in range(children.size()))
    return sizes


def test_the_write_runs_whole_stage_code_too_big_for_the_jit_as_per_expression_code(spark):
    """HotSpot leaves a method of more than 8,000 bytes of bytecode to the interpreter. Spark runs
    a whole-stage subtree whose largest method is above spark.sql.codegen.hugeMethodLimit as
    per-expression code: jit_sized_code (the partition jobs: write, verification) sets it to
    8000, and the wide group's encoding is such a subtree. The plan's stages, outside, keep
    the default."""
    from fsmigrate.encode import with_entries
    from fsmigrate.partitions import HOTSPOT_HUGE_METHOD_BYTES, HUGE_METHOD, jit_sized_code

    mappings = [FeatureMapping(name, Feature(name, t), Feature(name, t))
                for name, t in [("record_id", STRING), ("event_time", STRING), *FEATURES]]
    selected = drop_deleted(latest_state(wide_offline(spark), "record_id", "event_time")).cache()
    selected.count()  # the plan's stages run before the write, outside it
    encoded = encode_for_target(selected, mappings).repartition(4, "record_id")
    written = with_entries(encoded, "g", "record_id", frozenset(), None, None)
    default = spark.conf.get(HUGE_METHOD)
    with jit_sized_code(spark):
        limit = int(spark.conf.get(HUGE_METHOD))
        assert len(written.collect()) == 4  # adaptive execution plans a stage as it runs it
    selected.unpersist()
    assert limit == HOTSPOT_HUGE_METHOD_BYTES
    assert spark.conf.get(HUGE_METHOD) == default == "65535"
    assert max(whole_stage_method_sizes(written)) > limit


def test_a_method_size_limit_given_to_spark_submit_is_kept_for_the_write(spark):
    from fsmigrate.partitions import HUGE_METHOD, jit_sized_code

    submitted = spark.sparkContext._conf  # the context's own settings, as spark-submit gave them
    submitted.set(HUGE_METHOD, "20000")
    try:
        with jit_sized_code(spark):
            assert spark.conf.get(HUGE_METHOD) == "65535"  # left as the session has it
    finally:
        submitted._jconf.remove(HUGE_METHOD)
    assert spark.sparkContext.getConf().get(HUGE_METHOD) is None
