"""The fault matrix: the real job (`spark-submit --master local[2]`) against the
emulator under one fault at a time, then checked against the expected state computed
independently from the source's Parquet files.

    python scripts/fault_matrix.py [--records 100000] [--only resets,sigterm]

Scenarios: a throttle storm, 5 % 5xx, connection resets, an outage (30 s by default), a Python
worker killed mid-task (Spark retries the task), the driver killed then --resume, SIGTERM then
--resume. After each: the target equals the expected state (0 lost, 0 extra, 0 altered), every
record not written is in the failure files with its reason, and report.json balances
(selected = written + failed). Prints one table; exit 1 when any scenario fails a check.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

import boto3  # noqa: E402
import emulator_process  # noqa: E402
from jobtools import (  # noqa: E402
    create_group,
    expected_latest,
    job_command,
    job_env,
    mismatches,
    offline_rows,
    online_state,
    op_total,
    run_dir,
    unique,
    write_conf,
)
from seed_data import SeedSpec, feature_definitions, feature_types, seed  # noqa: E402

WRITES = ("BatchWriteRecord", "PutRecord")


@dataclass
class Scenario:
    name: str
    faults: dict = field(default_factory=dict)  # set before the job starts
    during: str | None = None  # outage | kill_worker | kill_driver | sigterm (at a checkpoint)
    resume: bool = False


def scenarios(outage_s: float, throttle_tps: float) -> list[Scenario]:
    return [
        Scenario("throttle storm", {"throttle_tps": throttle_tps}),
        Scenario("5% 5xx", {"error_rate": 0.05, "seed": 1}),
        Scenario("connection resets", {"reset_rate": 0.05, "seed": 2}),
        Scenario(f"{outage_s:.0f} s outage", during="outage"),
        Scenario("Python worker killed", during="kill_worker"),
        Scenario("driver killed, --resume", during="kill_driver", resume=True),
        Scenario("SIGTERM, --resume", during="sigterm", resume=True),
    ]


@dataclass
class Row:
    name: str
    exits: list[int]
    written: int = 0
    failed: int = 0
    resent: int = 0
    mismatches: int = 0
    unexplained: int = 0  # records neither in the target as expected nor in the failure files
    balanced: bool = False
    struck: bool = True  # the fault happened while the job ran (False: it finished first)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.struck and self.exits[-1] in (0, 1) and self.mismatches == 0
                and self.unexplained == 0 and self.balanced)


def _session_pids(sid: int) -> list[tuple[int, int, str]]:
    """(pid, ppid, cmdline) of the processes in session `sid` (the job's tree)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) != sid:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append((int(entry.name), int(fields[1]), cmd))
        except (OSError, ValueError):
            continue
    return out


def _cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return -1


def kill_a_worker(sid: int) -> bool:
    """SIGKILL one Python worker (a child of pyspark's daemon) of the job while it writes: the
    one that used the most CPU over 0.2 s (an idle worker, waiting for a task, uses none)."""
    procs = _session_pids(sid)
    daemons = {pid for pid, _, cmd in procs if "pyspark.daemon" in cmd or "daemon.py" in cmd}
    workers = [pid for pid, ppid, _ in procs if ppid in daemons]
    before = {pid: _cpu_ticks(pid) for pid in workers}
    time.sleep(0.2)
    used = {pid: _cpu_ticks(pid) - ticks for pid, ticks in before.items() if ticks >= 0}
    busy = max(used, key=used.get, default=None)
    if busy is None or used[busy] <= 0:
        return False
    os.kill(busy, signal.SIGKILL)
    return True


def run_job(args: list[str], log: Path) -> subprocess.Popen:
    cmd = job_command(args)  # local[2]: the job itself makes Spark retry a failed task
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=job_env(), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def run_scenario(sc: Scenario, emu, sm, fsr, source: str, spec: SeedSpec, expected: dict,
                 work: Path, outage_s: float, budget_s: float, extra: list[str]) -> Row:
    target = unique("faults-tgt")
    create_group(sm, target, feature_definitions(spec))
    partition_records = max(100, len(expected) // 40)
    conf = write_conf(work / f"{target}.yaml", emu, partition_records=partition_records,
                      retry_budget_seconds=budget_s)
    run_id = target
    args = ["--conf", str(conf), "--source", source, "--target", target, "--run-id", run_id,
            *extra]
    received = op_total(emu, WRITES, "records")
    started = time.monotonic()
    emu.faults(**sc.faults)
    log = work / f"{target}.log"
    struck = sc.during is None  # the fault mid-run happened
    try:
        proc = run_job(args, log)
        if sc.during:
            checkpoints = run_dir(emu, run_id) / "checkpoints"
            while not list(checkpoints.glob("part-*.json")) and proc.poll() is None:
                time.sleep(0.1)
            if sc.during == "kill_worker":
                while not struck and proc.poll() is None:
                    struck = kill_a_worker(proc.pid)
                    time.sleep(0.02)
            elif proc.poll() is None:
                struck = True
                if sc.during == "outage":
                    emu.faults(outage_seconds=outage_s)
                elif sc.during == "kill_driver":
                    os.killpg(proc.pid, signal.SIGKILL)
                elif sc.during == "sigterm":
                    os.killpg(proc.pid, signal.SIGTERM)
        exits = [proc.wait(3600)]
    finally:
        emu.faults()
    if sc.resume:
        time.sleep(2)  # requests in flight at the kill complete inside the emulator
        again = run_job(["--conf", str(conf), "--resume", run_id, *extra],
                        work / f"{target}-2.log")
        exits.append(again.wait(3600))
    row = Row(sc.name, exits, struck=struck, seconds=time.monotonic() - started)
    folder = run_dir(emu, run_id)
    try:
        report = json.loads((folder / "report.json").read_text())
    except OSError:
        return row
    failures = [json.loads(line) for path in sorted((folder / "failures").glob("*.jsonl"))
                for line in path.read_text().splitlines() if line.strip()]
    failed_ids = {f["record"]["record_id"] for f in failures if f.get("error_code")}
    actual = online_state(fsr, target)
    types = dict(feature_types(spec))
    problems = mismatches(actual, {k: v for k, v in expected.items() if k not in failed_ids},
                          types)
    row.written, row.failed = report["written"], report["failed"]
    row.resent = op_total(emu, WRITES, "records") - received - report["written"]
    row.mismatches = len(problems)
    row.unexplained = len(set(expected) - set(actual) - failed_ids)
    row.balanced = (report["selected"] == report["written"] + report["failed"]
                    == len(expected) and report["failed"] == len(failures))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--outage-seconds", type=float, default=30.0)
    p.add_argument("--retry-budget-seconds", type=float, default=300.0)
    p.add_argument("--throttle-tps", type=float, default=200.0,
                   help="requests/s the throttled target takes (BatchWriteRecord: 25 records)")
    p.add_argument("--only", default="", help="comma-separated words of scenario names")
    p.add_argument("--debug", action="store_true", help="run the job with --debug")
    args = p.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        work = Path(tmp)
        emu = emulator_process.start(work / "emulator")
        try:
            session = boto3.session.Session(region_name="us-east-1")
            sm = session.client("sagemaker", endpoint_url=emu.url)
            fsr = session.client("sagemaker-featurestore-runtime", endpoint_url=emu.url)
            spec = SeedSpec(group="faults-src", records=args.records, versions=2,
                            stores="offline", seed=5)
            summary = seed(spec, endpoint_url=emu.url, local_root=emu.data_dir, replace=True)
            expected = expected_latest(offline_rows(summary.data_dir))
            wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]
            rows = []
            for sc in scenarios(args.outage_seconds, args.throttle_tps):
                if wanted and not any(w in sc.name.lower() for w in wanted):
                    continue
                rows.append(run_scenario(sc, emu, sm, fsr, spec.group, spec, expected, work,
                                         args.outage_seconds, args.retry_budget_seconds,
                                         ["--debug"] if args.debug else []))
                print_row(rows[-1], header=len(rows) == 1, records=len(expected))
                if not rows[-1].ok:  # what the job said, before the temporary folder goes
                    for log in sorted(work.glob("*.log"), key=lambda p: p.stat().st_mtime)[-2:]:
                        print(f"--- {log.name} (last lines)")
                        lines = log.read_text().splitlines()
                        causes = [ln for ln in lines if "Exception" in ln or "Error" in ln]
                        print("\n".join(causes[:15] + ["..."] + lines[-10:]))
        finally:
            emu.stop()
    return 0 if all(r.ok for r in rows) else 1


def print_row(r: Row, header: bool, records: int) -> None:
    if header:
        print(f"fault matrix: {records:,} expected records")
        print(f"{'scenario':<26} {'exit':>7} {'written':>9} {'failed':>7} {'re-sent':>8} "
              f"{'mismatch':>8} {'unexpl.':>7} {'balanced':>8} {'seconds':>8}  ok")
    exits = "→".join(str(c) for c in r.exits)
    print(f"{r.name:<26} {exits:>7} {r.written:>9,} {r.failed:>7,} {r.resent:>8,} "
          f"{r.mismatches:>8} {r.unexplained:>7} {str(r.balanced):>8} {r.seconds:>8.1f}  "
          f"{'yes' if r.ok else 'NO'}{'' if r.struck else ' (the job ended before the fault)'}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
