"""The log from the Kafka topics themselves: :class:`KafkaSource`, the audit's own consumer.

No consumer group (nothing is committed, no service is disturbed), ``read_committed``, every
partition of the four record topics read from the beginning up to the end offsets taken when
it starts — records arriving meanwhile are left for the next audit. Records stream through;
nothing is kept here.

Each record value must be exactly the canonical encoding of its envelope (DESIGN §4).
``checkpoint_records`` gives the signed checkpoints (``baotuan.checkpoints.v1``) first: that
topic read on its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import orjson

from services.audit.sources.fetch import Plan, RawRecord, inspect_record_value, open_consumer, read_batches
from services.audit.sources.reader import Judged, read_in_other_processes
from services.audit.sources.records import Position, Record, ReplayError, day_end_ms
from services.contracts.codec import decode_envelope
from services.contracts.topics import CHECKPOINTS, RECORD_TOPICS

#: From this many records on, a separate process reads Kafka while this one checks (2+ cores).
PIPELINE_MIN_RECORDS = 20_000
#: How many reader processes share the partitions of a long replay. Measured on a 1,000,000-record log of
#: ``bench.generate`` on two cores: one reader (kafka-python's parsing and the verdict) bounded the replay with
#: this process ~65 % busy; two use both cores (docs/benchmarks.md, "Replay").
READERS = 2
#: Whether the reader processes also judge each value (decode it, check its encoding, hash and schema:
#: ``reader.judge``) and this process only decodes it again with orjson. Measured on a
#: 300,000-record log of ``bench.generate``: with the values as fetched this process was the busier one (31
#: CPU-s against the reader's 13) and bounded the replay; judged in the reader, the two carry about the same
#: load (docs/benchmarks.md, "Replay").
INSPECT_IN_READER = True


class KafkaSource:
    """The topics on the broker, from the beginning up to the end offsets taken at start.

    ``starts`` (next offset to read, per partition) begins there instead of at the beginning:
    a reader that kept the fold of the records below them reads only what came after. Once
    ``records`` has begun, ``planned`` holds each partition's (first, end) offsets it reads.

    Reading Kafka with kafka-python is CPU-bound (it parses every record in Python), so for a
    long log ``READERS`` reader processes fetch the records, each a share of the partitions (and
    judge each value: its encoding, hash and schema) while this process checks the rest: they overlap on
    two cores. ``pipeline`` forces it on or off; by default it is on from ``PIPELINE_MIN_RECORDS``
    records.
    """

    def __init__(self, bootstrap: str, *, topics: Sequence[str] = RECORD_TOPICS, until: dt.date | None = None,
                 offsets: Mapping[Position, int] | None = None, idle_timeout_s: float = 30.0,
                 kafka_config: Mapping[str, Any] | None = None, pipeline: bool | None = None,
                 starts: Mapping[Position, int] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.until = until
        self.requested = dict(offsets or {})
        self.idle_timeout_s = idle_timeout_s
        self.kafka_config = dict(kafka_config or {})
        self.pipeline = pipeline
        self.description = f"Kafka {bootstrap}"
        self._done = 0
        self._total: int | None = None
        self._next: dict[Position, int] = {}
        self.starts = dict(starts or {})
        self.planned: dict[Position, tuple[int, int]] = {}

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    def stopped_at(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in sorted(self._next.items()):
            out.setdefault(topic, {})[partition] = offset
        return out

    def limited(self, topic: str, partition: int) -> bool:
        """Whether the replay of this partition was told to stop early (--until, --offsets)."""
        return self.until is not None or (topic, partition) in self.requested

    def checkpoint_records(self) -> Iterator[Record]:
        """Every signed checkpoint on the broker, read before the records (the topic is small). Read first,
        each covers end offsets at or below those the records are then read to."""
        if CHECKPOINTS in self.topics:
            return
        config = {**self.kafka_config, "allow_auto_create_topics": False}  # a broker without it: no checkpoints
        yield from KafkaSource(self.bootstrap, topics=[CHECKPOINTS], idle_timeout_s=self.idle_timeout_s,
                               kafka_config=config, pipeline=False).records()

    def _probe(self) -> None:
        """Fail fast with a plain socket when no bootstrap server listens (kafka-python would retry and leak
        the refused sockets)."""
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
                    return
            except (OSError, ValueError):
                continue
        raise ReplayError(f"Kafka at {self.bootstrap} is unreachable")

    def config(self) -> dict[str, Any]:
        """The consumer's settings: no group, nothing committed, committed records only."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "group_id": None,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "auto_offset_reset": "earliest",
            "client_id": "baotuan-audit",
            # kafka-python's default fetch sizes: larger ones were no faster and held hundreds of MB.
            "max_poll_records": 2000,
            "request_timeout_ms": 30_000,
        }
        config.update(self.kafka_config)
        return config

    def _reached_the_end(self, plan: Plan) -> None:
        """Every partition was read to its end offset (read_committed: past the last transaction's marker,
        which holds no record): that is where the replay stopped."""
        for topic, partition, _, end in plan:
            self._next[(topic, partition)] = max(self._next.get((topic, partition), 0), end)

    def records(self) -> Iterator[Record]:
        self._probe()
        consumer = open_consumer(self.config(), self.bootstrap)
        try:
            plan = _plan(consumer, self.topics, self.until, self.requested)
            if self.starts:  # within [first, end]: a start past the end reads nothing (the caller sees it)
                plan = [(topic, partition, min(max(begin, self.starts.get((topic, partition), begin)), end), end)
                        for topic, partition, begin, end in plan]
            self.planned = {(topic, partition): (begin, end) for topic, partition, begin, end in plan}
            self._total = sum(end - begin for _, _, begin, end in plan)
            for topic, partition, begin, _ in plan:
                self._next[(topic, partition)] = begin
            pipeline = self.pipeline if self.pipeline is not None else self._total >= PIPELINE_MIN_RECORDS
            if pipeline:
                consumer.close()
                # closed here, in this thread, when the replay stops early (not by the garbage collector, in
                # whichever thread it runs)
                with contextlib.closing(read_in_other_processes(self.config(), plan, self.idle_timeout_s,
                                                                inspect=INSPECT_IN_READER, readers=READERS)) as batches:
                    if INSPECT_IN_READER:
                        for judged in cast(Iterator[list[Judged]], batches):
                            for record in judged:
                                self._done += 1
                                self._next[(record[0], record[1])] = record[2] + 1
                                yield _judged_record(record)
                    else:
                        for batch in cast(Iterator[list[RawRecord]], batches):
                            for topic, partition, offset, timestamp, key, value in batch:
                                self._done += 1
                                self._next[(topic, partition)] = offset + 1
                                yield _kafka_record(topic, partition, offset, timestamp, key, value)
                self._reached_the_end(plan)
                return
            for batch in read_batches(consumer, plan, self.idle_timeout_s):
                for topic, partition, offset, timestamp, key, value in batch:
                    self._done += 1
                    self._next[(topic, partition)] = offset + 1
                    yield _kafka_record(topic, partition, offset, timestamp, key, value)
            self._reached_the_end(plan)
        finally:
            consumer.close()


