"""Preflight: what a run needs that can be checked in seconds, before Spark starts.

Each failure is one `BadInput` line (exit 2) and nothing is written (the probe object under
output.uri is written and deleted again). `--preflight` runs only these checks and prints them.
Every probe goes through aws.py and is harmless: a describe, one ListRecords result, a
BatchGetRecord of a made-up id, one listed S3 key, a small object put and deleted.
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass, field

from . import aws
from .errors import BadInput
from .groups import GroupSpec, spec_from_description
from .plan import Plan
from .runstate import RunFolder
from .settings import Settings
from .storage import Store, join, split_s3

log = logging.getLogger(__name__)

NEW_BOTO3 = "boto3>=1.44.8"
IAM_HINT = "`python -m fsmigrate.iam` prints the policy the job needs"
PROBE_ID = "fsmigrate-preflight-probe"
NOT_FOUND = ("ResourceNotFound", "ResourceNotFoundException", "ValidationException")


def spark_master() -> str | None:
    """The master the coming SparkSession will use, read before it starts.

    spark-submit (and Glue) start the driver beside a running JVM whose system properties hold
    `spark.master`; connecting to it is cheap and is what SparkContext does next anyway. A plain
    `python` run has no JVM yet: cli.spark_session then picks local mode.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return "local[*]"
    try:
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()
        return SparkConf().get("spark.master")
    except Exception:  # unknown: treated as a cluster, the safe side for output.uri
        log.debug("cannot read spark.master before Spark starts", exc_info=True)
        return None


