"""Seed a source feature group with realistic, deterministic test/demo/benchmark data.

Creates the feature group through boto3 (normally against the local emulator), writes its
offline store as Parquet straight into the offline-store layout on the local disk, and writes
the latest state of every live record to its online store through BatchWriteRecord.

    python scripts/seed_data.py --endpoint-url http://127.0.0.1:PORT --local-root DATA_DIR \\
        --group seed-src --records 1000 --versions 3 --stores both

    from seed_data import seed, SeedSpec
    summary = seed(SeedSpec(group="src", records=300), endpoint_url=url, local_root=data_dir)

Feature definitions (22, in this order; names are stable, tests refer to them):

    record_id          String (or Integral with id_type="Integral")  record identifier
    event_time         String ISO-8601 UTC (or Fractional unix seconds)  event time
    age                Integral    18..90
    country            String      one of 12 ISO country codes
    avg_order_value    Fractional  0..500, 2 decimals
    num_orders         Integral    0..500
    segment            String      bronze | silver | gold | platinum
    lifetime_value     Fractional  0..50000, 2 decimals
    num_sessions_7d    Integral    0..100, ~10% null
    device             String      ios | android | web | tablet
    churn_score        Fractional  0..1, ~10% null
    days_since_signup  Integral    0..3650
    plan               String      free | basic | pro | enterprise, ~5% null
    click_rate         Fractional  0..1
    loyalty_points     Integral    0..100000, ~5% null
    email_domain       String      one of 6 domains, ~15% null
    discount_ratio     Fractional  0..0.5, ~20% null
    cart_items         Integral    0..20
    last_category      String      one of 8 categories
    latitude           Fractional  -90..90
    zip_code           Integral    10000..99999
    longitude          Fractional  -180..180

Offline rows (DESIGN.md §2): the features above in definition order, then `write_time` and
`api_invocation_time` (timestamp[us, tz=UTC]) and `is_deleted` (bool), written by the
emulator's own writer (feature_store_emulator/offline_layout.py) under the group's
ResolvedOutputS3Uri mapped to local_root, partitioned by event-time hour.

What the data contains (all drawn from `random.Random(seed)`: same spec, same rows and files):
- every record has 1..versions versions, spread over `days` days from `start`;
- ISO event times carry 0, 3 or 9 fraction digits (Fractional ones 0, 3 or 6 decimals);
- "order traps": the last two versions of some records are `...:05Z` and `...:05.5Z` — the newer
  instant sorts first as a string;
- ties: some records' last two versions share the event time and `api_invocation_time` decides;
  some share both and `write_time` decides (the winner is not always the later row in the file);
- `delete_fraction` of the records end in a delete marker (same id, event time of the delete,
  `is_deleted` true, every other feature null); `rewrite_fraction` have a delete marker followed
  by a newer write (alive again);
- nulls in the features marked above.

The latest state of a record is its row with the newest event-time instant, ties broken by
`api_invocation_time`, then `write_time`; a record whose latest row is a delete marker is deleted.
The online store gets exactly the latest state of the records that are not deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from feature_store_emulator import offline_layout
from feature_store_emulator.offline_layout import floor_div

RECORD_ID = "record_id"
EVENT_TIME = "event_time"
INTEGRAL, FRACTIONAL, STRING = "Integral", "Fractional", "String"
STORES = ("offline", "online", "both")
DEFAULT_START = "2024-01-01T00:00:00Z"
DEFAULT_ROLE = "arn:aws:iam::123456789012:role/SageMakerFeatureStoreRole"

# (name, type, generator). Generators: ("int", lo, hi, null_rate),
# ("float", lo, hi, decimals, null_rate), ("choice", values, null_rate).
VALUE_FEATURES: tuple[tuple[str, str, tuple], ...] = (
    ("age", INTEGRAL, ("int", 18, 90, 0.0)),
    ("country", STRING, ("choice", ("US", "KR", "JP", "DE", "FR", "GB", "BR", "IN", "CA", "AU",
                                    "MX", "ES"), 0.0)),
    ("avg_order_value", FRACTIONAL, ("float", 0.0, 500.0, 2, 0.0)),
    ("num_orders", INTEGRAL, ("int", 0, 500, 0.0)),
    ("segment", STRING, ("choice", ("bronze", "silver", "gold", "platinum"), 0.0)),
    ("lifetime_value", FRACTIONAL, ("float", 0.0, 50000.0, 2, 0.0)),
    ("num_sessions_7d", INTEGRAL, ("int", 0, 100, 0.10)),
    ("device", STRING, ("choice", ("ios", "android", "web", "tablet"), 0.0)),
    ("churn_score", FRACTIONAL, ("float", 0.0, 1.0, 6, 0.10)),
    ("days_since_signup", INTEGRAL, ("int", 0, 3650, 0.0)),
    ("plan", STRING, ("choice", ("free", "basic", "pro", "enterprise"), 0.05)),
    ("click_rate", FRACTIONAL, ("float", 0.0, 1.0, 4, 0.0)),
    ("loyalty_points", INTEGRAL, ("int", 0, 100000, 0.05)),
    ("email_domain", STRING, ("choice", ("example.com", "mail.test", "corp.example",
                                         "shop.test", "inbox.example", "post.test"), 0.15)),
    ("discount_ratio", FRACTIONAL, ("float", 0.0, 0.5, 3, 0.20)),
    ("cart_items", INTEGRAL, ("int", 0, 20, 0.0)),
    ("last_category", STRING, ("choice", ("books", "electronics", "garden", "toys", "grocery",
                                          "fashion", "sports", "beauty"), 0.0)),
    ("latitude", FRACTIONAL, ("float", -90.0, 90.0, 5, 0.0)),
    ("zip_code", INTEGRAL, ("int", 10000, 99999, 0.0)),
    ("longitude", FRACTIONAL, ("float", -180.0, 180.0, 5, 0.0)),
)
FEATURE_NAMES: tuple[str, ...] = (RECORD_ID, EVENT_TIME) + tuple(f[0] for f in VALUE_FEATURES)

_TS = offline_layout.TIMESTAMP
_NS = 1_000_000_000


class SeedError(Exception):
    """Bad spec, or the feature group cannot be (re)created."""


@dataclass(frozen=True)
class SeedSpec:
    """What to generate. Everything but `start` (see below) is deterministic given `seed`."""

    group: str = "seed-source"
    records: int = 1000
    versions: int = 3  # maximum versions per record; each record has 1..versions
    stores: str = "both"  # offline | online | both
    event_time_type: str = STRING  # String (ISO-8601) | Fractional (unix seconds)
    id_type: str = STRING  # String | Integral
    delete_fraction: float = 0.05  # records whose latest row is a delete marker
    rewrite_fraction: float = 0.03  # records deleted, then written again (alive)
    tie_api_fraction: float = 0.04  # last two versions tie on event time; api time decides
    tie_write_fraction: float = 0.03  # ... tie on event and api time; write_time decides
    order_trap_fraction: float = 0.05  # last two versions `...:05Z` then `...:05.5Z`
    seed: int = 7
    bucket: str = "local-feature-store"
    prefix: str = "offline"
    ttl_seconds: int | None = None  # online store TtlDuration (Seconds)
    days: float = 3.0  # event times span this many days from `start`
    # ISO-8601 UTC. None: 2024-01-01T00:00:00Z, or, with a TTL, `days` before the current hour
    # (so records are not all expired already; then the rows depend on the clock).
    start: str | None = None
    rows_per_file: int = 20_000  # an hour partition is split into files of at most this many
    role_arn: str = DEFAULT_ROLE

    @property
    def has_offline(self) -> bool:
        return self.stores in ("offline", "both")

    @property
    def has_online(self) -> bool:
        return self.stores in ("online", "both")

    def validate(self) -> None:
        problems = []
        if self.records < 1:
            problems.append("records must be >= 1")
        if self.versions < 1:
            problems.append("versions must be >= 1")
        if self.stores not in STORES:
            problems.append(f"stores must be one of {', '.join(STORES)}")
        if self.event_time_type not in (STRING, FRACTIONAL):
            problems.append("event_time_type must be String or Fractional")
        if self.id_type not in (STRING, INTEGRAL):
            problems.append("id_type must be String or Integral")
        fractions = {
            "delete_fraction": self.delete_fraction,
            "rewrite_fraction": self.rewrite_fraction,
            "tie_api_fraction": self.tie_api_fraction,
            "tie_write_fraction": self.tie_write_fraction,
            "order_trap_fraction": self.order_trap_fraction,
        }
        for name, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be within [0, 1]")
        if self.delete_fraction + self.rewrite_fraction > 1.0:
            problems.append("delete_fraction + rewrite_fraction must be <= 1")
        if self.tie_api_fraction + self.tie_write_fraction + self.order_trap_fraction > 1.0:
            problems.append("tie_api + tie_write + order_trap fractions must be <= 1")
        if self.days <= 0:
            problems.append("days must be > 0")
        if self.rows_per_file < 1:
            problems.append("rows_per_file must be >= 1")
        if self.ttl_seconds is not None and self.ttl_seconds < 1:
            problems.append("ttl_seconds must be >= 1")
        if problems:
            raise SeedError("; ".join(problems))

    def start_datetime(self) -> datetime:
        if self.start is not None:
            return _parse_iso(self.start)
        if self.ttl_seconds:
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            return hour - timedelta(days=self.days)
        return _parse_iso(DEFAULT_START)


@dataclass
class SeedSummary:
    group: str
    rows_offline: int  # rows written to offline Parquet files (versions + delete markers)
    records: int
    deleted_records: int  # records whose latest state is a delete marker
    online_records: int  # records written to the online store
    files: int
    seconds: float
    rows: int = 0  # rows generated (== rows_offline when the group has an offline store)
    delete_markers: int = 0
    rewritten_records: int = 0
    tie_api_records: int = 0
    tie_write_records: int = 0
    order_trap_records: int = 0
    data_dir: str | None = None  # local directory of the offline store's data/
    resolved_output_s3_uri: str | None = None
    start: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generated:
    """The generated rows plus helper columns aligned with them (not written)."""

    table: pa.Table  # the offline columns, in offline order, grouped by record
    event_ns: pa.Array  # int64 event-time instant in ns (exact; drives partitions and order)
    record_index: pa.Array  # int64 0..records-1
    offsets: list[int]  # rows of record i are offsets[i]:offsets[i+1]
    counts: dict[str, int]
    start: datetime  # the start of the event-time span


# ---- feature definitions -------------------------------------------------------------------

def feature_types(spec: SeedSpec) -> list[tuple[str, str]]:
    """[(name, FeatureType)] in definition order."""
    return [(RECORD_ID, spec.id_type), (EVENT_TIME, spec.event_time_type)] + [
        (name, ftype) for name, ftype, _ in VALUE_FEATURES
    ]


def feature_definitions(spec: SeedSpec) -> list[dict[str, str]]:
    return [{"FeatureName": n, "FeatureType": t} for n, t in feature_types(spec)]


def offline_schema(spec: SeedSpec) -> pa.Schema:
    return offline_layout.schema(feature_types(spec))


# ---- vectorised helpers --------------------------------------------------------------------

def _parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class _Random:
    """Arrow vectors of uniforms in [0, 1), each seeded from one `random.Random`."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def uniform(self, n: int) -> pa.Array:
        return pc.random(n, initializer=self.rng.getrandbits(63))

    def integers(self, n: int, lo: int, hi: int) -> pa.Array:
        """Uniform int64 in [lo, hi]."""
        scaled = pc.floor(pc.multiply(self.uniform(n), float(hi - lo + 1)))
        return pc.add(pc.cast(scaled, pa.int64()), lo)


