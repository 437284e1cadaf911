"""End to end across accounts and regions: the real `spark-submit job/migrate.py` migrates an
offline source in "eu-west-1" on one emulator into an Online+Offline target in "us-east-1" on
another, each side as its own role assumed through moto's STS (aws.source / aws.target). The
driver and the executors assume the roles themselves: each emulator must see only its side's
assumed keys, the writers other keys than the driver's, and no secret of the assumed roles may
appear in anything the run leaves behind."""

from __future__ import annotations

import boto3
import emulator_process
import pytest
import yaml
from jobtools import (
    assumed_roles,
    create_group,
    expected_latest,
    list_online_ids,
    mismatches,
    offline_rows,
    output,
    read_online,
    report_of,
    run_dir,
    spark_submit,
)
from seed_data import SeedSpec, feature_definitions, feature_types, seed

SOURCE_REGION, TARGET_REGION = "eu-west-1", "us-east-1"
SOURCE_ROLE = "arn:aws:iam::111111111111:role/fsmigrate-source"
TARGET_ROLE = "arn:aws:iam::222222222222:role/fsmigrate-target"
SPEC = SeedSpec(group="xa-src", records=300, versions=2, stores="offline", seed=5)
TARGET = "xa-tgt"
TYPES = dict(feature_types(SPEC))


@pytest.fixture(scope="module")
def target_emulator(tmp_path_factory):
    """The second emulator: the target's "account and region"."""
    emu = emulator_process.start(tmp_path_factory.mktemp("target-emulator"))
    yield emu
    emu.stop()


def new_callers(before: dict, after: dict) -> dict[str, dict]:
    """The emulator's callers that called since `before`: {key id: {op: calls}}, with
    '_token' telling whether a session token came with the key."""
    out: dict[str, dict] = {}
    for key, entry in after["callers"].items():
        old = before["callers"].get(key, {"operations": {}})["operations"]
        ops = {op: n - old.get(op, 0) for op, n in entry["operations"].items()
               if n > old.get(op, 0)}
        if ops:
            out[key] = {**ops, "_token": entry["session_token"]}
    return out


def test_each_side_is_called_only_as_its_own_role(emulator, target_emulator, moto_s3,
                                                  tmp_path):
    source_emulator = emulator
    summary = seed(SPEC, endpoint_url=source_emulator.url, region=SOURCE_REGION,
                   local_root=source_emulator.data_dir, replace=True)
    expected = expected_latest(offline_rows(summary.data_dir))
    sm_target = boto3.client("sagemaker", region_name=TARGET_REGION,
                             endpoint_url=target_emulator.url)
    create_group(sm_target, TARGET, feature_definitions(SPEC))
    conf = tmp_path / "cross.yaml"
    conf.write_text(yaml.safe_dump({
        # the job's own identity: STS (moto), and S3 (the run folder, the source's offline
        # files) mapped onto the source emulator's folder
        "aws": {"region": TARGET_REGION, "sts_endpoint_url": moto_s3,
                "source": {"region": SOURCE_REGION, "endpoint_url": source_emulator.url,
                           "role_arn": SOURCE_ROLE, "external_id": "xa-ext"},
                "target": {"endpoint_url": target_emulator.url, "role_arn": TARGET_ROLE}},
        "storage": {"local_root": str(source_emulator.data_dir)},
        "output": {"uri": "s3://local-feature-store/runs"},
        "migration": {"partition_records": 100, "progress_interval_seconds": 1},
    }))
    before = (source_emulator.stats(), target_emulator.stats())

    done = spark_submit(["--conf", str(conf), "--source", SPEC.group, "--target", TARGET,
                         "--run-id", "cross-account"])

    assert done.returncode == 0, output(done)[-3000:]
    after = (source_emulator.stats(), target_emulator.stats())  # before the reads below
    fsr_target = boto3.client("sagemaker-featurestore-runtime", region_name=TARGET_REGION,
                              endpoint_url=target_emulator.url)
    actual = read_online(fsr_target, TARGET, sorted(list_online_ids(fsr_target, TARGET)))
    assert len(expected) > 200 and mismatches(actual, expected, TYPES) == []
    report = report_of(source_emulator, "cross-account")
    assert report["written"] == len(expected) and report["failed"] == 0
    assert report["verify"]["matched"] == len(expected)

    roles = assumed_roles()
    source_calls = new_callers(before[0], after[0])
    target_calls = new_callers(before[1], after[1])
    for calls, role in ((source_calls, SOURCE_ROLE), (target_calls, TARGET_ROLE)):
        assert calls, f"no calls as {role}"
        for key, ops in calls.items():
            assert key in roles and roles[key].role_arn == role, (key, ops)
            assert ops["_token"], key  # temporary credentials: they came with a token
    assert all(roles[k].external_id == "xa-ext" for k in source_calls)
    assert {op for ops in source_calls.values() for op in ops} == {"DescribeFeatureGroup",
                                                                   "_token"}
    # the driver described the target (and verified it); the executors wrote it, each Python
    # worker with the keys it got from AssumeRole itself: none of the driver's
    driver_keys = {k for k, ops in target_calls.items() if "DescribeFeatureGroup" in ops}
    writer_keys = {k for k, ops in target_calls.items() if "BatchWriteRecord" in ops}
    assert driver_keys and writer_keys and not driver_keys & writer_keys
    assert "BatchGetRecord" in {op for k in driver_keys for op in target_calls[k]}

    secrets = [s for r in roles.values() if r.role_arn in (SOURCE_ROLE, TARGET_ROLE)
               for s in (r.secret_access_key, r.session_token)]
    assert len(secrets) >= 4
    texts = {"spark-submit output": output(done), "source emulator": source_emulator.output,
             "target emulator": target_emulator.output, "conf": conf.read_text()}
    for path in run_dir(source_emulator, "cross-account").rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    assert any(name.endswith("report.json") for name in texts)
    leaked = [(name, secret[:4]) for name, text in texts.items() for secret in secrets
              if secret in text]
    assert leaked == []
