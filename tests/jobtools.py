"""The tests' shared helpers: feature groups, unique names, records, reading a group back
(plain boto3, so the emulator's own tests can use them too), and for the end-to-end tests: run
the real `spark-submit job/migrate.py` and compute the expected target state independently of
the job (plain Python over the source's Parquet files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
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


# The tests' jobs are small: most of a short job's CPU is the JIT's C2 compiler, which on 2
# cores takes them from the tasks. C1 alone compiles faster; it changes no result.
# (test_clean_output runs the demo's own command instead, with the production JVM options.)
TEST_JIT = "-XX:TieredStopAtLevel=1"


def job_command(args: list[str]) -> list[str]:
    return [str(SPARK_SUBMIT), "--master", "local[2]", "--driver-java-options", TEST_JIT,
            "--conf", "spark.ui.enabled=false", "--conf", "spark.log.level=WARN",
            str(ROOT / "job" / "migrate.py"), *args]


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


def unique(prefix: str = "g") -> str:
    """A group name no other test uses (the emulator lives for the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def definitions(*features) -> list[dict]:
    """FeatureDefinitions from (name, type) or (name, type, collection type) tuples."""
    out = []
    for name, kind, *collection in features:
        d = {"FeatureName": name, "FeatureType": kind}
        if collection:
            d["CollectionType"] = collection[0]
        out.append(d)
    return out


def create_group(sm, name: str | None = None, features=(), online=True, offline=True,
                 storage=None, ttl=None, record_id="record_id", event_time="event_time",
                 s3_uri=None, role: str | None = ROLE, **extra) -> str:
    """A group (FeatureDefinitions, or tuples for :func:`definitions`), named by :func:`unique`
    unless `name` is given; its offline store under `s3_uri`, by default
    s3://local-feature-store/targets/<name>; `role=None` sends no RoleArn; `extra` goes to
    CreateFeatureGroup as is. Returns the name."""
    name = name or unique()
    if features and not isinstance(features[0], dict):
        features = definitions(*features)
    kwargs = dict(extra, **({"RoleArn": role} if role else {}))
    if online:
        kwargs["OnlineStoreConfig"] = {"EnableOnlineStore": True}
        if storage:
            kwargs["OnlineStoreConfig"]["StorageType"] = storage
        if ttl:
            kwargs["OnlineStoreConfig"]["TtlDuration"] = ttl
    if offline:
        kwargs["OfflineStoreConfig"] = {"S3StorageConfig": {
            "S3Uri": s3_uri or f"s3://local-feature-store/targets/{name}"}}
    sm.create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName=record_id,
        EventTimeFeatureName=event_time, FeatureDefinitions=list(features), **kwargs)
    return name


def group_spec(sm, name: str):
    """fsmigrate's GroupSpec of a group, as the job sees it."""
    from fsmigrate import aws
    from fsmigrate.groups import spec_from_description

    return spec_from_description(aws.describe_feature_group(sm, name))


def fv(**values) -> list[dict]:
    """A record: features with a value (lists as ValueAsStringList); None leaves one out."""
    out = []
    for name, value in values.items():
        if value is None:
            continue
        key = "ValueAsStringList" if isinstance(value, list) else "ValueAsString"
        out.append({"FeatureName": name, key: value})
    return out


def put_records(fsr, group: str, records: list[list[dict]], stores=None) -> None:
    """Records (see :func:`fv`) through BatchWriteRecord, 25 a call; every one must land."""
    entries = [{"FeatureGroupName": group, "Record": record,
                **({"TargetStores": stores} if stores else {})} for record in records]
    for start in range(0, len(entries), 25):
        response = fsr.batch_write_record(Entries=entries[start:start + 25])
        assert not response.get("Errors") and not response.get("UnprocessedEntries")


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
    """Every row of an offline store folder, with its hive partition columns."""
    dataset = ds.dataset(str(data_dir), format="parquet", partitioning="hive")
    return dataset.to_table().to_pylist()


def latest_rows(rows: list[dict], id_name="record_id", time_name="event_time") -> dict:
    """Latest row per id, delete markers included: newest event instant, then
    api_invocation_time, then write_time."""
    best: dict = {}
    for row in rows:
        key = (instant(row[time_name]), row["api_invocation_time"], row["write_time"])
        current = best.get(row[id_name])
        if current is None or key > current[0]:
            best[row[id_name]] = (key, row)
    return {rid: row for rid, (_, row) in best.items()}


def expected_latest(rows: list[dict], id_name="record_id", time_name="event_time") -> dict:
    """Latest non-deleted row per id (see :func:`latest_rows`): the state a store should hold."""
    return {rid: row for rid, row in latest_rows(rows, id_name, time_name).items()
            if not row["is_deleted"]}


def as_dict(record: list[dict]) -> dict:
    """{feature: value} of a record's FeatureValues."""
    return {f["FeatureName"]: f.get("ValueAsString", f.get("ValueAsStringList")) for f in record}


def read_online(fsr, group: str, ids: list[str],
                expiry: bool = False) -> dict[str, dict[str, str]]:
    """{record id: {feature: value}} for the ids that are online; with `expiry`, records that
    expire also have '_expires' (their ExpiresAt)."""
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 100):
        resp = fsr.batch_get_record(Identifiers=[{
            "FeatureGroupName": group, "RecordIdentifiersValueAsString": ids[start:start + 100]}],
            **({"ExpirationTimeResponse": "Enabled"} if expiry else {}))
        assert not resp["Errors"] and not resp["UnprocessedIdentifiers"]
        for rec in resp["Records"]:
            values = as_dict(rec["Record"])
            if "ExpiresAt" in rec:
                values["_expires"] = rec["ExpiresAt"]
            out[rec["RecordIdentifierValueAsString"]] = values
    return out


def online_state(fsr, group: str) -> dict[str, dict[str, str]]:
    return read_online(fsr, group, sorted(list_online_ids(fsr, group)))


def record_ids(fsr, group: str, include_soft_deleted: bool = False) -> list[str]:
    """Every id ListRecords gives, page by page, in the order given (repeats kept, so a test
    can see them)."""
    ids: list[str] = []
    token = None
    while True:
        page = fsr.list_records(FeatureGroupName=group, MaxResults=100,
                                **({"NextToken": token} if token else {}),
                                **({"IncludeSoftDeletedRecords": True}
                                   if include_soft_deleted else {}))
        ids += page["RecordIdentifiers"]
        token = page.get("NextToken")
        if not token:
            return ids


def list_online_ids(fsr, group: str, include_soft_deleted: bool = False) -> set[str]:
    """The set of :func:`record_ids`."""
    return set(record_ids(fsr, group, include_soft_deleted))


def offline_dir(emulator, sm, group: str) -> Path:
    """The local folder of a group's offline store (its ResolvedOutputS3Uri)."""
    uri = sm.describe_feature_group(FeatureGroupName=group)["OfflineStoreConfig"][
        "S3StorageConfig"]["ResolvedOutputS3Uri"]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return emulator.data_dir / bucket / key


def op_stats(emulator, op: str) -> dict:
    """The emulator's counters of one operation (requests, records, errors by code)."""
    return emulator.stats()["operations"].get(op, {"requests": 0, "records": 0, "errors": {}})


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


def assumed_roles() -> dict:
    """Every AssumeRole moto's STS answered in this process (the tests' moto server runs in
    it): {access key id: moto's AssumedRole (role_arn, external_id, secret_access_key,
    session_token ...)}."""
    from moto.sts.models import sts_backends

    return {r.access_key_id: r for account in list(sts_backends)
            for backend in sts_backends[account].values() for r in backend.assumed_roles}


class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
