"""Benchmark the whole job: seed N records (× versions) into an offline-only source, then
migrate them with the real spark-submit several times (a fresh target each run), for each
write API. Prints per-run and median numbers from each run's report.json; no assertions.

    .venv/bin/python scripts/bench_migration.py [--records 100000] [--runs 3] [--apis batch,put]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from demo import SOURCE, create_target, report, run_job, seed_source, start_emulator

FIELDS = ("selected", "records_per_second", "writer_cpu_us_per_record",
          "records_per_task_second")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--versions", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--apis", default="batch,put")
    p.add_argument("--put-records", type=int, default=10_000,
                   help="PutRecord is ~7x slower: its runs filter down to about this many")
    args = p.parse_args()
    with start_emulator() as emu:
        started = time.monotonic()
        spec, summary = seed_source(emu, args.records, args.versions)
        print(f"seeded {summary.records:,} records / {summary.rows_offline:,} rows in "
              f"{time.monotonic() - started:.1f} s")
        for api in args.apis.split(","):
            rows = []
            for n in range(args.runs):
                target, run_id = f"bench-{api}-{n}", f"bench-{api}-{n}"
                create_target(emu, spec, target)
                job = ["--source", SOURCE, "--target", target, "--run-id", run_id,
                       "--write-api", api]
                if api == "put" and args.records > args.put_records:
                    # record ids are r0000000..: keep the first put_records ids
                    job += ["--filter-query", f"record_id < 'r{args.put_records:07d}'"]
                wall = time.monotonic()
                code = run_job(*job, quiet=True)
                wall = time.monotonic() - wall
                r = report(run_id)
                phases = r["phases_seconds"]
                rows.append([r[f] for f in FIELDS] + [phases["plan"], phases["write"], wall])
                print(f"{api:5} run {n + 1}: exit {code}, {r['selected']:,} records, "
                      f"{r['records_per_second']:,.0f} rec/s in the write phase, "
                      f"{r['writer_cpu_us_per_record']:,.0f} us CPU/record, plan "
                      f"{phases['plan']:.1f} s, write {phases['write']:.1f} s, "
                      f"spark-submit {wall:.1f} s", flush=True)
            medians = [statistics.median(col) for col in zip(*rows, strict=True)]
            print(f"{api:5} median: {medians[1]:,.0f} rec/s (write phase), "
                  f"{medians[2]:,.0f} us CPU/record, {medians[3]:,.0f} rec/s per task, "
                  f"plan {medians[4]:.1f} s, write {medians[5]:.1f} s, whole job "
                  f"{medians[6]:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
