"""Preflight: checks before Spark starts, against the emulator and moto's S3; an older botocore
(no BatchWriteRecord/ListRecords) is a real botocore loading a service model without them
(AWS_DATA_PATH), as the boto3 Glue 5.0 bundles does."""

from __future__ import annotations

import ast
import gzip
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import botocore
import pytest
import yaml
from fsmigrate import aws
from fsmigrate.errors import BadInput
from fsmigrate.preflight import preflight
from fsmigrate.settings import load_settings
from jobtools import ROOT, create_group, output, run_dir, spark_submit, write_conf
from seed_data import SeedSpec, feature_definitions, seed

SOURCE = "pf-src"  # offline-only, seeded
ONLINE_SOURCE = "pf-online-src"  # online-only (needs ListRecords)
TARGET = "pf-tgt"  # online + offline
SPEC = SeedSpec(group=SOURCE, records=40, versions=2, stores="offline", seed=3)
RUNTIME = "sagemaker-featurestore-runtime"


@pytest.fixture(scope="module")
def groups(emulator):
    seed(SPEC, endpoint_url=emulator.url, local_root=emulator.data_dir, replace=True)
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=emulator.url)
    for name, online, offline in ((ONLINE_SOURCE, True, False), (TARGET, True, True)):
        try:
            sm.delete_feature_group(FeatureGroupName=name)
        except sm.exceptions.ResourceNotFound:
            pass
        create_group(sm, name, feature_definitions(SPEC), online=online, offline=offline)
    return emulator


@pytest.fixture
def old_botocore(tmp_path, monkeypatch):
    """This botocore with the runtime model of an older release: no BatchWriteRecord and no
    ListRecords. Returns the AWS_DATA_PATH folder (for subprocesses)."""
    data = Path(botocore.__file__).parent / "data" / RUNTIME
    version = sorted(p.name for p in data.iterdir() if p.is_dir())[-1]
    model = json.loads(gzip.decompress((data / version / "service-2.json.gz").read_bytes()))
    for operation in ("BatchWriteRecord", "ListRecords"):
        del model["operations"][operation]
    folder = tmp_path / "models"
    (folder / RUNTIME / version).mkdir(parents=True)
    (folder / RUNTIME / version / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(folder))
    monkeypatch.setattr(aws, "_runtime_clients", {})  # clients made with the full model
    return folder


def settings_for(tmp_path, emulator, *args: str, **migration):
    conf = write_conf(tmp_path / f"c-{uuid.uuid4().hex[:6]}.yaml", emulator, **migration)
    return load_settings(["--conf", str(conf), *args])


def refusal(settings, master="local[2]") -> str:
    with pytest.raises(BadInput) as info:
        preflight(settings, master=master)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_checks_are_listed_and_the_probe_object_is_gone(groups, tmp_path):
    s = settings_for(tmp_path, groups, "--source", SOURCE, "--target", TARGET, "--run-id", "pf1")
    lines = preflight(s, master="local[2]")
    text = "\n".join(lines)
    assert f"DescribeFeatureGroup source {SOURCE}: offline" in text
    assert f"DescribeFeatureGroup target {TARGET}: online+offline" in text
    assert "list source offline store s3://local-feature-store/offline/" in text
    assert f"/offline-store/{SOURCE}-" in text and "/data: has files" in text
    assert "writes with BatchWriteRecord" in text
    assert "write and delete a probe object under s3://local-feature-store/runs" in text
    assert "ListRecords" not in text  # an offline source, no clear: not needed, not probed
    runs = groups.data_dir / "local-feature-store" / "runs"
    assert not list(runs.rglob(".preflight-*"))
    assert not (runs / "pf1").exists()


def test_online_source_and_clear_probe_list_records(groups, tmp_path):
    s = settings_for(tmp_path, groups, "--source", ONLINE_SOURCE, "--target", TARGET,
                     "--clear-target", "--yes")
    text = "\n".join(preflight(s, master="local[*]"))
    assert f"BatchGetRecord on {ONLINE_SOURCE}" in text
    assert f"ListRecords on {ONLINE_SOURCE} (reading the online store" in text
    assert f"ListRecords on {TARGET} (--clear-target)" in text
    assert f"list target offline store (--clear-target) s3://local-feature-store/targets/{TARGET}"\
        in text


@pytest.mark.parametrize("master", ["yarn", "spark://10.0.0.1:7077", None])
def test_local_output_on_a_cluster_is_refused(groups, tmp_path, master):
    s = settings_for(tmp_path, groups, "--source", SOURCE, "--target", TARGET)
    message = refusal(s, master=master)
    assert "output.uri s3://local-feature-store/runs is on this machine's disk" in message
    assert "set output.uri to an s3:// folder" in message


