"""Settings: YAML + job arguments -> one frozen, validated object; bad input is one-line exit 2."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from fsmigrate.errors import BadInput
from fsmigrate.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BASE = ["--source", "src-group", "--target", "tgt-group"]


def bad_input(argv: list[str]) -> str:
    """The BadInput message for argv; asserts it is exactly one line."""
    with pytest.raises(BadInput) as info:
        load_settings(argv)
    message = str(info.value)
    assert message
    assert "\n" not in message and "\r" not in message, message
    assert info.value.exit_code == 2
    return message


# ---- defaults, merge, aliases ----------------------------------------------------------------


def test_defaults_without_a_conf():
    s = load_settings(BASE)
    assert isinstance(s, Settings)
    assert (s.source, s.target) == ("src-group", "tgt-group")
    assert s.migration.batch_size == 100
    assert s.migration.max_workers == 4
    assert s.migration.max_tps is None
    assert s.migration.write_api == "auto"
    assert s.migration.dry_run is False
    assert s.migration.clear_target is False
    assert s.aws.region == "us-east-1"
    assert s.aws.endpoint_url is None
    assert s.local_root is None
    assert s.output_uri == "./migration-runs"
    assert s.run_id  # a fresh run id is generated
    assert s.yes is False


def test_generated_run_ids_differ_and_are_valid():
    a, b = load_settings(BASE).run_id, load_settings(BASE).run_id
    assert a != b
    # a generated id must itself pass the --run-id rule
    assert load_settings([*BASE, "--run-id", a]).run_id == a


def test_yaml_values_are_read(conf):
    path = conf(
        "source: yaml-src\n"
        "target: yaml-tgt\n"
        "aws:\n"
        "  region: eu-west-1\n"
        "  endpoint_url: http://127.0.0.1:8765\n"
        "  s3_endpoint_url: http://127.0.0.1:9000\n"
        "storage:\n"
        "  local_root: /data/s3\n"
        "output:\n"
        "  uri: s3://bucket/runs\n"
        "migration:\n"
        "  batch_size: 250\n"
        "  max_workers: 8\n"
        "  max_tps: 1500\n"
        "  write_api: put\n"
        "  filter_query: \"x > 1\"\n"
        "  missing_features: empty\n"
        "  partition_records: 2000\n"
        "  dry_run: yes\n"
    )
    s = load_settings(["--conf", path])
    assert (s.source, s.target) == ("yaml-src", "yaml-tgt")
    assert s.aws.region == "eu-west-1"
    assert s.aws.endpoint_url == "http://127.0.0.1:8765"
    assert s.aws.s3_endpoint_url == "http://127.0.0.1:9000"
    assert s.local_root == "/data/s3"
    assert s.output_uri == "s3://bucket/runs"
    m = s.migration
    assert (m.batch_size, m.max_workers, m.max_tps) == (250, 8, 1500.0)
    assert isinstance(m.max_tps, float)
    assert m.write_api == "put"
    assert m.filter_query == "x > 1"
    assert m.missing_features == "empty"
    assert m.partition_records == 2000
    assert m.dry_run is True


def test_cli_beats_yaml(conf):
    path = conf(
        "source: yaml-src\n"
        "target: yaml-tgt\n"
        "migration:\n"
        "  batch_size: 250\n"
        "  max_workers: 8\n"
        "  max_tps: 1500\n"
        "  write_api: put\n"
        "  filter_query: a = 1\n"
        "  resume_from: r-001\n"
        "  dry_run: true\n"
        "  clear_target: true\n"
    )
    s = load_settings([
        "--conf", path, "--source", "cli-src", "--batch-size", "10", "--max-workers", "2",
        "--max-tps", "99.5", "--write-api", "batch", "--filter-query", "b = 2",
        "--resume-from", "r-500", "--dry-run", "false", "--clear-target", "false",
    ])
    assert s.source == "cli-src"
    assert s.target == "yaml-tgt"  # not given on the CLI: YAML stays
    m = s.migration
    assert (m.batch_size, m.max_workers, m.max_tps) == (10, 2, 99.5)
    assert m.write_api == "batch"
    assert m.filter_query == "b = 2"
    assert m.resume_from == "r-500"
    assert m.dry_run is False  # an explicit false on the CLI beats true in YAML
    assert m.clear_target is False


def test_yaml_keeps_what_the_cli_does_not_set(conf):
    path = conf("migration:\n  batch_size: 250\n  max_workers: 8\n")
    s = load_settings(["--conf", path, *BASE, "--max-workers", "3"])
    assert s.migration.batch_size == 250
    assert s.migration.max_workers == 3


def test_config_is_an_alias_for_conf(conf):
    path = conf("migration:\n  batch_size: 42\n")
    assert load_settings(["--config", path, *BASE]).migration.batch_size == 42
    assert load_settings(["--conf", path, *BASE]).migration.batch_size == 42


def test_empty_conf_file_gives_defaults(conf):
    s = load_settings(["--conf", conf(""), *BASE])
    assert s.migration.batch_size == 100


@pytest.mark.parametrize("name", ["local.yaml", "prod.yaml", "glue.yaml"])
def test_shipped_confs_load(name):
    s = load_settings(["--conf", str(ROOT / "conf" / name), *BASE])
    assert s.migration.batch_size >= 1


def test_run_id_resume_and_retry_failures():
    s = load_settings([*BASE, "--run-id", "my-run.1"])
    assert s.run_id == "my-run.1" and s.resume is None
    s = load_settings([*BASE, "--resume", "earlier_run"])
    assert s.run_id == "earlier_run" and s.resume == "earlier_run"
    s = load_settings([*BASE, "--retry-failures", "s3://b/runs/x"])
    assert s.retry_failures == "s3://b/runs/x"


# ---- validation: every rule is a one-line BadInput --------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "10001"], "--batch-size"),
        (["--max-workers", "65"], "--max-workers"),
        (["--max-workers", "0"], "--max-workers"),
        (["--max-tps", "-5"], "--max-tps"),
        (["--max-tps", "0"], "--max-tps"),
        (["--run-id", "bad id"], "--run-id"),
        (["--run-id", "../escape"], "--run-id"),
        (["--resume=.hidden"], "use letters, digits"),
        (["--resume", "r1", "--retry-failures", "r0"], "cannot be combined"),
        (["--resume-from", "  "], "--resume-from"),
    ],
)
def test_cli_validation(extra, fragment):
    assert fragment in bad_input([*BASE, *extra])


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--source", "a", "--target", "a"], "same feature group"),
        (["--source", "bad name", "--target", "b"], "not a valid feature group name"),
        (["--source", "a", "--target=-leading-dash"], "not a valid"),
        (["--source", "a", "--target", "x" * 65], "not a valid"),
        (["--source", "a", "--target", "b_"], "not a valid"),
        (["--target", "b"], "no source"),
        (["--source", "a"], "no target"),
    ],
)
def test_group_name_validation(argv, fragment):
    assert fragment in bad_input(argv)


@pytest.mark.parametrize(
    ("migration_yaml", "fragment"),
    [
        ("write_api: bogus", "write_api"),
        ("missing_features: maybe", "missing_features"),
        ("ttl: forever", "migration.ttl"),
        ("id_source: guess", "id_source"),
        ("partition_records: 99", "partition_records"),
        ("max_attempts: 8", "set migration.retry_budget_seconds"),  # replaced by a time budget
        ("progress_interval_seconds: 0", "progress_interval_seconds"),
        ("max_tps: -1", "--max-tps"),
        ("max_tps: .nan", "--max-tps"),
        ("batch_size: 0", "--batch-size"),
        ("max_workers: 65", "--max-workers"),
        # bad types
        ("batch_size: abc", "migration.batch_size must be int"),
        ("batch_size: 1.5", "migration.batch_size"),
        ("batch_size: true", "migration.batch_size"),
        ("batch_size: [1, 2]", "migration.batch_size"),
        ("max_tps: fast", "migration.max_tps must be float"),
        ("dry_run: maybe", "migration.dry_run must be bool"),
        ("clear_target: 2", "migration.clear_target"),
    ],
)
def test_yaml_migration_validation(conf, migration_yaml, fragment):
    path = conf(f"migration:\n  {migration_yaml}\n")
    assert fragment in bad_input(["--conf", path, *BASE])


def test_yaml_integral_float_is_accepted_as_int(conf):
    path = conf("migration:\n  batch_size: 50.0\n")
    s = load_settings(["--conf", path, *BASE])
    assert s.migration.batch_size == 50 and isinstance(s.migration.batch_size, int)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("awz:\n  region: us-east-1\n", "unknown section 'awz'"),
        ("aws:\n  regoin: us-east-1\n", "unknown key aws.regoin"),
        ("migration:\n  batchsize: 5\n", "unknown key migration.batchsize"),
        ("storage:\n  root: /x\n", "unknown key storage.root"),
        ("aws: us-east-1\n", "section 'aws' must be a mapping"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("migration:\n  batch_size: [1\n", "not valid YAML"),
        ("a: b: c\n", "not valid YAML"),
        ("aws:\n  endpoint_url: 127.0.0.1:8765\n", "aws.endpoint_url"),
    ],
)
def test_yaml_structure_validation(conf, text, fragment):
    assert fragment in bad_input(["--conf", conf(text), *BASE])


def test_bad_resume_id_names_resume():
    assert bad_input([*BASE, "--resume=.hidden"]).startswith("--resume ")


def test_missing_conf_file(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    message = bad_input(["--conf", missing, *BASE])
    assert "not found" in message and missing in message


# ---- conf on S3 (moto's server stands in for S3 through AWS_ENDPOINT_URL_S3) -----------------


@pytest.fixture(scope="module")
def _s3_conf_bucket_once(moto_s3):
    import uuid

    import boto3

    bucket = f"confs-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_s3)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="job/conf.yaml",
                  Body=b"source: s3-src\ntarget: s3-tgt\nmigration:\n  batch_size: 7\n")
    return bucket


@pytest.fixture
def s3_conf_bucket(_s3_conf_bucket_once, moto_s3, monkeypatch):
    """A bucket holding job/conf.yaml; boto3 clients made in the test reach moto's server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3)
    return _s3_conf_bucket_once


