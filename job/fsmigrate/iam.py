"""Least-privilege IAM policies for a run, one per side, from the calls aws.py really makes.

`python -m fsmigrate.iam --source A --target B --output-uri s3://... [...]` prints them.
`CALLS` maps every AWS call in aws.py to the side that makes it and its IAM action; a test
greps aws.py so a new call cannot go unlisted.

Cross-account (aws.source.role_arn / aws.target.role_arn): a side with a role is called as that
role, so its policy belongs on the assumed role (whose trust policy must name the job's role);
the job's own role keeps the run folder, the sides without a role, and sts:AssumeRole on the
roles it assumes. S3 (offline stores, run folder) is always read with the job's own role.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from typing import Any

from .storage import split_s3

# aws.py call -> (IAM action, sides): "source", "target", "clear" (target, --clear-target only),
# "run" (the run folder and the conf under output.uri, written by driver and executors).
CALLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "describe_feature_group": ("sagemaker:DescribeFeatureGroup", ("source", "target")),
    "batch_get_record": ("sagemaker:BatchGetRecord", ("source",)),
    "list_records": ("sagemaker:ListRecords", ("source", "clear")),
    "batch_write_record": ("sagemaker:BatchWriteRecord", ("target",)),
    "put_record": ("sagemaker:PutRecord", ("target",)),
    "get_record": ("sagemaker:GetRecord", ("clear",)),
    "delete_record": ("sagemaker:DeleteRecord", ("clear",)),
    "get_object": ("s3:GetObject", ("source", "run", "clear")),
    "list_objects_v2": ("s3:ListBucket", ("source", "run", "clear")),
    "put_object": ("s3:PutObject", ("run",)),
    "delete_objects": ("s3:DeleteObject", ("run", "clear")),
}
SIDES = ("source", "target", "run")


@dataclass(frozen=True)
class Scope:
    region: str
    account: str
    source: str
    target: str
    output_uri: str
    source_offline_uri: str | None = None  # the group's ResolvedOutputS3Uri
    target_offline_uri: str | None = None
    clear_target: bool = False
    kms_keys: tuple[str, ...] = ()  # store and run-folder keys, when they are customer keys
    source_role_arn: str | None = None  # aws.source.role_arn: the source side's calls
    target_role_arn: str | None = None
    source_region: str | None = None  # aws.source.region (default: region)
    target_region: str | None = None
    job_role_arn: str | None = None  # the Glue/EMR role that assumes them (trust policies)
    external_id: str | None = None

    def role(self, side: str) -> str | None:
        return {"source": self.source_role_arn, "target": self.target_role_arn}.get(side)

    def group_arn(self, name: str, side: str | None = None) -> str:
        """A side's group; in the account of the side's role when it has one."""
        role = self.role(side) if side else None
        account = role.split(":")[4] if role else self.account
        region = {"source": self.source_region, "target": self.target_region}.get(
            side or "") or self.region
        return f"arn:aws:sagemaker:{region}:{account}:feature-group/{name.lower()}"


def _actions(service: str, side: str) -> list[str]:
    return sorted({action for action, sides in CALLS.values()
                   if action.startswith(service + ":") and side in sides})


def _s3_statements(sid: str, uri: str, actions: list[str]) -> list[dict[str, Any]]:
    bucket, key = split_s3(uri)
    prefix = key.strip("/")
    objects = f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*"
    out: list[dict[str, Any]] = []
    if "s3:ListBucket" in actions:
        listing: dict[str, Any] = {"Sid": f"{sid}List", "Effect": "Allow",
                                   "Action": ["s3:ListBucket"],
                                   "Resource": f"arn:aws:s3:::{bucket}"}
        if prefix:
            listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
        out.append(listing)
    object_actions = [a for a in actions if a != "s3:ListBucket"]
    if object_actions:
        out.append({"Sid": f"{sid}Objects", "Effect": "Allow", "Action": object_actions,
                    "Resource": objects})
    return out


def _kms(sid: str, keys: tuple[str, ...], actions: list[str]) -> list[dict[str, Any]]:
    if not keys:
        return []
    return [{"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": list(keys)}]


def side_policy(scope: Scope, side: str) -> dict[str, Any]:
    """The policy document one side needs (source: read; target: write; run: the run folder)."""
    statements: list[dict[str, Any]] = []
    if side == "source":
        statements.append({"Sid": "SourceGroup", "Effect": "Allow",
                           "Action": _actions("sagemaker", "source"),
                           "Resource": scope.group_arn(scope.source, "source")})
        offline = scope.source_offline_uri or f"s3://SOURCE-OFFLINE-BUCKET/{scope.source}"
        statements += _s3_statements("SourceOffline", offline, _actions("s3", "source"))
        # Encrypted stores: online data-plane calls and SSE-KMS objects need Decrypt.
        statements += _kms("SourceKms", scope.kms_keys, ["kms:Decrypt"])
    elif side == "target":
        actions = set(_actions("sagemaker", "target"))
        if scope.clear_target:
            actions |= set(_actions("sagemaker", "clear"))
        statements.append({"Sid": "TargetGroup", "Effect": "Allow", "Action": sorted(actions),
                           "Resource": scope.group_arn(scope.target, "target")})
        if scope.clear_target:
            offline = scope.target_offline_uri or f"s3://TARGET-OFFLINE-BUCKET/{scope.target}"
            statements += _s3_statements("TargetOfflineClear", offline, _actions("s3", "clear"))
        statements += _kms("TargetKms", scope.kms_keys, ["kms:Decrypt"])
    elif side == "run":
        statements += _s3_statements("RunFolder", scope.output_uri, _actions("s3", "run"))
        statements += _kms("RunFolderKms", scope.kms_keys, ["kms:Decrypt", "kms:GenerateDataKey"])
    else:
        raise ValueError(f"unknown side {side!r}")
    if scope.role(side):  # the assumed role makes the Feature Store calls only
        statements = [st for st in statements if not _job_identity(st)]
    return {"Version": "2012-10-17", "Statement": statements}


def _job_identity(statement: dict[str, Any]) -> bool:
    """S3 (offline stores) is always the job's own identity: Spark on Glue/EMR reads it with
    the cluster's role, whatever role a side assumes; so are the keys of SSE-KMS objects."""
    return "Offline" in statement["Sid"] or statement["Sid"].endswith("Kms")


