"""Pipelining (issue 16): once a group's transaction is committed, the next group is decided, sealed and
published while the first still waits for its fold. On the in-memory log with the projection's folding held
back, so that a group stays in flight while the next one comes."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import bearer, running

from services.contracts.codec import decode_envelope
from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

LINES = [{"account": "102", "debit": "100.00"}, {"account": "503", "credit": "100.00"}]


class HeldLog(InMemoryLog):
    """An in-memory log whose followers are not fed while ``hold`` is set (a projection that lags behind the
    log, as a Kafka follower does until the transaction's markers are written and its fetch returns)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self._held: set[str] = set()

    def _fan_out(self, topics: set[str]) -> None:
        if self.hold.is_set():
            self._held |= topics
            return
        super()._fan_out(topics)

    def release(self) -> None:
        self.hold.clear()
        held, self._held = self._held, set()
        super()._fan_out(held)


def pipelined(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, pipelining=True, **changes)


@pytest.fixture
def ledger(memory_settings: Settings) -> Iterator[tuple[Any, HeldLog, str]]:
    log = HeldLog()
    assert memory_settings.tokens_file is not None
    admin = add_token(memory_settings.tokens_file, name="admin", role="admin")
    with running(create_app, pipelined(memory_settings), log=log) as client:
        yield client, log, admin


def in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(call()))
    thread.start()
    return thread, answer


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def register(client: Any, token: str, collective_id: str) -> Any:
    return client.post("/v1/collectives", headers=bearer(token),
                       json={"collective_id": collective_id, "name": "联盟村", "town": "金清镇", "alliances": []})


def post(client: Any, token: str, collective_id: str, memo: str, key: str | None = None) -> Any:
    headers = bearer(token) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/v1/collectives/{collective_id}/entries", headers=headers,
                       json={"date": "2026-03-15", "memo": memo, "lines": LINES})


def chain(log: InMemoryLog, topic: str, subject: str) -> list[tuple[int, str | None, str]]:
    """(seq, prev_hash, hash) of a stream, in log order."""
    out = []
    for record in log.records(topic):
        assert record.value is not None
        envelope = decode_envelope(record.value)
        if envelope["subject"] == subject:
            out.append((envelope["seq"], envelope.get("prev_hash"), envelope["hash"]))
    return out


def assert_unbroken(links: list[tuple[int, str | None, str]]) -> None:
    assert [seq for seq, _, _ in links] == list(range(1, len(links) + 1)), links
    for (_, _, before), (_, prev, _) in itertools.pairwise(links):
        assert prev == before, links


