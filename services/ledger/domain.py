"""The ledger's pure rules: journal entries, reversals, period closing, automatic entries.

DESIGN §5 (EntryPosted, EntryReversed, PeriodClosed) and §7. Amounts are int fen. Every
refusal is a typed ``LedgerError`` whose ``field`` names the offending input, so the HTTP
layer can answer a 4xx naming the field and write nothing.

No I/O here: stdlib and ``services.contracts`` (money, derived ids) only.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from services.contracts.envelope import derived_event_id
from services.contracts.money import MoneyError, format_yuan, parse_mu, parse_yuan, valuation_fen
from services.ledger.chart import LedgerError, UnknownAccount, lookup

__all__ = [
    "AUTOMATIC_EVENT_TYPES",
    "CHINA_STANDARD_TIME",
    "DERIVED_ENTRY_NAMESPACE",
    "ENTRY_QUALIFIER",
    "MEMBER_DIVIDENDS",
    "MEMBER_EVENT_TYPES",
    "UNDISTRIBUTED",
    "WELFARE",
    "YEAR_END_CLOSE",
    "AlreadyReversed",
    "AutomaticEntryIds",
    "CloseEntry",
    "ClosedPeriod",
    "InvalidDate",
    "InvalidEntry",
    "InvalidEventData",
    "InvalidLine",
    "InvalidPeriod",
    "LedgerError",
    "Line",
    "NothingToClose",
    "PeriodAlreadyClosed",
    "ReversalOfReversal",
    "UnbalancedEntry",
    "UnknownAccount",
    "UnknownEventType",
    "YearAlreadyClosed",
    "YearClosed",
    "automatic_entry_ids",
    "automatic_entry_lines",
    "check_close_period",
    "check_entry",
    "check_reversal",
    "check_year_open",
    "derived_entry_id",
    "is_result_account",
    "line_from_wire",
    "line_to_wire",
    "local_date",
    "member_entry_lines",
    "period_of",
    "posting_date",
    "results_posting_date",
    "reversal_entry_id",
    "reversing_lines",
    "touches_results",
    "year_end_close_cause",
    "year_end_close_entries",
]


# --- errors -----------------------------------------------------------------------------


class InvalidEntry(LedgerError):
    """The entry as a whole is malformed (e.g. fewer than two lines)."""

    code = "invalid_entry"


class InvalidLine(LedgerError):
    """A line whose amounts are not exactly one positive int of fen on one side."""

    code = "invalid_line"


class UnbalancedEntry(LedgerError):
    """Σ debit ≠ Σ credit."""

    code = "unbalanced_entry"


class InvalidDate(LedgerError):
    """The entry date is not a calendar date."""

    code = "invalid_date"


class ClosedPeriod(LedgerError):
    """The entry is dated inside a closed period."""

    code = "closed_period"


class InvalidPeriod(LedgerError):
    """A period that is not written ``YYYY-MM``."""

    code = "invalid_period"


class PeriodAlreadyClosed(LedgerError):
    """Closing a period that is already closed."""

    code = "period_already_closed"


class UnknownEventType(LedgerError):
    """An event type for which the ledger posts no automatic entry."""

    code = "unknown_event_type"


class InvalidEventData(LedgerError):
    """An event payload the ledger cannot turn into an automatic entry."""

    code = "invalid_event_data"


# --- lines and entries ------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One journal line in fen: exactly one of ``debit``/``credit`` is > 0, the other 0.

    The dataclass does not validate itself; ``check_entry`` does, naming the field.
    """

    account: str
    debit: int
    credit: int


def line_to_wire(line: Line) -> dict[str, str]:
    """A journal line as it travels: ``{"account", "debit"}`` or ``{"account", "credit"}`` (yuan strings)."""
    if line.debit:
        return {"account": line.account, "debit": format_yuan(line.debit)}
    return {"account": line.account, "credit": format_yuan(line.credit)}


def line_from_wire(raw: Mapping[str, Any]) -> Line:
    """A journal line from its wire form (the side that is absent or null is 0)."""
    debit = parse_yuan(raw["debit"]) if raw.get("debit") is not None else 0
    credit = parse_yuan(raw["credit"]) if raw.get("credit") is not None else 0
    return Line(str(raw["account"]), debit, credit)


_PERIOD_RE: Final = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def period_of(day: dt.date) -> str:
    """The accounting period (``"YYYY-MM"``) a date falls in."""
    return f"{day.year:04d}-{day.month:02d}"


