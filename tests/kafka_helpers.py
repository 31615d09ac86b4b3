"""Reading the log back in tests: every record of some topics, as it sits on the broker.

Not a test module (pytest does not collect it); test modules import it by name, as they do
``conftest`` (pytest puts tests/ on ``sys.path`` for tests/conftest.py; tests/ is no package).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from kafka import KafkaConsumer, TopicPartition

from services.contracts.codec import decode_envelope
from services.devtools.broker import LocalBroker, free_port
from services.runtime.kafka_io import end_offsets, ensure_topics
from services.runtime.projector import IDEMPOTENCY_HEADER


@dataclass(frozen=True)
class LoggedRecord:
    """One record of the log: where it sits, its key, its raw value and its headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def envelope(self) -> dict[str, Any]:
        """The value decoded as an envelope (``EnvelopeError`` for a poison record)."""
        return decode_envelope(self.value)

    @property
    def idempotency_key(self) -> str | None:
        """The Idempotency-Key of the request that wrote this record, where the service recorded one."""
        raw = self.headers.get(IDEMPOTENCY_HEADER)
        return str(json.loads(raw)["key"]) if raw else None


def read_records(bootstrap: str, topics: str | Sequence[str], *, key: str | bytes | None = None,
                 since: Mapping[tuple[str, int], int] | None = None, timeout_s: float = 30.0,
                 **config: Any) -> list[LoggedRecord]:
    """Every record of ``topics`` from the beginning of the log up to the end offsets taken at the start.

    In order of the topics as given, then partition, then offset. ``key`` keeps only the records
    of one key (a subject); ``since`` starts the named ``(topic, partition)``s at those offsets
    instead of at the beginning; ``config`` goes to the consumer (e.g. a broker's SASL settings).
    Raises AssertionError when the end is not reached within ``timeout_s``. The consumer is
    closed in every case.
    """
    names = [topics] if isinstance(topics, str) else list(topics)
    wanted = key.encode() if isinstance(key, str) else key
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed", max_poll_records=5000, **config)
    try:
        parts = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        for tp in parts:
            if since and (tp.topic, tp.partition) in since:
                consumer.seek(tp, since[(tp.topic, tp.partition)])
        ends = consumer.end_offsets(parts)
        out: list[LoggedRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {', '.join(names)} to the end in {timeout_s:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                out += [LoggedRecord(tp.topic, tp.partition, r.offset, r.key, r.value, dict(r.headers or []))
                        for r in records if r.offset < ends[tp] and (wanted is None or r.key == wanted)]
        return sorted(out, key=lambda r: (names.index(r.topic), r.partition, r.offset))
    finally:
        consumer.close()


@contextmanager
def secured_broker(data_dir: Path, users: Mapping[str, str]) -> Iterator[LocalBroker]:
    """A broker of its own that requires SASL/SCRAM for ``users`` (name -> password) and enforces the
    standard ACLs; the topics are made by the admin, as an operator does. Stopped afterwards."""
    broker = LocalBroker(data_dir, free_port(), free_port(), sasl_users=dict(users))
    broker.start()
    try:
        ensure_topics(broker.bootstrap, **broker.client_config())  # services may not create topics
        broker.grant_acls()
        yield broker
    finally:
        broker.stop()


def verify_checkpoints(bootstrap: str, writer: str,
                       public: Ed25519PublicKey | None = None) -> dict[str, list[dict[str, Any]]]:
    """Check ``writer``'s signed checkpoints against the log, independently of the services' code paths.

    For each topic it writes: numbers 1, 2, 3 …; each signature valid (with ``public`` when given); each
    partition's end offset never beyond the log; its listed heads exactly the last record of every subject in
    the range since the previous checkpoint; its digest the chain of those heads. Returns the checkpoints'
    payloads by topic, in order.
    """
    from services.contracts import anchoring
    from services.contracts.topics import CHECKPOINTS, RECORD_TOPICS, owner_of

    found: dict[str, list[dict[str, Any]]] = {}
    for record in read_records(bootstrap, CHECKPOINTS):
        envelope = record.envelope
        if envelope["source"] == writer:
            found.setdefault(envelope["data"]["topic"], []).append(envelope["data"])
    for topic, checkpoints in found.items():
        assert topic in RECORD_TOPICS and owner_of(topic) == writer
        records = read_records(bootstrap, topic)
        ends = {p: end for (t, p), end in end_offsets(bootstrap, [topic]).items()}
        assert [c["number"] for c in checkpoints] == list(range(1, len(checkpoints) + 1)), topic
        previous: dict[int, tuple[int, str]] = {}
        for checkpoint in checkpoints:
            if public is not None:
                assert anchoring.verify(public, anchoring.checkpoint_payload(checkpoint), checkpoint["signature"])
                assert checkpoint["key_id"] == anchoring.key_id(public)
            for part in checkpoint["partitions"]:
                p, end = part["partition"], part["end_offset"]
                start, digest = previous.get(p, (0, anchoring.GENESIS_DIGEST))
                in_range = [r for r in records if r.partition == p and start <= r.offset < end]
                # Offsets also count the transactions' markers: the log must reach the end, not hold a record at each.
                assert end <= ends[p], f"{topic}[{p}] ends before checkpoint {checkpoint}"
                heads = {}
                for r in in_range:
                    e = r.envelope
                    heads[e["subject"]] = (e["subject"], e["seq"], e["hash"])
                if part["heads"] is not None:
                    assert part["heads"] == anchoring.head_rows(heads.values())
                digest = anchoring.heads_digest(digest, heads.values())
                assert part["heads_digest"] == digest, (topic, p, checkpoint["number"])
                previous[p] = (end, digest)
    return found


def records_covered(records: Sequence[LoggedRecord], checkpoint: Mapping[str, Any]) -> int:
    """How many of ``records`` (of the checkpoint's topic) lie below a checkpoint's end offsets (the offsets
    themselves also count the transactions' markers)."""
    ends = {p["partition"]: p["end_offset"] for p in checkpoint["partitions"]}
    return sum(1 for r in records if r.topic == checkpoint["topic"] and r.offset < ends.get(r.partition, 0))
