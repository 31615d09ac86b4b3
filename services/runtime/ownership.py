"""Who may write which streams when a service runs as several instances (DESIGN §12, issue 17).

A service's streams are chained per (topic, subject) and a subject lives in one partition, so
the unit of ownership is the partition. One instance alone (no instance id, the default) owns
every partition: :class:`SoleWriter`, nothing changes. With an instance id the instances of a
service form the Kafka consumer group ``baotuan-<service>-writers`` over the topics they write
(their topics of record and the checkpoints topic, all with the same partition count);
:class:`GroupMembership` keeps this instance's membership in a thread of its own. The group's
assignor gives partition *p* of every such topic to the same member (ranges, as Kafka's
RangeAssignor) and tells every member who owns what and where it answers HTTP (each member's
advertised URL rides in its subscription; the leader hands every member the whole map in its
assignment), the way Kafka Streams shares ``application.server``.

Writing a partition:

* only its owner, and only once the owner *caught up* with it after it was assigned: no
  transaction of a previous owner is still open on it (its last stable offset is its high
  watermark), and the projection has applied everything up to there, so a chain continues from
  its real head;
* fenced by the broker (KIP-447): every transaction of a grouped instance also commits, with
  the member's group metadata (member id, generation), the offsets of the partitions it wrote
  to the group. An instance that lost its partitions in a rebalance it did not see (paused,
  cut off) sends an old generation: the broker refuses that offset commit, the transaction is
  aborted, and nothing of it is ever visible to a ``read_committed`` reader.

A write whose streams this instance does not own raises :class:`NotOwner` (the HTTP layer
forwards the request to the owner); one whose streams belong to several owners raises
:class:`SpansOwners` (409); one on a partition still being taken over raises :class:`NotReady`
(503, retry).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.contracts.topics import partitions
from services.runtime.eventlog import partition_for

log = logging.getLogger(__name__)

Place = tuple[str, int]  # (topic, partition)


class NotOwner(Exception):
    """This instance does not own the partition the write goes to; ``url``: the owner's, if known."""

    def __init__(self, topic: str, partition: int, url: str | None) -> None:
        super().__init__(f"{topic}[{partition}] is written by " + (url or "another instance (not known yet)"))
        self.topic = topic
        self.partition = partition
        self.url = url


class SpansOwners(Exception):
    """A write's streams belong to partitions of different instances: no one instance may write it."""

    def __init__(self, owners: Mapping[Place, str | None]) -> None:
        named = ", ".join(f"{t}[{p}]: {u or 'unknown'}" for (t, p), u in sorted(owners.items(), key=lambda x: x[0]))
        super().__init__(f"this request writes streams of several instances ({named})")
        self.owners = dict(owners)


class NotReady(Exception):
    """This instance owns the partition but is still taking it over (catching up with its end)."""


def partition_of(subject: str, count: int) -> int:
    """The partition of a stream: its subject is the record key (Kafka's default partitioner)."""
    return partition_for(subject.encode("utf-8"), count)


@dataclass(frozen=True)
class View:
    """A moment of a group's ownership as one instance sees it."""

    #: The (topic, partition)s assigned to this instance.
    owned: frozenset[Place]
    #: Those of them it has caught up with (it may write them).
    ready: frozenset[Place]
    #: The advertised URL of each partition's owner (this instance's own included).
    owners: Mapping[Place, str]
    #: The group metadata (member id, generation) this assignment belongs to: what the broker checks a
    #: transaction's offset commit against (None until known).
    metadata: Any = None


