"""The fast BatchWriteRecord sender against boto3, the reference: the same rows written both ways
land as the same records, and both give the same responses and errors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from fsmigrate import aws
from fsmigrate.aws import AwsSettings, describe_error, runtime_client, writer_client
from fsmigrate.errors import BadInput
from fsmigrate.fast_http import FastRuntimeClient
from fsmigrate.settings import load_settings
from fsmigrate.write import WriterSettings, write_partition
from jobtools import create_group, unique

FEATURES = [("rid", "String"), ("ts", "String"), ("n", "Integral"), ("x", "Fractional"),
            ("s", "String"), ("tags", "String", "List")]
COLUMNS = ("rid", "ts", "n", "x", "s", "tags", "ttl")
# TTL counts from the event time: keep it recent so that records with a TTL are still there
EVENT_TIME = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
# values JSON escapes: quotes, backslashes, control characters, non-ASCII, astral plane
ODD = ['quote " and \\ back', "tab\tnew\nline\x01", "naïve ünïcödé ✓", "emoji 😀 𝄞", "", " "]


def rows(n: int) -> list[tuple]:
    out = []
    for i in range(n):
        tags = None if i % 5 == 0 else [ODD[i % len(ODD)], f"t{i}", ""]
        ttl = 3600 + i if i % 3 == 0 else None
        out.append((f"r{i:04d}", EVENT_TIME, str(i - 50), repr(i / 7 - 3),
                    ODD[i % len(ODD)] if i % 4 else None, tags, ttl))
    return out


def make_group(sm) -> str:
    name = unique("fast")
    create_group(sm, name, FEATURES, offline=False, storage="InMemory", record_id="rid",
                 event_time="ts")
    return name


def stored(fsr, group: str, ids: list[str]) -> dict[str, dict]:
    """What the target holds for each id, as BatchGetRecord returns it (with expiry)."""
    out = {}
    for start in range(0, len(ids), 100):
        resp = fsr.batch_get_record(Identifiers=[{
            "FeatureGroupName": group, "RecordIdentifiersValueAsString": ids[start:start + 100]}],
            ExpirationTimeResponse="Enabled")
        assert not resp["Errors"] and not resp["UnprocessedIdentifiers"]
        for rec in resp["Records"]:
            rec.pop("FeatureGroupName")
            out[rec["RecordIdentifierValueAsString"]] = rec
    return out


def test_fast_and_boto3_write_the_same_records(emulator, sm, fsr):
    data = rows(130)
    got = {}
    for sender in aws.SENDERS:
        group = make_group(sm)
        settings = WriterSettings(
            aws=AwsSettings(endpoint_url=emulator.url, sender=sender), target_group=group,
            columns=COLUMNS, record_id_name="rid", collection_features=frozenset({"tags"}),
            ttl_column="ttl", batch_size=40, max_workers=2, write_api="batch")
        result = write_partition(iter(data), settings)
        # 3 batches of 40 (25 + 15), then 10
        assert (result.written, result.failed, result.api_calls) == (len(data), [], 7)
        got[sender] = stored(fsr, group, [r[0] for r in data])

    fast, boto = got["fast"], got["boto3"]
    assert len(fast) == len(data)
    for rid, rec in boto.items():
        assert fast[rid] == rec, rid
    assert sum("ExpiresAt" in rec for rec in fast.values()) == 44
    assert fast["r0001"]["Record"][-1] == {"FeatureName": "tags",
                                           "ValueAsStringList": [ODD[1], "t1", ""]}


def test_writer_client_follows_the_sender_setting(emulator):
    settings = AwsSettings(endpoint_url=emulator.url)
    assert isinstance(writer_client(settings), FastRuntimeClient)
    boto = writer_client(dataclasses.replace(settings, sender="boto3"))
    assert boto is runtime_client(dataclasses.replace(settings, sender="boto3"))
    assert not isinstance(boto, FastRuntimeClient)
    # everything but BatchWriteRecord is the boto3 client's
    assert writer_client(settings).meta.service_model.service_name == \
        "sagemaker-featurestore-runtime"


def both(emulator, call, before=lambda: None):
    """call(client) with the boto3 client and the fast one: (result or error) of each;
    `before` runs before each (re-seeds the emulator's faults)."""
    settings = AwsSettings(endpoint_url=emulator.url)
    out = []
    for client in (runtime_client(settings), FastRuntimeClient(
            runtime_client(settings), boto3.session.Session().get_credentials())):
        before()
        try:
            response = call(client)
            response.pop("ResponseMetadata", None)
            out.append(response)
        except ClientError as exc:
            meta = exc.response["ResponseMetadata"]
            out.append((type(exc).__name__, exc.response["Error"], meta["HTTPStatusCode"],
                        describe_error(exc)))
    return out


def entry(group: str, rid: str, **extra) -> dict:
    return {"FeatureGroupName": group, "Record": [
        {"FeatureName": "rid", "ValueAsString": rid},
        {"FeatureName": "ts", "ValueAsString": EVENT_TIME}, *extra.get("more", [])]}


def test_per_entry_errors_parse_the_same(emulator, sm):
    group = make_group(sm)
    entries = [entry(group, "ok"),
               entry(group, "bad-type", more=[{"FeatureName": "n", "ValueAsString": "x"}]),
               entry(group, "unknown", more=[{"FeatureName": "nope", "ValueAsString": "1"}]),
               entry("no-such-group", "lost")]
    boto, fast = both(emulator, lambda c: c.batch_write_record(Entries=entries))
    assert boto == fast
    assert len(fast["Errors"]) >= 2 and fast["UnprocessedEntries"] == []
    assert all(set(e) == {"Entry", "ErrorCode", "ErrorMessage"} for e in fast["Errors"])


@pytest.mark.parametrize("fault", [{"unprocessed_rate": 1.0}, {"error_rate": 1.0},
                                   {"throttle_tps": 0.001}, {"outage_seconds": 30}])
def test_faults_parse_the_same(emulator, sm, faults, fault):
    group = make_group(sm)
    entries = [entry(group, f"r{i}") for i in range(3)]
    # twice: the throttle's bucket lets a first call through
    boto, fast = both(emulator, lambda c: [c.batch_write_record(Entries=entries)
                                           for _ in range(2)][-1],
                      lambda: faults(**fault, seed=1))
    assert boto == fast
    if "unprocessed_rate" in fault:
        assert len(fast["UnprocessedEntries"]) == 3
    else:
        assert describe_error_kind(fast) == ("throttled" if "throttle_tps" in fault
                                             else "retryable"), fast


def describe_error_kind(outcome) -> str:
    return outcome[3][0]


def test_request_errors_parse_the_same(emulator, sm):
    group = make_group(sm)
    too_many = [entry(group, f"r{i}") for i in range(26)]
    boto, fast = both(emulator, lambda c: c.batch_write_record(Entries=too_many))
    assert boto == fast and fast[1]["Code"] == "ValidationError" and fast[2] == 400


def test_connection_errors_classify_the_same():
    dead = AwsSettings(endpoint_url="http://127.0.0.1:9")
    outcomes = []
    for sender in aws.SENDERS:
        client = writer_client(dataclasses.replace(dead, sender=sender))
        with pytest.raises(aws.AWS_ERRORS) as caught:
            client.batch_write_record(Entries=[entry("g", "r")])
        outcomes.append(describe_error(caught.value)[:2])
    assert outcomes == [("retryable", "ConnectionError")] * 2


def test_the_sender_is_a_conf_setting(tmp_path):
    conf = tmp_path / "conf.yaml"
    base = ["--conf", str(conf), "--source", "a", "--target", "b"]
    conf.write_text("aws:\n  region: us-east-1\n")
    assert load_settings(base).aws.sender == "fast"
    conf.write_text("aws:\n  sender: boto3\n")
    assert load_settings(base).aws.sender == "boto3"
    conf.write_text("aws:\n  sender: curl\n")
    with pytest.raises(BadInput, match="aws.sender"):
        load_settings(base)