def _is_fen(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_line(index: int, line: object) -> tuple[int, int]:
    where = f"lines[{index}]"
    if not isinstance(line, Line):
        raise InvalidLine("each line must have an account and one of debit or credit", where)
    try:
        lookup(line.account)
    except UnknownAccount as exc:
        raise UnknownAccount(exc.message, f"{where}.account") from None
    for side in ("debit", "credit"):
        value = getattr(line, side)
        if not _is_fen(value):
            raise InvalidLine(f"{side} must be an integer amount of fen", f"{where}.{side}")
        if value < 0:
            raise InvalidLine(f"{side} must not be negative", f"{where}.{side}")
    if line.debit > 0 and line.credit > 0:
        raise InvalidLine("a line is either a debit or a credit, not both", where)
    if line.debit == 0 and line.credit == 0:
        raise InvalidLine("a line must carry a non-zero amount", where)
    return line.debit, line.credit


def check_entry(lines: Sequence[Line], date: dt.date, closed_periods: Collection[str]) -> None:
    """Check a journal entry before it is posted (DESIGN §5 EntryPosted, §9).

    At least two lines; each line has exactly one positive side and an account on the
    chart; Σ debit == Σ credit; ``date`` not inside one of ``closed_periods`` (``"YYYY-MM"``).
    Raises the typed LedgerError naming the field (``"lines"``, ``"lines[1].account"``,
    ``"lines[0].debit"``, ``"date"``, …).
    """
    if isinstance(lines, (str, bytes)) or not isinstance(lines, Sequence):
        raise InvalidEntry("lines must be a list of lines", "lines")
    if len(lines) < 2:
        raise InvalidEntry("an entry needs at least two lines", "lines")
    total_debit = 0
    total_credit = 0
    for index, line in enumerate(lines):
        debit, credit = _check_line(index, line)
        total_debit += debit
        total_credit += credit
    if total_debit != total_credit:
        raise UnbalancedEntry(
            f"debits {format_yuan(total_debit)} do not equal credits {format_yuan(total_credit)}",
            "lines",
        )
    if isinstance(date, dt.datetime) or not isinstance(date, dt.date):
        raise InvalidDate("date must be a calendar date (YYYY-MM-DD)", "date")
    period = period_of(date)
    if period in closed_periods:
        raise ClosedPeriod(f"period {period} is closed; no entry may be dated inside it", "date")


def reversing_lines(lines: Sequence[Line]) -> tuple[Line, ...]:
    """The lines of the entry that reverses ``lines`` (DESIGN §5 EntryReversed): sides swapped."""
    return tuple(Line(line.account, line.credit, line.debit) for line in lines)


def check_close_period(period: str, closed: Collection[str]) -> None:
    """Check that ``period`` is written ``YYYY-MM`` and is not already closed."""
    if not isinstance(period, str) or not _PERIOD_RE.fullmatch(period):
        raise InvalidPeriod('period must be written YYYY-MM, e.g. "2026-03"', "period")
    if period in closed:
        raise PeriodAlreadyClosed(f"period {period} is already closed", "period")


# --- automatic entries (DESIGN §7) ------------------------------------------------------

#: Event types for which the ledger posts an entry by itself. ``DistributionApproved`` is
#: handled per allocation: pass each approved allocation's ``DividendAllocated`` payload.
AUTOMATIC_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "LandShareInvested",
        "CashInvested",
        "InvestmentWithdrawn",
        "DividendAllocated",
        "DistributionApproved",
        "DividendPaid",
    }
)


def _project(data: Mapping[str, Any]) -> str:
    project = data.get("project_id")
    if not isinstance(project, str):
        raise InvalidEventData("project_id is required", "data.project_id")
    return project


def _sub(code: str, project: str) -> str:
    account = f"{code}/{project}"
    try:
        lookup(account)
    except UnknownAccount as exc:
        raise InvalidEventData(exc.message, "data.project_id") from None
    return account


def _amount(data: Mapping[str, Any], key: str) -> int:
    try:
        return parse_yuan(data.get(key))
    except MoneyError as exc:
        raise InvalidEventData(str(exc), f"data.{key}") from None


def _land_valuation(data: Mapping[str, Any]) -> int:
    valuation = _amount(data, "valuation")
    if "area_mu" in data and "price_per_mu" in data:
        try:
            area = parse_mu(data["area_mu"])
        except MoneyError as exc:
            raise InvalidEventData(str(exc), "data.area_mu") from None
        expected = valuation_fen(area, _amount(data, "price_per_mu"))
        if valuation != expected:
            raise InvalidEventData(
                f"valuation must be ROUND_HALF_UP(area_mu × price_per_mu) = {format_yuan(expected)}",
                "data.valuation",
            )
    return valuation


