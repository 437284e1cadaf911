"""--clear-target against the emulator with real Spark: ids, online deletes, offline deletes, in
that order."""

from __future__ import annotations

import os
import time

import pytest
from fsmigrate import aws, clear
from fsmigrate.aws import AwsSettings
from fsmigrate.clear import clear_target, plan_clear
from fsmigrate.errors import Aborted
from fsmigrate.groups import Feature, GroupSpec
from fsmigrate.settings import MigrationOptions, Settings
from fsmigrate.sources import IDS_FROM_OFFLINE, IDS_FROM_SCAN
from fsmigrate.storage import Store
from jobtools import (
    create_group,
    fv,
    group_spec,
    list_online_ids,
    op_stats,
    put_records,
    unique,
)

# ---- integration: the emulator and local Spark --------------------------------------------


def make_group(sm, name: str, id_type: str = "String", ts_type: str = "String") -> GroupSpec:
    create_group(sm, name, [("id", id_type), ("ts", ts_type), ("amount", "Fractional")],
                 record_id="id", event_time="ts", s3_uri=f"s3://clear-bucket/{name}")
    return group_spec(sm, name)


def put_rows(fsr, group: str, rows: list[tuple[str, str]]) -> None:
    """(id, event time) rows into both stores."""
    put_records(fsr, group, [fv(id=rid, ts=ts, amount="1.5") for rid, ts in rows],
                stores=["OnlineStore", "OfflineStore"])


def iso_rows(n: int, prefix: str = "r") -> list[tuple[str, str]]:
    return [(f"{prefix}{i:04d}", f"2024-03-{1 + i % 28:02d}T10:00:00Z") for i in range(n)]


def online_ids(fsr, group: str) -> set[str]:
    return list_online_ids(fsr, group, include_soft_deleted=True)


def store_for(emulator) -> Store:
    return Store(aws=AwsSettings(region="us-east-1", endpoint_url=emulator.url),
                 local_root=str(emulator.data_dir))


def run_settings(emulator, target: str, **options) -> Settings:
    return Settings(source="some-source", target=target, yes=True,
                    aws=AwsSettings(region="us-east-1", endpoint_url=emulator.url),
                    local_root=str(emulator.data_dir),
                    migration=MigrationOptions(clear_target=True, **options))


def test_plan_then_clear_empties_both_stores_without_delete_markers(emulator, sm, fsr, spark):
    name = unique("clear-main")
    target = make_group(sm, name)
    rows = iso_rows(60)
    rows.append(("future", "2099-12-31T23:59:59.123456789Z"))  # newer than any delete's now
    put_rows(fsr, name, rows)
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r0001",
                      EventTime="2024-06-01T00:00:00Z", DeletionMode="SoftDelete")
    emulator.flush()
    store = store_for(emulator)
    files = store.list(target.offline_uri)
    assert len(files) >= 2  # several hour partitions, plus 2099

    plan = plan_clear(spark, target, store, AwsSettings("us-east-1", emulator.url))
    assert plan.target == name
    assert plan.online_ids_source == IDS_FROM_SCAN
    assert plan.online_records == 61  # the soft-deleted record is still in the online store
    assert plan.offline_objects == len(files)
    assert plan.offline_bytes == sum(os.path.getsize(store.local_path(f)) for f in files)
    assert plan.to_json()["online_records"] == 61
    assert store.list(target.offline_uri) == files  # planning deleted nothing
    assert len(online_ids(fsr, name)) == 61

    before = op_stats(emulator, "DeleteRecord")
    result = clear_target(spark, target, store, run_settings(emulator, name))
    assert result == {"online_deleted": 61, "online_failed": 0, "offline_deleted": len(files)}

    assert online_ids(fsr, name) == set()
    for rid in ("r0000", "r0001", "r0059", "future"):
        assert "Record" not in fsr.get_record(FeatureGroupName=name,
                                              RecordIdentifierValueAsString=rid)
    assert store.list(target.offline_uri) == []
    after = op_stats(emulator, "DeleteRecord")
    assert after["requests"] - before["requests"] >= 61
    # the future-dated record was refused once, then deleted with a later event time
    assert after["errors"].get("ValidationError", 0) - \
        before["errors"].get("ValidationError", 0) == 1

    emulator.flush()  # HardDelete of the online store only: no delete markers arrive
    assert store.list(target.offline_uri) == []

    put_rows(fsr, name, [("again", "2024-05-01T00:00:00Z")])  # the target still works
    emulator.flush()
    assert len(store.list(target.offline_uri)) == 1
    assert online_ids(fsr, name) == {"again"}


def test_future_dated_record_with_fractional_event_time_is_deleted(emulator, sm, fsr, spark):
    name = unique("clear-future")
    target = make_group(sm, name, ts_type="Fractional")
    now = time.time()
    put_rows(fsr, name, [("past", f"{now - 3600:.3f}"), ("far", "4102444800.5"),
                            ("near", f"{now + 600:.6f}")])
    emulator.flush()
    store = store_for(emulator)
    gets_before = op_stats(emulator, "GetRecord")["requests"]

    result = clear_target(spark, target, store, run_settings(emulator, name))

    assert op_stats(emulator, "GetRecord")["requests"] - gets_before == 2  # "far" and "near"
    assert result["online_deleted"] == 3 and result["offline_deleted"] >= 1
    assert online_ids(fsr, name) == set()
    for rid in ("far", "near"):
        assert "Record" not in fsr.get_record(FeatureGroupName=name,
                                              RecordIdentifierValueAsString=rid)
    assert store.list(target.offline_uri) == []


