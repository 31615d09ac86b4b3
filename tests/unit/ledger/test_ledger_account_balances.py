"""科目余额表 over a range of months: per account and sub-account, the opening balance, the period's debits
and credits and the closing balance, exact to the fen however big; refusals naming the field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import running
from ledger_world import World, open_world

from services.contracts.money import format_yuan, parse_yuan
from services.ledger.app import create_app
from services.ledger.reports import PostedLine, account_balances
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

BIG = "999999999999.99"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("ledger-balances")
    settings = Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                        request_timeout_s=10)
    with running(create_app, settings, log=InMemoryLog()) as client:
        w = open_world(settings, client)
        v = w.village
        w.post_entry(v, "2025-12-20", ("102", "debit", "1000.00"), ("301", "credit", "1000.00"))
        w.post_entry(v, "2026-01-05", ("141/binhai-park", "debit", "400.00"), ("102", "credit", "400.00"))
        w.post_entry(v, "2026-02-10", ("102", "debit", "250.50"), ("501", "credit", "250.50"))
        w.post_entry(v, "2026-02-28", ("513", "debit", "20.25"), ("101", "credit", "20.25"))  # 101 goes negative
        w.post_entry(v, "2026-03-01", ("102", "debit", "1.00"), ("504", "credit", "1.00"))
        yield w


def balances(world: World, first: str, last: str, collective_id: str | None = None) -> dict[str, Any]:
    return dict(world.ok(f"/v1/collectives/{collective_id or world.village}/account-balances?from={first}&to={last}"))


def test_opening_period_movements_and_closing_per_account_and_sub_account(world: World) -> None:
    body = balances(world, "2026-01", "2026-02")
    assert (body["from"], body["to"]) == ("2026-01", "2026-02")
    rows = {row["code"]: row for row in body["accounts"]}
    assert list(rows) == ["101", "102", "141/binhai-park", "301", "501", "513"]  # chart order; March left out
    assert rows["102"] == {"code": "102", "name": "银行存款", "normal_side": "debit", "opening_balance": "1000.00",
                           "debit": "250.50", "credit": "400.00", "closing_balance": "850.50"}
    assert rows["141/binhai-park"]["name"] == "长期投资" and rows["141/binhai-park"]["closing_balance"] == "400.00"
    assert rows["301"] == {"code": "301", "name": "资本", "normal_side": "credit", "opening_balance": "1000.00",
                           "debit": "0.00", "credit": "0.00", "closing_balance": "1000.00"}
    assert rows["101"]["closing_balance"] == "-20.25"  # on the other side of its normal side
    assert body["totals"] == {"opening_debit": "1000.00", "opening_credit": "1000.00", "debit": "670.75",
                              "credit": "670.75", "closing_debit": "1270.75", "closing_credit": "1270.75"}
    # The closing balances are the trial balance at the last day of the range.
    tb = world.balances(world.village, "2026-02-28")
    assert {code: row["closing_balance"] for code, row in rows.items()} == tb


def test_a_later_range_opens_where_the_earlier_closed(world: World) -> None:
    first = {row["code"]: row for row in balances(world, "2026-01", "2026-02")["accounts"]}
    march = {row["code"]: row for row in balances(world, "2026-03", "2026-03")["accounts"]}
    for code, row in first.items():
        assert march[code]["opening_balance"] == row["closing_balance"]
    assert march["504"]["opening_balance"] == "0.00" and march["504"]["credit"] == "1.00"
    assert balances(world, "2031-01", "2031-12")["totals"]["debit"] == "0.00"  # nothing moves, balances stay
    assert balances(world, "2019-01", "2019-12")["accounts"] == []  # before the books began


def test_sums_stay_exact_past_twelve_digits(world: World) -> None:
    village = f"lg-{world.u}-big"
    world.created("/v1/collectives", {"collective_id": village, "name": "大额村", "town": world.town})
    for day in ("2026-01-01", "2026-01-02", "2026-02-01"):
        world.post_entry(village, day, ("102", "debit", BIG), ("301", "credit", BIG))
    body = balances(world, "2026-02", "2026-02", village)
    rows = {row["code"]: row for row in body["accounts"]}
    big = parse_yuan(BIG)
    assert rows["102"]["opening_balance"] == format_yuan(2 * big)
    assert rows["102"]["closing_balance"] == format_yuan(3 * big)
    assert body["totals"]["closing_debit"] == body["totals"]["closing_credit"] == format_yuan(3 * big)


@pytest.mark.parametrize(("query", "status", "field"), [
    ("from=2026-03&to=2026-01", 422, "to"),
    ("from=2016-01&to=2026-12", 422, "to"),  # 132 months
    ("from=2026-13&to=2026-12", 422, "from"),
    ("from=2026-1&to=2026-12", 422, "from"),
    ("from=2026-01&to=2026-12-31", 422, "to"),
    ("from=%202026-01&to=2026-02", 422, "from"),
    ("to=2026-02", 422, "from"),
    ("from=2026-01", 422, "to"),
])
def test_bad_ranges_are_refused_naming_the_field(world: World, query: str, status: int, field: str) -> None:
    response = world.get(f"/v1/collectives/{world.village}/account-balances?{query}")
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_ten_years_are_allowed(world: World) -> None:
    assert balances(world, "2017-01", "2026-12")["totals"]["debit"] != "0.00"


@pytest.mark.parametrize(("role", "collective", "status"), [
    ("other-accountant", "{village}", 403), ("board-of-village", "{village}", 403), ("operator", "{village}", 403),
    ("none", "{village}", 401), ("accountant", "nowhere-{u}", 403), ("admin", "nowhere-{u}", 404),
    ("auditor", "{village}", 200), ("accountant", "{village}", 200),
])
def test_only_the_village_s_books_readers_see_them(world: World, role: str, collective: str, status: int) -> None:
    cid = collective.format(village=world.village, u=world.u)
    response = world.get(f"/v1/collectives/{cid}/account-balances?from=2026-01&to=2026-02", role)
    assert response.status_code == status, response.get_json()


def test_the_pure_report_keeps_balances_on_the_normal_side() -> None:
    day = dt.date(2026, 1, 1)
    before = [PostedLine("v", "", day, "501", 0, 300), PostedLine("v", "", day, "102", 300, 0)]
    during = [PostedLine("v", "", day, "501", 500, 0), PostedLine("v", "", day, "102", 0, 500)]
    table = account_balances(before, during, "2026-01", "2026-01")
    rows = {row.code: row for row in table.rows}
    assert (rows["501"].opening, rows["501"].closing) == (300, -200)
    assert (rows["102"].opening, rows["102"].closing) == (300, -200)
    assert (table.opening_debit, table.opening_credit, table.closing_debit, table.closing_credit) == (
        300, 300, 200, 200)
