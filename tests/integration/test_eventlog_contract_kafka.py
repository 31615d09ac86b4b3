"""The event-log contract (tests/eventlog_contract.py) on a real broker: the Kafka adapter."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from eventlog_contract import CONTRACT

from services.runtime.eventlog import EventLog, KafkaLog

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def kafka_log(kafka_bootstrap: str) -> Iterator[KafkaLog]:
    log = KafkaLog(kafka_bootstrap, client_id="baotuan-contract", timeout_s=15,
                   transactional_id=f"baotuan-contract-{uuid.uuid4().hex[:8]}")
    log.ensure_topics(60)
    yield log
    log.close()


@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
def test_the_kafka_log_keeps_the_contract(kafka_log: KafkaLog, check: Callable[[EventLog], None]) -> None:
    check(kafka_log)
