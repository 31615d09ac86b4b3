"""Sums of the books are exact however big (DESIGN §3, issue 13 point 2), and what may not travel is refused.

The largest wire amount is 999999999999.99 yuan (MAX_WIRE_FEN), but the books may hold any number
of such lines: 100,000 of them on one account are ~10^19 fen, beyond SQLite's 64-bit SUM (2^63).
The projection's sums (``balances_to``, ``movements_by_year``) and the reports over them must
still answer, exactly. The capital rules refuse a valuation or a project capital that would not fit.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import date
from pathlib import Path

import pytest

from services.contracts.money import MAX_WIRE_FEN, format_yuan
from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.capital import (
    AmountOutOfRange,
    CapitalChange,
    InvalidInvestment,
    check_project_capital,
    land_valuation,
)
from services.ledger.projection import SCHEMA, fold
from services.ledger.reads import LedgerReads
from services.ledger.reports import (
    CollectiveInfo,
    PostedLine,
    balance_sheet,
    income_statement,
    trial_balance,
    village_income_report,
)
from services.runtime.sqlsum import exact_sum, sum_of
from services.runtime.store import Pending, ProjectionStore

BOUND = format_yuan(MAX_WIRE_FEN)  # "999999999999.99"
ENTRIES = 1_000
SIDE = 100  # lines per side of each entry: 100 debits of 102, 100 credits of 501 (200, the most an entry has)
TOTAL = ENTRIES * SIDE * MAX_WIRE_FEN  # fen on each side: ~10^19
VILLAGE = "lianmeng"


def entry_posted(n: int) -> dict[str, object]:
    lines = [{"account": "102", "debit": BOUND}] * SIDE + [{"account": "501", "credit": BOUND}] * SIDE
    return {"event_id": str(uuid.uuid4()), "type": "EntryPosted", "subject": VILLAGE,
            "data": {"entry_id": str(uuid.uuid4()), "collective_id": VILLAGE, "date": f"2026-{n % 12 + 1:02d}-15",
                     "memo": "", "lines": lines, "origin": {"kind": "manual"}}}


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> ProjectionStore:
    store = ProjectionStore(tmp_path_factory.mktemp("big-books") / "ledger.sqlite", SCHEMA)
    records = [Pending(LEDGER_ENTRIES, 0, n, entry_posted(n)) for n in range(ENTRIES)]
    assert store.apply_batch(records, fold, chained=set()) == []
    return store


def test_the_books_hold_sums_beyond_what_a_sqlite_sum_can_add(books: ProjectionStore) -> None:
    assert TOTAL > 2**63
    with pytest.raises(sqlite3.OperationalError, match="integer overflow"):
        books.query("SELECT SUM(debit) FROM entry_lines WHERE account='102'")


def test_balances_to_sums_every_account_exactly(books: ProjectionStore) -> None:
    lines = {line.account: line for line in LedgerReads(books).balances_to(VILLAGE, date(2026, 12, 31))}
    assert (lines["102"].debit, lines["102"].credit) == (TOTAL, 0)
    assert (lines["501"].debit, lines["501"].credit) == (0, TOTAL)


def test_movements_by_year_sum_exactly_and_the_reports_over_them_answer(books: ProjectionStore) -> None:
    moved = LedgerReads(books).movements_by_year(VILLAGE, 2026)
    assert sum(line.debit for line in moved) == sum(line.credit for line in moved) == TOTAL
    income_lines = LedgerReads(books).movements_by_year(None, 2026, income_only=True)
    assert [(line.account, line.credit) for line in income_lines] == [("501", TOTAL)]

    tb = trial_balance(LedgerReads(books).balances_to(VILLAGE, date(2026, 12, 31)), date(2026, 12, 31))
    assert tb.balanced and tb.total_debit == TOTAL
    assert {row.code: row.balance for row in tb.rows} == {"102": TOTAL, "501": TOTAL}
    sheet = balance_sheet(moved, 2026, collective_id=VILLAGE)
    assert sheet.balanced and sheet.total_assets == TOTAL
    statement = income_statement(moved, 2026, collective_id=VILLAGE)
    assert statement.amount("501") == statement.net_income == TOTAL
    report = village_income_report([CollectiveInfo(VILLAGE, "联盟村", "金清镇", ("共富联盟",))], income_lines, 2026)
    assert report.total_income == report.by_town[0].income == report.by_alliance[0].income == TOTAL
    assert format_yuan(TOTAL) == "99999999999999000.00"  # 100,000 × 999999999999.99


@pytest.mark.parametrize("count", [0, 1, 3, 200_001])
def test_an_exact_sum_is_the_python_sum_of_any_ints_sqlite_holds(count: int) -> None:
    values = [2**63 - 1, -(2**63), MAX_WIRE_FEN, -MAX_WIRE_FEN, 0, 1, -1, 2**32, 2**32 - 1, -(2**32)]
    rows = [values[i % len(values)] for i in range(count)]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k INTEGER, v INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i % 2, v) for i, v in enumerate(rows)])
    found = conn.execute(f"SELECT {exact_sum('v')}, {exact_sum('v * 2 - v')} FROM t").fetchone()
    assert sum_of(found[0], found[1]) == sum_of(found[2], found[3]) == sum(rows)
    for k, high, low in conn.execute(f"SELECT k, {exact_sum('v')} FROM t GROUP BY k"):
        assert sum_of(high, low) == sum(v for i, v in enumerate(rows) if i % 2 == k)


def test_the_pure_reports_add_lines_far_beyond_two_to_the_63_exactly() -> None:
    huge = 10**40 + 7
    lines = [PostedLine(VILLAGE, "e1", date(2026, 1, 1), "102", huge, 0),
             PostedLine(VILLAGE, "e1", date(2026, 1, 1), "501", 0, huge),
             PostedLine(VILLAGE, "e2", date(2026, 2, 1), "102", huge, 0),
             PostedLine(VILLAGE, "e2", date(2026, 2, 1), "501", 0, huge)]
    assert trial_balance(lines, date(2026, 12, 31)).total_credit == 2 * huge
    assert balance_sheet(lines, 2026).total_liabilities_and_equity == 2 * huge
    assert income_statement(lines, 2026).net_income == 2 * huge


# -- what may not travel is refused ------------------------------------------------------------------------


def test_a_land_valuation_at_the_bound_is_accepted_and_one_fen_more_refused_naming_the_area() -> None:
    assert land_valuation("1.0000", BOUND) == MAX_WIRE_FEN
    assert land_valuation("10.0000", "99999999999.99") == MAX_WIRE_FEN - 9
    with pytest.raises(AmountOutOfRange) as raised:
        land_valuation("1.0001", BOUND)
    assert raised.value.field == "area_mu" and raised.value.code == "amount_out_of_range"
    assert isinstance(raised.value, InvalidInvestment)
    with pytest.raises(AmountOutOfRange):
        land_valuation("999999999.9999", BOUND)


def test_a_projects_capital_may_reach_the_bound_but_never_pass_it_on_any_day() -> None:
    half = MAX_WIRE_FEN // 2
    moves = [CapitalChange(date(2026, 1, 1), half), CapitalChange(date(2026, 6, 1), -half),
             CapitalChange(date(2026, 9, 1), half)]
    check_project_capital(moves, date(2026, 1, 1), MAX_WIRE_FEN - half, "amount")  # exactly the bound
    check_project_capital(moves, date(2026, 6, 1), MAX_WIRE_FEN - half, "amount")  # after the withdrawal
    with pytest.raises(AmountOutOfRange) as raised:
        check_project_capital(moves, date(2026, 6, 1), MAX_WIRE_FEN - half + 1, "amount")  # 1 Sept: one fen over
    assert raised.value.field == "amount" and "2026-09-01" in raised.value.message
    with pytest.raises(AmountOutOfRange) as raised:
        check_project_capital([], date(2026, 1, 1), MAX_WIRE_FEN + 1, "area_mu")
    assert raised.value.field == "area_mu"


def test_an_empty_period_of_the_books_sums_to_zero(tmp_path: Path) -> None:
    store = ProjectionStore(tmp_path / "empty.sqlite", SCHEMA)
    assert LedgerReads(store).balances_to(VILLAGE, date(2026, 12, 31)) == []
    assert LedgerReads(store).movements_by_year(None, 2026, income_only=True) == []
    store.close()
