"""`make bench`: the write path measured end to end, one table from one run (numbers only).

Seeds an offline-only source of N records × 22 features into the local emulator, then for each
way of writing them into a fresh online-only target measures records/s, the writer's CPU per
record (the job's report), the whole job process tree's CPU per record (spark-submit's JVM,
the Python driver and the Python workers, read from /proc; the emulator is not in it), plan
and write phase seconds and the peak Python worker RSS; medians of `--runs` runs. Two more
tables split the tree's CPU by part (the JVM's threads by what they do: tasks, JIT, GC ...; the
Python workers; the Python driver), for the whole run and after the plan. Rows:

* naive: 4 threads of boto3 ``put_record`` in one Python process (the baseline; a subset);
* job put: ``--write-api put`` (a subset: ids below ``--put-records``);
* job batch (boto3): BatchWriteRecord through boto3 (``aws.sender: boto3``; a subset with
  ``--boto3-records``);
* job batch (fast): entries built by Spark (fsmigrate.encode), sent by fsmigrate.fast_http
  (the default); once more with 10x larger partitions, to show the worker RSS stays flat;
* floor (count, python): the least any PySpark job over this source does, whatever it does
  next: Spark's start-up, the Parquet scan and the latest row per record, then a count, or
  each record's JSON handed to a Python worker that drops it (nothing is sent);
* AWS connector: ``sagemaker-feature-store-pyspark`` ``ingest_data`` (batch write) of the same
  latest records, installed into .bench/aws-connector on demand (``--connector``).

The emulator runs with ``--sink`` (every write validated as usual, none stored: its CPU per
record stays small and its memory flat, so the endpoint is not what is measured; the job's
verification is off, there is nothing to read back); ``--store-writes`` keeps the writes. The
emulator's own CPU per record is shown for each row, so the endpoint's cost is visible.

    .venv/bin/python scripts/bench.py            # 1,000,000 records
    .venv/bin/python scripts/bench.py --quick    # 200,000 records
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import emulator_process  # noqa: E402
from bench_plan import jvm_threads  # noqa: E402
from seed_data import (  # noqa: E402
    SeedSpec,
    feature_definitions,
    feature_types,
    local_path,
    seed,
)

BENCH = ROOT / ".bench"
DATA = BENCH / "s3"
BUCKET = "local-feature-store"
SOURCE = "bench-source"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECTOR_VENV = BENCH / "aws-connector"
CONNECTOR_PACKAGE = "sagemaker-feature-store-pyspark==2.2.2"
PARTITION_RECORDS = 5000  # the job's default


# ---- CPU and memory of a process tree, from /proc ------------------------------------------

def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds of this process, start time) or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[19])


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _is_python_worker(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd


def _kind(pid: int) -> str:
    """jvm (Spark's driver: local mode runs the tasks in it), workers (Python) or python."""
    if _is_python_worker(pid):
        return "workers"
    try:
        return "jvm" if b"java" in Path(f"/proc/{pid}/cmdline").read_bytes() else "python"
    except OSError:
        return "python"


def cpu_seconds(pid: int) -> float:
    stat = _stat(pid)
    return stat[1] if stat else 0.0


class TreeSampler:
    """CPU of every process under `root` (each process's own CPU, last seen value) and the peak
    RSS of its Python workers, sampled every `interval` s. A process's last < interval of CPU
    before it exits is missed: the job's processes live for the whole run, so that is small."""

    def __init__(self, root: int, interval: float = 0.25, marker: Path | None = None) -> None:
        self.root = root
        self.interval = interval
        self.marker = marker  # a file whose appearance ends the first phase (the job's plan)
        self.at_marker: float | None = None
        self.kinds_at_marker: dict[str, float] = {}
        self.cpu: dict[tuple[int, int], float] = {}
        self.kind: dict[tuple[int, int], str] = {}  # jvm, workers (Python) or python
        self.jvm_threads: dict[int, tuple[str, float]] = {}  # the JVM's, last seen
        self.worker_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> float:
        parents: dict[int, int] = {}
        stats: dict[int, tuple[int, float, int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _stat(int(entry))
                if stat:
                    parents[int(entry)], stats[int(entry)] = stat[0], stat
        tree = {self.root}
        grew = True
        while grew:  # descendants of root
            grew = False
            for pid, parent in parents.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        for pid in tree:
            if pid in stats:
                _, cpu, started = stats[pid]
                self.cpu[(pid, started)] = cpu
                if self.kind.get((pid, started), "python") == "python":
                    # again until it is known: spark-submit's script becomes the JVM (exec)
                    self.kind[(pid, started)] = _kind(pid)
                if self.kind[(pid, started)] == "workers":
                    self.worker_rss_mb = max(self.worker_rss_mb, _rss_mb(pid))
                elif self.kind[(pid, started)] == "jvm":
                    self.jvm_threads.update(jvm_threads(pid))
        return self.total

    @property
    def total(self) -> float:
        return sum(self.cpu.values())

    def by_kind(self) -> dict[str, float]:
        """CPU seconds by process kind; the JVM's by thread group (jvm tasks, jvm JIT ...)."""
        out = dict.fromkeys(("jvm", "workers", "python"), 0.0)
        for key, cpu in self.cpu.items():
            out[self.kind.get(key, "python")] += cpu
        threads: dict[str, float] = {}
        for group, cpu in self.jvm_threads.values():
            if group != "other":
                threads[f"jvm {group}"] = threads.get(f"jvm {group}", 0.0) + cpu
        # the rest of the JVM's CPU: short-lived threads too (a Python task's writer thread
        # ends with the task, and its last moments fall between samples; the process counts
        # them)
        threads["jvm other"] = out["jvm"] - sum(threads.values())
        return {**out, **threads}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            total = self.sample()
            if self.at_marker is None and self.marker is not None and self.marker.exists():
                self.at_marker, self.kinds_at_marker = total, self.by_kind()


# ---- one measured run ------------------------------------------------------------------------

@dataclass
class Run:
    records: int
    seconds: float  # the write phase (the job's), or the whole writing
    writer_cpu_us: float | None
    tree_cpu_us: float
    emulator_cpu_us: float
    plan_s: float | None = None
    write_s: float | None = None
    worker_rss_mb: float | None = None
    write_tree_cpu_us: float | None = None  # the tree's CPU after the plan, per record
    write_split_us: dict[str, float] = field(default_factory=dict)  # ... by process kind
    split_us: dict[str, float] = field(default_factory=dict)  # the whole run's, by kind

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@dataclass
class Row:
    name: str
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    def median(self, attr: str) -> float | None:
        values = [v for r in self.runs if (v := getattr(r, attr)) is not None]
        return statistics.median(values) if values else None


# ---- the rows --------------------------------------------------------------------------------

def runtime_client(url: str, pool: int = 10):
    from botocore.config import Config

    return boto3.session.Session().client(
        "sagemaker-featurestore-runtime", region_name="us-east-1", endpoint_url=url,
        config=Config(max_pool_connections=pool, retries={"total_max_attempts": 1}))


def create_target(url: str, spec: SeedSpec, name: str) -> None:
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=url)
    sm.create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName="record_id",
        EventTimeFeatureName="event_time", FeatureDefinitions=feature_definitions(spec),
        OnlineStoreConfig={"EnableOnlineStore": True},
        RoleArn="arn:aws:iam::123456789012:role/bench")
    for _ in range(200):
        if sm.describe_feature_group(FeatureGroupName=name)["FeatureGroupStatus"] == "Created":
            return
        time.sleep(0.05)
    raise RuntimeError(f"target {name} was not created")


def naive_records(spec: SeedSpec, n: int) -> list[list[dict]]:
    """n records with the source's 22 features (values like the seed's)."""
    out = []
    for i in range(n):
        record = []
        for name, ftype in feature_types(spec):
            if name == "record_id":
                value = f"n{i:07d}"
            elif name == "event_time":
                value = "2024-01-02T03:04:05.123Z"
            elif ftype == "Integral":
                value = str(i * 31 + len(name))
            elif ftype == "Fractional":
                value = repr(i / 7 + len(name))
            else:
                value = f"{name}-{i}-abcdefghijkl"
            record.append({"FeatureName": name, "ValueAsString": value})
        out.append(record)
    return out


def run_naive(emu, spec: SeedSpec, n: int, target: str) -> Run:
    """4 threads, one boto3 PutRecord per record: what a script without this job does."""
    records = naive_records(spec, n)
    client = runtime_client(emu.url)
    client.put_record(FeatureGroupName=target, Record=records[0])  # models loaded, pool warm

    def put(chunk: list[list[dict]]) -> None:
        for record in chunk:
            client.put_record(FeatureGroupName=target, Record=record)

    chunks = [records[k::4] for k in range(4)]
    emu0, cpu0, wall0 = cpu_seconds(emu.proc.pid), time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, chunks))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    emu_cpu = cpu_seconds(emu.proc.pid) - emu0
    return Run(n, wall, 1e6 * cpu / n, 1e6 * cpu / n, 1e6 * emu_cpu / n)


