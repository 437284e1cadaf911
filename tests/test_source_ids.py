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
    assert len(scan_record_ids(name, client, max_attempts=20)) == 300
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
