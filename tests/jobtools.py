"""Helpers for end-to-end tests: run the real `spark-submit job/migrate.py`, compute the expected
target state independently of the job (plain Python over the source's Parquet files), and read
a target back through boto3."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.dataset as ds
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


def write_conf(path: Path, emulator, **migration) -> Path:
    conf = {
        "aws": {"region": "us-east-1", "endpoint_url": emulator.url},
        "storage": {"local_root": str(emulator.data_dir)},
        "output": {"uri": "s3://local-feature-store/runs"},
        "migration": {"partition_records": 500, "progress_interval_seconds": 1, **migration},
    }
    path.write_text(yaml.safe_dump(conf))
    return path


def spark_submit(args: list[str], timeout: float = 300, env_overrides: dict | None = None,
                 **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, **(env_overrides or {})}
    cmd = [str(SPARK_SUBMIT), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
           "--conf", "spark.log.level=WARN", str(ROOT / "job" / "migrate.py"), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **popen)


def instant(value) -> tuple[int, int]:
    """(seconds, nanoseconds) of an ISO-8601 `...Z` string or fractional unix seconds."""
    if isinstance(value, float):
        whole = int(value // 1)
        return whole, int(round((value - whole) * 1e9))
    text = value.rstrip("Z")
    whole, _, fraction = text.partition(".")
    seconds = int(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    return seconds, int(fraction.ljust(9, "0")) if fraction else 0


def offline_rows(data_dir: Path) -> list[dict]:
    dataset = ds.dataset(str(data_dir), format="parquet", partitioning="hive")
    return dataset.to_table().to_pylist()


def expected_latest(rows: list[dict], id_name="record_id", time_name="event_time") -> dict:
    """Latest non-deleted row per id: newest event instant, then api_invocation_time, then
    write_time."""
    best: dict = {}
    for row in rows:
        key = (instant(row[time_name]), row["api_invocation_time"], row["write_time"])
        current = best.get(row[id_name])
        if current is None or key > current[0]:
            best[row[id_name]] = (key, row)
    return {rid: row for rid, (_, row) in best.items() if not row["is_deleted"]}


def read_online(fsr, group: str, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 100):
        resp = fsr.batch_get_record(Identifiers=[{
            "FeatureGroupName": group, "RecordIdentifiersValueAsString": ids[start:start + 100]}])
        assert not resp["Errors"] and not resp["UnprocessedIdentifiers"]
        for rec in resp["Records"]:
            out[rec["RecordIdentifierValueAsString"]] = {
                f["FeatureName"]: f.get("ValueAsString", f.get("ValueAsStringList"))
                for f in rec["Record"]}
    return out


def list_online_ids(fsr, group: str) -> set[str]:
    ids: set[str] = set()
    token = None
    while True:
        page = fsr.list_records(FeatureGroupName=group, MaxResults=100,
                                **({"NextToken": token} if token else {}))
        ids.update(page["RecordIdentifiers"])
        token = page.get("NextToken")
        if not token:
            return ids


def same_value(sent: str, expected, feature_type: str) -> bool:
    if feature_type == "Integral":
        return int(sent) == expected
    if feature_type == "Fractional":
        return float(sent) == expected
    return sent == expected


def mismatches(actual: dict[str, dict[str, str]], expected: dict[str, dict],
               types: dict[str, str]) -> list[str]:
    """Every difference between the target's records and the expected rows, as text."""
    problems = [f"missing {rid}" for rid in expected.keys() - actual.keys()]
    problems += [f"unexpected {rid}" for rid in actual.keys() - expected.keys()]
    for rid in expected.keys() & actual.keys():
        want = {k: v for k, v in expected[rid].items() if k in types and v is not None}
        got = actual[rid]
        if want.keys() != got.keys():
            problems.append(f"{rid}: features {sorted(got)} != {sorted(want)}")
            continue
        for name, value in want.items():
            if not same_value(got[name], value, types[name]):
                problems.append(f"{rid}.{name}: {got[name]!r} != {value!r}")
    return problems