def write_conf(url: str, sender: str, partition_records: int, verify: str) -> Path:
    conf = BENCH / f"conf-{sender}-{partition_records}.yaml"
    conf.write_text(json.dumps({  # JSON is YAML
        "aws": {"region": "us-east-1", "endpoint_url": url, "sender": sender},
        "storage": {"local_root": str(DATA)},
        "output": {"uri": f"s3://{BUCKET}/migration-runs"},
        "migration": {"batch_size": 100, "max_workers": 4, "write_api": "auto",
                      "partition_records": partition_records, "progress_interval_seconds": 30,
                      "verify": verify},
    }))
    return conf


def spark_submit(java_options: str = "") -> list[str]:
    """spark-submit on local[2], quiet, no UI: the job's and the floor's."""
    return [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
            "--driver-java-options",
            f"-Dlog4j2.configurationFile={ROOT / 'conf' / 'log4j2-quiet.properties'} "
            + java_options, "--conf", "spark.ui.enabled=false"]


def source_parquet(url: str) -> Path:
    """The local folder of the source's offline store."""
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=url)
    uri = sm.describe_feature_group(FeatureGroupName=SOURCE)["OfflineStoreConfig"][
        "S3StorageConfig"]["ResolvedOutputS3Uri"]
    return local_path(DATA, uri)


