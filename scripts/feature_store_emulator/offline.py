"""The emulator's offline store: rows wait in a buffer and a flush writes them as Parquet.

The real service lands rows "within 15 minutes" (AWS developer guide, feature-store-offline:
data is delivered to the offline store after some delay). Here each row waits at least
``delay_s`` (cli.py ``--offline-delay-seconds``) before a timer flush (``--flush-interval``)
may write it; ``POST /_emulator/flush`` writes everything buffered at once. Files are written
through offline_layout.write_table.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .groups import Group

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Row:
    """One offline row: validated values (strings, by feature name), or a delete marker."""

    values: dict[str, Any]
    event_ns: int
    api_us: int  # api_invocation_time, µs
    deleted: bool
    due: float = 0.0  # time.monotonic() from which a timer flush may deliver it


class OfflineStore:
    def __init__(self, data_dir: str, delay_s: float = 0.0):
        self.data_dir = os.path.abspath(data_dir)
        self.delay_s = delay_s
        self.lock = threading.Lock()  # buffer and counters
        self.flush_lock = threading.Lock()  # one flush or reset at a time
        self.buffer: dict[Group, list[Row]] = {}
        self.buffered = 0
        self.files_written: list[str] = []
        self.rows_written = 0
        self.name_rng = random.Random()

    def append(self, group: Group, row: Row) -> None:
        row.due = time.monotonic() + self.delay_s
        with self.lock:
            rows = self.buffer.get(group)
            if rows is None:
                rows = self.buffer[group] = []
            rows.append(row)
            self.buffered += 1

    def flush(self, due_only: bool = False) -> dict:
        """Write the buffered rows now (``due_only``: those that waited the delivery delay);
        returns {"files": n, "rows": m}."""
        with self.flush_lock:
            with self.lock:
                if due_only and self.delay_s > 0:
                    buffer = self._take_due(time.monotonic())
                else:
                    buffer, self.buffer, self.buffered = self.buffer, {}, 0
            files = rows = 0
            for group, group_rows in buffer.items():
                try:
                    written = self._write_group(group, group_rows)
                except Exception:  # keep serving; the stack trace goes to stderr
                    log.exception("offline flush failed for %s", group.name)
                    continue
                files += len(written)
                rows += len(group_rows)
                with self.lock:
                    self.files_written += written
            with self.lock:
                self.rows_written += rows
            return {"files": files, "rows": rows}

    def _take_due(self, now: float) -> dict[Group, list[Row]]:
        """Remove and return the rows due by ``now`` (caller holds the lock). Rows are
        appended in time order with one delay, so the due ones are a prefix of each list."""
        due: dict[Group, list[Row]] = {}
        for group, rows in list(self.buffer.items()):
            n = 0
            while n < len(rows) and rows[n].due <= now:
                n += 1
            if n:
                due[group] = rows[:n]
                self.buffered -= n
                if n == len(rows):
                    del self.buffer[group]
                else:
                    self.buffer[group] = rows[n:]
        return due

    def _write_group(self, group: Group, rows: list[Row]) -> list[str]:
        import pyarrow as pa  # imported on the first flush: the emulator starts faster

        from . import offline_layout

        columns = []
        for name, ftype in group.offline_features():
            raw = [r.values.get(name) for r in rows]
            columns.append(_typed(raw, ftype, pa))
        write_us = time.time_ns() // 1000
        columns += [pa.array([write_us] * len(rows), offline_layout.TIMESTAMP),
                    pa.array([r.api_us for r in rows], offline_layout.TIMESTAMP),
                    pa.array([r.deleted for r in rows], pa.bool_())]
        schema = offline_layout.schema(group.offline_features())
        table = pa.Table.from_arrays(columns, schema=schema)
        event_ns = pa.array([r.event_ns for r in rows], pa.int64())
        local_dir = offline_layout.local_path(self.data_dir, group.resolved_output_uri)
        paths = offline_layout.write_table(table, event_ns, local_dir, self.name_rng)
        return [str(p) for p in paths]

    def reset(self) -> int:
        """Drop the buffer and delete every file written so far; returns how many."""
        with self.flush_lock:
            with self.lock:
                files, self.files_written = self.files_written, []
                self.buffer, self.buffered, self.rows_written = {}, 0, 0
            removed = 0
            dirs = set()
            for path in files:
                try:
                    os.remove(path)
                    removed += 1
                except FileNotFoundError:
                    pass
                dirs.add(os.path.dirname(path))
            # prune now-empty directories up to the data dir
            for directory in sorted(dirs, key=len, reverse=True):
                while directory.startswith(self.data_dir + os.sep):
                    try:
                        os.rmdir(directory)
                    except OSError:
                        break
                    directory = os.path.dirname(directory)
        return removed

    def stats(self) -> dict:
        with self.lock:
            return {"buffered_rows": self.buffered, "files_written": len(self.files_written),
                    "rows_written": self.rows_written}


def _typed(raw: list, ftype: str, pa):
    """The API's strings as the offline column type (DESIGN.md §2)."""
    if ftype == "Integral":
        return pa.array([None if v is None else int(v) for v in raw], pa.int64())
    if ftype == "Fractional":
        return pa.array([None if v is None else float(v) for v in raw], pa.float64())
    return pa.array(raw, pa.string())
