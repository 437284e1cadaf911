"""End to end: SIGTERM (what Glue, EMR and YARN send a cancelled job's process group) stops the
real `spark-submit job/migrate.py` with exit 3, one message and the resume command, no
traceback; `--resume` then finishes with the target in the expected state. The run carries a
recognisable fake secret in its environment, which appears in no output and no run file. Before
the SIGTERM a Python worker is killed mid-task: Spark retries that task and the job goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from fault_matrix import kill_a_worker
from jobtools import (
    ROOT,
    create_group,
    expected_latest,
    job_command,
    job_env,
    mismatches,
    offline_rows,
    online_state,
    output,
    report_of,
    run_dir,
    spark_submit,
    write_conf,
)
from seed_data import SeedSpec, feature_definitions, feature_types, seed

SOURCE = "e2e-signal-src"
SPEC = SeedSpec(group=SOURCE, records=2000, versions=1, stores="offline", seed=43)
TYPES = dict(feature_types(SPEC))
SECRET = "FAKESECRETzz98yy76DoNotLeakThis"


@pytest.fixture(scope="module")
def source(emulator):
    summary = seed(SPEC, endpoint_url=emulator.url, local_root=emulator.data_dir, replace=True)
    return expected_latest(offline_rows(summary.data_dir))


def test_sigterm_stops_with_exit_3_and_resume_finishes_without_leaking_secrets(
        source, emulator, sm, fsr, tmp_path):
    expected = source
    target, run_id = "e2e-signal-tgt", "terminated"
    create_group(sm, target, feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator, partition_records=100)
    args = ["--conf", str(conf), "--source", SOURCE, "--target", target]
    env = job_env({"AWS_SECRET_ACCESS_KEY": SECRET})
    log_path = tmp_path / "terminated.log"
    checkpoints = run_dir(emulator, run_id) / "checkpoints"
    emulator.faults(latency_ms=300)
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(job_command([*args, "--run-id", run_id]), cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while not list(checkpoints.glob("part-*.json")):
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.2)
            # a Python worker killed mid-task fails only its task, which Spark runs again:
            # the job goes on writing (in local mode too), until the SIGTERM
            while not kill_a_worker(proc.pid):
                assert proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.02)
            finished = len(list(checkpoints.glob("part-*.json")))
            while len(list(checkpoints.glob("part-*.json"))) < finished + 2:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.1)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    finally:
        emulator.faults()
    text = log_path.read_text()
    assert proc.returncode == 3, text[-3000:]
    assert f"--resume {run_id}" in text and "terminated (SIGTERM)" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert not (run_dir(emulator, run_id) / "report.json").exists()

    time.sleep(2)  # requests in flight at the signal complete inside the emulator
    done = spark_submit(["--conf", str(conf), "--resume", run_id],
                        env_overrides={"AWS_SECRET_ACCESS_KEY": SECRET})
    assert done.returncode == 0, output(done)[-3000:]
    report = report_of(emulator, run_id)
    assert report["written"] == report["selected"] == len(expected) and report["failed"] == 0
    assert mismatches(online_state(fsr, target), expected, TYPES) == []

    # the secret is nowhere: outputs of both runs, plan, report, checkpoints, failure files
    assert SECRET not in text and SECRET not in output(done)
    for path in run_dir(emulator, run_id).rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