def merged_policy(scope: Scope) -> dict[str, Any]:
    """The job's own role: every side's statements in one document, but for a side with a
    role (cross-account) sts:AssumeRole on that role instead of the side's statements."""
    statements = [s for side in SIDES
                  for s in side_policy(replace(scope, source_role_arn=None,
                                               target_role_arn=None), side)["Statement"]
                  if not scope.role(side) or _job_identity(s)]
    roles = sorted({r for r in (scope.source_role_arn, scope.target_role_arn) if r})
    if roles:
        statements.append({"Sid": "AssumeSideRoles", "Effect": "Allow",
                           "Action": ["sts:AssumeRole"], "Resource": roles})
    kms = [s for s in statements if s["Sid"].endswith("Kms")]
    rest = [s for s in statements if not s["Sid"].endswith("Kms")]
    if kms:  # one KMS statement: the union of the actions on the same keys
        rest.append({"Sid": "Kms", "Effect": "Allow",
                     "Action": sorted({a for s in kms for a in s["Action"]}),
                     "Resource": list(scope.kms_keys)})
    return {"Version": "2012-10-17", "Statement": rest}


def trust_policy(scope: Scope, side: str) -> dict[str, Any]:
    """The trust policy of a side's role: the job's own role may assume it (with the external
    id when one is set)."""
    principal = scope.job_role_arn or f"arn:aws:iam::{scope.account}:role/JOB-ROLE"
    statement: dict[str, Any] = {"Sid": f"{side.capitalize()}TrustsJob", "Effect": "Allow",
                                 "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if scope.external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": scope.external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def note(scope: Scope, side: str) -> str:
    """Whose policy is printed (on stderr: stdout stays one JSON document)."""
    if side in ("source", "target") and scope.role(side):
        return (f"# the {side} side's policy: attach it to {scope.role(side)} (the assumed "
                f"role); its trust policy (--side {side}-trust) must allow the job's role; "
                "its offline store is read with the job's own role (--side all)")
    if side.endswith("-trust"):
        return f"# the trust policy of {scope.role(side.removesuffix('-trust'))}"
    roles = [r for r in (scope.source_role_arn, scope.target_role_arn) if r]
    if side == "all" and roles:
        return ("# the job's own role (Glue/EMR): run folder, offline stores read with its "
                f"identity, sts:AssumeRole on {', '.join(roles)}; the sides with a role get "
                "their own policy (--side source / target)")
    return "# the job's own role (Glue/EMR)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fsmigrate.iam",
        description="Print the least-privilege IAM policy a migration needs.")
    p.add_argument("--source", required=True, help="source feature group")
    p.add_argument("--target", required=True, help="target feature group")
    p.add_argument("--output-uri", required=True, help="output.uri (s3://bucket/prefix)")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default="123456789012", help="account id of the groups")
    p.add_argument("--source-offline-uri", help="the source's offline store S3 URI "
                   "(DescribeFeatureGroup: OfflineStoreConfig.S3StorageConfig.ResolvedOutputS3Uri)")
    p.add_argument("--target-offline-uri",
                   help="the target's offline store S3 URI (for --clear-target)")
    p.add_argument("--clear-target", action="store_true", help="the run clears the target")
    p.add_argument("--kms-key-arn", action="append", default=[],
                   help="a customer KMS key of the stores or the run folder (repeatable)")
    p.add_argument("--source-role-arn", help="aws.source.role_arn (cross-account)")
    p.add_argument("--target-role-arn", help="aws.target.role_arn (cross-account)")
    p.add_argument("--source-region", help="aws.source.region (default: --region)")
    p.add_argument("--target-region", help="aws.target.region (default: --region)")
    p.add_argument("--job-role-arn", help="the job's own role, for the trust policies")
    p.add_argument("--external-id", help="aws.*.external_id, for the trust policies")
    p.add_argument("--side", choices=(*SIDES, "all", "source-trust", "target-trust"),
                   default="all",
                   help="one side's policy (cross-account), a side role's trust policy, or "
                        "all the job's own role needs in one document")
    ns = p.parse_args(argv)
    if not ns.output_uri.startswith("s3://"):
        print("error: --output-uri must be an s3:// URI", file=sys.stderr)
        return 2
    if ns.side.endswith("-trust") and not getattr(ns, ns.side.replace("-trust", "_role_arn")):
        print(f"error: --side {ns.side} needs --{ns.side.replace('-trust', '-role-arn')}",
              file=sys.stderr)
        return 2
    scope = Scope(region=ns.region, account=ns.account, source=ns.source, target=ns.target,
                  output_uri=ns.output_uri, source_offline_uri=ns.source_offline_uri,
                  target_offline_uri=ns.target_offline_uri, clear_target=ns.clear_target,
                  kms_keys=tuple(ns.kms_key_arn), source_role_arn=ns.source_role_arn,
                  target_role_arn=ns.target_role_arn, source_region=ns.source_region,
                  target_region=ns.target_region, job_role_arn=ns.job_role_arn,
                  external_id=ns.external_id)
    if ns.side == "all":
        policy = merged_policy(scope)
    elif ns.side.endswith("-trust"):
        policy = trust_policy(scope, ns.side.removesuffix("-trust"))
    else:
        policy = side_policy(scope, ns.side)
    print(note(scope, ns.side), file=sys.stderr)
    print(json.dumps(policy, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
