"""`make package` without Java, the test tools or the project's .venv: what lands in dist/."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from jobtools import ROOT

RUNTIME_PACKAGES = ("fsmigrate", "boto3", "botocore", "yaml", "pyarrow")


def test_make_package_builds_every_artifact(tmp_path):
    bare_path = tmp_path / "bin"  # PATH with neither java nor .venv: nothing but python3.11
    bare_path.mkdir()
    (bare_path / "python3.11").symlink_to(Path(sys._base_executable).resolve())
    dist = tmp_path / "dist"
    done = subprocess.run(
        ["make", "-C", str(ROOT), "package", f"DIST={dist}", f"PACKAGE_BUILD={tmp_path / 'b'}"],
        env={"PATH": str(bare_path), "HOME": str(Path.home())}, capture_output=True, text=True,
        timeout=1200, executable=shutil.which("make"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    names = sorted(p.name for p in dist.iterdir())
    assert names == ["fsmigrate-0.1.0-py3-none-any.whl", "fsmigrate-env.tar.gz",
                     "fsmigrate.zip", "migrate.py"]
    assert filecmp.cmp(dist / "migrate.py", ROOT / "job" / "migrate.py", shallow=False)

    modules = sorted(p.relative_to(ROOT / "job").as_posix()
                     for p in (ROOT / "job" / "fsmigrate").rglob("*.py"))
    with zipfile.ZipFile(dist / "fsmigrate-0.1.0-py3-none-any.whl") as wheel:
        assert set(modules) <= set(wheel.namelist())
        metadata = next(n for n in wheel.namelist() if n.endswith("METADATA"))
        assert "Requires-Dist: boto3>=1.44.8" in wheel.read(metadata).decode()

    with zipfile.ZipFile(dist / "fsmigrate.zip") as zf:
        listed = zf.namelist()
    assert set(modules) <= set(listed) and "yaml/__init__.py" in listed
    assert all(n.endswith(".py") for n in listed)  # nothing native: importable from a zip
    # -S: no site-packages, so yaml can only come from the zip, in pure Python.
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import yaml, fsmigrate.errors; "
             "assert yaml.__file__.startswith(sys.argv[1]) and not yaml.__with_libyaml__; "
             "print(yaml.safe_load('a: [1, 2]'))")
    ran = subprocess.run([sys.executable, "-S", "-c", probe, str(dist / "fsmigrate.zip")],
                         capture_output=True, text=True, timeout=60)
    assert ran.stdout.strip() == "{'a': [1, 2]}", ran.stderr

    with tarfile.open(dist / "fsmigrate-env.tar.gz") as tar:
        members = set(tar.getnames())
        env = tmp_path / "environment"
        tar.extractall(env, filter="tar")
    site = "lib/python3.11/site-packages"
    for package in RUNTIME_PACKAGES:
        assert f"{site}/{package}/__init__.py" in members, package
    assert not any(m.startswith(f"{site}/pyspark") for m in members)
    assert {"bin/python", "lib/python3.11/os.py", "lib/python3.11/json/__init__.py"} <= members
    check = ("import fsmigrate.cli, fsmigrate.preflight, yaml, pyarrow.parquet, boto3; "
             "ops = boto3.client('sagemaker-featurestore-runtime', region_name='us-east-1')"
             ".meta.service_model.operation_names; "
             "assert 'BatchWriteRecord' in ops and 'ListRecords' in ops; print('ok')")
    ran = subprocess.run([str(env / "bin" / "python"), "-c", check], capture_output=True,
                         text=True, timeout=120)
    assert ran.stdout.strip() == "ok", ran.stderr
