"""Shared test fixtures: no network beyond loopback, a temporary database per test, offline model hubs."""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# exported ONNX graphs of the tests' tiny models go to a temporary folder of this process, not the user's cache
# (set again for every test by _clean_env, which clears the other AIMUSIC_ variables); removed when this process
# ends (each xdist worker has its own): a run used to leave up to ~350 MB of graphs behind per process
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="aimusic-test-cache-")
atexit.register(shutil.rmtree, TEST_CACHE_DIR, ignore_errors=True)
os.environ.pop("AIMUSIC_DB", None)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: object) -> bool:
    if isinstance(address, str | bytes):  # unix socket
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> object:
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests must not touch the network (tried {address!r})")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests must not touch the network (tried {address!r})")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback connections are allowed, except in tests marked ``live``."""
    if request.node.get_closest_marker("live"):
        return
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("AIMUSIC_LIVE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="live API test: set AIMUSIC_LIVE_TESTS=1 and credentials to run it")
    for item in items:
        if item.get_closest_marker("live"):
            item.add_marker(skip)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.duckdb"


@pytest.fixture
def store(db_path: Path):
    from aimusic.store.db import Store

    return Store(db_path)


@pytest.fixture
def topics():
    from aimusic.core.topics import load_topics

    return load_topics()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's credentials or .env."""
    for name in list(os.environ):
        if name.startswith(("REDDIT_", "X_BEARER", "BLUESKY_", "MASTODON_", "AIMUSIC_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIMUSIC_CACHE_DIR", TEST_CACHE_DIR)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("aimusic.core.config.PROJECT_ENV_FILE", tmp_path / ".env")


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for flow tests (started once per session, ~8 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
