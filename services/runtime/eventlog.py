"""The event-log port: what a service needs of the log, and two adapters that keep one contract.

A service publishes records and follows topics through an ``EventLog``:

* ``KafkaLog`` — the system of record: kafka-python 3.x producer (acks=all, idempotent), a
  consumer thread per follower, end offsets from the broker.
* ``InMemoryLog`` — the same semantics in one process, for fast tests of the services' rules and
  refusals: records get offsets 0, 1, 2 … per partition; a key goes to the partition Kafka's
  default partitioner would choose (murmur2), so positions, offsets and acks are those Kafka
  would give; followers are folded *at once*, in the publishing thread, before ``publish``
  returns. One ``InMemoryLog`` may serve several services (the dividends service follows the
  ledger's and the rentals' topics). ``outage()`` makes it refuse like a broker that is down.

Both pass ``tests/unit/runtime/test_eventlog_contract.py`` (the in-memory one there, the Kafka one in
``tests/integration/test_eventlog_contract_kafka.py`` — the same test bodies).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

from kafka.partitioner.default import murmur2

from services.contracts.topics import TOPICS, partitions
from services.runtime.kafka_io import (
    Ack,
    BrokerUnavailable,
    EventProducer,
    Fence,
    KafkaFollower,
    OffsetsClient,
    OutRecord,
    ensure_topics,
    record_key,
)

__all__ = ["Ack", "BrokerUnavailable", "EventLog", "Follower", "InMemoryLog", "KafkaLog", "LogRecord", "OutRecord",
           "partition_for"]


class LogRecord(NamedTuple):
    """One record as a follower receives it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


#: ``deliver(topic, partition, records)``: a follower's handler of one partition's batch, in offset order.
Deliver = Callable[[str, int, Sequence[LogRecord]], None]
#: ``position(topic, partition)``: where a follower resumes (the next offset it has not applied).
Position = Callable[[str, int], int]
#: ``advance(topic, partition, next_offset)``: the follower has read the partition up to ``next_offset``, past
#: offsets that carry no record for it too (transaction markers, aborted records): its position moves there, and
#: what lies before it is readable to every reader.
Advance = Callable[[str, int, int], None]


