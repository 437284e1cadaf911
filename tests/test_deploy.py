"""scripts/deploy.py against moto's server (S3, Glue, EMR, EMR Serverless), botocore's parameter
validation on (boto3's default), run as the README shows it with AWS_ENDPOINT_URL set."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile

import boto3
import pytest
from fsmigrate.arguments import parse_args
from jobtools import ROOT

ACCOUNT_ROLE = "arn:aws:iam::123456789012:role/fsmigrate"
DEPLOY = ROOT / "scripts" / "deploy.py"


@pytest.fixture
def dist(tmp_path):
    """dist/ as `make package` lays it out (test_package builds the real one; slow)."""
    out = tmp_path / "dist"
    out.mkdir()
    shutil.copy(ROOT / "job" / "migrate.py", out / "migrate.py")
    with zipfile.ZipFile(out / "fsmigrate.zip", "w") as zf:
        for path in (ROOT / "job" / "fsmigrate").rglob("*.py"):
            zf.write(path, path.relative_to(ROOT / "job").as_posix())
    with tarfile.open(out / "fsmigrate-env.tar.gz", "w:gz") as tar:
        tar.add(ROOT / "job" / "migrate.py", "bin/placeholder.py")
    return out


@pytest.fixture
def aws(moto_s3):
    """Clients on moto's server, and a fresh bucket for the artifacts."""
    session = boto3.session.Session(region_name="us-east-1")

    def client(name):
        return session.client(name, endpoint_url=moto_s3)

    bucket = f"deploy-{uuid.uuid4().hex[:8]}"
    client("s3").create_bucket(Bucket=bucket)
    return client, bucket, moto_s3


def deploy(moto_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_url, "AWS_REGION": "us-east-1"}
    return subprocess.run([sys.executable, str(DEPLOY), *args], env=env, capture_output=True,
                          text=True, timeout=120)


