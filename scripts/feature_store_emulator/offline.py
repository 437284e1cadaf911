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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .groups import Group

log = logging.getLogger(__name__)


class Pending:
    """One group's buffered offline rows, column by column (a list per feature rather than a
    dict per row: a fraction of the memory, and the Parquet columns are built straight from
    them). Validated values are strings (or lists of them); None where a row has no value."""

    __slots__ = ("columns", "event_ns", "api_us", "deleted", "due")

    def __init__(self) -> None:
        self.columns: dict[str, list] = {}  # feature name -> values, one per row
        self.event_ns: list[int] = []
        self.api_us: list[int] = []  # api_invocation_time, µs
        self.deleted: list[bool] = []
        self.due: list[float] = []  # time.monotonic() from which a timer flush may deliver

    def __len__(self) -> int:
        return len(self.event_ns)

    def add(self, group: Group, values: dict[str, Any], event_ns: int, api_us: int,
            deleted: bool, due: float) -> None:
        cols = self.columns
        if len(cols) != len(group.features):  # first row, or features added since
            for feat in group.features:
                if feat.name not in cols:
                    cols[feat.name] = [None] * len(self.event_ns)
        get = values.get
        for name, col in cols.items():
            col.append(get(name))
        self.event_ns.append(event_ns)
        self.api_us.append(api_us)
        self.deleted.append(deleted)
        self.due.append(due)

    def split(self, n: int) -> Pending:
        """Remove the first ``n`` rows and return them."""
        head = Pending()
        for name, col in self.columns.items():
            head.columns[name], self.columns[name] = col[:n], col[n:]
        for attr in ("event_ns", "api_us", "deleted", "due"):
            col = getattr(self, attr)
            setattr(head, attr, col[:n])
            setattr(self, attr, col[n:])
        return head


class OfflineStore:
    def __init__(self, data_dir: str, delay_s: float = 0.0):
        self.data_dir = os.path.abspath(data_dir)
        self.delay_s = delay_s
        self.lock = threading.Lock()  # buffer and counters
        self.flush_lock = threading.Lock()  # one flush or reset at a time
        self.buffer: dict[Group, Pending] = {}
        self.buffered = 0
        self.files_written: list[str] = []
        self.rows_written = 0
        self.name_rng = random.Random()

    def append(self, group: Group, values: dict[str, Any], event_ns: int, api_us: int,
               deleted: bool = False) -> None:
        """Buffer one row: validated values by feature name, or a delete marker's."""
        due = time.monotonic() + self.delay_s
        with self.lock:
            pending = self.buffer.get(group)
            if pending is None:
                pending = self.buffer[group] = Pending()
            pending.add(group, values, event_ns, api_us, deleted, due)
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

    def _take_due(self, now: float) -> dict[Group, Pending]:
        """Remove and return the rows due by ``now`` (caller holds the lock). Rows are
        appended in time order with one delay, so the due ones are a prefix of each group's."""
        taken: dict[Group, Pending] = {}
        for group, pending in list(self.buffer.items()):
            due = pending.due
            n = 0
            while n < len(due) and due[n] <= now:
                n += 1
            if n:
                self.buffered -= n
                if n == len(due):
                    taken[group] = self.buffer.pop(group)
                else:
                    taken[group] = pending.split(n)
        return taken

    def _write_group(self, group: Group, rows: Pending) -> list[str]:
        import pyarrow as pa  # imported on the first flush: the emulator starts faster

        from . import offline_layout

        n = len(rows)
        columns = []
        for name, ftype in group.offline_features():
            raw = rows.columns.get(name)
            columns.append(_typed([None] * n if raw is None else raw, ftype, pa))
        write_us = time.time_ns() // 1000
        columns += [pa.array([write_us] * n, offline_layout.TIMESTAMP),
                    pa.array(rows.api_us, offline_layout.TIMESTAMP),
                    pa.array(rows.deleted, pa.bool_())]
        schema = offline_layout.schema(group.offline_features())
        table = pa.Table.from_arrays(columns, schema=schema)
        event_ns = pa.array(rows.event_ns, pa.int64())
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
