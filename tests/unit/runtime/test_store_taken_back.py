"""The projection store commits without an fsync (``PRAGMA synchronous=NORMAL``): a crash of the machine may
take back its last commits. Kafka holds every acknowledged write and the store keeps its offsets with its
state, so a store set back to an earlier commit resumes there and folds the rest again: the same books, the
same answers to retried requests, and the chains continue where the log ends (not where the store was)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from conftest import bearer, running
from test_pipelining import assert_unbroken, chain, post, register

from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

VILLAGES = ("back-village", "other-village")


def books(client: Any, admin: str, villages: tuple[str, ...] = VILLAGES) -> dict[str, Any]:
    """Each village's entries and trial balance, as its readers get them."""
    out: dict[str, Any] = {}
    for village in villages:
        entries = client.get(f"/v1/collectives/{village}/entries", headers=bearer(admin))
        balance = client.get(f"/v1/collectives/{village}/trial-balance", headers=bearer(admin))
        assert entries.status_code == 200 and balance.status_code == 200
        out[village] = (entries.get_json()["items"], balance.get_json())
    return out


def test_a_store_that_lost_its_last_commits_folds_them_again(memory_settings: Settings, tmp_path: Path) -> None:
    log = InMemoryLog()
    assert memory_settings.tokens_file is not None
    admin = add_token(memory_settings.tokens_file, name="admin", role="admin")
    store = memory_settings.data_dir / "ledger.sqlite"
    earlier = tmp_path / "earlier.sqlite"
    with running(create_app, memory_settings, log=log) as client:
        for village in VILLAGES:
            assert register(client, admin, village).status_code == 201
        assert post(client, admin, "back-village", "之前", key="before-1").status_code == 201
        # The store as a crash of the machine could leave it: an earlier commit, its WAL's later ones gone.
        with sqlite3.connect(store) as source, sqlite3.connect(earlier) as copy:
            source.backup(copy)
        answered = post(client, admin, "back-village", "之后", key="after-1")
        assert answered.status_code == 201
        assert post(client, admin, "other-village", "别村").status_code == 201
        reversed_ = client.post(f"/v1/collectives/back-village/entries/{answered.get_json()['entry_id']}/reverse",
                                headers=bearer(admin), json={"date": "2026-03-16", "reason": "冲销"})
        assert reversed_.status_code == 201, reversed_.get_json()
        before = books(client, admin)
    records = len(log.records(LEDGER_ENTRIES))

    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    shutil.copy(earlier, store)
    with sqlite3.connect(store) as kept:  # the premise: the store really is behind the log
        assert kept.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 1

    with running(create_app, memory_settings, log=log) as client:
        assert books(client, admin) == before
        # A retried request gets its first answer (its key rides in the log), and writes nothing.
        retried = post(client, admin, "back-village", "之后", key="after-1")
        assert retried.status_code == 201
        assert retried.get_json()["entry_id"] == answered.get_json()["entry_id"]
        assert len(log.records(LEDGER_ENTRIES)) == records
        # The next write continues each chain after the log's head, not the store's earlier one.
        assert post(client, admin, "back-village", "再记").status_code == 201
        assert post(client, admin, "other-village", "再记").status_code == 201
        assert len(log.records(LEDGER_ENTRIES)) == records + 2
    for village in VILLAGES:
        assert_unbroken(chain(log, LEDGER_ENTRIES, village))


def test_the_store_commits_without_fsync(memory_settings: Settings) -> None:
    """What the test above is about: the setting a fold's commit runs with (FULL = 2 would fsync each)."""
    log = InMemoryLog()
    with running(create_app, memory_settings, log=log):
        pass
    from services.runtime.store import ProjectionStore
    opened = ProjectionStore(memory_settings.data_dir / "ledger.sqlite", "")
    try:
        with opened.reading() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        opened.close()


def test_the_wal_is_copied_into_the_database_off_the_commit_path(tmp_path: Path) -> None:
    """No commit copies the WAL into the database (a fold's commit did, every ~40 posts: ~15 ms in some request's
    wait); the store's own thread does, so the WAL stays bounded however long the writes go on."""
    from services.runtime import store as store_module

    opened = store_module.ProjectionStore(tmp_path / "wal.sqlite", "CREATE TABLE IF NOT EXISTS t (v BLOB);")
    wal = tmp_path / "wal.sqlite-wal"
    try:
        with opened.reading() as conn:
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        sizes = []
        for _ in range(6):  # each round ~600 pages of WAL (over 2 MB), then time for the copier to run
            with opened.lock:
                for _ in range(600):
                    opened._conn.execute("INSERT INTO t VALUES (randomblob(3000))")
            sizes.append(wal.stat().st_size)
            time.sleep(3 * store_module.WAL_COPY_S)
        # Without a copy the WAL would hold every round (6 x ~2.5 MB); copied, a later commit starts it over.
        assert max(sizes) < 3 * sizes[0], sizes
    finally:
        opened.close()
    assert not wal.exists() or wal.stat().st_size == 0  # the last copy on close
