"""`make package`: the deployable artifacts in dist/, built with Python 3.11 and pip only (no Java,
no test tools, no project .venv).

- fsmigrate-<version>-py3-none-any.whl
- fsmigrate.zip: the package plus pure-Python PyYAML, for spark-submit --py-files and Glue
  --extra-py-files (pyarrow is native code and cannot be imported from a zip: Glue 5.0 ships
  one; elsewhere use the packed environment);
- migrate.py: the job script;
- fsmigrate-env.tar.gz: a packed Python 3.11 environment (venv-pack) holding everything the job
  imports except pyspark (the cluster's), with its own interpreter and standard library, for
  EMR Serverless `spark.archives=...#environment` and EMR `--archives`. Its interpreter and
  extension modules come from the build machine: build on Amazon Linux 2023 (or a Linux with
  glibc <= 2.34) for EMR.
"""

from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZIP_NAME = "fsmigrate.zip"
ENV_NAME = "fsmigrate-env.tar.gz"
PACKAGING_TOOLS = ("venv-pack==0.2.0",)


def run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True)


def runtime_requirements() -> list[str]:
    """setup.cfg's install_requires without pyspark (the cluster provides Spark)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].strip().splitlines()
    return [r.strip() for r in lines if r.strip() and not r.strip().startswith("pyspark")]


def pip(*args: str | Path, env: dict[str, str] | None = None) -> None:
    """This interpreter's pip (venvs are made without their own: ensurepip is slow)."""
    subprocess.run([sys.executable, "-m", "pip", *map(str, args)], check=True,
                   env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore", **(env or {})})


def install_tools(tools: Path) -> dict[str, str]:
    """setuptools (to build the wheel) and venv-pack, in a folder of their own: not in the
    project's .venv, not in the runtime dependencies. Returns the environment that sees them."""
    pip("install", "--quiet", "--upgrade", "--target", tools, "setuptools>=68", "wheel",
        *PACKAGING_TOOLS)
    return {"PYTHONPATH": str(tools)}


def build_wheel(tools_env: dict[str, str], dist: Path) -> Path:
    pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, ROOT, env=tools_env)
    (wheel,) = dist.glob("fsmigrate-*.whl")
    return wheel


def site_packages(env: Path) -> Path:
    (found,) = env.glob("lib/python3.*/site-packages")
    return found


def build_zip(env: Path, dist: Path) -> Path:
    """Our package and PyYAML's pure-Python modules (its C speedup is optional)."""
    path = dist / ZIP_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for base, package in ((ROOT / "job", "fsmigrate"), (site_packages(env), "yaml")):
            for file in sorted((base / package).rglob("*.py")):
                zf.write(file, file.relative_to(base).as_posix())
    return path


def copy_stdlib(env: Path) -> None:
    """The interpreter's standard library into the environment, so that the unpacked archive
    runs where no Python 3.11 is installed (EMR Serverless), as AWS's own recipe does."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dest = env / "lib" / stdlib.name
    skip = shutil.ignore_patterns("site-packages", "dist-packages", "__pycache__", "test",
                                  "idlelib", "tkinter", "turtledemo", "ensurepip")
    shutil.copytree(stdlib, dest, ignore=skip, dirs_exist_ok=True)
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):  # the interpreter needs libpython3.11.so
        name = sysconfig.get_config_var("INSTSONAME")
        shutil.copy2(Path(sysconfig.get_config_var("LIBDIR")) / name, env / "lib" / name)
    dynload = Path(sysconfig.get_config_var("DESTSHARED") or "")
    if dynload.is_dir() and not str(dynload).startswith(str(stdlib)):
        shutil.copytree(dynload, dest / "lib-dynload", dirs_exist_ok=True)


def build_env(tools: Path, tools_env: dict[str, str], wheel: Path, build: Path,
              dist: Path) -> tuple[Path, Path]:
    env = build / "env"
    run(sys.executable, "-m", "venv", "--clear", "--copies", "--without-pip", env)
    python = env / "bin" / "python"
    pip("--python", python, "install", "--quiet", *runtime_requirements())
    pip("--python", python, "install", "--quiet", "--no-deps", wheel)
    copy_stdlib(env)
    archive = dist / ENV_NAME
    sys.path.insert(0, str(tools))
    import venv_pack

    venv_pack.pack(prefix=str(env), output=str(archive))
    archive.chmod(0o644)  # venv-pack writes it owner-only
    return env, archive


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dist", default=str(ROOT / "dist"), help="output folder (emptied first)")
    p.add_argument("--build", default=str(ROOT / "build" / "package"), help="scratch folder")
    ns = p.parse_args(argv)
    if sys.version_info[:2] != (3, 11):
        print(f"error: build the package with Python 3.11 (the job's), not "
              f"{sys.version.split()[0]}", file=sys.stderr)
        return 2
    dist, build = Path(ns.dist).resolve(), Path(ns.build).resolve()
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    build.mkdir(parents=True, exist_ok=True)
    tools = build / "tools"
    tools_env = install_tools(tools)
    wheel = build_wheel(tools_env, dist)
    env, archive = build_env(tools, tools_env, wheel, build, dist)
    zip_path = build_zip(env, dist)
    shutil.copy2(ROOT / "job" / "migrate.py", dist / "migrate.py")
    for path in (wheel, zip_path, dist / "migrate.py", archive):
        print(f"{path.relative_to(dist.parent) if dist.parent in path.parents else path}  "
              f"{os.path.getsize(path) / 1e6:,.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
