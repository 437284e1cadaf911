"""Counters per operation for ``GET /_emulator/stats`` (requests, records, errors by code),
and who called: the access key id of each request's SigV4 credential and whether it came with
a session token (``callers``). Observation only: like AWS's own front end the emulator does not
authenticate (AWS checks the signature and the caller's permissions; the emulator accepts any
signed request, as before). No secret is ever seen: the Authorization header carries only the
key id and a signature, and of the X-Amz-Security-Token only its presence is recorded."""

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
            self.callers: dict[str, dict] = {}
            self.throttled = 0
            self.started = time.time()

    def _op(self, op: str) -> dict:
        entry = self.ops.get(op)
        if entry is None:
            entry = self.ops[op] = {"requests": 0, "records": 0, "errors": {}}
        return entry

    def request(self, op: str, caller: tuple[str, bool] | None = None) -> None:
        """One request of `op`; `caller`: (access key id, came with a session token)."""
        with self.lock:
            self._op(op)["requests"] += 1
            if caller is not None:
                key_id, token = caller
                entry = self.callers.get(key_id)
                if entry is None:
                    entry = self.callers[key_id] = {"session_token": token, "operations": {}}
                entry["session_token"] = entry["session_token"] or token
                entry["operations"][op] = entry["operations"].get(op, 0) + 1

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
                    "callers": copy.deepcopy(self.callers),
                    "uptime_seconds": round(time.time() - self.started, 3)}
