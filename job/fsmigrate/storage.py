"""Where files live: `s3://` URIs, mapped onto a local folder in local mode.

On EMR and Glue, Spark reads `s3://` as it is and small run-state files go through boto3.
In local mode (`storage.local_root`), `s3://bucket/key` is `<local_root>/bucket/key` for
Spark and for every file the job reads or writes. Plain local paths are used as they are.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlparse

from . import aws as aws_calls
from .aws import AwsSettings


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


@dataclass(frozen=True)
class Store:
    """Small-file access (plans, checkpoints, failure files). Picklable: ships to executors."""

    aws: AwsSettings = AwsSettings()
    local_root: str | None = None

    def local_path(self, uri: str) -> str | None:
        """The local file behind `uri`, or None when it is real S3."""
        if uri.startswith("s3://"):
            if not self.local_root:
                return None
            bucket, key = split_s3(uri)
            return os.path.join(os.path.abspath(self.local_root), bucket, key)
        if uri.startswith("file://"):
            return urlparse(uri).path
        return os.path.abspath(uri)

    def spark_path(self, uri: str) -> str:
        local = self.local_path(uri)
        return uri if local is None else local

    def __getstate__(self):
        # The boto3 client is made again where the Store lands (executors).
        return {k: v for k, v in self.__dict__.items() if k != "_s3"}

    @cached_property
    def _s3(self):
        return aws_calls.s3_client(self.aws)

    def read_text(self, uri: str) -> str:
        local = self.local_path(uri)
        if local is not None:
            with open(local, encoding="utf-8") as fh:
                return fh.read()
        bucket, key = split_s3(uri)
        try:
            return aws_calls.s3_get_text(self._s3, bucket, key)
        except aws_calls.S3NotFound:
            raise FileNotFoundError(uri) from None

    def exists(self, uri: str) -> bool:
        try:
            self.read_text(uri)
        except FileNotFoundError:
            return False
        return True

    def write_text(self, uri: str, text: str) -> None:
        """Replace the file in one step: readers see the old or the new content, never half."""
        local = self.local_path(uri)
        if local is None:
            bucket, key = split_s3(uri)
            aws_calls.s3_put_text(self._s3, bucket, key, text)
            return
        folder = os.path.dirname(local)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, local)

    def delete(self, uri: str) -> None:
        local = self.local_path(uri)
        if local is None:
            bucket, key = split_s3(uri)
            aws_calls.s3_delete_keys(self._s3, bucket, [key])
            return
        try:
            os.remove(local)
        except FileNotFoundError:
            pass

    def delete_many(self, uris: list[str]) -> None:
        """Delete files: 1,000 keys per S3 call, a few threads locally."""
        by_bucket: dict[str, list[str]] = {}
        local = []
        for uri in uris:
            if self.local_path(uri) is None:
                bucket, key = split_s3(uri)
                by_bucket.setdefault(bucket, []).append(key)
            else:
                local.append(uri)
        for bucket, keys in by_bucket.items():
            aws_calls.s3_delete_keys(self._s3, bucket, keys)
        if local:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(self.delete, local))

    def remove_empty_folders(self, prefix_uri: str) -> None:
        """Locally, the empty folders under `prefix_uri` (itself included); S3 has none."""
        local = self.local_path(prefix_uri)
        if local is None:
            return
        for folder, _dirs, _files in os.walk(local, topdown=False):
            try:
                os.rmdir(folder)
            except OSError:  # not empty, or gone
                pass

    def list(self, prefix_uri: str) -> list[str]:
        """URIs of the files under a folder URI, sorted; hidden temp files left out."""
        return [uri for uri, _size in self.list_sizes(prefix_uri)]

    def list_sizes(self, prefix_uri: str) -> list[tuple[str, int]]:
        """(URI, bytes) of the files under a folder URI, sorted; hidden temp files left out."""
        local = self.local_path(prefix_uri)
        if local is None:
            bucket, key = split_s3(prefix_uri)
            key = key.rstrip("/") + "/" if key else ""
            objects = aws_calls.s3_list_objects(self._s3, bucket, key)
            return sorted((f"s3://{bucket}/{k}", size) for k, size in objects)
        out = []
        for folder, _dirs, files in os.walk(local):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                path = os.path.join(folder, name)
                try:
                    size = os.path.getsize(path)
                except FileNotFoundError:  # removed since the listing
                    continue
                rel = os.path.relpath(path, local)
                out.append((join(prefix_uri, rel.replace(os.sep, "/")), size))
        return sorted(out)

