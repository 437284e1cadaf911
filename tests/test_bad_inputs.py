"""The bad-input table: every case exits 2 with one line on stderr and writes nothing to the
target (the emulator's write counters stay put). In-process through ``fsmigrate.cli.main``;
every case is refused before Spark starts, so the table runs in seconds. Listed in the README."""

from __future__ import annotations

import pytest
import yaml
from fsmigrate.cli import main
from jobtools import create_group, op_total, unique

WRITES = ("PutRecord", "BatchWriteRecord", "DeleteRecord")
SECRET = "FAKESECRETab12cd34ef56DoNotLeak"
FEATURES = [("record_id", "String"), ("event_time", "String"), ("n", "Integral")]


@pytest.fixture
def groups(emulator, sm):
    source, target = unique("bad-src"), unique("bad-tgt")
    create_group(sm, source, FEATURES)
    create_group(sm, target, FEATURES)
    return source, target


def conf_file(tmp_path, emulator, **sections):
    conf = {"aws": {"region": "us-east-1", "endpoint_url": emulator.url},
            "storage": {"local_root": str(emulator.data_dir)},
            "output": {"uri": str(tmp_path / "runs")}}
    for key, value in sections.items():
        if isinstance(value, dict):
            conf.setdefault(key, {}).update(value)
        else:
            conf[key] = value
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    return str(path)


# (id, conf sections or raw YAML text, arguments after --conf/--source/--target, expected text)
# {src} and {tgt} stand for the test's groups; "RAW:" confs are written as they are.
CASES = [
    # YAML
    ("conf-missing", None, ["--conf", "/nonexistent/conf.yaml"], "conf"),
    ("conf-not-yaml", "RAW:a: [1, 2\n", [], "conf"),
    ("conf-a-list", "RAW:- 1\n- 2\n", [], "conf"),
    ("conf-unknown-section", {"nope": {"x": 1}}, [], "unknown section"),
    ("conf-unknown-key", {"migration": {"batchsize": 5}}, [], "unknown key"),
    ("conf-wrong-type", {"migration": {"batch_size": "many"}}, [], "batch_size"),
    ("progress-infinite", {"migration": {"progress_interval_seconds": float("inf")}}, [],
     "progress_interval_seconds"),
    ("progress-tiny", {"migration": {"progress_interval_seconds": 0.000001}}, [],
     "progress_interval_seconds"),
    ("retry-budget-zero", {"migration": {"retry_budget_seconds": 0}}, [],
     "retry_budget_seconds"),
    ("partition-records-small", {"migration": {"partition_records": 1}}, [],
     "partition_records"),
    ("output-ftp", {"output": {"uri": "ftp://host/runs"}}, [], "ftp:// is not supported"),
    ("endpoint-no-scheme", {"aws": {"endpoint_url": "localhost:1"}}, [], "endpoint_url"),
    ("inline-secret", {"aws": {"secret_access_key": SECRET}}, [], "credential"),
    ("inline-key-elsewhere", {"migration": {"aws_access_key_id": "AKIAFAKE"}}, [],
     "credential"),
    # arguments
    # unknown --name value pairs are Glue's and ignored (issue 8); near-misses of ours are not
    ("near-miss-argument", {}, ["--dryrun", "true"], "did you mean --dry-run"),
    ("batch-size-zero", {}, ["--batch-size", "0"], "--batch-size"),
    ("max-workers-huge", {}, ["--max-workers", "1000"], "--max-workers"),
    ("max-tps-negative", {}, ["--max-tps", "-1"], "--max-tps"),
    ("max-tps-infinite", {}, ["--max-tps", "inf"], "--max-tps"),
    ("write-api-unknown", {}, ["--write-api", "bulk"], "--write-api"),
    ("resume-from-blank", {}, ["--resume-from", " "], "--resume-from"),
    # groups
    ("no-source", {}, ["--source", ""], "no source"),
    ("same-groups", {}, ["--target", "{src}"], "same feature group"),
    ("bad-group-name", {}, ["--target", "bad name!"], "not a valid feature group name"),
    ("source-missing", {}, ["--source", "no-such-group-xyz"], "no-such-group-xyz"),
    ("target-missing", {}, ["--target", "no-such-group-xyz"], "no-such-group-xyz"),
    # filters
    ("filter-empty-where", {}, ["--filter-query", "WHERE "], "is empty"),
    ("filter-blank", {"migration": {"filter_query": "  "}}, [], "is empty"),
    # run ids, resume, retry
    ("run-id-path", {}, ["--run-id", "../escape"], "--run-id"),
    ("resume-unknown", {}, ["--resume", "no-such-run"], "no plan.json"),
    ("resume-and-retry", {}, ["--resume", "a", "--retry-failures", "b"], "cannot be combined"),
    ("retry-unknown", {}, ["--retry-failures", "no-such-run"], "no plan.json"),
    # clear
    ("clear-unconfirmed", {}, ["--clear-target"], "--clear-target"),
]


@pytest.mark.parametrize("case_id, conf, args, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_no_writes(case_id, conf, args, expect, emulator,
                                                       groups, tmp_path, capsys, monkeypatch):
    source, target = groups
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    argv = []
    if isinstance(conf, str):
        path = tmp_path / "conf.yaml"
        path.write_text(conf[4:])
        argv = ["--conf", str(path)]
    elif conf is not None:
        argv = ["--conf", conf_file(tmp_path, emulator, **conf)]
    given = {a for a in args if a.startswith("--")}
    if "--source" not in given and "--resume" not in given and "--retry-failures" not in given:
        argv += ["--source", source]
    if "--target" not in given and "--resume" not in given and "--retry-failures" not in given:
        argv += ["--target", target]
    argv += [a.format(src=source, tgt=target) for a in args]
    writes = op_total(emulator, WRITES, "records")

    code = main(argv)

    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (case_id, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expect in lines[0], lines[0]
    assert "Traceback" not in out + err and SECRET not in out + err
    assert op_total(emulator, WRITES, "records") == writes


ENVIRONMENT = [
    ("log-level", {"FSMIGRATE_LOG_LEVEL": "LOUD"}, None, "FSMIGRATE_LOG_LEVEL"),
    ("unreachable-endpoint", {}, "http://127.0.0.1:9", "cannot reach"),
    ("no-credentials", {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                        "AWS_CONFIG_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"},
     None, "no AWS credentials"),
]


@pytest.mark.parametrize("case_id, env, endpoint, expect", ENVIRONMENT,
                         ids=[c[0] for c in ENVIRONMENT])
def test_environment_problems_exit_2_with_one_line(case_id, env, endpoint, expect, emulator,
                                                   groups, tmp_path, capsys, monkeypatch):
    source, target = groups
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    aws = {"endpoint_url": endpoint} if endpoint else {}
    argv = ["--conf", conf_file(tmp_path, emulator, aws=aws), "--source", source,
            "--target", target]
    writes = op_total(emulator, WRITES, "records")

    code = main(argv)

    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (case_id, err)
    assert len(lines) == 1 and expect in lines[0], err
    assert "Traceback" not in out + err
    assert op_total(emulator, WRITES, "records") == writes
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("plan.json"))
