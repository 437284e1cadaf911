"""Session fixtures shared by every test: one local SparkSession, one emulator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

# boto3 needs credentials to sign; the emulator only checks that a signature is present.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
# Spark's Python workers must be this interpreter (it has fsmigrate, boto3 and pyarrow).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from fsmigrate.cli import sql_settings
    from jobtools import TEST_JIT
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("fsmigrate-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config(map=sql_settings())  # as the job runs
        .config("spark.driver.extraJavaOptions", f"-Duser.timezone=UTC {TEST_JIT}")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# ---- local Feature Store emulator ----------------------------------------------------------

@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """One emulator process for the whole session (scripts/local_feature_store.py)."""
    import emulator_process

    emu = emulator_process.start(tmp_path_factory.mktemp("emulator-data"))
    yield emu
    emu.stop()


@pytest.fixture
def clean_emulator(emulator):
    """The session emulator after a reset: no groups, records, files, faults or stats."""
    emulator.reset()
    yield emulator
    emulator.faults()


@pytest.fixture
def faults(emulator):
    """Set emulator faults for one test (``faults(throttle_tps=4)``); cleared afterwards
    whatever happens."""
    emulator.faults()
    yield emulator.faults
    emulator.faults()


@pytest.fixture(scope="session")
def boto_session():
    """One boto3 session, so service models are loaded once (a new one costs ~0.25 s)."""
    import boto3

    return boto3.session.Session(region_name="us-east-1")


@pytest.fixture
def sm(emulator, boto_session):
    """boto3 `sagemaker` (control plane) client pointed at the emulator."""
    return boto_session.client("sagemaker", region_name="us-east-1", endpoint_url=emulator.url)


@pytest.fixture
def fsr(emulator, boto_session):
    """boto3 `sagemaker-featurestore-runtime` client pointed at the emulator."""
    return boto_session.client(
        "sagemaker-featurestore-runtime", region_name="us-east-1", endpoint_url=emulator.url
    )


@pytest.fixture(scope="session")
def moto_s3():
    """A real S3 API: moto's server on a free loopback port. Yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def conf(tmp_path):
    """Write a YAML conf into tmp_path and return its path."""
    counter = iter(range(1000))

    def write(text: str) -> str:
        path = tmp_path / f"conf-{next(counter)}.yaml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write
