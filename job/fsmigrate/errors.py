"""Errors that end the job, each with the exit code the contract gives it."""


class MigrationError(Exception):
    exit_code = 1


class BadInput(MigrationError):
    """Bad settings, arguments or incompatible groups: exit 2, nothing written."""

    exit_code = 2


class Aborted(MigrationError):
    """A systemic error (access denied, group gone): exit 3, run state kept for resume."""

    exit_code = 3
