"""End to end: interrupted and partly failed runs of the real `spark-submit job/migrate.py`
against the emulator: SIGKILL mid-run then --resume, --retry-failures, --resume-from. The
expected target state is computed here from the source's Parquet files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from jobtools import (
    ROOT,
    create_group,
    expected_latest,
    job_command,
    job_env,
    list_online_ids,
    mismatches,
    offline_rows,
    online_state,
    op_total,
    output,
    report_of,
    run_dir,
    spark_submit,
    write_conf,
)
from seed_data import SeedSpec, feature_definitions, feature_types, seed

SOURCE = "e2e-resume-src"
SPEC = SeedSpec(group=SOURCE, records=4000, versions=2, stores="offline", seed=31)
TYPES = dict(feature_types(SPEC))
LATENCY_MS = 1000  # per runtime call: the killed run's write phase takes ~30 s


@pytest.fixture(scope="module")
def source(emulator):
    summary = seed(SPEC, endpoint_url=emulator.url, local_root=emulator.data_dir, replace=True)
    return summary, expected_latest(offline_rows(summary.data_dir))


# ---- helpers -----------------------------------------------------------------------------------

def checkpoints_of(emulator, run_id: str) -> dict[int, dict]:
    folder = run_dir(emulator, run_id) / "checkpoints"
    return {int(p.stem.split("-")[1]): json.loads(p.read_text())
            for p in folder.glob("part-*.json")}


def records_received(emulator) -> int:
    """Records the emulator accepted through BatchWriteRecord and PutRecord, all groups."""
    return op_total(emulator, ("BatchWriteRecord", "PutRecord"), key="records")


def start_job(args: list[str], log_path: Path) -> subprocess.Popen:
    """`jobtools.spark_submit`'s command, started in its own session (process group)."""
    with open(log_path, "w") as log:
        return subprocess.Popen(job_command(args), cwd=ROOT, env=job_env(), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_until_quiet(emulator, quiet_s: float, timeout_s: float = 60) -> None:
    """Until the emulator has accepted no record for `quiet_s` (requests that were in flight
    at a kill still complete inside the emulator)."""
    deadline = time.monotonic() + timeout_s
    last, since = records_received(emulator), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "writes did not stop after the kill"
        time.sleep(0.25)
        now = records_received(emulator)
        if now != last:
            last, since = now, time.monotonic()


# ---- tests -------------------------------------------------------------------------------------

def test_kill_and_resume(source, emulator, sm, fsr, tmp_path):
    _, expected = source
    target, run_id = "e2e-resume-tgt", "killed"
    create_group(sm, target, feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    args = ["--conf", str(conf), "--source", SOURCE, "--target", target]
    checkpoint_dir = run_dir(emulator, run_id) / "checkpoints"
    received_at_start = records_received(emulator)
    log_path = tmp_path / "killed.log"
    emulator.faults(latency_ms=LATENCY_MS)
    try:
        proc = start_job([*args, "--run-id", run_id], log_path)
        try:
            deadline = time.monotonic() + 240
            while not list(checkpoint_dir.glob("part-*.json")):
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        wait_until_quiet(emulator, quiet_s=3 * LATENCY_MS / 1000)
    finally:
        emulator.faults()
    assert proc.returncode == -signal.SIGKILL
    done_at_kill = checkpoints_of(emulator, run_id)
    written_before_kill = records_received(emulator) - received_at_start
    assert not (run_dir(emulator, run_id) / "report.json").exists()
    assert 0 < written_before_kill < len(expected)  # really interrupted mid-write

    done = spark_submit(["--conf", str(conf), "--resume", run_id])  # the plan names the groups
    assert done.returncode == 0, output(done)[-3000:]
    received_total = records_received(emulator) - received_at_start
    report = report_of(emulator, run_id)
    selected = report["selected"]
    assert selected == len(expected)
    assert report["written"] == selected and report["failed"] == 0
    assert report["partitions_done_before"] == len(done_at_kill)
    assert report["partitions_finished"] == report["partitions"]
    problems = mismatches(online_state(fsr, target), expected, TYPES)
    resent = received_total - selected

    print(f"\nkill-and-resume: {written_before_kill} records written before the kill "
          f"({len(done_at_kill)} of {report['partitions']} partitions checkpointed), "
          f"{resent} re-sent after it, {len(problems)} final mismatches")
    assert problems == []
    # The resume wrote exactly the partitions without a checkpoint...
    done_written = sum(c["written"] for c in done_at_kill.values())
    assert report["this_run"]["written"] == selected - done_written
    # ...so only records of partitions in flight at the kill (≤ 2 tasks: local[2]) went twice.
    everything = checkpoints_of(emulator, run_id)
    sizes = sorted((c["written"] + c["failed"] for p, c in everything.items()
                    if p not in done_at_kill), reverse=True)
    assert 0 <= resent <= sum(sizes[:2])
    assert resent == written_before_kill - done_written


def test_retry_failures(source, emulator, sm, fsr, tmp_path):
    _, expected = source
    target = "e2e-retry-tgt"
    create_group(sm, target, feature_definitions(SPEC))
    # a one-second retry budget: a record the target keeps handing back unprocessed for a
    # second is given up (a target that answers is not down: the job goes on)
    conf = write_conf(tmp_path / "c.yaml", emulator, retry_budget_seconds=1)
    args = ["--conf", str(conf), "--source", SOURCE, "--target", target]
    emulator.faults(unprocessed_rate=0.7, seed=5)
    try:
        first = spark_submit([*args, "--run-id", "retry-first"])
    finally:
        emulator.faults()
    assert first.returncode == 1, output(first)[-3000:]
    failures = [json.loads(line)
                for path in sorted((run_dir(emulator, "retry-first") / "failures").glob("*.jsonl"))
                for line in path.read_text().splitlines() if line.strip()]
    failed_ids = {f["record"]["record_id"] for f in failures}
    assert len(failed_ids) == len(failures) and 0 < len(failures) < len(expected)
    for f in failures:
        assert f["error_code"] == "Unprocessed", f
        assert f["attempts"] >= 2 and f["message"], f
    report = report_of(emulator, "retry-first")
    assert report["failed"] == len(failures) and report["exit_code"] == 1
    assert report["written"] + report["failed"] == report["selected"] == len(expected)
    assert list_online_ids(fsr, target) == set(expected) - failed_ids
    # the failure files hold the records as they were to be sent
    sample = failures[0]["record"]
    assert mismatches({sample["record_id"]: {k: v for k, v in sample.items() if v is not None}},
                      {sample["record_id"]: expected[sample["record_id"]]}, TYPES) == []

    received = records_received(emulator)
    second = spark_submit(["--conf", str(conf), "--retry-failures", "retry-first",
                           "--run-id", "retry-second"])
    assert second.returncode == 0, output(second)[-3000:]
    assert records_received(emulator) - received == len(failures)  # exactly those, once
    assert mismatches(online_state(fsr, target), expected, TYPES) == []
    retry_report = report_of(emulator, "retry-second")
    assert retry_report["selected"] == retry_report["written"] == len(failures)
    assert retry_report["failed"] == 0 and retry_report["exit_code"] == 0
    assert report_of(emulator, "retry-first")["failed"] == len(failures)  # old run untouched


def test_resume_from_uses_string_order_of_ids(emulator, sm, fsr, tmp_path):
    spec = SeedSpec(group="e2e-rfrom-src", records=1200, versions=2, stores="offline",
                    id_type="Integral", seed=41)
    types = dict(feature_types(spec))
    summary = seed(spec, endpoint_url=emulator.url, local_root=emulator.data_dir, replace=True)
    expected = {str(rid): row
                for rid, row in expected_latest(offline_rows(summary.data_dir)).items()}
    cut = "5"  # as strings: "10" < "5" < "50" < "500" < "6"; numerically 5 < 10
    want = {rid: row for rid, row in expected.items() if rid > cut}
    assert "1000" not in want and "6" in want and 0 < len(want) < len(expected)
    target = "e2e-rfrom-tgt"
    create_group(sm, target, feature_definitions(spec))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    done = spark_submit(["--conf", str(conf), "--source", spec.group, "--target", target,
                         "--resume-from", cut, "--run-id", "rfrom"])
    assert done.returncode == 0, output(done)[-3000:]
    got = online_state(fsr, target)
    assert cut not in got
    assert mismatches(got, want, types) == []
    report = report_of(emulator, "rfrom")
    assert report["selected"] == report["written"] == len(want)
    assert report["before_resume_from"] == len(expected) - len(want)
