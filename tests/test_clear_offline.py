"""--clear-target's offline part through Store: a local folder standing in for S3."""

from __future__ import annotations

import pytest
from fsmigrate.clear_offline import delete_offline, offline_objects
from fsmigrate.errors import Aborted
from fsmigrate.groups import Feature, GroupSpec
from fsmigrate.storage import Store

URI = "s3://bucket/fs/tgt/data"


def target(uri: str | None = URI) -> GroupSpec:
    return GroupSpec("tgt", "id", "ts", (Feature("id", "String"), Feature("ts", "String")),
                     online=True, offline=uri is not None, offline_uri=uri)


def test_every_object_is_listed_with_its_size_then_deleted_with_its_folders(tmp_path):
    store = Store(local_root=str(tmp_path))
    files = {"year=2024/month=03/a.parquet": b"x" * 10, "year=2024/month=04/b.parquet": b"y"}
    for rel, data in files.items():
        path = tmp_path / "bucket/fs/tgt/data" / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    (tmp_path / "bucket/fs/other.parquet").write_bytes(b"z")  # beside the target: kept

    listed = offline_objects(target(), store)
    assert listed == [(f"{URI}/{rel}", len(data)) for rel, data in sorted(files.items())]

    assert delete_offline(target(), store) == 2
    assert offline_objects(target(), store) == []
    assert not (tmp_path / "bucket/fs/tgt/data").exists()  # no empty folders left behind
    assert (tmp_path / "bucket/fs/other.parquet").exists()


def test_a_target_without_offline_store_has_nothing_to_delete(tmp_path):
    store = Store(local_root=str(tmp_path))
    assert offline_objects(target(None), store) == []
    assert delete_offline(target(None), store) == 0


def test_objects_that_survive_the_delete_abort(tmp_path, monkeypatch):
    store = Store(local_root=str(tmp_path))
    path = tmp_path / "bucket/fs/tgt/data/a.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    monkeypatch.setattr(Store, "delete_many", lambda self, uris: None)  # a writer puts it back
    with pytest.raises(Aborted, match="1 offline objects of tgt are still under"):
        delete_offline(target(), store)
