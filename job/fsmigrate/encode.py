"""BatchWriteRecord entries encoded in the JVM: Python receives ready JSON, not 22-value rows.

Building each record's request entry in Python (a dict per feature, then ``json.dumps``) and
moving every value from the JVM to Python one by one is most of the writer's CPU. Here Spark
builds each record's entry with ``to_json(struct(...))`` right before the rows go to Python;
a row becomes ``(record id, [TTL seconds], entry JSON)`` and the fast sender
(:mod:`fsmigrate.fast_http`) joins the entries into the request body as they are.

The entry is what :meth:`fsmigrate.write._PartitionWriter.encode` builds from the same row:
null features are left out (never sent as "null"), a collection feature is a
``ValueAsStringList``, ``TargetStores`` and a per-record ``TtlDuration`` when given. Only the
BatchWriteRecord fast path uses it; PutRecord and the boto3 path encode in Python.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # write.py imports this module where pyspark must not be loaded (the CLI)
    from pyspark.sql import DataFrame

ENTRY = "__entry_json"  # the column holding a row's BatchWriteRecord entry as JSON text


def with_entries(df: DataFrame, group: str, record_id: str, collection_features: frozenset[str],
                 ttl_column: str | None, target_stores: Sequence[str] | None) -> DataFrame:
    """``(record_id, [ttl_column], ENTRY)``: each row's entry built by Spark."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StringType

    features = []
    for name in df.columns:
        if name == ttl_column:
            continue
        c = F.col(f"`{name}`")
        listed = name in collection_features
        # one struct type for every feature (arrays need one element type); to_json leaves
        # out the null field, so each feature carries only its own value key
        feature = F.struct(
            F.lit(name).alias("FeatureName"),
            (F.lit(None).cast(StringType()) if listed else c.cast(StringType()))
            .alias("ValueAsString"),
            (c.cast(ArrayType(StringType())) if listed
             else F.lit(None).cast(ArrayType(StringType()))).alias("ValueAsStringList"))
        features.append(F.when(c.isNotNull(), feature))
    fields = [F.lit(group).alias("FeatureGroupName"),
                            F.filter(F.array(*features), lambda f: f.isNotNull()).alias("Record")]
    if target_stores:
        fields.append(F.array(*[F.lit(s) for s in target_stores]).alias("TargetStores"))
    keep = [F.col(f"`{record_id}`")]
    if ttl_column:
        ttl = F.col(f"`{ttl_column}`")
        fields.append(F.when(ttl.isNotNull(), F.struct(
            F.lit("Seconds").alias("Unit"), ttl.cast("long").alias("Value"))).alias("TtlDuration"))
        keep.append(ttl)
    entry = F.to_json(F.struct(*fields), {"ignoreNullFields": "true"})
    return df.select(*keep, entry.alias(ENTRY))


def entry_index(columns: Sequence[str]) -> int | None:
    """Where a row holds its prepared entry, or None for rows of feature values."""
    return columns.index(ENTRY) if ENTRY in columns else None


def record_of(columns: Sequence[str], row: Sequence) -> dict[str, Any]:
    """The record a row stands for, as the failure files hold it ({column: value})."""
    if ENTRY not in columns:
        return dict(zip(columns, row, strict=False))
    values = dict(zip(columns, row, strict=False))
    entry = json.loads(values.pop(ENTRY))
    record = {fv["FeatureName"]: fv.get("ValueAsString", fv.get("ValueAsStringList"))
              for fv in entry["Record"]}
    record.update(values)  # the record id, and the TTL column (None too) as the row has it
    return record