def test_conf_from_s3(s3_conf_bucket):
    s = load_settings(["--config", f"s3://{s3_conf_bucket}/job/conf.yaml", "--max-workers", "2"])
    assert (s.source, s.target) == ("s3-src", "s3-tgt")
    assert (s.migration.batch_size, s.migration.max_workers) == (7, 2)


def test_missing_conf_key_on_s3(s3_conf_bucket):
    message = bad_input(["--conf", f"s3://{s3_conf_bucket}/job/missing.yaml", *BASE])
    assert "not found" in message


def test_conf_in_missing_bucket_is_bad_input(s3_conf_bucket):
    bad_input(["--conf", "s3://no-such-bucket-fsmigrate/conf.yaml", *BASE])


# Bad types outside `migration:` are not checked: they crash with TypeError or pass through.
_BAD_TYPE_OUTSIDE_MIGRATION = (
    "settings.py load_settings/validate: values outside migration: are not type-checked; "
    "a non-string reaches re.match (TypeError) or is kept as is instead of a one-line BadInput"
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("source: 123\ntarget: b\n", id="source-int"),
        pytest.param("aws:\n  endpoint_url: 5\n", id="endpoint-int"),
        pytest.param("storage:\n  local_root: 5\n", id="local-root-int"),
        pytest.param("aws:\n  region: [1]\n", id="region-list"),
    ],
)
def test_yaml_bad_types_outside_migration(conf, text):
    argv = ["--conf", conf(text)]
    if "source" not in text:
        argv += BASE
    bad_input(argv)


