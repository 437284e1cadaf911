"""The writer alone: ``write_partition`` in one plain Python process (no Spark), CPU per record.

Prepares N rows shaped as the job hands them to the fast path, ``(record_id, entry JSON)`` with
22 features per entry (the values of ``bench.py``'s naive rows, ~1.4 KB each; with
``--sender boto3`` the 22 values, as the job gives the boto3 path), starts the
emulator in sink mode (writes validated, then dropped), creates a target group, and writes the
rows with :func:`fsmigrate.write.write_partition` as a job's task would (batch_size 100, 4
threads, BatchWriteRecord). Prints, per run and as medians of ``--runs``: this process's CPU µs
per record (``time.process_time``: every thread), wall records/s, and the emulator's CPU µs per
record. ``--profile`` adds one more run under cProfile (CPU time of every writer thread) and
prints it split into signing, HTTP send/recv, response parsing, JSON/body building and row
checks, and the rest (batching, threads, pacing, retries), plus the top entries by self time.

    .venv/bin/python scripts/bench_writer.py                    # 100,000 records, 3 runs
    .venv/bin/python scripts/bench_writer.py --records 20000 --profile
    .venv/bin/python scripts/bench_writer.py --url http://127.0.0.1:PORT   # a running emulator

``--ab DIR DIR ...`` alternates checkouts' ``job/`` directories in the same window (A B A B ...),
each run in a fresh process, so a change is compared with its base under the same load.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

GROUP = "bench-writer"


def prepared_rows(n: int, group: str, sender: str) -> tuple[tuple[str, ...], list[tuple]]:
    """(columns, rows) as write_job.py hands them to a task: with the fast sender
    ``(record_id, entry JSON)`` as Spark's ``to_json`` builds it (compact, no nulls); with
    boto3 the 22 feature values."""
    from bench import naive_records
    from fsmigrate.encode import ENTRY
    from seed_data import SeedSpec

    records = naive_records(SeedSpec(), n)
    if sender == "boto3":
        columns = tuple(fv["FeatureName"] for fv in records[0])
        return columns, [tuple(fv["ValueAsString"] for fv in record) for record in records]
    return ("record_id", ENTRY), [
        (record[0]["ValueAsString"], json.dumps({"FeatureGroupName": group, "Record": record},
                                                separators=(",", ":"), ensure_ascii=False))
        for record in records]


def settings(url: str, group: str, sender: str, workers: int, batch: int,
             columns: tuple[str, ...]):
    from fsmigrate.aws import AwsSettings
    from fsmigrate.write import WriterSettings

    # what write_job.py gives a task (no TTL column, no target stores)
    return WriterSettings(aws=AwsSettings(region="us-east-1", endpoint_url=url, sender=sender),
                          target_group=group, columns=columns, record_id_name="record_id",
                          batch_size=batch, max_workers=workers, write_api="batch",
                          max_attempts=None, retry_budget_s=300.0)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(rows, ws, emulator_pid: int | None) -> dict[str, float]:
    from fsmigrate.write import write_partition

    calls = [0]
    emu0 = cpu_seconds(emulator_pid) if emulator_pid else 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = write_partition(iter(rows), ws, on_batch=lambda total: calls.__setitem__(0, 1))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    emu = cpu_seconds(emulator_pid) - emu0 if emulator_pid else float("nan")
    if result.written != len(rows) or result.failed:
        raise SystemExit(f"written {result.written} of {len(rows)}, "
                         f"{len(result.failed)} failed: {result.failed[:1]}")
    n = len(rows)
    return {"cpu_us": 1e6 * cpu / n, "rate": n / wall, "emulator_cpu_us": 1e6 * emu / n,
            "api_calls": result.api_calls, "retried": result.retried}


# ---- profile: every thread, self time grouped ----------------------------------------------

# Phases of the fast path, from the cumulative time of the functions that do them (summed over
# the threads); what no phase covers is the writer loop: batching, threads, pacing, retries.
PHASES = {  # phase: ((file name, function), ...) added, then (...) subtracted
    "signing (SigV4Auth)": ((("fast_http.py", "_sign"),), ()),
    "HTTP send/recv (head, socket)": ((("fast_http.py", "send_body"),),
                                      (("fast_http.py", "_sign"), ("fast_http.py", "_parse"))),
    "response parsing": ((("fast_http.py", "_parse"),), ()),
    "JSON/body building, row checks": (
        (("fast_http.py", "batch_write_record"), ("write.py", "write_rows")),
        (("fast_http.py", "send_body"), ("write.py", "batch_chunk"))),
}
REST = "batching/threads/pacing/retries"


def phases(raw: dict) -> dict[str, float]:
    """{phase: CPU seconds} from pstats' raw stats; REST is the total less the phases."""
    cum: dict[tuple[str, str], float] = {}
    for (filename, _, func), v in raw.items():
        key = (Path(filename).name, func)
        cum[key] = cum.get(key, 0.0) + v[3]
    out = {name: sum(cum.get(k, 0.0) for k in plus) - sum(cum.get(k, 0.0) for k in minus)
           for name, (plus, minus) in PHASES.items()}
    out[REST] = sum(v[2] for v in raw.values()) - sum(out.values())
    return out


