"""Kafka plumbing on kafka-python 3.x: the admin step, an acknowledged producer, and the
consumer loop that folds records into a projection store (with a dead-letter topic).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from services.contracts import envelope as env
from services.contracts.topics import DEADLETTER, TOPIC_CONFIG, TOPICS, partitions, replication_factor

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge in time: the write did not happen (or is unknown)."""


class Fenced(BrokerUnavailable):
    """The transaction was refused and aborted: this instance no longer writes the partitions it wrote
    (another instance took them over), or it is not a member of its writers' group (DESIGN §12)."""


#: ``fence({(topic, partition): next offset written})`` -> (group offsets, group metadata) that a grouped
#: instance's transaction commits with it (KIP-447), or None; raises to refuse the transaction.
Fence = Callable[[dict[tuple[str, int], int]], "tuple[dict[Any, Any], Any] | None"]


def ensure_topics(bootstrap: str, names: Iterable[str] | None = None, timeout_s: float = 30.0,
                  **client_config: Any) -> list[str]:
    """Create the topics of DESIGN §4 if missing (idempotent); returns the names created now.

    ``client_config`` carries the security settings (SASL) of a secured broker.
    """
    wanted = list(names or TOPICS)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="baotuan-admin",
                                     request_timeout_ms=10_000, **client_config)
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"broker {bootstrap} unreachable: {exc}") from exc
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            new = [NewTopic(name=n, num_partitions=partitions(), replication_factor=replication_factor(),
                            topic_configs=dict(TOPIC_CONFIG)) for n in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent start-up made it first
                admin.create_topics(new, timeout_ms=10_000)
        _wait_for_metadata(admin, wanted, deadline)
        return missing
    finally:
        admin.close()


def _wait_for_metadata(admin: KafkaAdminClient, names: Sequence[str], deadline: float) -> None:
    while True:
        described = admin.describe_topics(list(names))
        ready = all(t.get("error_code", 0) == 0 and t.get("partitions") for t in described)
        if ready or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def record_key(envelope: dict[str, Any]) -> bytes:
    return str(envelope["subject"]).encode("utf-8")


@dataclass(frozen=True)
class Ack:
    topic: str
    partition: int
    offset: int


class OutRecord(NamedTuple):
    """One record to publish: its topic, the sealed envelope, its encoded value, extra headers."""

    topic: str
    envelope: dict[str, Any]
    value: bytes
    headers: list[tuple[str, bytes]]


def producer_settings(timeout_s: float = 10.0) -> dict[str, Any]:
    """The kafka-python producer settings of every service (the benchmarks' raw baseline uses them too)."""
    return {
        "acks": "all",
        "enable_idempotence": True,
        # Nothing leaves before publish() flushes, so the records of one publish go to each
        # partition as ONE batch, which the broker appends atomically: with 2 ms the sender
        # often shipped the first record alone, and a crash between the two requests left
        # a DistributionDeclared without its allocations (and no idempotency record to retry).
        "linger_ms": 200,
        "batch_size": 262_144,  # a 1,000-entry batch post goes out in a few requests, not hundreds
        "max_block_ms": int(timeout_s * 1000),
        # kafka-python blocks in the constructor until it reaches a broker (30 s by default)
        "bootstrap_timeout_ms": int(timeout_s * 1000),
        "delivery_timeout_ms": int(timeout_s * 1000),
        "request_timeout_ms": int(timeout_s * 1000) - 500,
        "retry_backoff_ms": 100,
    }


#: How long kafka-python's sender waits before it resends a transactional request (see EventProducer).
TRANSACTION_RETRY_BACKOFF_MS = 5


class EventProducer:
    """Publishes envelopes; ``publish`` returns only once every record is acknowledged (acks=all).

    With a ``transactional_id`` every ``publish`` is one Kafka transaction: its records become
    visible to ``read_committed`` readers (every baotuan reader) all together or never; a
    producer started later with the same id fences this one (the broker refuses its writes) and
    aborts whatever it left open. ``init_timeout_s`` bounds that initialisation when it must be shorter
    than ``timeout_s`` (a writer resyncing within one request's budget).
    """

    def __init__(self, bootstrap: str, client_id: str, *, timeout_s: float = 10.0,
                 init_timeout_s: float | None = None, transactional_id: str | None = None, **extra: Any) -> None:
        self.timeout_s = timeout_s
        self.transactional = transactional_id is not None
        settings = producer_settings(timeout_s)
        sender_backoff = extra.pop("sender_retry_backoff_ms", TRANSACTION_RETRY_BACKOFF_MS)
        if transactional_id is not None:
            settings["transactional_id"] = transactional_id
        began = time.monotonic()
        try:  # kafka-python bootstraps in the constructor: a broker that is down is a 503, not a 500
            self._producer = KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, **{**settings, **extra})
        except KafkaError as exc:
            raise BrokerUnavailable(f"broker {bootstrap} unreachable: {exc}") from exc
        if self.transactional:
            # kafka-python's sender sleeps the producer's retry_backoff_ms (100 ms) before it resends any
            # transactional request, ignoring the 20 ms its transaction manager asks for when AddPartitionsToTxn
            # meets CONCURRENT_TRANSACTIONS, i.e. the previous transaction's markers are still being written
            # (KAFKA-5482; the Java client honours it). So every transaction that followed another closely — each
            # write under load — waited 100 ms. The sender's own copy of the setting only: the producer's
            # metadata and produce retries keep theirs. (bench/latency.py measures both.)
            self._producer._sender.config["retry_backoff_ms"] = sender_backoff
            # One budget for both steps (kafka-python's init_transactions waits max_block_ms on its own).
            budget = timeout_s if init_timeout_s is None else min(timeout_s, init_timeout_s)
            left_ms = max(100, int((budget - (time.monotonic() - began)) * 1000))
            try:
                result = self._producer._transaction_manager.initialize_transactions()
                self._producer._sender.wakeup()
                if not result.wait(timeout_ms=left_ms):
                    raise KafkaTimeoutError("the transactional producer was not initialised in time")
                if result.failed:
                    raise result.exception
            except (KafkaError, OSError) as exc:
                self.abort()
                raise BrokerUnavailable(f"Kafka did not initialise the transactional producer: {exc}") from exc

    def _finish(self, commit: bool) -> None:
        """End the open transaction, bounded by the timeout (kafka-python's own commit waits forever)."""
        manager = self._producer._transaction_manager
        result = manager.begin_commit() if commit else manager.begin_abort()
        self._producer._sender.wakeup()
        if not result.wait(timeout_ms=int(self.timeout_s * 1000)):
            raise KafkaTimeoutError("the transaction did not complete in time")
        if result.failed:
            raise result.exception

    def publish(self, records: Sequence[OutRecord], fence: Fence | None = None) -> list[Ack]:
        """Send records in order (one transaction when transactional) and wait for every ack.

        With ``fence`` (a grouped instance, DESIGN §12) the transaction also commits the group offsets it
        returns, with the group metadata the broker checks them against: a member of an old generation
        has its offsets refused, and the transaction is aborted (``Fenced``)."""
        futures = []
        try:
            if self.transactional:
                self._producer.begin_transaction()
            for topic, envelope, value, headers in records:
                futures.append(self._producer.send(topic, key=record_key(envelope), value=value,
                                                   headers=env.cloudevents_headers(envelope) + headers))
            self._producer.flush(timeout=self.timeout_s)
            acks = []
            for fut in futures:
                meta = fut.get(timeout=self.timeout_s)
                acks.append(Ack(meta.topic, meta.partition, meta.offset))
            if self.transactional and fence is not None:
                self._fence(fence, acks)
            if self.transactional:
                self._finish(commit=True)
            return acks
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge the write: {exc}") from exc

    def _fence(self, fence: Fence, acks: Sequence[Ack]) -> None:
        """Commit the group offsets of what this transaction wrote, as the member we are (KIP-447); abort the
        transaction and raise ``Fenced`` when we may not, or the broker refuses them."""
        written: dict[tuple[str, int], int] = {}
        for ack in acks:
            written[(ack.topic, ack.partition)] = max(written.get((ack.topic, ack.partition), 0), ack.offset + 1)
        try:
            found = fence(written)
            if found is None:
                return
            offsets, metadata = found
            manager = self._producer._transaction_manager
            result = manager.send_offsets_to_transaction(offsets, metadata)
            self._producer._sender.wakeup()
            if not result.wait(timeout_ms=int(self.timeout_s * 1000)):
                raise KafkaTimeoutError("the group offsets were not committed in time")
            if result.failed:
                raise result.exception
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._finish(commit=False)
            raise Fenced(f"transaction refused and aborted: {exc}") from exc

    def send_raw(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Ack:
        try:
            if self.transactional:
                self._producer.begin_transaction()
            future = self._producer.send(topic, key=key, value=value, headers=headers)
            self._producer.flush(timeout=self.timeout_s)  # do not wait out linger_ms
            meta = future.get(timeout=self.timeout_s)
            if self.transactional:
                self._finish(commit=True)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge the write: {exc}") from exc
        return Ack(meta.topic, meta.partition, meta.offset)

    def abort(self) -> None:
        """Close at once after a failed write, failing whatever is still queued instead of sending it.

        A record the service answered 503 for must not reach the log later, after the writer has
        resynced and reused its seq. And kafka-python 3.0.x can wedge an idempotent producer after a
        broker restart: when a batch it had already sent expires, ``reset_producer_id()`` leaves it
        READY with no producer id, so no InitProducerId is ever sent again and the sender neither
        sends nor expires another batch; every later flush times out. A new producer starts clean.
        """
        sender = getattr(self._producer, "_sender", None)  # close(timeout=0) would first flush (and raise)
        if sender is not None:
            sender.force_close()
            sender.join(timeout=1)
        with contextlib.suppress(Exception):
            self._producer.close(timeout=0)

    def close(self) -> None:
        self._producer.close(timeout=5)


#: How long the broker may hold a follower's fetch when it has nothing new. It answers a waiting fetch as soon as
#: records become readable (read_committed: when a transaction's markers move the last stable offset), so this
#: adds nothing to a write's wait for its fold; a short one only makes an idle follower fetch more often (at
#: 20 ms, 50 empty fetches a second, parsed by the process and served by the broker on the same cores). At 50
#: posts/s, alternating runs of `python -m bench --only latency`: p99 113-128 ms with 20, 70-83 ms with 500.
FOLLOWER_FETCH_MAX_WAIT_MS = 500
#: How often a busy follower asks every partition's position (not only those a poll delivered records of).
FOLLOWER_FULL_CHECK_S = 0.1


class KafkaFollower(threading.Thread):
    """Delivers every record of ``topics`` to ``deliver``, from the follower's own positions on.

    The follower keeps its positions itself (a projection stores them with its state), so no
    consumer-group commits: ``position(topic, partition)`` is asked after every (re)connection.
    """

    def __init__(self, *, name: str, bootstrap: str, topics: Sequence[str], position: Callable[[str, int], int],
                 deliver: Callable[[str, int, Sequence[Any]], None], advance: Callable[[str, int, int], None],
                 consumer_config: dict[str, Any] | None = None) -> None:
        super().__init__(name=f"{name}-consumer", daemon=True)
        self.service = name
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.position = position
        self.deliver = deliver
        self.advance = advance
        self.consumer_config = consumer_config or {}
        self._halt = threading.Event()
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._end_offsets: dict[tuple[str, int], int] = {}

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._consume()
            except Exception as exc:  # the loop must survive a broker outage; it reconnects
                self.last_error = str(exc)
                self.connected.clear()
                log.warning("%s consumer error, reconnecting: %s", self.service, exc)
                self._halt.wait(1.0)

    def _consume(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, client_id=f"{self.service}-projection",
                                 group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                 isolation_level="read_committed", fetch_max_wait_ms=FOLLOWER_FETCH_MAX_WAIT_MS,
                                 max_poll_records=2000,
                                 **self.consumer_config)
        try:
            assignment = []
            for topic in self.topics:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    raise RuntimeError(f"topic {topic} has no partitions (not created yet?)")
                assignment += [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(assignment)
            # Where each partition has been read to and reported (``advance``): from the positions sought, which
            # say what the projection applied, not what this consumer has read (a write folded at commit may be
            # ahead of its markers), so only a fetch moves a partition past them.
            reported: dict[TopicPartition, int] = {}
            for tp in assignment:
                reported[tp] = self.position(tp.topic, tp.partition)
                consumer.seek(tp, reported[tp])
            self.connected.set()
            self.last_error = None
            last_lag_check = last_full_check = 0.0
            while not self._halt.is_set():
                batches = consumer.poll(timeout_ms=200)
                for tp, records in batches.items():
                    self.deliver(tp.topic, tp.partition, records)
                if batches:
                    # Let the writers this fold woke run now: a thread woken from a wait gets the GIL only when
                    # the running one blocks or after the switch interval (5 ms), and this thread would go on
                    # checking positions first. bench/latency.py's phases: the waiter woken p50 1.2-1.3 -> 0.1 ms.
                    time.sleep(0)
                # Past what carries no record for us: transaction markers, aborted records. A committed
                # transaction's marker comes in the fetch that makes its records readable, so after a poll with
                # records the partitions it delivered are asked; every partition after an empty poll (a fetch
                # of markers or aborted records alone) and every FOLLOWER_FULL_CHECK_S (kafka-python's position()
                # is not a lookup: 18 of them per poll were a tenth of this thread's work at 50 posts/s).
                now = time.monotonic()
                if not batches or now - last_full_check >= FOLLOWER_FULL_CHECK_S:
                    asked: Iterable[TopicPartition] = assignment
                    last_full_check = now
                else:
                    asked = batches.keys()
                for tp in asked:
                    reached = consumer.position(tp, timeout_ms=0)  # known after the poll: no request
                    if reached is not None and reached > reported[tp]:
                        self.advance(tp.topic, tp.partition, reached)  # read up to here (see its docstring)
                        reported[tp] = reached
                if time.monotonic() - last_lag_check > 1.0:  # lag for /health, not on the hot path
                    # Bounded and best effort: with the default timeout (30 s) a broker outage parked
                    # this thread here, and after the broker came back no record was folded (so every
                    # write timed out with 503) until the call gave up.
                    with contextlib.suppress(KafkaError):
                        self._end_offsets = {(tp.topic, tp.partition): off for tp, off
                                             in consumer.end_offsets(assignment, timeout_ms=1000).items()}
                    last_lag_check = time.monotonic()
        finally:
            consumer.close()

    def lag(self) -> dict[str, int]:
        """Records on the broker not yet delivered and applied, per topic (from the last poll's end offsets)."""
        out: dict[str, int] = {}
        for (topic, partition), end in self._end_offsets.items():
            out[topic] = out.get(topic, 0) + max(0, end - self.position(topic, partition))
        return out


class OffsetsClient:
    """Looks up the current end offsets of topics; keeps one consumer open, reopens it after errors."""

    def __init__(self, bootstrap: str, **config: Any) -> None:
        self.bootstrap = bootstrap
        self.config = config
        self._consumer: KafkaConsumer | None = None
        self._lock = threading.Lock()

    def end_offsets(self, topics: Sequence[str], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
        with self._lock:
            try:
                if self._consumer is None:
                    # read_committed: the end offsets are the last stable ones (an open transaction's
                    # records are not waited for; they may never become visible).
                    self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                                   enable_auto_commit=False, isolation_level="read_committed",
                                                   bootstrap_timeout_ms=int(timeout_s * 1000),
                                                   request_timeout_ms=int(timeout_s * 1000) + 1000, **self.config)
                consumer = self._consumer
                tps = []
                for topic in topics:
                    parts = consumer.partitions_for_topic(topic) or set()
                    tps += [TopicPartition(topic, p) for p in sorted(parts)]
                return {(tp.topic, tp.partition): off
                        for tp, off in consumer.end_offsets(tps, timeout_ms=int(timeout_s * 1000)).items()}
            except (KafkaError, OSError, AssertionError) as exc:
                self._close()
                raise BrokerUnavailable(f"broker unreachable: {exc}") from exc

    def _close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None

    def close(self) -> None:
        with self._lock:
            self._close()


def end_offsets(bootstrap: str, topics: Sequence[str], timeout_s: float = 10.0,
                **config: Any) -> dict[tuple[str, int], int]:
    """The current end offset of every partition of ``topics`` (a one-off look at the broker)."""
    client = OffsetsClient(bootstrap, **config)
    try:
        return client.end_offsets(topics, timeout_s)
    finally:
        client.close()


def count_records(bootstrap: str, since: dict[tuple[str, int], int], until: dict[tuple[str, int], int],
                  timeout_s: float = 30.0, **config: Any) -> int:
    """How many committed records lie between two sets of positions (``end_offsets`` before and after): offsets
    alone would count the transactions' markers too."""
    spans = {tp: (since.get(tp, 0), end) for tp, end in until.items() if end > since.get(tp, 0)}
    if not spans:
        return 0
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed", **config)
    try:
        parts = {TopicPartition(t, p): span for (t, p), span in spans.items()}
        consumer.assign(list(parts))
        for tp, (begin, _) in parts.items():
            consumer.seek(tp, begin)
        count, deadline = 0, time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, (_, end) in parts.items()):
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"could not read the new records within {timeout_s:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                count += sum(1 for r in records if r.offset < parts[tp][1])
        return count
    finally:
        consumer.close()


__all__ = ["DEADLETTER", "Ack", "BrokerUnavailable", "EventProducer", "Fence", "Fenced", "KafkaFollower",
           "OffsetsClient", "count_records", "end_offsets", "ensure_topics"]
