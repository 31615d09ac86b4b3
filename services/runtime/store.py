"""The projection store: SQLite state plus the consumed offsets, changed in one transaction.

A projection is a pure left fold of the topics. Each record is applied inside one SQLite
transaction that also advances the stored offset of its partition and remembers its
``event_id``; so a crash either keeps both or neither, and a restart resumes exactly after
the last applied record. Deleting the file and restarting rebuilds everything by replay.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.contracts.envelope import ChainHead
from services.contracts.topics import CHECKPOINTS

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS _offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS _events (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _chain (topic TEXT NOT NULL, subject TEXT NOT NULL, seq INTEGER NOT NULL,
    hash TEXT NOT NULL, PRIMARY KEY (topic, subject));
CREATE TABLE IF NOT EXISTS _idempotency (key TEXT PRIMARY KEY, request_hash TEXT NOT NULL,
    result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _outbox (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, subject TEXT NOT NULL,
    data TEXT NOT NULL, causation_id TEXT);
CREATE TABLE IF NOT EXISTS _moved (topic TEXT NOT NULL, partition INTEGER NOT NULL, subject TEXT NOT NULL,
    offset INTEGER NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (topic, partition, subject));
CREATE TABLE IF NOT EXISTS _anchors (topic TEXT NOT NULL, partition INTEGER NOT NULL, end_offset INTEGER NOT NULL,
    digest TEXT NOT NULL, number INTEGER NOT NULL, PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS _announced_keys (key_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS _key_successors (key_id TEXT PRIMARY KEY, successor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _receipts (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    offset INTEGER NOT NULL, subject TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _deadletters (topic TEXT NOT NULL, partition INTEGER NOT NULL,
    offset INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (topic, partition, offset));
"""

Fold = Callable[[sqlite3.Connection, str, dict[str, Any]], None]


@dataclass(frozen=True)
class Pending:
    """One consumed record on its way into the projection."""

    topic: str
    partition: int
    offset: int
    envelope: dict[str, Any] | None
    idempotency: dict[str, Any] | None = None
    reason: str | None = None  # why a record without envelope could not be decoded


#: What a folded record settles at the end of its batch: its event id (the outbox no longer owes it) and,
#: on an anchored topic, its receipt row.
_Settled = tuple[str, tuple[Any, ...] | None]


@dataclass
class _Later:
    """The bookkeeping of a batch no fold reads, written at the batch's end (``executemany``)."""

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset per partition
    heads: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)  # (topic, subject) -> seq, hash
    settled: list[_Settled] = field(default_factory=list)

    def write(self, conn: sqlite3.Connection) -> None:
        if self.heads:
            conn.executemany("INSERT OR REPLACE INTO _chain VALUES (?,?,?,?)",
                             [(topic, subject, seq, digest) for (topic, subject), (seq, digest) in self.heads.items()])
        if self.settled:
            conn.executemany("DELETE FROM _outbox WHERE event_id=?", [(event_id,) for event_id, _ in self.settled])
            receipts = [receipt for _, receipt in self.settled if receipt is not None]
            if receipts:
                conn.executemany("INSERT OR REPLACE INTO _receipts VALUES (?,?,?,?,?,?,?)", receipts)
        if self.offsets:
            conn.executemany("INSERT OR REPLACE INTO _offsets VALUES (?,?,?)",
                             [(topic, partition, offset) for (topic, partition), offset in self.offsets.items()])


#: How often a store's WAL is copied into its database file (``ProjectionStore._copy_wal``).
WAL_COPY_S = 0.2