def _i64(values) -> pa.Array:
    return pc.cast(values, pa.int64())


def _mod(values: pa.Array, divisor: int) -> pa.Array:
    """values mod divisor for non-negative int64 values."""
    return pc.subtract(values, pc.multiply(pc.divide(values, divisor), divisor))


def _null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(mask, pa.scalar(None, values.type), values)


def _iso_strings(event_ns: pa.Array, digits: pa.Array) -> pa.Array:
    """ISO-8601 UTC strings with 0, 3 or 9 fraction digits, built from lookup tables."""
    seconds = floor_div(event_ns, _NS)
    frac_ns = pc.subtract(event_ns, pc.multiply(seconds, _NS))
    hours = floor_div(seconds, 3600)
    first = pc.min(hours).as_py()
    last = pc.max(hours).as_py()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    prefixes = pa.array([(epoch + timedelta(hours=h)).strftime("%Y-%m-%dT%H:")
                         for h in range(first, last + 1)])
    prefix = pc.take(prefixes, pc.subtract(hours, first))
    in_hour = pc.subtract(seconds, pc.multiply(hours, 3600))
    two = pa.array([f"{i:02d}" for i in range(60)])
    mm = pc.take(two, pc.divide(in_hour, 60))
    ss = pc.take(two, _mod(in_hour, 60))
    three = pa.array([f".{i:03d}" for i in range(1000)])
    ms = pc.take(three, pc.divide(frac_ns, 1_000_000))
    ns9 = pc.binary_join_element_wise(".", pc.utf8_lpad(pc.cast(frac_ns, pa.string()), 9, "0"),
                                      "")
    frac = pc.if_else(pc.equal(digits, 0), "", pc.if_else(pc.equal(digits, 3), ms, ns9))
    return pc.binary_join_element_wise(prefix, mm, ":", ss, frac, "Z", "")


