"""Reading Kafka partitions from a first to an end offset: what :class:`~services.audit.sources.kafka.KafkaSource`
and its reader process (:mod:`services.audit.sources.reader`) both do.

The consumer joins no group (nothing is committed, no service is disturbed) and reads
``read_committed``; records stream through in batches, nothing is kept here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from services.audit.sources.records import ReplayError
from services.contracts.codec import inspect_value

#: A record as ``read_batches`` hands it over: topic, partition, offset, timestamp, key, value.
RawRecord = tuple[str, int, int, int | None, bytes | None, bytes | None]
#: What to read: (topic, partition, first offset, end offset) for every partition.
Plan = list[tuple[str, int, int, int]]


def open_consumer(config: Mapping[str, Any], bootstrap: str) -> Any:
    """A kafka-python consumer with ``config``; ReplayError when it cannot be made."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(**config)
    except (KafkaError, OSError, ValueError) as exc:
        raise ReplayError(f"Kafka at {bootstrap} is unreachable: {exc}") from exc


def read_batches(consumer: Any, plan: Plan, idle_timeout_s: float) -> Iterator[list[RawRecord]]:
    """Batches of records of ``plan``, each partition in offset order, until every end offset."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    ends = {TopicPartition(topic, partition): end for topic, partition, _, end in plan}
    firsts = {TopicPartition(topic, partition): begin for topic, partition, begin, _ in plan}
    todo = {tp for tp, end in ends.items() if end > firsts[tp]}
    try:
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, firsts[tp])
        consumer.pause(*[tp for tp in ends if tp not in todo])
        idle_since = time.monotonic()
        while todo:
            batches = consumer.poll(timeout_ms=500)
            if not batches:
                if time.monotonic() - idle_since > idle_timeout_s:
                    missing = ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(todo))
                    raise ReplayError(f"no records for {idle_timeout_s:.0f}s from {missing} "
                                      "before the end offsets taken at start")
                continue
            idle_since = time.monotonic()
            out: list[RawRecord] = []
            for tp, messages in batches.items():
                stop = ends[tp]
                for message in messages:
                    if message.offset >= stop:
                        break
                    out.append((tp.topic, tp.partition, message.offset, message.timestamp, message.key,
                                message.value))
            if out:
                yield out
            for tp in list(todo):
                # read_committed skips aborted records and markers: the position may pass the end
                # offset without a record at it.
                if consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
    except KafkaError as exc:
        raise ReplayError(f"reading from Kafka failed: {exc}") from exc


def inspect_record_value(raw: bytes | None) -> tuple[dict[str, Any] | None, str | None, bool | None, str | None]:
    """A record value as ``(envelope, problem, intact, noncanonical)`` (``codec.inspect_value``)."""
    if raw is None:
        return None, "the record has no value", None, None
    return inspect_value(raw)
