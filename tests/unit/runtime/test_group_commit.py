"""Group commit (issue 16): concurrent writes of a service are decided one after another against the
projection plus the requests before them, published together, and answered each; a refused request
refuses only itself. On the in-memory log, slowed down so that requests pile up behind the writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import bearer, running

from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog
from services.runtime.kafka_io import Ack


class SlowLog(InMemoryLog):
    """An in-memory log whose publish takes as long as a broker's ack; counts the publishes."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.publishes: list[int] = []

    def publish(self, records: Any) -> list[Ack]:
        records = list(records)
        if any(r.topic == LEDGER_ENTRIES for r in records):
            self.publishes.append(len(records))
        time.sleep(self.delay)
        return super().publish(records)


def collective(collective_id: str) -> dict[str, Any]:
    return {"collective_id": collective_id, "name": "联盟村", "town": "金清镇", "uscc": None, "alliances": []}


@pytest.fixture
def ledger(memory_settings: Settings) -> Iterator[tuple[Any, SlowLog, str]]:
    log = SlowLog(delay=0.05)
    assert memory_settings.tokens_file is not None
    admin = add_token(memory_settings.tokens_file, name="admin", role="admin")
    with running(create_app, memory_settings, log=log) as client:
        yield client, log, admin


def post_all(client: Any, token: str, bodies: list[dict[str, Any]], keys: list[str | None] | None = None,
             ) -> list[tuple[int, dict[str, Any]]]:
    answers: list[tuple[int, dict[str, Any]]] = [(0, {})] * len(bodies)
    start = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        headers = bearer(token)
        if keys and keys[i]:
            headers["Idempotency-Key"] = keys[i]
        start.wait()
        response = client.post("/v1/collectives", json=bodies[i], headers=headers)
        answers[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_concurrent_writes_are_published_in_groups_and_each_is_answered(
        ledger: tuple[Any, SlowLog, str]) -> None:
    client, log, admin = ledger
    answers = post_all(client, admin, [collective(f"village-{i:02d}") for i in range(24)])
    assert [status for status, _ in answers] == [201] * 24, answers
    assert sorted(body["collective_id"] for _, body in answers) == [f"village-{i:02d}" for i in range(24)]
    assert all(len(body["receipts"]) == 1 for _, body in answers)
    assert sum(log.publishes) == 24
    assert len(log.publishes) < 24, f"24 requests, {len(log.publishes)} publishes: nothing was grouped"
    listed = client.get("/v1/collectives", headers=bearer(admin)).get_json()["items"]
    assert len(listed) == 24
    # One chain per subject, every seq 1: each record is in the log once.
    assert sorted(r.key for r in log.records(LEDGER_ENTRIES)) == sorted(f"village-{i:02d}".encode() for i in range(24))


def test_a_request_is_decided_against_the_requests_before_it_in_its_group(ledger: tuple[Any, SlowLog, str]) -> None:
    client, log, admin = ledger
    # Keep the writer busy so that all of them wait together, then send the same id eight times.
    answers = post_all(client, admin, [collective("same-village")] * 8 + [collective(f"other-{i}") for i in range(8)])
    statuses = [status for status, _ in answers]
    assert statuses[:8].count(201) == 1 and statuses[:8].count(409) == 7, answers
    assert statuses[8:] == [201] * 8
    refused = [body for status, body in answers if status == 409]
    assert {body["error"]["field"] for body in refused} == {"collective_id"}
    assert [r.key for r in log.records(LEDGER_ENTRIES)].count(b"same-village") == 1


def test_a_repeated_key_inside_one_group_gets_the_first_answer_and_publishes_once(
        ledger: tuple[Any, SlowLog, str]) -> None:
    client, log, admin = ledger
    bodies = [collective("keyed-village")] * 6 + [collective(f"filler-{i}") for i in range(6)]
    answers = post_all(client, admin, bodies, keys=["same-key"] * 6 + [None] * 6)
    assert [status for status, _ in answers] == [201] * 12, answers
    first = [body for _, body in answers[:6]]
    assert len({body["receipts"][0]["hash"] for body in first}) == 1  # one event, the same receipt for all
    assert [r.key for r in log.records(LEDGER_ENTRIES)].count(b"keyed-village") == 1


def test_a_failed_publish_fails_each_request_of_its_group_and_writes_nothing(
        ledger: tuple[Any, SlowLog, str]) -> None:
    client, log, admin = ledger
    before = len(log.records(LEDGER_ENTRIES))
    with log.outage():
        answers = post_all(client, admin, [collective(f"down-{i}") for i in range(6)])
    assert [status for status, _ in answers] == [503] * 6
    assert len(log.records(LEDGER_ENTRIES)) == before
    again = post_all(client, admin, [collective(f"down-{i}") for i in range(6)])
    assert [status for status, _ in again] == [201] * 6


def test_records_of_a_group_are_records_a_reader_accepts(ledger: tuple[Any, SlowLog, str]) -> None:
    client, log, admin = ledger
    post_all(client, admin, [collective(f"checked-{i}") for i in range(10)])
    from services.contracts.codec import decode_envelope
    from services.contracts.validation import read_envelope

    for record in log.records(LEDGER_ENTRIES):
        assert record.value is not None
        read_envelope(decode_envelope(record.value), record.value)

