"""Entry points: the Spark job (`job/migrate.py`, Glue) and `sagemaker-fs migrate SRC TGT`."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import tempfile
import zipfile

from .errors import Aborted, BadInput, MigrationError, executor_error_line
from .settings import Settings, load_settings

log = logging.getLogger("fsmigrate")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _setup_logging(debug: bool) -> None:
    level = "DEBUG" if debug else os.environ.get("FSMIGRATE_LOG_LEVEL", "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise BadInput(f"FSMIGRATE_LOG_LEVEL={os.environ.get('FSMIGRATE_LOG_LEVEL')!r}: use one "
                       f"of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("botocore", "boto3", "urllib3", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not debug else logging.INFO)
    if not debug:
        # py4j logs a traceback (on the root logger) when a call it waits on is interrupted
        logging.getLogger().addFilter(
            lambda record: not record.getMessage().startswith("KeyboardInterrupt while sending"))


_debug = False  # --debug: tracebacks (Python and Java) on every exit path

# Spark logs a failed task's Python traceback inside a Java stack trace, more than once; the
# driver reports the error itself in one line (errors.from_executor / executor_error_line).
_TASK_FAILURE_LOGGERS = ("org.apache.spark.scheduler.TaskSetManager",
                         "org.apache.spark.executor.Executor",
                         "org.apache.spark.scheduler.TaskSchedulerImpl",
                         "org.apache.spark.api.python.PythonRunner")


def _quiet_task_failures(spark) -> None:
    try:
        jvm = spark.sparkContext._jvm
        off = jvm.org.apache.logging.log4j.Level.OFF
        for name in _TASK_FAILURE_LOGGERS:
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, off)
    except Exception:  # noqa: BLE001 - logging only
        log.debug("could not quiet Spark's task-failure logs", exc_info=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (what Glue, EMR and YARN send on cancel), handled as Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Interrupted()


def _take_signals(spark) -> None:
    """The Python driver decides how the job ends on Ctrl-C or SIGTERM (sent to the whole
    process group: the terminal, YARN, `timeout`): the driver JVM ignores them, so it is alive
    to cancel the Spark jobs and then exits with the Python driver's code (spark-submit's
    PythonRunner passes it on). Best effort: a JVM without sun.misc.Signal keeps its own."""
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        jvm = spark.sparkContext._jvm
        ignore = jvm.sun.misc.SignalHandler.SIG_IGN
        for name in ("INT", "TERM"):
            jvm.sun.misc.Signal.handle(jvm.sun.misc.Signal(name), ignore)
    except Exception:  # noqa: BLE001 - never a reason to fail the job
        log.debug("could not take the JVM's signals", exc_info=True)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _cancel_spark_jobs() -> None:
    """Stop the tasks: cancelled tasks end their partition where they are, without a
    checkpoint; checkpoints of finished partitions stay, so --resume sends only the rest."""
    try:
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        if sc is not None:
            sc.cancelAllJobs()
    except Exception:  # noqa: BLE001
        log.debug("cancelling the Spark jobs failed", exc_info=True)


def spark_session(settings: Settings):
    from pyspark.sql import SparkSession

    from .preflight import spark_master

    builder = SparkSession.builder.appName(f"fsmigrate {settings.source} -> {settings.target}")
    # spark-submit and Glue start the driver beside their JVM, which holds spark.master (an
    # empty SparkConf() cannot see it before the context exists). A plain program: local mode.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.config("spark.ui.enabled", "false")
    master = spark_master()  # None: unknown, left as it is
    if master is not None:
        builder = builder.master(local_with_retries(master,
                                                    _conf_value("spark.task.maxFailures")))
    # Writes are side effects: a speculative copy of a task would send its records twice.
    builder = builder.config("spark.speculation", "false")
    spark = builder.config(map=sql_settings()).getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("FSMIGRATE_SPARK_LOG_LEVEL", "WARN"))
    if not _debug:
        _quiet_task_failures(spark)
    _take_signals(spark)
    _ship_package(spark)
    return spark


def sql_settings() -> dict[str, str]:
    """The Spark SQL settings the job runs with (the tests' session too)."""
    return {"spark.sql.session.timeZone": "UTC",
            "spark.sql.debug.maxToStringFields": "1000"}  # wide groups


LOCAL_TASK_TRIES = 4  # spark.task.maxFailures' default on a cluster
_LOCAL = re.compile(r"local(?:\[(\*|\d+)\])?")


def local_with_retries(master: str, max_failures: str | None) -> str:
    """`local` / `local[N]` as `local[N,F]`: in local mode Spark tries a task once whatever
    spark.task.maxFailures says, so a Python worker killed mid-task (out of memory, the OOM
    killer) would end the job; on a cluster the task is retried. F: spark.task.maxFailures
    when set, else a cluster's default. Other masters (and `local[N,F]`) are left as they are.
    """
    match = _LOCAL.fullmatch(master.strip())
    if not match:
        return master
    try:
        tries = max(1, int(max_failures)) if max_failures else LOCAL_TASK_TRIES
    except ValueError:
        tries = LOCAL_TASK_TRIES
    return f"local[{match.group(1) or 1},{tries}]"


def _conf_value(key: str) -> str | None:
    """A Spark setting as spark-submit passed it (None: unset, or no JVM yet)."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    try:
        from pyspark import SparkConf

        return SparkConf().get(key)
    except Exception:  # noqa: BLE001 - unset
        log.debug("cannot read %s", key, exc_info=True)
        return None


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


def _has_plan(settings: Settings | None) -> bool:
    """Whether this run has a plan to resume (its run folder holds plan.json)."""
    if settings is None or settings.migration.dry_run or settings.retry_failures:
        return False
    try:
        from .runstate import RunFolder
        from .storage import Store

        store = Store(settings.aws, settings.local_root)
        return RunFolder.at(store, settings.output_uri, settings.run_id).has_plan()
    except Exception:  # noqa: BLE001 - unreadable run folder: nothing we can offer to resume
        return False


def _resume_hint(settings: Settings) -> str:
    return (f"Run state kept: finish with --resume {settings.run_id} (same --conf); "
            "finished partitions are not sent again.")


def main(argv: list[str] | None = None, prog: str = "migrate.py") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    global _debug
    debug = _debug = "--debug" in argv  # tracebacks on every exit path, and DEBUG logs
    argv = [a for a in argv if a != "--debug"]
    settings = None
    previous = signal.getsignal(signal.SIGTERM) if threading_main() else None
    try:
        _setup_logging(debug)
        if previous is not None:
            signal.signal(signal.SIGTERM, _on_sigterm)
        settings = load_settings(argv, prog)
        from .preflight import format_checks, preflight

        checked = preflight(settings)  # before Spark starts: refusals take seconds
        if settings.preflight:
            print(format_checks(checked))
            return 0
        log.info("preflight passed: %s", "; ".join(checked))
        from .run import run  # imports pyspark: after the cheap argument checks

        return run(settings, lambda: spark_session(settings))
    except KeyboardInterrupt:
        _cancel_spark_jobs()
        if debug:
            log.exception("interrupted")
        what = "terminated (SIGTERM)" if isinstance(sys.exc_info()[1], Interrupted) else \
            "interrupted"
        if _has_plan(settings):
            print(f"{what}: tasks stopped. {_resume_hint(settings)}", file=sys.stderr)
        else:
            print(f"{what} before anything was written: nothing to resume, run it again",
                  file=sys.stderr)
        return Aborted.exit_code
    except BaseException as exc:  # noqa: BLE001 - every exit is one line and a code
        if isinstance(exc, SystemExit):
            raise
        if debug:
            log.exception("the job failed")
        return _report_failure(exc, settings)
    finally:
        if previous is not None:  # main() may run in a longer-lived process (tests)
            signal.signal(signal.SIGTERM, previous)


def _report_failure(exc: BaseException, settings: Settings | None) -> int:
    """One line on stderr and the exit code: 2 when nothing was written (bad input, or the
    environment refused before the plan), 3 with the resume command when a plan exists."""
    planned = _has_plan(settings)
    if isinstance(exc, BadInput):
        line, code = str(exc), BadInput.exit_code
    elif isinstance(exc, MigrationError) and not isinstance(exc, Aborted):
        line, code = str(exc), exc.exit_code
    else:
        from .aws import environment_problem  # boto3 loads only when needed

        problem = environment_problem(exc)
        line = problem or (str(exc) if isinstance(exc, Aborted) else executor_error_line(exc))
        code = Aborted.exit_code if planned else BadInput.exit_code
    print(f"error: {line}", file=sys.stderr)
    if code == Aborted.exit_code:
        print(_resume_hint(settings) if planned and settings else "Nothing to resume.",
              file=sys.stderr)
    return code


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
