"""--clear-target's offline part: every object under the target's ResolvedOutputS3Uri, then a
listing that must come back empty (through :class:`~fsmigrate.storage.Store`: S3, or the local
folder in local mode).

On real AWS the offline store receives rows up to ~15 minutes after they were written: records
put into the target just before the clear can still land in S3 afterwards. The final listing
catches what is there by then; stop writers to the target before clearing it.
"""

from __future__ import annotations

from . import aws
from .errors import Aborted
from .groups import GroupSpec
from .storage import Store


def offline_objects(target: GroupSpec, store: Store) -> list[tuple[str, int]]:
    """(URI, bytes) of every object under the target's ResolvedOutputS3Uri."""
    if not target.offline or not target.offline_uri:
        return []
    try:
        return store.list_sizes(target.offline_uri)
    except aws.AWS_ERRORS as exc:
        raise Aborted(f"cannot list the offline store of {target.name} at "
                      f"{target.offline_uri}: {aws.error_code(exc)}") from None


def delete_offline(target: GroupSpec, store: Store,
                   objects: list[tuple[str, int]] | None = None) -> int:
    """Delete every object under the target's ResolvedOutputS3Uri; returns how many."""
    if not target.offline or not target.offline_uri:
        return 0
    uri = target.offline_uri
    objects = offline_objects(target, store) if objects is None else objects
    try:
        store.delete_many([u for u, _ in objects])
        store.remove_empty_folders(uri)
    except aws.AWS_ERRORS as exc:
        raise Aborted(f"deleting the offline store of {target.name} at {uri} failed with "
                      f"{aws.error_code(exc)}: check s3:DeleteObject permission and rerun "
                      "with --clear-target") from None
    left = offline_objects(target, store)
    if left:
        raise Aborted(f"{len(left)} offline objects of {target.name} are still under {uri} after "
                      f"the delete (first: {left[0][0]}): stop writers to the target, check "
                      "s3:DeleteObject permission and rerun with --clear-target")
    return len(objects)
