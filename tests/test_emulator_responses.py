"""Protocol-level answers (feature_store_emulator/responses.py, urls.py): signing, the region
of the credential scope, error codes and statuses per protocol."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from emulator_helpers import emulator_group, error_of
from jobtools import fv, unique


def test_region_comes_from_the_credential_scope(emulator, boto_session, sm):
    eu = boto_session.client("sagemaker", region_name="eu-west-1", endpoint_url=emulator.url)
    name = emulator_group(eu)
    d = eu.describe_feature_group(FeatureGroupName=name)
    assert ":eu-west-1:" in d["FeatureGroupArn"]
    assert "/sagemaker/eu-west-1/offline-store/" in (
        d["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"])
    assert error_of(sm.describe_feature_group, FeatureGroupName=name)[0] == "ResourceNotFound"


def test_missing_authorization_is_forbidden(emulator, boto_session):
    def raw(method, path, body=None, headers=None):
        req = urllib.request.Request(emulator.url + path, data=body, method=method,
                                     headers=headers or {})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        return info.value

    from botocore import UNSIGNED

    unsigned = boto_session.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                                   endpoint_url=emulator.url,
                                   config=Config(signature_version=UNSIGNED))
    assert error_of(unsigned.get_record, FeatureGroupName="anything",
                    RecordIdentifierValueAsString="a") == ("AccessForbidden", 403)
    err = raw("GET", "/FeatureGroup/anything?RecordIdentifierValueAsString=a")
    assert err.code == 403
    assert err.headers["x-amzn-ErrorType"] == "AccessForbidden"
    assert json.loads(err.read())["__type"] == "AccessForbidden"
    err = raw("POST", "/", b"{}", {"X-Amz-Target": "SageMaker.ListFeatureGroups",
                                   "Content-Type": "application/x-amz-json-1.1",
                                   "Authorization": "Basic abc"})
    assert err.code == 403
    assert json.loads(err.read())["__type"] == "AccessDeniedException"


def test_unknown_group_follows_each_operations_error_list(fsr):
    """botocore's sagemaker-featurestore-runtime service-2.json, ``operations.<Op>.errors``:
    GetRecord and ListRecords list ResourceNotFound (404); PutRecord and DeleteRecord do not,
    and the service answers ValidationError "Resource Not Found" there (DESIGN.md §2)."""
    name = unique("missing")
    model = fsr.meta.service_model
    calls = [
        (fsr.put_record, "PutRecord", dict(Record=fv(id="a", event_time="2024-01-01T00:00:00Z"))),
        (fsr.get_record, "GetRecord", dict(RecordIdentifierValueAsString="a")),
        (fsr.list_records, "ListRecords", {}),
        (fsr.delete_record, "DeleteRecord", dict(RecordIdentifierValueAsString="a",
                                                 EventTime="2024-01-01T00:00:00Z")),
    ]
    for call, op, kwargs in calls:
        listed = {e.name for e in model.operation_model(op).error_shapes}
        with pytest.raises(ClientError) as info:
            call(FeatureGroupName=name, **kwargs)
        err = info.value.response["Error"]
        status = info.value.response["ResponseMetadata"]["HTTPStatusCode"]
        if "ResourceNotFound" in listed:
            assert (err["Code"], status) == ("ResourceNotFound", 404), op
        else:
            assert (err["Code"], status) == ("ValidationError", 400), op
            assert err["Message"].startswith("Resource Not Found"), op
