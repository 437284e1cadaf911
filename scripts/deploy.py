"""Deploy what `make package` built and start a migration: `python scripts/deploy.py glue|emr|
emr-serverless --artifacts s3://bucket/prefix --source A --target B ...`.

Uploads dist/migrate.py, dist/fsmigrate.zip (and, for EMR, dist/fsmigrate-env.tar.gz) and the
conf to `--artifacts`, then
- glue: creates or updates the Glue job (Glue 5.0, MaxRetries 0, a boto3 with BatchWriteRecord
  and ListRecords through --additional-python-modules) and, with --start, starts a run;
- emr: adds a `spark-submit --deploy-mode cluster` step to a running cluster, with the packed
  environment as the Python of driver and executors;
- emr-serverless: starts a job run on an application, with the packed environment.
Every job argument after `--` goes to the job (e.g. `-- --dry-run`). boto3's usual
configuration applies (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
NEW_BOTO3 = "boto3>=1.44.8,botocore>=1.44.8"  # BatchWriteRecord and ListRecords
ENV_PYTHON = "./environment/bin/python"  # inside the unpacked fsmigrate-env.tar.gz
DEFAULT_CONF = {"glue": "conf/glue.yaml", "emr": "conf/prod.yaml",
                "emr-serverless": "conf/prod.yaml"}


class DeployError(Exception):
    pass


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise DeployError(f"--artifacts must be an s3:// URI, got {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key.strip("/")


def upload(session, ns: argparse.Namespace, names: list[str]) -> dict[str, str]:
    """Artifacts and conf to S3; returns name -> s3:// URI."""
    dist = Path(ns.dist)
    files = {name: dist / name for name in names}
    files["conf"] = Path(ns.conf or ROOT / DEFAULT_CONF[ns.platform])
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DeployError(f"{missing[0]} not found: run `make package` first (or pass --conf)")
    bucket, prefix = split_s3(ns.artifacts)
    s3 = session.client("s3")
    uris = {}
    for name, path in files.items():
        key = "/".join(p for p in (prefix, "conf" if name == "conf" else "", path.name) if p)
        s3.upload_file(str(path), bucket, key)
        uris[name] = f"s3://{bucket}/{key}"
        print(f"uploaded {path} -> {uris[name]}")
    return uris


def job_arguments(ns: argparse.Namespace, conf_uri: str) -> list[str]:
    return ["--config", conf_uri, "--source", ns.source, "--target", ns.target, *ns.job_args]


def glue_job(ns: argparse.Namespace, uris: dict[str, str]) -> dict:
    """The Glue job's definition: CreateJob's fields (without Name), which are also UpdateJob's
    JobUpdate."""
    args = job_arguments(ns, uris["conf"])
    if len(args) % 2:
        raise DeployError("Glue passes job arguments as --name value pairs: give flags a value "
                          "(--dry-run true)")
    defaults = {
        "--job-language": "python",
        "--extra-py-files": uris["fsmigrate.zip"],
        # Glue 5.0's boto3 predates BatchWriteRecord and ListRecords.
        "--additional-python-modules": NEW_BOTO3,
        "--enable-continuous-cloudwatch-log": "true",
        **dict(zip(args[::2], args[1::2], strict=True)),
    }
    return {
        "Role": ns.role_arn,
        "Command": {"Name": "glueetl", "ScriptLocation": uris["migrate.py"],
                    "PythonVersion": "3"},
        "GlueVersion": "5.0",
        "MaxRetries": 0,  # a retry would start a second run beside the first's run folder
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "WorkerType": ns.worker_type,
        "NumberOfWorkers": ns.workers,
        "DefaultArguments": defaults,
    }


def glue(session, ns: argparse.Namespace) -> None:
    uris = upload(session, ns, ["migrate.py", "fsmigrate.zip"])
    job = glue_job(ns, uris)
    client = session.client("glue")
    try:
        client.get_job(JobName=ns.job_name)
        exists = True
    except client.exceptions.EntityNotFoundException:
        exists = False
    if exists:
        client.update_job(JobName=ns.job_name, JobUpdate=job)
        print(f"updated Glue job {ns.job_name}")
    else:
        client.create_job(Name=ns.job_name, **job)
        print(f"created Glue job {ns.job_name}")
    if ns.start:
        run_id = client.start_job_run(JobName=ns.job_name)["JobRunId"]
        print(f"started Glue job run {run_id}")


