"""Driver-side progress: the line's numbers, and Progress emitting on a log or a terminal."""

from __future__ import annotations

import io
import logging
import re
import threading
import time

import pytest
from fsmigrate.progress import Progress, _bar, format_duration, progress_line

LOGGER = "fsmigrate.progress"
INTERVAL = 0.01  # real seconds between polls; elapsed time comes from the fake clock


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


class Feed:
    """A snapshot source and a fake clock in one: every poll advances 10 s and 100 records.

    `ready` is set once `polls_wanted` polls have happened, so a test can leave the context
    after a known number of interval emissions without sleeping.
    """

    def __init__(self, polls_wanted: int = 3, fail_first: int = 0):
        self.now = 1000.0
        self.polls = 0
        self.fail_first = fail_first
        self.polls_wanted = polls_wanted
        self.ready = threading.Event()
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            self.polls += 1
            self.now += 10.0
            if self.polls >= self.polls_wanted + self.fail_first:
                self.ready.set()
            if self.polls <= self.fail_first:
                raise RuntimeError("accumulator not ready")
            return {"written": 100 * self.polls, "failed": 0, "retried": 2, "throttled": 1}


# ---- the line ---------------------------------------------------------------------------------


def test_progress_line_numbers():
    line = progress_line({"written": 240, "failed": 10, "retried": 3, "throttled": 4},
                         1000, 10.0)
    assert line == ("250/1,000 (25.0%) 25 rec/s failed 10 retried 3 throttled 4 ETA 0m30s")


def test_progress_line_large_numbers_and_hours():
    line = progress_line({"written": 1_000_000}, 10_000_000, 100.0)
    # 10,000 rec/s, 9,000,000 left -> 900 s
    assert line.startswith("1,000,000/10,000,000 (10.0%) 10,000 rec/s ")
    assert line.endswith("ETA 15m00s")
    slow = progress_line({"written": 1}, 10_000, 1.0)  # 9,999 s left
    assert slow.endswith("ETA 2h46m39s")


def test_progress_line_at_the_start():
    line = progress_line({}, 500, 0.0)
    assert line == "0/500 (0.0%) 0 rec/s failed 0 retried 0 throttled 0 ETA ?"


def test_progress_line_done_and_overshoot():
    assert progress_line({"written": 500}, 500, 50.0).endswith("(100.0%) 10 rec/s failed 0 "
                                                               "retried 0 throttled 0 ETA 0m00s")
    # an estimate that was too low: no negative ETA
    over = progress_line({"written": 600}, 500, 60.0)
    assert "(120.0%)" in over and over.endswith("ETA ?")


