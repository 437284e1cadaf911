"""Error classification (fsmigrate.aws.classify / describe_error) against botocore's own lists."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from fsmigrate import aws
from jobtools import assumed_roles

BOTOCORE_DATA = __import__("botocore").__path__[0] + "/data/_retry.json"


def client_error(code: str, status: int, message: str = "m") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutRecord")


def test_every_code_botocore_retries_as_throttling_is_throttled():
    """botocore/retries/standard.py ThrottledRetryableChecker and data/_retry.json's
    throttling policies (service_error_code)."""
    from botocore.retries.standard import ThrottledRetryableChecker

    codes = set(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
    with open(BOTOCORE_DATA) as f:
        definitions = json.load(f)["definitions"]
    codes |= {d["applies_when"]["response"]["service_error_code"]
              for d in definitions.values()
              if "service_error_code" in d.get("applies_when", {}).get("response", {})}
    assert {"ThrottledException", "ProvisionedThroughputExceededException", "SlowDown"} <= codes
    for code in codes:
        assert aws.describe_error(client_error(code, 400))[0] == aws.THROTTLED, code


@pytest.mark.parametrize("status", [429, 509])
def test_throttling_statuses_are_throttled_whatever_the_code(status):
    """standard.py ThrottlingStatusCodeChecker (429); _retry.json too_many_requests (429),
    limit_exceeded (509)."""
    assert aws.describe_error(client_error("Unknown", status))[0] == aws.THROTTLED
    assert aws.describe_error(client_error("", status))[0] == aws.THROTTLED


@pytest.mark.parametrize("code, status, message, kind", [
    ("ResourceNotFound", 404, "Resource Not Found: FeatureGroup g not found.", aws.NOT_FOUND),
    ("ValidationError", 400, "Resource Not Found: FeatureGroup g not found.", aws.NOT_FOUND),
    ("ValidationError", 400, "1 validation error detected", aws.PERMANENT),
    ("AccessForbidden", 403, "no", aws.SYSTEMIC),
    ("ServiceUnavailable", 503, "later", aws.RETRYABLE),
])
def test_not_found_is_its_own_kind(code, status, message, kind):
    """PutRecord, DeleteRecord and BatchGetRecord list no ResourceNotFound in the model: a
    missing group is a ValidationError "Resource Not Found" there (DESIGN.md §2)."""
    assert aws.describe_error(client_error(code, status, message))[0] == kind
    assert aws.classify(code, None, message) == kind


# ---- a side's role: assumed through STS (moto's server), refreshed before it expires -------

def test_a_side_with_a_role_calls_as_that_role(moto_s3):
    role = "arn:aws:iam::111111111111:role/fsmigrate-src"
    side = aws.AwsSettings(sts_endpoint_url=moto_s3).for_side(region="eu-west-1", role_arn=role,
                                                               external_id="ext-7")
    sts = aws.session(side).client("sts", region_name="eu-west-1", endpoint_url=moto_s3)
    assert sts.get_caller_identity()["Arn"] == \
        "arn:aws:sts::111111111111:assumed-role/fsmigrate-src/fsmigrate"
    key = aws.role_credentials(side).get_frozen_credentials().access_key
    assumed = assumed_roles()[key]
    assert (assumed.role_arn, assumed.external_id, assumed.session_name) == (
        role, "ext-7", "fsmigrate")
    # one credentials object per process and role: every client shares its refreshes
    assert aws.role_credentials(side) is aws.role_credentials(side)
    writer = aws.writer_client(side)
    assert writer._credentials is aws.role_credentials(side)
    # without a role: the default chain, as before (the tests' base keys)
    plain = aws.session(aws.AwsSettings()).get_credentials().get_frozen_credentials()
    assert plain.access_key == "testing" and plain.token is None


def test_role_credentials_refresh_before_they_expire(moto_s3):
    from datetime import datetime, timedelta

    from dateutil.tz import tzlocal

    side = aws.AwsSettings(sts_endpoint_url=moto_s3).for_side(
        role_arn="arn:aws:iam::111111111111:role/long-run")
    now = [datetime.now(tzlocal())]
    credentials = aws.role_credentials(side, time_fetcher=lambda: now[0])
    first = credentials.get_frozen_credentials()
    assert first.access_key != "testing" and first.token
    now[0] += timedelta(minutes=30)  # moto's credentials last an hour: still fresh
    assert credentials.get_frozen_credentials().access_key == first.access_key
    now[0] += timedelta(minutes=25)  # 5 minutes left: inside botocore's refresh window
    second = credentials.get_frozen_credentials()
    assert second.access_key != first.access_key and second.token != first.token
    assert assumed_roles()[second.access_key].role_arn == side.role_arn


def test_a_refused_assume_role_is_one_environment_line():
    error = ClientError({"Error": {"Code": "AccessDenied", "Message": "User: arn:aws:sts::1:x "
                                   "is not authorized to perform: sts:AssumeRole"},
                         "ResponseMetadata": {"HTTPStatusCode": 403}}, "AssumeRole")
    line = aws.environment_problem(error)
    assert line.startswith("cannot assume the role (AccessDenied): User: arn:aws:sts::1:x")
    assert "sts:AssumeRole on it" in line and "\n" not in line
    # met in a task (a refresh refused): the whole side is refused, not one record
    assert aws.describe_error(error)[0] == aws.SYSTEMIC
