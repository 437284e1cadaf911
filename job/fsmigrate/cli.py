"""Entry points: the Spark job (`job/migrate.py`, Glue) and `sagemaker-fs migrate SRC TGT`."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import zipfile

from .errors import Aborted, MigrationError
from .settings import Settings, load_settings

log = logging.getLogger("fsmigrate")


def _setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("FSMIGRATE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("botocore", "boto3", "urllib3", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def spark_session(settings: Settings):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"fsmigrate {settings.source} -> {settings.target}")
    # spark-submit and Glue start the driver beside their JVM, which holds spark.master (an
    # empty SparkConf() cannot see it before the context exists). A plain program: local mode.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master("local[*]").config("spark.ui.enabled", "false")
    # Writes are side effects: a speculative copy of a task would send its records twice.
    builder = builder.config("spark.speculation", "false")
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    builder = builder.config("spark.sql.debug.maxToStringFields", "1000")  # wide groups
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("FSMIGRATE_SPARK_LOG_LEVEL", "WARN"))
    _ship_package(spark)
    return spark


def _ship_package(spark) -> None:
    """Executors need this package: zip it from where the driver imported it, unless it already
    comes from a zip (--py-files / Glue --extra-py-files)."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isdir(package_dir):
        return
    root = os.path.dirname(package_dir)
    fd, path = tempfile.mkstemp(prefix="fsmigrate-", suffix=".zip")
    os.close(fd)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, _dirs, files in os.walk(package_dir):
            for name in files:
                if name.endswith(".py"):
                    full = os.path.join(folder, name)
                    zf.write(full, os.path.relpath(full, root))
    spark.sparkContext.addPyFile(path)


def _resume_hint(settings: Settings | None) -> str:
    if settings is None or settings.migration.dry_run or settings.retry_failures:
        return "Nothing to resume."
    return (f"Run state kept: finish with --resume {settings.run_id} (same --conf); "
            "finished partitions are not sent again.")


def main(argv: list[str] | None = None, prog: str = "migrate.py") -> int:
    _setup_logging()
    argv = sys.argv[1:] if argv is None else argv
    settings = None
    try:
        settings = load_settings(argv, prog)
        from .preflight import format_checks, preflight

        checked = preflight(settings)  # before Spark starts: refusals take seconds
        if settings.preflight:
            print(format_checks(checked))
            return 0
        log.info("preflight passed: %s", "; ".join(checked))
        from .run import run  # imports pyspark: after the cheap argument checks

        return run(settings, lambda: spark_session(settings))
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.exit_code == Aborted.exit_code:
            print(_resume_hint(settings), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"interrupted. {_resume_hint(settings)}", file=sys.stderr)
        return Aborted.exit_code
    except Exception as exc:  # a crash: keep what was done resumable, say so, exit 3
        log.exception("the job failed")
        print(f"error: the job failed ({type(exc).__name__}, see the log above). "
              f"{_resume_hint(settings)}", file=sys.stderr)
        return Aborted.exit_code


def sagemaker_fs(argv: list[str] | None = None) -> int:
    """`sagemaker-fs migrate SRC TGT [options]`: the seed's CLI shape over the same job."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[0] != "migrate" or argv[1].startswith("-") or argv[2].startswith("-"):
        print("usage: sagemaker-fs migrate SOURCE_GROUP TARGET_GROUP [options]  "
              "(options: sagemaker-fs migrate a b --help)", file=sys.stderr)
        return 2
    return main(["--source", argv[1], "--target", argv[2], *argv[3:]], prog="sagemaker-fs migrate")


if __name__ == "__main__":
    sys.exit(main())