def _value_column(rnd: _Random, n: int, gen: tuple) -> pa.Array:
    kind = gen[0]
    if kind == "int":
        _, lo, hi, null_rate = gen
        values = rnd.integers(n, lo, hi)
    elif kind == "float":
        _, lo, hi, decimals, null_rate = gen
        values = pc.round(pc.add(pc.multiply(rnd.uniform(n), hi - lo), lo), decimals)
    else:
        _, choices, null_rate = gen
        values = pc.take(pa.array(choices, pa.string()), rnd.integers(n, 0, len(choices) - 1))
    if null_rate > 0:
        values = _null_where(pc.less(rnd.uniform(n), null_rate), values)
    return values


# ---- generation ----------------------------------------------------------------------------

def generate(spec: SeedSpec) -> Generated:
    """All offline rows of the spec (versions and delete markers), grouped by record."""
    spec.validate()
    rnd = _Random(spec.seed)
    n, v = spec.records, spec.versions
    slots = v + 1  # per-record grid of version slots; slot `versions` is for a final marker

    # -- per record ---------------------------------------------------------------------
    nv = rnd.integers(n, 1, v)  # versions of each record
    u_kind = rnd.uniform(n)
    delete_latest = pc.less(u_kind, spec.delete_fraction)
    rewrite = pc.and_(pc.invert(delete_latest),
                      pc.less(u_kind, spec.delete_fraction + spec.rewrite_fraction))
    has_marker = pc.or_(delete_latest, rewrite)
    u_tie = rnd.uniform(n)
    plain_multi = pc.and_(pc.invert(has_marker), pc.greater_equal(nv, 2))
    a = spec.tie_api_fraction
    b = a + spec.tie_write_fraction
    c = b + spec.order_trap_fraction
    tie_api = pc.and_(plain_multi, pc.less(u_tie, a))
    tie_write = pc.and_(plain_multi, pc.and_(pc.greater_equal(u_tie, a), pc.less(u_tie, b)))
    trap = pc.and_(plain_multi, pc.and_(pc.greater_equal(u_tie, b), pc.less(u_tie, c)))

    span_ns = int(spec.days * 86400 * _NS)
    gap_ns = span_ns // (2 * slots)  # version j sits at base + j*gap + jitter(< gap/2)
    start = spec.start_datetime()
    t0 = int(start.timestamp()) * _NS + start.microsecond * 1000
    base = pc.add(_i64(pc.floor(pc.multiply(rnd.uniform(n), span_ns / 2))), t0)
    marker_back = _i64(pc.floor(pc.multiply(rnd.uniform(n), gap_ns / 4)))  # rewrite marker
    trap_digits = pc.if_else(pc.less(rnd.uniform(n), 0.5), 3, 9)
    # the newer trap row is 1 ms .. 999 ms after the whole second (visible with 3 digits too)
    trap_frac = pc.add(_i64(pc.floor(pc.multiply(rnd.uniform(n), _NS - 2_000_000))), 1_000_000)
    tie_sign = pc.if_else(pc.less(rnd.uniform(n), 0.5), -1, 1)
    tie_delta_us = rnd.integers(n, 1_000, 10_000_000)  # 1 ms .. 10 s

    # -- per (record, slot) grid ---------------------------------------------------------
    grid = n * slots
    jitter = _i64(pc.floor(pc.multiply(rnd.uniform(grid), gap_ns / 2)))
    u_digits = rnd.uniform(grid)
    api_lag_us = rnd.integers(grid, 10_000_000, 70_000_000)  # 10 s .. 70 s after event
    write_lag_us = rnd.integers(grid, 1_000_000, 900_000_000)  # 1 s .. 15 min after api

    # -- expand to rows ------------------------------------------------------------------
    counts = pc.add(nv, _i64(has_marker))
    offsets = pc.cumulative_sum(pa.concat_arrays([pa.array([0], pa.int64()), counts]))
    total = offsets[-1].as_py()
    rec = _i64(pc.list_parent_indices(
        pa.LargeListArray.from_arrays(offsets, pa.nulls(total, pa.int8()))))
    pos = pc.subtract(pc.subtract(pc.cumulative_sum(pa.repeat(1, total).cast(pa.int64())), 1),
                      pc.take(offsets, rec))

    r_nv = pc.take(nv, rec)
    r_delete_latest = pc.take(delete_latest, rec)
    r_rewrite = pc.take(rewrite, rec)
    # position of the marker within its record, -1 for none
    marker_pos = pc.if_else(r_delete_latest, r_nv,
                            pc.if_else(r_rewrite, pc.subtract(r_nv, 1), -1))
    is_marker = pc.equal(pos, marker_pos)
    after_marker = pc.and_(pc.greater_equal(marker_pos, 0), pc.greater(pos, marker_pos))
    vidx = pc.if_else(after_marker, pc.subtract(pos, 1), pos)  # version index (marker: own)
    r_tie_api = pc.take(tie_api, rec)
    r_tie_write = pc.take(tie_write, rec)
    r_trap = pc.take(trap, rec)
    last_two = pc.greater_equal(vidx, pc.subtract(r_nv, 2))
    is_last = pc.equal(vidx, pc.subtract(r_nv, 1))
    same_time = pc.or_(r_tie_api, pc.or_(r_tie_write, r_trap))
    rewrite_marker = pc.and_(is_marker, r_rewrite)
    # grid slot of the row's own draws; a rewrite marker takes the spare last slot
    own_cell = pc.add(pc.multiply(rec, slots), pc.if_else(rewrite_marker, v, vidx))
    # the grid cell whose time (and digits) this row takes: ties/traps share the second-to-last
    cell = pc.if_else(pc.and_(same_time, is_last),
                      pc.subtract(own_cell, 1), own_cell)
    tvidx = pc.if_else(pc.and_(same_time, is_last), pc.subtract(vidx, 1), vidx)

    r_base = pc.take(base, rec)
    event_ns = pc.add(pc.add(r_base, pc.multiply(tvidx, gap_ns)), pc.take(jitter, cell))
    event_ns = pc.if_else(
        rewrite_marker,
        pc.subtract(pc.add(r_base, pc.multiply(vidx, gap_ns)),
                    pc.add(pc.take(marker_back, rec), 1)),
        event_ns,
    )
    if spec.event_time_type == STRING:
        digit_choices = pa.array([0, 3, 9], pa.int64())
    else:
        digit_choices = pa.array([0, 3, 6], pa.int64())
    digits = pc.take(digit_choices, _i64(pc.floor(pc.multiply(pc.take(u_digits, cell), 3))))
    # order trap: second-to-last at a whole second (0 digits), last a fraction later
    trap_row = pc.and_(r_trap, last_two)
    digits = pc.if_else(trap_row, pc.if_else(is_last, pc.take(trap_digits, rec), 0), digits)
    if spec.event_time_type == FRACTIONAL:
        digits = pc.if_else(pc.and_(trap_row, pc.equal(digits, 9)), 6, digits)
    whole = pc.multiply(floor_div(event_ns, _NS), _NS)
    event_ns = pc.if_else(trap_row, pc.add(whole, pc.if_else(is_last, pc.take(trap_frac, rec), 0)),
                          event_ns)
    # truncate to the chosen digits
    quantum = pc.take(pa.array([10**9, 0, 0, 10**6, 0, 0, 10**3, 0, 0, 1], pa.int64()), digits)
    event_ns = pc.multiply(floor_div(event_ns, quantum), quantum)

    # api_invocation_time / write_time (us)
    event_us = floor_div(event_ns, 1000)
    api_cell = pc.if_else(pc.and_(r_tie_write, is_last), cell, own_cell)
    api_us = pc.add(event_us, pc.take(api_lag_us, api_cell))
    signed_delta = pc.multiply(pc.take(tie_sign, rec), pc.take(tie_delta_us, rec))
    # tie on event time: the last version's api time differs from the other one's by +-delta
    api_us = pc.if_else(pc.and_(r_tie_api, is_last),
                        pc.add(pc.add(event_us, pc.take(api_lag_us, cell)), signed_delta),
                        api_us)
    write_us = pc.add(api_us, pc.take(write_lag_us, api_cell))
    write_us = pc.if_else(pc.and_(r_tie_write, is_last),
                          pc.add(pc.add(api_us, pc.take(write_lag_us, cell)), signed_delta),
                          write_us)
    # a write lag always keeps write_time after api_invocation_time
    write_us = pc.max_element_wise(write_us, pc.add(api_us, 1000))

    # -- columns -------------------------------------------------------------------------
    if spec.id_type == STRING:
        width = max(7, len(str(n)))
        ids = pc.binary_join_element_wise(
            "r", pc.utf8_lpad(pc.cast(rec, pa.string()), width, "0"), "")
    else:
        ids = pc.add(rec, 1)
    if spec.event_time_type == STRING:
        event_col = _iso_strings(event_ns, digits)
    else:
        seconds = floor_div(event_ns, _NS)
        frac = pc.subtract(event_ns, pc.multiply(seconds, _NS))
        event_col = pc.add(pc.cast(seconds, pa.float64()),
                           pc.divide(pc.cast(frac, pa.float64()), float(_NS)))
        event_col = pc.if_else(pc.equal(digits, 0), pc.round(event_col, 0),
                               pc.if_else(pc.equal(digits, 3), pc.round(event_col, 3),
                                          pc.round(event_col, 6)))
    columns: dict[str, pa.Array] = {RECORD_ID: ids, EVENT_TIME: event_col}
    for name, _ftype, gen in VALUE_FEATURES:
        columns[name] = _null_where(is_marker, _value_column(rnd, total, gen))
    columns["write_time"] = pc.cast(write_us, pa.int64()).view(_TS)
    columns["api_invocation_time"] = pc.cast(api_us, pa.int64()).view(_TS)
    columns["is_deleted"] = is_marker
    schema = offline_schema(spec)
    table = pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema],
                                 schema=schema)
    summary = {
        "rows": total,
        "delete_markers": pc.sum(_i64(is_marker)).as_py() or 0,
        "rewritten_records": pc.sum(_i64(rewrite)).as_py() or 0,
        "tie_api_records": pc.sum(_i64(tie_api)).as_py() or 0,
        "tie_write_records": pc.sum(_i64(tie_write)).as_py() or 0,
        "order_trap_records": pc.sum(_i64(trap)).as_py() or 0,
    }
    return Generated(table=table, event_ns=event_ns, record_index=rec,
                     offsets=offsets.to_pylist(), counts=summary, start=start)