class Follower(Protocol):
    """A running subscription: delivers every record of its topics from the follower's positions on."""

    connected: threading.Event
    last_error: str | None

    def lag(self) -> dict[str, int]: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class EventLog(Protocol):
    """What a service needs of the log."""

    #: Whether a publish's records are readable to every reader once ``publish`` returns. Kafka's are not: the
    #: coordinator answers the commit once it is decided and writes the markers that make the records readable
    #: (``read_committed``) right after; a writer then waits until its follower has read past them.
    readable_at_commit: bool

    def ensure_topics(self, timeout_s: float) -> None:
        """Create the topics of DESIGN §4 if missing."""

    def end_offsets(self, topics: Sequence[str], timeout_s: float) -> dict[tuple[str, int], int]:
        """The next offset to be written, per (topic, partition) of ``topics``."""

    def publish(self, records: Sequence[OutRecord]) -> list[Ack]:
        """Append ``records`` in order; return once every one is acknowledged (BrokerUnavailable if not)."""

    def send_raw(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Ack:
        """Append one record that is not an envelope (a dead letter)."""

    def reset_writer(self) -> None:
        """After a failed publish: nothing still in flight may reach the log later."""

    def recover_writer(self, timeout_s: float) -> None:
        """Before writing again after a failure: settle this writer's last transaction, whose commit may have
        reached the broker although its answer did not (an in-doubt commit). Once this returns it is committed
        or aborted for good, and ``end_offsets`` include it if committed (BrokerUnavailable if not settled
        within ``timeout_s``)."""

    def follow(self, name: str, topics: Sequence[str], position: Position, deliver: Deliver,
               advance: Advance) -> Follower:
        """Start delivering ``topics``' committed records to ``deliver`` from ``position`` on (``advance``
        past offsets that hold none)."""

    def close(self) -> None:
        """Release the clients (followers are stopped by their owner)."""


def partition_for(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner (Java's and kafka-python's) gives a keyed record."""
    return int(murmur2(key) & 0x7FFFFFFF) % count


# -- Kafka ---------------------------------------------------------------------------------------------------


class KafkaLog:
    """The log on a Kafka cluster (``bootstrap``; ``config`` carries SASL settings and the like)."""

    readable_at_commit = False

    def __init__(self, bootstrap: str, *, client_id: str, timeout_s: float = 10.0,
                 transactional_id: str | None = None, transaction_timeout_ms: int | None = None,
                 **config: Any) -> None:
        self.bootstrap = bootstrap
        #: The producer's own settings (the clients' shared ``config`` aside).
        self.producer_config: dict[str, Any] = (
            {} if transaction_timeout_ms is None else {"transaction_timeout_ms": transaction_timeout_ms})
        self.client_id = client_id
        self.transactional_id = transactional_id
        self.timeout_s = timeout_s
        self.config = config
        self._producer: EventProducer | None = None
        self._producer_lock = threading.Lock()
        self._offsets = OffsetsClient(bootstrap, **config)
        #: A grouped instance's fencing (DESIGN §12): each transaction commits its group offsets with it.
        self.fence: Fence | None = None

    def ensure_topics(self, timeout_s: float) -> None:
        ensure_topics(self.bootstrap, timeout_s=timeout_s, **self.config)

    def end_offsets(self, topics: Sequence[str], timeout_s: float) -> dict[tuple[str, int], int]:
        return self._offsets.end_offsets(topics, timeout_s=timeout_s)

    def _writer(self, init_timeout_s: float | None = None) -> EventProducer:
        with self._producer_lock:
            if self._producer is None:
                self._producer = EventProducer(self.bootstrap, self.client_id, timeout_s=self.timeout_s,
                                               init_timeout_s=init_timeout_s, transactional_id=self.transactional_id,
                                               **{**self.config, **self.producer_config})
            return self._producer

    def publish(self, records: Sequence[OutRecord]) -> list[Ack]:
        producer = self._writer()
        try:
            return producer.publish(records, self.fence)
        except BrokerUnavailable:
            self._discard(producer)
            raise

    def send_raw(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Ack:
        producer = self._writer()
        try:
            return producer.send_raw(topic, key, value, headers)
        except BrokerUnavailable:
            self._discard(producer)
            raise

    def _discard(self, failed: EventProducer) -> None:
        """Drop a producer that failed (nothing it still holds is sent); the next write makes a new one."""
        with self._producer_lock:
            if self._producer is failed:
                self._producer = None
        failed.abort()

    def reset_writer(self) -> None:
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.abort()

    def recover_writer(self, timeout_s: float) -> None:
        # A new producer's init_transactions (InitProducerId with our transactional id) returns only once the
        # coordinator has finished the previous incarnation's transaction: a prepared commit is completed (its
        # markers written, the last stable offset past it), one still open is aborted. A producer that did not
        # fail has nothing in doubt.
        self._writer(init_timeout_s=timeout_s)

    def follow(self, name: str, topics: Sequence[str], position: Position, deliver: Deliver,
               advance: Advance) -> Follower:
        follower = KafkaFollower(name=name, bootstrap=self.bootstrap, topics=topics, position=position,
                                 advance=advance,
                                 deliver=lambda tp, p, recs: deliver(tp, p, [
                                     LogRecord(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or []))
                                     for r in recs]),
                                 consumer_config=self.config)
        follower.start()
        return follower

    def close(self) -> None:
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()
        self._offsets.close()


# -- in memory -----------------------------------------------------------------------------------------------


class _MemoryFollower:
    def __init__(self, log: InMemoryLog, name: str, topics: Sequence[str], position: Position,
                 deliver: Deliver, advance: Advance) -> None:
        self.log = log
        self.name = name
        self.topics = list(topics)
        self.deliver = deliver
        self.advance = advance
        self.connected = threading.Event()
        self.connected.set()
        self.last_error: str | None = None
        self.stopped = False
        self.positions = {(t, p): position(t, p) for t in self.topics for p in range(log.partition_count(t))}
        self.lock = threading.RLock()  # a fold's dead letter is published from inside a delivery

    def catch_up(self) -> None:
        """Deliver whatever the log holds past this follower's positions (one batch per partition)."""
        with self.lock:
            if self.stopped:
                return
            for topic, partition in sorted(self.positions):
                records, end = self.log.read_to_end(topic, partition, self.positions[(topic, partition)])
                if records:
                    self.positions[(topic, partition)] = records[-1].offset + 1
                    self.deliver(topic, partition, records)
                if end > self.positions[(topic, partition)]:  # past the transaction marker
                    self.positions[(topic, partition)] = end
                    self.advance(topic, partition, end)

    def lag(self) -> dict[str, int]:
        return {}

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
        self.log.unfollow(self)

    def join(self, timeout: float | None = None) -> None:
        return None


class InMemoryLog:
    """Topics in a dict, with Kafka's offsets and partitioning; followers folded in the publishing thread.

    Like a transactional producer's, each ``publish`` is one transaction: its records and then one
    marker per partition it wrote (a marker takes an offset and is never delivered). ``in_doubt()`` makes
    a publish fail the way a broker crash during its commit does: its records stay in an open transaction
    that readers and ``end_offsets`` stop before, and it commits later (see there)."""

    readable_at_commit = True  # records and markers are appended together

    def __init__(self, partition_count: int | None = None) -> None:
        self._partitions = partition_count or partitions()
        self._topics: dict[str, list[list[LogRecord | None]]] = {}  # None: a transaction marker
        self._followers: list[_MemoryFollower] = []
        self._lock = threading.RLock()
        self._down: str | None = None
        self._doubt = False
        #: The open transaction of a publish that failed in doubt: where it starts in each partition it wrote.
        self._open: dict[tuple[str, int], int] = {}

    # administration
    def partition_count(self, topic: str) -> int:
        with self._lock:
            return len(self._topic(topic))

    def _topic(self, topic: str) -> list[list[LogRecord | None]]:
        found = self._topics.get(topic)
        if found is None:
            found = self._topics[topic] = [[] for _ in range(self._partitions)]
        return found

    def ensure_topics(self, timeout_s: float = 0.0) -> None:
        self._check()
        with self._lock:
            for name in TOPICS:
                self._topic(name)

    def end_offsets(self, topics: Sequence[str], timeout_s: float = 0.0) -> dict[tuple[str, int], int]:
        self._check()
        with self._lock:
            return {(t, p): self._stable(t, p) for t in topics for p in range(len(self._topic(t)))}

    def _stable(self, topic: str, partition: int) -> int:
        """The last stable offset: a read_committed reader's end (an open transaction's first offset)."""
        return self._open.get((topic, partition), len(self._topic(topic)[partition]))

    def read(self, topic: str, partition: int, start: int = 0) -> list[LogRecord]:
        """The records of ``topic[partition]`` from offset ``start`` on (tests read the log with this)."""
        return self.read_to_end(topic, partition, start)[0]

    def read_to_end(self, topic: str, partition: int, start: int = 0) -> tuple[list[LogRecord], int]:
        """The records of ``topic[partition]`` from ``start`` on, and the end offset (markers included)."""
        with self._lock:
            end = self._stable(topic, partition)
            return [r for r in self._topic(topic)[partition][start:end] if r is not None], max(start, end)

    def records(self, topic: str) -> list[LogRecord]:
        """Every committed record of ``topic``, partition by partition."""
        with self._lock:
            return [r for p, part in enumerate(self._topic(topic)) for r in part[:self._stable(topic, p)]
                    if r is not None]

    # faults
    @contextmanager
    def outage(self, reason: str = "broker down (in-memory outage)") -> Any:
        """Inside the block every call fails like a broker that is down; nothing is appended."""
        self._down = reason
        try:
            yield self
        finally:
            self._down = None

    @contextmanager
    def in_doubt(self) -> Any:
        """Inside the block a publish fails as when the broker crashed during its commit: the writer gets
        BrokerUnavailable, but the commit had reached the coordinator, which completes it — when the writer
        next initialises (``recover_writer``) or, at the latest, before the next publish is appended. Until
        then its records are an open transaction: not delivered, not in ``end_offsets``."""
        self._doubt = True
        try:
            yield self
        finally:
            self._doubt = False

    def recover_writer(self, timeout_s: float = 0.0) -> None:
        self._check()
        self._complete_open()

    def _complete_open(self) -> None:
        with self._lock:
            opened, self._open = self._open, {}
            self._commit(set(opened))
        self._fan_out({topic for topic, _ in opened})

    def _check(self) -> None:
        if self._down is not None:
            raise BrokerUnavailable(self._down)

    # writing
    def _append(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Ack:
        parts = self._topic(topic)
        partition = partition_for(key, len(parts)) if key is not None else 0
        offset = len(parts[partition])
        parts[partition].append(LogRecord(topic, partition, offset, key, value, list(headers)))
        return Ack(topic, partition, offset)

    def publish(self, records: Sequence[OutRecord]) -> list[Ack]:
        from services.contracts.envelope import cloudevents_headers

        self._check()
        self._complete_open()
        with self._lock:  # all or nothing, like one transaction
            acks = [self._append(r.topic, record_key(r.envelope), r.value,
                                 cloudevents_headers(r.envelope) + list(r.headers)) for r in records]
            if self._doubt:
                self._open = {}
                for ack in acks:
                    self._open.setdefault((ack.topic, ack.partition), ack.offset)
                raise BrokerUnavailable("the broker went away during the commit: its outcome is unknown")
            self._commit({(a.topic, a.partition) for a in acks})
        self._fan_out({r.topic for r in records})
        return acks

    def send_raw(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Ack:
        self._check()
        self._complete_open()
        with self._lock:
            ack = self._append(topic, key, value, headers)
            self._commit({(ack.topic, ack.partition)})
        self._fan_out({topic})
        return ack

    def _commit(self, partitions: set[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            self._topic(topic)[partition].append(None)

    def reset_writer(self) -> None:
        return None

    # following
    def follow(self, name: str, topics: Sequence[str], position: Position, deliver: Deliver,
               advance: Advance) -> Follower:
        follower = _MemoryFollower(self, name, topics, position, deliver, advance)
        with self._lock:
            self._followers.append(follower)
        follower.catch_up()
        return follower

    def unfollow(self, follower: _MemoryFollower) -> None:
        with self._lock:
            if follower in self._followers:
                self._followers.remove(follower)

    def _fan_out(self, topics: set[str]) -> None:
        with self._lock:
            followers = [f for f in self._followers if topics.intersection(f.topics)]
        for follower in followers:
            follower.catch_up()

    def close(self) -> None:
        return None
