"""The event-log contract (services.runtime.eventlog): one set of test bodies, run on the in-memory
log in ``tests/unit/runtime/test_eventlog_contract.py`` and on a real broker in
``tests/integration/test_eventlog_contract_kafka.py``. Each body takes a log whose topics exist
(and may already hold records of other tests: every check is relative to the end offsets before)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

from services.contracts import envelope as env
from services.contracts.topics import DEADLETTER, LEDGER_ENTRIES
from services.runtime.eventlog import EventLog, LogRecord, OutRecord, partition_for
from services.runtime.projector import IDEMPOTENCY_HEADER, header

TOPIC = LEDGER_ENTRIES


def records_of(subject: str, count: int, *, idempotency: bytes | None = None) -> list[OutRecord]:
    """``count`` sealed PeriodClosed envelopes of one stream, chained; the last carries ``idempotency``."""
    out = []
    head = env.ChainHead()
    for n in range(count):
        sealed, value = env.seal_encoded(env.new_envelope(
            event_type="PeriodClosed", version=1, source="ledger", subject=subject,
            data={"collective_id": subject, "period": f"2025-{n % 12 + 1:02d}"}, actor="test:contract"), head)
        head = env.ChainHead(sealed["seq"], sealed["hash"])
        headers = [(IDEMPOTENCY_HEADER, idempotency)] if idempotency is not None and n == count - 1 else []
        out.append(OutRecord(TOPIC, sealed, value, headers))
    return out


class Collector:
    """A follower's deliveries, kept in order, and the positions it advanced to past markers."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.batches: list[tuple[str, int, list[LogRecord]]] = []
        self.advanced: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        with self.lock:
            self.advanced[(topic, partition)] = next_offset

    def reached(self, topic: str, partition: int) -> int:
        """The follower's position: past its last record, or past the marker it advanced over."""
        with self.lock:
            last = max((r.offset + 1 for r in self.records if (r.topic, r.partition) == (topic, partition)), default=0)
            return max(last, self.advanced.get((topic, partition), 0))

    def __call__(self, topic: str, partition: int, records: Sequence[LogRecord]) -> None:
        with self.lock:
            self.batches.append((topic, partition, list(records)))
            self.records.extend(records)

    def wait_for(self, predicate: Callable[[list[LogRecord]], bool], timeout: float = 30.0) -> list[LogRecord]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                current = list(self.records)
            if predicate(current) or time.monotonic() > deadline:
                return current
            time.sleep(0.05)


def subject() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


def end_offset_once_settled(log: EventLog, where: tuple[str, int], at_least: int) -> int:
    """The end offset of ``where`` once it reached ``at_least`` (Kafka writes a transaction's markers just
    after the commit returns), or what it is after 30 s."""
    deadline = time.monotonic() + 30
    while (end := log.end_offsets([where[0]], 10)[where]) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return end


def check_acks_are_consecutive_offsets_of_the_key_partition(log: EventLog) -> None:
    who = subject()
    before = log.end_offsets([TOPIC], 10)
    acks = log.publish(records_of(who, 5))
    partition = partition_for(who.encode(), len(before))
    assert [a.topic for a in acks] == [TOPIC] * 5
    assert {a.partition for a in acks} == {partition}, "one key, one partition: Kafka's default partitioner's"
    start = acks[0].offset
    assert start >= before[(TOPIC, partition)]
    assert [a.offset for a in acks] == list(range(start, start + 5))
    end = end_offset_once_settled(log, (TOPIC, partition), start + 6)
    assert end == start + 6, "one publish is one transaction: its marker follows its records"


def check_a_follower_gets_every_record_from_its_position_with_key_value_and_headers(log: EventLog) -> None:
    who = subject()
    records = records_of(who, 4, idempotency=b'{"key":"k"}')
    acks = log.publish(records)
    partition = acks[0].partition
    start = acks[1].offset  # resume in the middle: the first record was applied before
    got = Collector()
    follower = log.follow("contract", [TOPIC], lambda t, p: start if p == partition else 10**12, got, got.advance)
    try:
        mine = got.wait_for(lambda rs: len([r for r in rs if r.key == who.encode()]) >= 3)
    finally:
        follower.stop()
        follower.join(10)
    mine = [r for r in mine if r.key == who.encode()]
    assert [(r.topic, r.partition, r.offset) for r in mine] == [(a.topic, a.partition, a.offset) for a in acks[1:]]
    assert [r.value for r in mine] == [rec.value for rec in records[1:]]
    assert header(mine[-1].headers, IDEMPOTENCY_HEADER) == b'{"key":"k"}'
    assert header(mine[0].headers, IDEMPOTENCY_HEADER) is None
    assert header(mine[0].headers, "ce_type") == b"PeriodClosed"
    assert all(b == sorted(b, key=lambda r: r.offset) for _, _, b in [(t, p, rs) for t, p, rs in got.batches])


def check_a_follower_gets_records_published_after_it_started(log: EventLog) -> None:
    who = subject()
    ends = log.end_offsets([TOPIC], 10)
    got = Collector()
    follower = log.follow("contract", [TOPIC], lambda t, p: ends[(t, p)], got, got.advance)
    try:
        follower.connected.wait(30)
        time.sleep(0.3)  # the Kafka follower has assigned and seeked
        acks = log.publish(records_of(who, 3))
        mine = got.wait_for(lambda rs: len([r for r in rs if r.key == who.encode()]) >= 3)
    finally:
        follower.stop()
        follower.join(10)
    assert [r.offset for r in mine if r.key == who.encode()] == [a.offset for a in acks]


def check_a_raw_record_is_appended_and_delivered(log: EventLog) -> None:
    key = subject().encode()
    ack = log.send_raw(DEADLETTER, key, b'{"reason":"contract"}', [("ce_type", b"DeadLetter")])
    assert ack.topic == DEADLETTER and ack.partition == partition_for(key, len(log.end_offsets([DEADLETTER], 10)))
    got = Collector()
    follower = log.follow("contract", [DEADLETTER], lambda t, p: ack.offset if p == ack.partition else 10**12, got,
                          got.advance)
    try:
        mine = got.wait_for(lambda rs: any(r.key == key for r in rs))
    finally:
        follower.stop()
        follower.join(10)
    [record] = [r for r in mine if r.key == key]
    assert record.value == b'{"reason":"contract"}' and record.offset == ack.offset


def check_a_followers_position_reaches_the_end_offset_past_the_marker(log: EventLog) -> None:
    who = subject()
    ends = log.end_offsets([TOPIC], 10)
    got = Collector()
    follower = log.follow("contract", [TOPIC], lambda t, p: ends[(t, p)], got, got.advance)
    try:
        follower.connected.wait(30)
        time.sleep(0.3)
        acks = log.publish(records_of(who, 2))
        where = (TOPIC, acks[0].partition)
        end = end_offset_once_settled(log, where, acks[-1].offset + 2)
        deadline = time.monotonic() + 30
        while got.reached(*where) < end and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        follower.stop()
        follower.join(10)
    assert end == acks[-1].offset + 2
    assert got.reached(*where) == end, "a follower gets past the transaction marker"


CONTRACT = [
    check_a_followers_position_reaches_the_end_offset_past_the_marker,
    check_acks_are_consecutive_offsets_of_the_key_partition,
    check_a_follower_gets_every_record_from_its_position_with_key_value_and_headers,
    check_a_follower_gets_records_published_after_it_started,
    check_a_raw_record_is_appended_and_delivered,
]
