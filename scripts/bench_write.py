"""Benchmark the per-partition writer against the local emulator.

Starts the emulator, creates a 22-feature group and writes N records with
``fsmigrate.write.write_partition`` through BatchWriteRecord and PutRecord, printing records/s
and the writer process's CPU time per record (median of several runs). Numbers only, no
assertions.

    .venv/bin/python scripts/bench_write.py [--records 20000] [--runs 3] [--apis batch,put]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "job"))
sys.path.insert(0, str(ROOT / "scripts"))

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import emulator_process  # noqa: E402
from fsmigrate import aws  # noqa: E402
from fsmigrate.write import WriterSettings, write_partition  # noqa: E402

# 22 features: id, event time, 7 Integral, 7 Fractional, 6 String
FEATURES = (
    [("record_id", "String"), ("event_time", "String")]
    + [(f"i{n}", "Integral") for n in range(7)]
    + [(f"f{n}", "Fractional") for n in range(7)]
    + [(f"s{n}", "String") for n in range(6)]
)


def make_rows(n: int) -> list[tuple]:
    rows = []
    for i in range(n):
        row = [f"rec-{i:08d}", "2024-05-01T12:00:00Z"]
        row += [str(i * 7 + k) for k in range(7)]
        row += [repr(i / 3.0 + k) for k in range(7)]
        row += [f"value-{i}-{k}-abcdefghij" for k in range(6)]
        rows.append(tuple(row))
    return rows


def create_group(sm, name: str) -> None:
    sm.create_feature_group(
        FeatureGroupName=name,
        RecordIdentifierFeatureName="record_id",
        EventTimeFeatureName="event_time",
        FeatureDefinitions=[{"FeatureName": f, "FeatureType": t} for f, t in FEATURES],
        OnlineStoreConfig={"EnableOnlineStore": True},
    )
    for _ in range(100):
        status = sm.describe_feature_group(FeatureGroupName=name)["FeatureGroupStatus"]
        if status == "Created":
            return
        time.sleep(0.1)
    raise RuntimeError(f"group {name} not Created: {status}")


def run_once(rows, settings) -> tuple[float, float, int]:
    client = aws.runtime_client(settings.aws, max_pool=max(10, settings.max_workers + 2))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = write_partition(rows, settings, client=client)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if result.failed:
        print(f"  warning: {len(result.failed)} failed, first: {result.failed[0]['error_code']}")
    return len(rows) / wall, cpu / len(rows) * 1e6, result.api_calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--apis", default="batch,put")
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)

    rows = make_rows(args.records)
    with tempfile.TemporaryDirectory(prefix="bench-write-") as data_dir:
        emu = emulator_process.start(data_dir)
        try:
            settings_aws = aws.AwsSettings(endpoint_url=emu.url)
            sm = aws.control_client(settings_aws)
            group = f"bench-write-{uuid.uuid4().hex[:8]}"
            create_group(sm, group)
            print(f"{args.records} records x {len(FEATURES)} features, "
                  f"max_workers={args.max_workers}, batch_size={args.batch_size}, "
                  f"median of {args.runs} runs")
            for api in args.apis.split(","):
                settings = WriterSettings(
                    aws=settings_aws, target_group=group,
                    columns=tuple(f for f, _ in FEATURES), record_id_name="record_id",
                    batch_size=args.batch_size, max_workers=args.max_workers, write_api=api,
                )
                runs = [run_once(rows, settings) for _ in range(args.runs)]
                rate = statistics.median(r[0] for r in runs)
                cpu_us = statistics.median(r[1] for r in runs)
                print(f"{api:>5}: {rate:10,.0f} records/s  {cpu_us:7.1f} us CPU/record  "
                      f"({runs[0][2]} calls/run; runs: "
                      + ", ".join(f"{r[0]:,.0f}/s {r[1]:.0f}us" for r in runs) + ")")
        finally:
            emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
