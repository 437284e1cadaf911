"""BatchGetRecord for one partition of ids, with a scripted client: retries, expiry, aborts."""

from __future__ import annotations

import pytest
from fsmigrate.aws import AwsSettings
from fsmigrate.errors import Aborted
from fsmigrate.eventtime import NS
from fsmigrate.sources.online_fetch import FetchJob, fetch_partition
from jobtools import FakeClock


class ScriptedClient:
    """Answers batch_get_record from a script of responses/exceptions; records the calls."""

    def __init__(self, script):
        self.script = list(script)
        self.calls: list[list[str]] = []

    def batch_get_record(self, Identifiers, ExpirationTimeResponse=None):  # noqa: N803
        ids = Identifiers[0]["RecordIdentifiersValueAsString"]
        self.calls.append(list(ids))
        step = self.script.pop(0) if self.script else "all"
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(ids)
        return {"Records": [record(i) for i in ids], "Errors": [],
                "UnprocessedIdentifiers": []}


def record(rid, expires=None):
    out = {"FeatureGroupName": "g", "RecordIdentifierValueAsString": rid,
           "Record": [{"FeatureName": "id", "ValueAsString": rid},
                      {"FeatureName": "et", "ValueAsString": "2024-05-01T12:00:00Z"}]}
    if expires:
        out["ExpiresAt"] = expires
    return out


def client_error(code, status):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code}!"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "BatchGetRecord")


JOB = FetchJob(aws=AwsSettings(), group="g", features=(("id", False), ("et", False)),
                event_time="et", now_ns=1714564800 * NS + NS, max_workers=2, retry_budget_s=30.0)


def fetch(ids, client, job=JOB, clock=None):
    clock = clock or FakeClock()
    return list(fetch_partition(iter(ids), job, client=client, sleep=clock.sleep, clock=clock))


def test_fetch_retries_errors_unprocessed_and_throttled_calls():
    def partial(ids):  # one throttled entry, two unprocessed, the rest answered
        return {"Records": [record(i) for i in ids[3:]],
                "Errors": [{"FeatureGroupName": "g", "RecordIdentifierValueAsString": ids[0],
                            "ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}],
                "UnprocessedIdentifiers": [{"FeatureGroupName": "g",
                                            "RecordIdentifiersValueAsString": ids[1:3]}]}

    client = ScriptedClient([client_error("ThrottlingException", 400),
                             client_error("ServiceUnavailable", 503), partial])
    ids = [f"r{i}" for i in range(5)]
    rows = fetch(ids, client)
    assert sorted(r[0] for r in rows) == ids
    assert client.calls[-1] == ["r0", "r1", "r2"]


def test_fetch_splits_into_calls_of_100_ids_and_drops_missing_ids():
    client = ScriptedClient([lambda ids: {"Records": [record(i) for i in ids if i != "r7"],
                                          "Errors": [], "UnprocessedIdentifiers": []}] * 3)
    rows = fetch([f"r{i}" for i in range(250)], client)
    assert sorted(len(c) for c in client.calls) == [50, 100, 100]
    assert len(rows) == 249 and "r7" not in {r[0] for r in rows}


def test_fetch_flags_expired_records_and_computes_ttl():
    client = ScriptedClient([lambda ids: {"Records": [
        record("old", "2024-05-01T12:00:01Z"),  # == now: expired
        record("new", "2024-05-01T13:00:00.5Z")], "Errors": [], "UnprocessedIdentifiers": []}])
    rows = {r[0]: r for r in fetch(["old", "new"], client)}
    assert rows["old"][2:] == ("2024-05-01T12:00:01Z", 1, True)
    assert rows["new"][2:] == ("2024-05-01T13:00:00.5Z", 3601, False)


@pytest.mark.parametrize("failure", [
    client_error("AccessForbidden", 403),
    client_error("ValidationError", 400),
    lambda ids: {"Records": [], "UnprocessedIdentifiers": [],
                 "Errors": [{"FeatureGroupName": "g", "RecordIdentifierValueAsString": ids[0],
                             "ErrorCode": "ResourceNotFound", "ErrorMessage": "gone"}]},
])
def test_fetch_aborts_on_systemic_and_permanent_errors(failure):
    with pytest.raises(Aborted, match="BatchGetRecord on feature group 'g'"):
        fetch(["a", "b"], ScriptedClient([failure]))


def test_fetch_retries_for_the_budget_then_aborts():
    clock = FakeClock()
    client = ScriptedClient([client_error("ThrottlingException", 400)] * 1000)
    with pytest.raises(Aborted, match="ThrottlingException"):
        fetch(["a"], client, clock=clock)
    assert JOB.retry_budget_s <= clock.now - 1000.0 < JOB.retry_budget_s + 15
    assert len(client.calls) > 10  # more than the attempt count it used to stop at


def test_fetch_waits_out_an_outage_shorter_than_the_budget():
    clock = FakeClock()
    client = ScriptedClient([client_error("ServiceUnavailable", 503)] * 6)  # then answers
    assert [r[0] for r in fetch(["a"], client, clock=clock)] == ["a"]
    assert clock.now - 1000.0 < JOB.retry_budget_s


def test_fetch_aborts_an_outage_longer_than_the_budget_probing_gently():
    clock = FakeClock()
    client = ScriptedClient([client_error("ServiceUnavailable", 503)] * 1000)
    with pytest.raises(Aborted, match="every call has failed for .* retry budget"):
        fetch(["a", "b"], client, clock=clock)
    assert JOB.retry_budget_s <= clock.now - 1000.0 < JOB.retry_budget_s + 15
    assert len(client.calls) < 30  # waited at the gate, one probe at a time