def keys(client, bucket: str) -> set[str]:
    return {o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_glue_job_is_created_with_the_arguments_the_job_accepts(aws, dist):
    client, bucket, url = aws
    done = deploy(url, "glue", "--artifacts", f"s3://{bucket}/fsmigrate", "--role-arn",
                  ACCOUNT_ROLE, "--source", "src", "--target", "tgt", "--dist", str(dist),
                  "--job-name", "fsmigrate-test", "--start", "--", "--max-workers", "8")
    assert done.returncode == 0, done.stderr
    assert keys(client, bucket) == {"fsmigrate/migrate.py", "fsmigrate/fsmigrate.zip",
                                    "fsmigrate/conf/glue.yaml"}
    job = client("glue").get_job(JobName="fsmigrate-test")["Job"]
    assert (job["GlueVersion"], job["MaxRetries"]) == ("5.0", 0)
    assert job["Command"]["ScriptLocation"] == f"s3://{bucket}/fsmigrate/migrate.py"
    defaults = job["DefaultArguments"]
    assert defaults["--extra-py-files"] == f"s3://{bucket}/fsmigrate/fsmigrate.zip"
    assert "boto3>=1.44.8" in defaults["--additional-python-modules"]
    assert defaults["--config"] == f"s3://{bucket}/fsmigrate/conf/glue.yaml"
    assert "started Glue job run" in done.stdout
    # What Glue hands the script: its own arguments, then the job's, as --name value pairs.
    glue_argv = ["--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--JOB_NAME", "fsmigrate-test",
                 "--TempDir", "s3://x/tmp"]
    for name, value in defaults.items():
        glue_argv += [name, value]
    ns = parse_args(glue_argv)
    assert (ns.source, ns.target, ns.max_workers, ns.conf) == (
        "src", "tgt", 8, f"s3://{bucket}/fsmigrate/conf/glue.yaml")


def test_glue_update_sends_the_created_definition_as_a_valid_job_update():
    """moto's Glue has no UpdateJob, so the second deploy's request is checked against botocore's
    own UpdateJob input shape (the same validation boto3 runs before sending); the create path
    above goes through moto."""
    import importlib.util

    from botocore.session import get_session
    from botocore.validate import ParamValidator

    spec = importlib.util.spec_from_file_location("deploy_script", DEPLOY)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ns = script.parser().parse_args(
        ["glue", "--artifacts", "s3://b/p", "--role-arn", ACCOUNT_ROLE, "--source", "src",
         "--target", "tgt"])
    ns.job_args = ["--max-workers", "8"]
    job = script.glue_job(ns, {"conf": "s3://b/p/conf/glue.yaml", "migrate.py": "s3://b/p/m.py",
                               "fsmigrate.zip": "s3://b/p/f.zip"})
    model = get_session().get_service_model("glue")
    validator = ParamValidator()
    update = validator.validate({"JobName": "fsmigrate", "JobUpdate": job},
                                model.operation_model("UpdateJob").input_shape)
    create = validator.validate({"Name": "fsmigrate", **job},
                                model.operation_model("CreateJob").input_shape)
    assert not update.has_errors(), update.generate_report()
    assert not create.has_errors(), create.generate_report()
    assert job["DefaultArguments"]["--max-workers"] == "8"
    # and a field UpdateJob does not know would be caught: the check can fail
    bad = validator.validate({"JobName": "fsmigrate", "JobUpdate": {**job, "Name": "x"}},
                             model.operation_model("UpdateJob").input_shape)
    assert bad.has_errors()


def test_emr_step_runs_spark_submit_with_the_environment(aws, dist):
    client, bucket, url = aws
    emr = client("emr")
    cluster = emr.run_job_flow(
        Name="c", ReleaseLabel="emr-7.5.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                   "KeepJobFlowAliveWhenNoSteps": True})["JobFlowId"]
    done = deploy(url, "emr", "--artifacts", f"s3://{bucket}/fs", "--cluster-id", cluster,
                  "--source", "src", "--target", "tgt", "--dist", str(dist), "--", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "fs/fsmigrate-env.tar.gz" in keys(client, bucket)
    (step,) = emr.list_steps(ClusterId=cluster)["Steps"]
    jar = step["Config"]
    assert jar["Jar"] == "command-runner.jar"
    args = jar["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert args[args.index("--archives") + 1] == f"s3://{bucket}/fs/fsmigrate-env.tar.gz#environment"
    assert "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python" in args
    assert "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python" in args
    assert args[args.index("--py-files") + 1] == f"s3://{bucket}/fs/fsmigrate.zip"
    script = args.index(f"s3://{bucket}/fs/migrate.py")
    assert args[script + 1:] == ["--config", f"s3://{bucket}/fs/conf/prod.yaml", "--source",
                                 "src", "--target", "tgt", "--dry-run"]


def test_emr_serverless_run_uses_the_packed_environment(aws, dist):
    client, bucket, url = aws
    app = client("emr-serverless").create_application(
        name="fsmigrate", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    done = deploy(url, "emr-serverless", "--artifacts", f"s3://{bucket}/fs", "--application-id",
                  app, "--role-arn", ACCOUNT_ROLE, "--source", "src", "--target", "tgt",
                  "--dist", str(dist))
    assert done.returncode == 0, done.stderr
    (run,) = client("emr-serverless").list_job_runs(applicationId=app)["jobRuns"]
    detail = client("emr-serverless").get_job_run(applicationId=app, jobRunId=run["id"])
    driver = detail["jobRun"]["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"s3://{bucket}/fs/migrate.py"
    assert driver["entryPointArguments"][:2] == ["--config", f"s3://{bucket}/fs/conf/prod.yaml"]
    params = driver["sparkSubmitParameters"]
    assert f"spark.archives=s3://{bucket}/fs/fsmigrate-env.tar.gz#environment" in params
    assert "spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python" in params
    assert "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python" in params


def test_missing_artifacts_are_one_line_exit_2(aws, tmp_path):
    _client, bucket, url = aws
    done = deploy(url, "glue", "--artifacts", f"s3://{bucket}/x", "--role-arn", ACCOUNT_ROLE,
                  "--source", "a", "--target", "b", "--dist", str(tmp_path / "none"))
    assert done.returncode == 2
    assert done.stderr.strip().endswith("not found: run `make package` first (or pass --conf)")
    assert len(done.stderr.strip().splitlines()) == 1


def test_readme_deploy_commands_work_as_written(aws, dist):
    """The README's three commands, verbatim but for the ids moto hands out and --dist."""
    client, _bucket, url = aws
    client("s3").create_bucket(Bucket="my-bucket")
    cluster = client("emr").run_job_flow(
        Name="c", ReleaseLabel="emr-7.5.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                   "KeepJobFlowAliveWhenNoSteps": True})["JobFlowId"]
    app = client("emr-serverless").create_application(
        name="readme", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines()
                if line.startswith("python3 scripts/deploy.py ")]
    assert [c.split()[2] for c in commands] == ["glue", "emr", "emr-serverless"]
    for command in commands:
        command = command.replace("j-2AXXXXXXGAPLF", cluster).replace("00fabcdefghij123", app)
        args = shlex.split(command)[2:]
        done = deploy(url, *args, "--dist", str(dist))
        assert done.returncode == 0, (command, done.stderr)
    assert client("glue").get_job(JobName="fsmigrate")["Job"]["GlueVersion"] == "5.0"
    assert len(client("emr").list_steps(ClusterId=cluster)["Steps"]) == 1
    assert len(client("emr-serverless").list_job_runs(applicationId=app)["jobRuns"]) == 1