def _plan(consumer: Any, topics: Sequence[str], until: dt.date | None, requested: Mapping[Position, int]) -> Plan:
    """Every partition of ``topics`` with its first offset and the end offset to stop before."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    try:
        partitions = []
        for topic in topics:
            found = consumer.partitions_for_topic(topic)
            partitions += [TopicPartition(topic, p) for p in sorted(found or ())]
        for (topic, partition) in requested:
            if TopicPartition(topic, partition) not in partitions:
                raise ReplayError(f"--offsets names {topic}:{partition}, which is not on the broker")
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        if until is not None:
            cut = day_end_ms(until)
            found_at = consumer.offsets_for_times({tp: cut for tp in partitions})
            for tp, stamp in found_at.items():
                if stamp is not None:
                    end[tp] = min(end[tp], stamp.offset)
    except KafkaError as exc:
        raise ReplayError(f"Kafka did not answer: {exc}") from exc
    plan = []
    for tp in partitions:
        stop = end[tp]
        wanted = requested.get((tp.topic, tp.partition))
        if wanted is not None:
            stop = min(stop, wanted)
        plan.append((tp.topic, tp.partition, begin[tp], max(begin[tp], stop)))
    return plan


def _key(key_bytes: bytes | None) -> str | None:
    return key_bytes.decode("utf-8", errors="replace") if key_bytes is not None else None


def _judged_record(judged: Judged) -> Record:
    """A record with the reader process's verdict (``reader.judge``): its value decoded again here."""
    topic, partition, offset, timestamp, key, value, problem, intact, noncanonical, schema, fast = judged
    if problem is not None or value is None:
        return Record(topic, partition, offset, timestamp, _key(key), None, problem, raw=value)
    envelope = orjson.loads(value) if fast else decode_envelope(value)
    return Record(topic, partition, offset, timestamp, _key(key), envelope, None, raw=value, intact=intact,
                  noncanonical=noncanonical, schema_checked=True, schema_problem=schema)


def _kafka_record(topic: str, partition: int, offset: int, timestamp: int | None, key_bytes: bytes | None,
                  raw: bytes | None) -> Record:
    envelope, problem, intact, noncanonical = inspect_record_value(raw)
    return Record(topic, partition, offset, timestamp, _key(key_bytes), envelope, problem, raw=raw, intact=intact,
                  noncanonical=noncanonical)