def spark_env() -> dict[str, str]:
    return dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                SPARK_LOCAL_IP="127.0.0.1")


def run_job(emu, spec: SeedSpec, target: str, sender: str, api: str,
            put_records: int | None, partition_records: int = PARTITION_RECORDS,
            verify: str = "sample:1000", job_dir: Path = ROOT / "job") -> Run:
    run_id = target
    cmd = [*spark_submit(os.environ.get("BENCH_JAVA_OPTIONS", "")), str(job_dir / "migrate.py"),
           "--conf", str(write_conf(emu.url, sender, partition_records, verify)),
           "--source", SOURCE,
           "--target", target, "--run-id", run_id, "--write-api", api]
    if put_records is not None:
        cmd += ["--filter-query", f"record_id < 'r{put_records:07d}'"]
    emu0 = cpu_seconds(emu.proc.pid)
    log = BENCH / f"{run_id}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=spark_env(), stdout=out,
                                stderr=subprocess.STDOUT)
        plan_file = DATA / BUCKET / "migration-runs" / run_id / "plan.json"
        with TreeSampler(proc.pid, marker=plan_file) as sampler:
            code = proc.wait()
    emu_cpu = cpu_seconds(emu.proc.pid) - emu0
    report_path = DATA / BUCKET / "migration-runs" / run_id / "report.json"
    if code not in (0, 1) or not report_path.exists():
        raise RuntimeError(f"job exited {code}: see {log}")
    r = json.loads(report_path.read_text())
    written = r["written"] if "written" in r else r["selected"]
    phases = r["phases_seconds"]
    after_plan = None if sampler.at_marker is None else sampler.total - sampler.at_marker
    kinds = sampler.by_kind()
    split = {} if sampler.at_marker is None else {
        k: 1e6 * (v - sampler.kinds_at_marker.get(k, 0.0)) / written for k, v in kinds.items()}
    return Run(written, phases["write"], r.get("writer_cpu_us_per_record"),
               1e6 * sampler.total / written, 1e6 * emu_cpu / written,
               phases.get("plan"), phases["write"], sampler.worker_rss_mb,
               None if after_plan is None else 1e6 * after_plan / written, split,
               {k: 1e6 * v / written for k, v in kinds.items()})


