"""The year-end close (结转, DESIGN §11) on the in-memory log: its entries and their ids, the books after it,
the 收益及收益分配表, a closed year's income accounts kept shut, the close's reversal, and refusals."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import running, without_receipts
from ledger_world import World, open_world

from services.contracts import envelope as env
from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES
from services.contracts.validation import read_envelope
from services.ledger.app import create_app
from services.ledger.domain import (
    NothingToClose,
    automatic_entry_ids,
    year_end_close_cause,
    year_end_close_entries,
)
from services.ledger.projection import SCHEMA, fold
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog
from services.runtime.store import ProjectionStore

THIS_YEAR = dt.date.today().year


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("ledger-year-end")
    settings = Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                        request_timeout_s=10)
    with running(create_app, settings, log=InMemoryLog()) as client:
        yield open_world(settings, client)


def new_village(world: World, name: str) -> str:
    cid = f"lg-{world.u}-{name}"
    world.created("/v1/collectives", {"collective_id": cid, "name": "结转村", "town": world.town,
                                      "alliances": [world.alliance]})
    return cid


def books_of_2025(world: World, village: str) -> None:
    """2024: income 1000, expenses 200 (closed: 800 brought forward). 2025: income 12500, expenses 4200."""
    world.post_entry(village, "2024-05-01", ("102", "debit", "1000.00"), ("501", "credit", "1000.00"))
    world.post_entry(village, "2024-06-01", ("513", "debit", "200.00"), ("102", "credit", "200.00"))
    world.created(f"/v1/collectives/{village}/year-end-close", {"year": 2024})
    world.post_entry(village, "2025-02-01", ("102", "debit", "10000.00"), ("501", "credit", "10000.00"))
    world.post_entry(village, "2025-03-01", ("112/binhai-park", "debit", "2000.00"),
                     ("502/binhai-park", "credit", "2000.00"))
    world.post_entry(village, "2025-04-01", ("102", "debit", "500.00"), ("503", "credit", "500.00"))
    world.post_entry(village, "2025-05-01", ("511", "debit", "3000.00"), ("102", "credit", "3000.00"))
    world.post_entry(village, "2025-06-01", ("513/office", "debit", "1200.00"), ("101", "credit", "1200.00"))


def close(world: World, village: str, year: int, role: str = "admin", **headers: str) -> Any:
    return world.post(f"/v1/collectives/{village}/year-end-close", {"year": year}, role, **headers)


def statement(world: World, village: str, year: int) -> dict[str, Any]:
    return dict(world.ok(f"/v1/collectives/{village}/income-statement?year={year}"))


# -- the pure rule ----------------------------------------------------------------------------------------


def test_the_close_carries_each_balance_into_321_and_the_net_income_into_322() -> None:
    movements = {"501": -1000_00, "502/park": -200_00, "503": 0, "511": 300_00, "513/office": 50_00,
                 "504": 10_00}  # 504 stands on its debit side: emptied by a credit
    entries, net = year_end_close_entries(movements, 2025)
    assert net == 1000_00 + 200_00 - 10_00 - 300_00 - 50_00
    assert [(e.qualifier, e.memo) for e in entries] == [("income", "2025年 结转收入"), ("expenses", "2025年 结转支出"),
                                                        ("transfer", "2025年 结转本年收益")]
    lines = {e.qualifier: [(line.account, line.debit, line.credit) for line in e.lines] for e in entries}
    assert lines["income"] == [("501", 1000_00, 0), ("502/park", 200_00, 0), ("504", 0, 10_00), ("321", 0, 1190_00)]
    assert lines["expenses"] == [("511", 0, 300_00), ("513/office", 0, 50_00), ("321", 350_00, 0)]
    assert lines["transfer"] == [("321", net, 0), ("322/undistributed", 0, net)]
    loss, net_loss = year_end_close_entries({"511": 70_00}, 2025)
    assert net_loss == -70_00
    assert [(line.account, line.debit, line.credit) for line in loss[-1].lines] == [
        ("322/undistributed", 70_00, 0), ("321", 0, 70_00)]
    with pytest.raises(NothingToClose):
        year_end_close_entries({"501": 0}, 2025)


def test_a_close_of_more_accounts_than_an_entry_holds_is_split() -> None:
    movements = {f"501/p{n:03d}": -100 for n in range(250)}
    entries, net = year_end_close_entries(movements, 2025)
    assert [e.qualifier for e in entries] == ["income", "income-2", "transfer"]
    assert all(len(e.lines) <= 200 for e in entries) and net == 250 * 100
    assert sum(line.credit for e in entries[:2] for line in e.lines if line.account == "321") == 250 * 100


# -- over HTTP --------------------------------------------------------------------------------------------


def test_the_close_posts_derived_entries_dated_december_31_and_the_books_carry_the_income(world: World) -> None:
    village = new_village(world, "close")
    books_of_2025(world, village)
    response = close(world, village, 2025, "accountant" if village == world.village else "admin")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["closed"], body["net_income"], body["year"]) == (True, "8300.00", 2025)
    cause = year_end_close_cause(village, 2025, 0)
    assert [e["entry_id"] for e in body["entries"]] == [
        automatic_entry_ids(cause, q).entry_id for q in ("income", "expenses", "transfer")]
    assert {e["date"] for e in body["entries"]} == {"2025-12-31"}
    assert {json.dumps(e["origin"]) for e in body["entries"]} == {'{"kind": "year_end_close", "ref": "2025"}'}
    assert body["entries"][0]["lines"] == [
        {"account": "501", "debit": "10000.00"}, {"account": "502/binhai-park", "debit": "2000.00"},
        {"account": "503", "debit": "500.00"}, {"account": "321", "credit": "12500.00"}]
    assert body["entries"][1]["lines"] == [
        {"account": "511", "credit": "3000.00"}, {"account": "513/office", "credit": "1200.00"},
        {"account": "321", "debit": "4200.00"}]
    assert body["entries"][2]["lines"] == [{"account": "321", "debit": "8300.00"},
                                           {"account": "322/undistributed", "credit": "8300.00"}]
    assert all(e["voucher_no"].startswith("记-2025-12-") for e in body["entries"])
    tb = world.balances(village, "2025-12-31")
    assert {code: tb[code] for code in tb if code[0] == "5" or code == "321"} == {
        code: "0.00" for code in tb if code[0] == "5" or code == "321"}
    assert tb["322/undistributed"] == "9100.00"  # 800 of 2024 and 8300 of 2025
    assert world.ok(f"/v1/collectives/{village}/year-end-close/2025") == without_receipts(body)
    # The year's income statement and the village income report still show the year before its close.
    st = statement(world, village, 2025)
    assert (st["income"]["total"], st["expenses"]["total"], st["net_income"]) == ("12500.00", "4200.00", "8300.00")
    dist = {item["item"]: item["amount"] for item in st["distribution"]}
    assert dist == {"net_income": "8300.00", "brought_forward": "800.00", "distributable": "9100.00",
                    "reserve": "0.00", "welfare": "0.00", "member_dividends": "0.00", "other": "0.00",
                    "undistributed": "9100.00"}
    assert [item["name"] for item in st["distribution"]] == [
        "本年收益", "年初未分配收益", "可分配收益", "提取公积公益金", "应付福利费", "应付成员收益", "其他分配",
        "年末未分配收益"]
    report = world.ok(f"/v1/reports/village-income?year=2025&town={world.town}")
    assert {v["collective_id"]: v["income"] for v in report["items"]}[village] == "12500.00"
    # The balance sheet at the end of the year still balances, the income now in 322.
    sheet = world.ok(f"/v1/collectives/{village}/balance-sheet?year=2025")
    assert sheet["total_assets"] == sheet["total_liabilities_and_equity"]


def test_the_statement_shows_the_appropriations_of_the_year(world: World) -> None:
    village = new_village(world, "plan")
    books_of_2025(world, village)
    assert close(world, village, 2025).status_code == 201
    # What a plan's approval posts (DESIGN §11), by hand here: Dr 322/undistributed, Cr 311, 211/welfare, 211/…
    world.post_entry(village, "2025-12-31", ("322/undistributed", "debit", "6000.00"), ("311", "credit", "910.00"),
                     ("211/welfare", "credit", "500.00"), ("211/member-dividends", "credit", "4590.00"))
    dist = {item["item"]: item["amount"] for item in statement(world, village, 2025)["distribution"]}
    assert dist == {"net_income": "8300.00", "brought_forward": "800.00", "distributable": "9100.00",
                    "reserve": "910.00", "welfare": "500.00", "member_dividends": "4590.00", "other": "0.00",
                    "undistributed": "3100.00"}
    assert world.balances(village, "2025-12-31")["322/undistributed"] == "3100.00"
    nxt = {item["item"]: item["amount"] for item in statement(world, village, 2026)["distribution"]}
    assert (nxt["brought_forward"], nxt["net_income"], nxt["undistributed"]) == ("3100.00", "0.00", "3100.00")


def test_a_closed_year_keeps_its_income_and_expense_accounts_shut_until_the_close_is_reversed(world: World) -> None:
    village = new_village(world, "shut")
    books_of_2025(world, village)
    closed = close(world, village, 2025).get_json()
    path = f"/v1/collectives/{village}/entries"
    before = world.offsets()
    late = world.post(path, {"date": "2025-11-30", "lines": [{"account": "513", "debit": "5.00"},
                                                             {"account": "101", "credit": "5.00"}]})
    assert late.status_code == 409 and late.get_json()["error"] | {"message": ""} == {
        "status": 409, "code": "year_closed", "field": "date", "message": ""}
    batch = world.post("/v1/entries/batch", {"entries": [
        {"collective_id": village, "date": "2025-12-31", "lines": [{"account": "102", "debit": "1.00"},
                                                                  {"account": "504", "credit": "1.00"}]}]})
    assert batch.get_json()["results"][0]["status"] == 409
    assert world.offsets() == before
    # Other accounts of the year, and the next year's income, are open.
    world.post_entry(village, "2025-11-30", ("101", "debit", "5.00"), ("102", "credit", "5.00"))
    world.post_entry(village, "2026-01-02", ("102", "debit", "5.00"), ("504", "credit", "5.00"))
    # A manual entry of the year touching 513 is reversed in the next year, not inside the closed one.
    expense = next(e for e in world.ok(f"{path}?from=2025-06-01&to=2025-06-01")["items"])
    inside = world.post(f"{path}/{expense['entry_id']}/reverse", {"date": "2025-12-31", "reason": "记错"})
    assert (inside.status_code, inside.get_json()["error"]["code"]) == (409, "year_closed")
    # A close entry is reversed on its own date only.
    income_close = closed["entries"][0]
    later = world.post(f"{path}/{income_close['entry_id']}/reverse", {"date": "2026-01-01", "reason": "重做结转"})
    assert (later.status_code, later.get_json()["error"]["field"]) == (422, "date")
    # Reversing the close (each of its entries) opens the year again; a new close gets new ids.
    for entry in closed["entries"]:
        world.created(f"{path}/{entry['entry_id']}/reverse", {"date": "2025-12-31", "reason": "补记收入后重新结转"})
    shown = world.ok(f"/v1/collectives/{village}/year-end-close/2025")
    assert (shown["closed"], shown["net_income"]) == (False, "0.00")
    assert all(e["reversed_by"] for e in shown["entries"])
    world.post_entry(village, "2025-12-30", ("102", "debit", "100.00"), ("504", "credit", "100.00"))
    again = close(world, village, 2025)
    assert again.status_code == 201, again.get_json()
    body = again.get_json()
    assert body["net_income"] == "8400.00" and len(body["entries"]) == 6
    new_ids = {automatic_entry_ids(year_end_close_cause(village, 2025, 3), q).entry_id
               for q in ("income", "expenses", "transfer")}
    assert {e["entry_id"] for e in body["entries"] if e["reversed_by"] is None} == new_ids
    assert statement(world, village, 2025)["net_income"] == "8400.00"  # the reversed close counts for nothing
    assert world.balances(village, "2025-12-31")["322/undistributed"] == "9200.00"


def test_the_same_close_twice_is_a_conflict_and_the_same_key_gives_the_first_answer(world: World) -> None:
    village = new_village(world, "twice")
    world.post_entry(village, "2025-02-01", ("102", "debit", "10.00"), ("501", "credit", "10.00"))
    first = close(world, village, 2025, **{"Idempotency-Key": f"close-{world.u}"})
    assert first.status_code == 201
    before = world.offsets()
    repeat = close(world, village, 2025, **{"Idempotency-Key": f"close-{world.u}"})
    assert repeat.status_code == 201 and repeat.get_json()["entries"] == first.get_json()["entries"]
    second = close(world, village, 2025)
    assert (second.status_code, second.get_json()["error"]["code"], second.get_json()["error"]["field"]) == (
        409, "year_already_closed", "year")
    assert world.offsets() == before


def test_a_year_whose_december_is_closed_cannot_be_closed(world: World) -> None:
    village = new_village(world, "dec")
    world.post_entry(village, "2023-02-01", ("102", "debit", "10.00"), ("501", "credit", "10.00"))
    world.created(f"/v1/collectives/{village}/periods", {"period": "2023-12"})
    before = world.offsets()
    response = close(world, village, 2023)
    assert (response.status_code, response.get_json()["error"]["field"]) == (409, "year")
    assert world.offsets() == before


@pytest.mark.parametrize(("body", "role", "status", "field"), [
    ({"year": THIS_YEAR + 1}, "admin", 422, "year"),
    ({"year": 2019}, "admin", 422, "year"),  # nothing to close
    ({"year": "2025"}, "admin", 422, "year"),
    ({"year": True}, "admin", 422, "year"),
    ({"year": 2025.0}, "admin", 422, "year"),
    ({"year": 99999}, "admin", 422, "year"),
    ({}, "admin", 422, "year"),
    ({"year": 2025, "date": "2025-12-31"}, "admin", 422, "date"),
    ({"year": 2025}, "other-accountant", 403, "Authorization"),
    ({"year": 2025}, "auditor", 403, "Authorization"),
    ({"year": 2025}, "board-of-village", 403, "Authorization"),
])
def test_bad_closes_are_refused_naming_the_field(world: World, body: dict[str, Any], role: str, status: int,
                                                 field: str) -> None:
    before = world.offsets()
    response = world.post(f"/v1/collectives/{world.village}/year-end-close", body, role)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert world.offsets() == before


def test_an_unknown_collective_or_a_year_never_closed_is_404(world: World) -> None:
    response = world.post(f"/v1/collectives/nowhere-{world.u}/year-end-close", {"year": 2025})
    assert response.status_code == 404
    never = world.get(f"/v1/collectives/{world.village}/year-end-close/2018")
    assert (never.status_code, never.get_json()["error"]["field"]) == (404, "year")
    other = world.get(f"/v1/collectives/{world.village}/year-end-close/2018", "other-accountant")
    assert other.status_code == 403


# -- the fold: an automatic entry owed into a closed year moves out of it ------------------------------------


class Log:
    def __init__(self, path: Path) -> None:
        self.store = ProjectionStore(path, SCHEMA)
        self.offsets: dict[str, Iterator[int]] = {}

    def apply(self, topic: str, envelope: dict[str, Any]) -> None:
        offsets = self.offsets.setdefault(topic, itertools.count())
        self.store.apply(topic, 0, next(offsets), read_envelope(envelope), fold, chain=False)

    def owed(self) -> list[dict[str, Any]]:
        return [json.loads(row["data"]) for row in self.store.outbox()]


def event(event_type: str, subject: str, data: dict[str, Any], *, event_id: str | None = None,
          occurred_at: str = "2025-12-20T02:00:00Z") -> dict[str, Any]:
    return env.seal(env.new_envelope(event_type=event_type, version=1, source="test", subject=subject, data=data,
                                     actor="test", event_id=event_id, occurred_at=occurred_at), env.ChainHead())


def test_an_automatic_income_entry_dated_in_a_closed_year_is_posted_on_the_first_of_january(tmp_path: Path) -> None:
    log = Log(tmp_path / "ledger.sqlite")
    log.apply(LEDGER_ENTRIES, event("CollectiveRegistered", "lianmeng", {
        "collective_id": "lianmeng", "name": "联盟村", "town": "金清镇", "alliances": []}))
    ids = automatic_entry_ids(year_end_close_cause("lianmeng", 2025, 0), "income")
    log.apply(LEDGER_ENTRIES, event("EntryPosted", "lianmeng", {
        "entry_id": ids.entry_id, "collective_id": "lianmeng", "date": "2025-12-31", "memo": "2025年 结转收入",
        "lines": [{"account": "501", "debit": "1.00"}, {"account": "321", "credit": "1.00"}],
        "origin": {"kind": "year_end_close", "ref": "2025"}}, event_id=ids.event_id))
    # A payment (no income account) keeps its date; an approval's 112/502 entry leaves the closed year.
    log.apply(DIVIDENDS, event("DividendPaid", "binhai-park", {
        "payment_id": "pay-1", "distribution_id": "d-2025", "project_id": "binhai-park", "investor_id": "lianmeng",
        "amount": "5.00", "paid_on": "2025-12-28", "bank_reference": "ICBC-1"}))
    log.apply(DIVIDENDS, event("DividendAllocated", "binhai-park", {
        "distribution_id": "d-2025", "project_id": "binhai-park", "investor_id": "lianmeng",
        "investor_type": "collective", "capital_days": "1.00", "pro_rata": "7.00", "guaranteed_floor": "0.00",
        "top_up": "0.00", "payout": "7.00"}))
    log.apply(DIVIDENDS, event("DistributionApproved", "binhai-park", {
        "distribution_id": "d-2025", "project_id": "binhai-park", "approved_by": "board:jinqing"}))
    assert sorted((owed["origin"]["kind"], owed["date"]) for owed in log.owed()) == [
        ("dividend", "2026-01-01"), ("payment", "2025-12-28")]
    log.store.close()


def test_the_village_s_accountant_closes_its_own_year(world: World) -> None:
    world.post_entry(world.village, "2025-07-01", ("102", "debit", "42.00"), ("504", "credit", "42.00"))
    response = close(world, world.village, 2025, "accountant")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["net_income"] == "42.00"
    assert world.ok(f"/v1/collectives/{world.village}/year-end-close/2025", "auditor")["closed"] is True