def test_missing_group_is_refused(groups, tmp_path):
    s = settings_for(tmp_path, groups, "--source", "pf-no-such-group", "--target", TARGET)
    assert "source feature group pf-no-such-group not found" in refusal(s)


def s3_settings(tmp_path, emulator, moto_url: str, output_uri: str, *args: str):
    conf = tmp_path / "s3.yaml"
    conf.write_text(yaml.safe_dump({
        "aws": {"region": "us-east-1", "endpoint_url": emulator.url, "s3_endpoint_url": moto_url},
        "output": {"uri": output_uri}}))
    return load_settings(["--conf", str(conf), "--source", ONLINE_SOURCE, "--target", TARGET,
                          "--run-id", "s3probe", *args])


def test_output_on_s3_is_probed_and_left_clean(groups, tmp_path, moto_s3):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_s3)
    bucket = f"pf-runs-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s = s3_settings(tmp_path, groups, moto_s3, f"s3://{bucket}/runs")
    text = "\n".join(preflight(s, master="yarn"))  # S3 is shared: fine on a cluster
    assert f"output.uri s3://{bucket}/runs: S3, shared by all executors" in text
    assert f"write and delete a probe object under s3://{bucket}/runs" in text
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_unwritable_output_is_refused(groups, tmp_path, moto_s3):
    s = s3_settings(tmp_path, groups, moto_s3, "s3://pf-no-such-bucket/runs")
    message = refusal(s, master="yarn")
    assert "writing and deleting s3://pf-no-such-bucket/runs/.preflight-s3probe" in message
    assert "(NoSuchBucket)" in message and "fsmigrate.iam" in message


# ---- botocore capabilities ----------------------------------------------------------------------


def test_scan_without_list_records_is_refused(groups, tmp_path, old_botocore):
    s = settings_for(tmp_path, groups, "--source", ONLINE_SOURCE, "--target", TARGET)
    message = refusal(s)
    assert "needs ListRecords, which botocore" in message
    assert "--additional-python-modules boto3>=1.44.8" in message


def test_batch_without_batch_write_is_refused(groups, tmp_path, old_botocore):
    s = settings_for(tmp_path, groups, "--source", SOURCE, "--target", TARGET,
                     "--write-api", "batch")
    assert "write_api: batch needs BatchWriteRecord" in refusal(s)


def test_old_botocore_falls_back_where_it_can(groups, tmp_path, old_botocore):
    s = settings_for(tmp_path, groups, "--source", SOURCE, "--target", TARGET,
                     "--clear-target", "--yes")
    text = "\n".join(preflight(s, master="local[2]"))
    assert "writes with PutRecord (this botocore has no BatchWriteRecord)" in text
    assert f"--clear-target of {TARGET}: record ids from its offline store" in text


# ---- through the real entry point ---------------------------------------------------------------


def test_preflight_flag_runs_only_the_checks(groups, tmp_path):
    conf = write_conf(tmp_path / "c.yaml", groups)
    done = spark_submit(["--conf", str(conf), "--source", SOURCE, "--target", TARGET,
                         "--run-id", "pf-only", "--preflight"], timeout=180)
    assert done.returncode == 0, output(done)[-3000:]
    assert "preflight passed:" in done.stdout
    assert f"ok  DescribeFeatureGroup target {TARGET}" in done.stdout
    assert not run_dir(groups, "pf-only").exists()


def test_glue_bundled_botocore_and_online_source_is_one_line_exit_2(groups, tmp_path,
                                                                     old_botocore):
    """The issue's Glue case: before, an AttributeError, exit 3 and a bogus resume hint."""
    conf = write_conf(tmp_path / "c.yaml", groups)
    done = spark_submit(["--conf", str(conf), "--source", ONLINE_SOURCE, "--target", TARGET,
                         "--run-id", "pf-old"], timeout=180,
                        env_overrides={"AWS_DATA_PATH": str(old_botocore)})
    assert done.returncode == 2, output(done)[-3000:]
    errors = [line for line in output(done).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs ListRecords" in errors[0]
    assert "Traceback" not in output(done) and "resume" not in output(done)
    assert not run_dir(groups, "pf-old").exists()


# ---- Python too old ------------------------------------------------------------------------------

MIGRATE = ROOT / "job" / "migrate.py"


def test_migrate_py_parses_as_python_3_6():
    ast.parse(MIGRATE.read_text(), feature_version=(3, 6))


def older_pythons() -> list[str]:
    """Real interpreters older than 3.11 on this machine (pyenv builds, /usr/bin)."""
    found = sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.*/bin/python3.*")
                   if re.fullmatch(r"python3\.([6-9]|10)", p.name))
    found += [p for p in ("/usr/bin/python3.9", "/usr/bin/python3.10") if Path(p).is_file()]
    return found