def decide(places: Collection[Place], view: View) -> None:
    """Whether this instance may write records to ``places`` (pure): returns, or raises NotOwner,
    SpansOwners or NotReady. A write must lie wholly within one owner's partitions."""
    foreign = [place for place in places if place not in view.owned]
    if not foreign:
        waiting = sorted(place for place in places if place not in view.ready)
        if waiting:
            names = ", ".join(f"{t}[{p}]" for t, p in waiting)
            raise NotReady(f"this instance is taking over {names}: catching up with its end; retry shortly")
        return
    if len(foreign) < len(places):  # some here, some elsewhere
        raise SpansOwners({place: view.owners.get(place) for place in places})
    urls = {view.owners.get(place) for place in foreign}
    if len(urls) > 1:
        raise SpansOwners({place: view.owners.get(place) for place in places})
    topic, partition = sorted(foreign)[0]
    raise NotOwner(topic, partition, urls.pop())


class SoleWriter:
    """One instance writes everything (the default): every check passes, no fencing beyond the
    transactional id."""

    grouped = False

    def start(self, wait_s: float) -> None:
        return None

    def stop(self) -> None:
        return None

    def partition(self, topic: str, subject: str) -> int:
        return partition_of(subject, partitions())

    def owns(self, topic: str, partition: int) -> bool:
        return True

    def check(self, places: Collection[Place]) -> None:
        return None

    def fencing(self, written: Mapping[Place, int]) -> tuple[dict[Any, Any], Any] | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"mode": "single instance"}