# ---- the floor: the least any PySpark job over this source does -----------------------------

FLOOR_SCRIPT = r"""
import sys, time
started = time.monotonic()
from pyspark.sql import SparkSession, functions as F
source, to_python = sys.argv[1], sys.argv[2] == "python"
spark = SparkSession.builder.config("spark.sql.session.timeZone", "UTC").getOrCreate()
rows = spark.read.parquet(source)
order = ["event_time", "api_invocation_time", "write_time"]  # compared as they are: no parsing
rest = [c for c in rows.columns if c not in order and c != "record_id"]
latest = (rows.groupBy("record_id").agg(F.max(F.struct(*order, *rest)).alias("r"))
          .select("record_id", "r.*").where(~F.col("is_deleted"))
          .drop("is_deleted", "api_invocation_time", "write_time"))
if to_python:  # one JSON text per record, dropped by the Python worker
    n = (latest.select(F.to_json(F.struct(*latest.columns))).rdd
         .mapPartitions(lambda part: [sum(1 for _ in part)]).sum())
else:
    n = latest.count()
print("FLOOR", n, time.monotonic() - started, flush=True)
spark.stop()
"""
FLOORS = {"floor-count": "floor: read, latest row per record, count",
          "floor-python": "floor: read, latest row per record, its JSON to a Python worker"}


def run_floor(emu, key: str) -> Run:
    """What every PySpark job that migrates this source pays, whatever it does next: Spark's
    start-up, the Parquet scan and one aggregation to the latest row per record (a max over a
    struct, with no event time parsing: cheaper than the job's exact order), then either a
    count or each record's JSON handed to a Python worker. Tree CPU as for the job."""
    script = BENCH / "floor.py"
    script.write_text(FLOOR_SCRIPT)
    cmd = [*spark_submit(), str(script), str(source_parquet(emu.url)),
           "python" if key == "floor-python" else "count"]
    with (BENCH / f"{key}.log").open("w") as err:
        proc = subprocess.Popen(cmd, cwd=BENCH, env=spark_env(), stdout=subprocess.PIPE,
                                stderr=err, text=True)
        with TreeSampler(proc.pid) as sampler:
            out, _ = proc.communicate()
    line = next((line for line in out.splitlines() if line.startswith("FLOOR")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"floor script exited {proc.returncode}: see {BENCH / key}.log")
    _, count, seconds = line.split()
    n = int(count)
    split = {k: 1e6 * v / n for k, v in sampler.by_kind().items()}
    return Run(n, float(seconds), None, 1e6 * sampler.total / n, 0.0, float(seconds), None,
               sampler.worker_rss_mb or None, None, {}, split)


# ---- AWS's connector, in its own venv ------------------------------------------------------

CONNECTOR_SCRIPT = r'''
import os, sys, time
from pyspark.sql import SparkSession, functions as F, Window
from feature_store_pyspark.FeatureStoreManager import FeatureStoreManager
import feature_store_pyspark
source, arn, n, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
jars = ",".join(feature_store_pyspark.classpath_jars())
spark = (SparkSession.builder.master("local[2]").config("spark.jars", jars)
         .config("spark.ui.enabled", "false").getOrCreate())
df = spark.read.parquet(source)
latest = Window.partitionBy("record_id").orderBy(F.col("event_time").desc())
df = (df.where(~F.col("is_deleted")).withColumn("_n", F.row_number().over(latest))
      .where("_n = 1").select(*names).limit(n).cache())
count = df.count()
print("READY", count, flush=True)
sys.stdin.readline()
t = time.perf_counter()
FeatureStoreManager().ingest_data(input_data_frame=df, feature_group_arn=arn,
                                  target_stores=["OnlineStore"], use_batch_write_record=True)
print("DONE", count, time.perf_counter() - t, flush=True)
sys.stdin.readline()
spark.stop()
'''


def connector_python() -> tuple[Path | None, str]:
    """The connector venv's python, installing it on first use; (None, why) if it can't be.

    The package bundles its Scala SDK jars (no Maven); it needs pyspark, which this venv's
    copy provides through a .pth file (the same Spark 3.5 the job runs on)."""
    python = CONNECTOR_VENV / "bin" / "python"
    stamp = CONNECTOR_VENV / ".installed"
    if stamp.exists():
        return python, ""
    print(f"installing {CONNECTOR_PACKAGE} into {CONNECTOR_VENV} ...", flush=True)
    shutil.rmtree(CONNECTOR_VENV, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(CONNECTOR_VENV)],
             [str(python), "-m", "pip", "install", "--quiet", CONNECTOR_PACKAGE, "setuptools",
              "numpy"]]  # numpy: pyspark.ml, which the connector imports
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            return None, f"install failed: {last[0][:150]}"
    import pyspark

    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(python), "-c", where], capture_output=True, text=True,
                          check=True).stdout.strip()
    Path(site, "fsmigrate-pyspark.pth").write_text(str(Path(pyspark.__file__).parents[1]) + "\n")
    stamp.touch()
    return python, ""


