"""Settings: conf YAML (local path or s3:// URI) + job arguments -> one frozen, validated object.

CLI beats YAML; the arguments (and Glue's) are parsed by :mod:`fsmigrate.arguments`. Every bad
value is a one-line `BadInput` (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from .arguments import WRITE_API_CHOICES, parse_args, parse_bool
from .aws import ROLE_ARN, SENDERS, AwsSettings
from .calls import BUDGET_S
from .errors import BadInput
from .sources import ID_SOURCES

MISSING_FEATURE_POLICIES = ("error", "empty")
TTL_POLICIES = ("source", "target_default", "none")
GROUP_NAME = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationOptions:
    batch_size: int = 100
    max_workers: int = 4
    max_tps: float | None = None
    write_api: str = "auto"
    filter_query: str | None = None
    clear_target: bool = False
    confirm_clear: str | None = None
    dry_run: bool = False
    resume_from: str | None = None
    missing_features: str = "error"
    ttl: str = "source"
    id_source: str = "auto"
    partition_records: int = 5000
    retry_budget_seconds: float = BUDGET_S  # every call: writes, reads, the clear
    progress_interval_seconds: float = 5.0
    # ---- issue 7 (verify-sources): reads, verification, offline store status ----
    read_tps: float = 400.0  # BatchGetRecord calls/s: 80% of its 500 TPS account quota
    verify: str = "sample:1000"  # none | sample:N | all
    allow_inactive_offline_store: bool = False  # read a Blocked/Disabled offline store anyway


@dataclass(frozen=True)
class AwsSide:
    """aws.source / aws.target: what one side overrides of `aws:` (unset: inherited)."""

    region: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Settings:
    source: str
    target: str
    aws: AwsSettings = field(default_factory=AwsSettings)  # the job's own: S3, STS
    source_side: AwsSide = field(default_factory=AwsSide)
    target_side: AwsSide = field(default_factory=AwsSide)
    local_root: str | None = None
    output_uri: str = "./migration-runs"
    run_id: str = ""
    resume: str | None = None
    retry_failures: str | None = None
    yes: bool = False
    preflight: bool = False  # run only the preflight checks
    migration: MigrationOptions = field(default_factory=MigrationOptions)

    @property
    def source_aws(self) -> AwsSettings:
        """Every call on the source group (describe, ListRecords, BatchGetRecord)."""
        return self.aws.for_side(**dataclasses.asdict(self.source_side))

    @property
    def target_aws(self) -> AwsSettings:
        """Every call on the target group (describe, writes, clear, verify)."""
        return self.aws.for_side(**dataclasses.asdict(self.target_side))


def _load_yaml(conf: str, aws_hint: AwsSettings) -> dict[str, Any]:
    try:
        if conf.startswith("s3://"):
            from . import storage  # local import: only needed for s3:// confs

            text = storage.Store(aws=aws_hint).read_text(conf)
        else:
            with open(conf, encoding="utf-8") as fh:
                text = fh.read()
    except FileNotFoundError:
        raise BadInput(f"conf file {conf} not found: pass an existing --conf path") from None
    except Exception as exc:  # OSError locally; a botocore error (no bucket, denied) on S3
        from .aws import error_code

        raise BadInput(f"cannot read conf {conf} ({error_code(exc)}): check the path and "
                       "your access to it") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise BadInput(f"conf {conf} is not valid YAML ({first}): fix the file") from None
    if not isinstance(data, dict):
        raise BadInput(f"conf {conf} must be a YAML mapping of sections (aws, storage, ...)")
    return data


_SIDE_KEYS = {f.name for f in dataclasses.fields(AwsSide)}
_SECTIONS = {
    "aws": {"region", "endpoint_url", "s3_endpoint_url", "sts_endpoint_url", "sender",
            "source", "target"},
    "storage": {"local_root"},
    "output": {"uri"},
    "migration": {f.name for f in dataclasses.fields(MigrationOptions)},
}
_TOP_LEVEL = {"source", "target"}


_SECRET_KEY = re.compile(r"(access_key|secret|session_token|password|credential)", re.I)
# keys of earlier versions: say what replaced them rather than "unknown key"
_REPLACED = {
    "migration.max_attempts": "retries are bounded by time now; set "
                              f"migration.retry_budget_seconds (default {BUDGET_S:g})",
}


def _refuse_secrets(data: Any, conf: str, where: str = "") -> None:
    """Credentials never go in the conf (it is shared: buckets, job definitions, tickets).
    The value is not echoed."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        name = f"{where}{key}"
        if isinstance(key, str) and _SECRET_KEY.search(key):
            raise BadInput(f"conf {conf}: {name} looks like a credential; keep credentials out "
                           "of the conf: the job uses its IAM role (Glue, EMR) or the standard "
                           "chain (AWS_PROFILE, environment, instance profile)")
        _refuse_secrets(value, conf, f"{name}.")


