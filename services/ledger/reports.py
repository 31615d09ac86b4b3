"""Pure report computations over posted journal lines (DESIGN §7).

- ``trial_balance``: 科目余额表 at any date, one row per account actually used
  (sub-accounts kept separate);
- ``balance_sheet``: 资产负债表 at the end of a year;
- ``income_statement``: 收益及收益分配表 (the 收益 part) for a year;
- ``collective_income`` and ``village_income_report``: collective income per village per
  year against the "村村百万" target (1,000,000 yuan) and the weak-village line
  (200,000 yuan), with subtotals by town and by alliance.

All money is int fen. The report functions take lines of any number of collectives and
accept an optional ``collective_id`` to restrict themselves to one set of books.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.ledger.chart import (
    BY_CODE,
    EXPENSE_CODES,
    INCOME_CODES,
    Account,
    is_income,
    lookup,
    split,
)

#: "村村百万": every village with at least 1,000,000 yuan of collective income a year.
MILLION_TARGET_FEN = 100_000_000
#: Villages under 200,000 yuan a year are "weak villages".
WEAK_THRESHOLD_FEN = 20_000_000


@dataclass(frozen=True)
class PostedLine:
    """One line of a posted entry, as read back from the books (amounts in fen)."""

    collective_id: str
    entry_id: str
    date: dt.date
    account: str
    debit: int
    credit: int


def _select(lines: Iterable[PostedLine], collective_id: str | None) -> list[PostedLine]:
    return [line for line in lines if collective_id is None or line.collective_id == collective_id]


def _signed(account: Account, debit: int, credit: int) -> int:
    """Balance on the account's normal side."""
    return debit - credit if account.normal_side == "debit" else credit - debit


def _code_key(code: str) -> tuple[str, str]:
    base, segment = split(code)
    return base, segment or ""


# --- trial balance ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrialBalanceRow:
    """One account of the trial balance: totals to date and the balance on its normal side."""

    code: str
    name: str
    normal_side: str
    debit: int
    credit: int
    balance: int


@dataclass(frozen=True)
class TrialBalance:
    """科目余额表 at ``as_of`` (entries dated on or before it). ``total_debit == total_credit``."""

    as_of: dt.date
    rows: tuple[TrialBalanceRow, ...]
    total_debit: int
    total_credit: int

    @property
    def balanced(self) -> bool:
        return self.total_debit == self.total_credit


def trial_balance(
    lines: Iterable[PostedLine], as_of: dt.date, *, collective_id: str | None = None
) -> TrialBalance:
    """Trial balance at ``as_of``: lines dated after it are left out.

    One row per account code actually used (``"141/binhai-park"`` apart from ``"141"``),
    sorted by code; ``name`` is the base account's name; ``balance`` is signed on the
    account's normal side (debit-normal: debit − credit; credit-normal: credit − debit).
    """
    debits: dict[str, int] = {}
    credits: dict[str, int] = {}
    for line in _select(lines, collective_id):
        if line.date > as_of:
            continue
        debits[line.account] = debits.get(line.account, 0) + line.debit
        credits[line.account] = credits.get(line.account, 0) + line.credit
    rows = []
    for code in sorted(debits, key=_code_key):
        account = lookup(code)
        debit, credit = debits[code], credits[code]
        balance = _signed(account, debit, credit)
        rows.append(TrialBalanceRow(code, account.name, account.normal_side, debit, credit, balance))
    return TrialBalance(
        as_of=as_of,
        rows=tuple(rows),
        total_debit=sum(row.debit for row in rows),
        total_credit=sum(row.credit for row in rows),
    )


# --- 科目余额表 over a range of months ----------------------------------------------------


@dataclass(frozen=True)
class AccountBalanceRow:
    """One account (or sub-account) of the 科目余额表 of a range of months.

    ``opening`` and ``closing`` are balances on the account's normal side (negative when the
    account stands on the other side); ``debit`` and ``credit`` are the period's movements.
    ``closing == opening + (debit − credit)`` for a debit-normal account, ``+ (credit − debit)`` else.
    """

    code: str
    name: str
    normal_side: str
    opening: int
    debit: int
    credit: int
    closing: int

    def side_amounts(self, balance: int) -> tuple[int, int]:
        """A balance on this account's normal side as (debit-side, credit-side) amounts, one of them 0."""
        as_debit = balance if self.normal_side == "debit" else -balance
        return (as_debit, 0) if as_debit >= 0 else (0, -as_debit)


