"""End to end: the real `spark-submit job/migrate.py` against the emulator, Offline ->
Online+Offline. The expected target state is computed here from the source's Parquet files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jobtools import (
    ROOT,
    create_group,
    expected_latest,
    job_env,
    list_online_ids,
    mismatches,
    offline_rows,
    online_state,
    op_total,
    output,
    read_online,
    report_of,
    run_dir,
    spark_submit,
    write_conf,
)
from seed_data import SeedSpec, feature_definitions, feature_types, seed

SOURCE = "e2e-offline-src"
SPEC = SeedSpec(group=SOURCE, records=1500, versions=3, stores="offline", seed=11)
TYPES = dict(feature_types(SPEC))


@pytest.fixture(scope="module")
def source(emulator):
    summary = seed(SPEC, endpoint_url=emulator.url, local_root=emulator.data_dir, replace=True)
    rows = offline_rows(summary.data_dir)
    return summary, expected_latest(rows)


def write_ops(emulator) -> int:
    return op_total(emulator, ("PutRecord", "BatchWriteRecord"))


def test_full_migration_matches_the_latest_state(source, emulator, sm, fsr, tmp_path):
    summary, expected = source
    create_group(sm, "e2e-full", feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    done = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", "e2e-full",
                         "--run-id", "full"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "written" in done.stdout
    actual = read_online(fsr, "e2e-full", sorted(list_online_ids(fsr, "e2e-full")))
    assert mismatches(actual, expected, TYPES) == []
    report = report_of(emulator, "full")
    assert report["rows_scanned"] == summary.rows_offline
    assert report["records"] == SPEC.records
    assert report["deleted_skipped"] == SPEC.records - len(expected)
    assert report["written"] == len(expected) and report["failed"] == 0
    assert report["exit_code"] == 0
    # The Offline+Online target got both stores: its offline files hold the same records.
    emulator.flush()
    target_rows = offline_rows(next((emulator.data_dir / "local-feature-store" / "targets")
                                    .glob("e2e-full/*/sagemaker/*/offline-store/*/data")))
    assert {r["record_id"] for r in target_rows} == set(expected)


def test_filtered_run_with_put_record(source, emulator, sm, fsr, tmp_path):
    _, expected = source
    create_group(sm, "e2e-filtered", feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    done = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", "e2e-filtered",
                         "--filter-query", "WHERE segment = 'gold' AND age >= 30",
                         "--write-api", "put", "--run-id", "filtered"])
    assert done.returncode == 0, done.stderr[-3000:]
    want = {rid: row for rid, row in expected.items()
            if row["segment"] == "gold" and row["age"] is not None and row["age"] >= 30}
    assert 0 < len(want) < len(expected)
    actual = read_online(fsr, "e2e-filtered", sorted(list_online_ids(fsr, "e2e-filtered")))
    assert mismatches(actual, want, TYPES) == []
    report = report_of(emulator, "filtered")
    assert report["write_api"] == "put"
    assert report["filtered_out"] == len(expected) - len(want)


def test_dry_run_writes_nothing(source, emulator, sm, fsr, tmp_path):
    _, expected = source
    create_group(sm, "e2e-dry", feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    writes_before = write_ops(emulator)
    done = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", "e2e-dry",
                         "--dry-run", "--run-id", "dry"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dry run: nothing written" in done.stdout
    assert f"{len(expected):,} to write" in done.stdout
    assert write_ops(emulator) == writes_before
    assert list_online_ids(fsr, "e2e-dry") == set()
    run = run_dir(emulator, "dry")
    plan = json.loads((run / "plan.json").read_text())
    assert plan["counts"]["selected"] == len(expected)
    assert plan["samples"] and all("record_id" in s for s in plan["samples"])
    assert not (run / "report.json").exists()


def test_incompatible_target_exits_2_and_writes_nothing(source, emulator, sm, fsr, tmp_path):
    definitions = [dict(d, FeatureType="Integral") if d["FeatureName"] == "country" else d
                   for d in feature_definitions(SPEC)]
    create_group(sm, "e2e-incompatible", definitions)
    conf = write_conf(tmp_path / "c.yaml", emulator)
    writes_before = write_ops(emulator)
    done = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", "e2e-incompatible"])
    assert done.returncode == 2
    errors = [line for line in output(done).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "country" in errors[0]
    assert "String cannot be written as Integral" in output(done)
    assert "SparkContext" not in output(done)  # refused before Spark started
    assert write_ops(emulator) == writes_before
    assert list_online_ids(fsr, "e2e-incompatible") == set()


def test_ttl_none_refused_when_the_target_expires_records(source, emulator, sm, tmp_path):
    create_group(sm, "e2e-ttl-none", feature_definitions(SPEC), offline=False,
                 ttl={"Unit": "Days", "Value": 7})
    conf = write_conf(tmp_path / "c.yaml", emulator, ttl="none")
    writes_before = write_ops(emulator)
    done = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", "e2e-ttl-none"])
    assert done.returncode == 2, output(done)[-2000:]
    assert ("error: migration.ttl: none, but e2e-ttl-none expires records 604800 s"
            in output(done))
    assert write_ops(emulator) == writes_before


def test_executors_import_the_package_the_job_ships(source, emulator, sm, fsr, tmp_path):
    """Executors on EMR/Glue don't have fsmigrate installed: the job zips and ships itself.
    Here the executors' Python runs without site processing (-S), so the editable install
    is invisible to them and only the shipped zip can provide the package."""
    import sysconfig

    _, expected = source
    site_packages = sysconfig.get_paths()["purelib"]
    bare_python = tmp_path / "bare-python"
    bare_python.write_text(f'#!/bin/sh\nexport PYTHONPATH="$PYTHONPATH:{site_packages}"\n'
                           f'exec {sys.executable} -S "$@"\n')
    bare_python.chmod(0o755)
    probe = subprocess.run([str(bare_python), "-c", "import fsmigrate"], capture_output=True)
    assert probe.returncode != 0  # really cannot see the installed package
    create_group(sm, "e2e-shipped", feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    done = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", "e2e-shipped",
                         "--filter-query", "segment = 'silver'"],
                        env_overrides={"PYSPARK_PYTHON": str(bare_python)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    want = {rid: row for rid, row in expected.items() if row["segment"] == "silver"}
    actual = read_online(fsr, "e2e-shipped", sorted(list_online_ids(fsr, "e2e-shipped")))
    assert mismatches(actual, want, TYPES) == []


def test_dry_run_plan_is_carried_out_by_resume_with_its_clear(source, emulator, sm, fsr,
                                                              tmp_path):
    """A reviewed dry-run plan runs as planned with --resume; its --clear-target still needs
    a confirmation, since the dry run never asked for one."""
    _, expected = source
    create_group(sm, "e2e-planned", feature_definitions(SPEC))
    stale = {"record_id": "zz-stale", "event_time": "2030-01-01T00:00:00Z", "age": "1"}
    fsr.put_record(FeatureGroupName="e2e-planned",
                   Record=[{"FeatureName": k, "ValueAsString": v} for k, v in stale.items()])
    conf = write_conf(tmp_path / "c.yaml", emulator)
    dry = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", "e2e-planned",
                        "--clear-target", "--dry-run", "--run-id", "planned"])
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert "first deletes 1 online records" in dry.stdout
    assert list_online_ids(fsr, "e2e-planned") == {"zz-stale"}

    refused = spark_submit(["--conf", str(conf), "--resume", "planned"])
    assert refused.returncode == 2
    assert "confirm with --yes" in output(refused)
    assert list_online_ids(fsr, "e2e-planned") == {"zz-stale"}

    done = spark_submit(["--conf", str(conf), "--resume", "planned", "--yes"])
    assert done.returncode == 0, done.stdout[-3000:]
    actual = read_online(fsr, "e2e-planned", sorted(list_online_ids(fsr, "e2e-planned")))
    assert mismatches(actual, expected, TYPES) == []
    run = run_dir(emulator, "planned")
    assert (run / "cleared.json").exists() and report_of(emulator, "planned")["exit_code"] == 0


def test_sagemaker_fs_cli_runs_the_same_job_in_local_spark(source, emulator, sm, fsr, tmp_path):
    """The seed's shape, `sagemaker-fs migrate SRC TGT [options]`, starts its own local Spark."""
    _, expected = source
    create_group(sm, "e2e-cli", feature_definitions(SPEC))
    conf = write_conf(tmp_path / "c.yaml", emulator)
    cli = Path(sys.executable).parent / "sagemaker-fs"
    done = subprocess.run(
        [str(cli), "migrate", SOURCE, "e2e-cli", "--conf", str(conf), "--run-id", "cli",
         "--filter-query", "WHERE device = 'ios'"],
        cwd=ROOT, env=job_env(), capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, output(done)[-3000:]
    want = {rid: row for rid, row in expected.items() if row["device"] == "ios"}
    assert mismatches(online_state(fsr, "e2e-cli"), want, TYPES) == []
    assert report_of(emulator, "cli")["written"] == len(want)
