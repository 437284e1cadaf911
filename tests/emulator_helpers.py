"""What only the emulator's tests (tests/test_emulator_*.py) need on top of the shared helpers
in jobtools: their default group, errors, raw clients and a group's offline files read back."""

from __future__ import annotations

import re
from functools import partial

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from jobtools import as_dict, create_group, offline_dir

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

# jobtools' create_group with these tests' defaults: FEATURES keyed by "id", every group's
# offline store under BUCKET_URI, no RoleArn
emulator_group = partial(create_group, features=FEATURES, record_id="id", s3_uri=BUCKET_URI,
                         role=None)


def error_of(call, *args, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    resp = info.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def get(fsr, name, rid, **kw) -> dict:
    resp = fsr.get_record(FeatureGroupName=name, RecordIdentifierValueAsString=rid, **kw)
    return as_dict(resp["Record"]) if "Record" in resp else {}


def read_offline(spark, emulator, sm, name):
    emulator.flush()
    return spark.read.parquet(str(offline_dir(emulator, sm, name)))


def raw_client(emulator, boto_session, service: str):
    """A client without retries or client-side validation, to see the emulator's answers."""
    return boto_session.client(
        service, region_name="us-east-1", endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False))