def test_ids_from_the_offline_store_when_list_records_is_unavailable(emulator, sm, fsr, spark,
                                                                     monkeypatch):
    name = unique("clear-fallback")
    target = make_group(sm, name, id_type="Integral")
    put_rows(fsr, name, [(str(i), "2024-03-01T10:00:00Z") for i in range(40)])
    put_rows(fsr, name, [("7", "2024-03-02T10:00:00Z")])  # a second version of one id
    emulator.flush()
    monkeypatch.setattr(aws, "has_list_records", lambda client: False)
    lists_before = op_stats(emulator, "ListRecords")["requests"]
    store = store_for(emulator)

    plan = plan_clear(spark, target, store, AwsSettings("us-east-1", emulator.url))
    assert (plan.online_ids_source, plan.online_records) == (IDS_FROM_OFFLINE, 40)

    result = clear_target(spark, target, store, run_settings(emulator, name))
    assert result == {"online_deleted": 40, "online_failed": 0,
                      "offline_deleted": plan.offline_objects}
    assert op_stats(emulator, "ListRecords")["requests"] == lists_before  # never called
    assert online_ids(fsr, name) == set()
    assert store.list(target.offline_uri) == []


def test_deletes_that_fail_abort_before_the_offline_store_is_touched(emulator, sm, fsr, spark,
                                                                      faults, monkeypatch):
    name = unique("clear-fail")
    target = make_group(sm, name)
    put_rows(fsr, name, iso_rows(30))
    emulator.flush()
    store = store_for(emulator)
    files = store.list(target.offline_uri)
    real_list = clear.scan_record_ids_if_possible

    def list_then_break(*args, **kwargs):  # ids listed fine, then every call gets a 5xx
        ids = real_list(*args, **kwargs)
        faults(error_rate=1.0, seed=1)
        return ids

    monkeypatch.setattr(clear, "scan_record_ids_if_possible", list_then_break)
    # every call failing is an outage: waited out for the retry budget, then the clear stops
    with pytest.raises(Aborted, match=rf"--clear-target stopped: DeleteRecord on feature group "
                                      rf"'{name}' .*every call has failed .*retry budget") as info:
        clear_target(spark, target, store, run_settings(emulator, name, retry_budget_seconds=2))
    faults()
    assert info.value.exit_code == 3
    assert "InternalFailure" in str(info.value) or "ServiceUnavailable" in str(info.value)
    assert store.list(target.offline_uri) == files  # offline store left alone
    assert len(online_ids(fsr, name)) == 30


def test_a_missing_target_group_is_systemic(emulator, spark):
    target = GroupSpec(unique("clear-gone"), "id", "ts",
                       (Feature("id", "String"), Feature("ts", "String")), online=True,
                       offline=False)
    with pytest.raises(Aborted, match="ResourceNotFound"):
        clear_target(spark, target, store_for(emulator), run_settings(emulator, target.name))


def test_throttling_is_retried_until_everything_is_deleted(emulator, sm, fsr, spark, faults):
    name = unique("clear-throttle")
    target = make_group(sm, name)
    put_rows(fsr, name, iso_rows(150))
    emulator.flush()
    store = store_for(emulator)
    throttled_before = emulator.stats()["throttled"]
    faults(throttle_tps=50)
    result = clear_target(spark, target, store, run_settings(emulator, name))
    assert emulator.stats()["throttled"] > throttled_before  # the fault was really hit
    assert result["online_deleted"] == 150 and result["online_failed"] == 0
    assert online_ids(fsr, name) == set()
    assert store.list(target.offline_uri) == []


def test_max_tps_paces_the_deletes(emulator, sm, fsr, spark, faults):
    name = unique("clear-pace")
    target = make_group(sm, name)
    put_rows(fsr, name, iso_rows(60))
    emulator.flush()  # else the flush timer may land offline files after the clear
    store = store_for(emulator)
    throttled_before = emulator.stats()["throttled"]
    faults(throttle_tps=100)  # well above max_tps: pacing alone must avoid it
    started = time.monotonic()
    result = clear_target(spark, target, store, run_settings(emulator, name, max_tps=40))
    elapsed = time.monotonic() - started
    assert result["online_deleted"] == 60
    assert emulator.stats()["throttled"] == throttled_before
    # 60 deletes at 40/s with a quarter-second burst (10) take at least 50 / 40 s
    assert elapsed >= 1.2


def test_deletes_ride_out_a_throttle_storm_for_their_time_budget():
    """Retries are bounded by time (migration.retry_budget_seconds), not a count of attempts."""
    import dataclasses

    from botocore.exceptions import ClientError
    from fsmigrate.clear_online import DeleteSettings, delete_partition
    from jobtools import FakeClock

    class Throttling:
        def __init__(self, refusals: int) -> None:
            self.refusals, self.calls = refusals, 0

        def delete_record(self, **kwargs):
            self.calls += 1
            if self.calls <= self.refusals:
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, "DeleteRecord")

    settings = DeleteSettings(aws=AwsSettings(), group="g", event_time_feature="ts",
                              max_workers=1, retry_budget_s=300.0)
    clock = FakeClock()
    client = Throttling(40)  # more than the 32 throttles a delete used to be allowed
    result = delete_partition(["a"], settings, client=client, sleep=clock.sleep, clock=clock)
    assert (result.deleted, result.failed, client.calls) == (1, [], 41)
    clock = FakeClock()
    short = dataclasses.replace(settings, retry_budget_s=20.0)
    result = delete_partition(["a"], short, client=Throttling(1000), sleep=clock.sleep,
                              clock=clock)
    assert result.deleted == 0 and result.failed[0]["error_code"] == "ThrottlingException"
    assert 20.0 <= clock.now - 1000.0 < 35.0