def test_progress_line_unknown_total():
    assert progress_line({"written": 5}, 0, 1.0).startswith("5/0 (100.0%) 5 rec/s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (0, "0m00s"), (59.4, "0m59s"), (59.6, "1m00s"), (3599, "59m59s"),
     (3600, "1h00m00s"), (90061, "25h01m01s")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_bar():
    assert _bar({"written": 0}, 100, width=10) == "[..........]"
    assert _bar({"written": 45, "failed": 5}, 100, width=10) == "[#####.....]"
    assert _bar({"written": 100}, 100, width=10) == "[##########]"
    assert _bar({}, 0, width=4) == "[####]"


# ---- emitting ---------------------------------------------------------------------------------


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_non_tty_logs_a_line_per_interval_and_a_final_one(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    feed = Feed(polls_wanted=3)
    stream = io.StringIO()
    with Progress(feed.snapshot, total=1000, interval=INTERVAL, stream=stream, clock=feed.clock):
        assert feed.ready.wait(10), "the progress thread never polled"
    messages = _messages(caplog)
    assert stream.getvalue() == ""  # nothing written to a non-terminal stream
    assert len(messages) == feed.polls >= 4  # >= 3 on the interval, then the final one
    assert all(m.startswith("progress ") for m in messages)
    # every poll advanced 10 s and 100 records: a steady 10 rec/s
    assert messages[0] == ("progress 100/1,000 (10.0%) 10 rec/s failed 0 retried 2 "
                           "throttled 1 ETA 1m30s")
    assert messages[1].startswith("progress 200/1,000 (20.0%) 10 rec/s")
    done = [int(re.match(r"progress (\d+)/", m).group(1)) for m in messages]
    assert done == sorted(done) and len(set(done)) == len(done)
    final = 100 * feed.polls
    assert messages[-1].startswith(f"progress {final:,}/1,000")


def test_final_line_even_when_the_interval_never_elapsed(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    feed = Feed()
    with Progress(feed.snapshot, total=10, interval=60.0, stream=io.StringIO(), clock=feed.clock):
        pass
    assert _messages(caplog) == [
        "progress 100/10 (1000.0%) 10 rec/s failed 0 retried 2 throttled 1 ETA ?"]


def test_leaving_the_context_does_not_wait_for_the_interval():
    feed = Feed()
    progress = Progress(feed.snapshot, total=10, interval=60.0, stream=io.StringIO(),
                        clock=feed.clock)
    with progress:
        pass
    assert not progress._thread.is_alive()  # stopped at once, not after 60 s


def test_tty_writes_carriage_return_bars_and_ends_with_a_newline(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    feed = Feed(polls_wanted=3)
    stream = TtyStream()
    with Progress(feed.snapshot, total=1000, interval=INTERVAL, stream=stream, clock=feed.clock):
        assert feed.ready.wait(10), "the progress thread never polled"
    out = stream.getvalue()
    assert _messages(caplog) == []  # a terminal gets the bar, not log lines
    assert out.startswith("\r[")
    assert out.endswith("\n") and out.count("\n") == 1
    frames = out.rstrip("\n").replace(CLEAR_TO_END, "").split("\r")[1:]
    assert len(frames) == feed.polls >= 4
    assert frames[0] == ("[##......................] 100/1,000 (10.0%) 10 rec/s failed 0 "
                         "retried 2 throttled 1 ETA 1m30s")
    for frame in frames:
        assert re.match(r"^\[[#.]{24}\] \d[\d,]*/1,000 ", frame), frame


def test_tty_final_frame_with_a_full_bar():
    stream = TtyStream()
    with Progress(lambda: {"written": 50}, total=50, interval=60.0, stream=stream,
                  clock=iter([0.0, 5.0]).__next__):
        pass
    assert stream.getvalue() == ("\r[########################] 50/50 (100.0%) 10 rec/s "
                                 "failed 0 retried 0 throttled 0 ETA 0m00s\x1b[K\n")


def test_a_failing_snapshot_does_not_kill_the_thread(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    feed = Feed(polls_wanted=2, fail_first=3)
    progress = Progress(feed.snapshot, total=1000, interval=INTERVAL, stream=io.StringIO(),
                        clock=feed.clock)
    with progress:
        assert feed.ready.wait(10), "the progress thread stopped after a failing snapshot"
        assert progress._thread.is_alive()
    messages = _messages(caplog)
    # the three failing polls emitted nothing; the ones after them did
    assert len(messages) == feed.polls - 3 >= 3
    assert messages[0].startswith("progress 400/1,000")


def test_a_snapshot_failing_at_the_end_does_not_raise(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    def broken() -> dict[str, int]:
        raise RuntimeError("gone")

    with Progress(broken, total=10, interval=INTERVAL, stream=io.StringIO()):
        pass
    failures = [r for r in caplog.records if r.name == LOGGER]
    assert failures and all(r.levelno == logging.DEBUG and r.exc_info for r in failures)


CLEAR_TO_END = "\x1b[K"


def _render(out: str) -> list[str]:
    """What a terminal shows after `out`: `\\r` returns to column 0 without clearing;
    ESC[K clears from the cursor to the end of the line."""
    lines, line, col = [], [], 0
    out = out.replace(CLEAR_TO_END, "\0")
    for ch in out:
        if ch == "\0":
            del line[col:]
        elif ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    if line:
        lines.append("".join(line))
    return lines


def test_tty_shorter_frame_leaves_no_stray_characters():
    calls = {"n": 0}

    def snapshot() -> dict[str, int]:
        calls["n"] += 1
        return {"written": 99 if calls["n"] == 1 else 102}

    def clock() -> float:  # 1 rec/s: ETA 3601 s, then 3598 s
        return 0.0 if calls["n"] == 0 else (99.0 if calls["n"] == 1 else 102.0)

    first = threading.Event()
    stream = TtyStream()
    original_write = stream.write

    def write(text: str) -> int:
        first.set()
        return original_write(text)

    stream.write = write  # type: ignore[method-assign]
    with Progress(snapshot, total=3700, interval=INTERVAL, stream=stream, clock=clock):
        assert first.wait(10)
    out = stream.getvalue()
    last_frame = out.rstrip("\n").split("\r")[-1]
    assert last_frame.endswith("ETA 59m58s" + CLEAR_TO_END)
    assert _render(out) == [last_frame.removesuffix(CLEAR_TO_END)]


def test_a_named_phase_labels_its_lines_and_its_bar(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Progress(lambda: {"written": 5}, total=10, interval=60.0, stream=io.StringIO(),
                  clock=iter([0.0, 1.0]).__next__, phase="read online"):
        pass
    assert _messages(caplog) == [
        "read online 5/10 (50.0%) 5 rec/s failed 0 retried 0 throttled 0 ETA 0m01s"]
    stream = TtyStream()
    with Progress(lambda: {"written": 5}, total=10, interval=60.0, stream=stream,
                  clock=iter([0.0, 1.0]).__next__, phase="clear"):
        pass
    assert stream.getvalue().startswith("\rclear: [############............] 5/10")


# ---- live counts from running tasks ---------------------------------------------------------


def test_live_feed_adds_running_tasks_until_their_last_datagram():
    from fsmigrate.progress import LiveFeed, LiveReporter

    feed = LiveFeed("127.0.0.1")
    try:
        a = LiveReporter(feed.address, "7", interval=0.0)
        b = LiveReporter(feed.address, "8", interval=0.0)
        a.report({"written": 40, "failed": 1, "outage_seconds": 0})
        b.report({"written": 10, "failed": 0, "outage_seconds": 12.5})
        finished = {"written": 100, "failed": 2}
        deadline = time.monotonic() + 5
        while feed.add_to(finished)["written"] != 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert feed.add_to(finished) == {"written": 150, "failed": 3, "outage_seconds": 12.5}
        a.report({}, done=True)  # task 7 ended: its accumulators carry it now
        a.report({"written": 99})  # a late datagram of an ended task is ignored
        while feed.add_to(finished)["written"] != 110 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert feed.add_to(finished)["written"] == 110
    finally:
        feed.close()


def test_live_feed_counts_a_retried_task_once():
    """A task whose Python worker died never sends its last datagram; Spark's next attempt of
    the partition replaces its counts instead of adding to them."""
    from fsmigrate.progress import LiveFeed, LiveReporter

    feed = LiveFeed("127.0.0.1")
    try:
        dead = LiveReporter(feed.address, "3", interval=0.0, attempt=0)
        retry = LiveReporter(feed.address, "3", interval=0.0, attempt=1)

        def settle(written: int) -> int:
            deadline = time.monotonic() + 5
            while feed.add_to({"written": 0})["written"] != written \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            return feed.add_to({"written": 0})["written"]

        dead.report({"written": 70})
        assert settle(70) == 70
        retry.report({"written": 20})  # the same records again, from the start
        assert settle(20) == 20
        dead.report({"written": 80})  # a late datagram of the dead attempt: ignored
        retry.report({"written": 30})
        assert settle(30) == 30
        retry.report({}, done=True)
        assert settle(0) == 0
    finally:
        feed.close()


def test_reporter_without_a_feed_or_too_soon_sends_nothing():
    from fsmigrate.progress import LiveReporter

    LiveReporter(None, "1").report({"written": 1})  # no feed: a no-op, never raises
    clock = iter([0.0, 0.0, 0.1, 0.6, 0.6]).__next__
    sent = []
    r = LiveReporter(("127.0.0.1", 9), "1", interval=0.5, clock=clock)
    r._sock = type("S", (), {"sendto": lambda self, data, addr: sent.append(data)})()
    r.report({"written": 1})
    r.report({"written": 2})  # 0.1 s later: skipped
    r.report({"written": 3})
    assert len(sent) == 2


def test_progress_line_shows_the_current_pace_and_an_outage():
    line = progress_line({"written": 100, "outage_seconds": 42}, 1_000, 10.0, pace=3.0)
    assert "10 rec/s (now 3) " in line
    assert "target down 0m42s: waiting it out" in line
