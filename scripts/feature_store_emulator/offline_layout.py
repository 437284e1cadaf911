"""The offline store's Glue-format Parquet layout (DESIGN.md §2), written in one place.

Both the emulator's offline store (offline.py) and the seed generator (scripts/seed_data.py)
write files through ``write_table``::

    <ResolvedOutputS3Uri mapped to a local root>/year=YYYY/month=MM/day=DD/hour=HH/
        <YYYYMMDDTHHMMSSZ of the latest event in the file>_<16 random alnum>.parquet

Rows are partitioned by event time (UTC). Each row holds the features (Integral -> int64,
Fractional -> double, String -> string) followed by ``write_time`` and ``api_invocation_time``
(timestamp[us, UTC]) and ``is_deleted`` (bool). A file is written under a hidden temporary name
and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import random
import re
import string
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .utils import EPOCH, NS

META_COLUMNS = ("write_time", "api_invocation_time", "is_deleted")
TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
ALNUM = string.ascii_letters + string.digits
S3_URI_RE = re.compile(r"s3://([^/]+)/?(.*)")
_HOUR_NS = 3600 * NS


def local_path(local_root: str | os.PathLike, s3_uri: str) -> Path:
    """s3://bucket/key -> <local_root>/bucket/key (ValueError for anything else)."""
    m = S3_URI_RE.fullmatch(s3_uri)
    if not m:
        raise ValueError(f"not an s3:// URI: {s3_uri}")
    bucket, key = m.groups()
    return Path(local_root, bucket, *[part for part in key.split("/") if part])


def schema(features: Sequence[tuple[str, str]]) -> pa.Schema:
    """The offline columns for [(FeatureName, FeatureType)] in definition order."""
    fields = [pa.field(name, ARROW_TYPES[ftype]) for name, ftype in features]
    fields += [pa.field("write_time", TIMESTAMP), pa.field("api_invocation_time", TIMESTAMP),
               pa.field("is_deleted", pa.bool_())]
    return pa.schema(fields)


def floor_div(values: pa.Array, divisor: int | pa.Array) -> pa.Array:
    """Floor division of int64 values that may be negative (event times before 1970)."""
    quotient = pc.divide(values, divisor)  # truncates toward zero
    rest = pc.and_(pc.less(values, 0), pc.not_equal(pc.multiply(quotient, divisor), values))
    return pc.if_else(rest, pc.subtract(quotient, 1), quotient)


def write_table(table: pa.Table, event_ns: pa.Array, data_dir: str | os.PathLike,
                rng: random.Random, rows_per_file: int | None = None,
                threads: int = 1) -> list[Path]:
    """Write ``table`` (offline columns) under ``data_dir``; returns the files, in hour order.

    ``event_ns`` is each row's event-time instant in ns (exact: a string or double column
    cannot say which hour a row belongs to without parsing). Within an hour rows keep their
    order by ``write_time`` (stable: equal write times keep the table's order); an hour of more
    than ``rows_per_file`` rows is split into files of about equal size. File-name suffixes are
    drawn from ``rng`` in hour order, so a seeded ``rng`` gives the same names every time.
    """
    data_dir = Path(data_dir)
    event_ns = pc.cast(event_ns, pa.int64())
    hours = floor_div(event_ns, _HOUR_NS)
    keyed = pa.table({"h": hours, "w": table.column("write_time")})
    order = pc.sort_indices(keyed, sort_keys=[("h", "ascending"), ("w", "ascending")])
    table = table.take(order)
    event_sorted = pc.take(event_ns, order)
    runs = pc.run_end_encode(pc.take(hours, order))
    jobs = []
    begin = 0
    for end, hour in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
        size = end - begin
        parts = -(-size // rows_per_file) if rows_per_file else 1
        hour_dt = EPOCH + timedelta(hours=hour)
        folder = data_dir / (f"year={hour_dt.year:04d}/month={hour_dt.month:02d}/"
                             f"day={hour_dt.day:02d}/hour={hour_dt.hour:02d}")
        for p in range(parts):
            lo, hi = begin + size * p // parts, begin + size * (p + 1) // parts
            jobs.append((folder, lo, hi, "".join(rng.choices(ALNUM, k=16))))
        begin = end

    def write(job) -> Path:
        folder, lo, hi, suffix = job
        latest_s = pc.max(event_sorted.slice(lo, hi - lo)).as_py() // NS
        stamp = (EPOCH + timedelta(seconds=latest_s)).strftime("%Y%m%dT%H%M%SZ")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{stamp}_{suffix}.parquet"
        tmp = folder / f".{name}.tmp"  # hidden from Spark/Hadoop readers until complete
        pq.write_table(table.slice(lo, hi - lo), tmp, compression="snappy")
        os.replace(tmp, folder / name)
        return folder / name

    if threads <= 1 or len(jobs) <= 1:
        return [write(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(write, jobs))
