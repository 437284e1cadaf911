"""--verify: reading back through the emulator (driver loop), and
end to end: a run that verifies, a target that kept newer records, a re-verification."""

from __future__ import annotations

import json

import pytest
from fsmigrate.aws import AwsSettings
from fsmigrate.verify_records import (
    DIFFERENT,
    MATCHED,
    MISSING,
    verify_rows,
)
from jobtools import (
    create_group,
    fv,
    output,
    plan_of,
    put_records,
    report_of,
    run_dir,
    spark_submit,
    unique,
    write_conf,
)
from test_verify_records import COLUMNS, T0, T1, TYPES, job


@pytest.fixture(scope="module")
def fsr(emulator, boto_session):
    return boto_session.client("sagemaker-featurestore-runtime", endpoint_url=emulator.url)


@pytest.fixture(scope="module")
def sm(emulator, boto_session):
    return boto_session.client("sagemaker", endpoint_url=emulator.url)


def test_verify_rows_reads_back_through_the_emulator(emulator, sm, fsr):
    name = unique("verify-rows")
    create_group(sm, name, [("id", "String"), ("t", "String"), ("n", "Integral"),
                            ("x", "Fractional"), ("tags", "String")], offline=False,
                 record_id="id", event_time="t")
    types = tuple((n, k, False) for n, k, _ in TYPES)
    rows = [(f"r{i:03d}", T0, str(i), "0.5", "a") for i in range(250)]
    put_records(fsr, name, [fv(**dict(zip(COLUMNS, r, strict=True))) for r in rows[:248]])
    fsr.put_record(FeatureGroupName=name, Record=fv(id="r248", t=T0, n="-1", x="0.5", tags="a"))
    aws = AwsSettings(region="us-east-1", endpoint_url=emulator.url)
    result = verify_rows(rows, job(aws=aws, group=name, types=types, max_workers=2))
    c = result.counts
    assert (c["checked"], c[MATCHED], c[DIFFERENT], c[MISSING]) == (250, 248, 1, 1)
    assert c["api_calls"] == 3  # 100 ids a call
    by_id = {r["record_id"]: r for r in result.records}
    assert by_id["r248"]["fields"] == ["n"] and by_id["r248"]["actual"]["n"] == "-1"
    assert by_id["r248"]["expected"]["n"] == "248" and by_id["r249"]["actual"] is None


# ---- end to end ------------------------------------------------------------------------------

FEATURES = [("record_id", "String"), ("event_time", "String"), ("amount", "Fractional"),
            ("count", "Integral")]


def test_run_verifies_counts_kept_newer_and_reverifies(emulator, sm, fsr, tmp_path):
    source, target = unique("verify-src"), unique("verify-tgt")
    create_group(sm, source, FEATURES, offline=False)
    create_group(sm, target, FEATURES, offline=False)
    put_records(fsr, source, [fv(record_id=f"v{i:03d}", event_time=T0, amount=f"{i}.25",
                                 count=str(i)) for i in range(300)])
    # the target already holds a newer version of v007: AWS keeps it
    fsr.put_record(FeatureGroupName=target, Record=fv(
        record_id="v007", event_time=T1, amount="-1.0", count="-1"))
    conf = write_conf(tmp_path / "conf.yaml", emulator)
    run_id = unique("verify-run")
    done = spark_submit(["--conf", str(conf), "--source", source, "--target", target,
                         "--run-id", run_id, "--verify"])
    text = output(done)
    assert done.returncode == 0, text
    plan = plan_of(emulator, run_id)
    assert plan["target_empty"] is False and plan["verify"] == "all"
    assert "holds records (ListRecords MaxResults=1)" in text and "target kept newer" in text
    report = report_of(emulator, run_id)
    v = report["verify"]
    assert (v["checked"], v["matched"], v["target_kept_newer"], v["missing"], v["different"]) \
        == (300, 299, 1, 0, 0)
    assert report["written"] == 299 and report["target_kept_newer"] == 1
    kept = _verify_lines(emulator, run_id)
    assert [(k["record_id"], k["outcome"]) for k in kept] == [("v007", "target_kept_newer")]

    # a record lost afterwards: --resume of the finished run re-verifies, writes nothing
    fsr.delete_record(FeatureGroupName=target, RecordIdentifierValueAsString="v100",
                      EventTime="2024-06-01T00:00:00Z", DeletionMode="HardDelete")
    writes_before = emulator.stats()["operations"].get("BatchWriteRecord", {}).get("requests", 0)
    again = spark_submit(["--conf", str(conf), "--resume", run_id, "--verify"])
    assert again.returncode == 1, output(again)
    assert emulator.stats()["operations"].get("BatchWriteRecord", {}).get("requests", 0) \
        == writes_before
    v = report_of(emulator, run_id)["verify"]
    assert (v["checked"], v["matched"], v["missing"], v["target_kept_newer"]) == (300, 298, 1, 1)
    lost = {k["record_id"]: k for k in _verify_lines(emulator, run_id)}
    assert lost["v100"]["outcome"] == "missing" and lost["v100"]["actual"] is None
    assert lost["v100"]["expected"]["amount"] == "100.25"


def _verify_lines(emulator, run_id: str) -> list[dict]:
    folder = run_dir(emulator, run_id) / "verify"
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def test_verify_setting_and_flag():
    from fsmigrate.errors import BadInput
    from fsmigrate.settings import load_settings, verify_sample_size

    base = ["--source", "a", "--target", "b"]
    assert load_settings(base).migration.verify == "sample:1000"
    assert load_settings([*base, "--verify"]).migration.verify == "all"
    assert load_settings([*base, "--verify", "sample:50"]).migration.verify == "sample:50"
    assert [verify_sample_size(m) for m in ("none", "sample:7", "all")] == [0, 7, None]
    for bad in ("sample:0", "some", "sample:"):
        with pytest.raises(BadInput, match="--verify / migration.verify must be"):
            load_settings([*base, "--verify", bad])
    assert load_settings(base).migration.read_tps == 400.0