@dataclass(frozen=True)
class AccountBalances:
    """科目余额表 from the first day of ``first`` to the last day of ``last`` (months ``YYYY-MM``).

    Every total is an exact int of fen. For balanced books ``opening_debit == opening_credit``,
    ``total_debit == total_credit`` and ``closing_debit == closing_credit``.
    """

    first: str
    last: str
    rows: tuple[AccountBalanceRow, ...]
    opening_debit: int
    opening_credit: int
    total_debit: int
    total_credit: int
    closing_debit: int
    closing_credit: int


def account_balances(before: Iterable[PostedLine], during: Iterable[PostedLine], first: str,
                     last: str) -> AccountBalances:
    """科目余额表 of one collective: ``before`` are its lines dated before the range (or their sums per
    account), ``during`` those dated inside it. One row per account used (sub-accounts apart), in chart
    order; an account with nothing to show (zero opening, no movement) is left out."""
    opening_net: dict[str, int] = {}  # debit − credit before the range
    debits: dict[str, int] = {}
    credits: dict[str, int] = {}
    for line in before:
        opening_net[line.account] = opening_net.get(line.account, 0) + line.debit - line.credit
    for line in during:
        debits[line.account] = debits.get(line.account, 0) + line.debit
        credits[line.account] = credits.get(line.account, 0) + line.credit
    rows = []
    for code in sorted(set(opening_net) | set(debits), key=_code_key):
        account = lookup(code)
        net = opening_net.get(code, 0)
        debit, credit = debits.get(code, 0), credits.get(code, 0)
        if net == 0 and debit == 0 and credit == 0:
            continue
        opening = _signed(account, max(net, 0), max(-net, 0))
        closing = _signed(account, max(net, 0) + debit, max(-net, 0) + credit)
        rows.append(AccountBalanceRow(code, account.name, account.normal_side, opening, debit, credit, closing))
    opening_sides = [row.side_amounts(row.opening) for row in rows]
    closing_sides = [row.side_amounts(row.closing) for row in rows]
    return AccountBalances(
        first=first, last=last, rows=tuple(rows),
        opening_debit=sum(d for d, _ in opening_sides), opening_credit=sum(c for _, c in opening_sides),
        total_debit=sum(row.debit for row in rows), total_credit=sum(row.credit for row in rows),
        closing_debit=sum(d for d, _ in closing_sides), closing_credit=sum(c for _, c in closing_sides),
    )


# --- balance sheet ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """A line of a statement: account code (base), name and amount in fen."""

    code: str
    name: str
    amount: int


@dataclass(frozen=True)
class Section:
    """A section of a statement; ``total`` is the sum of its rows' amounts."""

    title: str
    rows: tuple[ReportRow, ...]
    total: int


@dataclass(frozen=True)
class BalanceSheet:
    """资产负债表 at 31 December of ``year``.

    Asset rows are debit balances; the contra-asset accounts 133, 152 and 162 appear as
    negative amounts (减：累计折旧 …) so a section's rows add up to its total. The equity
    section shows 本年收益 (321 plus the year's income less expense, never closed or not)
    and 收益分配 (322 plus earlier years' income less expense not yet carried forward), so
    ``total_assets == total_liabilities_and_equity`` for any balanced books.
    """

    year: int
    as_of: dt.date
    assets: Section
    liabilities: Section
    equity: Section

    @property
    def total_assets(self) -> int:
        return self.assets.total

    @property
    def total_liabilities_and_equity(self) -> int:
        return self.liabilities.total + self.equity.total

    @property
    def balanced(self) -> bool:
        return self.total_assets == self.total_liabilities_and_equity


def _section(title: str, rows: list[ReportRow]) -> Section:
    return Section(title, tuple(rows), sum(row.amount for row in rows))