@pytest.mark.parametrize(
    "extra",
    [["--batch-size", "abc"], ["--write-api", "bogus"], ["--dry-run", "maybe"]],
    ids=["batch-size-abc", "write-api-bogus", "dry-run-maybe"],
)
def test_bad_cli_values_are_one_line_bad_input(extra):
    bad_input([*BASE, *extra])


# ---- frozen ------------------------------------------------------------------------------------


def test_settings_are_frozen():
    s = load_settings(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.source = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.migration.batch_size = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.aws.region = "eu-west-1"  # type: ignore[misc]
    assert s.source == "src-group" and s.migration.batch_size == 100


# ---- entry points as processes: exit 2, one line, no Spark -----------------------------------


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_migrate_py_bad_input_exits_2_without_spark():
    proc = _run([PYTHON, "job/migrate.py", "--source", "a", "--target", "a"])
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert line.startswith("error: ") and "same feature group" in line
    assert "SparkContext" not in proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_migrate_py_unknown_option_exits_2():
    proc = _run([PYTHON, "job/migrate.py", "--source", "a", "--target", "b", "--batchsize", "5"])
    assert proc.returncode == 2, proc.stderr
    assert _one_error_line(proc.stderr).startswith("error: unknown option --batchsize")


_SAGEMAKER_FS = (
    "import sys; sys.path.insert(0, 'job'); from fsmigrate.cli import sagemaker_fs; "
    "rc = sagemaker_fs(sys.argv[1:]); "
    "print('pyspark imported' if 'pyspark' in sys.modules else 'no pyspark'); sys.exit(rc)"
)


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["migrate", "only-one"], "usage: sagemaker-fs migrate"),
        (["migrate", "a", "a"], "error: source and target are the same"),
        (["migrate", "a", "b", "--max-workers", "65"], "error: --max-workers"),
    ],
)
def test_sagemaker_fs_bad_usage_exits_2_without_spark(argv, start):
    proc = _run([PYTHON, "-c", _SAGEMAKER_FS, *argv])
    assert proc.returncode == 2, proc.stderr
    assert _one_error_line(proc.stderr).startswith(start)
    assert proc.stdout.strip() == "no pyspark"
    assert "SparkContext" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [[], ["migrate"], ["migrate", "only-one"], ["copy", "a", "b"], ["migrate", "--source", "a"],
     ["migrate", "a", "--target"]],
)
def test_sagemaker_fs_usage_shape(argv, capsys):
    from fsmigrate.cli import sagemaker_fs

    assert sagemaker_fs(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_error_line(err).startswith("usage: sagemaker-fs migrate SOURCE_GROUP TARGET_GROUP")


def test_resume_and_retry_take_the_groups_from_the_earlier_plan():
    assert load_settings(["--resume", "run-1"]).source == ""
    assert load_settings(["--retry-failures", "run-1"]).target == ""
    with pytest.raises(BadInput, match="no source feature group"):
        load_settings(["--target", "b"])


# ---- cross-account: aws.source / aws.target ------------------------------------------------

SOURCE_ROLE = "arn:aws:iam::111111111111:role/fsmigrate-source"
TARGET_ROLE = "arn:aws-cn:iam::222222222222:role/path/fsmigrate-target"


def test_sides_inherit_what_they_do_not_set(conf):
    path = conf("aws:\n  region: us-east-1\n  endpoint_url: http://127.0.0.1:1\n"
                "  sts_endpoint_url: http://127.0.0.1:2\n"
                "  source:\n    region: eu-west-1\n    role_arn: " + SOURCE_ROLE + "\n"
                "    external_id: ext-1\n"
                "  target:\n    endpoint_url: http://127.0.0.1:3\n    role_arn: " + TARGET_ROLE
                + "\n")
    s = load_settings(["--conf", path, *BASE])
    src, tgt = s.source_aws, s.target_aws
    assert (src.region, src.endpoint_url, src.role_arn, src.external_id) == (
        "eu-west-1", "http://127.0.0.1:1", SOURCE_ROLE, "ext-1")
    assert (tgt.region, tgt.endpoint_url, tgt.role_arn, tgt.external_id) == (
        "us-east-1", "http://127.0.0.1:3", TARGET_ROLE, None)
    # AssumeRole goes to the job's own region and STS endpoint, whatever the side's region
    assert src.sts_region == tgt.sts_region == "us-east-1"
    assert src.sts_endpoint_url == tgt.sts_endpoint_url == "http://127.0.0.1:2"
    # the job's own identity (S3, STS) assumes nothing
    assert s.aws.role_arn is None and s.aws.region == "us-east-1"
    # hashable (client-cache keys), equal when equal, and no secret in them
    assert len({src, tgt, s.source_aws, s.target_aws}) == 2
    assert "secret" not in repr(src).lower() and "token" not in repr(src).lower()


def test_without_sides_both_are_the_jobs_own_settings(conf):
    s = load_settings(["--conf", conf("aws:\n  region: eu-central-1\n"), *BASE])
    assert s.source_aws == s.aws == s.target_aws  # equal: the same cached clients


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("aws:\n  source:\n    role: x\n", "unknown key aws.source.role (known: endpoint_url, "
                                           "external_id, region, role_arn)"),
        ("aws:\n  target:\n    secret_access_key: x\n", "looks like a credential"),
        ("aws:\n  source: eu-west-1\n", "aws.source must be a mapping"),
        ("aws:\n  target:\n    role_arn: arn:aws:iam::12345:role/x\n",
         "aws.target.role_arn 'arn:aws:iam::12345:role/x' is not an IAM role ARN"),
        ("aws:\n  target:\n    role_arn: arn:aws:iam::123456789012:user/x\n",
         "is not an IAM role ARN"),
        ("aws:\n  source:\n    external_id: e\n", "set aws.source.role_arn too"),
        ("aws:\n  source:\n    region: 5\n", "aws.source.region must be text"),
        ("aws:\n  source:\n    region: Europe\n", "aws.source.region 'Europe' is not"),
        ("aws:\n  target:\n    endpoint_url: localhost:1\n", "aws.target.endpoint_url must"),
        ("aws:\n  sts_endpoint_url: localhost:1\n", "aws.sts_endpoint_url must"),
    ],
)
def test_bad_sides_are_refused_in_one_line(conf, text, fragment):
    assert fragment in bad_input(["--conf", conf(text), *BASE])


def test_bad_side_is_exit_2_from_the_job(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("aws:\n  source:\n    role_arn: nope\n")
    done = _run([PYTHON, "job/migrate.py", "--conf", str(path), *BASE])
    assert done.returncode == 2
    assert "aws.source.role_arn 'nope' is not an IAM role ARN" in _one_error_line(done.stderr)
