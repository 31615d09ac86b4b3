"""The write and read paths every service shares (DESIGN §2).

A service validates a request against its projection, publishes the events (acks=all),
and answers only once its own consumer has folded them into the projection, so a GET right
after a POST sees the change. Writes are serialised by one lock: the service is the single
writer of its streams, which keeps every (topic, subject) hash chain unbroken.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from services.contracts import anchoring
from services.contracts import envelope as env
from services.contracts.events import latest_version
from services.contracts.topics import CHECKPOINTS, DEADLETTER, RECORD_TOPICS, topic_of
from services.contracts.validation import EnvelopeValidator
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog, Follower, KafkaLog
from services.runtime.kafka_io import Ack, BrokerUnavailable, OutRecord
from services.runtime.projector import IDEMPOTENCY_HEADER, Projector, PublishedCache
from services.runtime.signing import SigningKey, service_key
from services.runtime.store import Fold, ProjectionStore

log = logging.getLogger(__name__)


class ContractViolation(ValueError):
    """A service tried to publish a payload its own schema refuses (a bug, not bad input)."""


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


class NotCaughtUp(RuntimeError):
    """The projection did not reach the required offsets in time."""


#: DESIGN §9: one request may publish at most this many events; one that would publish more is
#: refused (422) before anything is written. (The reactor's derived events are not requests.)
MAX_EVENTS_PER_REQUEST = 5_000


#: A checkpoint lists the moved heads of a partition up to this many (else only their digest).
MAX_LISTED_HEADS = 2_000


class TooManyEvents(ValueError):
    """A request would publish more than its limit of events; nothing was published."""

    def __init__(self, count: int, limit: int, field: str | None = None) -> None:
        super().__init__(f"this request would publish {count:,} events; one request may publish at most {limit:,}")
        self.count = count
        self.limit = limit
        self.field = field


@dataclass(frozen=True)
class NewEvent:
    """An event a handler wants published."""

    type: str
    subject: str
    data: dict[str, Any]
    event_id: str | None = None
    causation_id: str | None = None


class Published(list[dict[str, Any]]):
    """What one ``publish`` wrote: the sealed envelopes (the list) and where each landed (``acks``, same order)."""

    def __init__(self, envelopes: Sequence[dict[str, Any]], acks: Sequence[Ack]) -> None:
        super().__init__(envelopes)
        self.acks = list(acks)


def request_hash(body: Any) -> str:
    """SHA-256 of a request body's canonical JSON (what an idempotency key is bound to)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


