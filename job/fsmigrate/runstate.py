"""The run folder: `<output.uri>/<run_id>/` with plan.json, report.json, checkpoints/, failures/.

Executors write (when needed) one failure file per partition, the driver one checkpoint per
partition whose task succeeded; each file is replaced in one step, so a Spark task retry
replaces its earlier attempt instead of adding to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .storage import Store, join

_PART = re.compile(r"part-(\d+)\.json(?:l)?$")


def _part_name(partition: int, suffix: str) -> str:
    return f"part-{partition:05d}{suffix}"


@dataclass(frozen=True)
class RunFolder:
    store: Store
    uri: str  # <output.uri>/<run_id>

    @classmethod
    def at(cls, store: Store, output_uri: str, run_id: str) -> RunFolder:
        return cls(store, join(output_uri, run_id))

    @property
    def plan_uri(self) -> str:
        return join(self.uri, "plan.json")

    @property
    def report_uri(self) -> str:
        return join(self.uri, "report.json")

    @property
    def failures_uri(self) -> str:
        return join(self.uri, "failures")

    def write_json(self, uri: str, data: dict[str, Any]) -> None:
        self.store.write_text(uri, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

    def read_json(self, uri: str) -> dict[str, Any]:
        return json.loads(self.store.read_text(uri))

    def write_plan(self, plan: dict[str, Any]) -> None:
        self.write_json(self.plan_uri, plan)

    def read_plan(self) -> dict[str, Any]:
        return self.read_json(self.plan_uri)

    def has_plan(self) -> bool:
        return self.store.exists(self.plan_uri)

    def write_report(self, report: dict[str, Any]) -> None:
        self.write_json(self.report_uri, report)

    @property
    def cleared_uri(self) -> str:
        return join(self.uri, "cleared.json")

    def mark_cleared(self, counts: dict[str, Any]) -> None:
        """--clear-target finished: a resumed run must not clear again (it would delete what
        this run has written since), and one interrupted mid-clear must."""
        self.write_json(self.cleared_uri, counts)

    def was_cleared(self) -> bool:
        return self.store.exists(self.cleared_uri)

    # ---- per partition, written by executors -------------------------------------------------

    def write_checkpoint(self, partition: int, stats: dict[str, Any]) -> None:
        self.write_json(join(self.uri, "checkpoints", _part_name(partition, ".json")), stats)

    def checkpoints(self) -> dict[int, dict[str, Any]]:
        out = {}
        for uri in self.store.list(join(self.uri, "checkpoints")):
            match = _PART.search(uri)
            if match:
                out[int(match.group(1))] = self.read_json(uri)
        return out

    def write_failures(self, partition: int, failures: list[dict[str, Any]]) -> None:
        uri = join(self.failures_uri, _part_name(partition, ".jsonl"))
        if not failures:
            self.store.delete(uri)  # an earlier attempt of this task may have left one
            return
        self.store.write_text(uri, "".join(json.dumps(f, default=str) + "\n" for f in failures))

    @property
    def verify_uri(self) -> str:
        return join(self.uri, "verify")

    def write_verify(self, partition: int, mismatches: list[dict[str, Any]]) -> None:
        """--verify's mismatches of one partition (JSON lines: expected and actual record)."""
        uri = join(self.verify_uri, _part_name(partition, ".jsonl"))
        if not mismatches:
            self.store.delete(uri)
            return
        self.store.write_text(uri, "".join(json.dumps(m, default=str) + "\n"
                                           for m in mismatches))

    def clear_verify(self) -> None:
        """A new verification replaces the files of an earlier one."""
        self.store.delete_many(self.store.list(self.verify_uri))

    def has_report(self) -> bool:
        return self.store.exists(self.report_uri)

    def read_report(self) -> dict[str, Any]:
        return self.read_json(self.report_uri)

    def failure_files(self) -> list[str]:
        return [u for u in self.store.list(self.failures_uri) if u.endswith(".jsonl")]

    def failures(self) -> Iterator[dict[str, Any]]:
        for uri in self.failure_files():
            for line in self.store.read_text(uri).splitlines():
                if line.strip():
                    yield json.loads(line)
