"""The event-log contract on the in-memory log (the same bodies run on Kafka in tests/integration), and
what only the in-memory log promises: followers folded before ``publish`` returns, and outages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eventlog_contract import CONTRACT, Collector, records_of, subject

from services.contracts.topics import LEDGER_ENTRIES
from services.runtime.eventlog import EventLog, InMemoryLog
from services.runtime.kafka_io import BrokerUnavailable


@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
def test_the_in_memory_log_keeps_the_contract(check: Callable[[EventLog], None]) -> None:
    log = InMemoryLog()
    log.ensure_topics()
    log.publish(records_of(subject(), 7))  # earlier records of someone else
    check(log)


def test_followers_have_folded_a_publish_before_it_returns() -> None:
    log = InMemoryLog()
    log.ensure_topics()
    got = Collector()
    log.follow("a", [LEDGER_ENTRIES], lambda t, p: 0, got, got.advance)
    acks = log.publish(records_of(subject(), 3))
    assert [(r.partition, r.offset) for r in got.records] == [(a.partition, a.offset) for a in acks]


def test_an_outage_refuses_every_call_and_appends_nothing() -> None:
    log = InMemoryLog()
    log.ensure_topics()
    before = log.end_offsets([LEDGER_ENTRIES])
    with log.outage(), pytest.raises(BrokerUnavailable):
        log.publish(records_of(subject(), 2))
    assert log.end_offsets([LEDGER_ENTRIES]) == before
