"""The end of a run: report.json and the printed summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .plan import Plan
from .progress import format_duration
from .runstate import RunFolder
from .verify import exit_code as verify_exit_code
from .verify import format_verify


@dataclass
class Phases:
    """Wall-clock seconds per phase, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._started, 3)
        self._started = now


def finish(plan: Plan, totals: dict[str, int], checkpoints_before: dict[int, dict],
           phases: Phases, folder: RunFolder, verified: dict[str, Any] | None = None) -> int:
    """Write report.json, print the summary; the exit code."""
    result = with_verify(build(plan, totals, checkpoints_before, phases.seconds, folder),
                         verified)
    folder.write_report(result)
    print(format_summary(result))
    return result["exit_code"]


def build(plan: Plan, this_run: dict[str, int], checkpoints_before: dict[int, dict],
          phases: dict[str, float], folder: RunFolder) -> dict[str, Any]:
    """Totals come from the checkpoints (every finished partition, this run's and earlier)."""
    checkpoints = folder.checkpoints()
    written = sum(c["written"] for c in checkpoints.values())
    failed = sum(c["failed"] for c in checkpoints.values())
    cpu = sum(c.get("cpu_seconds", 0.0) for c in checkpoints.values())
    task_seconds = sum(c.get("seconds", 0.0) for c in checkpoints.values())
    write_seconds = phases.get("write", 0.0)
    c = plan.counts
    return {
        "run_id": plan.run_id,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": plan.source["name"],
        "target": plan.target["name"],
        "rows_scanned": c.rows_scanned,
        "records": c.records,
        "deleted_skipped": c.deleted_skipped,
        "expired_skipped": c.expired_skipped,
        "filtered_out": c.filtered_out,
        "before_resume_from": c.before_resume_from,
        "expired_on_arrival": c.expired_on_arrival,
        "bad_event_time": c.bad_event_time,
        "selected": c.selected,
        "written": written,
        "failed": failed,
        "unaccounted": max(0, c.selected - written - failed),
        "partitions": plan.partitions,
        "partitions_finished": len(checkpoints),
        "partitions_done_before": len(checkpoints_before),
        "this_run": this_run,
        "write_api": plan.write_api,
        "phases_seconds": phases,
        "total_seconds": round(sum(phases.values()), 3),
        "records_per_second": round(this_run.get("written", 0) / write_seconds, 1)
        if write_seconds else 0.0,
        "writer_cpu_us_per_record": round(1e6 * cpu / (written + failed), 1)
        if written + failed else None,
        "records_per_task_second": round((written + failed) / task_seconds, 1)
        if task_seconds else None,
        "failures": folder.failures_uri if failed else None,
        # Selected records that no partition reported (neither written nor failed) mean the run
        # state went missing (e.g. executors' own disks): never a clean exit; --resume finishes.
        "exit_code": 3 if c.selected > written + failed else 1 if failed else 0,
    }


def with_verify(result: dict[str, Any], verified: dict[str, Any] | None) -> dict[str, Any]:
    """The report with a verification's section: records the target kept (it held an equal or
    newer version) are not counted as written; a missing or different record exits 1."""
    result = dict(result)
    earlier = (result.get("verify") or {}).get("target_kept_newer", 0)
    result["verify"] = verified
    kept = (verified or {}).get("target_kept_newer", 0)
    result["written"] = result["written"] + earlier - kept
    result["target_kept_newer"] = kept
    result["exit_code"] = max(1 if result["failed"] else 0, verify_exit_code(verified))
    return result


def format_summary(r: dict[str, Any]) -> str:
    phases = ", ".join(f"{k} {format_duration(v)}" for k, v in r["phases_seconds"].items())
    lines = [
        f"Migration {r['run_id']}: {r['source']} -> {r['target']}",
        f"  rows scanned      {r['rows_scanned']:,}",
        f"  records           {r['records']:,}",
        f"  deleted skipped   {r['deleted_skipped']:,}",
        f"  expired skipped   {r['expired_skipped']:,}",
        f"  filtered out      {r['filtered_out']:,}",
        f"  expire on arrival {r.get('expired_on_arrival', 0):,} (not written)",
        f"  bad event time    {r.get('bad_event_time', 0):,} (not written)",
        f"  selected          {r['selected']:,}",
        f"  written           {r['written']:,}",
        f"  target kept newer {r.get('target_kept_newer', 0):,}",
        f"  failed            {r['failed']:,}",
        f"  time              {phases} (total {format_duration(r['total_seconds'])})",
        f"  rate              {r['records_per_second']:,.0f} records/s "
        f"({r['this_run'].get('api_calls', 0):,} API calls, "
        f"{r['this_run'].get('retried', 0):,} retried, "
        f"{r['this_run'].get('throttled', 0):,} throttled)",
    ]
    if r.get("writer_cpu_us_per_record"):
        lines.append(f"  writer            {r['writer_cpu_us_per_record']:,.0f} µs CPU/record, "
                     f"{r['records_per_task_second']:,.0f} records/s per task")
    lines += format_verify(r.get("verify"))
    if r["before_resume_from"]:
        lines.insert(6, f"  before resume-from {r['before_resume_from']:,}")
    if r["unaccounted"]:
        lines.append(f"  unaccounted       {r['unaccounted']:,} records no partition reported "
                     f"(output.uri not shared by all executors?): finish with "
                     f"--resume {r['run_id']}")
    if r["failed"]:
        lines.append(f"  failed records in {r['failures']} "
                     f"(re-send with --retry-failures {r['run_id']})")
    return "\n".join(lines)
