"""Folding at commit (issue 16): once a group's transaction is committed, the writer folds its records into
the projection itself, in the order it sealed them, instead of waiting for the follower to fetch them back —
unless something the projection has not applied comes before them in the log. On the in-memory log with the
follower held back (as a Kafka follower is until the markers are written and its fetch returns): the requests
are answered while nothing has been delivered; when the follower catches up it folds nothing twice, and a
projection rebuilt from the log alone holds the same books."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import bearer, running
from test_pipelining import HeldLog, assert_unbroken, chain, in_background, post, register, wait_for
from test_store_taken_back import books

from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import partition_for
from services.runtime.kafka_io import record_key

VILLAGES = ("fold-village", "next-village")


def delivered(client: Any) -> int:
    """How many records the follower has handed to the projection (folded or skipped)."""
    service = client.application.extensions["baotuan_service"]
    return int(service.store.query_one("SELECT COUNT(*) FROM _events")[0])


@pytest.fixture
def held(memory_settings: Settings) -> tuple[HeldLog, str]:
    """An in-memory log whose follower can be held back, and an admin's token."""
    assert memory_settings.tokens_file is not None
    return HeldLog(), add_token(memory_settings.tokens_file, name="admin", role="admin")


def test_the_writer_folds_what_it_committed_and_the_follower_folds_nothing_twice(
        memory_settings: Settings, held: tuple[HeldLog, str]) -> None:
    log, admin = held
    with running(create_app, memory_settings, log=log) as client:
        service = client.application.extensions["baotuan_service"]
        log.hold.set()  # from here on the follower is given nothing until release()
        for village in VILLAGES:
            assert register(client, admin, village).status_code == 201
        first = post(client, admin, "fold-village", "先记", key="fold-1")
        assert first.status_code == 201, first.get_json()
        # Two transactions in a row into the same partitions: between them sits the first one's marker.
        assert post(client, admin, "fold-village", "再记").status_code == 201
        assert post(client, admin, "next-village", "别村").status_code == 201
        reversed_ = client.post(f"/v1/collectives/fold-village/entries/{first.get_json()['entry_id']}/reverse",
                                headers=bearer(admin), json={"date": "2026-03-16", "reason": "冲销"})
        assert reversed_.status_code == 201, reversed_.get_json()
        # A retried key is answered from what the writer folded (its idempotency record came with it).
        again = post(client, admin, "fold-village", "先记", key="fold-1")
        assert again.status_code == 201 and again.get_json()["entry_id"] == first.get_json()["entry_id"]
        assert log._held, "the follower was given something while held"
        before = books(client, admin, VILLAGES)
        assert len(before["fold-village"][0]) == 3 and len(before["next-village"][0]) == 1
        events = delivered(client)
        positions = service.store.positions()

        log.release()  # the follower now meets every record the writer folded: it skips each
        assert books(client, admin, VILLAGES) == before
        assert delivered(client) == events
        for topic, parts in positions.items():  # past the last markers now, never behind
            for partition, offset in parts.items():
                assert service.store.position(topic, partition) >= offset
        assert service.store.deadletter_count() == 0
        assert post(client, admin, "fold-village", "之后").status_code == 201
        after = books(client, admin, VILLAGES)

    for village in VILLAGES:
        assert_unbroken(chain(log, LEDGER_ENTRIES, village))
    # A projection built from the log alone, by the follower, holds the same books.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{memory_settings.data_dir / 'ledger.sqlite'}{suffix}").unlink(missing_ok=True)
    with running(create_app, memory_settings, log=log) as client:
        assert books(client, admin, VILLAGES) == after


@pytest.mark.parametrize("marker", [True, False], ids=["in-a-transaction", "plain-record"])
def test_a_record_the_projection_has_not_applied_ahead_of_the_commit_is_left_to_the_follower(
        memory_settings: Settings, held: tuple[HeldLog, str], marker: bool) -> None:
    log, admin = held
    with running(create_app, memory_settings, log=log) as client:
        assert register(client, admin, "fold-village").status_code == 201
        assert post(client, admin, "fold-village", "先记").status_code == 201
        log.hold.set()
        # Another writer's record lands in the village's partition before the next commit: the projection
        # has not seen it, so the writer must not fold past it (it waits for the follower, which folds both).
        partitions = log.partition_count(LEDGER_ENTRIES)
        key = record_key({"subject": "fold-village"})
        if marker:  # a record and its transaction's marker
            foreign = log.send_raw(LEDGER_ENTRIES, key, b"{not json", [])
        else:  # one offset only, as a non-transactional producer's record: where a marker could have been
            with log._lock:
                foreign = log._append(LEDGER_ENTRIES, key, b"{not json", [])
        assert foreign.partition == partition_for(key, partitions)
        thread, answer = in_background(lambda: post(client, admin, "fold-village", "后记"))
        thread.join(timeout=0.5)
        assert thread.is_alive() and not answer, "answered before the record ahead of it was folded"
        log.release()
        wait_for(lambda: bool(answer))
        thread.join()
        assert answer[0].status_code == 201, answer[0].get_json()
        service = client.application.extensions["baotuan_service"]
        assert service.store.deadletter_count() == 1  # the foreign record, dead-lettered by the follower
        entries = client.get("/v1/collectives/fold-village/entries", headers=bearer(admin)).get_json()["items"]
        assert sorted(e["memo"] for e in entries) == sorted(["先记", "后记"])
