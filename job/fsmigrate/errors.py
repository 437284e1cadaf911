"""Errors that end the job, each with the exit code the contract gives it, and the unwrap of
what an executor raised."""

import re


class MigrationError(Exception):
    exit_code = 1


class BadInput(MigrationError):
    """Bad settings, arguments or incompatible groups: exit 2, nothing written."""

    exit_code = 2


class Aborted(MigrationError):
    """A systemic error (access denied, group gone): exit 3, run state kept for resume."""

    exit_code = 3


def from_executor(exc: Exception) -> Exception:
    """Spark wraps an executor's exception in a Java one; bring our Aborted back out of it."""
    marker = f"{__name__}.Aborted: "
    text = str(exc)
    if marker in text:
        return Aborted(text.split(marker, 1)[1].splitlines()[0])
    return exc


_PY_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Aborted|BadInput): .+")


_TRIES = re.compile(r"failed (\d+) times?")


def executor_error_line(exc: Exception) -> str:
    """The Python error inside Spark's wrapping (the executor's traceback), else the headline."""
    text = str(exc)
    if "Python worker exited unexpectedly" in text:  # no Python traceback: the process died
        tries = _TRIES.search(text)
        each = f" in each of its {tries.group(1)} attempts" if tries else ""
        return (f"the Python worker running a task died{each} (killed, or out of memory; "
                "spark.task.maxFailures sets the attempts)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    python = [ln for ln in lines if _PY_ERROR_LINE.match(ln)
              and not ln.startswith(("py4j.", "org.apache.", "java."))]
    return (python[0] if python else lines[0] if lines else type(exc).__name__)[:300]
