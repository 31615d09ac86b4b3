"""A poll folded in one batch leaves the store exactly as folding its records one by one does.

The store writes a batch's bookkeeping (positions, chain heads, receipts, settled outbox rows) at its
end with ``executemany``, and folds without a savepoint per record unless a fold raises: a record
whose fold raises goes to the dead letters alone, the others are folded, and the tables hold what
record-by-record application gives.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from services.contracts.envelope import GENESIS, ChainHead, new_envelope, seal
from services.runtime.store import Pending, ProjectionStore, emit

TOPIC = "baotuan.test.v1"
SCHEMA = "CREATE TABLE IF NOT EXISTS totals (subject TEXT PRIMARY KEY, total INTEGER NOT NULL);"


def fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    amount = envelope["data"]["amount"]
    if amount < 0:
        raise ValueError("a negative amount")
    conn.execute("INSERT INTO totals VALUES (?, ?) ON CONFLICT (subject) DO UPDATE SET total = total + excluded.total",
                 (envelope["subject"], amount))
    if amount == 7:  # owes a derived event, which arrives later in the same poll
        emit(conn, event_id=envelope["data"]["owes"], event_type="Derived", subject=envelope["subject"],
             data={}, causation_id=envelope["event_id"])


def records() -> list[Pending]:
    heads: dict[str, ChainHead] = {}
    out: list[Pending] = []
    derived = new_envelope(event_type="Derived", version=1, source="test", subject="a", data={"amount": 1},
                           actor="t")
    amounts = [("a", 5), ("b", 3), ("a", -1), ("a", 7), ("b", 2), ("a", 1)]
    for offset, (subject, amount) in enumerate(amounts):
        data: dict[str, Any] = {"amount": amount}
        if amount == 7:
            data["owes"] = derived["event_id"]
        envelope = seal(new_envelope(event_type="Added", version=1, source="test", subject=subject, data=data,
                                     actor="t"), heads.get(subject, GENESIS))
        heads[subject] = ChainHead(envelope["seq"], envelope["hash"])
        out.append(Pending(TOPIC, 0, offset, envelope, {"key": f"k{offset}", "hash": "h", "result": {"n": offset}}))
    sealed = seal(derived, heads["a"])
    out.append(Pending(TOPIC, 0, len(out), sealed))
    out.append(Pending(TOPIC, 0, len(out), out[1].envelope))  # the same event again: only the position moves
    out.append(Pending(TOPIC, 0, len(out), None, reason="undecodable"))
    return out


def dump(store: ProjectionStore) -> dict[str, list[tuple[Any, ...]]]:
    tables = ["totals", "_offsets", "_events", "_chain", "_idempotency", "_outbox", "_receipts", "_deadletters"]
    return {table: sorted(tuple(row) for row in store.query(f"SELECT * FROM {table}")) for table in tables}


def test_a_batch_with_a_failing_fold_equals_record_by_record_application(tmp_path: Path) -> None:
    poll = records()
    batch = ProjectionStore(tmp_path / "batch.sqlite", SCHEMA)
    batch.anchor("test", [TOPIC])
    failed: list[int] = []
    failures = batch.apply_batch(poll, fold, chained={TOPIC}, on_failure=lambda rec, exc: failed.append(rec.offset))
    one_by_one = ProjectionStore(tmp_path / "single.sqlite", SCHEMA)
    one_by_one.anchor("test", [TOPIC])
    for rec in poll:
        one_by_one.apply_batch([rec], fold, chained={TOPIC})
    assert [rec.offset for rec, _ in failures] == failed == [2]
    state = dump(batch)
    assert state == dump(one_by_one)
    assert state["totals"] == [("a", 5 + 7 + 1 + 1), ("b", 5)]  # the derived event adds 1 too
    assert state["_offsets"] == [(TOPIC, 0, 9)]
    assert state["_outbox"] == []  # owed by offset 3, settled by offset 6 of the same poll
    assert [row[2] for row in state["_deadletters"]] == [2, 8]
    # The head follows the log itself: b's first record, repeated at offset 7, is b's head.
    assert {row[1]: row[2] for row in state["_chain"]} == {"a": 5, "b": 1}
    assert len(state["_receipts"]) == len(state["_events"]) == 6
    # A second delivery of the same poll changes nothing.
    batch.apply_batch(poll, fold, chained={TOPIC})
    assert dump(batch) == state
