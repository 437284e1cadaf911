"""Pure DataFrame transforms between reading a source and writing a target.

latest state -> drop deleted -> filter -> resume-from -> encode (:mod:`fsmigrate.wire`). No I/O
here: every function takes and returns a DataFrame (or a Column), so each rule is unit-testable
on tiny frames.
"""

from __future__ import annotations

from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DataType, StringType

from .errors import BadInput
from .eventtime import ISO_EVENT_TIME_SPARK
from .plan import Counts
from .settings import normalize_filter
from .wire import FLOAT_TYPES, INTEGRAL_TYPES

__all__ = [
    "normalize_filter",
    "event_time_key",
    "latest_state",
    "unparseable_rows",
    "drop_deleted",
    "filter_condition",
    "apply_filter",
    "after_record_id",
    "count_selection",
]

WRITE_TIME = "write_time"
API_INVOCATION_TIME = "api_invocation_time"
IS_DELETED = "is_deleted"

# The service's event-time strings: yyyy-MM-ddTHH:mm:ss, optional 1-9 fraction digits, then Z.
_ISO_EVENT_TIME = ISO_EVENT_TIME_SPARK  # one grammar with eventtime.instant_ns
# Feature names can't start with "_", so these never collide with a real column.
_KEY = "_fsm_key"
_RANK = "_fsm_rank"


# ---- event time ------------------------------------------------------------------------------


def _key(seconds: Column, nanos: Column) -> Column:
    return F.struct(seconds.cast("long").alias("seconds"), nanos.cast("long").alias("nanos"))


def event_time_key(column: str, data_type: DataType) -> Column:
    """A sortable instant struct<seconds: long, nanos: long> for an event-time column.

    ISO strings can't be compared as text (`...:00Z` sorts after `...:00.5Z`) and a Spark
    timestamp keeps only microseconds, so the key is an exact (seconds, nanoseconds) pair.
    The grammar (eventtime's, one with :func:`fsmigrate.eventtime.instant_ns`) wants UTC's
    `Z`, and the seconds are read without a time zone: the session's zone doesn't matter.
    Fractional unix seconds (double) map monotonically: floor(d), floor(frac * 1e9); distinct
    doubles only share a key below ~52 days after 1970, where a double's step is < 1 ns.
    Unparseable, NaN, infinite or out-of-long-range values give null, which sorts lowest.
    """
    c = F.col(column)
    if isinstance(data_type, StringType):
        # The grammar first (one regex), then Spark's own cast of the whole seconds to a
        # timestamp without time zone: it checks the calendar (no Feb 30, no 24:00) like
        # Python's datetime, at a fraction of a date pattern's cost. No zone in the text (a
        # "Z" costs a regex compile per row in Spark's zone lookup) and none in the result:
        # unix_timestamp of a TIMESTAMP_NTZ is its own seconds, whatever the session's zone.
        seconds = F.expr(
            f"unix_timestamp(try_cast(substr(`{column}`, 1, 19) AS TIMESTAMP_NTZ))")
        # the digits between the dot and the Z (byte searches: length and substr count chars)
        fraction = F.substring_index(F.substring_index(c, ".", -1), "Z", 1)
        nanos = F.when(c.contains("."), F.rpad(fraction, 9, "0").cast("long")).otherwise(0)
        return F.when(c.rlike(_ISO_EVENT_TIME) & seconds.isNotNull(), _key(seconds, nanos))
    if isinstance(data_type, FLOAT_TYPES):
        d = c.cast("double")
        whole = F.floor(d)  # exact for every double in long range
        # d - floor(d) is exact; the product can round up to 1e9, hence the clamp.
        nanos = F.least(F.floor((d - whole) * F.lit(1e9)), F.lit(999_999_999))
        ok = ~F.isnan(d) & (F.abs(d) < F.lit(9.2e18))
        return F.when(ok, _key(whole, nanos))
    if isinstance(data_type, INTEGRAL_TYPES):
        return F.when(c.isNotNull(), _key(c, F.lit(0)))
    raise ValueError(
        f"event time column {column!r} has type {data_type.simpleString()}; "
        "expected an ISO-8601 string or fractional unix seconds (double)"
    )


# ---- latest state ----------------------------------------------------------------------------


