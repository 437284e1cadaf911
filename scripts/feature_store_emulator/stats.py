"""Counters per operation for ``GET /_emulator/stats`` (requests, records, errors by code)."""

from __future__ import annotations

import copy
import threading
import time


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.ops: dict[str, dict] = {}
            self.throttled = 0
            self.started = time.time()

    def _op(self, op: str) -> dict:
        entry = self.ops.get(op)
        if entry is None:
            entry = self.ops[op] = {"requests": 0, "records": 0, "errors": {}}
        return entry

    def request(self, op: str) -> None:
        with self.lock:
            self._op(op)["requests"] += 1

    def add(self, op: str, key: str, n: int = 1) -> None:
        if n:
            with self.lock:
                entry = self._op(op)
                entry[key] = entry.get(key, 0) + n

    def error(self, op: str, code: str, n: int = 1) -> None:
        with self.lock:
            errors = self._op(op)["errors"]
            errors[code] = errors.get(code, 0) + n
            if code == "ThrottlingException":
                self.throttled += n

    def snapshot(self) -> dict:
        with self.lock:
            return {"operations": copy.deepcopy(self.ops), "throttled": self.throttled,
                    "uptime_seconds": round(time.time() - self.started, 3)}
