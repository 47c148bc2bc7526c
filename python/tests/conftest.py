"""Fixtures of the Python package's tests: the bundled example, catalogs, an S3 API server."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

import earthcatalog as ec
from earthcatalog import _native

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "data"
PEER_DIR = pathlib.Path(__file__).resolve().parent / "peer"
BIN_DIR = pathlib.Path(sys.executable).parent


def peer_python() -> str:
    """The interpreter of the venv with the Python earthcatalog tool, PyIceberg and moto."""
    peer = os.environ.get("EARTHCATALOG_PEER_PYTHON")
    if not peer or not pathlib.Path(peer).exists():
        pytest.skip("EARTHCATALOG_PEER_PYTHON (the Python tool's venv) is not set; scripts/test sets it")
    return peer


def run_peer(*args: str) -> str:
    """Run a peer script with the peer interpreter; its stdout."""
    out = subprocess.run([peer_python(), *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"peer failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def ingest_example(base: pathlib.Path, inventory: str = "inventory.csv") -> ec.EarthCatalog:
    """A catalog at ``base`` holding the bundled example (300 items, 479 rows)."""
    cat = ec.open(base=str(base))
    cat.ingest(str(EXAMPLE / inventory), items_root=str(EXAMPLE / "items"), progress=False)
    return cat


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> ec.EarthCatalog:
    """The bundled example ingested once per session (read-only tests)."""
    return ingest_example(tmp_path_factory.mktemp("example"))


@pytest.fixture
def fresh(tmp_path: pathlib.Path) -> ec.EarthCatalog:
    """The bundled example ingested into this test's own directory (tests that write)."""
    return ingest_example(tmp_path / "cat")


@pytest.fixture(autouse=True)
def _s3_from_environment() -> Iterator[None]:
    """S3 settings given by a test (``storage_options``) do not leak into the next test."""
    yield
    _native.configure_s3(None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    """A real S3 API server (moto) on 127.0.0.1; yields its endpoint URL."""
    server = pathlib.Path(peer_python()).parent / "moto_server"
    if not server.exists():
        pytest.skip("moto_server is not installed in the peer venv")
    port = _free_port()
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_bucket(endpoint: str, name: str) -> None:
    """Create a bucket on the S3 API server."""
    req = urllib.request.Request(f"{endpoint}/{name}", method="PUT")
    urllib.request.urlopen(req, timeout=10).read()


def s3_options(endpoint: str) -> dict[str, object]:
    """storage_options for the test server."""
    return {
        "endpoint": endpoint,
        "allow_http": True,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "region": "us-east-1",
    }


def copy_tree(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Replace ``dst`` with a copy of ``src``."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
