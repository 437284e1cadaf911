"""The run folder over Store: a local folder, s3:// mapped onto a local root, and real S3 (moto)."""

from __future__ import annotations

import json
import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from fsmigrate.aws import AwsSettings
from fsmigrate.runstate import RunFolder
from fsmigrate.storage import Store

RUN_ID = "20240101T000000Z-abc123"


@dataclass
class Setup:
    kind: str
    store: Store
    output_uri: str
    local_run_dir: Path | None  # where the run folder's files must land; None on real S3
    s3: object | None = None  # boto3 client for checking real S3
    bucket: str | None = None

    def folder(self, run_id: str = RUN_ID) -> RunFolder:
        return RunFolder.at(self.store, self.output_uri, run_id)

    def raw_names(self, run_id: str = RUN_ID) -> set[str]:
        """Paths of the stored files relative to the run folder, read behind Store's back."""
        if self.local_run_dir is not None:
            base = self.local_run_dir.parent / run_id
            return {str(p.relative_to(base)).replace(os.sep, "/")
                    for p in base.rglob("*") if p.is_file()}
        prefix = f"runs/{run_id}/"
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return {obj["Key"][len(prefix):] for obj in listed.get("Contents", [])}


@pytest.fixture(params=["local-folder", "s3-local-root", "s3-moto"])
def setup(request, tmp_path):
    if request.param == "local-folder":
        out = tmp_path / "runs"
        return Setup("local-folder", Store(), str(out), out / RUN_ID)
    if request.param == "s3-local-root":
        root = tmp_path / "root"
        return Setup("s3-local-root", Store(local_root=str(root)), "s3://bucket/runs",
                     root / "bucket" / "runs" / RUN_ID)
    s3, store = request.getfixturevalue("moto_clients")
    bucket = f"runs-{uuid.uuid4().hex[:12]}"  # a fresh bucket per test
    s3.create_bucket(Bucket=bucket)
    return Setup("s3-moto", store, f"s3://{bucket}/runs", None, s3=s3, bucket=bucket)


@pytest.fixture(scope="module")
def moto_clients(moto_s3):
    """A boto3 client for checking, and one Store, shared by the module: a new boto3 client
    costs ~0.3 s, and the Store keeps the one it made."""
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_s3)
    return s3, Store(aws=AwsSettings(region="us-east-1", s3_endpoint_url=moto_s3))


def failure(record_id: str, code: str = "ValidationError") -> dict:
    return {"record": {"id": record_id, "value": 1.5}, "error_code": code,
            "message": f"bad {record_id}", "attempts": 1}


def test_plan_and_report_round_trip(setup):
    run = setup.folder()
    assert not run.has_plan()
    plan = {"source": "a", "target": "b", "partitions": 3, "nested": {"ids": ["x", "y"]}}
    run.write_plan(plan)
    assert run.has_plan()
    assert run.read_plan() == plan
    run.write_report({"written": 10, "failed": 0})
    assert run.read_json(run.report_uri) == {"written": 10, "failed": 0}
    # a rewrite replaces, it does not append
    run.write_plan({**plan, "partitions": 4})
    assert run.read_plan()["partitions"] == 4
    assert {"plan.json", "report.json"} <= setup.raw_names()


def test_files_land_where_the_contract_says(setup):
    run = setup.folder()
    run.write_plan({"p": 1})
    run.write_report({"r": 1})
    run.write_checkpoint(3, {"written": 5})
    run.write_failures(3, [failure("x")])
    assert setup.raw_names() == {
        "plan.json", "report.json", "checkpoints/part-00003.json", "failures/part-00003.jsonl",
    }
    if setup.local_run_dir is not None:
        # s3://bucket/runs/<run_id>/... -> <local_root>/bucket/runs/<run_id>/...
        assert json.loads((setup.local_run_dir / "plan.json").read_text()) == {"p": 1}


def test_checkpoints_are_listed_by_partition(setup):
    run = setup.folder()
    assert run.checkpoints() == {}
    stats = {p: {"written": p * 10, "failed": p % 2, "last_id": f"r{p}"} for p in (0, 1, 7, 12)}
    for partition, s in stats.items():
        run.write_checkpoint(partition, s)
    assert run.checkpoints() == stats
    run.write_checkpoint(7, {"written": 999})  # a retried task replaces its checkpoint
    assert run.checkpoints()[7] == {"written": 999}
    assert len(run.checkpoints()) == 4


def test_failures_are_replaced_per_partition(setup):
    run = setup.folder()
    run.write_failures(0, [failure("a"), failure("b"), failure("c")])
    run.write_failures(1, [failure("d")])
    # the task for partition 0 is retried by Spark and fails fewer records this time
    run.write_failures(0, [failure("b", "ThrottlingException")])
    got = list(run.failures())
    assert sorted(f["record"]["id"] for f in got) == ["b", "d"]
    assert next(f for f in got if f["record"]["id"] == "b")["error_code"] == "ThrottlingException"
    assert len(run.failure_files()) == 2


