"""The store's positions: kept in memory for the readers that ask on every poll, committed with the folds.

A position moved past offsets that hold no record (a transaction's marker, an aborted transaction's
records) is kept in memory and written with the next batch or on close; a crash before that only makes
the next start read those offsets again. A position never moves backwards.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from services.contracts.envelope import GENESIS, new_envelope, seal
from services.runtime.store import Pending, ProjectionStore

TOPIC = "baotuan.test.v1"
SCHEMA = "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY);"


def fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    conn.execute("INSERT INTO seen VALUES (?)", (envelope["event_id"],))


def record(offset: int, partition: int = 0) -> Pending:
    envelope = seal(new_envelope(event_type="Added", version=1, source="test", subject=f"s{offset}",
                                 data={"n": offset}, actor="t"), GENESIS)
    return Pending(TOPIC, partition, offset, envelope)


def on_file(path: Path) -> dict[tuple[str, int], int]:
    """The positions committed to the file, read by a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT topic, partition, next_offset FROM _offsets")
        return {(str(t), int(p)): int(o) for t, p, o in rows}
    finally:
        conn.close()


def test_an_advance_is_in_memory_until_the_next_batch_commits_it(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    store = ProjectionStore(path, SCHEMA)
    store.apply_batch([record(0), record(1)], fold, chained=())
    assert store.position(TOPIC, 0) == 2 and on_file(path) == {(TOPIC, 0): 2}
    store.advance(TOPIC, 0, 3)  # past a commit marker
    store.advance(TOPIC, 1, 5)  # an aborted transaction on another partition
    assert (store.position(TOPIC, 0), store.position(TOPIC, 1)) == (3, 5)
    assert store.positions() == {TOPIC: {0: 3, 1: 5}}
    assert on_file(path) == {(TOPIC, 0): 2}, "no write per marker"
    store.apply_batch([record(3)], fold, chained=())
    assert on_file(path) == {(TOPIC, 0): 4, (TOPIC, 1): 5}, "the batch carries the advances with it"
    assert store.wait_until({(TOPIC, 0): 4, (TOPIC, 1): 5}, timeout=0.1)
    store.close()


def test_a_record_behind_the_position_is_not_folded_and_positions_never_move_back(tmp_path: Path) -> None:
    store = ProjectionStore(tmp_path / "p.sqlite", SCHEMA)
    store.advance(TOPIC, 0, 2)
    store.advance(TOPIC, 0, 1)
    assert store.position(TOPIC, 0) == 2
    poll = [record(0), record(1), record(2)]
    store.apply_batch(poll, fold, chained=())
    third = poll[2].envelope
    assert third is not None
    assert [r[0] for r in store.query("SELECT event_id FROM seen")] == [third["event_id"]]
    assert store.position(TOPIC, 0) == 3
    store.close()


def test_close_writes_the_advances_and_a_crash_only_reads_them_again(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    store = ProjectionStore(path, SCHEMA)
    store.apply_batch([record(0)], fold, chained=())
    store.advance(TOPIC, 0, 2)
    store.close()
    again = ProjectionStore(path, SCHEMA)
    assert again.position(TOPIC, 0) == 2, "a clean stop keeps the advance"
    again.advance(TOPIC, 0, 4)
    again._conn.close()  # a crash: nothing written on the way out
    after = ProjectionStore(path, SCHEMA)
    assert after.position(TOPIC, 0) == 2, "the committed position: the marker's offsets are read again"
    assert after.uncovered([TOPIC]) == 2
    after.close()