def automatic_entry_lines(event_type: str, data: Mapping[str, Any]) -> tuple[Line, ...]:
    """The lines the ledger posts by itself for an event, in the investing collective's books.

    DESIGN §7:

    ====================================  ==========================  =====================
    event                                 debit                       credit
    ====================================  ==========================  =====================
    LandShareInvested                     141/{project} valuation     311 公积公益金
    CashInvested                          141/{project} amount        102 银行存款
    InvestmentWithdrawn                   102 amount                  141/{project}
    DividendAllocated (on approval)       112/{project} payout        502/{project} 投资收益
    DividendPaid                          102 amount                  112/{project}
    ====================================  ==========================  =====================

    ``data`` is the event's wire payload (amounts are yuan strings). ``DistributionApproved``
    is accepted as an alias of ``DividendAllocated``: call it once per approved allocation
    with that allocation's payload. Returns ``()`` when there is nothing to post: a zero
    amount or payout, or a payload whose ``investor_type`` is present and not
    ``"collective"`` (the caller decides for payloads without ``investor_type``).
    Raises UnknownEventType (field ``"type"``) or InvalidEventData (field ``"data.…"``).
    """
    if event_type not in AUTOMATIC_EVENT_TYPES:
        raise UnknownEventType(f"the ledger posts no automatic entry for {event_type!r}", "type")
    if not isinstance(data, Mapping):
        raise InvalidEventData("data must be an object", "data")
    investor_type = data.get("investor_type")
    if investor_type is not None and investor_type != "collective":
        return ()
    project = _project(data)
    debit_account: str
    credit_account: str
    if event_type == "LandShareInvested":
        amount = _land_valuation(data)
        debit_account, credit_account = _sub("141", project), "311"
    elif event_type == "CashInvested":
        amount = _amount(data, "amount")
        debit_account, credit_account = _sub("141", project), "102"
    elif event_type == "InvestmentWithdrawn":
        amount = _amount(data, "amount")
        debit_account, credit_account = "102", _sub("141", project)
    elif event_type in ("DividendAllocated", "DistributionApproved"):
        amount = _amount(data, "payout")
        debit_account, credit_account = _sub("112", project), _sub("502", project)
    else:  # DividendPaid
        amount = _amount(data, "amount")
        debit_account, credit_account = "102", _sub("112", project)
    if amount == 0:
        return ()
    return (Line(debit_account, amount, 0), Line(credit_account, 0, amount))


#: Namespace of the deterministic ids of entries the ledger derives from other events.
DERIVED_ENTRY_NAMESPACE: Final = uuid.UUID("87fb2c8a-4486-44d7-adad-3f3cda85cc3b")


def derived_entry_id(cause_event_id: str, qualifier: str = "") -> str:
    """Deterministic entry id for an entry caused by another event (DESIGN §4).

    ``uuid5(DERIVED_ENTRY_NAMESPACE, f"{cause_event_id}:{qualifier}")``: replaying the
    cause gives the same id, so the entry is never posted twice. Use ``qualifier`` when one
    cause yields several entries (e.g. the investor_id of each allocation of an approval).
    """
    return str(uuid.uuid5(DERIVED_ENTRY_NAMESPACE, f"{cause_event_id}:{qualifier}"))


#: Qualifier of the one automatic entry an investment, a withdrawal or a payment causes (an
#: approval causes one entry per collective: its qualifier is the investor_id).
ENTRY_QUALIFIER: Final = "entry"


@dataclass(frozen=True)
class AutomaticEntryIds:
    """The ids of an entry the ledger posts by itself: its ``entry_id`` and its EntryPosted's ``event_id``."""

    entry_id: str
    event_id: str


def automatic_entry_ids(cause_event_id: str, qualifier: str = ENTRY_QUALIFIER) -> AutomaticEntryIds:
    """The ids of the automatic entry ``cause_event_id`` causes (DESIGN §4, §7): the one place they are
    computed, for the fold that owes the entry and for whoever needs to find it."""
    return AutomaticEntryIds(derived_entry_id(cause_event_id, qualifier), derived_event_id(cause_event_id, qualifier))


def reversal_entry_id(entry_id: str) -> str:
    """The id of the reversal of ``entry_id``: one reversal per entry, so it can never be posted twice."""
    return derived_entry_id(entry_id, "reversal")


# --- reversals and dates of automatic entries -------------------------------------------


