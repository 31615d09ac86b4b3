"""Vouchers (记账凭证, DESIGN §11): every entry of a collective gets 记-YYYY-MM-NNNN, consecutive within the
month of its date, in log order, never reused; manual entries carry an attachments count (附件张数).

On the in-memory log; the audit's exports number the same log with the same function and must agree.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import running
from ledger_world import World, open_world

from services.audit.checks.books import Books
from services.audit.checks.findings import Where
from services.audit.exports.tables import entry_rows
from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.ledger.vouchers import Voucher, is_voucher_no, number_vouchers, voucher_no
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

LINES = [{"account": "101", "debit": "1.00"}, {"account": "504", "credit": "1.00"}]


@pytest.fixture(scope="module")
def log() -> InMemoryLog:
    return InMemoryLog()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, log: InMemoryLog) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("ledger-vouchers")
    settings = Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                        request_timeout_s=10)
    with running(create_app, settings, log=log) as client:
        yield open_world(settings, client)


def entries_path(world: World, collective_id: str | None = None) -> str:
    return f"/v1/collectives/{collective_id or world.village}/entries"


def post(world: World, day: str, collective_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return dict(world.created(entries_path(world, collective_id), {"date": day, "lines": LINES, **extra}))


def month_entries(world: World, collective_id: str, month: str) -> list[dict[str, Any]]:
    return list(world.ok(f"{entries_path(world, collective_id)}?from={month}-01&to={month}-31")["items"])


def log_order(log: InMemoryLog, collective_id: str) -> list[str]:
    """The entry ids of a collective's EntryPosted/EntryReversed events in the order the log holds them."""
    out = []
    for record in log.records(LEDGER_ENTRIES):
        assert record.value is not None
        event = json.loads(record.value)
        if event["type"] in ("EntryPosted", "EntryReversed") and event["data"]["collective_id"] == collective_id:
            out.append(event["data"]["entry_id"])
    return out


def audit_books(log: InMemoryLog) -> Books:
    books = Books(report=lambda *args: None, keep_memos=True)
    for record in log.records(LEDGER_ENTRIES):
        assert record.value is not None
        books.apply(Where(record.topic, record.partition, record.offset), json.loads(record.value))
    return books


# -- the pure numbering -------------------------------------------------------------------------------------


def test_numbers_are_consecutive_per_collective_and_month_in_the_order_given() -> None:
    entries = [("a", "2026-03-31"), ("a", "2026-04-01"), ("b", "2026-03-02"), ("a", "2026-03-01"),
               ("a", "2026-04-30"), ("b", "2026-03-15")]
    assert [v.number for v in number_vouchers(entries)] == [
        "记-2026-03-0001", "记-2026-04-0001", "记-2026-03-0001", "记-2026-03-0002", "记-2026-04-0002",
        "记-2026-03-0002"]
    # Continuing a month that already has numbers (the ledger's fold, one entry at a time).
    issued = {("a", "2026-03"): 41}
    assert number_vouchers([("a", "2026-03-09"), ("a", "2026-03-10")], lambda c, p: issued.get((c, p), 0)) == [
        Voucher("a", "2026-03", 42), Voucher("a", "2026-03", 43)]
    assert voucher_no("2026-12", 10000) == "记-2026-12-10000"
    assert is_voucher_no("记-2026-03-0001") and not is_voucher_no("记-2026-13-0001")
    assert not is_voucher_no("记-2026-03-01") and not is_voucher_no(" 记-2026-03-0001")


# -- the ledger ---------------------------------------------------------------------------------------------


