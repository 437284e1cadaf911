"""The one module that talks to AWS: boto3 clients and the calls the job makes.

Retries are ours (calls.py), so botocore's own retries are off. botocore's exception types
are known here only: :func:`describe_error` turns any exception a call raises into
(kind, code, message), so every caller treats them the same way.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

# Every code botocore's own retry logic treats as throttling: retries/standard.py
# ThrottledRetryableChecker._THROTTLED_ERROR_CODES (copied, and joined with the installed
# botocore's list when it has one) and data/_retry.json's throttling policies; plus the HTTP
# statuses that mean throttling whatever the code: 429 (standard.py ThrottlingStatusCodeChecker,
# _retry.json "too_many_requests") and 509 (_retry.json "limit_exceeded").
THROTTLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
})
try:
    from botocore.retries.standard import ThrottledRetryableChecker

    THROTTLE_CODES |= frozenset(getattr(ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES", ()))
except ImportError:  # an old botocore without the standard retry mode
    pass
THROTTLE_STATUSES = frozenset({429, 509})
RETRYABLE_CODES = frozenset({"InternalFailure", "ServiceUnavailable", "InternalServerError"})
SYSTEMIC_CODES = frozenset(
    {"AccessForbidden", "AccessDeniedException", "UnrecognizedClientException",
     "InvalidSignatureException", "ExpiredTokenException",
     # STS AssumeRole refused (during a refresh too), or no credentials to assume it with:
     # every call of the side would fail the same way
     "AccessDenied", "InvalidClientTokenId", "RegionDisabledException",
     "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
)
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
# PutRecord, DeleteRecord and BatchGetRecord list no ResourceNotFound (botocore's
# sagemaker-featurestore-runtime service-2.json): a missing group is a ValidationError there.
VALIDATION_CODES = frozenset({"ValidationError", "ValidationException"})

# What a call may raise that we classify; anything else is a bug and ends the task.
AWS_ERRORS = (ClientError, BotoCoreError)

THROTTLED = "throttled"
RETRYABLE = "retryable"
SYSTEMIC = "systemic"
PERMANENT = "permanent"
NOT_FOUND = "not_found"  # the group may be gone: confirm before stopping (calls.Caller.gone)


ROLE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
ROLE_SESSION_NAME = "fsmigrate"


@dataclass(frozen=True)
class AwsSettings:
    """Where and as whom one side's calls go. Hashable (a client-cache key) and shipped to the
    executors, so it holds no secret: with ``role_arn`` every process assumes the role itself."""

    region: str = "us-east-1"
    endpoint_url: str | None = None  # SageMaker control plane and runtime (the emulator locally)
    s3_endpoint_url: str | None = None
    # BatchWriteRecord through fast_http ("fast") or through boto3's generic path ("boto3")
    sender: str = "fast"
    sts_endpoint_url: str | None = None  # STS (moto locally)
    role_arn: str | None = None  # assumed through STS with the job's own credentials
    external_id: str | None = None
    sts_region: str | None = None  # the job's own region: where AssumeRole goes

    def for_side(self, region: str | None = None, endpoint_url: str | None = None,
                 role_arn: str | None = None, external_id: str | None = None) -> AwsSettings:
        """These settings with one side's overrides (aws.source / aws.target); unset ones
        inherit. No overrides: equal settings (the same cached clients)."""
        side = replace(self, region=region or self.region,
                       endpoint_url=endpoint_url or self.endpoint_url,
                       role_arn=role_arn or self.role_arn,
                       external_id=external_id or self.external_id)
        if side.role_arn and not side.sts_region:
            side = replace(side, sts_region=self.region)
        return side

    def describe(self) -> str:
        """For messages: the region, and the role when one is assumed."""
        return self.region + (f", as role {self.role_arn}" if self.role_arn else "")


SENDERS = ("fast", "boto3")


def _config(max_pool: int = 10, validate: bool = True, timeout: float = 30.0) -> Config:
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},  # 1 = no botocore retries
        max_pool_connections=max_pool,
        parameter_validation=validate,
        connect_timeout=timeout,
        read_timeout=timeout,
    )


class _NoCache(dict):
    """The fetcher's cache, kept empty: the refreshable credentials are the cache, and the
    fetcher's own one (checked against the wall clock) would answer a refresh with the very
    credentials being replaced."""

    def __setitem__(self, key, value) -> None:
        pass


_role_credentials: dict[tuple, DeferredRefreshableCredentials] = {}
_sessions_lock = threading.Lock()


def role_credentials(aws: AwsSettings, time_fetcher=None) -> DeferredRefreshableCredentials:
    """The credentials of ``aws.role_arn`` in this process: botocore's own AssumeRole fetcher
    behind refreshable credentials, so they are fetched on first use and again ahead of their
    expiry, whatever the run's length. AssumeRole is called with the job's own credentials (the
    default chain) in the job's region (``sts_region``, ``sts_endpoint_url``). One per process
    and role (keyed by pid too: a forked child refreshes on its own). ``time_fetcher``: a
    clock for tests (botocore's ``_local_now`` otherwise)."""
    key = (os.getpid(), aws.role_arn, aws.external_id, aws.sts_region, aws.sts_endpoint_url)
    with _sessions_lock:
        credentials = _role_credentials.get(key) if time_fetcher is None else None
        if credentials is not None:
            return credentials
        base = botocore.session.Session()
        source = base.get_credentials()
        if source is None:
            raise NoCredentialsError()
        extra = {"RoleSessionName": ROLE_SESSION_NAME}
        if aws.external_id:
            extra["ExternalId"] = aws.external_id
        sts_config = Config(retries={"mode": "standard"}, connect_timeout=30, read_timeout=30)
        fetcher = AssumeRoleCredentialFetcher(
            partial(base.create_client, region_name=aws.sts_region or aws.region,
                    endpoint_url=aws.sts_endpoint_url, config=sts_config),
            source, aws.role_arn, extra_args=extra, cache=_NoCache())
        kwargs = {"time_fetcher": time_fetcher} if time_fetcher is not None else {}
        credentials = DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role",
                                                     **kwargs)
        if time_fetcher is None:
            _role_credentials[key] = credentials
        return credentials


