"""The per-partition writer: unit tests for its parts, integration tests against the emulator."""

from __future__ import annotations

import json
import time
import types
from datetime import UTC, datetime, timedelta

import pytest
from fsmigrate.aws import AwsSettings, runtime_client
from fsmigrate.errors import Aborted, BadInput
from fsmigrate.write import WriterSettings, resolve_write_api, write_partition
from jobtools import create_group, read_online, unique

# ---- unit: write api, settings -------------------------------------------------------------


def test_resolve_write_api():
    client = runtime_client(AwsSettings(endpoint_url="http://127.0.0.1:9"))
    assert resolve_write_api("auto", client) == "batch"
    assert resolve_write_api("batch", client) == "batch"
    assert resolve_write_api("put", client) == "put"
    with pytest.raises(BadInput):
        resolve_write_api("bulk", client)

    old = types.SimpleNamespace(meta=types.SimpleNamespace(
        service_model=types.SimpleNamespace(operation_names=["PutRecord", "GetRecord"])))
    assert resolve_write_api("auto", old) == "put"
    with pytest.raises(BadInput, match="BatchWriteRecord"):
        resolve_write_api("batch", old)


def test_writer_settings_are_validated():
    aws = AwsSettings()
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a", "b"), "c")
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a", "b"), "a", ttl_column="x")
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a",), "a", write_api="bulk")
    with pytest.raises(BadInput):
        WriterSettings(aws, "g", ("a",), "a", tps_per_task=0)


# ---- integration: write_partition against the emulator through real boto3 -----------------

BASE = [("rid", "String"), ("ts", "String"), ("n", "Integral"), ("x", "Fractional"),
        ("s", "String")]
COLUMNS = tuple(name for name, _ in BASE)
EVENT_TIME = "2024-05-01T12:00:00Z"


def make_group(sm, features=BASE, in_memory=False) -> str:
    name = unique("write")
    create_group(sm, name, features, offline=False, storage="InMemory" if in_memory else None,
                 record_id="rid", event_time="ts")
    assert sm.describe_feature_group(FeatureGroupName=name)["FeatureGroupStatus"] == "Created"
    return name


def make_rows(n: int, prefix: str = "r") -> list[tuple]:
    return [(f"{prefix}{i:05d}", EVENT_TIME, str(i), f"{i / 4}", f"text {i}") for i in range(n)]


def settings_for(emulator, group: str, **kw) -> WriterSettings:
    kw.setdefault("columns", COLUMNS)
    kw.setdefault("record_id_name", "rid")
    kw.setdefault("base_delay_s", 0.005)
    kw.setdefault("max_delay_s", 0.1)
    return WriterSettings(aws=AwsSettings(endpoint_url=emulator.url), target_group=group, **kw)


@pytest.mark.parametrize("api", ["batch", "put"])
def test_all_records_land(emulator, sm, fsr, api):
    group = make_group(sm)
    rows = make_rows(257 if api == "batch" else 60)
    # some values missing: omitted, never sent as "None"
    rows[3] = (rows[3][0], EVENT_TIME, None, "1.5", None)
    rows[4] = (rows[4][0], EVENT_TIME, "4", None, "")
    settings = settings_for(emulator, group, write_api=api, batch_size=30, max_workers=3)

    result = write_partition(iter(rows), settings)

    assert (result.written, result.failed, result.retried) == (len(rows), [], 0)
    assert result.api_calls == (len(rows) if api == "put" else 17)  # 8 x (25 + 5), then 17
    got = read_online(fsr, group, [r[0] for r in rows])
    assert len(got) == len(rows)
    for row in rows:
        expected = {k: v for k, v in zip(COLUMNS, row, strict=True) if v is not None}
        assert got[row[0]] == expected
    assert set(got["r00003"]) == {"rid", "ts", "x"}
    assert got["r00004"]["s"] == ""


