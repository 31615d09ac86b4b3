"""KafkaFollower.committed: the writer's own committed records are delivered at once only when they are exactly
the next ones the follower would deliver; anything else is left to its fetch (no broker needed: the follower's
thread is not started)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.runtime.eventlog import LogRecord
from services.runtime.kafka_io import KafkaFollower

TOPIC = "baotuan.ledger.entries.v1"


def follower(delivered: list[tuple[str, int, list[int]]], *, fail: bool = False) -> KafkaFollower:
    def deliver(topic: str, partition: int, records: Sequence[Any]) -> None:
        if fail:
            raise RuntimeError("the store is closing")
        delivered.append((topic, partition, [r.offset for r in records]))

    return KafkaFollower(name="test", bootstrap="127.0.0.1:1", topics=[TOPIC], position=lambda t, p: 0,
                         deliver=deliver, advance=lambda t, p, o: None)


def records(partition: int, *offsets: int) -> list[LogRecord]:
    return [LogRecord(TOPIC, partition, o, b"k", b"{}", []) for o in offsets]


def test_the_next_records_are_delivered_at_once_and_the_position_moves_past_them() -> None:
    got: list[tuple[str, int, list[int]]] = []
    f = follower(got)
    f._next = {(TOPIC, 0): 10, (TOPIC, 1): 4}
    assert f.committed(TOPIC, 0, records(0, 10, 11, 12))
    assert got == [(TOPIC, 0, [10, 11, 12])]
    assert f._next == {(TOPIC, 0): 13, (TOPIC, 1): 4}
    # Its commit marker is at 13 (the fetch passes it later): the same producer's next transaction may start
    # right after it, at 14 ...
    assert f.committed(TOPIC, 0, records(0, 14, 15))
    assert got == [(TOPIC, 0, [10, 11, 12]), (TOPIC, 0, [14, 15])]
    assert f._next == {(TOPIC, 0): 16, (TOPIC, 1): 4}
    # ... but two offsets on, one of them could be another writer's record: the fetch's to deliver.
    assert not f.committed(TOPIC, 0, records(0, 18))
    assert not f.committed(TOPIC, 1, records(1, 5)), "no records of its own before: offset 4 may be a record"
    assert len(got) == 2


def test_after_a_fetch_delivered_there_only_the_exact_next_offset_is_handed_over() -> None:
    got: list[tuple[str, int, list[int]]] = []
    f = follower(got)
    f._next = {(TOPIC, 0): 10}
    assert f.committed(TOPIC, 0, records(0, 10))
    f._next[(TOPIC, 0)], f._own_marker = 12, {}  # what the consumer loop does when its fetch delivers or advances
    assert not f.committed(TOPIC, 0, records(0, 13))
    assert f.committed(TOPIC, 0, records(0, 12))


def test_records_that_are_not_exactly_the_next_are_left_to_the_fetch() -> None:
    got: list[tuple[str, int, list[int]]] = []
    f = follower(got)
    assert not f.committed(TOPIC, 0, records(0, 0)), "not assigned yet: nothing is known of the position"
    f._next = {(TOPIC, 0): 10}
    assert not f.committed(TOPIC, 0, records(0, 12, 13)), "records before them are not delivered yet"
    assert not f.committed(TOPIC, 0, records(0, 8, 9)), "delivered already"
    assert not f.committed(TOPIC, 0, records(0, 10, 12)), "another writer's record in between"
    assert not f.committed(TOPIC, 2, records(2, 0)), "a partition this follower does not read"
    assert not f.committed(TOPIC, 0, [])
    f.stop()
    assert not f.committed(TOPIC, 0, records(0, 10)), "stopped"
    assert got == []
    assert f._next == {(TOPIC, 0): 10}


def test_a_failed_delivery_leaves_the_records_to_the_fetch() -> None:
    got: list[tuple[str, int, list[int]]] = []
    f = follower(got, fail=True)
    f._next = {(TOPIC, 0): 10}
    assert not f.committed(TOPIC, 0, records(0, 10, 11))
    assert f._next == {(TOPIC, 0): 10}