def run_connector(emu, spec: SeedSpec, target: str, n: int) -> Run:
    python, why = connector_python()
    if python is None:
        raise RuntimeError(why)
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=emu.url)
    arn = sm.describe_feature_group(FeatureGroupName=target)["FeatureGroupArn"]
    source = source_parquet(emu.url)
    names = ",".join(name for name, _ in feature_types(spec))
    env = dict(spark_env(), PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python),
               AWS_ENDPOINT_URL=emu.url, AWS_REGION="us-east-1")
    log = BENCH / f"{target}.log"
    with log.open("w") as err:
        command = [str(python), "-c", CONNECTOR_SCRIPT, str(source), arn, str(n), names]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True, env=env, cwd=BENCH)
        try:
            with TreeSampler(proc.pid) as sampler:
                line = proc.stdout.readline()
                if not line.startswith("READY"):
                    raise RuntimeError(f"connector did not start: see {log}")
                cpu0, emu0 = sampler.sample(), cpu_seconds(emu.proc.pid)
                kinds0 = sampler.by_kind()
                proc.stdin.write("go\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                cpu, emu_cpu = sampler.sample() - cpu0, cpu_seconds(emu.proc.pid) - emu0
                kinds = {k: v - kinds0.get(k, 0.0) for k, v in sampler.by_kind().items()}
                if not line.startswith("DONE"):
                    raise RuntimeError(f"connector failed: see {log}")
                _, count, seconds = line.split()
                proc.stdin.write("stop\n")
                proc.stdin.flush()
                proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    count = int(count)
    split = {k: 1e6 * v / count for k, v in kinds.items()}
    return Run(count, float(seconds), None, 1e6 * cpu / count, 1e6 * emu_cpu / count,
               None, float(seconds), sampler.worker_rss_mb or None,  # no Python workers
               1e6 * cpu / count, split, split)


# ---- the table -------------------------------------------------------------------------------

def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row]) -> str:
    base = next((r.median("rate") for r in rows if r.name.startswith("naive") and r.runs), None)
    head = ("| row | records | records/s | writer CPU µs/rec | tree CPU µs/rec | "
            "tree CPU after plan µs/rec | plan s | "
            "write s | peak worker RSS MB | rate × naive | naive tree CPU ÷ this | "
            "emulator CPU µs/rec | note |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base_cpu = next((r.median("tree_cpu_us") for r in rows
                     if r.name.startswith("naive") and r.runs), None)
    for r in rows:
        rate = r.median("rate")
        tree = r.median("tree_cpu_us")
        lines.append(" ".join([
            f"| {r.name} |", f"{fmt(r.median('records'), ',.0f')} |", f"{fmt(rate, ',.0f')} |",
            f"{fmt(r.median('writer_cpu_us'), '.1f')} |", f"{fmt(tree, '.1f')} |",
            f"{fmt(r.median('write_tree_cpu_us'), '.1f')} |",
            f"{fmt(r.median('plan_s'), '.1f')} |", f"{fmt(r.median('write_s'), '.1f')} |",
            f"{fmt(r.median('worker_rss_mb'), '.0f')} |",
            f"{fmt(rate / base if rate and base else None, '.1f')} |",
            f"{fmt(base_cpu / tree if tree and base_cpu else None, '.1f')} |",
            f"{fmt(r.median('emulator_cpu_us'), '.1f')} |", f"{r.note} |"]))
    return "\n".join(lines)