def balance_sheet(
    lines: Iterable[PostedLine], year: int, *, collective_id: str | None = None
) -> BalanceSheet:
    """资产负债表 at the end of ``year`` (all lines dated up to 31 December), by base account."""
    as_of = dt.date(year, 12, 31)
    year_start = dt.date(year, 1, 1)
    debit_side: dict[str, int] = {}  # base code -> debit − credit to date
    income_this_year = 0  # income less expense of the year (5xx, credit − debit)
    income_before = 0  # income less expense of earlier years
    for line in _select(lines, collective_id):
        if line.date > as_of:
            continue
        account = lookup(line.account)
        net = line.debit - line.credit
        if account.account_class == "损益":
            if line.date >= year_start:
                income_this_year -= net
            else:
                income_before -= net
        else:
            debit_side[account.code] = debit_side.get(account.code, 0) + net

    def rows_of(account_class: str, sign: int) -> list[ReportRow]:
        return [
            ReportRow(code, BY_CODE[code].name, sign * debit_side[code])
            for code in sorted(debit_side)
            if BY_CODE[code].account_class == account_class
        ]

    # Assets (and 401 生产（劳务）成本, which a village balance sheet carries with 存货).
    asset_rows = sorted(rows_of("资产", 1) + rows_of("成本", 1), key=lambda row: row.code)
    liability_rows = rows_of("负债", -1)
    equity_amounts = {row.code: row.amount for row in rows_of("所有者权益", -1)}
    equity_amounts["321"] = equity_amounts.get("321", 0) + income_this_year
    if income_before != 0 or "322" in equity_amounts:
        equity_amounts["322"] = equity_amounts.get("322", 0) + income_before
    equity_rows = [
        ReportRow(code, BY_CODE[code].name, amount) for code, amount in sorted(equity_amounts.items())
    ]
    return BalanceSheet(
        year=year,
        as_of=as_of,
        assets=_section("资产", asset_rows),
        liabilities=_section("负债", liability_rows),
        equity=_section("所有者权益", equity_rows),
    )


# --- income statement -------------------------------------------------------------------


@dataclass(frozen=True)
class IncomeStatement:
    """收益及收益分配表 (收益 part) for ``year``: income 501–504 less expense 511–515, 521.

    Every statutory item appears (zero if unused), in chart order. ``net_income`` is
    本年收益 = ``income.total − expenses.total``.
    """

    year: int
    income: Section
    expenses: Section
    net_income: int
    distribution: Distribution | None = None

    def amount(self, code: str) -> int:
        """The year's amount of one item by base code (e.g. ``"502"``)."""
        for row in self.income.rows + self.expenses.rows:
            if row.code == code:
                return row.amount
        raise KeyError(code)


def _movements(lines: Iterable[PostedLine], year: int) -> dict[str, int]:
    """Net debit movement (debit − credit) of each base account during ``year``."""
    moves: dict[str, int] = {}
    for line in lines:
        if line.date.year != year:
            continue
        base = lookup(line.account).code
        moves[base] = moves.get(base, 0) + line.debit - line.credit
    return moves


def income_statement(
    lines: Iterable[PostedLine], year: int, *, collective_id: str | None = None,
    brought_forward: int | None = None, appropriations: Iterable[PostedLine] = (),
) -> IncomeStatement:
    """收益及收益分配表 for ``year``: 经营收入, 投资收益, 补助收入, 其他收入, less 经营支出,
    税金及附加, 管理费用, 公益支出, 其他支出, 所得税费用 → 本年收益 (``lines`` without the year-end
    close, which empties these accounts); with ``brought_forward`` (322 at the start of the year) the
    收益分配 part too (see :func:`distribution`)."""
    moves = _movements(_select(lines, collective_id), year)
    income = _section("收入", [ReportRow(c, BY_CODE[c].name, -moves.get(c, 0)) for c in INCOME_CODES])
    expenses = _section("支出", [ReportRow(c, BY_CODE[c].name, moves.get(c, 0)) for c in EXPENSE_CODES])
    net_income = income.total - expenses.total
    shared = None if brought_forward is None else distribution(net_income, brought_forward, appropriations)
    return IncomeStatement(year=year, income=income, expenses=expenses, net_income=net_income, distribution=shared)


@dataclass(frozen=True)
class Distribution:
    """收益分配 (the 分配 part of 收益及收益分配表) of a year, in fen, from the accounts' movements.

    ``distributable = net_income + brought_forward`` (本年收益 + 年初未分配收益); the appropriations are
    what the year's entries against 322 收益分配 credited elsewhere: 311 公积公益金 (提取公积公益金),
    211/welfare (应付福利费), 211/member-dividends (应付成员收益), anything else (其他); and
    ``undistributed = distributable − every appropriation`` (年末未分配收益).
    """

    net_income: int
    brought_forward: int
    reserve: int
    welfare: int
    member_dividends: int
    other: int

    @property
    def distributable(self) -> int:
        return self.net_income + self.brought_forward

    @property
    def undistributed(self) -> int:
        return self.distributable - self.reserve - self.welfare - self.member_dividends - self.other


#: The items of 收益分配, in the statement's order: (key, name).
DISTRIBUTION_ITEMS: tuple[tuple[str, str], ...] = (
    ("net_income", "本年收益"), ("brought_forward", "年初未分配收益"), ("distributable", "可分配收益"),
    ("reserve", "提取公积公益金"), ("welfare", "应付福利费"), ("member_dividends", "应付成员收益"),
    ("other", "其他分配"), ("undistributed", "年末未分配收益"),
)


