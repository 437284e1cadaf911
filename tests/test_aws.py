"""Error classification (fsmigrate.aws.classify / describe_error) against botocore's own lists."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from fsmigrate import aws

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
