"""--clear-target's guards, all before anything is deleted: what may be cleared at all
(:func:`check_clear_allowed`) and the confirmation (:func:`confirm_clear`)."""

from __future__ import annotations

from collections.abc import Callable

from .errors import BadInput
from .groups import GroupSpec
from .settings import Settings
from .storage import split_s3


def s3_prefix(uri: str) -> str:
    """`s3://bucket/key/` with one trailing slash (s3a/s3n read as s3), for prefix comparisons."""
    text = uri.strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() in ("s3", "s3a", "s3n"):
        text = "s3://" + rest
    bucket, key = split_s3(text)
    key = key.strip("/")
    return f"s3://{bucket}/{key}/" if key else f"s3://{bucket}/"


def check_clearable(target: GroupSpec) -> None:
    """Refuse a target whose stores this job can't clear correctly."""
    if target.is_iceberg:
        raise BadInput(f"--clear-target cannot clear {target.name}: its offline store is in the "
                       "Iceberg table format (files are tracked by table metadata); clear it "
                       "through its catalog, or run without --clear-target")


def check_clear_allowed(source: GroupSpec, target: GroupSpec) -> None:
    """Refuse a clear that would destroy the source or that this job can't do correctly."""
    if source.name == target.name:
        raise BadInput(f"--clear-target would delete the source {source.name}: "
                       "pick a different --target")
    check_clearable(target)
    if source.offline_uri and target.offline_uri:
        src, tgt = s3_prefix(source.offline_uri), s3_prefix(target.offline_uri)
        if src.startswith(tgt) or tgt.startswith(src):
            raise BadInput(f"--clear-target: the offline store of {target.name} ({tgt}) overlaps "
                           f"the source's ({src}), so clearing it would delete source data: "
                           "use a target with its own offline S3 location")


def clear_prompt(target_name: str) -> str:
    return f"Type the target group name ({target_name}) to delete all its records: "


def confirm_clear(settings: Settings, target_name: str, stdin_isatty: bool,
                  ask: Callable[[str], str]) -> None:
    """Pass when --yes, `migration.confirm_clear: <target>`, or the name typed at a terminal.

    The typed answer must be the exact name (surrounding whitespace ignored). Without a
    terminal nothing is asked and the clear is refused: nothing has been deleted.
    """
    if settings.yes or settings.migration.confirm_clear == target_name:
        return
    if stdin_isatty:
        try:
            answer = ask(clear_prompt(target_name))
        except EOFError:
            answer = None
        if answer is not None and answer.strip() == target_name:
            return
    raise BadInput(f"--clear-target deletes every record of {target_name}: confirm with --yes, "
                   f"migration.confirm_clear: {target_name}, or answer the prompt")