SPLIT = (("jvm tasks", "JVM: Spark's tasks"), ("jvm JIT", "JVM: JIT compilers"),
         ("jvm GC", "JVM: GC"), ("jvm driver", "JVM: py4j (planning, codegen)"),
         ("jvm other", "JVM: other threads (shuffle, Python I/O ...)"),
         ("workers", "Python workers"), ("python", "Python driver"))


def split_table(rows: list[Row], attr: str) -> str:
    """Medians, per record, of the tree's CPU by part (`attr`: split_us or write_split_us)."""
    head = "| row | " + " | ".join(name for _, name in SPLIT) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        runs = [getattr(run, attr) for run in r.runs if getattr(run, attr)]
        if not runs:
            continue
        cells = [fmt(statistics.median(run.get(key, 0.0) for run in runs), ".1f")
                 for key, _ in SPLIT]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(row: Row, runs: int, once: Callable[[int], Run]) -> None:
    for n in range(runs):
        if not measure_once(row, n, once):
            return


def measure_once(row: Row, n: int, once: Callable[[int], Run]) -> bool:
    """Run ``once(n)`` into ``row``; False (and a note on the row) when it failed."""
    if row.note.startswith("failed"):
        return False
    try:
        run = once(n)
    except Exception as exc:  # one failed row must not lose the others' numbers
        row.note = f"failed: {str(exc)[:160]}"
        return False
    row.runs.append(run)
    print(f"  {row.name} run {n + 1}: {run.records:,} records, {run.rate:,.0f}/s, writer "
          f"{fmt(run.writer_cpu_us, '.1f')} µs, tree {run.tree_cpu_us:.1f} µs (after the plan "
          f"{fmt(run.write_tree_cpu_us, '.1f')} µs"
          + "".join(f", {k} {run.write_split_us[k]:.1f}" for k, _ in SPLIT
                    if k in run.write_split_us)  # none for the naive row
          + "), emulator "
          f"{run.emulator_cpu_us:.1f} µs, worker RSS {fmt(run.worker_rss_mb, '.0f')} MB",
          flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200,000 records instead of 1,000,000")
    p.add_argument("--records", type=int, help="source records (overrides --quick)")
    p.add_argument("--versions", type=int, default=2, help="versions per record (history)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--naive-records", type=int, default=10_000)
    p.add_argument("--put-records", type=int, default=20_000)
    p.add_argument("--boto3-records", type=int,
                   help="the batch-through-boto3 row writes only this many (default: all)")
    p.add_argument("--store-writes", action="store_true",
                   help="the emulator stores the writes (default: --sink, validate and drop)")
    p.add_argument("--baseline", type=Path,
                   help="also run the batch-fast row with this job/ directory of another "
                        "checkout (e.g. `git archive <commit> job | tar -x -C DIR`, then "
                        "DIR/job), alternating run by run with this checkout's")
    p.add_argument("--java-options", default="",
                   help="more JVM options for the job's driver, as --java-options=\"-XX:...\"")
    p.add_argument("--rows", default="naive,put,batch-boto3,batch-fast,batch-fast-big,"
                                     "floor-count,floor-python,connector",
                   help="which rows, comma-separated")
    args = p.parse_args(argv)
    records = args.records or (200_000 if args.quick else 1_000_000)
    os.environ["BENCH_JAVA_OPTIONS"] = args.java_options
    wanted = args.rows.split(",")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    spec = SeedSpec(group=SOURCE, records=records, versions=args.versions, stores="offline")
    rows: list[Row] = []
    sink = not args.store_writes
    verify = "none" if sink else "sample:1000"
    with emulator_process.start(DATA, extra_args=["--sink"] if sink else []) as emu:
        started = time.monotonic()
        summary = seed(spec, endpoint_url=emu.url, local_root=DATA)
        print(f"seeded {summary.records:,} records / {summary.rows_offline:,} rows × "
              f"{len(feature_types(spec))} features in {time.monotonic() - started:.0f} s; "
              f"{args.runs} runs per row", flush=True)

        def fresh(name: str) -> str:
            create_target(emu.url, spec, name)
            return name

        if "naive" in wanted:
            rows.append(Row(f"naive: 4 threads × boto3 put_record ({args.naive_records:,})"))
            measure(rows[-1], args.runs,
                    lambda n: run_naive(emu, spec, args.naive_records, fresh(f"naive-{n}")))
        big = 10 * PARTITION_RECORDS
        jobs = [("put", "job write_api put", "boto3", "put", args.put_records, PARTITION_RECORDS),
                ("batch-boto3", "job write_api batch, boto3", "boto3", "batch",
                 args.boto3_records, PARTITION_RECORDS),
                ("batch-fast", "job write_api batch, fast (JVM-encoded entries)", "fast",
                 "batch", None, PARTITION_RECORDS),
                # the worker's memory must not grow with the partition: 10x larger partitions
                ("batch-fast-big", f"same, partitions of {big:,} records", "fast", "batch",
                 None, big)]
        for key, name, sender, api, subset, size in jobs:
            if key not in wanted:
                continue
            row = Row(name + (f" ({subset:,})" if subset else ""))
            rows.append(row)
            if not (key == "batch-fast" and args.baseline):
                measure(row, args.runs, lambda n, k=key, s=sender, a=api, sub=subset,
                        size=size: run_job(emu, spec, fresh(f"{k}-{n}"), s, a, sub, size,
                                           verify))
                continue
            # the same row from another checkout, run by run in turn: both see the same load
            base = Row(f"{name}, baseline {args.baseline}")
            rows.insert(-1, base)
            for n in range(args.runs):
                measure_once(base, n, lambda n, size=size: run_job(
                    emu, spec, fresh(f"base-{n}"), "fast", "batch", None, size, verify,
                    args.baseline))
                measure_once(row, n, lambda n, size=size: run_job(
                    emu, spec, fresh(f"batch-fast-{n}"), "fast", "batch", None, size, verify))
        for key, name in FLOORS.items():
            if key in wanted:
                rows.append(Row(name, note="sends nothing: records/s and plan s are to the "
                                           "end of its action, from the driver's start"))
                measure(rows[-1], args.runs, lambda n, k=key: run_floor(emu, k))
        if "connector" in wanted:
            rows.append(Row("AWS connector ingest_data (batch), write only"))
            measure(rows[-1], args.runs,
                    lambda n: run_connector(emu, spec, fresh(f"connector-{n}"), records))
    print()
    print(f"{records:,} records × {len(feature_types(spec))} features, {args.versions} versions "
          f"max, local[2], medians of {args.runs}; records/s over the write phase; tree = the "
          "job's processes (JVM, Python driver and workers), not the emulator"
          + ("; emulator in sink mode (writes validated, not stored)" if sink else ""))
    print(table(rows))
    print("\nThe tree's CPU by part, µs per record (medians): the whole run")
    print(split_table(rows, "split_us"))
    print("\n... after the plan (the AWS connector: its write)")
    print(split_table(rows, "write_split_us"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
