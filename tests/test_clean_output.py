"""A clean run says nothing alarming: the demo's migration (`make demo`: seed an offline-only
source with history, the real spark-submit with the demo's log settings, write an
Online+Offline target) prints no ERROR line and no Java stack trace — e.g. no generated-code
compile failure with a fall-back to interpreted evaluation. One run: it is slow."""

from __future__ import annotations

import re
import subprocess

import demo
from jobtools import ROOT, TEST_JIT, create_group, job_env, output, report_of, write_conf
from seed_data import SeedSpec, feature_definitions, seed

SOURCE, TARGET = "clean-output-source", "clean-output-target"
ALARMING = re.compile(r" ERROR |^\tat |^Exception in thread|^Caused by: |failed to compile|"
                      r"[Ff]alling back|codegen disabled", re.MULTILINE)


def test_demo_run_prints_no_error_and_no_stack_trace(emulator, sm, tmp_path):
    # The demo's source, smaller.
    spec = SeedSpec(group=SOURCE, records=3000, versions=4, stores="offline")
    summary = seed(spec, endpoint_url=emulator.url, local_root=emulator.data_dir, replace=True)
    create_group(sm, TARGET, feature_definitions(spec))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    command = demo.job_command(conf, "--source", SOURCE, "--target", TARGET, "--run-id", "clean")
    assert TEST_JIT not in command  # the JVM options users run, not the tests' faster ones
    done = subprocess.run(command, cwd=ROOT, env=job_env(), capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    text = output(done)
    assert done.returncode == 0, text[-3000:]
    assert ALARMING.findall(text) == [], text[-5000:]
    assert report_of(emulator, "clean")["written"] == summary.records - summary.deleted_records