def distribution(net_income: int, brought_forward: int, appropriations: Iterable[PostedLine]) -> Distribution:
    """收益分配 of a year: ``brought_forward`` is 322's credit balance at the start of the year;
    ``appropriations`` the year's lines, other than on 322, of the entries that moved 322 (the close left out)."""
    sums = {"reserve": 0, "welfare": 0, "member_dividends": 0, "other": 0}
    for line in appropriations:
        base = split(line.account)[0]
        if base == "311":
            key = "reserve"
        elif line.account == "211/welfare":
            key = "welfare"
        elif line.account == "211/member-dividends":
            key = "member_dividends"
        else:
            key = "other"
        sums[key] += line.credit - line.debit
    return Distribution(net_income, brought_forward, **sums)


def collective_income(lines: Iterable[PostedLine], year: int, *, collective_id: str | None = None) -> int:
    """A village's collective income for ``year``: net credit movement of 501–504 (fen)."""
    return sum(
        line.credit - line.debit
        for line in _select(lines, collective_id)
        if line.date.year == year and is_income(line.account)
    )


# --- village income report --------------------------------------------------------------


@dataclass(frozen=True)
class CollectiveInfo:
    """A village collective as registered (DESIGN §5 CollectiveRegistered)."""

    collective_id: str
    name: str
    town: str
    alliances: tuple[str, ...] = ()


@dataclass(frozen=True)
class VillageIncome:
    """One village's collective income for the year and where it stands."""

    collective_id: str
    name: str
    town: str
    alliances: tuple[str, ...]
    income: int
    below_million: bool  # under 1,000,000 yuan: short of "村村百万"
    weak: bool  # under 200,000 yuan


@dataclass(frozen=True)
class IncomeSubtotal:
    """Subtotal over the villages of one town or one alliance."""

    group: str
    village_count: int
    income: int
    below_million_count: int
    weak_count: int


@dataclass(frozen=True)
class VillageIncomeReport:
    """Collective income per village for ``year``, sorted by town then collective_id.

    A village in several alliances counts in each; villages in no alliance in none.
    """

    year: int
    villages: tuple[VillageIncome, ...]
    by_town: tuple[IncomeSubtotal, ...]
    by_alliance: tuple[IncomeSubtotal, ...]
    total_income: int
    below_million_count: int
    weak_count: int


def _subtotals(groups: dict[str, list[VillageIncome]]) -> tuple[IncomeSubtotal, ...]:
    return tuple(
        IncomeSubtotal(
            group=name,
            village_count=len(members),
            income=sum(v.income for v in members),
            below_million_count=sum(1 for v in members if v.below_million),
            weak_count=sum(1 for v in members if v.weak),
        )
        for name, members in sorted(groups.items())
    )


def village_income_report(
    collectives: Sequence[CollectiveInfo], lines: Iterable[PostedLine], year: int
) -> VillageIncomeReport:
    """The village income report (DESIGN §7) for ``year``.

    Income is ``collective_income`` of each collective's own lines; "under" is strictly
    less than the threshold. Lines of collectives not listed are ignored.
    """
    books: dict[str, list[PostedLine]] = {c.collective_id: [] for c in collectives}
    for line in lines:
        if line.collective_id in books:
            books[line.collective_id].append(line)
    incomes = {cid: collective_income(own, year) for cid, own in books.items()}
    villages = tuple(
        VillageIncome(
            collective_id=c.collective_id,
            name=c.name,
            town=c.town,
            alliances=tuple(c.alliances),
            income=incomes[c.collective_id],
            below_million=incomes[c.collective_id] < MILLION_TARGET_FEN,
            weak=incomes[c.collective_id] < WEAK_THRESHOLD_FEN,
        )
        for c in sorted(collectives, key=lambda c: (c.town, c.collective_id))
    )
    towns: dict[str, list[VillageIncome]] = {}
    alliances: dict[str, list[VillageIncome]] = {}
    for village in villages:
        towns.setdefault(village.town, []).append(village)
        for alliance in dict.fromkeys(village.alliances):
            alliances.setdefault(alliance, []).append(village)
    return VillageIncomeReport(
        year=year,
        villages=villages,
        by_town=_subtotals(towns),
        by_alliance=_subtotals(alliances),
        total_income=sum(v.income for v in villages),
        below_million_count=sum(1 for v in villages if v.below_million),
        weak_count=sum(1 for v in villages if v.weak),
    )
