"""The writer's speculation (group commit): a request's events are folded into the open speculative
transaction only once something reads the store, so the next request of the group decides on top of them;
the last request's events, which nothing reads before the speculation is rolled back, are never folded
twice (they are folded for real when they come back from the log)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from services.contracts.envelope import GENESIS, new_envelope, seal
from services.runtime.store import ProjectionStore

TOPIC = "baotuan.test.v1"
SCHEMA = "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY);"


class CountingFold:
    def __init__(self) -> None:
        self.folded: list[str] = []

    def __call__(self, conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
        self.folded.append(envelope["event_id"])
        conn.execute("INSERT INTO seen VALUES (?)", (envelope["event_id"],))


def event(n: int) -> dict[str, Any]:
    return seal(new_envelope(event_type="Added", version=1, source="test", subject=f"s{n}", data={"n": n},
                             actor="t"), GENESIS)


def seen(store: ProjectionStore) -> list[str]:
    return [str(row[0]) for row in store.query("SELECT event_id FROM seen ORDER BY rowid")]


def test_a_deferred_fold_runs_only_when_the_store_is_read_and_in_order() -> None:
    store, fold = ProjectionStore(":memory:", SCHEMA), CountingFold()
    first, second = event(1), event(2)
    with store.speculating() as spec, spec.step():
        spec.defer(TOPIC, first, fold, chain=True)
        spec.defer(TOPIC, second, fold, chain=True)
        assert fold.folded == []
        assert seen(store) == [first["event_id"], second["event_id"]], "a read sees what was deferred"
        assert store.chain_head(TOPIC, "s1").seq == 1
    assert seen(store) == [], "rolled back with the speculation"


def test_what_nothing_read_is_never_folded() -> None:
    store, fold = ProjectionStore(":memory:", SCHEMA), CountingFold()
    with store.speculating() as spec:
        with spec.step():
            spec.defer(TOPIC, event(1), fold, chain=True)
            spec.settle()  # a request followed by another: folded at its end
        with spec.step():
            spec.defer(TOPIC, event(2), fold, chain=True)  # the last request of the group
    assert len(fold.folded) == 1
    with store.speculating():
        assert seen(store) == [], "the next speculation starts with nothing deferred"


def test_a_refused_request_takes_its_deferred_folds_with_it() -> None:
    store, fold = ProjectionStore(":memory:", SCHEMA), CountingFold()
    kept, refused = event(1), event(2)
    with store.speculating() as spec:
        with spec.step():
            spec.defer(TOPIC, kept, fold, chain=True)
            spec.settle()
        with pytest.raises(ValueError), spec.step():
            spec.defer(TOPIC, refused, fold, chain=True)
            raise ValueError("refused")
        assert seen(store) == [kept["event_id"]]
    assert fold.folded == [kept["event_id"]]