def test_concurrent_posts_to_one_month_get_every_number_once_in_log_order(world: World, log: InMemoryLog) -> None:
    village = f"lg-{world.u}-busy"
    world.created("/v1/collectives", {"collective_id": village, "name": "忙碌村", "town": world.town})
    token = world.token("admin")
    app = world.client.application
    threads, per_thread = 6, 5
    failures: list[Any] = []

    def clerk(n: int) -> None:
        client = app.test_client()
        for i in range(per_thread):
            response = client.post(entries_path(world, village), headers={"Authorization": f"Bearer {token}"},
                                   json={"date": f"2026-03-{n + 1:02d}", "memo": f"{n}-{i}", "lines": LINES})
            if response.status_code != 201:
                failures.append(response.get_json())

    workers = [threading.Thread(target=clerk, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    posted = {e["entry_id"]: e["voucher_no"] for e in month_entries(world, village, "2026-03")}
    total = threads * per_thread
    assert sorted(posted.values()) == [f"记-2026-03-{n:04d}" for n in range(1, total + 1)]
    # Numbered in the order the log holds the entries, not the order of their dates.
    assert [posted[entry_id] for entry_id in log_order(log, village)] == [
        f"记-2026-03-{n:04d}" for n in range(1, total + 1)]


def test_a_reversal_gets_its_own_number_in_the_month_of_its_date(world: World) -> None:
    village = f"lg-{world.u}-rev"
    world.created("/v1/collectives", {"collective_id": village, "name": "冲销村", "town": world.town})
    first = post(world, "2026-05-20", village)
    second = post(world, "2026-05-21", village)
    assert (first["voucher_no"], second["voucher_no"]) == ("记-2026-05-0001", "记-2026-05-0002")
    reversal = world.created(f"{entries_path(world, village)}/{first['entry_id']}/reverse",
                             {"date": "2026-06-02", "reason": "记错科目"})
    assert reversal["voucher_no"] == "记-2026-06-0001"
    same_month = world.created(f"{entries_path(world, village)}/{second['entry_id']}/reverse",
                               {"date": "2026-05-31", "reason": "重复记账"})
    assert same_month["voucher_no"] == "记-2026-05-0003"
    # The reversed entries keep their numbers; nothing is renumbered.
    again = {e["entry_id"]: e["voucher_no"] for e in world.ok(f"{entries_path(world, village)}")["items"]}
    assert again == {first["entry_id"]: "记-2026-05-0001", second["entry_id"]: "记-2026-05-0002",
                     reversal["entry_id"]: "记-2026-06-0001", same_month["entry_id"]: "记-2026-05-0003"}
    assert post(world, "2026-05-01", village)["voucher_no"] == "记-2026-05-0004"


def test_two_collectives_and_two_months_number_on_their_own(world: World) -> None:
    a, b = f"lg-{world.u}-num-a", f"lg-{world.u}-num-b"
    for cid in (a, b):
        world.created("/v1/collectives", {"collective_id": cid, "name": "编号村", "town": world.town})
    got = [post(world, day, cid)["voucher_no"] for cid, day in (
        (a, "2027-01-31"), (b, "2027-01-01"), (a, "2027-02-01"), (a, "2027-01-02"), (b, "2027-02-28"),
        (b, "2027-01-15"))]
    assert got == ["记-2027-01-0001", "记-2027-01-0001", "记-2027-02-0001", "记-2027-01-0002", "记-2027-02-0001",
                   "记-2027-01-0002"]


def test_automatic_entries_are_numbered_too(world: World) -> None:
    village = f"lg-{world.u}-auto"
    world.created("/v1/collectives", {"collective_id": village, "name": "投资村", "town": world.town})
    post(world, "2026-08-03", village)
    investment = world.created(f"/v1/projects/{world.park}/investments", {
        "kind": "cash", "investor_id": village, "amount": "500.00", "effective_on": "2026-08-05"})
    world.offsets()  # the reactor has posted what it owed
    automatic = world.ok(f"{entries_path(world, village)}/{investment['entry_id']}")
    assert automatic["origin"]["kind"] == "investment"
    assert automatic["voucher_no"] == "记-2026-08-0002" and automatic["attachments"] is None


def test_a_manual_entry_carries_its_attachments_count_and_is_found_by_its_voucher_number(world: World) -> None:
    village = f"lg-{world.u}-att"
    world.created("/v1/collectives", {"collective_id": village, "name": "附件村", "town": world.town})
    with_papers = post(world, "2026-09-09", village, attachments=3)
    without = post(world, "2026-09-10", village)
    zero = post(world, "2026-09-11", village, attachments=0)
    assert (with_papers["attachments"], without["attachments"], zero["attachments"]) == (3, None, 0)
    found = world.ok(f"{entries_path(world, village)}?voucher_no=记-2026-09-0001")["items"]
    assert found == [with_papers]
    assert world.ok(f"{entries_path(world, village)}?voucher_no=记-2026-09-0099")["items"] == []
    assert world.ok(f"{entries_path(world, village)}?voucher_no=记-2026-09-0001&from=2026-09-10")["items"] == []
    # Another village's number names nothing here (its own books have no 2026-09 entries).
    assert world.ok(f"{entries_path(world, world.neighbour)}?voucher_no=记-2026-09-0001")["items"] == []
    batch = world.post("/v1/entries/batch", {"entries": [
        {"collective_id": village, "date": "2026-09-12", "lines": LINES, "attachments": 2},
        {"collective_id": village, "date": "2026-09-12", "lines": LINES, "attachments": 1000}]})
    results = batch.get_json()["results"]
    assert results[0]["entry"]["attachments"] == 2 and results[0]["entry"]["voucher_no"] == "记-2026-09-0004"
    assert (results[1]["status"], results[1]["error"]["field"]) == (422, "attachments")


@pytest.mark.parametrize("value", [-1, 1000, "3", True, 1.5, 10**20])
def test_an_attachments_count_that_is_not_0_to_999_is_refused_naming_the_field(world: World, value: Any) -> None:
    before = world.offsets()
    response = world.post(entries_path(world), {"date": "2026-09-01", "lines": LINES, "attachments": value})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == "attachments"
    assert world.offsets() == before


def test_attachments_are_refused_where_they_do_not_belong(world: World) -> None:
    entry = post(world, "2026-10-01")
    before = world.offsets()
    for path, body in ((f"{entries_path(world)}/{entry['entry_id']}/reverse",
                        {"date": "2026-10-02", "reason": "错", "attachments": 1}),
                       (f"/v1/collectives/{world.village}/periods", {"period": "2026-11", "attachments": 1})):
        response = world.post(path, body)
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["error"]["field"] == "attachments"
    assert world.offsets() == before


@pytest.mark.parametrize("bad", ["2026-03-0001", "记-2026-3-0001", "记-2026-03-1", "记-2026-03-0001 ",
                                 "收-2026-03-0001"])
def test_a_malformed_voucher_number_is_refused(world: World, bad: str) -> None:
    response = world.get(f"{entries_path(world)}?voucher_no={bad}")
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "voucher_no"


def test_an_accountant_of_another_village_cannot_read_by_voucher_number(world: World) -> None:
    post(world, "2026-07-07", attachments=1)
    response = world.get(f"{entries_path(world)}?voucher_no=记-2026-07-0001", "other-accountant")
    assert response.status_code == 403


# -- the audit's exports ------------------------------------------------------------------------------------


def test_the_audit_numbers_the_log_as_the_ledger_does(world: World, log: InMemoryLog) -> None:
    world.offsets()
    books = audit_books(log)
    checked = 0
    for collective in world.ok("/v1/collectives")["items"]:
        cid = collective["collective_id"]
        ledger = {e["entry_id"]: (e["voucher_no"], e["attachments"])
                  for e in world.ok(entries_path(world, cid))["items"]}
        audited = books.voucher_numbers(cid)
        assert audited == {entry_id: number for entry_id, (number, _) in ledger.items()}
        rows = list(entry_rows(books, cid))
        assert {(row[12], row[3], None if row[7] == "" else row[7]) for row in rows} == {
            (entry_id, number, attachments) for entry_id, (number, attachments) in ledger.items()}
        checked += len(ledger)
    assert checked >= 40
