"""Run the local Feature Store emulator (local_feature_store.py) as a subprocess.

    from emulator_process import start
    with start("/tmp/fs-data") as emu:
        client = boto3.client("sagemaker-featurestore-runtime", endpoint_url=emu.url, ...)
        ...
        emu.flush()

Admin calls (flush, stats, faults, reset) go over HTTP with urllib; no AWS signing needed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().with_name("local_feature_store.py")
READY_RE = re.compile(r"ready on (http://\S+)")


class EmulatorError(RuntimeError):
    pass


class EmulatorProcess:
    """A running emulator. Use ``stop()`` or a ``with`` block to end it."""

    def __init__(self, proc: subprocess.Popen, url: str, data_dir: Path, output: deque):
        self.proc = proc
        self.url = url
        self.data_dir = data_dir
        self._output = output

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def output(self) -> str:
        """The emulator's recent stdout/stderr lines."""
        return "".join(self._output)

    def _call(self, method: str, path: str, payload: Any = None, timeout: float = 60.0):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"{method} {path} -> {exc.code}: {exc.read().decode()}") from None

    def flush(self) -> dict:
        """Write buffered offline rows to Parquet now; returns {"files": n, "rows": m}."""
        return self._call("POST", "/_emulator/flush")

    def stats(self) -> dict:
        return self._call("GET", "/_emulator/stats")

    def faults(self, **settings) -> dict:
        """Replace the fault settings (throttle_tps, error_rate, latency_ms, outage_seconds,
        unprocessed_rate, unprocessed_get_rate, reset_rate, throttle_style, seed); no arguments
        clears them all."""
        return self._call("POST", "/_emulator/faults", settings)

    def offline_status(self, name: str, status: str, reason: str | None = None) -> dict:
        """Set a group's OfflineStoreStatus (Active | Blocked | Disabled) as
        DescribeFeatureGroup shows it."""
        body = {"FeatureGroupName": name, "OfflineStoreStatus": status}
        if reason:
            body["BlockedReason"] = reason
        return self._call("POST", "/_emulator/offline-status", body)

    def reset(self) -> dict:
        """Drop all groups, records, buffered rows, faults and stats; delete written files."""
        return self._call("POST", "/_emulator/reset")

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the emulator flushes, then exits); SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmulatorProcess(url={self.url!r}, data_dir={str(self.data_dir)!r})"


def start(data_dir, port: int = 0, python: str = sys.executable, extra_args=(),
          host: str = "127.0.0.1", timeout: float = 20.0) -> EmulatorProcess:
    """Start the emulator and wait for its ``ready`` line."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [python, str(SCRIPT), "--host", host, "--port", str(port), "--data-dir",
           str(data_dir), *map(str, extra_args)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, env=env)
    output: deque[str] = deque(maxlen=200)
    found: dict[str, str] = {}
    ready = threading.Event()

    def pump() -> None:  # keeps draining so the emulator never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if not ready.is_set():
                m = READY_RE.search(line)
                if m:
                    found["url"] = m.group(1)
                    ready.set()
        ready.set()

    threading.Thread(target=pump, name="emulator-output", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    if "url" not in found:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        time.sleep(0.05)
        raise EmulatorError(f"emulator did not become ready (exit code {proc.returncode}):\n"
                            + "".join(output))
    return EmulatorProcess(proc, found["url"], data_dir, output)
