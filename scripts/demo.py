"""`make demo`: start the local Feature Store, seed an offline-only source, create an
Online+Offline target, run the real `spark-submit job/migrate.py`, show the result, stop.
Extra arguments go to the job: `make demo ARGS="--write-api put"`.

The steps are functions, for scripts that run the same thing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import emulator_process  # noqa: E402
from seed_data import SeedSpec, feature_definitions, seed  # noqa: E402

PORT = 8765  # conf/local.yaml points here
DATA_DIR = ROOT / ".demo" / "s3"  # conf/local.yaml: storage.local_root
RUNS = DATA_DIR / "local-feature-store" / "migration-runs"  # conf/local.yaml: output.uri
SOURCE, TARGET = "demo-source", "demo-target"
RECORDS = 10_000


def start_emulator():
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    shutil.rmtree(DATA_DIR.parent, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    return emulator_process.start(DATA_DIR, port=PORT)


def seed_source(emu, records: int, versions: int = 4):
    spec = SeedSpec(group=SOURCE, records=records, versions=versions, stores="offline")
    return spec, seed(spec, endpoint_url=emu.url, local_root=DATA_DIR)


def create_target(emu, spec: SeedSpec, name: str = TARGET) -> None:
    boto3.client("sagemaker", region_name="us-east-1", endpoint_url=emu.url).create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName="record_id",
        EventTimeFeatureName="event_time", FeatureDefinitions=feature_definitions(spec),
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": f"s3://local-feature-store/{name}"}},
        RoleArn="arn:aws:iam::123456789012:role/demo",
    )


def job_command(conf: Path, *args: str) -> list[str]:
    """The demo's spark-submit command line (its quiet log settings) with the settings `conf`."""
    quiet_logs = f"-Dlog4j2.configurationFile={ROOT / 'conf' / 'log4j2-quiet.properties'}"
    return [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
            "--driver-java-options", quiet_logs, "--conf", "spark.ui.enabled=false",
            str(ROOT / "job" / "migrate.py"), "--conf", str(conf), *args]


def run_job(*args: str, quiet: bool = False) -> int:
    """The real spark-submit with conf/local.yaml; output goes to the terminal unless quiet."""
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1")
    out = subprocess.DEVNULL if quiet else None
    return subprocess.call(job_command(ROOT / "conf" / "local.yaml", *args), cwd=ROOT, env=env,
                           stdout=out, stderr=out)


def report(run_id: str) -> dict:
    return json.loads((RUNS / run_id / "report.json").read_text())


def count_online(emu, group: str) -> int:
    runtime = boto3.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                           endpoint_url=emu.url)
    count, token = 0, None
    while True:
        page = runtime.list_records(FeatureGroupName=group, MaxResults=100,
                                    **({"NextToken": token} if token else {}))
        count += len(page["RecordIdentifiers"])
        token = page.get("NextToken")
        if not token:
            return count


def main() -> int:
    with start_emulator() as emu:
        print(f"local Feature Store running at {emu.url} (data in {DATA_DIR})")
        spec, summary = seed_source(emu, RECORDS)
        print(f"seeded {SOURCE}: {summary.records:,} records, {summary.rows_offline:,} offline "
              f"rows in {summary.files} files, {summary.deleted_records:,} deleted")
        create_target(emu, spec)
        print(f"created {TARGET} (Online+Offline); migrating with spark-submit ...\n", flush=True)
        code = run_job("--source", SOURCE, "--target", TARGET, *sys.argv[1:])
        print(f"\n{TARGET} online store now holds {count_online(emu, TARGET):,} records "
              f"(expected {summary.records - summary.deleted_records:,}); exit code {code}")
        print(f"run folders: {RUNS}/")
    return code


if __name__ == "__main__":
    sys.exit(main())
