"""A signed checkpoint that falls due before a group of writes goes ahead of the group *in the group's own
transaction* (issue 16: a second transaction and a second fold wait were on the path of the request that
happened to make it due, and the requests queued behind it). It still covers exactly the writes before the
group, and if the transaction fails, neither the checkpoint nor the group is in the log and the next write
carries it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from conftest import running
from test_pipelining import assert_unbroken, chain, post, register

from services.contracts import anchoring
from services.contracts.codec import decode_envelope
from services.contracts.topics import CHECKPOINTS, LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog
from services.runtime.kafka_io import Ack, OutRecord

EVERY = 5


class TransactionsLog(InMemoryLog):
    """The in-memory log, keeping what each publish (one transaction) held: (topic, event type) in order."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions: list[list[tuple[str, str]]] = []

    def publish(self, records: Sequence[OutRecord]) -> list[Ack]:
        acks = super().publish(records)
        self.transactions.append([(r.topic, str(r.envelope["type"])) for r in records])
        return acks


@pytest.fixture
def ledger(memory_settings: Settings) -> Iterator[tuple[Any, TransactionsLog, str]]:
    log = TransactionsLog()
    assert memory_settings.tokens_file is not None
    admin = add_token(memory_settings.tokens_file, name="admin", role="admin")
    # No timer checkpoints during the test: only those due every EVERY writes.
    settings = dataclasses.replace(memory_settings, checkpoint_every=EVERY, checkpoint_seconds=3600)
    with running(create_app, settings, log=log) as client:
        yield client, log, admin


def checkpoints(log: InMemoryLog) -> list[dict[str, Any]]:
    out = []
    for record in log.records(CHECKPOINTS):
        assert record.value is not None
        envelope = decode_envelope(record.value)
        if envelope["source"] == "ledger" and envelope["subject"] == LEDGER_ENTRIES:
            out.append(envelope["data"])
    return out


def covered(log: InMemoryLog, checkpoint: dict[str, Any]) -> int:
    """How many records of the entries topic a checkpoint covers (those before its end offsets)."""
    ends = {part["partition"]: part["end_offset"] for part in checkpoint["partitions"]}
    return sum(1 for r in log.records(LEDGER_ENTRIES) if r.offset < ends.get(r.partition, 0))


def test_a_due_checkpoint_goes_ahead_of_the_group_in_its_transaction(
        ledger: tuple[Any, TransactionsLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "cp-village").status_code == 201
    entries_before = len(log.records(LEDGER_ENTRIES))
    for i in range(2 * EVERY + 1):
        assert post(client, admin, "cp-village", f"第{i}笔").status_code == 201
    with_checkpoint = [t for t in log.transactions if ("baotuan.checkpoints.v1", "ChainCheckpoint") in t]
    assert with_checkpoint, log.transactions
    for transaction in with_checkpoint:
        # The checkpoint first, then the group's entry: one transaction, not a checkpoint's own.
        assert transaction[0] == (CHECKPOINTS, "ChainCheckpoint")
        assert (LEDGER_ENTRIES, "EntryPosted") in transaction[1:]
    assert not [t for t in log.transactions if {topic for topic, _ in t} == {CHECKPOINTS}]
    # Each covers exactly every EVERY writes (the entries topic's records), the group after it excluded.
    found = checkpoints(log)
    written = entries_before + 2 * EVERY + 1
    assert [covered(log, c) for c in found] == [n for n in range(EVERY, written, EVERY)]
    public = client.application.extensions["baotuan_service"].key.public
    for envelope_data in found:
        assert anchoring.verify(public, anchoring.checkpoint_payload(envelope_data), envelope_data["signature"])
    assert_unbroken(chain(log, LEDGER_ENTRIES, "cp-village"))


def test_when_the_groups_transaction_fails_the_next_write_carries_the_checkpoint(
        ledger: tuple[Any, TransactionsLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "down-village").status_code == 201
    while len(log.records(LEDGER_ENTRIES)) < EVERY:
        assert post(client, admin, "down-village", "之前").status_code == 201
    assert checkpoints(log) == []
    with log.outage():
        refused = post(client, admin, "down-village", "没记上")
    assert refused.status_code == 503
    assert checkpoints(log) == []  # nothing of that transaction, the checkpoint neither
    assert post(client, admin, "down-village", "之后").status_code == 201
    [checkpoint] = checkpoints(log)
    assert covered(log, checkpoint) == EVERY
    assert log.transactions[-1][0] == (CHECKPOINTS, "ChainCheckpoint")
    health = client.application.extensions["baotuan_service"].health()
    assert health["checkpoints"]["uncovered_events"] == 1  # the write after the checkpoint