def latest_indices(gen: Generated) -> pa.Array:
    """Row index of each record's latest row: newest event instant, then api, then write time."""
    order = pa.table({
        "rec": gen.record_index,
        "ev": gen.event_ns,
        "api": gen.table.column("api_invocation_time"),
        "wt": gen.table.column("write_time"),
    })
    sorted_idx = pc.sort_indices(order, sort_keys=[("rec", "ascending"), ("ev", "ascending"),
                                                   ("api", "ascending"), ("wt", "ascending")])
    ends = pa.array(gen.offsets[1:], pa.int64())
    return pc.take(sorted_idx, pc.subtract(ends, 1))


# ---- offline files -------------------------------------------------------------------------

def local_path(local_root: str | os.PathLike, s3_uri: str) -> Path:
    """s3://bucket/key -> <local_root>/bucket/key."""
    try:
        return offline_layout.local_path(local_root, s3_uri)
    except ValueError as exc:
        raise SeedError(str(exc)) from None


# ---- online writes -------------------------------------------------------------------------

def _encode(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def online_records(table: pa.Table) -> list[list[dict[str, str]]]:
    """Records (lists of FeatureName/ValueAsString) for the rows of `table`; nulls omitted."""
    names = [n for n in table.column_names if n not in offline_layout.META_COLUMNS]
    columns = [table.column(n).to_pylist() for n in names]
    out = []
    for values in zip(*columns, strict=True):
        out.append([{"FeatureName": name, "ValueAsString": _encode(value)}
                    for name, value in zip(names, values, strict=True) if value is not None])
    return out


def batch_write(runtime, entries: list[dict[str, Any]], max_attempts: int = 8) -> int:
    """One BatchWriteRecord of <= 25 entries; re-sends UnprocessedEntries with backoff.

    The only BatchWriteRecord retry loop in scripts/ (botocore retries throttling and 5xx
    itself); an entry error stops the seed: generated data is always valid.
    """
    pending = entries
    for attempt in range(max_attempts):
        response = runtime.batch_write_record(Entries=pending)
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise SeedError(f"BatchWriteRecord failed for {len(errors)} entries: "
                            f"{first.get('ErrorCode')}: {first.get('ErrorMessage')}")
        pending = response.get("UnprocessedEntries") or []
        if not pending:
            return len(entries)
        time.sleep(min(2.0, 0.05 * 2**attempt))
    raise SeedError(f"BatchWriteRecord left {len(pending)} entries unprocessed")


def write_online(runtime, group: str, records: list[list[dict[str, str]]],
                 target_stores: list[str] | None, threads: int = 4) -> int:
    """BatchWriteRecord, 25 entries per call, a few threads."""
    extra = {"TargetStores": target_stores} if target_stores else {}
    entries = [{"FeatureGroupName": group, "Record": r, **extra} for r in records]
    batches = [entries[i:i + 25] for i in range(0, len(entries), 25)]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return sum(pool.map(lambda batch: batch_write(runtime, batch), batches))


# ---- control plane -------------------------------------------------------------------------

def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ResourceNotFound", "ResourceNotFoundException")


def _describe(sm, group: str) -> dict[str, Any] | None:
    try:
        return sm.describe_feature_group(FeatureGroupName=group)
    except Exception as exc:  # botocore ClientError
        if _is_not_found(exc):
            return None
        raise


def _wait(predicate, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SeedError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(1.0, delay * 2)


def delete_group(sm, group: str, local_root: str | os.PathLike | None) -> None:
    """Delete the group and, in local mode, its offline data folder (a fresh start)."""
    desc = _describe(sm, group)
    if desc is None:
        return
    sm.delete_feature_group(FeatureGroupName=group)
    _wait(lambda: _describe(sm, group) is None, f"deletion of {group}")
    resolved = (desc.get("OfflineStoreConfig") or {}).get("S3StorageConfig", {}).get(
        "ResolvedOutputS3Uri")
    if local_root and resolved:
        folder = local_path(local_root, resolved)
        if folder.name == "data":  # .../<group>-<epoch>/data: remove the group's folder
            folder = folder.parent
        shutil.rmtree(folder, ignore_errors=True)


def create_group(sm, spec: SeedSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "FeatureGroupName": spec.group,
        "RecordIdentifierFeatureName": RECORD_ID,
        "EventTimeFeatureName": EVENT_TIME,
        "FeatureDefinitions": feature_definitions(spec),
        "Description": f"seed_data.py: {spec.records} records, seed {spec.seed}",
    }
    if spec.has_online:
        online: dict[str, Any] = {"EnableOnlineStore": True}
        if spec.ttl_seconds:
            online["TtlDuration"] = {"Unit": "Seconds", "Value": int(spec.ttl_seconds)}
        kwargs["OnlineStoreConfig"] = online
    if spec.has_offline:
        prefix = spec.prefix.strip("/")
        uri = f"s3://{spec.bucket}/{prefix}" if prefix else f"s3://{spec.bucket}"
        kwargs["OfflineStoreConfig"] = {
            "S3StorageConfig": {"S3Uri": uri},
            "DisableGlueTableCreation": True,
        }
        kwargs["RoleArn"] = spec.role_arn
    sm.create_feature_group(**kwargs)

    def created():
        desc = _describe(sm, spec.group)
        status = (desc or {}).get("FeatureGroupStatus")
        if status == "CreateFailed":
            raise SeedError(f"creating {spec.group} failed: {desc.get('FailureReason')}")
        return desc if status == "Created" else None

    return _wait(created, f"creation of {spec.group}")


def _clients(endpoint_url: str | None, region: str, threads: int):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    sm = session.client("sagemaker", region_name=region, endpoint_url=endpoint_url,
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))
    runtime = session.client(
        "sagemaker-featurestore-runtime", region_name=region, endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 8, "mode": "standard"},
                      max_pool_connections=max(10, threads), parameter_validation=False),
    )
    return sm, runtime