@dataclass
class Preflight:
    settings: Settings
    master: str | None
    store: Store = field(init=False)
    checked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = Store(self.settings.aws, self.settings.local_root)

    def ok(self, line: str) -> None:
        self.checked.append(line)

    # ---- the checks ----------------------------------------------------------------------

    def run(self) -> list[str]:
        s = self.settings
        self.ok(f"Python {platform.python_version()}, botocore {aws.botocore_version()}")
        self.check_output_is_shared()
        source_name, target_name = self.group_names()
        source = self.describe(source_name, "source") if source_name else None
        target = self.describe(target_name, "target") if target_name else None
        self.check_write_api(aws.runtime_client(s.target_aws))
        if source is not None and not s.retry_failures:
            self.check_source_reads(aws.runtime_client(s.source_aws), source)
        if target is not None and s.migration.clear_target:
            self.check_clear(aws.runtime_client(s.target_aws), target)
        self.check_output_writable()
        return self.checked

    def check_output_is_shared(self) -> None:
        uri = self.settings.output_uri
        local = self.store.local_path(uri) is not None
        is_local_mode = bool(self.master) and str(self.master).startswith("local")
        if local and not is_local_mode:
            raise BadInput(
                f"output.uri {uri} is on this machine's disk but Spark runs on a cluster "
                f"(master {self.master or 'unknown'}): every executor would keep its checkpoints "
                "and failure files on its own disk; set output.uri to an s3:// folder "
                "(and no storage.local_root)")
        where = "local disk, Spark in local mode" if local else "S3, shared by all executors"
        self.ok(f"output.uri {uri}: {where}")

    def group_names(self) -> tuple[str, str]:
        """The groups of this run; --resume and --retry-failures take them from the plan."""
        s = self.settings
        if s.source and s.target:
            return s.source, s.target
        ref = s.resume or s.retry_failures or ""
        folder_uri = ref if "/" in ref else join(s.output_uri, ref)
        folder = RunFolder(self.store, folder_uri)
        try:
            plan = Plan.from_json(folder.read_plan())
        except Exception as exc:  # missing or unreadable: the run says so in its own words
            log.debug("no plan to take group names from: %s", exc)
            return s.source, s.target
        return s.source or plan.source["name"], s.target or plan.target["name"]

    def side(self, role: str) -> aws.AwsSettings:
        return self.settings.source_aws if role == "source" else self.settings.target_aws

    def as_whom(self, role: str) -> str:
        """' (as role ARN)' when the side assumes one: messages say whose permission failed."""
        arn = self.side(role).role_arn
        return f" (as role {arn})" if arn else ""

    def describe(self, name: str, role: str) -> GroupSpec:
        side = self.side(role)
        try:
            spec = spec_from_description(
                aws.describe_feature_group(aws.control_client(side), name))
        except Exception as exc:
            code = aws.error_code(exc)
            if code in NOT_FOUND:
                raise BadInput(f"{role} feature group {name} not found in {side.describe()}: "
                               f"check the name and aws.{role}.region (or aws.region)") from None
            raise self.denied(f"DescribeFeatureGroup on {role} {name}{self.as_whom(role)}",
                              exc) from None
        self.ok(f"DescribeFeatureGroup {role} {name}{self.as_whom(role)}: {spec.kind}")
        return spec

    def check_write_api(self, runtime) -> None:
        requested = self.settings.migration.write_api
        has_batch = aws.has_batch_write(runtime)
        if requested == "batch" and not has_batch:
            raise BadInput(f"write_api: batch needs BatchWriteRecord, which botocore "
                           f"{aws.botocore_version()} lacks: install {NEW_BOTO3} (Glue: "
                           f"--additional-python-modules {NEW_BOTO3}) or use write_api: auto")
        api = "BatchWriteRecord" if requested != "put" and has_batch else "PutRecord"
        why = "" if has_batch or requested == "put" else " (this botocore has no BatchWriteRecord)"
        self.ok(f"writes with {api}{why}")

    def check_source_reads(self, runtime, source: GroupSpec) -> None:
        id_source = self.settings.migration.id_source
        glue_offline = source.offline and (source.table_format or "Glue") != "Iceberg"
        reads_offline = source.offline and (not source.online or
                                            (id_source != "scan" and glue_offline))
        has_files = False
        if reads_offline and source.offline_uri:
            has_files = self.list_prefix(source.offline_uri, "source offline store")
        if source.online:
            self.batch_get_probe(runtime, source.name)
        if source.online and (id_source == "scan" or not has_files):
            why = ("id_source: scan" if id_source == "scan"
                   else f"reading the online store of {source.name}, whose record ids cannot "
                        "come from an offline store")
            self.list_records(runtime, source.name, why + self.as_whom("source"))

    def check_clear(self, runtime, target: GroupSpec) -> None:
        if target.offline and target.offline_uri:
            self.list_prefix(target.offline_uri, "target offline store (--clear-target)")
        if not target.online:
            return
        whom = self.as_whom("target")
        if aws.has_list_records(runtime):
            self.list_records(runtime, target.name, "--clear-target" + whom)
        elif not target.offline:
            self.list_records(runtime, target.name,
                              "--clear-target of an online-only group" + whom)
        else:
            self.ok(f"--clear-target of {target.name}: record ids from its offline store "
                    "(this botocore has no ListRecords)")

    def list_records(self, runtime, group: str, why: str) -> None:
        if not aws.has_list_records(runtime):
            raise BadInput(f"{why} needs ListRecords, which botocore {aws.botocore_version()} "
                           f"lacks: install {NEW_BOTO3} (Glue: --additional-python-modules "
                           f"{NEW_BOTO3})")
        try:
            aws.list_records_probe(runtime, group)
        except Exception as exc:
            raise self.denied(f"ListRecords on {group} ({why})", exc) from None
        self.ok(f"ListRecords on {group} ({why})")

    def batch_get_probe(self, runtime, group: str) -> None:
        """The values of an online source come from BatchGetRecord: ask for one made-up id."""
        try:
            aws.batch_get_record(runtime, group, [PROBE_ID], expiration=False)
        except Exception as exc:
            raise self.denied(f"BatchGetRecord on {group}{self.as_whom('source')}",
                              exc) from None
        self.ok(f"BatchGetRecord on {group}{self.as_whom('source')}")

    def list_prefix(self, uri: str, what: str) -> bool:
        """Whether the prefix holds anything; proves the listing permission on S3."""
        local = self.store.local_path(uri)
        if local is not None:
            found = os.path.isdir(local) and any(os.scandir(local))
        else:
            bucket, key = split_s3(uri)
            try:
                client = aws.s3_client(self.settings.aws)
                found = aws.s3_list_probe(client, bucket, key.rstrip("/") + "/")
            except Exception as exc:
                raise self.denied(f"listing the {what} {uri}", exc) from None
        self.ok(f"list {what} {uri}: {'has files' if found else 'empty'}")
        return found

    def check_output_writable(self) -> None:
        probe = join(self.settings.output_uri, f".preflight-{self.settings.run_id}")
        try:
            self.store.write_text(probe, "fsmigrate preflight probe\n")
            self.store.delete(probe)
        except Exception as exc:
            raise self.denied(f"writing and deleting {probe}", exc) from None
        self.ok(f"write and delete a probe object under {self.settings.output_uri}")

    @staticmethod
    def denied(what: str, exc: BaseException) -> BadInput:
        problem = aws.environment_problem(exc)
        if problem:
            return BadInput(f"preflight: {what}: {problem}")
        code = aws.error_code(exc)
        if code == "ConnectionError":
            return BadInput(f"preflight: {what}: cannot reach the endpoint (check the network "
                            "and, in a VPC, its endpoints)")
        return BadInput(f"preflight: {what} failed ({code}): {IAM_HINT}")


_DETECT = "detect"


def preflight(settings: Settings, master: str | None = _DETECT) -> list[str]:
    """Run every check; return one line per check done. Raises BadInput on the first failure.
    `master`: Spark's master (None: unknown, i.e. maybe a cluster); by default read here."""
    return Preflight(settings, spark_master() if master == _DETECT else master).run()


def format_checks(lines: list[str]) -> str:
    return "\n".join(["preflight passed:", *(f"  ok  {line}" for line in lines)])
