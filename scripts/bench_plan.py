"""Benchmark the plan phase of an offline-only source: seed N records (with history) once, then
plan a dry run in a fresh local[2] Spark process several times. Prints per-run and median
numbers; no assertions.

    .venv/bin/python scripts/bench_plan.py [--records 200000] [--versions 3] [--runs 3]

The plan phase here is what run.migrate spends between starting Spark and having the plan:
read + latest state + counts (select_offline) and the plan with its sample records
(make_plan). Spark's start-up is reported apart; the plan's CPU (the driver JVM, which runs
local[2]'s tasks, plus the Python driver) per row beside its wall-clock time, and the JVM's
CPU by thread: Spark's tasks, the JIT compilers, GC, the driver's py4j threads (which plan
the queries and compile their generated code). Each run is a new process (a cold JVM, as with
spark-submit); its Spark log is scanned for codegen failures. `--baseline DIR` also times
another checkout's `job/` directory (e.g. `git archive <commit> job | tar -x -C DIR`),
alternating run by run so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

SOURCE, TARGET = "bench-plan-source", "bench-plan-target"
CODEGEN_TROUBLE = ("failed to compile", "falling back", "grows beyond")


def child(args: argparse.Namespace) -> int:
    """One timed plan in this process; prints one JSON line."""
    import logging

    from bench_emulator import proc_cpu_s
    from fsmigrate.groups import check_groups, describe
    from fsmigrate.plan import make_plan
    from fsmigrate.read import sample_records, select_offline
    from fsmigrate.select import normalize_filter
    from fsmigrate.settings import load_settings
    from fsmigrate.storage import Store
    from pyspark.sql import SparkSession

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(["--conf", args.conf, "--source", SOURCE, "--target", TARGET,
                              "--dry-run"])
    m = settings.migration
    source = describe(settings.source_aws, SOURCE, "source")
    target = describe(settings.target_aws, TARGET, "target")
    compat = check_groups(source, target, m.missing_features, m.ttl)
    started = time.perf_counter()
    spark = (SparkSession.builder.master("local[2]").appName("bench-plan")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.driver.extraJavaOptions", args.java_options or "").getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    spark_start = time.perf_counter() - started
    store = Store(settings.aws, settings.local_root)
    jvm = spark.sparkContext._gateway.proc.pid  # the driver JVM: local[2] runs the tasks in it

    def cpu() -> float:  # on a shared machine CPU seconds say more than the wall clock
        return proc_cpu_s(jvm) + time.process_time()

    cpu0, threads0 = cpu(), jvm_thread_cpu(jvm)
    started = time.perf_counter()
    filter_query = normalize_filter(m.filter_query)
    selection = select_offline(spark, settings, source, target, compat, store, filter_query,
                               m.resume_from)
    selected = time.perf_counter() - started
    plan = make_plan(settings, spark.sparkContext.defaultParallelism, source, target, compat,
                     selection, "batch", filter_query, sample_records(selection.encoded))
    planned = time.perf_counter() - started
    cached = spark.sparkContext._jsc.sc().getRDDStorageInfo()  # the latest state's cache
    cache_mb = {"memory": sum(i.memSize() for i in cached) / 2**20,
                "disk": sum(i.diskSize() for i in cached) / 2**20}
    print(json.dumps({"spark_start": spark_start, "select": selected, "plan": planned,
                      "cpu": cpu() - cpu0,
                      "jvm_threads": {k: round(v - threads0[k], 1)
                                      for k, v in jvm_thread_cpu(jvm).items()},
                      "counts": plan.counts.__dict__,
                      "cache_mb": {k: round(v) for k, v in cache_mb.items()}}), flush=True)
    spark.stop()
    return 0


# JVM threads by what they do (names as /proc shows them, cut to 15 characters)
THREAD_GROUPS = (("tasks", ("Executor task",)), ("JIT", ("C1 Compiler", "C2 Compiler")),
                 ("GC", ("GC Thread", "G1 ")), ("driver", ("Thread-",)))


def jvm_thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a JVM's threads by THREAD_GROUPS ("driver": py4j's threads, which plan
    the queries and compile their generated code); the rest as "other"."""
    groups: dict[str, float] = dict.fromkeys([g for g, _ in THREAD_GROUPS] + ["other"], 0.0)
    for group, cpu in jvm_threads(pid).values():
        groups[group] += cpu
    return groups


