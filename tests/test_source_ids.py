"""Record ids of a group: the ListRecords scan against the emulator."""

from __future__ import annotations

import pytest
from fsmigrate import aws
from fsmigrate.aws import AwsSettings
from fsmigrate.errors import Aborted
from fsmigrate.sources.ids import (
    ListRecordsRefused,
    scan_record_ids,
    scan_record_ids_if_possible,
)
from jobtools import create_group, fv, put_records, unique


@pytest.fixture
def client(emulator):
    return aws.runtime_client(AwsSettings(endpoint_url=emulator.url))


def make_group(sm, fsr, count: int, online: bool = True) -> str:
    name = unique("ids")
    create_group(sm, name, [("id", "String"), ("et", "String")], online=online,
                 record_id="id", event_time="et")
    if online:
        put_records(fsr, name, [fv(id=f"i{n:03d}", et="2024-05-01T00:00:00Z")
                                for n in range(count)])
    return name


def test_scan_reads_every_page_and_soft_deleted_ids_on_request(sm, fsr, client):
    name = make_group(sm, fsr, 230)
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="i007",
                      EventTime="2024-06-01T00:00:00Z", DeletionMode="SoftDelete")
    ids = scan_record_ids(name, client)
    assert len(ids) == len(set(ids)) == 229 and "i007" not in ids
    assert sorted(scan_record_ids(name, client, include_soft_deleted=True)) == [
        f"i{n:03d}" for n in range(230)]


def test_throttled_pages_are_retried(emulator, sm, fsr, client, faults):
    name = make_group(sm, fsr, 300)
    throttled_before = emulator.stats()["throttled"]
    faults(throttle_tps=2)
    assert len(scan_record_ids(name, client)) == 300
    assert emulator.stats()["throttled"] > throttled_before  # the fault was really hit


def test_a_group_without_online_store_is_refused_and_falls_back(sm, fsr, client):
    name = make_group(sm, fsr, 0, online=False)
    with pytest.raises(ListRecordsRefused, match=f"ListRecords on feature group '{name}'"):
        scan_record_ids(name, client)
    assert scan_record_ids_if_possible(client, name) is None


def test_a_missing_group_aborts(client):
    with pytest.raises(Aborted, match="ResourceNotFound") as info:
        scan_record_ids_if_possible(client, unique("ids-gone"))
    assert not isinstance(info.value, ListRecordsRefused)


class _FailingPages:
    """list_records answering `errors` (503s, then 429s) before a page of ids."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors, self.calls = list(errors), 0

    def list_records(self, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"RecordIdentifiers": ["a", "b"]}


def _error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "ListRecords")


def test_the_scan_is_retried_for_its_time_budget_not_a_count_of_attempts():
    from jobtools import FakeClock

    clock = FakeClock()
    client = _FailingPages([_error("ServiceUnavailable", 503)] * 5
                           + [_error("ThrottlingException", 400)] * 20)
    ids = scan_record_ids("g", client, retry_budget_s=300.0, sleep=clock.sleep, clock=clock)
    assert ids == ["a", "b"] and client.calls == 26  # 10 attempts used to be the limit
    clock = FakeClock()
    with pytest.raises(Aborted, match="every call has failed .* retry budget"):
        scan_record_ids("g", _FailingPages([_error("ServiceUnavailable", 503)] * 1000),
                        retry_budget_s=20.0, sleep=clock.sleep, clock=clock)
    assert 20.0 <= clock.now - 1000.0 < 35.0