def test_the_next_group_is_published_on_the_heads_of_the_group_in_flight(
        ledger: tuple[Any, HeldLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "pipe-village").status_code == 201
    log.hold.set()
    first, first_answer = in_background(lambda: post(client, admin, "pipe-village", "第一笔"))
    wait_for(lambda: len(chain(log, LEDGER_ENTRIES, "pipe-village")) == 2)  # committed, not folded
    second, second_answer = in_background(lambda: post(client, admin, "pipe-village", "第二笔"))
    # Published while the first still waits for its fold: pipelined, and on top of the first's head.
    wait_for(lambda: len(chain(log, LEDGER_ENTRIES, "pipe-village")) == 3)
    assert not first_answer and not second_answer, "answered before the projection applied the write"
    log.release()
    first.join(10)
    second.join(10)
    assert first_answer[0].status_code == 201 and second_answer[0].status_code == 201
    assert_unbroken(chain(log, LEDGER_ENTRIES, "pipe-village"))
    listed = client.get("/v1/collectives/pipe-village/entries", headers=bearer(admin)).get_json()["items"]
    assert sorted(item["memo"] for item in listed) == ["第一笔", "第二笔"]


def test_a_request_is_decided_against_the_group_in_flight(ledger: tuple[Any, HeldLog, str]) -> None:
    client, log, admin = ledger
    log.hold.set()
    first, first_answer = in_background(lambda: register(client, admin, "twice-village"))
    wait_for(lambda: len(chain(log, LEDGER_ENTRIES, "twice-village")) == 1)
    again, again_answer = in_background(lambda: register(client, admin, "twice-village"))
    # Refused on the state the group in flight leaves (not yet in the projection): nothing published for it.
    time.sleep(0.2)
    log.release()
    first.join(10)
    again.join(10)
    assert first_answer[0].status_code == 201
    assert again_answer[0].status_code == 409, again_answer[0].get_json()
    assert len(chain(log, LEDGER_ENTRIES, "twice-village")) == 1


def test_a_repeated_key_while_the_first_is_in_flight_gets_the_first_answer_and_its_receipts(
        ledger: tuple[Any, HeldLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "keyed-pipe").status_code == 201
    log.hold.set()
    first, first_answer = in_background(lambda: post(client, admin, "keyed-pipe", "一次", key="k-1"))
    wait_for(lambda: len(chain(log, LEDGER_ENTRIES, "keyed-pipe")) == 2)
    again, again_answer = in_background(lambda: post(client, admin, "keyed-pipe", "一次", key="k-1"))
    time.sleep(0.2)
    assert not again_answer, "a repeat was answered before the first request's events were folded"
    log.release()
    first.join(10)
    again.join(10)
    assert first_answer[0].status_code == 201 and again_answer[0].status_code == 201
    assert first_answer[0].get_json()["entry_id"] == again_answer[0].get_json()["entry_id"]
    assert again_answer[0].get_json()["receipts"] == first_answer[0].get_json()["receipts"]
    assert len(chain(log, LEDGER_ENTRIES, "keyed-pipe")) == 2


def test_a_failed_group_after_one_in_flight_fails_alone_and_the_next_continues_the_committed_chain(
        ledger: tuple[Any, HeldLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "broken-pipe").status_code == 201
    log.hold.set()
    first, first_answer = in_background(lambda: post(client, admin, "broken-pipe", "已提交"))
    wait_for(lambda: len(chain(log, LEDGER_ENTRIES, "broken-pipe")) == 2)
    with log.outage():  # the next group is staged on the first's head, and its publish fails
        refused = post(client, admin, "broken-pipe", "未写入")
    assert refused.status_code == 503
    log.release()
    first.join(10)
    assert first_answer[0].status_code == 201
    # The next write is decided on the log as it is: after the first, nothing of the failed group.
    assert post(client, admin, "broken-pipe", "之后").status_code == 201
    links = chain(log, LEDGER_ENTRIES, "broken-pipe")
    assert len(links) == 3  # registered, the first entry, the one after
    assert_unbroken(links)
    listed = client.get("/v1/collectives/broken-pipe/entries", headers=bearer(admin)).get_json()["items"]
    assert sorted(item["memo"] for item in listed) == ["之后", "已提交"]


def test_a_group_in_flight_that_is_never_folded_is_answered_503_and_the_writer_resyncs(
        memory_settings: Settings) -> None:
    log = HeldLog()
    settings = pipelined(memory_settings, request_timeout_s=1.0)
    assert settings.tokens_file is not None
    admin = add_token(settings.tokens_file, name="admin", role="admin")
    with running(create_app, settings, log=log) as client:
        assert register(client, admin, "stuck-pipe").status_code == 201
        log.hold.set()
        stuck = post(client, admin, "stuck-pipe", "未折叠")
        assert stuck.status_code == 503  # acknowledged by the log, not applied in time
        log.release()
        # The write is in the log; the next one resyncs with it and continues its chain.
        assert post(client, admin, "stuck-pipe", "之后").status_code == 201
        assert_unbroken(chain(log, LEDGER_ENTRIES, "stuck-pipe"))
        assert len(chain(log, LEDGER_ENTRIES, "stuck-pipe")) == 3


def test_a_request_that_must_run_alone_behind_a_group_in_flight_runs_once_that_group_is_folded(
        ledger: tuple[Any, HeldLog, str]) -> None:
    client, log, admin = ledger
    assert register(client, admin, "alone-pipe").status_code == 201
    log.hold.set()
    first, first_answer = in_background(lambda: post(client, admin, "alone-pipe", "在途"))
    wait_for(lambda: len(chain(log, LEDGER_ENTRIES, "alone-pipe")) == 2)
    # Closing a month first publishes what the books are owed: it needs the log itself, so it runs alone.
    closing, closing_answer = in_background(lambda: client.post(
        "/v1/collectives/alone-pipe/periods", headers=bearer(admin), json={"period": "2026-01"}))
    time.sleep(0.3)
    assert not closing_answer, "answered before it ran"
    log.release()
    first.join(10)
    closing.join(10)
    assert first_answer[0].status_code == 201
    assert closing_answer[0].status_code == 201, closing_answer[0].get_json()
    periods = client.get("/v1/collectives/alone-pipe/periods", headers=bearer(admin)).get_json()["items"]
    assert [p["period"] for p in periods] == ["2026-01"]
    assert_unbroken(chain(log, LEDGER_ENTRIES, "alone-pipe"))
