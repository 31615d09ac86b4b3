"""The audit's reader processes on a real broker: a replay stopped early (an audit that failed on the way, a
clerk's Ctrl-C) stops every reader process it started."""

from __future__ import annotations

import time

import pytest
from conftest import child_processes
from kafka import KafkaProducer

from services.audit.sources.kafka import KafkaSource
from services.audit.sources.reader import read_in_other_processes
from services.contracts.topics import RENTALS
from services.runtime.kafka_io import end_offsets, ensure_topics

pytestmark = pytest.mark.kafka


def test_readers_of_a_replay_stopped_early_are_stopped(kafka_bootstrap: str) -> None:
    ensure_topics(kafka_bootstrap, timeout_s=60)
    start = end_offsets(kafka_bootstrap, [RENTALS])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for n in range(400):  # not envelopes: the readers judge them so, which is all this needs
            producer.send(RENTALS, value=b"x" * 100, partition=n % 2)
        producer.flush(30)
    finally:
        producer.close()
    end = end_offsets(kafka_bootstrap, [RENTALS])
    # Each reader is told of records past the end: after the first, it waits for more (a log still being
    # read), so both are running when the caller stops.
    plan = [(RENTALS, p, start[(RENTALS, p)], end[(RENTALS, p)] + 1000) for p in (0, 1)]
    before = child_processes()
    began = time.monotonic()
    batches = read_in_other_processes(KafkaSource(kafka_bootstrap).config(), plan, 60.0, readers=2)
    first = next(batches)
    assert first and all(item[6] is not None for item in first)  # judged: no envelope
    deadline = time.monotonic() + 30
    while len(child_processes() - before) < 2:  # one reader per partition
        assert time.monotonic() < deadline, "two reader processes did not start"
        time.sleep(0.05)
    batches.close()  # the caller stops after the first batch
    assert child_processes() <= before, "a reader process was left running"
    assert time.monotonic() - began < 30  # at once, not after the readers' idle timeout (60 s)
