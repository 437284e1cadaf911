"""IAM policies: generated from the calls aws.py makes, least privilege per side, accepted by
IAM's policy validation (moto's server)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import boto3
import pytest
from fsmigrate import iam
from jobtools import ROOT

AWS_PY = ROOT / "job" / "fsmigrate" / "aws.py"
WRITES = {"sagemaker:BatchWriteRecord", "sagemaker:PutRecord", "sagemaker:DeleteRecord",
          "s3:PutObject", "s3:DeleteObject"}


def scope(**kwargs) -> iam.Scope:
    base = {"region": "eu-west-1", "account": "111122223333", "source": "Src-Group",
            "target": "tgt-group", "output_uri": "s3://runs-bucket/fsmigrate/runs",
            "source_offline_uri": "s3://src-bucket/offline/111122223333/sagemaker/eu-west-1/"
                                  "offline-store/src-group-1700000000/data",
            "target_offline_uri": "s3://tgt-bucket/tgt/data"}
    return iam.Scope(**{**base, **kwargs})


def actions(policy: dict) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def test_every_call_in_aws_py_is_mapped_and_nothing_else():
    text = AWS_PY.read_text()
    calls = set(re.findall(r"client\.(\w+)\(", text)) - {"get_paginator"}
    calls |= set(re.findall(r"get_paginator\(\"(\w+)\"\)", text))
    assert calls == set(iam.CALLS)


def test_source_side_only_reads():
    policy = iam.side_policy(scope(), "source")
    assert actions(policy) == {"sagemaker:DescribeFeatureGroup", "sagemaker:BatchGetRecord",
                               "sagemaker:ListRecords", "s3:GetObject", "s3:ListBucket"}
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["SourceGroup"]["Resource"] == \
        "arn:aws:sagemaker:eu-west-1:111122223333:feature-group/src-group"
    assert by_sid["SourceOfflineObjects"]["Resource"] == (
        "arn:aws:s3:::src-bucket/offline/111122223333/sagemaker/eu-west-1/offline-store/"
        "src-group-1700000000/data/*")
    assert by_sid["SourceOfflineList"]["Condition"]["StringLike"]["s3:prefix"][1].endswith(
        "/data/*")


def test_target_side_writes_and_clears_only_when_asked():
    plain = iam.side_policy(scope(), "target")
    assert actions(plain) == {"sagemaker:DescribeFeatureGroup", "sagemaker:BatchWriteRecord",
                              "sagemaker:PutRecord"}
    clearing = iam.side_policy(scope(clear_target=True), "target")
    assert actions(clearing) - actions(plain) == {
        "sagemaker:ListRecords", "sagemaker:GetRecord", "sagemaker:DeleteRecord",
        "s3:ListBucket", "s3:GetObject", "s3:DeleteObject"}
    deletes = [s for s in clearing["Statement"] if "s3:DeleteObject" in s["Action"]]
    assert [s["Resource"] for s in deletes] == ["arn:aws:s3:::tgt-bucket/tgt/data/*"]


def test_run_folder_and_kms():
    keys = ("arn:aws:kms:eu-west-1:111122223333:key/abc",)
    run = iam.side_policy(scope(kms_keys=keys), "run")
    assert actions(run) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                            "kms:Decrypt", "kms:GenerateDataKey"}
    merged = iam.merged_policy(scope(kms_keys=keys))
    assert [s for s in merged["Statement"] if s["Sid"] == "Kms"] == [
        {"Sid": "Kms", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": list(keys)}]
    assert not actions(iam.side_policy(scope(), "run")) & {"kms:Decrypt"}


@pytest.mark.parametrize("side", [*iam.SIDES, "all"])
def test_policies_pass_iam_validation(moto_s3, side):
    client = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_s3)
    s = scope(clear_target=True, kms_keys=("arn:aws:kms:eu-west-1:111122223333:key/abc",))
    policy = iam.merged_policy(s) if side == "all" else iam.side_policy(s, side)
    made = client.create_policy(PolicyName=f"fsmigrate-{side}", PolicyDocument=json.dumps(policy))
    assert made["Policy"]["Arn"].endswith(f":policy/fsmigrate-{side}")
    sids = [st["Sid"] for st in policy["Statement"]]
    assert len(sids) == len(set(sids))


def test_command_prints_the_policy():
    done = subprocess.run(
        [sys.executable, "-m", "fsmigrate.iam", "--source", "a", "--target", "b",
         "--output-uri", "s3://runs/x", "--side", "target", "--clear-target"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    policy = json.loads(done.stdout)
    assert "sagemaker:DeleteRecord" in actions(policy) and not actions(policy) & {"s3:PutObject"}
    assert actions(policy) & WRITES
    bad = subprocess.run([sys.executable, "-m", "fsmigrate.iam", "--source", "a", "--target", "b",
                          "--output-uri", "./runs"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --output-uri must be an s3:// URI"


def test_readme_iam_command_works_as_written():
    readme = (ROOT / "README.md").read_text()
    (command,) = [line for line in readme.splitlines()
                  if line.startswith("PYTHONPATH=job python3 -m fsmigrate.iam ")]
    done = subprocess.run(["bash", "-c", command.replace("python3", sys.executable, 1)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    policy = json.loads(done.stdout)
    assert "arn:aws:sagemaker:us-east-1:123456789012:feature-group/my-source" in {
        s["Resource"] for s in policy["Statement"] if isinstance(s["Resource"], str)}


SOURCE_ROLE = "arn:aws:iam::444455556666:role/fsmigrate-source"
TARGET_ROLE = "arn:aws:iam::777788889999:role/fsmigrate-target"


def test_sides_with_roles_move_to_the_assumed_roles(moto_s3):
    s = scope(source_role_arn=SOURCE_ROLE, target_role_arn=TARGET_ROLE, target_region="us-west-2",
              clear_target=True, job_role_arn="arn:aws:iam::111122223333:role/glue-job",
              external_id="ext-1")
    job = iam.merged_policy(s)
    by_sid = {st["Sid"]: st for st in job["Statement"]}
    # the job's own role: assume both, read the offline store, clear the target's offline
    # files and keep the run folder; no Feature Store call of its own
    assert by_sid["AssumeSideRoles"] == {"Sid": "AssumeSideRoles", "Effect": "Allow",
                                         "Action": ["sts:AssumeRole"],
                                         "Resource": [SOURCE_ROLE, TARGET_ROLE]}
    assert not any(a.startswith("sagemaker:") for a in actions(job))
    assert {"SourceOfflineObjects", "TargetOfflineClearObjects", "RunFolderObjects"} <= set(by_sid)
    # each assumed role: its group's calls, in its own account (and region), no S3
    source = iam.side_policy(s, "source")
    assert actions(source) == {"sagemaker:DescribeFeatureGroup", "sagemaker:BatchGetRecord",
                               "sagemaker:ListRecords"}
    assert source["Statement"][0]["Resource"] == \
        "arn:aws:sagemaker:eu-west-1:444455556666:feature-group/src-group"
    target = iam.side_policy(s, "target")
    assert "sagemaker:DeleteRecord" in actions(target) and not actions(target) & {"s3:GetObject"}
    assert target["Statement"][0]["Resource"] == \
        "arn:aws:sagemaker:us-west-2:777788889999:feature-group/tgt-group"
    trust = iam.trust_policy(s, "target")["Statement"][0]
    assert trust["Principal"] == {"AWS": "arn:aws:iam::111122223333:role/glue-job"}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "ext-1"}}
    client = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_s3)
    for name, policy in (("xa-job", job), ("xa-source", source), ("xa-target", target)):
        client.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy))
    made = client.create_role(RoleName="xa-target-role",
                              AssumeRolePolicyDocument=json.dumps(iam.trust_policy(s, "target")))
    assert made["Role"]["Arn"].endswith(":role/xa-target-role")


def test_command_says_whose_policy_it_prints():
    base = [sys.executable, "-m", "fsmigrate.iam", "--source", "a", "--target", "b",
            "--output-uri", "s3://runs/x", "--source-role-arn", SOURCE_ROLE]
    done = subprocess.run([*base, "--side", "source"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"# the source side's policy: attach it to {SOURCE_ROLE}")
    assert "--side source-trust" in done.stderr
    assert json.loads(done.stdout)["Statement"][0]["Sid"] == "SourceGroup"
    trust = subprocess.run([*base, "--side", "source-trust"], capture_output=True, text=True,
                           timeout=60)
    assert json.loads(trust.stdout)["Statement"][0]["Action"] == "sts:AssumeRole"
    no_role = subprocess.run([*base, "--side", "target-trust"], capture_output=True, text=True,
                             timeout=60)
    assert no_role.returncode == 2
    assert no_role.stderr.strip() == "error: --side target-trust needs --target-role-arn"
