"""Driver-side live progress: a bar on a terminal, one log line per interval elsewhere.

Counts inside a partition reach the driver as small UDP datagrams (:class:`LiveFeed` on the
driver, :class:`LiveReporter` in the tasks): accumulators only arrive when a task ends, which
under throttling, or with 5,000-record partitions, is minutes of a bar standing still. UDP
because it never blocks or fails a task: executors already reach the driver (Spark needs it),
a datagram lost or blocked by a firewall only makes the bar move at partition ends again, and
the totals still come from the accumulators.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger("fsmigrate.progress")


def is_terminal(stream: TextIO) -> bool:
    """True for a terminal, also under spark-submit, whose JVM pipes the Python driver's
    stdout to its own: then the JVM's stdout (our parent's fd 1) is what the user sees."""
    if getattr(stream, "isatty", lambda: False)():
        return True
    if stream is not sys.stdout:
        return False
    try:
        parent_stdout = os.readlink(f"/proc/{os.getppid()}/fd/1")
    except OSError:  # not Linux, or not allowed
        return False
    return parent_stdout.startswith(("/dev/pts/", "/dev/tty"))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def progress_line(counts: dict[str, int], total: int, elapsed: float,
                  pace: float | None = None) -> str:
    """`pace`: records/s over the last interval (the current pace; the first number is the
    average). ``counts["outage_seconds"]``: how long the target has failed every call."""
    done = counts.get("written", 0) + counts.get("failed", 0)
    pct = 100.0 * done / total if total else 100.0
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 and total >= done else None
    now = "" if pace is None else f" (now {pace:,.0f})"
    line = (f"{done:,}/{total:,} ({pct:.1f}%) {rate:,.0f} rec/s{now} "
            f"failed {counts.get('failed', 0):,} retried {counts.get('retried', 0):,} "
            f"throttled {counts.get('throttled', 0):,} ETA {format_duration(eta)}")
    if counts.get("outage_seconds"):
        line += f" | target down {format_duration(counts['outage_seconds'])}: waiting it out"
    return line


class Progress:
    """Polls `snapshot()` every `interval` seconds until stopped."""

    def __init__(self, snapshot: Callable[[], dict[str, int]], total: int, interval: float,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 phase: str | None = None):
        self._snapshot = snapshot
        self._phase = phase  # names the phase when there is more than one (e.g. a read)
        self._total = total
        self._interval = interval
        self._stream = stream or sys.stdout
        self._clock = clock
        self._tty = is_terminal(self._stream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._started = 0.0
        self._last: tuple[float, int] | None = None  # (time, done) of the previous line
        self._shown = 0  # live counts may dip when a task's final count replaces its live one

    def __enter__(self) -> Progress:
        self._started = self._clock()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)
        self._emit(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._emit(final=False)

    def _emit(self, final: bool) -> None:
        try:
            counts = self._snapshot()
        except Exception:  # a progress glitch must never stop the migration
            log.debug("progress snapshot failed", exc_info=True)
            return
        now = self._clock()
        done = counts.get("written", 0) + counts.get("failed", 0)
        if done < self._shown:
            counts = {**counts, "written": self._shown - counts.get("failed", 0)}
            done = self._shown
        self._shown = done
        pace = None
        if self._last is not None and now > self._last[0]:
            pace = (done - self._last[1]) / (now - self._last[0])
        self._last = (now, done)
        line = progress_line(counts, self._total, now - self._started, pace)
        if self._tty:
            # \x1b[K clears what a longer earlier frame left at the end of the line.
            prefix = f"{self._phase}: " if self._phase else ""
            self._stream.write(f"\r{prefix}{_bar(counts, self._total)} {line}\x1b[K"
                               + ("\n" if final else ""))
            self._stream.flush()
        else:
            log.info("%s %s", self._phase or "progress", line)


def _bar(counts: dict[str, int], total: int, width: int = 24) -> str:
    done = counts.get("written", 0) + counts.get("failed", 0)
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}]"


class LiveFeed:
    """Driver side: collects the tasks' running counts (one datagram per task and half
    second), keyed by partition; a task's last datagram (``done``) drops it again, since its
    accumulators then carry its counts. A later attempt of a partition (Spark retrying a task
    whose Python worker died) replaces the counts of the earlier one, which never sends
    ``done``: they are not counted twice."""

    def __init__(self, host: str) -> None:
        family, _, _, _, addr = socket.getaddrinfo(host, 0, type=socket.SOCK_DGRAM)[0]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind(addr)
        self.address = (host, self._sock.getsockname()[1])
        self._lock = threading.Lock()
        self._live: dict[str, tuple[int, dict]] = {}  # partition -> (attempt, counts)
        self._done: dict[str, int] = {}  # partition -> its last attempt that ended
        self._closed = False
        threading.Thread(target=self._run, name="progress-feed", daemon=True).start()

    @classmethod
    def for_spark(cls, sc) -> LiveFeed | None:
        try:
            return cls(sc.getConf().get("spark.driver.host") or "127.0.0.1")
        except OSError:
            log.debug("no live progress feed", exc_info=True)
            return None

    def _run(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(65536)
                msg = json.loads(data)
                key = str(msg.pop("task"))
                attempt = int(msg.pop("attempt", 0))
            except (OSError, ValueError, KeyError, TypeError):
                if self._closed:
                    return
                continue
            with self._lock:
                if attempt <= self._done.get(key, -1):
                    continue  # a late datagram of an attempt that has ended
                if msg.pop("done", False):
                    self._done[key] = attempt
                    if self._live.get(key, (-1, None))[0] <= attempt:
                        self._live.pop(key, None)
                elif attempt >= self._live.get(key, (-1, None))[0]:
                    self._live[key] = (attempt, msg)

    def add_to(self, counts: dict[str, int]) -> dict[str, int]:
        """`counts` (the finished tasks') plus the running tasks'; the longest outage seen."""
        with self._lock:
            live = [msg for _, msg in self._live.values()]
        out = dict(counts)
        for msg in live:
            for name, value in msg.items():
                if name == "outage_seconds":
                    out[name] = max(out.get(name, 0), value)
                elif name in out:
                    out[name] += value
        return out

    def close(self) -> None:
        self._closed = True
        self._sock.close()


class LiveReporter:
    """Task side: sends this task's running counts to the driver's :class:`LiveFeed`, at most
    every `interval` seconds; never raises."""

    def __init__(self, address: tuple[str, int] | None, task: str, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, attempt: int = 0) -> None:
        """`task`: the partition; `attempt`: Spark's attempt number of its task."""
        self.address, self.task, self.interval, self._clock = address, task, interval, clock
        self.attempt = attempt
        self._sent = float("-inf")
        self._sock: socket.socket | None = None

    def report(self, counts: dict[str, float], done: bool = False) -> None:
        if self.address is None or (not done and self._clock() - self._sent < self.interval):
            return
        self._sent = self._clock()
        try:
            if self._sock is None:
                family = socket.getaddrinfo(self.address[0], 0, type=socket.SOCK_DGRAM)[0][0]
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
            payload = {"task": self.task, "attempt": self.attempt, **counts,
                       **({"done": True} if done else {})}
            self._sock.sendto(json.dumps(payload).encode(), self.address)
        except OSError:
            log.debug("progress datagram not sent", exc_info=True)