def jvm_threads(pid: int) -> dict[int, tuple[str, float]]:
    """{thread id: (its THREAD_GROUPS group or "other", CPU seconds)} of a JVM's live threads."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:  # the JVM ended
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                stat = fh.read()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        group = next((g for g, prefixes in THREAD_GROUPS if name.startswith(prefixes)), "other")
        out[int(tid)] = group, (int(fields[11]) + int(fields[12])) / tick
    return out


def timed_plan(conf: Path, env: dict[str, str], java_options: str) -> dict | None:
    command = [sys.executable, __file__, "--child", "--conf", str(conf),
               f"--java-options={java_options}"]
    proc = subprocess.run(command, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        print(proc.stdout, proc.stderr[-5000:], file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["trouble"] = sum(any(t in line for t in CODEGEN_TROUBLE)
                            for line in proc.stderr.splitlines())
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--versions", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--baseline", help="a job/ directory of another checkout to compare with")
    p.add_argument("--java-options", default="",
                   help="JVM options for the plan's Spark driver, as --java-options=\"-XX:...\"")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--conf", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    import boto3
    import emulator_process
    from seed_data import SeedSpec, feature_definitions, seed

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        data = Path(tmp) / "s3"
        with emulator_process.start(data) as emu:
            started = time.monotonic()
            spec = SeedSpec(group=SOURCE, records=args.records, versions=args.versions,
                            stores="offline")
            summary = seed(spec, endpoint_url=emu.url, local_root=data)
            boto3.client("sagemaker", region_name="us-east-1",
                         endpoint_url=emu.url).create_feature_group(
                FeatureGroupName=TARGET, RecordIdentifierFeatureName="record_id",
                EventTimeFeatureName="event_time", FeatureDefinitions=feature_definitions(spec),
                OnlineStoreConfig={"EnableOnlineStore": True},
                RoleArn="arn:aws:iam::123456789012:role/bench")
            print(f"seeded {summary.records:,} records / {summary.rows_offline:,} rows in "
                  f"{summary.files} files, {time.monotonic() - started:.1f} s", flush=True)
            conf = Path(tmp) / "bench.yaml"
            conf.write_text(f"aws:\n  region: us-east-1\n  endpoint_url: {emu.url}\n"
                            f"storage:\n  local_root: {data}\n"
                            f"output:\n  uri: s3://local-feature-store/runs\n")
            env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
            jobs = {"this checkout": None}
            if args.baseline:
                jobs = {"baseline": str(Path(args.baseline).resolve()), **jobs}
            rows: dict[str, list] = {name: [] for name in jobs}
            for n in range(args.runs):
                for name, path in jobs.items():
                    run_env = dict(env, PYTHONPATH=path) if path else env
                    result = timed_plan(conf, run_env, args.java_options)
                    if result is None:
                        return 1
                    us_per_row = result["plan"] / summary.rows_offline * 1e6
                    cpu_us = result["cpu"] / summary.rows_offline * 1e6
                    rows[name].append((result["spark_start"], result["select"], result["plan"],
                                       us_per_row, cpu_us))
                    print(f"{name} run {n + 1}: spark start {result['spark_start']:.1f} s, "
                          f"select {result['select']:.1f} s, plan {result['plan']:.1f} s "
                          f"({us_per_row:.1f} us/row; CPU {cpu_us:.1f} us/row), "
                          "codegen warnings/errors "
                          f"{result['trouble']}, cache MB {result['cache_mb']}, "
                          f"counts {result['counts']}; JVM CPU s by "
                          f"thread {result['jvm_threads']}", flush=True)
            for name, runs in rows.items():
                medians = [statistics.median(col) for col in zip(*runs, strict=True)]
                print(f"{name} median of {args.runs}: spark start {medians[0]:.1f} s, select "
                      f"{medians[1]:.1f} s, plan {medians[2]:.1f} s ({medians[3]:.1f} us/row, "
                      f"CPU {medians[4]:.1f} us/row, over {summary.rows_offline:,} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