def session(aws: AwsSettings) -> boto3.session.Session:
    """A boto3 session for one side: the default chain (Glue's or EMR's role, AWS_PROFILE, the
    environment) without ``role_arn``, else that role's refreshable credentials. A new session
    per client, as boto3 sessions are not thread-safe; the credentials object is shared."""
    if not aws.role_arn:
        return boto3.session.Session()
    core = botocore.session.Session()
    core._credentials = role_credentials(aws)  # what get_credentials() hands every client
    return boto3.session.Session(botocore_session=core)


def control_client(aws: AwsSettings):
    return session(aws).client(
        "sagemaker", region_name=aws.region, endpoint_url=aws.endpoint_url, config=_config()
    )


_runtime_clients: dict[tuple[int, AwsSettings, int], Any] = {}
_runtime_clients_lock = threading.Lock()


def runtime_client(aws: AwsSettings, max_pool: int = 10):
    """One runtime client per settings and pool size per process (~0.2 s to build one).

    PySpark reuses Python workers across tasks, so later partitions skip the model loading;
    boto3 clients are thread-safe. Keyed by pid too, so a forked child never shares sockets.
    Parameter validation costs ~100 us per record on the write path; our records are built
    by code, not typed by users, so it is off here.
    """
    key = (os.getpid(), aws, max_pool)
    with _runtime_clients_lock:
        client = _runtime_clients.get(key)
        if client is None:
            client = _runtime_clients[key] = session(aws).client(
                "sagemaker-featurestore-runtime",
                region_name=aws.region,
                endpoint_url=aws.endpoint_url,
                config=_config(max_pool=max_pool, validate=False),
            )
        return client


_writer_clients: dict[tuple[int, AwsSettings, int], Any] = {}