class AlreadyReversed(LedgerError):
    """The entry was reversed before; an entry is reversed at most once."""

    code = "already_reversed"


class ReversalOfReversal(LedgerError):
    """A reversing entry cannot itself be reversed: post a new entry instead."""

    code = "reversal_of_reversal"


def check_reversal(*, original_date: dt.date, reversed_by: str | None, is_reversal: bool, date: dt.date,
                   closed_periods: Collection[str]) -> None:
    """Check a reversal of a posted entry (DESIGN §5 EntryReversed): never edit, never delete.

    The entry must not be reversed already nor be a reversal itself; the reversal is dated on
    or after the original, outside every closed period.
    """
    if reversed_by is not None:
        raise AlreadyReversed(f"the entry was already reversed by {reversed_by}", "entry_id")
    if is_reversal:
        raise ReversalOfReversal("a reversing entry cannot be reversed; post a new entry instead", "entry_id")
    if date < original_date:
        raise InvalidDate(f"a reversal cannot be dated before the entry it reverses ({original_date})", "date")
    period = period_of(date)
    if period in closed_periods:
        raise ClosedPeriod(f"period {period} is closed; no entry may be dated inside it", "date")


def posting_date(day: dt.date, closed_periods: Collection[str]) -> dt.date:
    """The date an automatic entry is posted on: ``day``, or the first day of the first open
    period after it when ``day`` falls inside a closed period (closed books are never touched)."""
    while period_of(day) in closed_periods:
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return day


#: Village books keep China Standard Time (UTC+8): an event at 2025-12-31T17:00Z is dated 2026-01-01.
CHINA_STANDARD_TIME: Final = dt.timezone(dt.timedelta(hours=8), "CST")


def local_date(instant: str) -> dt.date:
    """The calendar date in China Standard Time of a UTC instant ``YYYY-MM-DDTHH:MM:SS[.f]Z``."""
    moment = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return moment.astimezone(CHINA_STANDARD_TIME).date()


# --- the year-end close (结转, DESIGN §11) ------------------------------------------------------------


class YearClosed(LedgerError):
    """An entry dated in a closed year that touches its income or expense accounts (501–521)."""

    code = "year_closed"


class YearAlreadyClosed(LedgerError):
    """The year-end close of a year whose close stands (not reversed)."""

    code = "year_already_closed"


class NothingToClose(LedgerError):
    """A year without any income or expense to carry forward."""

    code = "nothing_to_close"


#: Where the close carries the year's net income (本年收益 → 收益分配, the undistributed part).
UNDISTRIBUTED: Final = "322/undistributed"
#: The origin kind of the close's entries (ref: the year, ``"2025"``).
YEAR_END_CLOSE: Final = "year_end_close"
#: At most this many accounts on one close entry (an entry has at most 200 lines; one is 321's).
_CLOSE_ACCOUNTS_PER_ENTRY: Final = 199


def is_result_account(account: str) -> bool:
    """The income and expense accounts 501–521 (and their sub-accounts): what a year-end close empties."""
    return lookup(account).account_class == "损益"


def touches_results(lines: Sequence[Line]) -> bool:
    return any(is_result_account(line.account) for line in lines)


@dataclass(frozen=True)
class CloseEntry:
    """One entry of a year-end close: its qualifier (for its derived ids), memo and lines."""

    qualifier: str
    memo: str
    lines: tuple[Line, ...]


def _closing(accounts: Mapping[str, int], year: int, what: str, qualifier: str, income: bool) -> list[CloseEntry]:
    """Entries moving each account's balance of the year into 321 (``accounts``: account -> balance on its
    normal side, zeros left out), at most ``_CLOSE_ACCOUNTS_PER_ENTRY`` accounts an entry."""
    codes = [code for code in sorted(accounts) if accounts[code] != 0]
    out = []
    for start in range(0, len(codes), _CLOSE_ACCOUNTS_PER_ENTRY):
        chunk = codes[start:start + _CLOSE_ACCOUNTS_PER_ENTRY]
        lines = []
        for code in chunk:
            balance = accounts[code]
            # An income account (credit-normal) is emptied by a debit, an expense account by a credit.
            emptying = balance if income else -balance
            lines.append(Line(code, emptying, 0) if emptying > 0 else Line(code, 0, -emptying))
        net = sum(line.debit - line.credit for line in lines)  # what 321 takes on the other side
        if net:
            lines.append(Line("321", 0, net) if net > 0 else Line("321", -net, 0))
        name = qualifier if start == 0 else f"{qualifier}-{start // _CLOSE_ACCOUNTS_PER_ENTRY + 1}"
        out.append(CloseEntry(name, f"{year}年 {what}", tuple(lines)))
    return out


