"""Helpers for the emulator's tests (tests/test_emulator_*.py): groups, records, errors and
the offline files of a group, all through boto3 and the file system."""

from __future__ import annotations

import os
import re
import uuid

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ISO_EVENT = {"FeatureName": "event_time", "FeatureType": "String"}
FEATURES = [
    {"FeatureName": "id", "FeatureType": "String"},
    ISO_EVENT,
    {"FeatureName": "amount", "FeatureType": "Fractional"},
    {"FeatureName": "count", "FeatureType": "Integral"},
    {"FeatureName": "label", "FeatureType": "String"},
]
BASE = (("id", "String"), ("event_time", "String"))
BUCKET_URI = "s3://emu-bucket/offline"
FILE_RE = re.compile(r"\d{8}T\d{6}Z_[A-Za-z0-9]{16}\.parquet")


def uniq(prefix: str = "g") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def defs(*pairs) -> list[dict]:
    return [{"FeatureName": n, "FeatureType": t} for n, t in pairs]


def create_group(sm, name=None, features=None, online=True, offline=True, record_id="id",
                 event_time="event_time", ttl=None, storage=None, **extra) -> str:
    name = name or uniq()
    kwargs = dict(FeatureGroupName=name, RecordIdentifierFeatureName=record_id,
                  EventTimeFeatureName=event_time, FeatureDefinitions=features or FEATURES,
                  **extra)
    if online:
        cfg = {"EnableOnlineStore": True}
        if ttl:
            cfg["TtlDuration"] = ttl
        if storage:
            cfg["StorageType"] = storage
        kwargs["OnlineStoreConfig"] = cfg
    if offline:
        kwargs["OfflineStoreConfig"] = {"S3StorageConfig": {"S3Uri": BUCKET_URI}}
    sm.create_feature_group(**kwargs)
    return name


def rec(**values) -> list[dict]:
    out = []
    for name, value in values.items():
        key = "ValueAsStringList" if isinstance(value, list) else "ValueAsString"
        out.append({"FeatureName": name, key: value})
    return out


def as_dict(record) -> dict:
    return {fv["FeatureName"]: fv.get("ValueAsString", fv.get("ValueAsStringList"))
            for fv in record}


def error_of(call, *args, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    resp = info.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def get(fsr, name, rid, **kw) -> dict:
    resp = fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString=rid, **kw)
    return as_dict(resp["Record"]) if "Record" in resp else {}


def listed(fsr, name, include=False) -> list[str]:
    """One ListRecords page (up to 100 ids)."""
    return fsr.list_records(FeatureGroupName=name, IncludeSoftDeletedRecords=include)[
        "RecordIdentifiers"]


def offline_dir(emulator, sm, name) -> str:
    uri = sm.describe_feature_group(FeatureGroupName=name)["OfflineStoreConfig"][
        "S3StorageConfig"]["ResolvedOutputS3Uri"]
    bucket, _, key = uri[len("s3://"):].partition("/")
    return os.path.join(str(emulator.data_dir), bucket, key)


def read_offline(spark, emulator, sm, name):
    emulator.flush()
    return spark.read.parquet(offline_dir(emulator, sm, name))


def raw_client(emulator, boto_session, service: str):
    """A client without retries or client-side validation, to see the emulator's answers."""
    return boto_session.client(
        service, region_name="us-east-1", endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False))