def writer_client(aws: AwsSettings, max_pool: int = 10):
    """The runtime client the writer uses: with ``aws.sender == "fast"`` BatchWriteRecord goes
    through :mod:`fsmigrate.fast_http` (same credentials, endpoint and signer as boto3, a tenth
    of the CPU: scripts/bench_writer.py); every other call, and everything with "boto3", is
    :func:`runtime_client`'s."""
    client = runtime_client(aws, max_pool)
    if aws.sender != "fast":
        return client
    from .fast_http import FastRuntimeClient

    key = (os.getpid(), aws, max_pool)
    with _runtime_clients_lock:
        fast = _writer_clients.get(key)
        if fast is None:
            # a role's refreshable credentials: fast_http freezes them per request, so a
            # refresh applies to the next call
            fast = _writer_clients[key] = FastRuntimeClient(
                client, session(aws).get_credentials(), max_pool)
        return fast


def s3_client(aws: AwsSettings):
    """The job's own identity, whatever the sides assume (run folder, conf, offline stores)."""
    return boto3.session.Session().client(
        "s3", region_name=aws.region, endpoint_url=aws.s3_endpoint_url, config=_config()
    )


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "Unknown")
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return "ConnectionError"
    return type(exc).__name__


def classify(code: str, status: int | None = None, message: str = "") -> str:
    """Map an error (code, HTTP status, message; from an exception or a batch entry) to what
    the caller should do."""
    if code in THROTTLE_CODES or status in THROTTLE_STATUSES:
        return THROTTLED
    if code in NOT_FOUND_CODES or (code in VALIDATION_CODES
                                   and "resource not found" in message.lower()):
        return NOT_FOUND
    if code in SYSTEMIC_CODES:
        return SYSTEMIC
    if code in RETRYABLE_CODES or code == "ConnectionError" or (status or 0) >= 500:
        return RETRYABLE
    return PERMANENT


def describe_error(exc: BaseException) -> tuple[str, str, str]:
    """(kind, code, message) of an exception raised by a call; kind as :func:`classify` gives."""
    status = None
    message = str(exc)
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = exc.response.get("Error", {}).get("Message") or message
    code = error_code(exc)
    return classify(code, status, message), code, message


def shorten(message: str, limit: int = 300) -> str:
    """One line of at most `limit` characters, for error messages and failure files."""
    return " ".join(str(message).split())[:limit]


# ---- control plane -------------------------------------------------------------------------

def describe_feature_group(client, name: str) -> dict[str, Any]:
    """DescribeFeatureGroup with FeatureDefinitions gathered across pages."""
    desc = client.describe_feature_group(FeatureGroupName=name)
    definitions = list(desc.get("FeatureDefinitions", []))
    token = desc.get("NextToken")
    while token:
        page = client.describe_feature_group(FeatureGroupName=name, NextToken=token)
        definitions.extend(page.get("FeatureDefinitions", []))
        token = page.get("NextToken")
    desc["FeatureDefinitions"] = definitions
    desc.pop("NextToken", None)
    return desc


# ---- runtime -------------------------------------------------------------------------------

