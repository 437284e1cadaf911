"""Driver-side live progress: a bar on a terminal, one log line per interval elsewhere."""

from __future__ import annotations

import logging
import os
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


def progress_line(counts: dict[str, int], total: int, elapsed: float) -> str:
    done = counts.get("written", 0) + counts.get("failed", 0)
    pct = 100.0 * done / total if total else 100.0
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 and total >= done else None
    return (f"{done:,}/{total:,} ({pct:.1f}%) {rate:,.0f} rec/s "
            f"failed {counts.get('failed', 0):,} retried {counts.get('retried', 0):,} "
            f"throttled {counts.get('throttled', 0):,} ETA {format_duration(eta)}")


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
        line = progress_line(counts, self._total, self._clock() - self._started)
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