class EventService:
    """One service's runtime: projection store, consumer thread and acknowledged writer."""

    def __init__(self, *, name: str, settings: Settings, store: ProjectionStore, fold: Fold,
                 inputs: Sequence[str], owned: Sequence[str], kafka_config: dict[str, Any] | None = None,
                 log: EventLog | None = None) -> None:
        self.name = name
        self.settings = settings
        self.store = store
        #: The record topics this service writes, and signs checkpoints of (DESIGN §4, "Anchoring").
        self.anchored = [topic for topic in owned if topic in RECORD_TOPICS]
        #: Every topic this service writes: its own, and its subjects (its topics' names) on the checkpoints topic.
        self.owned = list(dict.fromkeys([*owned, CHECKPOINTS]))
        self.inputs = list(dict.fromkeys([*self.owned, *inputs]))
        self.key: SigningKey = service_key(name, settings.data_dir, settings.signing_key_file)
        store.anchor(name, self.anchored)
        self._unanchored = 0  # events written since the last checkpoint
        self._unanchored_since: float | None = None
        # Security settings (SASL) from the settings; an explicit kafka_config adds to or overrides them.
        self.kafka_config = {**settings.kafka_client_config(), **(kafka_config or {})}
        #: The event log (DESIGN §2): Kafka, or an in-memory log for fast tests of the rules.
        self.log: EventLog = log if log is not None else KafkaLog(
            settings.bootstrap_servers, client_id=f"baotuan-{name}", timeout_s=settings.request_timeout_s,
            **self.kafka_config)
        self._write_lock = threading.RLock()
        self._resync = True
        self.published = PublishedCache()
        self._validator = EnvelopeValidator(strict=True)
        self._reactor = threading.Thread(target=self._react, name=f"{name}-reactor", daemon=True)
        self._anchorer = threading.Thread(target=self._anchor_loop, name=f"{name}-checkpoints", daemon=True)
        self._halt = threading.Event()

        def fold_records(conn: Any, topic: str, envelope: dict[str, Any]) -> None:
            if topic != CHECKPOINTS:  # checkpoints only move chain heads and anchors (the store keeps them)
                fold(conn, topic, envelope)

        self.projector = Projector(name=name, store=store, fold=fold_records, chained=self.owned,
                                   deadletter=self._send_deadletter, published=self.published)
        self.follower: Follower | None = None

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self, *, wait_s: float = 60.0) -> None:
        """Create the topics if needed, start consuming, and catch up with the log."""
        self.log.ensure_topics(wait_s)
        self.follower = self.log.follow(self.name, self.inputs, self.store.position, self.projector)
        self.sync(timeout=wait_s)
        upcoming = self.key.pending_rotation()
        if upcoming is not None and self.store.announced(anchoring.key_id(upcoming.public_key())):
            # Announced in the log, then stopped before switching: the old key must never sign again.
            self.key.complete_rotation(anchoring.key_id(upcoming.public_key()))
        # Records a checkpoint never covered (the service stopped before it could sign one) are covered soon.
        self._unanchored = self.store.uncovered(self.anchored)
        self._unanchored_since = time.monotonic() if self._unanchored else None
        self._reactor.start()
        self._anchorer.start()

    def stop(self) -> None:
        if self._unanchored and self._anchorer.is_alive():
            # A clean stop leaves no write uncovered: the last writes get their checkpoint now.
            try:
                with self.writing():
                    if self._unanchored:
                        self.checkpoint()
            except Exception as exc:  # the broker may be gone already; the next start covers them
                log.warning("%s stopped with %d writes not covered by a checkpoint: %s", self.name,
                            self._unanchored, exc)
        self._halt.set()
        with self.store.applied:
            self.store.applied.notify_all()
        for thread in (self._reactor, self._anchorer):
            if thread.is_alive():
                thread.join(timeout=10)
        if self.follower is not None:
            self.follower.stop()
            self.follower.join(timeout=10)
        self.log.close()
        self.store.close()

    def _send_deadletter(self, value: bytes, key: bytes | None) -> None:
        self.log.send_raw(DEADLETTER, key, value, [("ce_type", b"DeadLetter"), ("ce_source", self.name.encode())])

    # -- reading -----------------------------------------------------------------------------------------

    def sync(self, topics: Sequence[str] | None = None, timeout: float | None = None) -> dict[str, dict[int, int]]:
        """Wait until the projection has applied everything now on the broker for ``topics``.

        Returns the positions reached ({topic: {partition: next_offset}}).
        """
        wanted = list(topics or self.inputs)
        timeout = timeout or self.settings.request_timeout_s
        deadline = time.monotonic() + timeout  # one budget for both steps
        targets = self.log.end_offsets(wanted, timeout)
        if not self.store.wait_until(targets, max(0.0, deadline - time.monotonic())):
            raise NotCaughtUp(f"{self.name} projection did not catch up with {wanted} in {timeout:.0f}s")
        return {t: {p: self.store.position(t, p) for (tt, p) in targets if tt == t} for t in wanted}

    def health(self) -> dict[str, Any]:
        follower = self.follower
        connected = follower is not None and follower.connected.is_set()
        return {
            "service": self.name,
            "status": "ok" if connected else "degraded",
            "broker": "reachable" if connected else "unreachable",
            "consumer_lag": follower.lag() if follower is not None else {},
            "dead_letters": self.store.deadletter_count(),
            "last_error": follower.last_error if follower is not None else None,
            # Anchoring: the key this service signs with, and how many of its writes no checkpoint covers yet.
            "checkpoints": {"key_id": self.key.key_id, "uncovered_events": self._unanchored},
        }

    # -- derived events ---------------------------------------------------------------------------------

    def _react(self) -> None:
        """Publish the derived events folds put in the outbox (deterministic ids: never twice)."""
        while not self._halt.is_set():
            pending = self.store.outbox()
            if not pending:
                with self.store.applied:
                    self.store.applied.wait(timeout=0.5)
                continue
            try:
                with self.writing():
                    self.publish_owed()
            except Exception as exc:  # broker down or a bug: keep the outbox, retry later
                log.warning("%s reactor could not publish derived events: %s", self.name, exc)
                self._halt.wait(1.0)

    def publish_owed(self, subject: str | None = None) -> list[dict[str, Any]]:
        """Publish the derived events the outbox holds (those of ``subject`` only, if given).

        Must be called inside ``writing()``. Catches up with the log first: only then can we tell
        what is really owed (a rebuild folds causes before the derived events that already follow
        them), and every cause already in the log has been folded and its events owed.
        """
        self.sync()
        owed = [row for row in self.store.outbox(subject=subject) if not self.store.has_event(row["event_id"])]
        events = [NewEvent(row["type"], row["subject"], json.loads(row["data"]), event_id=row["event_id"],
                           causation_id=row["causation_id"]) for row in owed]
        return self.publish(events, actor=f"system:{self.name}") if events else []

    # -- checkpoints (DESIGN §4, "Anchoring") -----------------------------------------------------------

    def _anchor_loop(self) -> None:
        """Sign a checkpoint once writes have waited ``checkpoint_seconds`` for one (the count rule is
        kept by ``publish``): so the last writes of a burst are covered soon after it ends."""
        while not self._halt.wait(0.25):
            since = self._unanchored_since
            if since is None or time.monotonic() - since < self.settings.checkpoint_seconds:
                continue
            try:
                with self.writing():
                    if self._unanchored:
                        self.checkpoint()
            except Exception as exc:  # broker down: the writes stay uncovered, the next try covers them
                log.warning("%s could not publish a checkpoint: %s", self.name, exc)
                self._halt.wait(1.0)

    def checkpoint(self) -> list[dict[str, Any]]:
        """Publish a signed ChainCheckpoint of every topic this service writes, as the log holds it now.

        Must be called inside ``writing()``. Catches up with the broker's end offsets first, so the
        heads are those of exactly the records before the end offsets it signs. A rotation waiting
        (``baotuan keys rotate``) is announced here, signed by the current key, and takes effect once
        this checkpoint is in the log.
        """
        targets = self.log.end_offsets(self.owned, self.settings.request_timeout_s)
        if not self.store.wait_until(targets, self.settings.request_timeout_s):
            raise NotCaughtUp(f"{self.name} projection did not catch up before a checkpoint")
        upcoming = self.key.pending_rotation()
        events = []
        for topic in self.anchored:
            number, anchors = self.store.anchors(topic)
            parts = []
            for (name, partition), end in sorted(targets.items()):
                if name != topic:
                    continue
                heads = self.store.moved_heads(topic, partition, end)
                previous = anchors.get(partition, (0, anchoring.GENESIS_DIGEST))[1]
                parts.append({"partition": partition, "end_offset": end,
                              "heads": anchoring.head_rows(heads) if len(heads) <= MAX_LISTED_HEADS else None,
                              "heads_digest": anchoring.heads_digest(previous, heads)})
            data = anchoring.checkpoint_data(topic=topic, number=number + 1, writer=self.name, partitions=parts,
                                             private=self.key.private,
                                             next_key=upcoming.public_key() if upcoming is not None else None)
            events.append(NewEvent("ChainCheckpoint", topic, data))
        sealed = self._publish(events, actor=f"system:{self.name}")
        self._unanchored, self._unanchored_since = 0, None
        if upcoming is not None:
            self.key.complete_rotation(anchoring.key_id(upcoming.public_key()))
            log.info("%s now signs with key %s", self.name, self.key.key_id)
        return sealed

    def receipts(self, published: Published) -> list[dict[str, Any]]:
        """The signed receipt of each record-topic event of ``published``."""
        return [anchoring.receipt(topic=ack.topic, partition=ack.partition, offset=ack.offset, envelope=sealed,
                                  private=self.key.private)
                for sealed, ack in zip(published, published.acks, strict=True)
                if ack.topic in self.anchored]

    def receipts_of(self, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Receipts of events published earlier (a repeated request), from the projection, signed now."""
        out = []
        for row in self.store.receipts_of(event_ids):
            out.append(anchoring.receipt(topic=row["topic"], partition=row["partition"], offset=row["offset"],
                                         envelope=row, private=self.key.private))
        return out

    def pending_derived(self) -> int:
        return len(self.store.outbox())

    # -- writing -----------------------------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the single-writer lock: validate against the projection, then publish, inside it.

        The wait for the lock is bounded too: while the broker is down the writer ahead may spend the
        whole timeout failing, and the requests queued behind it must get their 503 in time, not one
        after another.
        """
        budget = self.settings.request_timeout_s
        deadline = time.monotonic() + budget
        if not self._write_lock.acquire(timeout=budget):
            raise BrokerUnavailable(f"{self.name}: no write slot within {budget:.0f}s "
                                    "(the writer ahead is waiting for the broker)")
        try:
            if self._resync:
                # After a failed write the broker may hold records we never saw acknowledged:
                # catch up first so seq/prev_hash continue from the real head of each stream.
                try:
                    remaining = deadline - time.monotonic()
                    if remaining < 0.5:
                        raise BrokerUnavailable(f"no time left to resync {self.owned} with the broker")
                    self.sync(self.owned, timeout=remaining)
                except Exception as exc:
                    raise BrokerUnavailable(str(exc)) from exc
                self._resync = False
            yield
        finally:
            self._write_lock.release()

    def replay_idempotent(self, key: str | None, body: Any) -> dict[str, Any] | None:
        """The stored result of an earlier request with this key, or None if the key is new.

        Raises IdempotencyConflict when the key was used with another body.
        """
        if not key:
            return None
        found = self.store.idempotent_result(f"{self.name}:{key}")
        if found is None:
            return None
        stored_hash, result = found
        if stored_hash != request_hash(body):
            raise IdempotencyConflict(key)
        return result

    def publish(self, events: Sequence[NewEvent], *, actor: str, idempotency_key: str | None = None,
                body: Any = None, result: dict[str, Any] | None = None,
                max_events: int | None = None) -> Published:
        """Seal, publish and wait until the projection has applied ``events``; returns the envelopes
        (and, as ``acks``, where each landed: what their receipts say).

        Must be called inside ``writing()``. Raises TooManyEvents (more than ``max_events``, before
        anything is sealed or sent), BrokerUnavailable (nothing acknowledged, or not known to be)
        and NotCaughtUp. Every ``checkpoint_every`` events a signed checkpoint follows.
        """
        return self._publish(events, actor=actor, idempotency_key=idempotency_key, body=body, result=result,
                             max_events=max_events)

    def _publish(self, events: Sequence[NewEvent], *, actor: str, idempotency_key: str | None = None,
                 body: Any = None, result: dict[str, Any] | None = None,
                 max_events: int | None = None) -> Published:
        if max_events is not None and len(events) > max_events:
            raise TooManyEvents(len(events), max_events)
        heads: dict[tuple[str, str], env.ChainHead] = {}
        records = []
        sealed_all = []
        idem = None
        if idempotency_key:
            idem = json.dumps({"key": f"{self.name}:{idempotency_key}", "hash": request_hash(body),
                               "result": result or {}}, ensure_ascii=False).encode()
        for i, event in enumerate(events):
            topic = topic_of(event.type)
            if topic not in self.owned:
                raise ContractViolation(f"{self.name} does not own {topic}")
            version = latest_version(event.type)
            key = (topic, event.subject)
            head = heads.get(key) or self.store.chain_head(topic, event.subject)
            sealed, value = env.seal_encoded(env.new_envelope(
                event_type=event.type, version=version, source=self.name, subject=event.subject, data=event.data,
                actor=actor, causation_id=event.causation_id, event_id=event.event_id), head)
            # The whole envelope strictly, as every reader will check it (its hash is ours by construction):
            # the projection folds these very bytes without validating them again (PublishedCache).
            problem = self._validator.problem(sealed)
            if problem is not None:
                raise ContractViolation(f"{event.type}.{problem}")
            heads[key] = env.ChainHead(sealed["seq"], sealed["hash"])
            # The idempotency record rides on the last event: it is folded only when all are in.
            headers = [(IDEMPOTENCY_HEADER, idem)] if idem is not None and i == len(events) - 1 else []
            records.append(OutRecord(topic, sealed, value, headers))
            sealed_all.append(sealed)
        self.published.add(records)
        try:
            acks = self.log.publish(records)
        except BrokerUnavailable:
            self._resync = True  # the log adapter dropped whatever was still in flight
            raise
        targets: dict[tuple[str, int], int] = {}
        for ack in acks:
            targets[(ack.topic, ack.partition)] = max(targets.get((ack.topic, ack.partition), 0), ack.offset + 1)
        started = time.monotonic()
        if not self.store.wait_until(targets, self.settings.request_timeout_s):
            self._resync = True
            raise NotCaughtUp(f"events acknowledged but not applied after {time.monotonic() - started:.1f}s")
        recorded = sum(1 for ack in acks if ack.topic in self.anchored)
        if recorded:
            self._unanchored += recorded
            if self._unanchored_since is None:
                self._unanchored_since = time.monotonic()
            if self._unanchored >= self.settings.checkpoint_every:
                try:
                    self.checkpoint()
                except Exception:  # the writes stand (acknowledged and applied); the timer tries again
                    log.exception("%s could not publish a checkpoint", self.name)
        return Published(sealed_all, acks)
