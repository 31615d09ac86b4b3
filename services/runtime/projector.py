"""Folding what a log follower delivers into a projection store, whatever the log is.

Each delivered batch (one partition's records, in offset order) is decoded, checked as every
reader checks it (DESIGN §4: the canonical bytes too) and folded in ONE store transaction that
also advances the partition's position. A record that cannot be decoded, checked or folded goes
to the dead-letter topic with the reason, and the batch goes on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import Any

from services.contracts.codec import decode_envelope
from services.contracts.validation import read_envelope
from services.runtime.eventlog import LogRecord
from services.runtime.kafka_io import Ack, OutRecord, record_key
from services.runtime.store import Fold, Pending, ProjectionStore

log = logging.getLogger(__name__)

#: The header that carries a request's idempotency record (key, request hash, result) on its last event.
IDEMPOTENCY_HEADER = "baotuan_idempotency"


def header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


class PublishedCache:
    """The record values this process validated strictly, sealed and produced.

    When the projection meets a record whose bytes are identical to one of them, it decodes it
    but does not validate it again (the writer validated those very bytes before producing them,
    at the latest version of their type). Records written by anyone else, or before this process
    started, take the full path. The envelope is always decoded from the record, never taken from
    the writer's hands, so the fold sees exactly what a rebuild sees. Bounded: the oldest values
    are forgotten first.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._values: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, records: Sequence[OutRecord]) -> None:
        with self._lock:
            for record in records:
                self._values[record.value] = None
            while len(self._values) > self.limit:
                self._values.popitem(last=False)

    def take(self, value: bytes | None) -> bool:
        """Whether ``value`` is one of ours (each is taken once: a second copy is checked in full)."""
        if value is None or not self._values:
            return False
        with self._lock:
            return self._values.pop(value, False) is None

    def __len__(self) -> int:
        return len(self._values)


class Projector:
    """The ``deliver`` callback of a service's follower: decode, check, fold, dead-letter."""

    def __init__(self, *, name: str, store: ProjectionStore, fold: Fold, chained: Collection[str],
                 deadletter: Callable[[bytes, bytes | None], None], published: PublishedCache | None = None) -> None:
        self.name = name
        self.store = store
        self.fold = fold
        self.chained = set(chained)
        self.deadletter = deadletter
        self.published = published
        #: Where this process's last committed transaction ends, per partition it wrote (``fold_committed``).
        self._ends: dict[tuple[str, int], int] = {}

    def __call__(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        # Records the store has applied already (the writer folded them at commit: ``fold_committed``) are
        # neither decoded nor checked again; the store would skip them anyway.
        if not records:
            return
        self.store.seen(topic, partition, records[-1].offset + 1)  # readable: the follower reads read_committed
        applied = self.store.position(topic, partition)
        if records[0].offset < applied:
            records = [record for record in records if record.offset >= applied]
            if not records:
                return
        pending = [self._pending(topic, partition, record) for record in records]
        self._apply(pending, {(topic, partition, record.offset): record for record in records})

    def _pending(self, topic: str, partition: int, record: Any, *, own: bool = False) -> Pending:
        """One record decoded and checked as every reader checks it (DESIGN §4: the canonical bytes too), with
        its idempotency record; undecodable or invalid, it goes to the dead letters and only its offset will
        move. Not checked again: bytes this process validated and produced (``PublishedCache``), and ``own``
        records (committed by this process, folded at commit), whose cache entry is dropped all the same."""
        try:
            envelope = decode_envelope(record.value)
            known = self.published
            if not (known is not None and known.take(record.value)) and not own:
                envelope = read_envelope(envelope, record.value)
            idem_raw = header(record.headers, IDEMPOTENCY_HEADER)
            idem = json.loads(idem_raw) if idem_raw else None
        except Exception as exc:  # park it with the reason, go on
            self._dead_letter(topic, partition, record, exc)
            return Pending(topic, partition, record.offset, None, reason=f"{type(exc).__name__}: {exc}")
        return Pending(topic, partition, record.offset, envelope, idem)

    def _apply(self, pending: Sequence[Pending], raw: dict[tuple[str, int, int], Any]) -> None:
        """Fold ``pending`` in one store transaction; a record whose fold fails goes to the dead letters (its
        ``raw`` record, by place)."""

        def failed(rec: Pending, exc: Exception) -> None:
            self._dead_letter(rec.topic, rec.partition, raw[(rec.topic, rec.partition, rec.offset)], exc)

        self.store.apply_batch(pending, self.fold, chained=self.chained, on_failure=failed)

    # -- folding at commit (issue 16) ---------------------------------------------------------------------

    def fold_committed(self, records: Sequence[OutRecord], acks: Sequence[Ack]) -> bool:
        """Fold the records of a transaction this process has just committed, in the order they were sealed,
        as the follower would fold them when they come back from the log, instead of waiting for it. Returns
        False (nothing folded) unless, in every partition they were written to, nothing the store has not
        applied comes before them: the store's position is at their first offset, or at the end of this
        process's previous transaction there with exactly one offset between: that
        transaction's commit marker, which is written before the next transaction can add the partition.
        Anything else in between (another writer's records, an aborted transaction) is left to the follower.

        The envelopes are decoded from the very bytes produced, not checked again (the writer validated
        them strictly before producing them: the ``PublishedCache`` trust; ``_pending``). The follower skips
        the records when they come back."""
        if not records:
            return True
        firsts: dict[tuple[str, int], int] = {}
        for ack in acks:
            firsts.setdefault((ack.topic, ack.partition), ack.offset)
        with self.store.lock:
            try:
                markers = {}
                for (topic, partition), first in firsts.items():
                    at = self.store.position(topic, partition)
                    if at >= first:
                        continue  # the follower has begun with them (it skips what is folded)
                    if at + 1 == first and self._ends.get((topic, partition)) == at:
                        markers[(topic, partition)] = first  # the previous transaction's marker
                    elif at != first:
                        return False
                delivered = [LogRecord(ack.topic, ack.partition, ack.offset, record_key(record.envelope),
                                       record.value, list(record.headers))
                             for record, ack in zip(records, acks, strict=True)]
                pending = [self._pending(record.topic, record.partition, record, own=True) for record in delivered
                           if record.offset >= self.store.position(record.topic, record.partition)]
                for (topic, partition), first in markers.items():
                    self.store.pass_over(topic, partition, first)
                self._apply(pending, {(r.topic, r.partition, r.offset): r for r in delivered})
                return True
            finally:
                # Where this transaction ends in each partition it wrote. An end left from an older transaction is
                # safe: the one offset it allows between is still that transaction's marker, or the check fails.
                for ack in acks:
                    self._ends[(ack.topic, ack.partition)] = ack.offset + 1

    def _dead_letter(self, topic: str, partition: int, record: Any, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("%s: %s[%d]@%d to dead letters: %s", self.name, topic, partition, record.offset, reason)
        letter = {"topic": topic, "partition": partition, "offset": record.offset,
                  "consumer": self.name, "reason": reason,
                  "value": (record.value or b"").decode("utf-8", errors="replace")}
        try:
            self.deadletter(json.dumps(letter, ensure_ascii=False).encode("utf-8"), record.key)
        except Exception as send_exc:  # the record is parked in the store's _deadletters all the same
            log.warning("%s could not publish a dead letter: %s", self.name, send_exc)