class ProjectionStore:
    """SQLite file holding one service's projection and the offsets it was built from."""

    def __init__(self, path: Path | str, schema_sql: str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit is atomic and survives the process (the WAL is written before COMMIT returns), but
        # is not fsynced; a crash of the machine may take back the last commits, and the store then resumes at
        # the offsets it kept and folds those records again (Kafka holds every acknowledged write; the store is
        # derived from it, offsets and state in one transaction). FULL fsynced every fold: ~0.7 ms a commit
        # here, in every write's wait for its fold (docs/benchmarks.md, "Issue 16, third stop").
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # The WAL is copied into the database by a thread of its own (``_copy_wal``), not by whichever commit
        # found it past 1,000 pages: that copy and its fsyncs took ~15 ms, inside a fold every ~40 posts (a
        # fold's commit writes ~25 pages), in the wait of the requests behind it (docs/benchmarks.md).
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_BOOKKEEPING + schema_sql)
        self.lock = threading.RLock()
        self.applied = threading.Condition(self.lock)
        #: The next offset per (topic, partition), as committed, or further in memory (``advance``): read on
        #: every poll and by every waiting writer, so kept here rather than queried.
        self._positions: dict[tuple[str, int], int] = {
            (str(r[0]), int(r[1])): int(r[2]) for r in self._conn.execute("SELECT topic, partition, next_offset "
                                                                          "FROM _offsets")}
        #: How far the follower has read each partition (``seen``): in memory only, from 0 at each start.
        self._readable: dict[tuple[str, int], int] = {}
        #: Partitions ``advance`` moved past records-free offsets, not written to the file yet.
        self._unsaved: set[tuple[str, int]] = set()
        #: The open speculation (group commit), whose deferred folds a read settles first.
        self._speculation: Speculation | None = None
        #: Anchoring (DESIGN §4): the record topics this store's service writes and signs checkpoints
        #: of, and its name (the ``source`` of its own checkpoints). Set by the service (``anchor``).
        self.anchored: frozenset[str] = frozenset()
        self.writer: str | None = None
        self._closing = threading.Event()
        self._wal_copier: threading.Thread | None = None
        if str(path) != ":memory:":
            self._wal_copier = threading.Thread(target=self._copy_wal, name=f"wal-{self.path.stem}", daemon=True)
            self._wal_copier.start()

    def _copy_wal(self) -> None:
        """Copy the WAL's committed pages into the database file every ``WAL_COPY_S`` (a PASSIVE checkpoint on a
        connection of this thread: it waits for no reader or writer, and the GIL is released while it runs)."""
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            while not self._closing.wait(WAL_COPY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:  # busy or closing: the next round copies it
                    continue
        finally:
            conn.close()

    def anchor(self, writer: str, topics: Collection[str]) -> None:
        """Keep, per partition of ``topics``, the stream heads that moved since ``writer``'s last checkpoint."""
        self.anchored = frozenset(topics)
        self.writer = writer

    def close(self) -> None:
        self._closing.set()
        if self._wal_copier is not None:
            self._wal_copier.join(timeout=10)
        with self.lock:
            with suppress(sqlite3.Error):
                self._save_positions()
            self._conn.close()

    def _save_positions(self) -> None:
        """Write the positions ``advance`` kept in memory (else the next start reads those offsets again)."""
        _Later(offsets={key: self._positions[key] for key in self._unsaved}).write(self._conn)
        self._unsaved.clear()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for queries; holds the store lock so no fold runs half-way under it."""
        with self.lock:
            self._settle()
            yield self._conn

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            self._settle()
            return list(self._conn.execute(sql, params).fetchall())

    def query_one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Row | None:
        with self.lock:
            self._settle()
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def _settle(self) -> None:
        """Before a read inside a speculation: fold what it deferred, so the read sees it (``Speculation.defer``)."""
        speculation = self._speculation
        if speculation is not None and speculation.deferred:
            speculation.settle()

    # -- applying records ------------------------------------------------------------------------------

    def apply(self, topic: str, partition: int, offset: int, envelope: dict[str, Any] | None,
              fold: Fold, *, chain: bool, idempotency: dict[str, Any] | None = None) -> bool:
        """Apply one record and advance the offset in one transaction (see ``apply_batch``)."""
        failures = self.apply_batch([Pending(topic, partition, offset, envelope, idempotency)], fold,
                                    chained={topic} if chain else set())
        if failures:
            raise failures[0][1]
        return True

    def apply_batch(self, records: Sequence[Pending], fold: Fold, *, chained: Collection[str],
                    on_failure: Callable[[Pending, Exception], None] | None = None,
                    ) -> list[tuple[Pending, Exception]]:
        """Fold a batch of records and advance their offsets in ONE transaction.

        Records at offsets already applied are skipped; a record whose ``event_id`` was already
        seen only advances the offset (and the chain head of an owned topic). A record whose fold
        raises is rolled back alone (a savepoint), handed to ``on_failure`` (the dead-letter
        path) and skipped, and the batch goes on. ``envelope=None`` marks a record that could
        not even be decoded: only its offset advances.

        The bookkeeping no fold reads (the partitions' positions, the chain heads, the receipts, the
        outbox rows the records settle) is collected over the batch and written at its end with one
        ``executemany`` per table, in the same transaction: the result is the one record-by-record
        writes give, in a few statements instead of several per record. ``_events`` is written per
        record, before its fold (folds read it: ``place_of``, ``emit``).
        """
        with self.lock:
            failures = self._apply(records, fold, chained, careful=False, on_failure=on_failure)
            if failures is None:  # a fold raised: the batch again, each record in a savepoint of its own
                failures = self._apply(records, fold, chained, careful=True, on_failure=on_failure)
                assert failures is not None
            self.applied.notify_all()
        return failures

    def _apply(self, records: Sequence[Pending], fold: Fold, chained: Collection[str], *, careful: bool,
               on_failure: Callable[[Pending, Exception], None] | None) -> list[tuple[Pending, Exception]] | None:
        """One pass of ``apply_batch``. Not ``careful``: no savepoint per record (two statements a record
        fewer); if a fold raises, everything is rolled back and None returned (the caller runs the careful
        pass, which gives exactly the result the careful pass alone would: folds only write to the store)."""
        failures: list[tuple[Pending, Exception]] = []
        conn = self._conn
        positions = dict(self._positions)
        later = _Later()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for rec in records:
                key = (rec.topic, rec.partition)
                if rec.offset < positions.get(key, 0):
                    continue
                if rec.envelope is None:
                    conn.execute("INSERT OR REPLACE INTO _deadletters VALUES (?,?,?,?)",
                                 (rec.topic, rec.partition, rec.offset, (rec.reason or "undecodable")[:2000]))
                elif not careful:
                    try:
                        later.settled.append(self._fold_one(conn, rec, fold, rec.topic in chained, later))
                    except Exception:
                        conn.execute("ROLLBACK")
                        return None
                else:
                    conn.execute("SAVEPOINT record")
                    try:
                        settled = self._fold_one(conn, rec, fold, rec.topic in chained, later)
                        conn.execute("RELEASE SAVEPOINT record")
                    except Exception as exc:
                        conn.execute("ROLLBACK TO SAVEPOINT record")
                        conn.execute("RELEASE SAVEPOINT record")
                        if rec.topic in chained:  # the record is in the log all the same
                            self._advance_head(conn, rec, later)
                        failures.append((rec, exc))
                        if on_failure is not None:
                            on_failure(rec, exc)
                        conn.execute("INSERT OR REPLACE INTO _deadletters VALUES (?,?,?,?)",
                                     (rec.topic, rec.partition, rec.offset, f"{type(exc).__name__}: {exc}"[:2000]))
                    else:
                        later.settled.append(settled)
                positions[key] = rec.offset + 1
                later.offsets[key] = rec.offset + 1
            for key in self._unsaved:  # the positions past markers go with this batch
                later.offsets.setdefault(key, positions[key])
            later.write(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._positions.update(later.offsets)
        self._unsaved.clear()
        return failures

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        """The follower has read a partition up to ``next_offset``: readable there, to every ``read_committed``
        reader (``seen``), and the position moves past the offsets that held no record for the projection (a
        transaction's marker, an aborted transaction's records): never backwards."""
        with self.lock:
            self.seen(topic, partition, next_offset)
            self.pass_over(topic, partition, next_offset)

    def pass_over(self, topic: str, partition: int, next_offset: int) -> None:
        """Move a partition's position past offsets that hold no record for the projection (never backwards).
        Kept in memory, written with the next batch (or on close): after a crash those offsets are only read
        again, they change nothing."""
        key = (topic, partition)
        with self.lock:
            if next_offset > self._positions.get(key, 0):
                self._positions[key] = next_offset
                self._unsaved.add(key)
                self.applied.notify_all()

    def seen(self, topic: str, partition: int, next_offset: int) -> None:
        """The follower has read a partition's records up to ``next_offset`` (``read_committed``): whatever lies
        before it is readable to every reader of the log, not only folded here (``wait_until(readable=True)``)."""
        key = (topic, partition)
        with self.lock:
            if next_offset > self._readable.get(key, 0):
                self._readable[key] = next_offset
                self.applied.notify_all()

    # -- speculation (group commit) ----------------------------------------------------------------------

    @contextmanager
    def speculating(self) -> Iterator[Speculation]:
        """A transaction the writer folds a group's events into *before* they are published, so each
        request of the group is validated against the projection plus the requests before it; always
        rolled back (the records are folded for real when they come back from the log). Holds the store
        lock throughout: nobody else reads the speculative state."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            speculation = self._speculation = Speculation(self)
            try:
                yield speculation
            finally:
                speculation.deferred.clear()  # never folded: nothing read them
                self._speculation = None
                self._conn.execute("ROLLBACK")

    def _advance_head(self, conn: sqlite3.Connection, rec: Pending, later: _Later | None = None) -> None:
        """The chain head follows the log itself, duplicates and refused records included; so do the heads
        moved since the last checkpoint of an anchored topic, and the anchors of the writer's own checkpoints.
        ``later``: the batch's deferred bookkeeping, which takes the new head (else it is written now)."""
        envelope = rec.envelope
        assert envelope is not None
        subject, seq, digest = envelope["subject"], envelope["seq"], envelope["hash"]
        if later is not None:
            later.heads[(rec.topic, subject)] = (seq, digest)
        else:
            conn.execute("INSERT OR REPLACE INTO _chain VALUES (?,?,?,?)", (rec.topic, subject, seq, digest))
        if rec.topic in self.anchored:
            anchor = conn.execute("SELECT end_offset FROM _anchors WHERE topic=? AND partition=?",
                                  (rec.topic, rec.partition)).fetchone()
            if anchor is None or rec.offset >= anchor[0]:
                conn.execute("INSERT OR REPLACE INTO _moved VALUES (?,?,?,?,?,?)",
                             (rec.topic, rec.partition, subject, rec.offset, seq, digest))
        elif rec.topic == CHECKPOINTS and envelope.get("type") == "ChainCheckpoint" \
                and envelope.get("source") == self.writer:
            data = envelope["data"]
            if data.get("next_key"):
                conn.execute("INSERT OR IGNORE INTO _announced_keys VALUES (?)", (data["next_key"]["key_id"],))
                # The key that signed the announcement is replaced by it: no instance of the writer signs with
                # it again (docs/scaling.md, "Keys").
                conn.execute("INSERT OR IGNORE INTO _key_successors VALUES (?,?)",
                             (data.get("key_id"), data["next_key"]["key_id"]))
            for part in data["partitions"]:
                # Checkpoints of a topic come in number order; a replay may meet them before or after the
                # records they cover, so the moved heads they cover go now or are never kept.
                conn.execute("INSERT OR REPLACE INTO _anchors VALUES (?,?,?,?,?)",
                             (data["topic"], part["partition"], part["end_offset"], part["heads_digest"],
                              data["number"]))
                conn.execute("DELETE FROM _moved WHERE topic=? AND partition=? AND offset<?",
                             (data["topic"], part["partition"], part["end_offset"]))

    def _fold_one(self, conn: sqlite3.Connection, rec: Pending, fold: Fold, chain: bool,
                  later: _Later) -> _Settled:
        """Fold one record (inside its savepoint); what it settles in the deferred bookkeeping, which the
        caller keeps only when the fold did not raise."""
        envelope = rec.envelope
        assert envelope is not None
        event_id = envelope["event_id"]
        # One statement notes the record and tells whether its event was seen before (nothing inserted).
        seen = conn.execute("INSERT OR IGNORE INTO _events VALUES (?,?,?,?)",
                            (event_id, rec.topic, rec.partition, rec.offset)).rowcount == 0
        if chain:
            self._advance_head(conn, rec, later)
        # A derived event has arrived in the log: it is no longer owed (its _outbox row goes at the batch's end).
        if seen:
            return event_id, None
        receipt = None
        if rec.topic in self.anchored:  # what a receipt of this event says, for a repeated request
            receipt = (event_id, rec.topic, rec.partition, rec.offset, envelope["subject"], envelope["seq"],
                       envelope["hash"])
        fold(conn, rec.topic, envelope)
        if rec.idempotency is not None:
            conn.execute("INSERT OR IGNORE INTO _idempotency VALUES (?,?,?)",
                         (rec.idempotency["key"], rec.idempotency["hash"],
                          json.dumps(rec.idempotency.get("result", {}))))
        return event_id, receipt

    # -- bookkeeping reads ------------------------------------------------------------------------------

    def positions(self) -> dict[str, dict[int, int]]:
        """Next offset to consume, per topic and partition."""
        out: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in sorted(self._positions.items()):
            out.setdefault(topic, {})[partition] = offset
        return out

    def position(self, topic: str, partition: int) -> int:
        return self._positions.get((topic, partition), 0)

    def chain_head(self, topic: str, subject: str) -> ChainHead:
        row = self.query_one("SELECT seq, hash FROM _chain WHERE topic=? AND subject=?", (topic, subject))
        return ChainHead(int(row[0]), str(row[1])) if row else ChainHead()

    def idempotent_result(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """(request hash, result) stored for an idempotency key, if it was used before."""
        row = self.query_one("SELECT request_hash, result FROM _idempotency WHERE key=?", (key,))
        return (str(row[0]), json.loads(row[1])) if row else None

    def moved_heads(self, topic: str, partition: int, below: int) -> list[tuple[str, int, str]]:
        """(subject, seq, hash) of the streams of ``topic[partition]`` that moved since the last checkpoint,
        by records below offset ``below``."""
        rows = self.query("SELECT subject, seq, hash FROM _moved WHERE topic=? AND partition=? AND offset<? "
                          "ORDER BY subject", (topic, partition, below))
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def anchors(self, topic: str) -> tuple[int, dict[int, tuple[int, str]]]:
        """The number of the writer's last checkpoint of ``topic`` (0: none yet) and, per partition, its
        end offset and heads digest."""
        rows = self.query("SELECT partition, end_offset, digest, number FROM _anchors WHERE topic=?", (topic,))
        number = max((int(r[3]) for r in rows), default=0)
        return number, {int(r[0]): (int(r[1]), str(r[2])) for r in rows}

    def announced(self, key_id: str) -> bool:
        """Whether one of the writer's checkpoints in the log announced the key ``key_id``."""
        return self.query_one("SELECT 1 FROM _announced_keys WHERE key_id=?", (key_id,)) is not None

    def successor(self, key_id: str) -> str | None:
        """The key a checkpoint of the writer in the log announced while signed with ``key_id`` (None: none yet)."""
        row = self.query_one("SELECT successor FROM _key_successors WHERE key_id=?", (key_id,))
        return None if row is None else str(row[0])

    def uncovered(self, topics: Collection[str]) -> int:
        """How many records of ``topics`` this store has applied past the writer's last checkpoint of them."""
        count = 0
        for topic in topics:
            ends = self.anchors(topic)[1]
            for (name, partition), offset in list(self._positions.items()):
                if name == topic:
                    count += max(0, offset - ends.get(partition, (0, ""))[0])
        return count

    def receipts_of(self, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Where the events of ``event_ids`` sit and what they are (unsigned receipts), in that order."""
        found: dict[str, dict[str, Any]] = {}
        with self.lock:
            for event_id in event_ids:
                row = self._conn.execute("SELECT topic, partition, offset, subject, seq, hash FROM _receipts "
                                         "WHERE event_id=?", (event_id,)).fetchone()
                if row is not None:
                    found[event_id] = {"topic": row[0], "partition": row[1], "offset": row[2],
                                       "subject": row[3], "seq": row[4], "hash": row[5]}
        return [found[e] for e in event_ids if e in found]

    def outbox(self, limit: int = 500, subject: str | None = None) -> list[sqlite3.Row]:
        """Derived events a fold asked for that are not in the log yet (oldest first; of ``subject`` only
        when given)."""
        if subject is not None:
            return self.query("SELECT rowid, event_id, type, subject, data, causation_id FROM _outbox "
                              "WHERE subject=? ORDER BY rowid LIMIT ?", (subject, limit))
        return self.query("SELECT rowid, event_id, type, subject, data, causation_id FROM _outbox "
                          "ORDER BY rowid LIMIT ?", (limit,))

    def has_event(self, event_id: str) -> bool:
        return self.query_one("SELECT 1 FROM _events WHERE event_id=?", (event_id,)) is not None

    def deadletter_count(self) -> int:
        row = self.query_one("SELECT COUNT(*) FROM _deadletters")
        return int(row[0]) if row else 0

    def wait_until(self, targets: dict[tuple[str, int], int], timeout: float, *, readable: bool = False) -> bool:
        """Block until every (topic, partition) has been applied up to its target next offset; with ``readable``,
        until the follower has also read that far (``seen``): the records are readable to every reader."""
        def done() -> bool:
            return all(self.position(t, p) >= off and (not readable or self._readable.get((t, p), 0) >= off)
                       for (t, p), off in targets.items())

        with self.applied:
            return self.applied.wait_for(done, timeout=timeout)


class Speculation:
    """The open speculative transaction of ``ProjectionStore.speculating``."""

    def __init__(self, store: ProjectionStore) -> None:
        self.store = store
        self._depth = 0
        #: Folds put off until something reads the store (``defer``): (topic, envelope, fold, chain, idempotency).
        self.deferred: list[tuple[str, dict[str, Any], Fold, bool, dict[str, Any] | None]] = []

    @contextmanager
    def step(self) -> Iterator[None]:
        """One request of the group: its speculative folds are undone if it raises."""
        conn = self.store._conn
        name = f"request{self._depth}"
        self._depth += 1
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.deferred.clear()  # the request's own, undone with it
            conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            conn.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            self._depth -= 1

    def fold(self, topic: str, envelope: dict[str, Any], fold: Fold, *, chain: bool,
             idempotency: dict[str, Any] | None = None) -> None:
        """Fold one sealed (not yet published) event as if it had come back from the log."""
        rec = Pending(topic, -1, -1, envelope, idempotency)
        later = _Later()  # written at once: the next request of the group reads the heads it moved
        later.settled.append(self.store._fold_one(self.store._conn, rec, fold, chain, later))
        later.write(self.store._conn)

    def defer(self, topic: str, envelope: dict[str, Any], fold: Fold, *, chain: bool,
              idempotency: dict[str, Any] | None = None) -> None:
        """``fold`` it when the store is next read (any query, ``reading``, a chain head), or by ``settle``; if
        nothing reads the store before the speculation ends, it is never folded. The last request of a group
        is folded for real when its records come back from the log: folding it speculatively too served
        nobody (for a 1,000-entry batch, alone in its group, that was a third of its CPU)."""
        self.deferred.append((topic, envelope, fold, chain, idempotency))

    def settle(self) -> None:
        """Fold what was deferred, in order."""
        while self.deferred:
            pending, self.deferred = self.deferred, []
            for topic, envelope, fold, chain, idempotency in pending:
                self.fold(topic, envelope, fold, chain=chain, idempotency=idempotency)


def emit(conn: sqlite3.Connection, *, event_id: str, event_type: str, subject: str, data: dict[str, Any],
         causation_id: str | None) -> None:
    """From inside a fold: owe a derived event (deterministic ``event_id``) to the log.

    The service's reactor publishes it after the fold commits; folding it removes it from
    the outbox. An event already in the log is not owed again.
    """
    if conn.execute("SELECT 1 FROM _events WHERE event_id=?", (event_id,)).fetchone():
        return
    conn.execute("INSERT OR IGNORE INTO _outbox VALUES (?,?,?,?,?)",
                 (event_id, event_type, subject, json.dumps(data, ensure_ascii=False), causation_id))


def place_of(conn: sqlite3.Connection, event_id: str) -> tuple[int, int]:
    """From inside a fold: the (partition, offset) of the record of ``event_id``, the one being folded
    included (the store notes it before it calls the fold)."""
    row = conn.execute("SELECT partition, offset FROM _events WHERE event_id=?", (event_id,)).fetchone()
    return int(row[0]), int(row[1])