# ---- entry points --------------------------------------------------------------------------

def seed(spec: SeedSpec, *, endpoint_url: str | None = None, region: str = "us-east-1",
         local_root: str | os.PathLike | None = None, replace: bool = False,
         threads: int = 4) -> SeedSummary:
    """Create `spec.group`, fill its stores, return what was written.

    Raises SeedError when the spec is invalid, when the group exists and `replace` is false,
    or when an offline store is requested without `local_root`.
    """
    started = time.perf_counter()
    spec.validate()
    if spec.has_offline and not local_root:
        raise SeedError("an offline store needs local_root (where s3://bucket/key is written)")
    timings: dict[str, float] = {}
    sm, runtime = _clients(endpoint_url, region, threads)

    mark = time.perf_counter()
    if _describe(sm, spec.group) is not None:
        if not replace:
            raise SeedError(f"feature group {spec.group!r} already exists "
                            "(use --replace / replace=True to delete and recreate it)")
        delete_group(sm, spec.group, local_root)
    desc = create_group(sm, spec)
    timings["create"] = time.perf_counter() - mark

    mark = time.perf_counter()
    gen = generate(spec)
    timings["generate"] = time.perf_counter() - mark

    mark = time.perf_counter()
    latest = latest_indices(gen)
    latest_rows = gen.table.take(latest)
    deleted = latest_rows.column("is_deleted")
    alive_rows = latest_rows.filter(pc.invert(deleted))
    timings["latest"] = time.perf_counter() - mark

    files = 0
    rows_offline = 0
    data_dir = None
    resolved = None
    if spec.has_offline:
        mark = time.perf_counter()
        resolved = desc["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
        data_dir = local_path(local_root, resolved)
        file_rng = random.Random(f"{spec.seed}:files")
        files = len(offline_layout.write_table(gen.table, gen.event_ns, data_dir, file_rng,
                                               spec.rows_per_file, threads=2))
        rows_offline = gen.table.num_rows
        timings["offline"] = time.perf_counter() - mark

    online = 0
    if spec.has_online:
        mark = time.perf_counter()
        targets = ["OnlineStore"] if spec.has_offline else None
        online = write_online(runtime, spec.group, online_records(alive_rows), targets,
                              threads=threads)
        timings["online"] = time.perf_counter() - mark

    return SeedSummary(
        group=spec.group,
        rows_offline=rows_offline,
        records=spec.records,
        deleted_records=pc.sum(_i64(deleted)).as_py() or 0,
        online_records=online,
        files=files,
        seconds=round(time.perf_counter() - started, 3),
        data_dir=str(data_dir) if data_dir else None,
        resolved_output_s3_uri=resolved,
        start=gen.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        timings={k: round(s, 3) for k, s in timings.items()},
        **gen.counts,
    )


def build_parser() -> argparse.ArgumentParser:
    d = SeedSpec()
    p = argparse.ArgumentParser(
        description="Create a feature group and seed it with deterministic test data.")
    p.add_argument("--endpoint-url", default=None, help="SageMaker endpoint (the emulator)")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--local-root", default=None,
                   help="s3://bucket/key is written to DIR/bucket/key (needed for offline)")
    p.add_argument("--group", default=d.group)
    p.add_argument("--records", type=int, default=d.records)
    p.add_argument("--versions", type=int, default=d.versions,
                   help="maximum versions per record (each has 1..V)")
    p.add_argument("--stores", choices=STORES, default=d.stores)
    p.add_argument("--event-time-type", choices=(STRING, FRACTIONAL), default=d.event_time_type)
    p.add_argument("--id-type", choices=(STRING, INTEGRAL), default=d.id_type)
    p.add_argument("--delete-fraction", type=float, default=d.delete_fraction)
    p.add_argument("--rewrite-fraction", type=float, default=d.rewrite_fraction)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--bucket", default=d.bucket)
    p.add_argument("--prefix", default=d.prefix)
    p.add_argument("--ttl-seconds", type=int, default=None)
    p.add_argument("--days", type=float, default=d.days, help="span of the event times")
    p.add_argument("--start", default=None, help="first event time, ISO-8601 UTC")
    p.add_argument("--rows-per-file", type=int, default=d.rows_per_file)
    p.add_argument("--threads", type=int, default=4, help="online write threads")
    p.add_argument("--replace", action="store_true", help="delete and recreate the group")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec = SeedSpec(
        group=args.group, records=args.records, versions=args.versions, stores=args.stores,
        event_time_type=args.event_time_type, id_type=args.id_type,
        delete_fraction=args.delete_fraction, rewrite_fraction=args.rewrite_fraction,
        seed=args.seed, bucket=args.bucket, prefix=args.prefix, ttl_seconds=args.ttl_seconds,
        days=args.days, start=args.start, rows_per_file=args.rows_per_file,
    )
    try:
        summary = seed(spec, endpoint_url=args.endpoint_url, region=args.region,
                       local_root=args.local_root, replace=args.replace, threads=args.threads)
    except SeedError as exc:
        print(f"seed_data: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