def latest_state(df: DataFrame, id_col: str, event_time_col: str,
                 unparseable_col: str | None = None) -> DataFrame:
    """One row per record id: its newest version, the row the online store would hold.

    Order: event time (as an instant), then api_invocation_time, then write_time, all newest
    wins (null loses). The first row per id of a window sorted that way: one shuffle and a
    sort, with Spark's per-group limit (WindowGroupLimit) dropping older versions before the
    shuffle (max(struct(key, row)) planned a slower SortAggregate comparing whole-row structs).
    Deterministic: in the (practically impossible) case of a full tie the remaining column
    values decide, largest first. Output columns keep the input's names, order and types.

    ``unparseable_col`` adds a last column, 1 when the record has a row whose event time
    doesn't parse (its key is null), else 0; such a row then comes first, so the record is
    never decided by treating it as the oldest. Read from the same sorted window: a second
    window (a count per id) would sit between the shuffle and the limit, and Spark would no
    longer drop older versions before the shuffle.
    """
    types = {f.name: f.dataType for f in df.schema.fields}
    for required in (id_col, event_time_col, API_INVOCATION_TIME, WRITE_TIME):
        if required not in types:
            raise ValueError(f"latest_state: column {required!r} missing from {df.columns}")
    ties = [c for c in df.columns if c not in (id_col, API_INVOCATION_TIME, WRITE_TIME)]
    key = F.col(_KEY).desc_nulls_first() if unparseable_col else F.col(_KEY).desc_nulls_last()
    order = [key] + [F.col(c).desc_nulls_last() for c in (API_INVOCATION_TIME, WRITE_TIME, *ties)]
    newest_first = Window.partitionBy(id_col).orderBy(*order)
    keyed = df.withColumn(_KEY, event_time_key(event_time_col, types[event_time_col]))
    extra = [F.col(_KEY).isNull().cast("long").alias(unparseable_col)] if unparseable_col else []
    return (keyed.withColumn(_RANK, F.row_number().over(newest_first))
            .where(F.col(_RANK) == 1).select(*df.columns, *extra))


def unparseable_rows(df: DataFrame, event_time_col: str) -> int:
    """How many rows of ``df`` have an event time that doesn't parse (a null key)."""
    key = event_time_key(event_time_col, df.schema[event_time_col].dataType)
    return df.where(key.isNull()).count()


def drop_deleted(latest: DataFrame) -> DataFrame:
    """A record whose latest row is a delete marker is deleted: it must not be migrated."""
    return latest.where(~F.coalesce(F.col(IS_DELETED), F.lit(False)))


# ---- filter and resume -----------------------------------------------------------------------


def _first_line(error: Exception) -> str:
    """Spark's messages carry the plan or the SQL with a caret below; keep the headline."""
    for line in str(error).splitlines():
        line = line.strip()
        if line:
            return line.rstrip(";").strip()
    return type(error).__name__


def _reject_alias(expr: str) -> None:
    """Spark parses `x > 0 and` or `x > 0 foo` as `(x > 0) AS and`: a silent typo, refuse it.

    Inside parentheses an alias is a syntax error; the newline ends a trailing `--` comment.
    """
    try:
        F.expr(f"({expr}\n)")
    except PySparkException:
        raise BadInput(
            f"--filter-query {expr!r} ends in a stray word that Spark reads as an alias "
            "(`<condition> AS <word>`); remove it or complete the expression"
        ) from None


# Functions a filter may not call: side effects or reaching outside the data (the JVM, the
# session, the files), failing on purpose, or different on every evaluation (the plan, the
# write and a resume would pick different records).
REFUSED_FUNCTIONS = frozenset({
    "java_method", "reflect", "try_reflect", "assert_true", "raise_error",
    "rand", "randn", "random", "uniform", "randstr", "uuid", "shuffle",
    "monotonically_increasing_id", "spark_partition_id", "input_file_name",
    "input_file_block_start", "input_file_block_length",
    "current_timestamp", "current_date", "curdate", "now", "localtimestamp", "current_time",
    "unix_timestamp", "current_timezone", "current_user", "user", "session_user",
    "current_database", "current_schema", "current_catalog", "version",
})
# ... of which these also work without parentheses (Spark reads them as column names first)
_BARE_FUNCTIONS = frozenset({"current_timestamp", "current_date", "current_time",
                             "current_user", "user", "session_user", "localtimestamp"})
_SUBQUERY_NODES = ("ScalarSubquery", "ListQuery", "Exists", "LateralSubquery")
_builtin_functions: set[str] = set()


def _builtins(spark) -> set[str]:
    if not _builtin_functions:
        _builtin_functions.update(
            r[0].lower() for r in spark.sql("SHOW SYSTEM FUNCTIONS").collect())
    return _builtin_functions