def year_end_close_entries(movements: Mapping[str, int], year: int) -> tuple[list[CloseEntry], int]:
    """The entries of the year-end close of ``year`` and the net income they carry into 322/undistributed.

    ``movements``: each income or expense account (501–521, sub-accounts apart) -> its net debit movement
    (debit − credit) of the year. DESIGN §11: each 501–504 balance into 321 本年收益 (结转收入), 321 against
    each 511–521 balance (结转支出), then 321 into 322/undistributed (结转本年收益): net income =
    income − expenses. Zero balances are left out; a loss moves 322/undistributed the other way.
    Raises NothingToClose (field ``year``) when every balance is zero.
    """
    income = {code: -net for code, net in movements.items() if lookup(code).normal_side == "credit"}
    expenses = {code: net for code, net in movements.items() if lookup(code).normal_side == "debit"}
    entries = _closing(income, year, "结转收入", "income", income=True)
    entries += _closing(expenses, year, "结转支出", "expenses", income=False)
    if not entries:
        raise NothingToClose(f"the books have no income or expense in {year} to carry forward", "year")
    net_income = sum(income.values()) - sum(expenses.values())
    if net_income:
        transfer = ((Line("321", net_income, 0), Line(UNDISTRIBUTED, 0, net_income)) if net_income > 0
                    else (Line(UNDISTRIBUTED, -net_income, 0), Line("321", 0, -net_income)))
        entries.append(CloseEntry("transfer", f"{year}年 结转本年收益", transfer))
    return entries, net_income


def year_end_close_cause(collective_id: str, year: int, round_no: int) -> str:
    """The deterministic cause of the ids of a year-end close: the collective, the year and which close of
    that year it is (0 the first; a close reversed and posted again is the next round)."""
    return f"{YEAR_END_CLOSE}:{collective_id}:{year}:{round_no}"


def check_year_open(lines: Sequence[Line], date: dt.date, closed_years: Collection[int]) -> None:
    """An entry dated in a closed year may not touch its income or expense accounts (DESIGN §11)."""
    if date.year in closed_years and touches_results(lines):
        raise YearClosed(f"the year {date.year} is closed (year-end close posted): no entry dated in it may touch "
                         "the income and expense accounts 501–521 until the close is reversed", "date")


def results_posting_date(day: dt.date, closed_years: Collection[int]) -> dt.date:
    """The date of an automatic entry touching 501–521: ``day``, or 1 January after the closed years it
    falls in (a closed year's income is never added to after its close)."""
    while day.year in closed_years:
        day = dt.date(day.year + 1, 1, 1)
    return day


# --- the entries of a village's own distribution (DESIGN §11, baotuan.members.v1) -----------------------------

#: The sub-accounts a plan's entries use.
WELFARE: Final = "211/welfare"
MEMBER_DIVIDENDS: Final = "211/member-dividends"
MEMBER_EVENT_TYPES: Final[frozenset[str]] = frozenset({"PlanApproved", "HouseholdDividendPaid"})


def member_entry_lines(event_type: str, data: Mapping[str, Any]) -> tuple[Line, ...]:
    """The lines the ledger posts for a members event in the collective's books (DESIGN §11).

    ``PlanApproved``: Dr 322/undistributed (reserve + welfare + members_total), Cr 311 reserve,
    Cr 211/welfare welfare, Cr 211/member-dividends members_total (zero lines left out).
    ``HouseholdDividendPaid``: Dr 211/member-dividends amount, Cr 102 amount.
    Returns ``()`` when there is nothing to post. Raises UnknownEventType or InvalidEventData.
    """
    if event_type not in MEMBER_EVENT_TYPES:
        raise UnknownEventType(f"the ledger posts no entry for the members event {event_type!r}", "type")
    if not isinstance(data, Mapping):
        raise InvalidEventData("data must be an object", "data")
    if event_type == "HouseholdDividendPaid":
        amount = _amount(data, "amount")
        return (Line(MEMBER_DIVIDENDS, amount, 0), Line("102", 0, amount)) if amount else ()
    credits = [(account, _amount(data, key)) for account, key in
               (("311", "reserve"), (WELFARE, "welfare"), (MEMBER_DIVIDENDS, "members_total"))]
    total = sum(amount for _, amount in credits)
    if total == 0:
        return ()
    return (Line(UNDISTRIBUTED, total, 0), *(Line(account, 0, amount) for account, amount in credits if amount))