def run_too_old(python: str, version: str) -> None:
    """migrate.py under `python` (or faking `version` when python is this interpreter)."""
    if python == sys.executable:
        major, minor = map(int, version.split("."))
        cmd = [python, "-c", (
            "import runpy, sys\n"
            f"sys.version_info = ({major}, {minor}, 18, 'final', 0)\n"
            f"sys.argv = [{str(MIGRATE)!r}, '--source', 'a', '--target', 'b']\n"
            f"runpy.run_path({str(MIGRATE)!r}, run_name='__main__')\n"
            "raise SystemExit('not reached')\n")]
    else:
        cmd = [python, str(MIGRATE), "--source", "a", "--target", "b"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: fsmigrate needs Python 3.11 or newer, this is {version}")
    assert "PYSPARK_PYTHON" in lines[0] and "spark-env" in lines[0]


def test_migrate_py_under_an_older_python_says_how_to_pick_3_11():
    """Every real Python 3.6-3.10 the machine has (pyenv); else this one reporting 3.9."""
    pythons = older_pythons()
    for python in pythons:
        asked = "import sys; print('%d.%d' % sys.version_info[:2])"
        version = subprocess.run([python, "-c", asked], capture_output=True, text=True,
                                 timeout=30).stdout.strip()
        run_too_old(python, version)
    if not pythons:
        run_too_old(sys.executable, "3.9")


def test_migrate_py_with_a_faked_python_3_9():
    run_too_old(sys.executable, "3.9")


def test_the_preflight_imports_without_pyspark():
    """The preflight runs before Spark starts, and the packed environment ships no pyspark:
    nothing it imports may need pyspark at import time."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'pyspark':\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import fsmigrate.cli, fsmigrate.preflight, fsmigrate.settings\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


# ---- cross-account: each side as its role (moto's STS) ---------------------------------------

def side_settings(tmp_path, emulator, moto_url: str, source_role: str, target_role: str):
    conf = tmp_path / f"sides-{uuid.uuid4().hex[:6]}.yaml"
    conf.write_text(yaml.safe_dump({
        "aws": {"region": "us-east-1", "endpoint_url": emulator.url, "sts_endpoint_url": moto_url,
                "source": {"role_arn": source_role}, "target": {"role_arn": target_role}},
        "storage": {"local_root": str(emulator.data_dir)},
        "output": {"uri": "s3://local-feature-store/runs"}}))
    return load_settings(["--conf", str(conf), "--source", ONLINE_SOURCE, "--target", TARGET,
                          "--clear-target", "--yes"])


def test_checks_name_the_side_and_its_role(groups, tmp_path, moto_s3):
    source_role = f"arn:aws:iam::111111111111:role/pf-src-{uuid.uuid4().hex[:6]}"
    target_role = f"arn:aws:iam::222222222222:role/pf-tgt-{uuid.uuid4().hex[:6]}"
    s = side_settings(tmp_path, groups, moto_s3, source_role, target_role)
    text = "\n".join(preflight(s, master="local[2]"))
    assert f"DescribeFeatureGroup source {ONLINE_SOURCE} (as role {source_role}): online" in text
    assert f"DescribeFeatureGroup target {TARGET} (as role {target_role}): online+offline" in text
    assert f"BatchGetRecord on {ONLINE_SOURCE} (as role {source_role})" in text
    assert f"ListRecords on {TARGET} (--clear-target (as role {target_role}))" in text


def test_a_refused_assume_role_is_one_line(groups, tmp_path, moto_s3):
    """moto enforcing authentication: the job's own keys ("testing") are no IAM user's, so STS
    refuses AssumeRole as AWS does an unknown key (InvalidClientTokenId)."""
    role = f"arn:aws:iam::111111111111:role/pf-refused-{uuid.uuid4().hex[:6]}"
    s = side_settings(tmp_path, groups, moto_s3, role, role)
    import urllib.request

    def moto_auth_after(actions: bytes) -> None:  # moto's own switch (text body: not a form)
        urllib.request.urlopen(urllib.request.Request(
            f"{moto_s3}/moto-api/reset-auth", actions, method="POST",
            headers={"Content-Type": "text/plain"}), timeout=10)

    moto_auth_after(b"0")
    try:
        message = refusal(s)
    finally:
        moto_auth_after(b"inf")  # the default: never
    assert message.startswith(f"preflight: DescribeFeatureGroup on source {ONLINE_SOURCE} "
                              f"(as role {role}): cannot assume the role (InvalidClientTokenId)")
    assert "sts:AssumeRole" in message
