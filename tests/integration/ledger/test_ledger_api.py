"""The ledger's HTTP API on a real broker: what is about Kafka — a write's records really on the topic,
once; a batch in one run of records; refusals that leave the broker untouched.

The API's rules, refusals and answers are tested on the in-memory log, in
tests/unit/ledger/test_ledger_http.py (the World and the bad-input table: tests/ledger_world.py).
One ledger service runs for the whole module; every id carries a suffix of this run, because the
session broker is shared with every other test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import running
from kafka_helpers import read_records
from ledger_world import BAD_INPUTS, World, check_refused, open_world

from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.config import Settings

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("ledger-api")
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=folder / "data",
                        tokens_file=folder / "tokens.json", request_timeout_s=15)
    with running(create_app, settings) as client:
        yield open_world(settings, client)


def test_a_write_is_one_record_on_the_topic_and_a_retry_with_its_key_adds_none(world: World) -> None:
    path = f"/v1/collectives/{world.village}/entries"
    body = {"date": "2026-04-01",
            "lines": [{"account": "101", "debit": "12.30"}, {"account": "504", "credit": "12.30"}]}
    key = f"key-{uuid.uuid4().hex}"
    before = world.offsets()
    first = world.created(path, body, "accountant", **{"Idempotency-Key": key})
    again = world.created(path, body, "accountant", **{"Idempotency-Key": key})
    assert again == first
    other = world.post(path, {**body, "memo": "另一笔"}, "accountant", **{"Idempotency-Key": key})
    assert other.status_code == 409
    after = world.offsets()
    assert sum(after.values()) - sum(before.values()) == 2  # one event (and its transaction marker) for three requests
    records = read_records(world.settings.bootstrap_servers, LEDGER_ENTRIES, key=world.village, since=before)
    assert [(r.envelope["type"], r.envelope["data"]["entry_id"]) for r in records] == [
        ("EntryPosted", first["entry_id"])]
    assert records[0].envelope["data"]["idempotency_key"] == key
    assert records[0].idempotency_key is not None  # the stored answer rides on the record, for the retries


def test_a_batch_of_hundreds_is_one_run_of_records_on_the_topic(world: World) -> None:
    # The refusals of a batch (1,001 entries: nothing written) are tested on the in-memory log
    # (tests/unit/ledger/test_ledger_http.py); here what the broker holds after one.
    good = {"collective_id": world.neighbour, "date": "2026-06-03",
            "lines": [{"account": "101", "debit": "0.01"}, {"account": "504", "credit": "0.01"}]}
    before = world.offsets()
    response = world.post("/v1/entries/batch", {"entries": [good] * 200})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert {r["status"] for r in results} == {201}
    records = read_records(world.settings.bootstrap_servers, LEDGER_ENTRIES, key=world.neighbour, since=before)
    assert [r.envelope["data"]["entry_id"] for r in records] == [r["entry"]["entry_id"] for r in results]
    assert [r.offset for r in records] == list(range(records[0].offset, records[0].offset + 200))
    assert world.balances(world.neighbour, "2026-06-03")["504"] == "2.00"


#: Rows of the bad-input table refused inside the writer lock, against the books as they are.
ON_THE_BROKER = ("unbalanced", "closed period", "unknown entry reversed", "investment dated in a closed period",
                 "withdrawal beyond the capital", "duplicate collective", "project with a collective's id")
ROWS = [row for row in BAD_INPUTS if row[0] in ON_THE_BROKER]
assert len(ROWS) == len(ON_THE_BROKER)


@pytest.mark.parametrize(("case", "method", "path", "body", "role", "status", "field"), ROWS,
                         ids=[row[0] for row in ROWS])
def test_a_request_refused_against_the_books_leaves_the_broker_untouched(
        world: World, case: str, method: str, path: str, body: Any, role: str, status: int, field: str) -> None:
    check_refused(world, method, path, body, role, status, field)


def test_concurrent_posts_on_the_broker_are_numbered_in_the_topic_s_order_as_the_audit_numbers_them(
        world: World) -> None:
    """Vouchers (DESIGN §11) on a real broker: clerks posting at once to one village and month get 0001..N,
    each once, in the order the entries topic holds the records; the audit's numbering of those records agrees."""
    import threading

    from services.audit.checks.books import Books
    from services.audit.checks.findings import Where

    village = f"lg-{world.u}-vouchers"
    world.created("/v1/collectives", {"collective_id": village, "name": "凭证村", "town": world.town})
    token = world.token("admin")
    app = world.client.application
    lines = [{"account": "101", "debit": "1.00"}, {"account": "504", "credit": "1.00"}]
    failures: list[Any] = []

    def clerk(n: int) -> None:
        client = app.test_client()
        for i in range(4):
            response = client.post(f"/v1/collectives/{village}/entries", headers={"Authorization": f"Bearer {token}"},
                                   json={"date": f"2026-05-{n + 1:02d}", "memo": f"{n}-{i}", "lines": lines})
            if response.status_code != 201:
                failures.append(response.get_json())

    workers = [threading.Thread(target=clerk, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    posted = {e["entry_id"]: e["voucher_no"] for e in world.ok(f"/v1/collectives/{village}/entries")["items"]}
    records = read_records(world.settings.bootstrap_servers, LEDGER_ENTRIES, key=village)
    books = Books(report=lambda *args: None)
    for record in records:
        books.apply(Where(LEDGER_ENTRIES, record.partition, record.offset), record.envelope)
    in_topic_order = [r.envelope["data"]["entry_id"] for r in records if r.envelope["type"] == "EntryPosted"]
    assert [posted[entry_id] for entry_id in in_topic_order] == [f"记-2026-05-{n:04d}" for n in range(1, 17)]
    assert books.voucher_numbers(village) == posted
