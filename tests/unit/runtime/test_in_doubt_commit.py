"""A write that fails *in doubt*: the broker went away during its transaction's commit, so the service answered
503, yet the commit had reached the transaction coordinator, which completes it once it is back. The next
write must be decided after it — never on the head before it, which would give two records one seq (a fork
of the chain, found by a broker-crash fault run). On the in-memory log, whose ``in_doubt()`` fails a publish
that way."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import bearer, running
from test_pipelining import assert_unbroken, chain, post, register

from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog


@pytest.fixture(params=[False, True], ids=["grouped", "pipelined"])
def ledger(request: pytest.FixtureRequest, memory_settings: Settings) -> Iterator[tuple[Any, InMemoryLog, str]]:
    log = InMemoryLog()
    assert memory_settings.tokens_file is not None
    admin = add_token(memory_settings.tokens_file, name="admin", role="admin")
    with running(create_app, dataclasses.replace(memory_settings, pipelining=request.param), log=log) as client:
        yield client, log, admin


def test_the_write_after_an_in_doubt_commit_continues_the_chain_after_it(
        ledger: tuple[Any, InMemoryLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "doubt-village").status_code == 201
    assert post(client, admin, "doubt-village", "之前").status_code == 201
    with log.in_doubt():
        refused = post(client, admin, "doubt-village", "未知", key="doubt-1")
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "broker_unavailable"
    assert len(chain(log, LEDGER_ENTRIES, "doubt-village")) == 2  # not visible yet: an open transaction

    assert post(client, admin, "doubt-village", "之后").status_code == 201
    links = chain(log, LEDGER_ENTRIES, "doubt-village")
    assert len(links) == 4  # registered, before, the one in doubt (committed after all), after
    assert_unbroken(links)
    listed = client.get("/v1/collectives/doubt-village/entries", headers=bearer(admin)).get_json()["items"]
    assert sorted(item["memo"] for item in listed) == ["之前", "之后", "未知"]

    # The client's retry with the same key gets the write that was committed, not a second one.
    retried = post(client, admin, "doubt-village", "未知", key="doubt-1")
    assert retried.status_code == 201
    assert retried.get_json()["entry_id"] in {item["entry_id"] for item in listed if item["memo"] == "未知"}
    assert len(chain(log, LEDGER_ENTRIES, "doubt-village")) == 4


def test_a_retry_right_after_an_in_doubt_commit_gets_the_committed_write(
        ledger: tuple[Any, InMemoryLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "retry-village").status_code == 201
    with log.in_doubt():
        assert post(client, admin, "retry-village", "一次", key="retry-1").status_code == 503
    retried = post(client, admin, "retry-village", "一次", key="retry-1")
    assert retried.status_code == 201
    links = chain(log, LEDGER_ENTRIES, "retry-village")
    assert len(links) == 2  # registered, the entry once
    assert_unbroken(links)
