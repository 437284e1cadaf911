"""Helpers for end-to-end tests: run the real `spark-submit job/migrate.py`, compute the expected
target state independently of the job (plain Python over the source's Parquet files), and read
a target back through boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.dataset as ds
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
ROLE = "arn:aws:iam::123456789012:role/test"


def write_conf(path: Path, emulator, **migration) -> Path:
    conf = {
        "aws": {"region": "us-east-1", "endpoint_url": emulator.url},
        "storage": {"local_root": str(emulator.data_dir)},
        "output": {"uri": "s3://local-feature-store/runs"},
        "migration": {"partition_records": 500, "progress_interval_seconds": 1, **migration},
    }
    path.write_text(yaml.safe_dump(conf))
    return path


def job_command(args: list[str]) -> list[str]:
    return [str(SPARK_SUBMIT), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
            "--conf", "spark.log.level=WARN", str(ROOT / "job" / "migrate.py"), *args]


def job_env(overrides: dict | None = None) -> dict[str, str]:
    return {**os.environ, "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable, **(overrides or {})}


def spark_submit(args: list[str], timeout: float = 300, env_overrides: dict | None = None,
                 **popen) -> subprocess.CompletedProcess:
    return subprocess.run(job_command(args), cwd=ROOT, env=job_env(env_overrides),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **popen)


def output(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr  # spark-submit sends the driver's stderr to stdout


def run_dir(emulator, run_id: str) -> Path:
    """The run folder of `write_conf`'s output.uri, mapped onto the emulator's data dir."""
    return emulator.data_dir / "local-feature-store" / "runs" / run_id


def report_of(emulator, run_id: str) -> dict:
    return json.loads((run_dir(emulator, run_id) / "report.json").read_text())


def plan_of(emulator, run_id: str) -> dict:
    return json.loads((run_dir(emulator, run_id) / "plan.json").read_text())


def op_total(emulator, ops: tuple[str, ...], key: str = "requests") -> int:
    """An emulator counter ("requests" or "records") summed over operations, all groups."""
    stats = emulator.stats()["operations"]
    return sum(stats.get(op, {}).get(key, 0) for op in ops)


def create_group(sm, name: str, definitions, online=True, offline=True, storage=None,
                 ttl=None) -> None:
    """A group with `record_id`/`event_time`; its offline store under targets/<name>."""
    kwargs = {}
    if online:
        kwargs["OnlineStoreConfig"] = {"EnableOnlineStore": True}
        if storage:
            kwargs["OnlineStoreConfig"]["StorageType"] = storage
        if ttl:
            kwargs["OnlineStoreConfig"]["TtlDuration"] = ttl
    if offline:
        kwargs["OfflineStoreConfig"] = {
            "S3StorageConfig": {"S3Uri": f"s3://local-feature-store/targets/{name}"}}
    sm.create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName="record_id",
        EventTimeFeatureName="event_time", FeatureDefinitions=definitions, RoleArn=ROLE, **kwargs)


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


def online_state(fsr, group: str) -> dict[str, dict[str, str]]:
    return read_online(fsr, group, sorted(list_online_ids(fsr, group)))


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
