"""The emulator's own endpoints (not AWS, no auth), DESIGN.md §4:
``POST /_emulator/flush``, ``GET /_emulator/stats``, ``GET|POST /_emulator/faults``,
``POST /_emulator/reset``, ``GET /_emulator/health``, ``POST /_emulator/offline-status``
(body ``{"FeatureGroupName", "OfflineStoreStatus", "BlockedReason"?, "Region"?}``)."""

from __future__ import annotations

import json

from .exceptions import ApiError
from .faults import Faults
from .models import FeatureStoreBackend
from .stats import Stats
from .utils import DEFAULT_REGION


def handle(backend: FeatureStoreBackend, faults: Faults, stats: Stats, method: str, path: str,
           body: bytes) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of one admin request."""
    if path == "/_emulator/health":
        return 200, {"status": "ok"}
    if path == "/_emulator/flush" and method == "POST":
        return 200, backend.flush()
    if path == "/_emulator/stats" and method == "GET":
        snap = stats.snapshot()
        snap["offline"] = backend.stats()
        snap["faults"] = faults.describe()
        return 200, snap
    if path == "/_emulator/faults" and method == "GET":
        return 200, faults.describe()
    if path == "/_emulator/faults" and method == "POST":
        try:
            cfg = json.loads(body or b"{}")
            if not isinstance(cfg, dict):
                raise ValueError("faults body must be a JSON object")
            return 200, faults.configure(cfg)
        except ValueError as exc:
            return 400, {"error": str(exc)}
    if path == "/_emulator/offline-status" and method == "POST":
        try:
            req = json.loads(body or b"{}")
            if not isinstance(req, dict):
                raise ValueError("body must be a JSON object")
            return 200, backend.set_offline_status(req.get("Region") or DEFAULT_REGION, req)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        except ApiError as err:
            return err.status, {"error": err.message}
    if path == "/_emulator/reset" and method == "POST":
        faults.configure({})
        out = backend.reset()
        stats.clear()
        return 200, out
    return 404, {"error": f"no admin endpoint {method} {path}"}
