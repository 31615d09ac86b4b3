"""Trial balance, balance sheet, income statement and the village income report (DESIGN §7)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.chart import ACCOUNTS
from services.ledger.domain import Line, check_entry, reversing_lines
from services.ledger.reports import (
    MILLION_TARGET_FEN,
    WEAK_THRESHOLD_FEN,
    CollectiveInfo,
    IncomeSubtotal,
    PostedLine,
    ReportRow,
    TrialBalanceRow,
    balance_sheet,
    collective_income,
    income_statement,
    trial_balance,
    village_income_report,
)


def entry(entry_id: str, day: date, *lines: Line, collective_id: str = "lianmeng") -> list[PostedLine]:
    check_entry(lines, day, ())
    return [PostedLine(collective_id, entry_id, day, line.account, line.debit, line.credit) for line in lines]


def dr(account: str, fen: int) -> Line:
    return Line(account, fen, 0)


def cr(account: str, fen: int) -> Line:
    return Line(account, 0, fen)


# Lianmeng village's books, 2025–2027 (amounts in fen).
LIANMENG = [
    *entry("e1", date(2025, 6, 1), dr("102", 100_000_000), cr("301", 100_000_000)),
    *entry("e2", date(2025, 12, 20), dr("102", 30_000_000), cr("503", 30_000_000)),
    *entry("e3", date(2025, 12, 31), dr("511", 5_000_000), cr("102", 5_000_000)),
    *entry("e4", date(2026, 1, 5), dr("141/binhai-park", 497_000_000), cr("311", 497_000_000)),
    *entry("e5", date(2026, 2, 1), dr("141/binhai-park", 50_000_000), cr("102", 50_000_000)),
    *entry("e6", date(2026, 3, 31), dr("112/binhai-park", 52_000_000), cr("502/binhai-park", 52_000_000)),
    *entry("e7", date(2026, 4, 10), dr("102", 52_000_000), cr("112/binhai-park", 52_000_000)),
    *entry("e8", date(2026, 5, 1), dr("513", 1_234_567), cr("102", 1_234_567)),
    *entry("e9", date(2026, 6, 30), dr("151", 20_000_000), cr("102", 20_000_000)),
    *entry("e10", date(2026, 12, 31), dr("511", 1_000_000), cr("152", 1_000_000)),
    *entry("e11", date(2027, 1, 2), dr("102", 100), cr("504", 100)),
]
# Another village's lines, which must never leak into Lianmeng's reports.
XINQIAO = entry("x1", date(2026, 3, 1), dr("102", 7_700), cr("501", 7_700), collective_id="xinqiao")


# --- trial balance ----------------------------------------------------------------------


def test_the_trial_balance_at_a_date_has_one_row_per_account_used_sorted_by_code() -> None:
    tb = trial_balance(LIANMENG + XINQIAO, date(2026, 3, 31), collective_id="lianmeng")
    assert tb.rows == (
        TrialBalanceRow("102", "银行存款", "debit", 130_000_000, 55_000_000, 75_000_000),
        TrialBalanceRow("112/binhai-park", "应收款", "debit", 52_000_000, 0, 52_000_000),
        TrialBalanceRow("141/binhai-park", "长期投资", "debit", 547_000_000, 0, 547_000_000),
        TrialBalanceRow("301", "资本", "credit", 0, 100_000_000, 100_000_000),
        TrialBalanceRow("311", "公积公益金", "credit", 0, 497_000_000, 497_000_000),
        TrialBalanceRow("502/binhai-park", "投资收益", "credit", 0, 52_000_000, 52_000_000),
        TrialBalanceRow("503", "补助收入", "credit", 0, 30_000_000, 30_000_000),
        TrialBalanceRow("511", "经营支出", "debit", 5_000_000, 0, 5_000_000),
    )
    assert tb.total_debit == tb.total_credit == 734_000_000
    assert tb.balanced


def test_entries_dated_after_as_of_are_left_out_of_the_trial_balance() -> None:
    tb = trial_balance(LIANMENG, date(2026, 3, 30))
    assert "112/binhai-park" not in {row.code for row in tb.rows}
    assert tb.total_debit == tb.total_credit == 682_000_000


def test_a_sub_account_is_kept_apart_from_its_base_account_and_from_other_segments() -> None:
    lines = entry(
        "e1",
        date(2026, 1, 1),
        dr("141", 100),
        dr("141/shangtang-market", 200),
        dr("141/binhai-park", 300),
        cr("102", 600),
    )
    tb = trial_balance(lines, date(2026, 1, 1))
    assert [(row.code, row.name, row.balance) for row in tb.rows] == [
        ("102", "银行存款", -600),
        ("141", "长期投资", 100),
        ("141/binhai-park", "长期投资", 300),
        ("141/shangtang-market", "长期投资", 200),
    ]


def test_a_contra_asset_balance_is_shown_on_its_credit_side() -> None:
    tb = trial_balance(LIANMENG, date(2026, 12, 31))
    depreciation = next(row for row in tb.rows if row.code == "152")
    assert depreciation == TrialBalanceRow("152", "累计折旧", "credit", 0, 1_000_000, 1_000_000)


def test_the_trial_balance_of_no_lines_is_empty_and_balanced() -> None:
    tb = trial_balance([], date(2026, 1, 1))
    assert tb.rows == ()
    assert tb.total_debit == tb.total_credit == 0


# --- balance sheet ----------------------------------------------------------------------


def test_the_balance_sheet_at_year_end_balances_assets_against_liabilities_and_equity() -> None:
    bs = balance_sheet(LIANMENG + XINQIAO, 2026, collective_id="lianmeng")
    assert bs.as_of == date(2026, 12, 31)
    assert bs.assets.rows == (
        ReportRow("102", "银行存款", 105_765_433),
        ReportRow("112", "应收款", 0),
        ReportRow("141", "长期投资", 547_000_000),
        ReportRow("151", "固定资产", 20_000_000),
        ReportRow("152", "累计折旧", -1_000_000),
    )
    assert bs.assets.total == 671_765_433
    assert bs.liabilities.rows == ()
    assert bs.liabilities.total == 0
    assert bs.equity.rows == (
        ReportRow("301", "资本", 100_000_000),
        ReportRow("311", "公积公益金", 497_000_000),
        ReportRow("321", "本年收益", 49_765_433),
        ReportRow("322", "收益分配", 25_000_000),
    )
    assert bs.total_assets == bs.total_liabilities_and_equity == 671_765_433
    assert bs.balanced


def test_the_balance_sheet_shows_liabilities_on_their_credit_side() -> None:
    lines = entry("e1", date(2026, 1, 1), dr("102", 5_000_000), cr("201", 5_000_000))
    bs = balance_sheet(lines, 2026)
    assert bs.liabilities.rows == (ReportRow("201", "短期借款", 5_000_000),)
    assert bs.equity.rows == (ReportRow("321", "本年收益", 0),)
    assert bs.balanced


def test_the_balance_sheet_of_an_earlier_year_ignores_later_entries() -> None:
    bs = balance_sheet(LIANMENG, 2025)
    assert bs.assets.rows == (ReportRow("102", "银行存款", 125_000_000),)
    assert bs.equity.rows == (ReportRow("301", "资本", 100_000_000), ReportRow("321", "本年收益", 25_000_000))
    assert bs.balanced


def test_closing_income_into_321_does_not_change_the_equity_total() -> None:
    closing = entry(
        "c1", date(2025, 12, 31), dr("503", 30_000_000), cr("511", 5_000_000), cr("321", 25_000_000)
    )
    bs = balance_sheet(LIANMENG + closing, 2025)
    assert bs.equity.rows == (ReportRow("301", "资本", 100_000_000), ReportRow("321", "本年收益", 25_000_000))
    assert bs.balanced


# --- income statement -------------------------------------------------------------------


def test_the_income_statement_lists_every_statutory_item_for_the_year() -> None:
    stmt = income_statement(LIANMENG + XINQIAO, 2026, collective_id="lianmeng")
    assert stmt.income.rows == (
        ReportRow("501", "经营收入", 0),
        ReportRow("502", "投资收益", 52_000_000),
        ReportRow("503", "补助收入", 0),
        ReportRow("504", "其他收入", 0),
    )
    assert stmt.expenses.rows == (
        ReportRow("511", "经营支出", 1_000_000),
        ReportRow("512", "税金及附加", 0),
        ReportRow("513", "管理费用", 1_234_567),
        ReportRow("514", "公益支出", 0),
        ReportRow("515", "其他支出", 0),
        ReportRow("521", "所得税费用", 0),
    )
    assert stmt.income.total == 52_000_000
    assert stmt.expenses.total == 2_234_567
    assert stmt.net_income == 49_765_433
    assert stmt.amount("513") == 1_234_567


def test_the_income_statement_counts_only_the_years_movements() -> None:
    stmt = income_statement(LIANMENG, 2025)
    assert stmt.amount("503") == 30_000_000
    assert stmt.amount("511") == 5_000_000
    assert stmt.net_income == 25_000_000
    with pytest.raises(KeyError):
        stmt.amount("102")


# --- collective income ------------------------------------------------------------------


def test_collective_income_is_the_net_credit_movement_of_501_to_504_in_the_year() -> None:
    assert collective_income(LIANMENG, 2025) == 30_000_000
    assert collective_income(LIANMENG, 2026) == 52_000_000
    assert collective_income(LIANMENG, 2027) == 100
    assert collective_income(LIANMENG, 2024) == 0


def test_a_reversed_income_entry_no_longer_counts_as_collective_income() -> None:
    original = [dr("102", 7_700), cr("501", 7_700)]
    lines = entry("x1", date(2026, 3, 1), *original) + entry(
        "x2", date(2026, 3, 2), *reversing_lines(original)
    )
    assert collective_income(lines, 2026) == 0


def test_collective_income_can_be_restricted_to_one_collective() -> None:
    both = LIANMENG + XINQIAO
    assert collective_income(both, 2026) == 52_007_700
    assert collective_income(both, 2026, collective_id="xinqiao") == 7_700


# --- village income report --------------------------------------------------------------

JINQING, PENGJIE = "金清镇", "蓬街镇"
VILLAGES = [
    CollectiveInfo("lianmeng", "联盟村", JINQING, ("binhai-park",)),
    CollectiveInfo("xinqiao", "新桥村", JINQING, ("binhai-park", "jinqing-cluster")),
    CollectiveInfo("shangtang", "上塘村", PENGJIE, ()),
    CollectiveInfo("dongfeng", "东风村", PENGJIE, ("jinqing-cluster",)),
    CollectiveInfo("hexi", "河西村", PENGJIE, ()),
]


def income(collective_id: str, fen: int, day: date = date(2026, 6, 30)) -> list[PostedLine]:
    return entry(
        f"{collective_id}-{day}", day, dr("102", fen), cr("502/binhai-park", fen), collective_id=collective_id
    )


VILLAGE_LINES = [
    *income("lianmeng", 60_000_000),
    *income("lianmeng", 40_000_000, date(2026, 12, 31)),  # exactly 1,000,000.00 yuan in 2026
    *income("lianmeng", 5_000_000, date(2027, 1, 1)),  # next year: not counted
    *income("xinqiao", 99_999_999),  # 999,999.99 yuan
    *income("shangtang", 20_000_000),  # exactly 200,000.00 yuan
    *income("dongfeng", 19_999_999),  # 199,999.99 yuan
    *income("unlisted", 1_000_000_000),  # not in the report
]  # hexi has no income at all


def test_the_thresholds_are_one_million_and_two_hundred_thousand_yuan_in_fen() -> None:
    assert MILLION_TARGET_FEN == 100_000_000
    assert WEAK_THRESHOLD_FEN == 20_000_000


def test_each_village_is_flagged_under_one_million_and_under_two_hundred_thousand_yuan() -> None:
    report = village_income_report(VILLAGES, VILLAGE_LINES, 2026)
    flags = {v.collective_id: (v.income, v.below_million, v.weak) for v in report.villages}
    assert flags == {
        "lianmeng": (100_000_000, False, False),
        "xinqiao": (99_999_999, True, False),
        "shangtang": (20_000_000, True, False),
        "dongfeng": (19_999_999, True, True),
        "hexi": (0, True, True),
    }
    assert report.total_income == 239_999_998
    assert report.below_million_count == 4
    assert report.weak_count == 2


def test_villages_are_listed_by_town_then_id_with_their_names() -> None:
    report = village_income_report(VILLAGES, VILLAGE_LINES, 2026)
    assert [(v.town, v.collective_id, v.name) for v in report.villages] == [
        (PENGJIE, "dongfeng", "东风村"),
        (PENGJIE, "hexi", "河西村"),
        (PENGJIE, "shangtang", "上塘村"),
        (JINQING, "lianmeng", "联盟村"),
        (JINQING, "xinqiao", "新桥村"),
    ]


def test_the_report_subtotals_income_and_flags_by_town() -> None:
    report = village_income_report(VILLAGES, VILLAGE_LINES, 2026)
    assert report.by_town == (
        IncomeSubtotal(PENGJIE, village_count=3, income=39_999_999, below_million_count=3, weak_count=2),
        IncomeSubtotal(JINQING, village_count=2, income=199_999_999, below_million_count=1, weak_count=0),
    )


def test_the_report_subtotals_by_alliance_counting_a_village_in_each_of_its_alliances() -> None:
    report = village_income_report(VILLAGES, VILLAGE_LINES, 2026)
    assert report.by_alliance == (
        IncomeSubtotal(
            "binhai-park", village_count=2, income=199_999_999, below_million_count=1, weak_count=0
        ),
        IncomeSubtotal(
            "jinqing-cluster", village_count=2, income=119_999_998, below_million_count=2, weak_count=1
        ),
    )


def test_the_report_for_another_year_counts_that_years_income_only() -> None:
    report = village_income_report(VILLAGES, VILLAGE_LINES, 2027)
    assert {v.collective_id: v.income for v in report.villages}["lianmeng"] == 5_000_000
    assert report.total_income == 5_000_000
    assert report.weak_count == 5


# --- property: balanced entries always give a balanced trial balance ---------------------

ACCOUNT_CODES = st.builds(
    lambda account, segment: account.code if segment is None else f"{account.code}/{segment}",
    st.sampled_from(ACCOUNTS),
    st.none() | st.sampled_from(["binhai-park", "shangtang-market", "a", "x-1"]),
)
FEN = st.integers(min_value=1, max_value=10**13)
DAYS = st.integers(min_value=0, max_value=3 * 366).map(lambda n: date(2024, 1, 1) + timedelta(days=n))


@st.composite
def balanced_entries(draw: st.DrawFn) -> tuple[date, list[Line]]:
    debits = draw(st.lists(FEN, min_size=1, max_size=4))
    total = sum(debits)
    credits = draw(st.lists(FEN, min_size=0, max_size=3))
    if sum(credits) >= total:
        credits = []
    credits.append(total - sum(credits))
    lines = [Line(draw(ACCOUNT_CODES), fen, 0) for fen in debits]
    lines += [Line(draw(ACCOUNT_CODES), 0, fen) for fen in credits]
    shuffled = draw(st.permutations(lines))
    return draw(DAYS), list(shuffled)


@given(entries=st.lists(balanced_entries(), max_size=12), as_of=DAYS)
def test_any_set_of_balanced_entries_gives_a_trial_balance_with_equal_totals(
    entries: list[tuple[date, list[Line]]], as_of: date
) -> None:
    posted: list[PostedLine] = []
    for number, (day, lines) in enumerate(entries):
        posted += entry(f"e{number}", day, *lines)
    tb = trial_balance(posted, as_of)
    assert tb.total_debit == tb.total_credit
    assert tb.total_debit == sum(line.debit for line in posted if line.date <= as_of)
    assert sum(row.debit - row.credit for row in tb.rows) == 0
    bs = balance_sheet(posted, as_of.year)
    assert bs.balanced


@given(entries=st.lists(balanced_entries(), min_size=1, max_size=8))
def test_reversing_every_entry_leaves_every_balance_at_zero(entries: list[tuple[date, list[Line]]]) -> None:
    posted: list[PostedLine] = []
    for number, (day, lines) in enumerate(entries):
        posted += entry(f"e{number}", day, *lines)
        posted += entry(f"r{number}", day, *reversing_lines(lines))
    tb = trial_balance(posted, date(2030, 1, 1))
    assert all(row.balance == 0 for row in tb.rows)
    assert tb.total_debit == tb.total_credit