class ThreadProfiles:
    """One cProfile per thread: the main one and every thread started while active."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start(self, *_args) -> None:
        # CPU time of the thread, not wall time: waits on sockets and locks cost nothing
        prof = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(prof)
        prof.enable()  # replaces this hook for the thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start)
        self._start()
        return self

    def __exit__(self, *exc) -> None:
        threading.setprofile(None)
        self.profiles[0].disable()

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self.profiles[0], stream=io.StringIO())
        for prof in self.profiles[1:]:
            stats.add(prof)
        return stats


def report_profile(stats: pstats.Stats, n: int, top: int) -> None:
    raw = stats.stats  # {key: (cc, nc, tt, ct, callers)}
    total = sum(v[2] for v in raw.values())
    print(f"\nprofile (CPU time of every thread, cProfile's overhead included: compare the "
          f"shares, not the sum): {1e6 * total / n:.1f} µs/record")
    for name, seconds in phases(raw).items():
        print(f"  {name:34s} {1e6 * seconds / n:7.1f} µs/rec  {100 * seconds / total:5.1f} %")
    print(f"\ntop {top} by self time (µs/record, calls/record):")
    for (filename, line, func), v in sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]:
        where = f"{Path(filename).name}:{line}" if filename != "~" else ""
        print(f"  {1e6 * v[2] / n:7.2f}  {v[1] / n:6.2f}  {func} {where}")


# ---- A/B ------------------------------------------------------------------------------------

def ab(args, url: str) -> int:
    """Alternate runs of job/ directories (A B C ...), each run in a fresh process; medians."""
    sides = {chr(ord("A") + i): Path(job).resolve() for i, job in enumerate(args.ab)}
    got: dict[str, list[dict]] = {side: [] for side in sides}
    for i in range(args.runs):
        for side, job in sides.items():
            cmd = [sys.executable, __file__, "--url", url, "--records", str(args.records),
                   "--runs", "1", "--workers", str(args.workers), "--batch", str(args.batch),
                   "--sender", args.sender, "--json", "--emulator-pid", str(args.emulator_pid)]
            env = dict(os.environ, PYTHONPATH=str(job))
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            got[side].append(run)
            print(f"  {side} run {i + 1}: {run['cpu_us']:.1f} µs/rec CPU, "
                  f"{run['rate']:,.0f} rec/s, emulator {run['emulator_cpu_us']:.1f} µs/rec, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    for side, job in sides.items():
        print(f"{side} {job}: median {statistics.median(r['cpu_us'] for r in got[side]):.1f} "
              f"µs/rec CPU, {statistics.median(r['rate'] for r in got[side]):,.0f} rec/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=4, help="threads (migration.max_workers)")
    p.add_argument("--batch", type=int, default=100, help="rows per thread task (batch_size)")
    p.add_argument("--sender", default="fast", choices=("fast", "boto3"))
    p.add_argument("--profile", action="store_true", help="one more run under cProfile")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--url", help="a running emulator (default: start one with --sink)")
    p.add_argument("--emulator-pid", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ab", nargs="+", metavar="JOB_DIR",
                   help="alternate job/ directories (PYTHONPATH: A B ... A B ...), --runs each")
    args = p.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

    emu = None
    if args.url is None:
        import emulator_process

        emu = emulator_process.start(tempfile.mkdtemp(prefix="bench-writer-"),
                                     extra_args=["--sink"])
        args.url, args.emulator_pid = emu.url, emu.proc.pid
    try:
        ensure_group(args.url)
        if args.ab:
            return ab(args, args.url)
        return measure(args)
    finally:
        if emu is not None:
            emu.stop()


def ensure_group(url: str) -> None:
    """The target group with the seed's 22 features (kept if it exists: a running emulator)."""
    from bench import create_target
    from botocore.exceptions import ClientError
    from seed_data import SeedSpec

    try:
        create_target(url, SeedSpec(), GROUP)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUse":
            raise


def measure(args) -> int:
    columns, rows = prepared_rows(args.records, GROUP, args.sender)
    ws = settings(args.url, GROUP, args.sender, args.workers, args.batch, columns)
    pid = args.emulator_pid or None
    one_run(rows[:500], ws, pid)  # models loaded, connections open
    runs = [one_run(rows, ws, pid) for _ in range(args.runs)]
    if args.json:
        print(json.dumps(runs[-1] if len(runs) == 1 else runs))
        return 0
    for i, run in enumerate(runs, 1):
        print(f"run {i}: {run['cpu_us']:.1f} µs/rec CPU, {run['rate']:,.0f} rec/s, emulator "
              f"{run['emulator_cpu_us']:.1f} µs/rec, {run['api_calls']} calls")
    print(f"{args.records:,} records × 22 features, {args.workers} threads, batch_size "
          f"{args.batch}, sender {args.sender}; medians of {args.runs}: "
          f"{statistics.median(r['cpu_us'] for r in runs):.1f} µs/rec writer CPU, "
          f"{statistics.median(r['rate'] for r in runs):,.0f} rec/s, emulator "
          f"{statistics.median(r['emulator_cpu_us'] for r in runs):.1f} µs/rec; "
          f"load {os.getloadavg()[0]:.2f}")
    if args.profile:
        with ThreadProfiles() as profiles:
            one_run(rows, ws, pid)
        report_profile(profiles.stats(), len(rows), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
