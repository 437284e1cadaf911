"""--clear-target: guards (unit) and the clear itself against the emulator with real Spark."""

from __future__ import annotations

import os
import re
import time
import uuid

import pytest
from fsmigrate import aws, clear
from fsmigrate.aws import AwsSettings
from fsmigrate.clear import (
    IDS_FROM_LIST_RECORDS,
    IDS_FROM_OFFLINE,
    check_clear_allowed,
    clear_target,
    confirm_clear,
    event_time_after,
    now_event_time,
    plan_clear,
)
from fsmigrate.errors import Aborted, BadInput
from fsmigrate.groups import Feature, GroupSpec, spec_from_description
from fsmigrate.settings import MigrationOptions, Settings
from fsmigrate.storage import Store

ROLE = "arn:aws:iam::123456789012:role/fs"


# ---- unit: guards --------------------------------------------------------------------------


def spec(name: str, uri: str | None = "s3://bucket/fs/123/sagemaker/us-east-1/offline-store/"
         "g-1/data", table_format: str = "Glue") -> GroupSpec:
    return GroupSpec(name=name, record_id="id", event_time="ts",
                     features=(Feature("id", "String"), Feature("ts", "String")),
                     online=True, offline=uri is not None, offline_uri=uri,
                     table_format=table_format if uri else None)


def settings_for(target: str, yes: bool = False, confirm: str | None = None) -> Settings:
    return Settings(source="some-source", target=target, yes=yes,
                    migration=MigrationOptions(clear_target=True, confirm_clear=confirm))


class Asker:
    def __init__(self, answer: str | BaseException) -> None:
        self.answer = answer
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_confirm_clear_passes_with_yes_or_the_confirm_setting_without_asking():
    ask = Asker("wrong")
    confirm_clear(settings_for("tgt", yes=True), "tgt", stdin_isatty=False, ask=ask)
    confirm_clear(settings_for("tgt", confirm="tgt"), "tgt", stdin_isatty=True, ask=ask)
    assert ask.prompts == []


def test_confirm_clear_asks_a_terminal_for_the_exact_name():
    ask = Asker("tgt\n")
    confirm_clear(settings_for("tgt"), "tgt", stdin_isatty=True, ask=ask)
    assert ask.prompts == ["Type the target group name (tgt) to delete all its records: "]


@pytest.mark.parametrize("answer", ["TGT", "tg", "yes", "", EOFError()])
def test_confirm_clear_refuses_a_wrong_terminal_answer(answer):
    ask = Asker(answer)
    with pytest.raises(BadInput) as info:
        confirm_clear(settings_for("tgt"), "tgt", stdin_isatty=True, ask=ask)
    assert len(ask.prompts) == 1
    assert str(info.value) == ("--clear-target deletes every record of tgt: confirm with --yes, "
                               "migration.confirm_clear: tgt, or answer the prompt")


def test_confirm_clear_refuses_without_a_terminal_and_never_asks():
    ask = Asker("tgt")
    with pytest.raises(BadInput, match="confirm with --yes"):
        # confirm_clear names another group: it confirms nothing for this one
        confirm_clear(settings_for("tgt", confirm="other"), "tgt", stdin_isatty=False, ask=ask)
    assert ask.prompts == []


def test_check_clear_allowed_refuses_the_source_itself():
    with pytest.raises(BadInput, match="would delete the source g"):
        check_clear_allowed(spec("g"), spec("g", uri="s3://other/data"))


@pytest.mark.parametrize("src_uri, tgt_uri", [
    ("s3://bucket/fs/a/data", "s3://bucket/fs/"),  # target holds the source
    ("s3://bucket/fs", "s3://bucket/fs/a/data/"),  # source holds the target
    ("s3://bucket/fs/a/data", "s3a://bucket/fs/a/data"),  # same place, other scheme
    ("s3://bucket/x", "s3://bucket"),  # whole bucket
])
def test_check_clear_allowed_refuses_overlapping_offline_prefixes(src_uri, tgt_uri):
    with pytest.raises(BadInput, match="overlaps") as info:
        check_clear_allowed(spec("src", uri=src_uri), spec("tgt", uri=tgt_uri))
    assert "\n" not in str(info.value)