def batch_write_record(client, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return client.batch_write_record(Entries=entries)


def put_record(client, group: str, record: list[dict[str, Any]],
               target_stores: list[str] | None = None, ttl: dict | None = None) -> None:
    kwargs: dict[str, Any] = {"FeatureGroupName": group, "Record": record}
    if target_stores:
        kwargs["TargetStores"] = target_stores
    if ttl:
        kwargs["TtlDuration"] = ttl
    client.put_record(**kwargs)


def batch_get_record(client, group: str, ids: list[str], feature_names: list[str] | None = None,
                     expiration: bool = True) -> dict[str, Any]:
    ident: dict[str, Any] = {"FeatureGroupName": group, "RecordIdentifiersValueAsString": ids}
    if feature_names:
        ident["FeatureNames"] = feature_names
    kwargs: dict[str, Any] = {"Identifiers": [ident]}
    if expiration:
        kwargs["ExpirationTimeResponse"] = "Enabled"
    return client.batch_get_record(**kwargs)


def delete_record(client, group: str, record_id: str, event_time: str,
                  target_stores: list[str] | None = None, mode: str = "HardDelete") -> None:
    kwargs: dict[str, Any] = {
        "FeatureGroupName": group,
        "RecordIdentifierValueAsString": record_id,
        "EventTime": event_time,
        "DeletionMode": mode,
    }
    if target_stores:
        kwargs["TargetStores"] = target_stores
    client.delete_record(**kwargs)


def has_batch_write(client) -> bool:
    return "BatchWriteRecord" in client.meta.service_model.operation_names


def has_list_records(client) -> bool:
    """ListRecords is missing from older botocore releases (e.g. the boto3 Glue bundles)."""
    return "ListRecords" in client.meta.service_model.operation_names


def list_records_page(client, group: str, next_token: str | None = None, max_results: int = 100,
                    include_soft_deleted: bool = False) -> tuple[list[str], str | None]:
    """One ListRecords page: (record ids, next token or None)."""
    kwargs: dict[str, Any] = {"FeatureGroupName": group, "MaxResults": max_results}
    if next_token:
        kwargs["NextToken"] = next_token
    if include_soft_deleted:
        kwargs["IncludeSoftDeletedRecords"] = True
    page = client.list_records(**kwargs)
    return list(page.get("RecordIdentifiers") or []), page.get("NextToken") or None


def get_record(client, group: str, record_id: str,
               feature_names: list[str] | None = None) -> dict[str, Any]:
    """GetRecord; a missing record gives an empty result (no "Record" key), not an error."""
    kwargs: dict[str, Any] = {"FeatureGroupName": group, "RecordIdentifierValueAsString": record_id}
    if feature_names:
        kwargs["FeatureNames"] = feature_names
    return client.get_record(**kwargs)


# ---- S3 (run folder files; conf files on S3) -----------------------------------------------

class S3NotFound(Exception):
    pass


def s3_get_text(client, bucket: str, key: str) -> str:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise S3NotFound(f"s3://{bucket}/{key}") from None
        raise


def s3_put_text(client, bucket: str, key: str, text: str) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))


def s3_list_objects(client, bucket: str, prefix: str) -> list[tuple[str, int]]:
    """(key, size in bytes) of every object under a prefix."""
    out: list[tuple[str, int]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend((obj["Key"], int(obj.get("Size", 0))) for obj in page.get("Contents", []))
    return out


def s3_delete_keys(client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk],
                                                     "Quiet": True})


# ---- preflight probes: harmless calls that show a run has what it needs --------------------

def botocore_version() -> str:
    import botocore

    return botocore.__version__


def list_records_probe(client, group: str) -> None:
    """ListRecords with one result: shows the permission without reading the store."""
    client.list_records(FeatureGroupName=group, MaxResults=1)


def s3_list_probe(client, bucket: str, prefix: str) -> bool:
    """One ListObjectsV2 key under a prefix: the permission, and whether it holds anything."""
    page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(page.get("Contents"))


def environment_problem(exc: BaseException) -> str | None:
    """One line for what the environment refused (credentials, endpoint, permissions)."""
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials found: run where a role is attached (Glue, EMR) or set "
                "AWS_PROFILE / the standard credential chain")
    if isinstance(exc, NoRegionError):
        return "no AWS region: set aws.region in the conf"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the endpoint: {exc}"
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        if getattr(exc, "operation_name", "") == "AssumeRole":
            return (f"cannot assume the role ({code}): {shorten(err.get('Message') or exc)}; "
                    "the job's own role needs sts:AssumeRole on it and the role's trust "
                    "policy must allow the job's role (README: cross-account)")
        if code in ("AccessDenied", "AccessDeniedException", "AccessForbidden",
                    "UnrecognizedClientException", "InvalidSignatureException",
                    "ExpiredTokenException", "InvalidClientTokenId"):
            return (f"access denied ({code}): {err.get('Message') or exc}; check the role's "
                    "permissions (README: permissions)")
    return None
