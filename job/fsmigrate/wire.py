"""Feature values as the text the service receives (ValueAsString / ValueAsStringList).

A Spark column transform (no I/O), the last of the select stage's: integers as their exact
text, floats as the shortest plain decimal that parses back to the same value, strings as they
are. Spark-built request entries (:mod:`fsmigrate.encode`) start from these columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    ByteType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
)

from .groups import FeatureMapping

INTEGRAL_TYPES = (LongType, IntegerType, ShortType, ByteType)
FLOAT_TYPES = (DoubleType, FloatType)


def _float_text(c: Column, data_type: DataType) -> Column:
    """Text that parses back to exactly the same float.

    Spark casts with Java's Double.toString (Float.toString): round-trip on Java 17 in every
    test, though not always the shortest (1e23 -> "9.999999999999999E22"). The cast back and
    compare is a cheap guard; if it ever failed, 17 (9) significant digits always round-trip.
    NaN and the infinities stay Spark's "NaN", "Infinity", "-Infinity" (NaN = NaN in Spark).
    """
    text = c.cast("string")
    digits = 17 if isinstance(data_type, DoubleType) else 9
    exact = text.cast(data_type) == c
    return F.when(c.isNull(), F.lit(None)).when(exact, _plain_decimal(text)).otherwise(
        F.format_string(f"%.{digits}g", c)
    )


# Java's scientific form with an exponent within ±20, and its mantissa: the digits before and
# after the point up to the last non-zero one (1.0E10 -> "1", "").
_JAVA_SCIENTIFIC = r"^-?[0-9]\.[0-9]+E-?(1?[0-9]|20)$"
_MANTISSA_DIGITS = r"^-?([0-9])\.([0-9]*?)0*E.*$"


def _plain_decimal(text: Column) -> Column:
    """The same digits without Java's exponent: 1.7040672005E9 -> 1704067200.5, 1.0E-4 ->
    0.0001, as other clients send them (Python's str does) and as fractional-second event
    times read best. Exponents beyond ±20 keep the scientific form.

    Few nodes on purpose: every reference to a sub-expression is generated again, and a
    bigger tree made whole-stage codegen of a 22-feature projection fail (64 KB method limit)
    and fall back to interpreted evaluation."""
    digits = F.regexp_replace(text, _MANTISSA_DIGITS, "$1$2")
    exponent = F.substring_index(text, "E", -1).cast("int")
    # exponent < 0: 0.000ddd; else the first exponent + 1 digits (zero-padded), the point, the
    # rest ("" becomes "0" below).
    zero = F.lit("0")
    below_one = F.concat(F.lit("0."), F.call_function(
        "lpad", digits, F.length(digits) - exponent - F.lit(1), zero))
    at_least_one = F.concat(F.call_function("rpad", digits, exponent + F.lit(1), zero), F.lit("."),
                            digits.substr(exponent + F.lit(2), F.lit(100)))
    plain = F.concat(F.when(text.startswith("-"), F.lit("-")).otherwise(F.lit("")),
                     F.when(exponent < 0, below_one).otherwise(at_least_one))
    return F.when(text.rlike(_JAVA_SCIENTIFIC), F.regexp_replace(plain, r"\.$", ".0")).otherwise(
        text)


def _scalar_text(c: Column, data_type: DataType, what: str) -> Column:
    if isinstance(data_type, StringType):
        return c  # verbatim: the event time goes exactly as stored, online values already text
    if isinstance(data_type, INTEGRAL_TYPES):
        return c.cast("string")  # exact integer text, also into a Fractional target
    if isinstance(data_type, FLOAT_TYPES):
        return _float_text(c, data_type)
    raise ValueError(f"{what}: can't encode a {data_type.simpleString()} value as a feature")


def _element_encoder(data_type: DataType, what: str) -> Callable[[Column], Column]:
    """One-argument function for F.transform (which counts the lambda's parameters)."""
    return lambda x: _scalar_text(x, data_type, what)


def encode_for_target(df: DataFrame, mappings: list[FeatureMapping],
                      keep: Sequence[str] = ()) -> DataFrame:
    """The target's features as the text the service receives (ValueAsString/ValueAsStringList).

    One column per mapping, in mapping order: string, or array<string> for a collection target.
    Null means "omit this feature from the record" (never sent as "None", "null" or "nan").
    The rule follows the input column's Spark type, so an Integral source into a Fractional or
    String target sends integer text ("5"), a Fractional source its round-trip float text.
    Columns named in `keep` (e.g. a per-record TTL) follow the features unchanged.
    """
    types = {f.name: f.dataType for f in df.schema.fields}
    names = [m.name for m in mappings]
    if len(set(names)) != len(names):
        raise ValueError(f"encode_for_target: duplicate target features in {names}")
    columns = []
    for m in mappings:
        is_collection = m.target.collection is not None
        out_type = ArrayType(StringType()) if is_collection else StringType()
        if m.source is None:
            columns.append(F.lit(None).cast(out_type).alias(m.name))
            continue
        if m.source.name not in types:
            raise ValueError(f"encode_for_target: source column {m.source.name!r} not in input")
        data_type = types[m.source.name]
        c = F.col(m.source.name)
        if isinstance(data_type, ArrayType) != is_collection:
            raise ValueError(
                f"feature {m.name!r}: a {data_type.simpleString()} source can't feed a "
                f"{'collection' if is_collection else 'scalar'} target"
            )
        if is_collection:
            element = data_type.elementType
            if isinstance(element, StringType):
                text = c
            else:
                text = F.transform(c, _element_encoder(element, m.name))
        else:
            text = _scalar_text(c, data_type, m.name)
        columns.append(text.cast(out_type).alias(m.name))
    return df.select(*columns, *[F.col(k) for k in keep])
