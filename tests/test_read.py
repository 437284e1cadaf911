"""The read stage (read.py): what is selected, what is left out and counted (real Parquet, real
Spark; the emulator for the online source)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsmigrate.aws import AwsSettings
from fsmigrate.groups import Feature, GroupSpec, check_groups
from fsmigrate.read import select_records
from fsmigrate.settings import MigrationOptions, Settings
from fsmigrate.storage import Store
from jobtools import create_group, fv, group_spec, put_records, unique

URI = "s3://bucket/prefix/123456789012/sagemaker/us-east-1/offline-store/src-1700000000/data"
META = [("write_time", pa.timestamp("us", tz="UTC")),
        ("api_invocation_time", pa.timestamp("us", tz="UTC")), ("is_deleted", pa.bool_())]
SCHEMA = pa.schema([("id", pa.string()), ("t", pa.string()), ("v", pa.string()), *META])
FEATURES = (Feature("id", "String"), Feature("t", "String"), Feature("v", "String"))
NOW = datetime.now(UTC).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def offline_source() -> GroupSpec:
    return GroupSpec("src", "id", "t", FEATURES, online=False, offline=True, offline_uri=URI,
                     table_format="Glue", offline_status="Active")


def target(ttl_seconds: int | None = None, online: bool = True) -> GroupSpec:
    return GroupSpec("tgt", "id", "t", FEATURES, online=online, offline=True,
                     offline_uri=URI.replace("src-", "tgt-"), table_format="Glue",
                     ttl_seconds=ttl_seconds)


def write_rows(root, rows: list[dict]) -> None:
    folder = root / "bucket" / URI.split("bucket/", 1)[1] / "year=2024/month=01/day=01/hour=00"
    folder.mkdir(parents=True, exist_ok=True)
    full = [{"write_time": NOW, "api_invocation_time": NOW, "is_deleted": False, **r}
            for r in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=SCHEMA), folder / "20240101T000000Z_x.parquet")


def select(spark, tmp_path, source: GroupSpec, tgt: GroupSpec, aws_settings=None, **options):
    settings = Settings(source=source.name, target=tgt.name, aws=aws_settings or AwsSettings(),
                        migration=MigrationOptions(**options))
    compat = check_groups(source, tgt, "error", settings.migration.ttl)
    store = Store(aws=settings.aws, local_root=str(tmp_path))
    return select_records(spark, settings, source, tgt, compat, store, None)


def ids_of(selection) -> set[str]:
    return {r["id"] for r in selection.encoded.collect()}


def test_records_that_would_arrive_expired_are_counted_and_not_selected(spark, tmp_path):
    # ExpiresAt = EventTime + TtlDuration (the TTL guide): with the target's default TTL of an
    # hour, an event two hours old arrives expired; the service would never show it.
    write_rows(tmp_path, [
        {"id": "old", "t": "2024-01-01T00:00:00Z", "v": "a"},
        {"id": "two-hours", "t": iso(NOW - timedelta(hours=2)), "v": "b"},
        {"id": "fresh", "t": iso(NOW - timedelta(minutes=10)), "v": "c"},
        {"id": "future", "t": iso(NOW + timedelta(days=1)), "v": "d"},
    ])
    expiring = select(spark, tmp_path, offline_source(), target(ttl_seconds=3600))
    assert ids_of(expiring) == {"fresh", "future"}
    assert (expiring.counts.expired_on_arrival, expiring.counts.selected) == (2, 2)
    # an offline-only target expires nothing: everything is selected
    kept = select(spark, tmp_path, offline_source(), target(ttl_seconds=3600, online=False))
    assert ids_of(kept) == {"old", "two-hours", "fresh", "future"}
    assert (kept.counts.expired_on_arrival, kept.counts.selected) == (0, 4)


def test_unparseable_event_times_are_counted_never_sorted_as_oldest(spark, tmp_path):
    # "bad" has a newer row with a broken event time: treating it as the oldest would migrate
    # the older value as if it were the latest.
    write_rows(tmp_path, [
        {"id": "ok", "t": "2024-01-01T00:00:00Z", "v": "a"},
        {"id": "bad", "t": "2024-01-01T00:00:00Z", "v": "old"},
        {"id": "bad", "t": "2024-13-45 nonsense", "v": "new"},
        {"id": "blank", "t": None, "v": "x"},
    ])
    selection = select(spark, tmp_path, offline_source(), target())
    assert ids_of(selection) == {"ok"}
    c = selection.counts
    assert (c.records, c.bad_event_time, c.deleted_skipped, c.selected) == (3, 2, 0, 1)
    assert any("2 records (2 rows) have an event time that doesn't parse" in n
               for n in selection.notes)


def test_inactive_offline_source_is_refused_unless_allowed(spark, tmp_path):
    from fsmigrate.errors import BadInput

    write_rows(tmp_path, [{"id": "ok", "t": "2024-01-01T00:00:00Z", "v": "a"}])
    blocked = GroupSpec("src", "id", "t", FEATURES, online=False, offline=True, offline_uri=URI,
                        table_format="Glue", offline_status="Blocked")
    with pytest.raises(BadInput, match="Blocked, not Active"):
        select(spark, tmp_path, blocked, target())
    allowed = select(spark, tmp_path, blocked, target(), allow_inactive_offline_store=True)
    assert ids_of(allowed) == {"ok"} and any("Blocked" in n for n in allowed.notes)


def test_online_reads_are_paced_at_read_tps(spark, emulator, boto_session, faults, tmp_path):
    # BatchGetRecord's default quota is 500 TPS, not 10,000: the read must be paced. The
    # emulator throttles above 6 calls/s; read_tps 4 stays under it, an unpaced read does not.
    sm = boto_session.client("sagemaker", endpoint_url=emulator.url)
    fsr = boto_session.client("sagemaker-featurestore-runtime", endpoint_url=emulator.url)
    name = unique("paced-src")
    create_group(sm, name, [("id", "String"), ("t", "String"), ("v", "String")], offline=False,
                 record_id="id", event_time="t")
    put_records(fsr, name, [fv(id=f"p{i:04d}", t="2024-01-01T00:00:00Z", v=str(i))
                            for i in range(1200)])
    source = group_spec(sm, name)
    aws_settings = AwsSettings(region="us-east-1", endpoint_url=emulator.url)
    before = emulator.stats()["throttled"]
    faults(throttle_tps=6)
    selection = select(spark, tmp_path, source, target(), aws_settings, read_tps=4.0)
    faults()
    assert selection.counts.selected == 1200
    assert emulator.stats()["throttled"] == before
