"""Shared fixtures: a real Kafka broker for the session (or the one KAFKA_BOOTSTRAP_SERVERS names).

The broker is started from the Maven-fetched jars on free loopback ports with a temporary
data directory, and stopped at the end. With BAOTUAN_TEST_DOCKER=1 (a machine with a Docker
engine) pytest-docker brings up deploy/docker-compose.yml's Kafka instead.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from werkzeug.serving import BaseWSGIServer, make_server

from services.contracts.anchoring import RECEIPT_FIELDS
from services.devtools.broker import LocalBroker, broker_answers, free_port
from services.runtime.auth import add_token
from services.runtime.config import PROJECT_ROOT, Settings
from services.runtime.eventlog import EventLog, InMemoryLog

# Two shared cores and a broker beside the tests: no per-example deadline, fixed example counts.
hypothesis_settings.register_profile("baotuan", deadline=None, print_blob=True)
hypothesis_settings.load_profile("baotuan")


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(PROJECT_ROOT / "deploy" / "docker-compose.yml")


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real broker for this test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    if os.environ.get("BAOTUAN_TEST_DOCKER") == "1":
        docker_services = request.getfixturevalue("docker_services")
        bootstrap = "127.0.0.1:9092"
        docker_services.wait_until_responsive(timeout=90.0, pause=1.0, check=lambda: broker_answers(bootstrap))
        yield bootstrap
        return
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), free_port(), free_port())
    seconds = broker.start()
    print(f"\nlocal Kafka broker up on {broker.bootstrap} in {seconds:.1f}s")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test's own (an empty log), for tests that restart or read the whole log."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("needs a broker the test can start and stop itself")
    broker = LocalBroker(tmp_path / "kafka", free_port(), free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for ids, so tests sharing the session broker never collide."""
    return uuid.uuid4().hex[:8]



@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for in-process services of one test: the session broker, a private data dir and tokens."""
    return Settings(bootstrap_servers=kafka_bootstrap, data_dir=tmp_path / "data",
                    tokens_file=tmp_path / "tokens.json", request_timeout_s=15)


@pytest.fixture
def memory_log() -> InMemoryLog:
    """An in-memory event log (services.runtime.eventlog): Kafka's offsets and partitioning, folded at
    once; share it between the apps of one test (``running(create_app, settings, log=memory_log)``)."""
    return InMemoryLog()


@pytest.fixture
def memory_settings(tmp_path: Path) -> Settings:
    """Settings for in-process services on the in-memory log: no broker, a private data dir and tokens."""
    return Settings(bootstrap_servers="in-memory", data_dir=tmp_path / "data", tokens_file=tmp_path / "tokens.json",
                    request_timeout_s=5)


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    """Make a bearer token: ``token("accountant", ["jinqing-lianmeng"])`` (stored hashed in the token file)."""
    counter = iter(range(1_000_000))

    def make(role: str, scope: Sequence[str] = ()) -> str:
        assert settings.tokens_file is not None
        return add_token(settings.tokens_file, name=f"{role}-{next(counter)}", role=role, scope=scope)

    return make


@contextmanager
def running(create_app: Callable[..., Flask], settings: Settings, log: EventLog | None = None) -> Iterator[FlaskClient]:
    """Start a service app in-process (its follower of the log included); stop it afterwards.
    ``log``: an in-memory log (the ``memory_log`` fixture) instead of the broker of ``settings``."""
    app = create_app(settings) if log is None else create_app(settings, log=log)
    try:
        yield app.test_client()
    finally:
        service = app.extensions.get("baotuan_service")
        if service is not None:
            service.stop()


def without_receipts(body: Any) -> Any:
    """A write's JSON answer without its ``receipts``, after checking they are there and well formed
    (one per event written; a write that wrote nothing has an empty list)."""
    assert isinstance(body, dict) and "receipts" in body, body
    receipts = body.pop("receipts")
    assert isinstance(receipts, list)
    for receipt in receipts:
        assert sorted(receipt) == sorted(RECEIPT_FIELDS), receipt
    return body


class Server:
    """A WSGI app (a service's, or the web page's) served on a free loopback port from a background thread;
    ``stop`` also stops the app's event service."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"http-{app.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        service = self.app.extensions.get("baotuan_service")
        if service is not None:
            service.stop()


def bearer(tok: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}", **extra}


def kept_token(settings: Settings, tokens: dict[str, str], role: str, *scope: str) -> str:
    """The bearer token of ``role`` over ``scope``: made once (stored hashed), then kept in ``tokens``."""
    key = f"{role}:{','.join(scope)}"
    if key not in tokens:
        assert settings.tokens_file is not None
        tokens[key] = add_token(settings.tokens_file, name=f"{role}-{len(tokens)}", role=role, scope=scope)
    return tokens[key]


def load_example_subscriber(module_name: str = "baotuan_example_subscriber") -> ModuleType:
    """``examples/subscriber.py`` as a module (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location(module_name, PROJECT_ROOT / "examples" / "subscriber.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def no_fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    """The fold of a stand-in writer: it only publishes and keeps no state beyond the chain heads the runtime keeps."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fault tests SIGKILL servers and brokers mid-request on purpose: the clients' sockets to the
    killed peers are left for the garbage collector, which may finalize them at any later point.
    There (and only there) an unclosed-socket ResourceWarning is the expected debris of the fault."""
    for item in items:
        if "faults" in item.path.parts:
            item.add_marker(pytest.mark.filterwarnings("ignore::ResourceWarning"))


@pytest.fixture(autouse=True)
def _collect_debris_of_killed_peers(request: pytest.FixtureRequest) -> Iterator[None]:
    """...and collected before the fault test ends, so no later test meets them."""
    yield
    if "faults" in request.node.path.parts:
        import gc
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def child_processes() -> set[int]:
    """The ids of the processes whose parent is this one (those the test session itself started included)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found