def check_filter_functions(df: DataFrame, expr: str) -> None:
    """A filter is an expression over the data, not a program: refuse (BadInput, naming it)
    every function in REFUSED_FUNCTIONS, every function that is not one of Spark's built-ins
    (UDFs, catalog functions) and subqueries. Walks the parsed expression in the JVM."""
    spark = df.sparkSession
    root = spark._jsparkSession.sessionState().sqlParser().parseExpression(expr)
    columns = {c.lower() for c in df.columns}
    stack = [root]
    while stack:
        node = stack.pop()
        kind = node.getClass().getSimpleName()
        name = None
        if kind == "UnresolvedFunction":
            name = node.nameParts().mkString(".").lower()
            if name in REFUSED_FUNCTIONS or name not in _builtins(spark):
                what = ("not allowed in a filter" if name in REFUSED_FUNCTIONS
                        else "not a built-in Spark function (UDFs are not allowed)")
                raise BadInput(f"--filter-query {expr!r} calls {name}(): {what}; a filter may "
                               "only compare and compute over the record's features")
        elif kind == "UnresolvedAttribute":
            name = node.name().lower()
            if name in _BARE_FUNCTIONS and name not in columns:
                raise BadInput(f"--filter-query {expr!r} uses {name}: not allowed in a filter "
                               "(it differs between the plan, the write and a resume)")
        elif kind in _SUBQUERY_NODES:
            raise BadInput(f"--filter-query {expr!r} has a subquery: a filter may only look "
                           "at the record's own features")
        children = node.children()
        stack.extend(children.apply(i) for i in range(children.size()))


def filter_condition(df: DataFrame, query: str | None) -> Column | None:
    """The user's Spark SQL boolean expression (--filter-query) as a Column checked against
    `df`; None without a filter.

    Every problem is found here, at planning time (Spark analyses eagerly), and becomes
    BadInput (exit 2) with a one-line message.
    """
    expr = normalize_filter(query)
    if expr is None:
        return None
    hint = "fix it: a Spark SQL boolean expression over the source's feature columns"
    try:
        condition = F.expr(expr)
        _reject_alias(expr)
        check_filter_functions(df, expr)
        data_type = df.select(condition.alias("_fsm_filter")).schema.fields[0].dataType
        if not isinstance(data_type, BooleanType):
            raise BadInput(
                f"--filter-query {expr!r} is of type {data_type.simpleString()}, "
                f"not boolean; {hint}, e.g. `amount > 10`"
            )
        filtered = df.where(condition)  # e.g. an aggregate function is refused only here
        if not filtered._jdf.queryExecution().analyzed().condition().deterministic():
            raise BadInput(f"--filter-query {expr!r} is not deterministic: the plan and the "
                           "write (and a resume) must select the same records")
        return condition
    except PySparkException as error:
        reason = _first_line(error)
        raise BadInput(f"--filter-query {expr!r} is invalid: {reason}; {hint}") from None


def apply_filter(df: DataFrame, query: str | None) -> DataFrame:
    """Keep rows matching the user's filter (see filter_condition).

    Apply it to the latest state only: then it can't pick an older version of a record, nor
    bring a deleted one back.
    """
    condition = filter_condition(df, query)
    return df if condition is None else df.where(condition)


def after_record_id(df: DataFrame, id_col: str, resume_from: str | None) -> DataFrame:
    """Keep record ids strictly after `resume_from`, in the plan's order.

    The plan's order is ascending record id compared as a string (UTF-8 byte order, which is
    Python's str order), also for Integral ids: they are cast to string first, so "10" < "9".
    Null ids never pass.
    """
    if resume_from is None:
        return df
    return df.where(_after(id_col, resume_from))


def _after(id_col: str, resume_from: str) -> Column:
    return F.col(id_col).cast("string") > F.lit(resume_from)


def count_selection(latest: DataFrame, id_col: str, query: str | None,
                    resume_from: str | None, rows_scanned: int = 0, bad_col: str | None = None,
                    expiring: Column | None = None) -> Counts:
    """The plan's counts for `latest` (from latest_state) in one aggregation, one pass.

    The same rules as drop_deleted -> apply_filter -> after_record_id, as counts: a null
    filter result or id never passes (where() drops those rows too). ``bad_col`` (latest_state's
    ``unparseable_col``: a row's event time doesn't parse) leaves such records out first;
    ``expiring`` marks the selected records that would arrive expired (counted, not
    selected).
    """
    bad = (F.col(bad_col) > 0) if bad_col else F.lit(False)
    live = ~bad & ~F.coalesce(F.col(IS_DELETED), F.lit(False))
    condition = filter_condition(latest, query)
    matched = live if condition is None else live & F.coalesce(condition, F.lit(False))
    chosen = matched
    if resume_from is not None:
        chosen = matched & F.coalesce(_after(id_col, resume_from), F.lit(False))
    expired = F.lit(False) if expiring is None else chosen & F.coalesce(expiring, F.lit(False))
    records, bad_n, live_n, matched_n, chosen_n, expired_n = latest.agg(
        F.count(F.lit(1)), F.count_if(bad), F.count_if(live), F.count_if(matched),
        F.count_if(chosen), F.count_if(expired)).first()
    return Counts(rows_scanned=rows_scanned, records=records, bad_event_time=bad_n,
                  deleted_skipped=records - bad_n - live_n, filtered_out=live_n - matched_n,
                  before_resume_from=matched_n - chosen_n, expired_on_arrival=expired_n,
                  selected=chosen_n - expired_n)