def spark_env_conf(driver_key: str) -> list[str]:
    """Driver and executors use the packed environment's Python."""
    return [f"{driver_key}={ENV_PYTHON}", f"spark.executorEnv.PYSPARK_PYTHON={ENV_PYTHON}"]


def emr(session, ns: argparse.Namespace) -> None:
    uris = upload(session, ns, ["migrate.py", "fsmigrate.zip", "fsmigrate-env.tar.gz"])
    submit = ["spark-submit", "--deploy-mode", "cluster",
              "--archives", f"{uris['fsmigrate-env.tar.gz']}#environment"]
    for conf in spark_env_conf("spark.yarn.appMasterEnv.PYSPARK_PYTHON"):
        submit += ["--conf", conf]
    submit += ["--py-files", uris["fsmigrate.zip"], uris["migrate.py"],
               *job_arguments(ns, uris["conf"])]
    step = {"Name": f"fsmigrate {ns.source} -> {ns.target}", "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": submit}}
    (step_id,) = session.client("emr").add_job_flow_steps(
        JobFlowId=ns.cluster_id, Steps=[step])["StepIds"]
    print(f"added step {step_id} to cluster {ns.cluster_id}")


def emr_serverless(session, ns: argparse.Namespace) -> None:
    uris = upload(session, ns, ["migrate.py", "fsmigrate.zip", "fsmigrate-env.tar.gz"])
    confs = [f"spark.archives={uris['fsmigrate-env.tar.gz']}#environment",
             f"spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON={ENV_PYTHON}",
             *spark_env_conf("spark.emr-serverless.driverEnv.PYSPARK_PYTHON"),
             f"spark.submit.pyFiles={uris['fsmigrate.zip']}"]
    bucket, prefix = split_s3(ns.artifacts)
    run = session.client("emr-serverless").start_job_run(
        applicationId=ns.application_id,
        executionRoleArn=ns.role_arn,
        name=f"fsmigrate {ns.source} -> {ns.target}",
        jobDriver={"sparkSubmit": {
            "entryPoint": uris["migrate.py"],
            "entryPointArguments": job_arguments(ns, uris["conf"]),
            "sparkSubmitParameters": " ".join(f"--conf {c}" for c in confs),
        }},
        configurationOverrides={"monitoringConfiguration": {"s3MonitoringConfiguration": {
            "logUri": f"s3://{bucket}/{prefix + '/' if prefix else ''}logs/"}}},
    )
    print(f"started EMR Serverless job run {run['jobRunId']} on application "
          f"{ns.application_id}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deploy.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="platform", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--artifacts", required=True, metavar="S3_URI",
                        help="where the artifacts and the conf go (s3://bucket/prefix)")
    common.add_argument("--source", required=True, help="source feature group")
    common.add_argument("--target", required=True, help="target feature group")
    common.add_argument("--conf", help="the job's YAML (default conf/glue.yaml or conf/prod.yaml)")
    common.add_argument("--dist", default=str(ROOT / "dist"), help="what `make package` built")
    common.add_argument("--region", help="AWS region (default: boto3's)")
    g = sub.add_parser("glue", parents=[common], help="create or update a Glue 5.0 job")
    g.add_argument("--role-arn", required=True, help="the job's IAM role")
    g.add_argument("--job-name", default="fsmigrate")
    g.add_argument("--worker-type", default="G.1X")
    g.add_argument("--workers", type=int, default=10)
    g.add_argument("--start", action="store_true", help="start a run once the job is saved")
    e = sub.add_parser("emr", parents=[common], help="add a step to a running EMR 7.x cluster")
    e.add_argument("--cluster-id", required=True)
    s = sub.add_parser("emr-serverless", parents=[common],
                       help="start a job run on an EMR Serverless 7.x application")
    s.add_argument("--application-id", required=True)
    s.add_argument("--role-arn", required=True, help="the job run's execution role")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, job_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [])
    ns = parser().parse_args(ours)
    ns.job_args = job_args
    session = boto3.session.Session(region_name=ns.region)
    deploy = {"glue": glue, "emr": emr, "emr-serverless": emr_serverless}[ns.platform]
    try:
        deploy(session, ns)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
