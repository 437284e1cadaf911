"""Errors that end the job, each with the exit code the contract gives it."""


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
