"""Shared fixtures: a real Kafka broker for the session (or the one KAFKA_BOOTSTRAP_SERVERS names).

The broker is started from the Maven-fetched jars on free loopback ports with a temporary
data directory, and stopped at the end. With BAOTUAN_TEST_DOCKER=1 (a machine with a Docker
engine) pytest-docker brings up deploy/docker-compose.yml's Kafka instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime.local_kafka import PROJECT_ROOT, LocalBroker, broker_answers, free_port


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

