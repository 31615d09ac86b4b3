"""A KafkaLog's followers get the records of its committed publishes at once, in the publishing thread (no wait
for the markers and the next fetch), each record once and in offset order; when they are not exactly the next
records (another writer's come first), the fetch delivers them as before."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import pytest
from eventlog_contract import TOPIC, end_offset_once_settled, records_of, subject

from services.runtime.eventlog import KafkaLog, LogRecord
from services.runtime.kafka_io import KafkaFollower

pytestmark = pytest.mark.kafka


class Deliveries:
    def __init__(self) -> None:
        self.got: list[tuple[int, int, str]] = []  # (partition, offset, thread name)
        self.advanced: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()
        self.hold: threading.Event | None = None  # while set up, the follower's thread waits in its delivery
        self.held_key: bytes | None = None

    def __call__(self, topic: str, partition: int, records: Sequence[LogRecord]) -> None:
        if self.hold is not None and any(r.key == self.held_key for r in records):
            self.hold.wait(30)
        with self.lock:
            self.got += [(partition, r.offset, threading.current_thread().name) for r in records]

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        with self.lock:
            self.advanced[(topic, partition)] = next_offset

    def position(self, partition: int) -> int:
        with self.lock:
            last = max((o + 1 for p, o, _ in self.got if p == partition), default=0)
            return max(last, self.advanced.get((TOPIC, partition), 0))

    def wait(self, partition: int, end: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.position(partition) < end and time.monotonic() < deadline:
            time.sleep(0.02)


def kafka_log(bootstrap: str) -> KafkaLog:
    log = KafkaLog(bootstrap, client_id="baotuan-handover", timeout_s=15,
                   transactional_id=f"baotuan-handover-{uuid.uuid4().hex[:8]}")
    log.ensure_topics(60)
    return log


@pytest.fixture
def two_logs(kafka_bootstrap: str) -> Iterator[tuple[KafkaLog, KafkaLog]]:
    ours, theirs = kafka_log(kafka_bootstrap), kafka_log(kafka_bootstrap)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_caught_up_follower_gets_the_committed_records_before_publish_returns_each_once(
        two_logs: tuple[KafkaLog, KafkaLog]) -> None:
    log, _ = two_logs
    who = subject()
    ends = log.end_offsets([TOPIC], 10)
    got = Deliveries()
    follower = log.follow("handover", [TOPIC], lambda t, p: ends[(t, p)], got, got.advance)
    try:
        assert follower.connected.wait(30)
        partition = log.publish(records_of(who, 1))[0].partition
        got.wait(partition, end_offset_once_settled(log, (TOPIC, partition), ends[(TOPIC, partition)] + 2))
        with got.lock:
            got.got.clear()
        publisher = threading.current_thread().name
        first = log.publish(records_of(who, 3))
        delivered_at_return = list(got.got)
        second = log.publish(records_of(who, 2))  # right after: its first offset is one past the first's marker
        delivered_at_second_return = list(got.got)
        end = end_offset_once_settled(log, (TOPIC, partition), second[-1].offset + 2)
        got.wait(partition, end)
        time.sleep(0.5)  # the fetch has seen them all by now (and must not deliver them again)
    finally:
        follower.stop()
        follower.join(10)
    assert delivered_at_return == [(partition, a.offset, publisher) for a in first]
    assert delivered_at_second_return == [(partition, a.offset, publisher) for a in [*first, *second]]
    assert got.got == delivered_at_second_return, "each record once, in offset order"
    assert got.position(partition) == end == second[-1].offset + 2, "the fetch passed the last marker"


def test_records_behind_another_writers_are_left_to_the_fetch_in_order(two_logs: tuple[KafkaLog, KafkaLog]) -> None:
    log, other = two_logs
    who, held = subject(), subject()
    ends = log.end_offsets([TOPIC], 10)
    got = Deliveries()
    got.hold, got.held_key = threading.Event(), held.encode()
    follower = log.follow("handover", [TOPIC], lambda t, p: ends[(t, p)], got, got.advance)
    assert isinstance(follower, KafkaFollower)
    try:
        assert follower.connected.wait(30)
        first = other.publish(records_of(held, 1))  # another producer (e.g. another instance) writes ...
        deadline = time.monotonic() + 30
        while follower._delivering.acquire(blocking=False):  # ... and the follower's thread is delivering it
            follower._delivering.release()
            assert time.monotonic() < deadline, "the follower did not fetch the other writer's record"
            time.sleep(0.01)
        their = other.publish(records_of(who, 1))  # then it writes again; the follower has not fetched it yet
        threading.Timer(0.5, got.hold.set).start()
        ours = log.publish(records_of(who, 2))  # not the next records: left to the fetch
        partition = ours[0].partition
        end = end_offset_once_settled(log, (TOPIC, partition), ours[-1].offset + 2)
        got.wait(partition, end)
        time.sleep(0.5)
    finally:
        got.hold.set()
        follower.stop()
        follower.join(10)
    delivered = [(p, o) for p, o, _ in got.got if p == partition]
    assert delivered == [(a.partition, a.offset) for a in [*first, *their, *ours] if a.partition == partition], \
        "once each, in order"
    assert all(thread != threading.current_thread().name for _, _, thread in got.got), "the fetch delivered them"