def test_empty_failure_list_removes_an_earlier_file(setup):
    run = setup.folder()
    run.write_failures(2, [failure("a")])
    run.write_failures(5, [failure("z")])
    run.write_failures(2, [])
    assert [f["record"]["id"] for f in run.failures()] == ["z"]
    assert setup.raw_names() == {"failures/part-00005.jsonl"}
    run.write_failures(9, [])  # nothing to remove: still fine
    assert len(run.failure_files()) == 1


def test_failures_yield_every_record_across_files(setup):
    run = setup.folder()
    expected = []
    for partition in range(4):
        batch = [failure(f"p{partition}-r{i}") for i in range(partition + 1)]
        run.write_failures(partition, batch)
        expected += batch
    got = list(run.failures())
    assert len(got) == 10
    assert sorted(got, key=lambda f: f["record"]["id"]) == sorted(
        expected, key=lambda f: f["record"]["id"])
    assert all(f["attempts"] == 1 and f["message"].startswith("bad ") for f in got)


def test_run_folders_do_not_see_each_other(setup):
    # "run1" is a string prefix of "run10": listing must stop at the folder boundary
    one, ten = setup.folder("run1"), setup.folder("run10")
    one.write_checkpoint(0, {"run": 1})
    ten.write_checkpoint(0, {"run": 10})
    ten.write_failures(0, [failure("t")])
    ten.write_plan({"run": 10})
    assert one.checkpoints() == {0: {"run": 1}}
    assert ten.checkpoints() == {0: {"run": 10}}
    assert list(one.failures()) == []
    assert not one.has_plan() and ten.has_plan()


def test_store_list_is_sorted_and_complete(setup):
    run = setup.folder()
    for partition in (10, 2, 0):
        run.write_checkpoint(partition, {"p": partition})
    listed = setup.store.list(run.uri)
    assert listed == sorted(listed)
    assert listed == [
        f"{run.uri}/checkpoints/part-00000.json",
        f"{run.uri}/checkpoints/part-00002.json",
        f"{run.uri}/checkpoints/part-00010.json",
    ]
    assert setup.store.list(run.uri + "/nothing-here") == []


def test_store_read_missing_raises_file_not_found(setup):
    run = setup.folder()
    with pytest.raises(FileNotFoundError):
        setup.store.read_text(run.plan_uri)
    assert not setup.store.exists(run.plan_uri)
    setup.store.delete(run.plan_uri)  # deleting what is not there is fine


def test_store_is_picklable_after_use(setup):
    run = setup.folder()
    run.write_plan({"before": True})  # the S3 setup now holds a boto3 client
    assert run.read_plan() == {"before": True}
    data = pickle.dumps(run.store)
    store = pickle.loads(data)
    assert store == setup.store
    again = RunFolder(store, run.uri)
    assert again.read_plan() == {"before": True}
    again.write_checkpoint(4, {"from": "executor"})
    assert run.checkpoints() == {4: {"from": "executor"}}
    # the whole RunFolder ships to executors too
    shipped = pickle.loads(pickle.dumps(run))
    assert shipped.checkpoints() == {4: {"from": "executor"}}


@pytest.mark.parametrize("layout", ["local-folder", "s3-local-root"])
def test_store_list_skips_temp_files(tmp_path, layout):
    if layout == "local-folder":
        store, folder_uri = Store(), str(tmp_path / "runs" / "r")
        folder = tmp_path / "runs" / "r"
    else:
        store, folder_uri = Store(local_root=str(tmp_path)), "s3://bucket/runs/r"
        folder = tmp_path / "bucket" / "runs" / "r"
    run = RunFolder(store, folder_uri)
    run.write_checkpoint(1, {"ok": True})
    # a writer that died between mkstemp and os.replace leaves a temp file behind
    (folder / "checkpoints" / ".tmp-abandoned").write_text("{half")
    (folder / "failures").mkdir()
    (folder / "failures" / ".tmp-xyz").write_text("{half")
    assert store.list(folder_uri) == [f"{folder_uri}/checkpoints/part-00001.json"]
    assert run.checkpoints() == {1: {"ok": True}}
    assert run.failure_files() == []
    # and a successful write leaves no temp file of its own
    assert [p.name for p in (folder / "checkpoints").iterdir()
            if p.name.startswith(".tmp-") and p.name != ".tmp-abandoned"] == []


def test_local_root_maps_s3_uris(tmp_path):
    store = Store(local_root=str(tmp_path / "root"))
    assert store.local_path("s3://bkt/a/b.json") == str(tmp_path / "root" / "bkt" / "a" / "b.json")
    assert store.spark_path("s3://bkt/a") == str(tmp_path / "root" / "bkt" / "a")
    assert Store().local_path("s3://bkt/a") is None
    assert Store().spark_path("s3://bkt/a") == "s3://bkt/a"
    assert Store().local_path("file:///x/y") == "/x/y"