def test_check_clear_allowed_passes_siblings_and_groups_without_offline_store():
    # a common string prefix is not a common folder
    check_clear_allowed(spec("src", uri="s3://bucket/fs/g-1/data"),
                        spec("tgt", uri="s3://bucket/fs/g-10/data"))
    check_clear_allowed(spec("src", uri=None), spec("tgt", uri="s3://bucket/fs"))
    with pytest.raises(BadInput):  # and the same pair overlapping is refused: the check is live
        check_clear_allowed(spec("src", uri="s3://bucket/fs/g-1/data"),
                            spec("tgt", uri="s3://bucket/fs/g-1/data/"))


def test_check_clear_allowed_refuses_an_iceberg_target():
    with pytest.raises(BadInput, match="Iceberg"):
        check_clear_allowed(spec("src", uri="s3://a/src"),
                            spec("tgt", uri="s3://b/tgt", table_format="Iceberg"))
    check_clear_allowed(spec("src", uri="s3://a/src", table_format="Iceberg"),
                        spec("tgt", uri="s3://b/tgt"))  # an Iceberg source is not our concern


def test_event_times_for_deletes():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", now_event_time(False))
    assert re.fullmatch(r"\d{10}\.\d{6}", now_event_time(True))
    # the first whole microsecond strictly after the stored instant, in the same family
    assert event_time_after("2099-12-31T23:59:59.123456789Z", False) == \
        "2099-12-31T23:59:59.123457Z"
    assert event_time_after("2099-12-31T23:59:59.123456Z", False) == "2099-12-31T23:59:59.123457Z"
    assert event_time_after("2099-12-31T23:59:59Z", False) == "2099-12-31T23:59:59.000001Z"
    assert event_time_after("2099-12-31T23:59:59.999999Z", False) == "2100-01-01T00:00:00.000000Z"
    assert event_time_after("4102444800.5", True) == "4102444800.500001"
    assert event_time_after("4102444800", True) == "4102444800.000001"
    assert event_time_after("not a time", False) is None


def test_spark_job_errors_are_reported_by_their_python_line():
    wrapped = RuntimeError(
        "An error occurred while calling o91.foreachPartition.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: ...\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "worker.py", line 1, in main\n'
        "ModuleNotFoundError: No module named 'fsmigrate'\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handle(PythonRunner.scala:572)\n")
    assert clear._spark_error_line(wrapped) == "ModuleNotFoundError: No module named 'fsmigrate'"
    assert clear._spark_error_line(RuntimeError("plain\nmore")) == "plain"


# ---- integration: the emulator and local Spark --------------------------------------------


def unique(tag: str) -> str:
    return f"clear-{tag}-{uuid.uuid4().hex[:8]}"


def make_group(sm, name: str, id_type: str = "String", ts_type: str = "String") -> GroupSpec:
    sm.create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName="id", EventTimeFeatureName="ts",
        FeatureDefinitions=[{"FeatureName": "id", "FeatureType": id_type},
                            {"FeatureName": "ts", "FeatureType": ts_type},
                            {"FeatureName": "amount", "FeatureType": "Fractional"}],
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": f"s3://clear-bucket/{name}"}},
        RoleArn=ROLE)
    return spec_from_description(aws.describe_feature_group(sm, name))


def put_records(fsr, group: str, rows: list[tuple[str, str]]) -> None:
    """(id, event time) rows into both stores, 25 per BatchWriteRecord."""
    entries = [{"FeatureGroupName": group,
                "Record": [{"FeatureName": "id", "ValueAsString": rid},
                           {"FeatureName": "ts", "ValueAsString": ts},
                           {"FeatureName": "amount", "ValueAsString": "1.5"}],
                "TargetStores": ["OnlineStore", "OfflineStore"]} for rid, ts in rows]
    for start in range(0, len(entries), 25):
        response = fsr.batch_write_record(Entries=entries[start:start + 25])
        assert not response.get("Errors") and not response.get("UnprocessedEntries")


