"""The plan: what will be read, chosen and written, and what it will cost. --dry-run prints it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .groups import Compatibility, GroupSpec, compat_table

if TYPE_CHECKING:
    from .read import Selection
    from .settings import Settings

ACCOUNT_QUOTA_TPS = 10_000  # default per-API account quota (soft limit)
BATCH_WRITE_ENTRIES = 25


@dataclass
class Counts:
    rows_scanned: int = 0  # rows in the source offline store (Parquet footers)
    records: int = 0  # distinct record ids
    deleted_skipped: int = 0  # latest state is a delete marker (or not in the online store)
    expired_skipped: int = 0
    filtered_out: int = 0  # live records the filter did not match
    before_resume_from: int = 0  # left out by --resume-from
    bad_event_time: int = 0  # records with a row whose event time doesn't parse: left out
    expired_on_arrival: int = 0  # event time + the TTL they'd get in the target <= now
    selected: int = 0  # records to write


@dataclass
class Plan:
    run_id: str
    source: dict[str, Any]
    target: dict[str, Any]
    strategy: str
    id_source: str
    id_source_reason: str
    target_stores: list[str]
    write_api: str
    batch_size: int
    max_workers: int
    max_tps: float | None
    filter_query: str | None
    resume_from: str | None
    partitions: int
    partition_records: int
    counts: Counts
    source_files: int = 0
    source_bytes: int = 0
    expected_api_calls: int = 0
    expected_seconds: float = 0.0
    expected_rate: float = 0.0
    features: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    clear_target: dict[str, Any] | None = None
    ttl: str = "source"
    retry_of: str | None = None  # a --retry-failures run: the run whose failures it re-sends
    dry_run: bool = False  # a dry run's plan can be carried out later with --resume
    read_tps: float | None = None  # BatchGetRecord (and ListRecords) calls/s, source and verify
    target_empty: bool | None = None  # None: not known
    target_empty_how: str = ""
    verify: str = "none"  # none | sample:N | all
    notes: list[str] = field(default_factory=list)  # risks and settings the plan must state

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        data = dict(data)
        data["counts"] = Counts(**data["counts"])
        return cls(**data)


def group_summary(spec: GroupSpec) -> dict[str, Any]:
    return {"name": spec.name, "kind": spec.kind, "storage_type": spec.storage_type,
            "offline_uri": spec.offline_uri, "table_format": spec.table_format,
            "record_id": spec.record_id, "event_time": spec.event_time,
            "features": len(spec.features), "ttl_seconds": spec.ttl_seconds}


def shuffle_partitions(rows: int, parallelism: int, rows_per_partition: int = 500_000) -> int:
    """For the latest-state aggregation: Spark's default of 200 costs seconds of task overhead
    on small sources, and too few partitions spill on large ones."""
    return max(parallelism, math.ceil(rows / rows_per_partition))


def estimate(selected: int, write_api: str, max_tps: float | None) -> tuple[int, float, float]:
    """API calls, seconds and the records/s they assume."""
    calls = math.ceil(selected / BATCH_WRITE_ENTRIES) if write_api == "batch" else selected
    rate = max_tps or ACCOUNT_QUOTA_TPS
    return calls, (selected / rate if rate else 0.0), rate


def make_plan(settings: Settings, parallelism: int, source: GroupSpec, target: GroupSpec,
              compat: Compatibility, selection: Selection, write_api: str,
              filter_query: str | None, samples: list[dict[str, Any]]) -> Plan:
    m = settings.migration
    from .partitions import partition_count  # pyspark: the preflight imports plan before Spark

    partitions = partition_count(selection.counts.selected, m.partition_records, parallelism)
    calls, seconds, rate = estimate(selection.counts.selected, write_api, m.max_tps)
    return Plan(
        run_id=settings.run_id,
        source=group_summary(source),
        target=group_summary(target),
        strategy=("online store current values" if source.online
                  else "offline store latest state"),
        id_source=selection.id_source,
        id_source_reason=selection.id_source_reason or "latest row per record id",
        target_stores=list(target.stores),
        write_api=write_api,
        batch_size=m.batch_size,
        max_workers=m.max_workers,
        max_tps=m.max_tps,
        filter_query=filter_query,
        resume_from=m.resume_from,
        partitions=partitions,
        partition_records=m.partition_records,
        counts=selection.counts,
        source_files=selection.files,
        source_bytes=selection.bytes,
        expected_api_calls=calls,
        expected_seconds=round(seconds, 1),
        expected_rate=rate,
        features=compat.as_rows(),
        samples=samples,
        ttl=m.ttl,
        read_tps=m.read_tps,
        verify=m.verify,
        notes=list(selection.notes),
    )


def format_plan(plan: Plan, compat: Compatibility | None = None) -> str:
    c = plan.counts
    src, tgt = plan.source, plan.target
    lines = [
        f"Migration plan {plan.run_id}",
        f"  source     {src['name']} ({src['kind']})  {src.get('offline_uri') or ''}".rstrip(),
        f"  target     {tgt['name']} ({tgt['kind']})  stores: {', '.join(plan.target_stores)}",
        f"  strategy   {plan.strategy}; record ids from {plan.id_source} ({plan.id_source_reason})",
        f"  source     {plan.source_files:,} files, {plan.source_bytes:,} bytes, "
        f"{c.rows_scanned:,} rows",
        f"  records    {c.records:,} ids; {c.deleted_skipped:,} deleted, "
        f"{c.expired_skipped:,} expired, {c.filtered_out:,} filtered out, "
        f"{c.before_resume_from:,} before --resume-from, {c.expired_on_arrival:,} would "
        f"arrive expired, {c.bad_event_time:,} with unparseable event times "
        f"-> {c.selected:,} to write",
        f"  filter     {plan.filter_query or '(none)'}",
        f"  writes     {plan.write_api} API, batch {plan.batch_size}, {plan.max_workers} threads "
        f"x {plan.partitions} partitions (~{plan.partition_records:,} records each)",
        f"  estimate   {plan.expected_api_calls:,} API calls, ~{plan.expected_seconds:,.0f} s at "
        f"{plan.expected_rate:,.0f} records/s"
        + ("" if plan.max_tps else " (the account quota; set --max-tps to plan for less)"),
        f"  reads      BatchGetRecord at most {plan.read_tps or 0:,.0f} calls/s "
        "(migration.read_tps; the account quota is 500)",
        f"  target     {_target_state(plan)}",
        f"  verify     {plan.verify}",
    ]
    lines += [f"  note       {note}" for note in plan.notes]
    if plan.clear_target:
        ct = plan.clear_target
        lines.append(f"  clear      first deletes {ct['online_records']:,} online records and "
                     f"{ct['offline_objects']:,} offline objects ({ct['offline_bytes']:,} bytes) "
                     f"of {tgt['name']}")
    if compat is not None:
        lines.append(compat_table(compat, indent="  "))
    if plan.samples:
        lines.append("  sample records (as sent)")
        for sample in plan.samples:
            lines.append(f"    {sample}")
    return "\n".join(lines)


def _target_state(plan: Plan) -> str:
    if plan.target_empty:
        return f"empty ({plan.target_empty_how})"
    rule = ("records it holds at an equal or newer event time keep the target's version "
            "(AWS's rule); verification counts them as target kept newer")
    if plan.target_empty is None:
        return f"not checked ({plan.target_empty_how}): {rule}"
    return f"holds records ({plan.target_empty_how}): {rule}"
