"""`make demo`: start the local Feature Store, seed an offline-only source, create an
Online+Offline target, run the real `spark-submit job/migrate.py`, show the result, stop.
Extra arguments go to the job: `make demo ARGS="--write-api put"`."""

from __future__ import annotations

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
SOURCE, TARGET = "demo-source", "demo-target"
RECORDS = 10_000


def main() -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    shutil.rmtree(DATA_DIR.parent, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    with emulator_process.start(DATA_DIR, port=PORT) as emu:
        print(f"local Feature Store running at {emu.url} (data in {DATA_DIR})")
        spec = SeedSpec(group=SOURCE, records=RECORDS, versions=4, stores="offline")
        summary = seed(spec, endpoint_url=emu.url, local_root=DATA_DIR)
        print(f"seeded {SOURCE}: {summary.records:,} records, {summary.rows_offline:,} offline "
              f"rows in {summary.files} files, {summary.deleted_records:,} deleted")
        sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=emu.url)
        sm.create_feature_group(
            FeatureGroupName=TARGET, RecordIdentifierFeatureName="record_id",
            EventTimeFeatureName="event_time", FeatureDefinitions=feature_definitions(spec),
            OnlineStoreConfig={"EnableOnlineStore": True},
            OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://local-feature-store/target"}},
            RoleArn="arn:aws:iam::123456789012:role/demo",
        )
        print(f"created {TARGET} (Online+Offline); migrating with spark-submit ...\n", flush=True)
        env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   SPARK_LOCAL_IP="127.0.0.1")
        quiet_logs = f"-Dlog4j2.configurationFile={ROOT / 'conf' / 'log4j2-quiet.properties'}"
        cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
               "--driver-java-options", quiet_logs,
               "--conf", "spark.ui.enabled=false", "--conf", "spark.log.level=WARN",
               str(ROOT / "job" / "migrate.py"),
               "--conf", str(ROOT / "conf" / "local.yaml"), "--source", SOURCE, "--target", TARGET,
               *sys.argv[1:]]
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        runtime = boto3.client("sagemaker-featurestore-runtime", region_name="us-east-1",
                               endpoint_url=emu.url)
        online = 0
        token = None
        while True:
            page = runtime.list_records(FeatureGroupName=TARGET, MaxResults=100,
                                        **({"NextToken": token} if token else {}))
            online += len(page["RecordIdentifiers"])
            token = page.get("NextToken")
            if not token:
                break
        print(f"\n{TARGET} online store now holds {online:,} records "
              f"(expected {summary.records - summary.deleted_records:,}); exit code {code}")
        print(f"run folders: {DATA_DIR}/local-feature-store/migration-runs/")
    return code


if __name__ == "__main__":
    sys.exit(main())