def test_auto_picks_batch_write(emulator, sm, fsr):
    group = make_group(sm)
    result = write_partition(make_rows(50), settings_for(emulator, group, write_api="auto"))
    assert (result.written, result.api_calls) == (50, 2)


def test_collections_and_ttl(emulator, sm, fsr):
    features = [("rid", "String"), ("ts", "String"), ("tags", "String", "List"),
                ("scores", "Fractional", "List"), ("n", "Integral")]
    group = make_group(sm, features, in_memory=True)
    columns = ("rid", "ts", "tags", "scores", "n", "ttl")
    now = datetime.now(UTC).replace(microsecond=0)
    ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")  # TTL counts from the event time: keep it recent

    def at(seconds):
        return (now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = [
        ("a", ts, ["x", "y"], ["0.5", "1.5"], "1", 3600),
        ("b", ts, [], None, "2", None),
        ("c", ts, ("p",), ["2"], None, 60),
    ]
    for api in ("batch", "put"):
        settings = settings_for(emulator, group, columns=columns, write_api=api,
                                collection_features=frozenset({"tags", "scores"}),
                                ttl_column="ttl")
        result = write_partition(rows, settings)
        assert (result.written, result.failed) == (3, [])
        got = read_online(fsr, group, ["a", "b", "c"], expiry=True)
        assert got["a"] == {"rid": "a", "ts": ts, "tags": ["x", "y"],
                            "scores": ["0.5", "1.5"], "n": "1", "_expires": at(3600)}
        assert got["b"] == {"rid": "b", "ts": ts, "tags": [], "n": "2"}  # no TTL, no expiry
        assert got["c"]["tags"] == ["p"] and got["c"]["_expires"] == at(60)
        assert "ttl" not in got["c"]


@pytest.mark.parametrize("api", ["batch", "put"])
def test_validation_errors_fail_at_once_and_the_rest_is_written(emulator, sm, fsr, api):
    group = make_group(sm)
    rows = make_rows(40)
    bad = {5: "five", 17: "1.5", 33: "12abc"}
    for i, text in bad.items():
        rows[i] = (rows[i][0], EVENT_TIME, text, "0", "s")
    rows.append((None, EVENT_TIME, "1", "1", "no id"))
    settings = settings_for(emulator, group, write_api=api, max_workers=2, batch_size=20)

    result = write_partition(rows, settings)

    assert result.written == 40 - len(bad)
    assert result.retried == 0
    by_id = {f["record"]["rid"]: f for f in result.failed}
    assert set(by_id) == {rows[i][0] for i in bad} | {None}
    for i, text in bad.items():
        failure = by_id[rows[i][0]]
        assert failure["error_code"] == "ValidationError"
        assert failure["attempts"] == 1
        assert text in failure["message"]
        assert failure["record"] == dict(zip(COLUMNS, rows[i], strict=True))
    assert by_id[None]["attempts"] == 0  # no record id: never sent
    got = read_online(fsr, group, [r[0] for r in rows[:40]])
    assert set(got) == {r[0] for i, r in enumerate(rows[:40]) if i not in bad}


@pytest.mark.parametrize("api", ["batch", "put"])
def test_throttling_is_retried_until_written(emulator, sm, fsr, faults, api):
    group = make_group(sm)
    # the emulator's bucket starts full: 300 records = 12 calls at 4/s, 50 puts at 25/s
    rows = make_rows(300 if api == "batch" else 50)
    settings = settings_for(emulator, group, write_api=api, max_workers=4, batch_size=25,
                            max_attempts=40, base_delay_s=0.01, max_delay_s=0.2)
    faults(throttle_tps=4 if api == "batch" else 25)

    result = write_partition(rows, settings)

    assert (result.written, result.failed) == (len(rows), [])
    assert result.throttled > 0 and result.retried > 0
    assert result.api_calls > len(rows) // (25 if api == "batch" else 1)
    assert len(read_online(fsr, group, [r[0] for r in rows])) == len(rows)


@pytest.mark.parametrize("api", ["batch", "put"])
def test_server_errors_are_retried(emulator, sm, fsr, faults, api):
    group = make_group(sm)
    rows = make_rows(250 if api == "batch" else 60)
    faults(error_rate=0.4, seed=11)

    result = write_partition(rows, settings_for(emulator, group, write_api=api,
                                                max_attempts=30))

    assert (result.written, result.failed) == (len(rows), [])
    assert result.retried > 0 and result.throttled == 0
    assert len(read_online(fsr, group, [r[0] for r in rows])) == len(rows)


def test_unprocessed_entries_are_retried(emulator, sm, fsr, faults):
    group = make_group(sm)
    rows = make_rows(250)
    faults(unprocessed_rate=0.3, seed=5)

    result = write_partition(rows, settings_for(emulator, group, max_attempts=30))

    assert (result.written, result.failed) == (len(rows), [])
    assert result.retried > 0
    assert result.api_calls > 10
    assert len(read_online(fsr, group, [r[0] for r in rows])) == len(rows)


@pytest.mark.parametrize("api", ["batch", "put"])
def test_an_outage_longer_than_the_retry_budget_fails_the_records(emulator, sm, fsr, faults,
                                                                     api):
    group = make_group(sm)
    rows = make_rows(30)
    settings = settings_for(emulator, group, write_api=api, max_attempts=3, base_delay_s=0.01,
                            max_delay_s=0.02, max_workers=4, batch_size=10)
    op = "BatchWriteRecord" if api == "batch" else "PutRecord"
    before = emulator.stats()["operations"].get(op, {}).get("requests", 0)
    faults(outage_seconds=30)

    result = write_partition(rows, settings)

    # every request is one of ours: botocore's own retries are off
    assert emulator.stats()["operations"][op]["requests"] - before == result.api_calls
    assert result.written == 0
    assert len(result.failed) == 30
    assert {f["attempts"] for f in result.failed} == {3}
    assert {f["error_code"] for f in result.failed} == {"ServiceUnavailable"}
    assert result.api_calls == 3 * (3 if api == "batch" else 30)  # one call per 10-row batch
    assert sorted(f["record"]["rid"] for f in result.failed) == [r[0] for r in rows]
    faults()
    assert read_online(fsr, group, [r[0] for r in rows]) == {}


@pytest.mark.parametrize("api", ["batch", "put"])
def test_unknown_group_aborts_promptly(emulator, api):
    consumed = 0

    def rows():
        nonlocal consumed
        for row in make_rows(100_000):
            consumed += 1
            yield row

    settings = settings_for(emulator, "no-such-group", write_api=api, max_workers=4,
                            batch_size=50)
    with pytest.raises(Aborted, match="no-such-group.*ResourceNotFound") as info:
        write_partition(rows(), settings)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 3
    # streaming with bounded in-flight work: only a few batches were ever read
    assert consumed <= 50 * (2 * 4 + 2)


def test_tps_per_task_limits_the_rate(emulator, sm, fsr):
    group = make_group(sm)
    rows = make_rows(400)
    settings = settings_for(emulator, group, tps_per_task=250.0, max_workers=4, batch_size=25)

    start = time.monotonic()
    result = write_partition(rows, settings)
    elapsed = time.monotonic() - start

    assert result.written == 400
    # 400 records at 250/s with a 62-record burst: ~1.35 s; loose bounds
    assert 1.0 <= elapsed < 6.0


# ---- values the service would refuse (issue 7): caught before sending, or isolated ---------

REFUSED = {  # row index -> (column, value, words of the reason)
    3: ("s", "two\nlines", "U+000A"),
    8: ("s", "x" * 358_401, "358400"),
    11: ("rid", "i" * 2049, "2 KB"),
    14: ("n", 2**63, "64-bit"),
    19: ("x", float("nan"), "finite"),
    21: ("x", float("inf"), "finite"),
    23: ("s", "\u2028", "U+2028"),
}


@pytest.mark.parametrize("api", ["batch", "put"])
def test_a_refused_value_fails_that_record_alone_before_it_is_sent(emulator, sm, fsr, api):
    """ValueAsString {max 358400, pattern '.*'} (botocore service-2.json), record id <= 2 KB
    (quotas page), Integral signed 64-bit, Fractional a finite double."""
    group = make_group(sm)
    rows = make_rows(25)
    for i, (column, value, _) in REFUSED.items():
        row = list(rows[i])
        row[COLUMNS.index(column)] = value
        rows[i] = tuple(row)
    settings = settings_for(emulator, group, write_api=api, batch_size=25)

    result = write_partition(rows, settings)

    assert result.written == 25 - len(REFUSED)
    by_index = {rows.index(tuple(f["record"].values())): f for f in result.failed}
    assert set(by_index) == set(REFUSED)
    for i, (_, _, why) in REFUSED.items():
        assert by_index[i]["error_code"] == "ValidationError"
        assert by_index[i]["attempts"] == 0  # never sent
        assert why in by_index[i]["message"]
    good = [r[0] for i, r in enumerate(rows) if i not in REFUSED]
    assert set(read_online(fsr, group, good)) == set(good)


def test_prepared_entries_are_checked_before_they_are_sent(emulator, sm, fsr):
    """Rows as the fast path gets them, (record id, entry JSON built by Spark): a missing id or
    a value the service refuses fails that record alone, unsent; the others are written."""
    from fsmigrate.encode import ENTRY

    group = make_group(sm)
    rows = []
    for values in make_rows(30):
        record = [{"FeatureName": k, "ValueAsString": v}
                  for k, v in zip(COLUMNS, values, strict=True)]
        rows.append((values[0], json.dumps({"FeatureGroupName": group, "Record": record},
                                           separators=(",", ":"), ensure_ascii=False)))
    rows[3] = (None, rows[3][1])
    rows[7] = (rows[7][0], rows[7][1].replace("text 7", "line\\nbreak"))  # JSON's escape
    rows[11] = (rows[11][0], rows[11][1].replace("text 11", "sep\u2028arator"))  # raw, as Spark
    settings = settings_for(emulator, group, columns=("rid", ENTRY), batch_size=25)

    result = write_partition(iter(rows), settings)

    assert result.written == 27
    failed = {f["record"]["rid"]: f for f in result.failed}
    assert set(failed) == {None, "r00007", "r00011"}
    assert {(f["error_code"], f["attempts"]) for f in failed.values()} == {("ValidationError", 0)}
    assert "'rid' is missing" in failed[None]["message"]
    assert "U+000A" in failed["r00007"]["message"] and "U+2028" in failed["r00011"]["message"]
    assert failed["r00007"]["record"]["s"] == "line\nbreak"  # the failure file's record
    good = [r[0] for i, r in enumerate(rows) if i not in (3, 7, 11)]
    assert set(read_online(fsr, group, good)) == set(good)


def _reject_when(client, op: str, predicate, code="ValidationError",
                 message="1 validation error detected"):
    """Answer `op` with a 400 `code` (as the service would) while predicate(body) holds;
    otherwise the request goes on to the emulator. Returns the list of rejected bodies."""
    from botocore.awsrequest import AWSResponse

    rejected: list[bytes] = []

    class Raw:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_kw):
            yield self.data

    def before_send(request, **_kw):
        body = request.body or b""
        body = body if isinstance(body, bytes) else body.encode()
        if predicate(request.url + " " + body.decode()):
            rejected.append(body)
            payload = json.dumps({"__type": code, "message": message}).encode()
            return AWSResponse(request.url, 400, {"x-amzn-ErrorType": code}, Raw(payload))
        return None

    client.meta.events.register(f"before-send.sagemaker-featurestore-runtime.{op}", before_send)
    return rejected