class StaticOwnership(SoleWriter):
    """A fixed assignment (tests of the rules on the in-memory log; a deployment that pins partitions)."""

    grouped = True

    def __init__(self, owned: Iterable[Place], owners: Mapping[Place, str] | None = None,
                 ready: Iterable[Place] | None = None, count: int | None = None) -> None:
        owned = frozenset(owned)
        self.count = count or partitions()
        self.view = View(owned, frozenset(owned if ready is None else ready), dict(owners or {}))

    def partition(self, topic: str, subject: str) -> int:
        return partition_of(subject, self.count)

    def owns(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.view.owned

    def check(self, places: Collection[Place]) -> None:
        decide(places, self.view)

    def describe(self) -> dict[str, Any]:
        return {"mode": "static", "owned": sorted(f"{t}[{p}]" for t, p in self.view.owned)}


# -- the Kafka consumer group ---------------------------------------------------------------------------------


def group_id(service: str) -> str:
    """The consumer group of a service's writers."""
    return f"baotuan-{service}-writers"


def _assignor(on_owners: Any) -> Any:
    """A RangeAssignor that shares every member's advertised URL (subscription user data) with every
    member (assignment user data: {topic: {partition: url}})."""
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

    class OwnersAssignor(RangePartitionAssignor):  # type: ignore[misc]
        name = "baotuan-range"
        version = 0

        def __init__(self, url: str) -> None:
            self.url = url

        def metadata(self, topics: Any) -> Any:
            return ConsumerProtocolSubscription(self.version, list(topics), self.url.encode("utf-8"))

        def assign(self, cluster: Any, members: Any) -> Any:
            plain = RangePartitionAssignor.assign(cluster, members)
            urls = {m.member_id: bytes(m.metadata.user_data or b"").decode("utf-8") for m in members}
            owners: dict[str, dict[str, str]] = {}
            for member_id, assignment in plain.items():
                for topic, parts in assignment.assigned_partitions:
                    for p in parts:
                        owners.setdefault(topic, {})[str(p)] = urls.get(member_id, "")
            shared = json.dumps(owners, sort_keys=True).encode("utf-8")
            return {member_id: ConsumerProtocolAssignment(self.version, assignment.assigned_partitions, shared)
                    for member_id, assignment in plain.items()}

        def on_assignment(self, assignment: Any, generation: int) -> None:
            try:
                shared = json.loads(bytes(assignment.user_data or b"{}").decode("utf-8") or "{}")
            except ValueError:
                shared = {}
            on_owners({(topic, int(p)): url for topic, parts in shared.items() for p, url in parts.items()},
                      generation)

    return OwnersAssignor


class GroupMembership(SoleWriter):
    """This instance's membership of ``baotuan-<service>-writers`` (a thread that only keeps it: it reads no
    records; the projection's follower reads every partition as before).

    ``caught_up(places)`` tells whether the projection has applied every partition of ``places`` up to the
    broker's last stable offset, and no transaction is open on it (a previous owner's): then the new owner
    may write there.
    """

    grouped = True

    def __init__(self, *, service: str, instance_id: str, url: str, bootstrap: str, topics: Sequence[str],
                 position: Any, session_timeout_ms: int = 10_000, **config: Any) -> None:
        self.service = service
        self.instance_id = instance_id
        self.url = url
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.position = position  # (topic, partition) -> next offset the projection has applied
        self.session_timeout_ms = session_timeout_ms
        self.config = config
        self.count = partitions()
        self._lock = threading.Lock()
        self._view = View(frozenset(), frozenset(), {})
        self._generation = -1
        self._halt = threading.Event()
        self.joined = threading.Event()
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"{service}-membership", daemon=True)

    # what the writer asks
    def partition(self, topic: str, subject: str) -> int:
        return partition_of(subject, self.count)

    def view(self) -> View:
        with self._lock:
            return self._view

    def owns(self, topic: str, partition: int) -> bool:
        view = self.view()
        return (topic, partition) in view.owned and (topic, partition) in view.ready

    def check(self, places: Collection[Place]) -> None:
        decide(places, self.view())

    def fencing(self, written: Mapping[Place, int]) -> tuple[dict[Any, Any], Any] | None:
        """What a transaction that wrote ``written`` ({place: next offset}) commits with it: the group offsets of
        those places, and the group metadata (member, generation) the broker checks them against (KIP-447).

        Refuses (NotReady) unless this instance, in the assignment it holds now, owns and has caught up with every
        place written; the broker refuses the offsets if that assignment's generation is no longer the group's."""
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        view = self.view()
        if view.metadata is None:
            raise NotReady(f"{self.service} instance {self.instance_id} is not a member of its writers' group yet")
        lost = sorted(place for place in written if place[0] in self.topics and place not in view.ready)
        if lost:
            raise NotReady(f"{self.service} instance {self.instance_id} no longer writes {lost}")
        offsets = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                   for (topic, partition), offset in written.items() if topic in self.topics}
        if not offsets:  # nothing of the group's topics: fence it all the same, with a partition it owns
            if not view.ready:
                raise NotReady(f"{self.service} instance {self.instance_id} owns no partition")
            topic, partition = min(view.ready)
            offsets = {TopicPartition(topic, partition): OffsetAndMetadata(0, "", -1)}
        return offsets, view.metadata

    def describe(self) -> dict[str, Any]:
        view = self.view()
        return {"mode": "group", "group": group_id(self.service), "instance": self.instance_id, "url": self.url,
                "generation": self._generation,
                "owned": sorted(f"{t}[{p}]" for t, p in view.owned),
                "catching_up": sorted(f"{t}[{p}]" for t, p in view.owned - view.ready),
                "last_error": self.last_error}

    # life cycle
    def start(self, wait_s: float) -> None:
        """Join the group; returns once this instance has its first assignment (or after ``wait_s``)."""
        self._thread.start()
        if not self.joined.wait(wait_s):
            log.warning("%s instance %s has no assignment yet after %.0fs", self.service, self.instance_id, wait_s)

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    # the thread
    def _on_owners(self, owners: dict[Place, str], generation: int) -> None:
        with self._lock:
            self._view = View(self._view.owned, self._view.ready, owners, self._view.metadata)

    def _assigned(self, owned: frozenset[Place]) -> None:
        # Every partition of a new assignment is caught up with again (revoking cleared them all: another
        # instance may have written them in between), and its group metadata is known after the poll.
        with self._lock:
            self._view = View(owned, frozenset(), self._view.owners, None)
        log.info("%s instance %s owns %s", self.service, self.instance_id, sorted(owned))

    def _revoked(self) -> None:
        with self._lock:
            self._view = View(frozenset(), frozenset(), self._view.owners, None)

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self._member()
            except Exception as exc:  # broker outage, a fenced member: join again
                self.last_error = str(exc)
                self._revoked()
                log.warning("%s membership error, joining again: %s", self.service, exc)
                self._halt.wait(1.0)

    def _member(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        membership = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                membership._revoked()

            def on_partitions_assigned(self, assigned: Any) -> None:
                membership._assigned(frozenset((tp.topic, tp.partition) for tp in assigned))

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group_id(self.service),
            client_id=f"baotuan-{self.service}-{self.instance_id}", enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="latest",
            partition_assignment_strategy=[_assignor(self._on_owners)(self.url)],
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.session_timeout_ms // 5),
            max_poll_interval_ms=max(30_000, self.session_timeout_ms * 3),
            **self.config)
        offsets = _StableOffsets(self.bootstrap, self.config)
        try:
            # Know every topic's partitions before joining: a member that joins first is assigned nothing of
            # the topics it has no metadata for yet, and waits for a rebalance to get them.
            for topic in self.topics:
                consumer.partitions_for_topic(topic)
            consumer.subscribe(self.topics, listener=Listener())
            while not self._halt.is_set():
                consumer.poll(timeout_ms=200, max_records=1)
                assigned = consumer.assignment()
                if assigned:
                    consumer.pause(*assigned)  # membership only: the projection's follower reads the records
                metadata = consumer.group_metadata()
                generation = getattr(metadata, "generation_id", -1)
                with self._lock:
                    if self._view.metadata is None and generation >= 0 \
                            and self._view.owned == frozenset((tp.topic, tp.partition) for tp in assigned):
                        # the assignment this poll brought, and the generation it belongs to, together
                        self._view = View(self._view.owned, self._view.ready, self._view.owners, metadata)
                        self._generation = generation
                if self._generation >= 0:
                    self.joined.set()
                self._catch_up(offsets)
                self.last_error = None
        finally:
            offsets.close()
            with contextlib.suppress(Exception):
                consumer.close()
            self._revoked()

    def _catch_up(self, offsets: _StableOffsets) -> None:
        """Mark writable the owned partitions no earlier owner's transaction holds open and the projection
        has applied to their end."""
        view = self.view()
        waiting = view.owned - view.ready
        if not waiting:
            return
        stable = offsets.stable_ends(sorted(waiting))
        done = frozenset(place for place, end in stable.items() if end is not None and self.position(*place) >= end)
        if done:
            with self._lock:
                if self._view.owned >= done:
                    self._view = View(self._view.owned, self._view.ready | done, self._view.owners, self._view.metadata)
            log.info("%s instance %s caught up with %s: writing them", self.service, self.instance_id, sorted(done))


class _StableOffsets:
    """End offsets read_committed and read_uncommitted: a partition whose two ends agree has no open
    transaction (its last stable offset is its high watermark)."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any]) -> None:
        from kafka import KafkaConsumer

        self.committed = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                       isolation_level="read_committed", **config)
        self.uncommitted = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                         isolation_level="read_uncommitted", **config)

    def stable_ends(self, places: Sequence[Place]) -> dict[Place, int | None]:
        """Per place, its end offset when no transaction is open on it, else None."""
        from kafka import TopicPartition

        tps = [TopicPartition(t, p) for t, p in places]
        began = time.monotonic()
        lso = self.committed.end_offsets(tps, timeout_ms=5000)
        hwm = self.uncommitted.end_offsets(tps, timeout_ms=max(500, 5000 - int((time.monotonic() - began) * 1000)))
        return {(tp.topic, tp.partition): (lso[tp] if lso.get(tp) == hwm.get(tp) else None) for tp in tps}

    def close(self) -> None:
        for consumer in (self.committed, self.uncommitted):
            with contextlib.suppress(Exception):
                consumer.close()
