"""The write and read paths every service shares (DESIGN §2).

A service validates a request against its projection, publishes the events (acks=all),
and answers only once its own consumer has folded them into the projection, so a GET right
after a POST sees the change. Writes are serialised by one lock: the service is the single
writer of its streams, which keeps every (topic, subject) hash chain unbroken.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.contracts import anchoring
from services.contracts import envelope as env
from services.contracts.codec import content_hash
from services.contracts.events import latest_version
from services.contracts.topics import CHECKPOINTS, DEADLETTER, RECORD_TOPICS, topic_of
from services.contracts.validation import envelope_problem
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog, Follower, KafkaLog
from services.runtime.kafka_io import Ack, BrokerUnavailable, OutRecord
from services.runtime.ownership import GroupMembership, SoleWriter
from services.runtime.projector import IDEMPOTENCY_HEADER, Projector, PublishedCache, header
from services.runtime.signing import KeyFileError, SigningKey, service_key
from services.runtime.store import Fold, ProjectionStore, Speculation

log = logging.getLogger(__name__)


class ContractViolation(ValueError):
    """A service tried to publish a payload its own schema refuses (a bug, not bad input)."""


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


class NotCaughtUp(RuntimeError):
    """The projection did not reach the required offsets in time."""


class KeyReplaced(BrokerUnavailable):
    """The key this instance holds was replaced by a rotation and the new one is not in its key file: it signs
    nothing (and writes nothing, 503) until it has the new key (docs/scaling.md, "Keys")."""


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


#: How long writes that have made a checkpoint due wait for the next group to carry it in its transaction,
#: before the checkpoint thread publishes it in one of its own.
CHECKPOINT_GRACE_S = 1.0


class Phases:
    """Wall-clock and process CPU seconds of the phases of one group (``with phases("stage"): ...``)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu


class WriteStats:
    """What the write path did since the service started (``/health`` ``writes``, the posting benchmark):
    requests, the groups they were committed in, records published, and per phase of a group the seconds
    it took and the CPU seconds the whole process spent meanwhile (summed over groups)."""

    PHASES = ("lock", "stage", "checkpoint", "publish", "fold")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.groups = 0
        self.records = 0
        self.largest_group = 0
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.cpu_seconds = dict.fromkeys(self.PHASES, 0.0)
        #: Seconds the requests waited in the queue before a leader took them (summed over requests).
        self.queued = 0.0

    def group(self, size: int, records: int, phases: Phases, queued: float) -> None:
        with self._lock:
            self.groups += 1
            self.requests += size
            self.records += records
            self.largest_group = max(self.largest_group, size)
            self.queued += queued
            for phase, seconds in phases.wall.items():
                self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
                self.cpu_seconds[phase] = self.cpu_seconds.get(phase, 0.0) + phases.cpu.get(phase, 0.0)

    def landed(self, phases: Phases) -> None:
        """The fold of a group in flight, awaited outside the lock (pipelining)."""
        with self._lock:
            for phase, seconds in phases.wall.items():
                self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
                self.cpu_seconds[phase] = self.cpu_seconds.get(phase, 0.0) + phases.cpu.get(phase, 0.0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "groups": self.groups, "records": self.records,
                    "largest_group": self.largest_group, "queued_seconds": round(self.queued, 3),
                    "seconds": {phase: round(value, 3) for phase, value in self.seconds.items()},
                    "cpu_seconds": {phase: round(value, 3) for phase, value in self.cpu_seconds.items()}}


def request_hash(body: Any) -> str:
    """SHA-256 of a request body's canonical JSON (what an idempotency key is bound to)."""
    return content_hash(body, floats=True)