def iso_rows(n: int, prefix: str = "r") -> list[tuple[str, str]]:
    return [(f"{prefix}{i:04d}", f"2024-03-{1 + i % 28:02d}T10:00:00Z") for i in range(n)]


def online_ids(fsr, group: str) -> list[str]:
    ids, token = [], None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = fsr.list_records(FeatureGroupName=group, MaxResults=100,
                                IncludeSoftDeletedRecords=True, **kwargs)
        ids += page["RecordIdentifiers"]
        token = page.get("NextToken")
        if not token:
            return ids


def store_for(emulator) -> Store:
    return Store(aws=AwsSettings(region="us-east-1", endpoint_url=emulator.url),
                 local_root=str(emulator.data_dir))


def run_settings(emulator, target: str, **options) -> Settings:
    return Settings(source="some-source", target=target, yes=True,
                    aws=AwsSettings(region="us-east-1", endpoint_url=emulator.url),
                    local_root=str(emulator.data_dir),
                    migration=MigrationOptions(clear_target=True, **options))


def op_stats(emulator, op: str) -> dict:
    return emulator.stats()["operations"].get(op, {"requests": 0, "records": 0, "errors": {}})


def test_plan_then_clear_empties_both_stores_without_delete_markers(emulator, sm, fsr, spark):
    name = unique("main")
    target = make_group(sm, name)
    rows = iso_rows(60)
    rows.append(("future", "2099-12-31T23:59:59.123456789Z"))  # newer than any delete's now
    put_records(fsr, name, rows)
    fsr.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="r0001",
                      EventTime="2024-06-01T00:00:00Z", DeletionMode="SoftDelete")
    emulator.flush()
    store = store_for(emulator)
    files = store.list(target.offline_uri)
    assert len(files) >= 2  # several hour partitions, plus 2099

    plan = plan_clear(spark, target, store, AwsSettings("us-east-1", emulator.url))
    assert plan.target == name
    assert plan.online_ids_source == IDS_FROM_LIST_RECORDS
    assert plan.online_records == 61  # the soft-deleted record is still in the online store
    assert plan.offline_objects == len(files)
    assert plan.offline_bytes == sum(os.path.getsize(store.local_path(f)) for f in files)
    assert plan.to_json()["online_records"] == 61
    assert store.list(target.offline_uri) == files  # planning deleted nothing
    assert len(online_ids(fsr, name)) == 61

    before = op_stats(emulator, "DeleteRecord")
    result = clear_target(spark, target, store, run_settings(emulator, name))
    assert result == {"online_deleted": 61, "online_failed": 0, "offline_deleted": len(files)}

    assert online_ids(fsr, name) == []
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

    put_records(fsr, name, [("again", "2024-05-01T00:00:00Z")])  # the target still works
    emulator.flush()
    assert len(store.list(target.offline_uri)) == 1
    assert online_ids(fsr, name) == ["again"]


def test_future_dated_record_with_fractional_event_time_is_deleted(emulator, sm, fsr, spark):
    name = unique("future")
    target = make_group(sm, name, ts_type="Fractional")
    now = time.time()
    put_records(fsr, name, [("past", f"{now - 3600:.3f}"), ("far", "4102444800.5"),
                            ("near", f"{now + 600:.6f}")])
    emulator.flush()
    store = store_for(emulator)
    gets_before = op_stats(emulator, "GetRecord")["requests"]

    result = clear_target(spark, target, store, run_settings(emulator, name))

    assert op_stats(emulator, "GetRecord")["requests"] - gets_before == 2  # "far" and "near"
    assert result["online_deleted"] == 3 and result["offline_deleted"] >= 1
    assert online_ids(fsr, name) == []
    for rid in ("far", "near"):
        assert "Record" not in fsr.get_record(FeatureGroupName=name,
                                              RecordIdentifierValueAsString=rid)
    assert store.list(target.offline_uri) == []