def test_a_batch_rejected_as_a_whole_is_halved_until_the_bad_record_is_isolated(emulator, sm,
                                                                                fsr):
    group = make_group(sm)
    rows = make_rows(25)
    rows[13] = (rows[13][0], EVENT_TIME, "1", "1", "poison")
    client = fresh_client(emulator)
    rejected = _reject_when(client, "BatchWriteRecord", lambda body: "poison" in body)
    settings = settings_for(emulator, group, batch_size=25)

    result = write_partition(rows, settings, client=client)

    assert result.written == 24
    assert [f["record"]["rid"] for f in result.failed] == [rows[13][0]]
    assert result.failed[0]["error_code"] == "ValidationError"
    assert len(rejected) == 6  # 25 -> 13 -> 7 -> 4 -> 2 -> 1: each half with the bad one
    good = [r[0] for i, r in enumerate(rows) if i != 13]
    assert set(read_online(fsr, group, good)) == set(good)


def fresh_client(emulator):
    """A runtime client of its own (the shared cached one must not get test hooks)."""
    import boto3
    from fsmigrate.aws import _config

    return boto3.session.Session().client(
        "sagemaker-featurestore-runtime", region_name="us-east-1", endpoint_url=emulator.url,
        config=_config(validate=False))


@pytest.mark.parametrize("api", ["batch", "put"])
def test_a_sporadic_not_found_is_retried(emulator, sm, fsr, api):
    """PutRecord/BatchGetRecord/DeleteRecord list no ResourceNotFound: AWS answers
    ValidationError "Resource Not Found", sometimes for groups that exist (DESIGN.md §2)."""
    group = make_group(sm)
    rows = make_rows(30)
    client = fresh_client(emulator)
    left = [3]

    def first_calls(_body):
        left[0] -= 1
        return left[0] >= 0

    op = "BatchWriteRecord" if api == "batch" else "PutRecord"
    rejected = _reject_when(client, op, first_calls,
                            message=f"Resource Not Found: FeatureGroup {group} not found.")
    settings = settings_for(emulator, group, write_api=api, max_workers=1, batch_size=30)

    result = write_partition(rows, settings, client=client)

    assert len(rejected) == 3
    assert result.written == 30 and result.failed == []
    assert set(read_online(fsr, group, [r[0] for r in rows])) == {r[0] for r in rows}


