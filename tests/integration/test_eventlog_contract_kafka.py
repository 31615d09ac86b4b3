"""The event-log contract (tests/eventlog_contract.py) on a real broker: the Kafka adapter."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from eventlog_contract import CONTRACT, TOPIC, records_of, subject
from kafka_helpers import read_records

from services.runtime.eventlog import EventLog, KafkaLog
from services.runtime.kafka_io import EventProducer, record_key

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


def test_recover_writer_settles_the_transaction_an_earlier_writer_left_open(kafka_bootstrap: str) -> None:
    """The broker, not our memory, settles a transaction whose end we never heard: a new writer with the same
    transactional id returns from ``recover_writer`` only once the earlier one's transaction is finished (here
    aborted: it never committed); from then on the end offsets lie past it. (A commit that reached the
    coordinator is completed the same way; tests/faults/test_broker_crash.py meets that case.)"""
    tid = f"baotuan-doubt-{uuid.uuid4().hex[:8]}"
    name = subject()
    before = KafkaLog(kafka_bootstrap, client_id="baotuan-doubt", timeout_s=15, transactional_id=tid)
    producer = EventProducer(kafka_bootstrap, "baotuan-doubt", timeout_s=15, transactional_id=tid)
    try:
        start = before.end_offsets([TOPIC], 15)
        producer._producer.begin_transaction()
        for record in records_of(name, 2):
            producer._producer.send(record.topic, key=record_key(record.envelope), value=record.value)
        producer._producer.flush(timeout=15)
        producer.abort()  # gone without a word: its transaction stays open on the broker
        held = before.end_offsets([TOPIC], 15)
        assert held == start  # the last stable offset stops before the open transaction
        after = KafkaLog(kafka_bootstrap, client_id="baotuan-doubt", timeout_s=15, transactional_id=tid)
        try:
            after.recover_writer(15)
            settled = after.end_offsets([TOPIC], 15)
            assert sum(settled.values()) > sum(start.values())  # past the aborted records and their marker
            assert not [r for r in read_records(kafka_bootstrap, TOPIC, key=name)]  # none of them visible
        finally:
            after.close()
    finally:
        before.close()