class EventService:
    """One service's runtime: projection store, consumer thread and acknowledged writer."""

    def __init__(self, *, name: str, settings: Settings, store: ProjectionStore, fold: Fold,
                 inputs: Sequence[str], owned: Sequence[str], kafka_config: dict[str, Any] | None = None,
                 log: EventLog | None = None, ownership: SoleWriter | None = None) -> None:
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
        #: Since when ``checkpoint_every`` writes wait for a checkpoint (the next group carries it; the
        #: checkpoint thread publishes it if none has within ``CHECKPOINT_GRACE_S``).
        self._due_since: float | None = None
        # Security settings (SASL) from the settings; an explicit kafka_config adds to or overrides them.
        self.kafka_config = {**settings.kafka_client_config(), **(kafka_config or {})}
        #: The event log (DESIGN §2): Kafka, or an in-memory log for fast tests of the rules.
        grouped = ownership is None and log is None and settings.instance_id is not None
        self.log: EventLog = log if log is not None else KafkaLog(
            settings.bootstrap_servers, client_id=f"baotuan-{name}", timeout_s=settings.request_timeout_s,
            transactional_id=settings.transactional_id(name),
            transaction_timeout_ms=settings.transaction_timeout_ms if grouped else None, **self.kafka_config)
        #: Which partitions this instance writes (DESIGN §12): all of them, unless it runs as one of several
        #: instances (an instance id): then those its writers' consumer group assigns it.
        self.ownership: SoleWriter = ownership or SoleWriter()
        if grouped and isinstance(self.log, KafkaLog):
            assert settings.instance_id is not None
            self.ownership = GroupMembership(
                service=name, instance_id=settings.instance_id, bootstrap=settings.bootstrap_servers,
                url=settings.advertised_url or "", topics=self.owned, position=store.position,
                session_timeout_ms=settings.group_session_timeout_ms, **self.kafka_config)
            self.log.fence = self.ownership.fencing
        self._write_lock = threading.RLock()
        self._key_lock = threading.RLock()
        # Group commit: write requests waiting for the writer, and whether one of them leads a group now.
        self._group_cv = threading.Condition()
        self._queue: list[_Job] = []
        self._leading = False
        #: The thread leading a group while it decides the group's requests speculatively (else None), and the
        #: positions it caught up with for them (None: not yet).
        self._speculating: int | None = None
        self._group_positions: dict[str, dict[int, int]] | None = None
        self._resync = True
        #: Pipelining (issue 16): groups committed whose fold their requests still wait for, outside the lock;
        #: the next group is staged on top of them (their records folded speculatively again).
        self.pipelining = settings.pipelining
        self._in_flight: list[_Flight] = []
        self.published = PublishedCache()
        #: Group commit's figures (requests, groups, seconds per phase): ``/health`` shows them.
        self.stats = WriteStats()
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
        self.follower = self.log.follow(self.name, self.inputs, self.store.position, self.projector, self.store.advance)
        self.sync(timeout=wait_s)
        self.ownership.start(wait_s)
        upcoming = self.key.pending_rotation()
        if upcoming is not None and self.store.announced(anchoring.key_id(upcoming.public_key())):
            # Announced in the log, then stopped before switching: the old key must never sign again.
            self.key.complete_rotation(anchoring.key_id(upcoming.public_key()))
        self.signing_key()  # the same for a rotation another instance announced (a replaced key does not start)
        # Records a checkpoint never covered (the service stopped before it could sign one) are covered soon.
        self._unanchored = self.store.uncovered(self.anchored)
        self._unanchored_since = time.monotonic() if self._unanchored else None
        self._reactor.start()
        self._anchorer.start()

    def stop(self) -> None:
        if self._anchorer.is_alive() and (self._unanchored or (self.ownership.grouped and self._uncovered_mine())):
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
        self.ownership.stop()
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
        if self._speculating == threading.get_ident():
            # Deciding a group: the leader caught up with everything just before (or does so now).
            if self._group_positions is None:
                raise _NeedsSync
            return {t: dict(self._group_positions.get(t, {})) for t in wanted}
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
            "checkpoints": {"key_id": self.key.key_id, "uncovered_events": self._uncovered()},
            # Scale-out (DESIGN §12): which partitions this instance writes.
            "instance": self.ownership.describe(),
            # Group commit (issue 16): requests, the groups they went in, seconds per phase of a group.
            "writes": self.stats.snapshot(),
        }

    def signing_key(self) -> SigningKey:
        """The key to sign with now: never one that a checkpoint of this service in the log replaced.

        Several instances share the service's key file (docs/scaling.md, "Keys"). The one that announces a
        rotation moves the files; every other one notices before it signs again: the key file changed (read
        again), or it folded a checkpoint announcing a successor of the key it holds (it completes the rotation
        itself when the announcing instance has not moved the files yet). An instance that cannot get the
        successor raises :class:`KeyReplaced` and signs nothing."""
        with self._key_lock:
            self.key.refresh()
            seen: set[str] = set()
            while (successor := self.store.successor(self.key.key_id)) is not None and successor not in seen:
                seen.add(successor)
                replaced = self.key.key_id
                try:
                    self.key.complete_rotation(successor)
                except (KeyFileError, OSError) as exc:  # e.g. the successor missing, a read-only key directory
                    raise KeyReplaced(f"{self.name}: key {replaced} was replaced by key {successor} in the log, "
                                      f"and {exc}") from exc
                log.info("%s now signs with key %s (announced in the log)", self.name, self.key.key_id)
            return self.key

    def _uncovered(self) -> int:
        """The writes no signed checkpoint covers yet: this instance's own, or, one of several, every instance's."""
        return self.store.uncovered(self.anchored) if self.ownership.grouped else self._unanchored

    def _checkpointed(self) -> list[str]:
        """The record topics whose checkpoints this instance signs: all of its service's, or, one of several,
        those whose stream on the checkpoints topic (subject: the topic's name) is in a partition it owns."""
        if not self.ownership.grouped:
            return self.anchored
        return [topic for topic in self.anchored
                if self.ownership.owns(CHECKPOINTS, self.ownership.partition(CHECKPOINTS, topic))]

    def _uncovered_mine(self) -> int:
        mine = self._checkpointed()
        return self.store.uncovered(mine) if mine else 0

    # -- derived events ---------------------------------------------------------------------------------

    def _react(self) -> None:
        """Publish the derived events folds put in the outbox (deterministic ids: never twice)."""
        while not self._halt.is_set():
            pending = [row for row in self.store.outbox() if self._writes(row["type"], row["subject"])]
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
        if self._speculating == threading.get_ident():
            raise _RunAlone
        self.sync()
        owed = [row for row in self.store.outbox(subject=subject)
                if not self.store.has_event(row["event_id"]) and self._writes(row["type"], row["subject"])]
        events = [NewEvent(row["type"], row["subject"], json.loads(row["data"]), event_id=row["event_id"],
                           causation_id=row["causation_id"]) for row in owed]
        return self.publish(events, actor=f"system:{self.name}") if events else []

    def _writes(self, event_type: str, subject: str) -> bool:
        """Whether this instance publishes a derived event (one of several: the owner of its partition does)."""
        if not self.ownership.grouped:
            return True
        topic = topic_of(event_type)
        return self.ownership.owns(topic, self.ownership.partition(topic, subject))

    # -- checkpoints (DESIGN §4, "Anchoring") -----------------------------------------------------------

    def _anchor_loop(self) -> None:
        """Sign a checkpoint once writes have waited ``checkpoint_seconds`` for one, so the last writes of a
        burst are covered soon after it ends; and once ``checkpoint_every`` writes wait for one and no group
        of writes has carried it (a group publishes a checkpoint that falls due ahead of its own records, in
        its transaction; ``publish`` outside a group publishes it right after)."""
        while not self._halt.wait(0.25):
            if self.ownership.grouped:
                # One of several instances: the records of every instance count, and this one signs the
                # checkpoints of the topics whose checkpoint stream it owns.
                try:
                    uncovered = self._uncovered_mine()
                except Exception:  # the store is closing
                    continue
                if not uncovered:
                    self._unanchored_since = None
                    continue
                if self._unanchored_since is None:
                    self._unanchored_since = time.monotonic()
                if uncovered < self.settings.checkpoint_every \
                        and time.monotonic() - self._unanchored_since < self.settings.checkpoint_seconds:
                    continue
                try:
                    with self.writing():
                        self.checkpoint()
                except Exception as exc:
                    log.warning("%s could not publish a checkpoint: %s", self.name, exc)
                    self._halt.wait(1.0)
                continue
            since, due = self._unanchored_since, self._due_since
            now = time.monotonic()
            if since is None or (now - since < self.settings.checkpoint_seconds
                                 and (due is None or now - due < CHECKPOINT_GRACE_S)):
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
        prepared = self._prepare_checkpoint()
        if prepared is None:
            return []
        sealed = self._publish(prepared.events, actor=f"system:{self.name}")
        self._checkpoint_published(prepared)
        return sealed

    def _prepare_checkpoint(self) -> _Checkpoint | None:
        """The ChainCheckpoint events of every topic this instance signs, as the log holds it now (caught up
        first), or None when it signs none. Must be called inside ``writing()``."""
        topics = self._checkpointed()
        if not topics:
            return None
        covers = self._unanchored
        targets = self.log.end_offsets(self.owned, self.settings.request_timeout_s)
        if not self.store.wait_until(targets, self.settings.request_timeout_s):
            raise NotCaughtUp(f"{self.name} projection did not catch up before a checkpoint")
        key = self.signing_key()  # caught up: a rotation another instance announced is known now
        private, upcoming = key.private, key.pending_rotation()  # one key for every topic of this checkpoint
        events = []
        with self.store.lock:
            # The heads and the offsets they stand at, read together: other instances of the service may
            # write on meanwhile (one instance alone: the positions are the targets, nobody else writes).
            ends = {(topic, partition): self.store.position(topic, partition) for (topic, partition) in targets}
            snapshot = {topic: self.store.anchors(topic) for topic in topics}
            moved = {(topic, partition): self.store.moved_heads(topic, partition, end)
                     for (topic, partition), end in ends.items() if topic in snapshot}
        for topic in topics:
            number, anchors = snapshot[topic]
            parts = []
            for (name, partition), end in sorted(ends.items()):
                if name != topic:
                    continue
                heads = moved[(topic, partition)]
                previous = anchors.get(partition, (0, anchoring.GENESIS_DIGEST))[1]
                parts.append({"partition": partition, "end_offset": end,
                              "heads": anchoring.head_rows(heads) if len(heads) <= MAX_LISTED_HEADS else None,
                              "heads_digest": anchoring.heads_digest(previous, heads)})
            data = anchoring.checkpoint_data(topic=topic, number=number + 1, writer=self.name, partitions=parts,
                                             private=private,
                                             next_key=upcoming.public_key() if upcoming is not None else None)
            events.append(NewEvent("ChainCheckpoint", topic, data))
        return _Checkpoint(events, covers, upcoming)

    def _checkpoint_published(self, prepared: _Checkpoint) -> None:
        """A checkpoint is in the log: the writes it covers are covered; a rotation it announced takes effect."""
        self._unanchored = max(0, self._unanchored - prepared.covers)
        if not self._unanchored:
            self._unanchored_since = None
        if self._unanchored < self.settings.checkpoint_every:
            self._due_since = None
        if prepared.upcoming is not None:
            with self._key_lock:
                self.key.complete_rotation(anchoring.key_id(prepared.upcoming.public_key()))
            log.info("%s now signs with key %s", self.name, self.key.key_id)

    def receipts(self, published: Published) -> list[dict[str, Any]]:
        """The signed receipt of each record-topic event of ``published``."""
        private = self.signing_key().private
        return [anchoring.receipt(topic=ack.topic, partition=ack.partition, offset=ack.offset, envelope=sealed,
                                  private=private)
                for sealed, ack in zip(published, published.acks, strict=True)
                if ack.topic in self.anchored]

    def receipts_of(self, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Receipts of events published earlier (a repeated request), from the projection, signed now."""
        out = []
        private = self.signing_key().private
        for row in self.store.receipts_of(event_ids):
            out.append(anchoring.receipt(topic=row["topic"], partition=row["partition"], offset=row["offset"],
                                         envelope=row, private=private))
        return out

    def pending_derived(self) -> int:
        return len(self.store.outbox())

    # -- writing -----------------------------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the single-writer lock: validate against the projection, then publish, inside it.

        The wait for the lock is bounded too: while the broker is down the writer ahead may spend the
        whole timeout failing, and the requests queued behind it must get their 503 in time, not one
        after another. Groups of ``execute`` still in flight (committed, not folded yet) are folded
        first, so whatever runs inside reads the heads and state they left.
        """
        with self._locked():
            self._land_all()
            yield

    def _land_all(self) -> None:
        """Wait (inside the lock) until the projection has applied every group in flight."""
        targets = self._after_in_flight({})
        if targets and not self.store.wait_until(targets, self.settings.request_timeout_s):
            self._resync = True
            raise NotCaughtUp(f"{self.name}: the writes in flight were not applied in time")
        self._in_flight.clear()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The single-writer lock (bounded wait), after a resync with the broker if a write failed."""
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
                    # The last write may have failed in doubt (the broker went away during its commit, which
                    # it completes when it is back): settle it first, or the end offsets would stop before it
                    # and the next write would reuse its seq — a fork once it is committed.
                    self.log.recover_writer(remaining)
                    remaining = deadline - time.monotonic()
                    if remaining < 0.5:
                        raise BrokerUnavailable(f"no time left to resync {self.owned} with the broker")
                    self.sync(self.owned, timeout=remaining)
                except Exception as exc:
                    raise BrokerUnavailable(str(exc)) from exc
                self._resync = False
            self.signing_key()  # an instance whose key a rotation replaced writes nothing it could not sign for
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

    def _seal(self, events: Sequence[NewEvent], *, actor: str, idempotency_key: str | None = None,
              body: Any = None, result: dict[str, Any] | None = None,
              max_events: int | None = None) -> list[OutRecord]:
        """Seal ``events`` after the current heads of their streams (as the projection, speculative
        state included, has them), validate each strictly; the last carries the idempotency record."""
        if max_events is not None and len(events) > max_events:
            raise TooManyEvents(len(events), max_events)
        heads: dict[tuple[str, str], env.ChainHead] = {}
        records = []
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
            problem = envelope_problem(sealed, strict=True)
            if problem is not None:
                raise ContractViolation(f"{event.type}.{problem}")
            heads[key] = env.ChainHead(sealed["seq"], sealed["hash"])
            # The idempotency record rides on the last event: it is folded only when all are in.
            headers = [(IDEMPOTENCY_HEADER, idem)] if idem is not None and i == len(events) - 1 else []
            records.append(OutRecord(topic, sealed, value, headers))
        if self.ownership.grouped:
            # One of several instances: only the owner of the streams' partitions writes them (DESIGN §12).
            self.ownership.check({(r.topic, self.ownership.partition(r.topic, str(r.envelope["subject"])))
                                  for r in records})
        return records

    def _publish(self, events: Sequence[NewEvent], *, actor: str, idempotency_key: str | None = None,
                 body: Any = None, result: dict[str, Any] | None = None,
                 max_events: int | None = None) -> Published:
        records = self._seal(events, actor=actor, idempotency_key=idempotency_key, body=body, result=result,
                             max_events=max_events)
        acks = self._send(records)
        return Published([r.envelope for r in records], acks)

    def _send(self, records: Sequence[OutRecord], phases: Phases | None = None,
              checkpoint: _SealedCheckpoint | None = None, *, then_checkpoint: bool = True) -> list[Ack]:
        """Publish sealed records in one go, wait until the projection has applied them, then count
        them towards the next checkpoint (and publish it when due, unless not ``then_checkpoint``: a group
        leaves it to the next group's transaction or the checkpoint thread). ``phases`` times publishing,
        waiting for the fold and the checkpoint. ``checkpoint``: one due before the records, published ahead
        of them in the same transaction (the acks returned are the records' alone)."""
        if not records and checkpoint is None:
            return []
        phases = phases or Phases()
        acks = self._publish_staged(records, phases, checkpoint)
        started = time.monotonic()
        with phases("fold"):
            # Committed: folded now, in this thread, unless something the projection has not applied comes
            # before them in the log (then the follower folds them when it fetches them, as before).
            sent = [*checkpoint.records, *records] if checkpoint is not None else records
            try:
                self.projector.fold_committed(sent, acks)
            except Exception:  # rolled back: the follower folds them when it fetches them
                log.exception("%s could not fold its committed records itself", self.name)
            # Answered once readable to every reader, not only folded here: Kafka's commit is answered before
            # the markers are written, and a client that reads another service next must find its write there.
            applied = self.store.wait_until(_targets(acks), self.settings.request_timeout_s,
                                            readable=not self.log.readable_at_commit)
        if not applied:
            self._resync = True
            raise NotCaughtUp(f"events acknowledged but not applied after {time.monotonic() - started:.1f}s")
        if checkpoint is not None:
            acks = acks[len(checkpoint.records):]
        if then_checkpoint and any(ack.topic in self.anchored for ack in acks) \
                and self._unanchored >= self.settings.checkpoint_every and not self.ownership.grouped:
            try:
                with phases("checkpoint"):
                    self.checkpoint()
            except Exception:  # the writes stand (acknowledged and applied); the timer tries again
                log.exception("%s could not publish a checkpoint", self.name)
        return acks

    def _publish_staged(self, records: Sequence[OutRecord], phases: Phases,
                        checkpoint: _SealedCheckpoint | None = None) -> list[Ack]:
        """Publish sealed records (one transaction) and count them towards the next checkpoint; no fold wait.
        ``checkpoint``: published first, in the same transaction (its acks come first)."""
        if checkpoint is not None:
            records = [*checkpoint.records, *records]
        self.published.add(records)
        try:
            with phases("publish"):
                acks = self.log.publish(records)
        except BrokerUnavailable:
            self._resync = True  # the log adapter dropped whatever was still in flight
            raise
        if checkpoint is not None:
            try:
                self._checkpoint_published(checkpoint.prepared)
            except Exception:  # a rotation it announced: signing_key() completes it before the next signature
                log.exception("%s published a checkpoint but could not take its announced key", self.name)
        recorded = sum(1 for ack in acks if ack.topic in self.anchored)
        if recorded:
            self._unanchored += recorded
            if self._unanchored_since is None:
                self._unanchored_since = time.monotonic()
            if self._due_since is None and self._unanchored >= self.settings.checkpoint_every:
                self._due_since = time.monotonic()
        return acks

    # -- group commit (issue 16) ------------------------------------------------------------------------

    def execute(self, write: Write, *, actor: str, key: str | None = None, body: Any = None,
                max_events: int | None = None) -> Outcome:
        """Run one write request: ``write(publish)`` decides against the projection and calls
        ``publish(events, result)``; returns once its events are in the log and folded.

        Requests that arrive while a write is in flight are committed together (group commit): one
        thread leads, validates every waiting request in turn against the projection *plus* the
        requests before it in the group (their events folded speculatively, then rolled back), seals
        them in order, publishes them at once, waits once for the acks and the fold, and answers each.
        A request that raises refuses only itself. With ``key``, the same key and body give the first
        result again (``Outcome.repeated``); another body raises IdempotencyConflict.
        """
        # The decision runs in the leading thread, but in this request's context (its Flask request, app
        # context and ``g``: the caller's principal, never the leader's).
        job = _Job(write, actor, key, body, max_events, contextvars.copy_context())
        with self._group_cv:
            self._queue.append(job)
        while True:
            with self._group_cv:
                # A request leads the next group once no group is being staged and published, unless a
                # leader took it already (then it waits for its answer).
                while not job.done and (self._leading or job.taken):
                    self._group_cv.wait(timeout=1.0)
                if job.done:
                    break
                self._leading = True
                group = self._take_group()
            flight = None
            try:
                flight = self._run_group(group)
            except BaseException as exc:  # the lock, a resync or the log failed the whole group
                for member in group:
                    if not member.done:
                        member.error, member.done = exc, True
            finally:
                if flight is None:
                    self._fail_fast(group)
                with self._group_cv:
                    self._leading = False
                    self._group_cv.notify_all()
            if flight is not None:
                # Pipelining: the group is committed; the next leader stages and publishes the next group
                # meanwhile (on top of this one's heads), and this thread waits for the fold, then answers.
                self._land(flight)
        if job.error is not None:
            raise job.error
        return Outcome(job.result or {}, Published(job.sealed, job.acks), job.repeated_ids)

    def _fail_fast(self, group: list[_Job]) -> None:
        """When the log refused a group, the requests that were already waiting get the same 503 now
        rather than one group's timeout after another (they could only fail the same way)."""
        down = next((job.error for job in group if isinstance(job.error, (BrokerUnavailable, NotCaughtUp))), None)
        if down is None:
            return
        with self._group_cv:
            for job in self._queue:
                job.error, job.done = down, True
            self._queue.clear()

    def _take_group(self) -> list[_Job]:
        """The requests to commit together, oldest first: one that must run alone goes by itself."""
        queue = self._queue
        if queue[0].alone:
            group = [queue.pop(0)]
        else:
            group = []
            while queue and not queue[0].alone and len(group) < self.settings.group_commit_max:
                group.append(queue.pop(0))
        for job in group:
            job.taken = True
        return group

    def _land(self, flight: _Flight) -> None:
        """Wait until the projection has applied a committed group, then answer its requests."""
        phases = Phases()
        with phases("fold"):
            applied = self.store.wait_until(flight.targets, self.settings.request_timeout_s)
        answers = flight.answers  # not those that went back to the queue to run alone
        if not applied:
            self._resync = True
            error = NotCaughtUp(f"events acknowledged but not applied after {self.settings.request_timeout_s:.1f}s")
            for job in answers:
                if job.records:
                    job.error = error
        self.stats.landed(phases)
        with self._group_cv:
            for job in answers:
                job.done = True
            self._group_cv.notify_all()
        if not applied:
            self._fail_fast(answers)

    def _run_group(self, group: list[_Job]) -> _Flight | None:
        """Stage, seal and publish a group; returns it in flight (committed, its fold awaited by the caller,
        outside the lock) when pipelining, else None once every request of it is answered."""
        began = time.perf_counter()
        phases = Phases()
        with ExitStack() as stack:
            with phases("lock"):
                stack.enter_context(self._locked())
            if len(group) == 1 and group[0].alone:
                self._land_all()
                self._run_alone(group[0])
                return None
            fold = self.projector.fold
            self._group_positions = None
            while True:
                try:
                    with phases("stage"):
                        self._stage_group(group, fold)
                    break
                except _NeedsSync:
                    # A request reads another service's topic "as of now": catch up once, outside the
                    # speculation (the consumer must fold meanwhile), then decide the whole group again.
                    for job in group:
                        job.records, job.sealed, job.error, job.alone = [], [], None, False
                        job.result, job.repeated_ids = None, None
                    self._group_positions = self.sync()
            staged = [record for job in group for record in job.records]
            recording = sum(1 for record in staged if record.topic in self.anchored)
            # One of several instances (DESIGN §12) keeps the fold inside the lock: its fencing checks what
            # it has caught up with. Alone, the next group may be staged while this one is being folded.
            pipelined = self.pipelining and not self.ownership.grouped
            due: _SealedCheckpoint | None = None
            if self._unanchored and self._unanchored + recording > self.settings.checkpoint_every \
                    and not self.ownership.grouped:
                # A checkpoint at least every N writes: the writes so far get theirs before this group. It goes
                # ahead of the group in the group's own transaction (one transaction and one fold wait less on
                # this request's path); pipelined, in one of its own first.
                try:
                    with phases("checkpoint"):
                        if pipelined:
                            self.checkpoint()
                        else:
                            prepared = self._prepare_checkpoint()
                            if prepared is not None:
                                due = _SealedCheckpoint(prepared, self._seal(prepared.events,
                                                                             actor=f"system:{self.name}"))
                except Exception:  # the timer tries again; the group is not held up by it
                    log.exception("%s could not publish a checkpoint", self.name)
            flight = None
            try:
                if pipelined and staged:
                    acks = self._publish_staged(staged, phases)
                    flight = _Flight(self._after_in_flight(_targets(acks)), staged, acks)
                    self._in_flight.append(flight)
                elif pipelined and self._in_flight:
                    # Nothing to publish (refused, or repeats): answered once the groups before are folded,
                    # so a repeat's receipts and whatever a refusal was decided on are visible by then.
                    acks = []
                    flight = _Flight(self._after_in_flight({}), [], [])
                else:
                    # A checkpoint this group makes due goes with the next group, or from the checkpoint
                    # thread if none comes first: not on this group's requests' path.
                    acks = self._send(staged, phases, due, then_checkpoint=False)
            except Exception as exc:  # nothing of the group is confirmed: each request that wrote gets it
                for job in group:
                    if job.records:
                        job.error = exc
            else:
                position = 0
                for job in group:
                    job.acks = acks[position:position + len(job.records)]
                    position += len(job.records)
            finally:
                # Those that must run alone go back to the head of the queue; every other one is answered
                # (in flight: once the group is folded, by the caller).
                again = [job for job in group if job.alone and job.error is None]
                with self._group_cv:
                    self._queue[:0] = again
                    for job in again:
                        job.taken = False
                if flight is None:
                    for job in group:
                        if job not in again:
                            job.done = True
                else:
                    flight.answers = [job for job in group if job not in again]
                self.stats.group(len(group) - len(again), len(staged), phases,
                                 sum(max(0.0, began - job.queued_at) for job in group))
            return flight

    def _stage_group(self, group: list[_Job], fold: Fold) -> None:
        with self.store.speculating() as spec:
            self._speculating = threading.get_ident()
            try:
                self._refold_in_flight(spec, fold)
                for job in group:
                    try:
                        with spec.step():
                            self._stage(job, spec, fold)
                            if job is not group[-1]:
                                spec.settle()  # the next request decides on top of this one
                    except _RunAlone:
                        job.records, job.sealed = [], []
                        job.alone = True
                    except Exception as exc:
                        job.records, job.sealed = [], []
                        job.error = exc
            finally:
                self._speculating = None

    def _after_in_flight(self, targets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """``targets`` and those of every group in flight: a group is answered after the groups before it."""
        merged = dict(targets)
        for flight in self._in_flight:
            for place, offset in flight.targets.items():
                merged[place] = max(merged.get(place, 0), offset)
        return merged

    def _refold_in_flight(self, spec: Speculation, fold: Fold) -> None:
        """Fold speculatively the records of the groups in flight that the projection has not applied yet,
        so the group being staged is decided on top of them and continues their chains. They are committed
        in the log already (a group is in flight only once its transaction is), so nothing staged on them
        can be left on a broken chain."""
        pending = []
        for flight in self._in_flight:
            if all(self.store.position(topic, partition) >= end for (topic, partition), end in flight.targets.items()):
                continue
            pending.append(flight)
            for record, ack in zip(flight.records, flight.acks, strict=True):
                if self.store.position(ack.topic, ack.partition) > ack.offset:
                    continue  # folded for real already
                idem_raw = header(record.headers, IDEMPOTENCY_HEADER)
                chain = record.topic in self.owned
                try:
                    with spec.step():
                        spec.fold(record.topic, record.envelope, fold, chain=chain,
                                  idempotency=json.loads(idem_raw) if idem_raw else None)
                except Exception:  # the projection will dead-letter it: only its chain head moves
                    spec.fold(record.topic, record.envelope, _fold_nothing, chain=chain)
        self._in_flight[:] = pending

    def _decide(self, job: _Job, emit: Callable[[list[NewEvent], dict[str, Any]], None]) -> None:
        """Run a request's decision (or find the first answer to its key); ``emit(events, stored)`` takes each
        batch of events it publishes, with the result to store under its key (naming all its events so far)."""
        earlier = self.replay_idempotent(job.key, job.body)
        if earlier is not None:
            job.result = earlier
            job.repeated_ids = earlier.pop(RECEIPTS_OF, [])
            return

        def publish(events: Sequence[NewEvent], result: dict[str, Any]) -> dict[str, Any]:
            # Ids given now, so the stored result can name the events (the receipts of a repeat).
            events = [e if e.event_id else dataclasses.replace(e, event_id=env.new_uuid()) for e in events]
            if job.max_events is not None and len(job.sealed) + len(events) > job.max_events:
                raise TooManyEvents(len(job.sealed) + len(events), job.max_events)
            emit(events, {**result, RECEIPTS_OF: [*(s["event_id"] for s in job.sealed), *(e.event_id for e in events)]})
            return result

        job.result = job.context.run(job.write, publish)

    def _stage(self, job: _Job, spec: Speculation, fold: Fold) -> None:
        """Decide one request of a group against the speculative projection; its events are sealed
        and folded speculatively, so the next request of the group sees them."""

        def emit(events: list[NewEvent], stored: dict[str, Any]) -> None:
            records = self._seal(events, actor=job.actor, idempotency_key=job.key, body=job.body, result=stored)
            for record in records:
                idem_raw = header(record.headers, IDEMPOTENCY_HEADER)
                # Folded when the store is next read (this request reading on, the next one deciding), never
                # if nothing reads it: see Speculation.defer.
                spec.defer(record.topic, record.envelope, fold, chain=record.topic in self.owned,
                           idempotency=json.loads(idem_raw) if idem_raw else None)
            job.records.extend(records)
            job.sealed.extend(record.envelope for record in records)

        self._decide(job, emit)

    def _run_alone(self, job: _Job) -> None:
        """A request that publishes on its own (it needs the log itself, e.g. what the books owe first)."""

        def emit(events: list[NewEvent], stored: dict[str, Any]) -> None:
            published = self._publish(events, actor=job.actor, idempotency_key=job.key, body=job.body, result=stored)
            job.sealed.extend(published)
            job.acks.extend(published.acks)

        try:
            self._decide(job, emit)
        except Exception as exc:
            job.error = exc
        finally:
            job.done = True


#: The key of a stored idempotent result that lists the request's event ids (their receipts, on a repeat).
RECEIPTS_OF = "_event_ids"

#: ``publish(events, result) -> result``: what a write request calls to publish its decision.
Publish = Callable[[Sequence[NewEvent], dict[str, Any]], dict[str, Any]]
#: ``write(publish) -> result``: a write request's decision, run by ``EventService.execute``.
Write = Callable[[Publish], dict[str, Any]]


class _NeedsSync(BaseException):
    """Raised inside a group when a request syncs with the log: the leader syncs, then stages the group again."""


class _RunAlone(BaseException):
    """Raised inside a group when a request needs the log itself (``publish_owed``): it runs alone next."""


class Outcome(NamedTuple):
    """What ``EventService.execute`` answers: the write's result (or the first request's, on a repeat),
    what it published, and on a repeat the ids of the events the first request published."""

    result: dict[str, Any]
    published: Published
    repeated_ids: list[str] | None


@dataclass
class _Job:
    write: Write
    actor: str
    key: str | None
    body: Any
    max_events: int | None
    context: contextvars.Context
    queued_at: float = field(default_factory=time.perf_counter)
    taken: bool = False
    alone: bool = False
    done: bool = False
    result: dict[str, Any] | None = None
    repeated_ids: list[str] | None = None
    error: BaseException | None = None
    records: list[OutRecord] = field(default_factory=list)
    sealed: list[dict[str, Any]] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)


@dataclass
class _Checkpoint:
    """A checkpoint prepared to publish: its events, how many uncovered writes it covers, a key it announces."""

    events: list[NewEvent]
    covers: int
    upcoming: Ed25519PrivateKey | None


@dataclass
class _SealedCheckpoint:
    """A prepared checkpoint, sealed: published ahead of a group's records, in its transaction."""

    prepared: _Checkpoint
    records: list[OutRecord]


@dataclass
class _Flight:
    """A group whose transaction is committed and whose fold its requests wait for (pipelining)."""

    targets: dict[tuple[str, int], int]
    records: list[OutRecord]
    acks: list[Ack]
    #: The requests answered once it is folded (those that must run alone went back to the queue).
    answers: list[_Job] = field(default_factory=list)


def _targets(acks: Sequence[Ack]) -> dict[tuple[str, int], int]:
    """The next offset after what ``acks`` wrote, per (topic, partition)."""
    targets: dict[tuple[str, int], int] = {}
    for ack in acks:
        targets[(ack.topic, ack.partition)] = max(targets.get((ack.topic, ack.partition), 0), ack.offset + 1)
    return targets


def _fold_nothing(conn: Any, topic: str, envelope: dict[str, Any]) -> None:
    """The fold of a record the projection refuses (it goes to the dead letters): nothing changes."""