def _check_keys(data: dict[str, Any], conf: str) -> None:
    _refuse_secrets(data, conf)
    for key, value in data.items():
        if key in _TOP_LEVEL:
            continue
        if key not in _SECTIONS:
            known = ", ".join(sorted([*_SECTIONS, *_TOP_LEVEL]))
            raise BadInput(f"conf {conf}: unknown section {key!r} (known: {known})")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BadInput(f"conf {conf}: section {key!r} must be a mapping")
        for sub in value:
            if (replaced := _REPLACED.get(f"{key}.{sub}")) is not None:
                raise BadInput(f"conf {conf}: {key}.{sub} is gone: {replaced}")
            if sub not in _SECTIONS[key]:
                known = ", ".join(sorted(_SECTIONS[key]))
                raise BadInput(f"conf {conf}: unknown key {key}.{sub} (known: {known})")
    for side in ("source", "target"):
        _check_side((data.get("aws") or {}).get(side), side, conf)


def _check_side(value: Any, side: str, conf: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise BadInput(f"conf {conf}: aws.{side} must be a mapping (region, endpoint_url, "
                       "role_arn, external_id)")
    for sub in value:
        if sub not in _SIDE_KEYS:
            known = ", ".join(sorted(_SIDE_KEYS))
            raise BadInput(f"conf {conf}: unknown key aws.{side}.{sub} (known: {known})")
    _check_text(value, *sorted(_SIDE_KEYS), section=f"aws.{side}")


def _check_text(section_data: dict[str, Any], *keys: str, section: str = "") -> None:
    for key in keys:
        value = section_data.get(key)
        if value is not None and not isinstance(value, str):
            name = f"{section}.{key}" if section else key
            raise BadInput(f"conf: {name} must be text, got {value!r}")


def _coerce(name: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    try:
        if kind is bool:
            return value if isinstance(value, bool) else parse_bool(str(value))
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        raise BadInput(f"migration.{name} must be {kind.__name__}, got {value!r}") from None


_OPTION_TYPES = {
    "batch_size": int, "max_workers": int, "max_tps": float, "write_api": str,
    "filter_query": str, "clear_target": bool, "confirm_clear": str, "dry_run": bool,
    "resume_from": str, "missing_features": str, "ttl": str, "id_source": str,
    "partition_records": int, "progress_interval_seconds": float,
    "read_tps": float, "verify": str, "allow_inactive_offline_store": bool,
    "retry_budget_seconds": float,
}
VERIFY_MODE = re.compile(r"^(none|all|sample:[1-9][0-9]*)$")


def verify_sample_size(mode: str) -> int | None:
    """None for all; 0 for none; N for sample:N."""
    if mode == "all":
        return None
    return 0 if mode == "none" else int(mode.split(":", 1)[1])



def load_settings(argv: list[str], prog: str = "migrate.py") -> Settings:
    """Parse job arguments, read the conf they name, merge (CLI wins) and validate."""
    ns = parse_args(argv, prog)
    data: dict[str, Any] = {}
    if ns.conf:
        data = _load_yaml(ns.conf, AwsSettings())
        _check_keys(data, ns.conf)
    aws_d = data.get("aws") or {}
    mig_d = dict(data.get("migration") or {})
    _check_text(data, "source", "target")
    _check_text(aws_d, "region", "endpoint_url", "s3_endpoint_url", "sts_endpoint_url",
                "sender", section="aws")
    _check_text(data.get("storage") or {}, "local_root", section="storage")
    _check_text(data.get("output") or {}, "uri", section="output")

    cli_options = {
        "batch_size": ns.batch_size, "max_workers": ns.max_workers, "max_tps": ns.max_tps,
        "write_api": ns.write_api, "filter_query": ns.filter_query,
        "clear_target": ns.clear_target, "dry_run": ns.dry_run, "resume_from": ns.resume_from,
        "verify": ns.verify,
    }
    mig_d.update({k: v for k, v in cli_options.items() if v is not None})
    options = MigrationOptions(
        **{k: _coerce(k, v, _OPTION_TYPES[k]) for k, v in mig_d.items() if v is not None}
    )

    settings = Settings(
        source=ns.source or data.get("source") or "",
        target=ns.target or data.get("target") or "",
        aws=AwsSettings(
            region=str(aws_d.get("region") or "us-east-1"),
            endpoint_url=aws_d.get("endpoint_url"),
            s3_endpoint_url=aws_d.get("s3_endpoint_url"),
            sts_endpoint_url=aws_d.get("sts_endpoint_url"),
            sender=aws_d.get("sender") or "fast",
        ),
        source_side=AwsSide(**(aws_d.get("source") or {})),
        target_side=AwsSide(**(aws_d.get("target") or {})),
        local_root=(data.get("storage") or {}).get("local_root"),
        output_uri=str((data.get("output") or {}).get("uri") or "./migration-runs"),
        run_id=ns.run_id or ns.resume or _new_run_id(),
        resume=ns.resume,
        retry_failures=ns.retry_failures,
        yes=bool(ns.yes),
        preflight=bool(ns.preflight),
        migration=options,
    )
    validate(settings)
    return settings


_LEADING_WHERE = re.compile(r"^where\b\s*", re.IGNORECASE)


def normalize_filter(query: str | None) -> str | None:
    """The seed's --filter-query accepts `WHERE x` as well as `x`. Given but empty (`WHERE `
    alone: an unset variable in a script) is refused rather than read as "everything"."""
    if query is None:
        return None
    text = _LEADING_WHERE.sub("", query.strip(), count=1).strip()
    if not text:
        raise BadInput(f"--filter-query {query!r} is empty: give a condition, or leave the "
                       "option out to migrate every record")
    return text


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def validate(s: Settings) -> None:
    m = s.migration
    if s.aws.sender not in SENDERS:
        raise BadInput(f"aws.sender must be one of {', '.join(SENDERS)}")
    for role, name in (("source", s.source), ("target", s.target)):
        if not name and (s.resume or s.retry_failures):
            continue  # the earlier run's plan names the groups
        if not name:
            raise BadInput(f"no {role} feature group: pass --{role} NAME or set {role}: "
                           "in the conf")
        if not GROUP_NAME.match(name):
            raise BadInput(f"--{role} {name!r} is not a valid feature group name")
    if s.source and s.source == s.target:
        raise BadInput("source and target are the same feature group: pick another --target")
    if not 1 <= m.batch_size <= 10_000:
        raise BadInput(f"--batch-size must be between 1 and 10000, got {m.batch_size}")
    if not 1 <= m.max_workers <= 64:
        raise BadInput(f"--max-workers must be between 1 and 64, got {m.max_workers}")
    if m.max_tps is not None and not m.max_tps > 0:
        raise BadInput(f"--max-tps must be a positive number, got {m.max_tps}")
    if m.write_api not in WRITE_API_CHOICES:
        raise BadInput(f"migration.write_api must be one of {', '.join(WRITE_API_CHOICES)}")
    if m.missing_features not in MISSING_FEATURE_POLICIES:
        raise BadInput("migration.missing_features must be 'error' or 'empty'")
    if m.ttl not in TTL_POLICIES:
        raise BadInput(f"migration.ttl must be one of {', '.join(TTL_POLICIES)}")
    if m.id_source not in ID_SOURCES:
        raise BadInput(f"migration.id_source must be one of {', '.join(ID_SOURCES)}")
    if not 100 <= m.partition_records <= 10_000_000:
        raise BadInput("migration.partition_records must be between 100 and 10000000")
    if not 0.1 <= m.progress_interval_seconds <= 3600:
        raise BadInput("migration.progress_interval_seconds must be between 0.1 and 3600, "
                       f"got {m.progress_interval_seconds}")
    if not 1 <= m.retry_budget_seconds <= 86400:
        raise BadInput("migration.retry_budget_seconds must be between 1 and 86400, "
                       f"got {m.retry_budget_seconds}")
    if m.max_tps is not None and not math.isfinite(m.max_tps):
        raise BadInput(f"--max-tps must be a finite number, got {m.max_tps}")
    normalize_filter(m.filter_query)
    if not m.read_tps > 0:
        raise BadInput(f"migration.read_tps must be a positive number, got {m.read_tps}")
    if not VERIFY_MODE.match(m.verify):
        raise BadInput(f"--verify / migration.verify must be none, all or sample:N, "
                       f"got {m.verify!r}")
    if m.resume_from is not None and not m.resume_from.strip():
        raise BadInput("--resume-from needs a record id")
    for label, run_id in (("--resume", s.resume), ("--run-id", s.run_id)):
        if run_id and not RUN_ID.match(run_id):
            raise BadInput(f"{label} {run_id!r}: use letters, digits, '.', '_' or '-'")
    if s.resume and s.retry_failures:
        raise BadInput("--resume and --retry-failures cannot be combined: run them one at a time")
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", s.output_uri)
    if scheme and scheme.group(1).lower() not in ("s3", "file"):
        raise BadInput(f"output.uri {s.output_uri!r}: use an s3:// URI or a local path "
                       f"({scheme.group(1)}:// is not supported)")
    for name, url in (("aws.endpoint_url", s.aws.endpoint_url),
                      ("aws.sts_endpoint_url", s.aws.sts_endpoint_url),
                      ("aws.source.endpoint_url", s.source_side.endpoint_url),
                      ("aws.target.endpoint_url", s.target_side.endpoint_url)):
        if url and not re.match(r"^https?://", url):
            raise BadInput(f"{name} must start with http:// or https://, got {url}")
    for side, given in (("source", s.source_side), ("target", s.target_side)):
        if given.role_arn and not ROLE_ARN.match(given.role_arn):
            raise BadInput(f"aws.{side}.role_arn {given.role_arn!r} is not an IAM role ARN "
                           "(arn:aws:iam::123456789012:role/NAME)")
        if given.external_id and not given.role_arn:
            raise BadInput(f"aws.{side}.external_id is sent with AssumeRole: set "
                           f"aws.{side}.role_arn too")
        if given.region is not None and not re.match(r"^[a-z]{2}(-[a-z]+)+-\d+$",
                                                     given.region):
            raise BadInput(f"aws.{side}.region {given.region!r} is not an AWS region "
                           "(e.g. eu-west-1)")
