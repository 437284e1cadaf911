"""Injected failures for runtime requests, set through ``POST /_emulator/faults``.

``check()`` runs once per runtime request before the operation (the control plane is never
faulted); ``draw(rate_key)`` decides, per batch entry, what BatchWriteRecord/BatchGetRecord
hand back as unprocessed. One seeded RNG makes a run repeatable.
"""

from __future__ import annotations

import random
import threading
import time

from .exceptions import ApiError

KEYS = ("throttle_tps", "error_rate", "latency_ms", "outage_seconds", "unprocessed_rate",
        "unprocessed_get_rate", "reset_rate", "throttle_style", "seed")
RATES = ("error_rate", "unprocessed_rate", "unprocessed_get_rate", "reset_rate")  # in [0, 1]
# How a throttled request is answered: what SageMaker's runtime sends (400 ThrottlingException)
# and what API Gateway-fronted AWS services send (429 TooManyRequestsException).
THROTTLE_STYLES = {
    "ThrottlingException": ("ThrottlingException", "Rate exceeded", 400),
    "429": ("TooManyRequestsException", "Too Many Requests", 429),
}
TEXT_KEYS = ("seed", "throttle_style")


class Reset(ApiError):
    """Not an answer: the server drops the connection (a TCP reset) instead of responding."""

    def __init__(self) -> None:
        super().__init__("ConnectionReset", "connection reset (injected)", 0)


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.configure({})

    def configure(self, cfg: dict) -> dict:
        """Replace every setting (absent keys are off); ValueError names a bad one."""
        unknown = set(cfg) - set(KEYS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")

        def num(key: str) -> float:
            val = cfg.get(key)
            if val is None:
                return 0.0
            hi = 1.0 if key in RATES else None
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0.0 or (
                    hi is not None and val > hi):
                raise ValueError(f"{key} must be a number in [0.0, {hi if hi else 'inf'}]")
            return float(val)

        settings = {key: num(key) for key in KEYS if key not in TEXT_KEYS}
        style = cfg.get("throttle_style") or "ThrottlingException"
        if style not in THROTTLE_STYLES:
            raise ValueError(f"throttle_style must be one of {sorted(THROTTLE_STYLES)}")
        with self.lock:
            self.settings = settings
            self.throttle = THROTTLE_STYLES[style]
            self.style = style
            self.seed = cfg.get("seed")
            self.rng = random.Random(self.seed)
            self.outage_until = time.monotonic() + settings["outage_seconds"]
            self.tokens = max(settings["throttle_tps"], 1.0)
            self.refilled = time.monotonic()
        return self.describe()

    def describe(self) -> dict:
        with self.lock:
            out = {k: v for k, v in self.settings.items() if v}
            if self.seed is not None:
                out["seed"] = self.seed
            if self.style != "ThrottlingException":
                out["throttle_style"] = self.style
            left = self.outage_until - time.monotonic()
            if self.settings["outage_seconds"]:
                out["outage_remaining_seconds"] = round(max(left, 0.0), 3)
            return out

    def latency(self) -> float:
        return self.settings["latency_ms"] / 1000.0

    def check(self) -> ApiError | None:
        """The injected failure for one runtime request, if any."""
        s = self.settings
        with self.lock:
            now = time.monotonic()
            if s["outage_seconds"] and now < self.outage_until:
                return ApiError("ServiceUnavailable", "Service unavailable (injected outage)", 503)
            tps = s["throttle_tps"]
            if tps:  # a token bucket: a burst of max(tps, 1), then tps per second
                cap = max(tps, 1.0)
                self.tokens = min(cap, self.tokens + (now - self.refilled) * tps)
                self.refilled = now
                if self.tokens < 1.0:
                    return ApiError(*self.throttle)
                self.tokens -= 1.0
            if s["reset_rate"] and self.rng.random() < s["reset_rate"]:
                return Reset()
            rate = s["error_rate"]
            if rate and self.rng.random() < rate:
                if self.rng.random() < 0.5:
                    return ApiError("InternalFailure", "Internal failure (injected)", 500)
                return ApiError("ServiceUnavailable", "Service unavailable (injected)", 503)
        return None

    def draw(self, rate_key: str) -> bool:
        rate = self.settings[rate_key]
        if not rate:
            return False
        with self.lock:
            return self.rng.random() < rate
