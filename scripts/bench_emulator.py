"""The emulator's own cost: peak RSS holding N records and CPU per written record.

    python scripts/bench_emulator.py --records 1000000 [--stores online|both] [--sink]

Starts an emulator (scripts/emulator_process.py), creates a 22-feature group (seed_data's
features), writes N distinct records through BatchWriteRecord (25 per call, over two
keep-alive connections) and prints the emulator process's peak and current RSS and its CPU
per record. Numbers only, no assertions. The loader sends unsigned requests with a SigV4-shaped
Authorization header (the emulator reads only the region from it), so the client side stays
cheap; its bodies are built before the clock starts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import emulator_process  # noqa: E402

RECORD_ID, EVENT_TIME = "record_id", "event_time"
# seed_data.VALUE_FEATURES's names, types and value shapes (without importing pyarrow)
VALUE_FEATURES = (
    ("age", "Integral"), ("country", "String"), ("avg_order_value", "Fractional"),
    ("num_orders", "Integral"), ("segment", "String"), ("lifetime_value", "Fractional"),
    ("num_sessions_7d", "Integral"), ("device", "String"), ("churn_score", "Fractional"),
    ("days_since_signup", "Integral"), ("plan", "String"), ("click_rate", "Fractional"),
    ("loyalty_points", "Integral"), ("email_domain", "String"),
    ("discount_ratio", "Fractional"), ("cart_items", "Integral"),
    ("last_category", "String"), ("latitude", "Fractional"), ("zip_code", "Integral"),
    ("longitude", "Fractional"),
)
STRINGS = ("US", "KR", "gold", "platinum", "android", "example.com", "electronics", "pro")
BATCH = 25
AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0")


def _value(rnd: random.Random, ftype: str) -> str:
    if ftype == "Integral":
        return str(rnd.randint(0, 100_000))
    if ftype == "Fractional":
        return f"{rnd.uniform(-180, 50_000):.{rnd.randint(2, 6)}f}"
    return rnd.choice(STRINGS)


def bodies(group: str, n: int, seed: int = 7) -> list[bytes]:
    """BatchWriteRecord bodies of ``n`` distinct records, 25 per call."""
    rnd = random.Random(seed)
    out, entries = [], []
    for i in range(n):
        record = [{"FeatureName": RECORD_ID, "ValueAsString": f"customer-{i:09d}"},
                  {"FeatureName": EVENT_TIME,
                   "ValueAsString": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.123456Z"}]
        record += [{"FeatureName": name, "ValueAsString": _value(rnd, ftype)}
                   for name, ftype in VALUE_FEATURES]
        entries.append({"FeatureGroupName": group, "Record": record})
        if len(entries) == BATCH or i == n - 1:
            out.append(json.dumps({"Entries": entries}, separators=(",", ":")).encode())
            entries = []
    return out


def _post(conn: http.client.HTTPConnection, path: str, body: bytes,
          headers: dict[str, str]) -> dict:
    conn.request("POST", path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path} -> {resp.status}: {data[:300]!r}")
    return json.loads(data or b"{}")


def create_group(url: str, name: str, stores: str) -> None:
    host = url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=60)
    req: dict = {
        "FeatureGroupName": name, "RecordIdentifierFeatureName": RECORD_ID,
        "EventTimeFeatureName": EVENT_TIME,
        "FeatureDefinitions": [{"FeatureName": RECORD_ID, "FeatureType": "String"},
                               {"FeatureName": EVENT_TIME, "FeatureType": "String"}]
        + [{"FeatureName": n, "FeatureType": t} for n, t in VALUE_FEATURES],
        "OnlineStoreConfig": {"EnableOnlineStore": True},
    }
    if stores == "both":
        req["OfflineStoreConfig"] = {"S3StorageConfig": {"S3Uri": "s3://bench/offline"}}
        req["RoleArn"] = "arn:aws:iam::123456789012:role/bench"
    _post(conn, "/", json.dumps(req).encode(),
          {"Authorization": AUTH, "X-Amz-Target": "SageMaker.CreateFeatureGroup",
           "Content-Type": "application/x-amz-json-1.1"})
    conn.close()


def load(url: str, payloads: list[bytes], connections: int = 2) -> int:
    """Send every body; returns how many entries came back with errors."""
    host = url.split("//", 1)[1]
    headers = {"Authorization": AUTH, "Content-Type": "application/json"}
    failed = [0] * connections

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, timeout=120)
        for body in payloads[k::connections]:
            out = _post(conn, "/BatchWriteRecord", body, headers)
            failed[k] += len(out.get("Errors", [])) + len(out.get("UnprocessedEntries", []))
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(failed)


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a process, in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(rest.split()[0])
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--stores", choices=("online", "both"), default="online")
    parser.add_argument("--flush-interval", type=float, default=2.0,
                        help="the emulator's offline flush timer (0: buffer everything)")
    parser.add_argument("--sink", action="store_true",
                        help="start the emulator with --sink (validate, store nothing)")
    parser.add_argument("--connections", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.records < 1:
        print("--records must be >= 1", file=sys.stderr)
        return 2
    extra = ["--flush-interval", args.flush_interval] + (["--sink"] if args.sink else [])
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
        payloads = bodies("bench", args.records)
        with emulator_process.start(Path(tmp) / "data", extra_args=extra) as emu:
            pid = emu.proc.pid
            create_group(emu.url, "bench", args.stores)
            idle = proc_status(pid)
            cpu0, t0 = proc_cpu_s(pid), time.monotonic()
            failed = load(emu.url, payloads, args.connections)
            cpu1, t1 = proc_cpu_s(pid), time.monotonic()
            stats = emu.stats()["offline"]
            mem = proc_status(pid)
    n = args.records
    print(f"records            {n:,} × 22 features ({args.stores} store"
          f"{', sink' if args.sink else ''}); failed entries {failed}")
    print(f"emulator holds     {stats.get('online_records', 0):,} online records, "
          f"{stats.get('buffered_rows', 0):,} buffered offline rows")
    print(f"emulator RSS       idle {idle['VmRSS'] / 1024:,.0f} MB, peak "
          f"{mem['VmHWM'] / 1024:,.0f} MB, now {mem['VmRSS'] / 1024:,.0f} MB "
          f"({(mem['VmRSS'] - idle['VmRSS']) * 1024 / n:,.0f} bytes per record held)")
    print(f"emulator CPU       {(cpu1 - cpu0) * 1e6 / n:,.1f} µs per record "
          f"({cpu1 - cpu0:,.1f} s CPU in {t1 - t0:,.1f} s, {n / (t1 - t0):,.0f} records/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