def test_ids_from_the_offline_store_when_list_records_is_unavailable(emulator, sm, fsr, spark,
                                                                     monkeypatch):
    name = unique("fallback")
    target = make_group(sm, name, id_type="Integral")
    put_records(fsr, name, [(str(i), "2024-03-01T10:00:00Z") for i in range(40)])
    put_records(fsr, name, [("7", "2024-03-02T10:00:00Z")])  # a second version of one id
    emulator.flush()
    monkeypatch.setattr(clear.aws, "has_list_records", lambda client: False)
    lists_before = op_stats(emulator, "ListRecords")["requests"]
    store = store_for(emulator)

    plan = plan_clear(spark, target, store, AwsSettings("us-east-1", emulator.url))
    assert (plan.online_ids_source, plan.online_records) == (IDS_FROM_OFFLINE, 40)

    result = clear_target(spark, target, store, run_settings(emulator, name))
    assert result == {"online_deleted": 40, "online_failed": 0,
                      "offline_deleted": plan.offline_objects}
    assert op_stats(emulator, "ListRecords")["requests"] == lists_before  # never called
    assert online_ids(fsr, name) == []
    assert store.list(target.offline_uri) == []


def test_deletes_that_fail_abort_before_the_offline_store_is_touched(emulator, sm, fsr, spark,
                                                                      monkeypatch):
    name = unique("fail")
    target = make_group(sm, name)
    put_records(fsr, name, iso_rows(30))
    emulator.flush()
    store = store_for(emulator)
    files = store.list(target.offline_uri)
    real_list = clear.list_online_ids

    def list_then_break(*args, **kwargs):  # ids listed fine, then every call gets a 5xx
        ids = real_list(*args, **kwargs)
        emulator.faults(error_rate=1.0, seed=1)
        return ids

    monkeypatch.setattr(clear, "list_online_ids", list_then_break)
    try:
        with pytest.raises(Aborted, match=r"30 of 30 online records of " + name) as info:
            clear_target(spark, target, store, run_settings(emulator, name, max_attempts=2))
    finally:
        emulator.faults()
    assert info.value.exit_code == 3
    assert "InternalFailure" in str(info.value) or "ServiceUnavailable" in str(info.value)
    assert store.list(target.offline_uri) == files  # offline store left alone
    assert len(online_ids(fsr, name)) == 30


def test_a_missing_target_group_is_systemic(emulator, spark):
    target = spec(unique("gone"), uri=None)
    with pytest.raises(Aborted, match="ResourceNotFound"):
        clear_target(spark, target, store_for(emulator), run_settings(emulator, target.name))


def test_throttling_is_retried_until_everything_is_deleted(emulator, sm, fsr, spark):
    name = unique("throttle")
    target = make_group(sm, name)
    put_records(fsr, name, iso_rows(150))
    emulator.flush()
    store = store_for(emulator)
    throttled_before = emulator.stats()["throttled"]
    emulator.faults(throttle_tps=50)
    try:
        result = clear_target(spark, target, store, run_settings(emulator, name))
    finally:
        emulator.faults()
    assert emulator.stats()["throttled"] > throttled_before  # the fault was really hit
    assert result["online_deleted"] == 150 and result["online_failed"] == 0
    assert online_ids(fsr, name) == []
    assert store.list(target.offline_uri) == []


def test_max_tps_paces_the_deletes(emulator, sm, fsr, spark):
    name = unique("pace")
    target = make_group(sm, name)
    put_records(fsr, name, iso_rows(60))
    emulator.flush()  # else the flush timer may land offline files after the clear
    store = store_for(emulator)
    throttled_before = emulator.stats()["throttled"]
    emulator.faults(throttle_tps=100)  # well above max_tps: pacing alone must avoid it
    try:
        started = time.monotonic()
        result = clear_target(spark, target, store, run_settings(emulator, name, max_tps=40))
        elapsed = time.monotonic() - started
    finally:
        emulator.faults()
    assert result["online_deleted"] == 60
    assert emulator.stats()["throttled"] == throttled_before
    # 60 deletes at 40/s with a quarter-second burst (10) take at least 50 / 40 s
    assert elapsed >= 1.2