def test_unmatched_batch_entries_are_never_counted_written():
    """A BatchWriteRecord answer names entries by their Record (BatchWriteRecordError.Entry);
    one we cannot match to a sent record leaves every unanswered record in doubt: sent again,
    never counted as written, and no record counted twice."""
    from fsmigrate.calls import Caller, RetryPolicy
    from fsmigrate.write import PartitionResult, _PartitionWriter

    settings = WriterSettings(AwsSettings(), "g", COLUMNS, "rid")
    writer = _PartitionWriter(settings, None, Caller("g", RetryPolicy()), "batch")
    chunk = [writer.encode(row) for row in make_rows(4)]
    stranger = {"FeatureGroupName": "g", "Record": [{"FeatureName": "rid",
                                                     "ValueAsString": "not-sent"}]}
    result = PartitionResult()
    retry, reason = writer.sort_response(chunk, {
        "Errors": [{"Entry": chunk[0].entry, "ErrorCode": "ValidationError",
                    "ErrorMessage": "bad"},
                   {"Entry": chunk[0].entry, "ErrorCode": "ValidationError",
                    "ErrorMessage": "bad, twice"}],
        "UnprocessedEntries": [stranger]}, 1, result)
    assert result.written == 0
    assert [f["record"]["rid"] for f in result.failed] == [chunk[0].record_id]
    assert [p.record_id for p in retry] == [p.record_id for p in chunk[1:]]
    assert reason is not None and "match" in reason[1]
    # a clean answer for the rest: each is counted once
    retry, reason = writer.sort_response(retry, {"Errors": [], "UnprocessedEntries": []}, 2,
                                         result)
    assert (retry, result.written, len(result.failed)) == ([], 3, 1)
