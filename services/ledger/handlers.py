"""The ledger's decisions: ``handle_x(command, reads) -> Decision`` (services.runtime.handling).

Every refusal of the ledger is raised here as a ``Refused`` naming the field; the rules
themselves are the pure modules' (``domain``, ``capital``). No Flask, no SQL, no Kafka: the
reads come from ``reads.LedgerReads``, the ids the command creates from its caller, and the events
go back in the Decision for the caller to publish.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.ledger.capital import check_project_capital, check_withdrawal, land_valuation
from services.ledger.chart import LedgerError
from services.ledger.commands import (
    ClosePeriod,
    Invest,
    PostBatch,
    PostEntry,
    RegisterCollective,
    RegisterInvestor,
    RegisterProject,
    ReverseEntry,
    Withdraw,
    YearEndClose,
)
from services.ledger.domain import (
    UNDISTRIBUTED,
    YEAR_END_CLOSE,
    InvalidDate,
    automatic_entry_ids,
    check_close_period,
    check_entry,
    check_reversal,
    check_year_open,
    line_from_wire,
    line_to_wire,
    period_of,
    reversal_entry_id,
    year_end_close_cause,
    year_end_close_entries,
)
from services.ledger.reads import LedgerReads
from services.runtime.handling import Decision, Refused
from services.runtime.service import NewEvent

#: Refusals that are conflicts with the books' state rather than bad input.
CONFLICTS = frozenset({"already_reversed", "reversal_of_reversal", "period_already_closed", "year_closed",
                       "year_already_closed"})


def _dotted(field: str) -> str:
    """``lines[1].account`` (the domain's spelling) -> ``lines.1.account`` (the API's, like webargs)."""
    return re.sub(r"\[(\d+)\]", r".\1", field)


def refusal(exc: LedgerError) -> Refused:
    """A rule's refusal as the HTTP error naming the field: 409 for state conflicts, else 422."""
    return Refused(409 if exc.code in CONFLICTS else 422, exc.code, exc.message, _dotted(exc.field))


def _not_found(what: str, field: str, value: str) -> Refused:
    return Refused(404, "not_found", f"no {what} {value!r}", field)


# -- registry ----------------------------------------------------------------------------------------------


def _id_is_free(new_id: str, field: str, reads: LedgerReads) -> None:
    """Collectives, investors and projects share one id namespace (DESIGN §8): 409 on any clash, so an
    id in a token's scope, a URL or an export always means one thing."""
    holder = reads.holder_of_id(new_id)
    if holder is not None:
        raise Refused(409, "already_exists", f"{new_id!r} is already the id of a {holder}", field)


def handle_register_collective(command: RegisterCollective, reads: LedgerReads) -> Decision:
    _id_is_free(command.collective_id, "collective_id", reads)
    data = {"collective_id": command.collective_id, "name": command.name, "town": command.town,
            "uscc": command.uscc, "alliances": list(command.alliances)}
    return Decision([NewEvent("CollectiveRegistered", command.collective_id, data)],
                    {"collective_id": command.collective_id})


def handle_register_investor(command: RegisterInvestor, reads: LedgerReads) -> Decision:
    _id_is_free(command.investor_id, "investor_id", reads)
    data = {"investor_id": command.investor_id, "name": command.name, "investor_type": command.investor_type}
    return Decision([NewEvent("InvestorRegistered", command.investor_id, data)],
                    {"investor_id": command.investor_id})


def handle_register_project(command: RegisterProject, reads: LedgerReads) -> Decision:
    _id_is_free(command.project_id, "project_id", reads)
    data = {"project_id": command.project_id, "name": command.name, "kind": command.kind, "town": command.town,
            "operator": command.operator}
    return Decision([NewEvent("ProjectRegistered", command.project_id, data)], {"project_id": command.project_id})


def require_collective(collective_id: str, reads: LedgerReads) -> dict[str, Any]:
    """The registered collective ``collective_id``, or 404."""
    found = reads.collective(collective_id)
    if found is None:
        raise _not_found("collective", "collective_id", collective_id)
    return found


def require_project(project_id: str, reads: LedgerReads) -> dict[str, Any]:
    """The registered project ``project_id``, or 404."""
    found = reads.project(project_id)
    if found is None:
        raise _not_found("project", "project_id", project_id)
    return found


# -- the investment register -------------------------------------------------------------------------------


def registered_investor(project_id: str, investor_id: str, claimed_type: str | None, reads: LedgerReads) -> str:
    """The registered type of the investor of a movement in ``project_id`` (``"collective"``, ``"company"`` …):
    404 unknown project, 422 unknown investor or a type contradicting the registry. (Who may record the
    movement depends on it: the HTTP layer asks before it authorizes.)"""
    require_project(project_id, reads)
    registered = reads.investor_type(investor_id)
    if registered is None:
        raise Refused(422, "unknown_investor", f"{investor_id!r} is neither a registered collective "
                      "nor a registered investor", "investor_id")
    if claimed_type is not None and claimed_type != registered:
        raise Refused(422, "investor_type_mismatch", f"{investor_id!r} is registered as {registered!r}",
                      "investor_type")
    return registered


def _check_open(investor_type: str, investor_id: str, effective_on: dt.date, reads: LedgerReads) -> None:
    """A collective's movement posts an entry dated ``effective_on``: 422 when that month is closed."""
    if investor_type == "collective":
        period = period_of(effective_on)
        if period in reads.closed_periods(investor_id):
            raise Refused(422, "closed_period", f"period {period} is closed in the books of {investor_id}; "
                          "its automatic entry could not be dated there", "effective_on")


def _given(value: str | None, field: str) -> str:
    """A value the kind of investment needs (the request schema already insists on it)."""
    if value is None:
        raise Refused(422, "validation_error", f"this kind of investment needs {field}", field)
    return value


def handle_invest(command: Invest, reads: LedgerReads) -> Decision:
    """A land share or a cash investment. (A collective's also makes the fold owe its entry: Dr 141/{project},
    Cr 311 (land) or 102 (cash).)"""
    investor_type = registered_investor(command.project_id, command.investor_id, command.claimed_type, reads)
    land = command.kind == "land"
    effective_on = dt.date.fromisoformat(command.effective_on)
    data: dict[str, Any] = {"investment_id": command.investment_id, "project_id": command.project_id,
                            "investor_id": command.investor_id, "investor_type": investor_type,
                            "effective_on": command.effective_on}
    try:
        if land:
            area_mu, price_per_mu = _given(command.area_mu, "area_mu"), _given(command.price_per_mu, "price_per_mu")
            amount = land_valuation(area_mu, price_per_mu)
            data.update(area_mu=area_mu, price_per_mu=format_yuan(parse_yuan(price_per_mu)),
                        valuation=format_yuan(amount), parcel=command.parcel)
        else:
            amount = parse_yuan(_given(command.amount, "amount"))
            data["amount"] = format_yuan(amount)
        _check_open(investor_type, command.investor_id, effective_on, reads)
        # The project's capital stays within the wire bound on every day (DESIGN §3).
        check_project_capital([change for _, change in reads.capital_changes(command.project_id)], effective_on,
                              amount, "area_mu" if land else "amount")
    except LedgerError as exc:
        raise refusal(exc) from None
    if reads.movement_id_taken(command.investment_id):
        raise Refused(409, "already_exists", f"investment {command.investment_id!r} already exists", "investment_id")
    event = NewEvent("LandShareInvested" if land else "CashInvested", command.project_id, data)
    return Decision([event], {"investment_id": command.investment_id})


def handle_withdraw(command: Withdraw, reads: LedgerReads) -> Decision:
    """Capital taken out of a project; refused if the investor's capital would go below zero on any later day.
    (A collective's also makes the fold owe its entry: Dr 102, Cr 141/{project}.)"""
    investor_type = registered_investor(command.project_id, command.investor_id, None, reads)
    amount = parse_yuan(command.amount)
    effective_on = dt.date.fromisoformat(command.effective_on)
    mine = [change for who, change in reads.capital_changes(command.project_id) if who == command.investor_id]
    try:
        check_withdrawal(mine, effective_on, amount)
    except LedgerError as exc:
        raise refusal(exc) from None
    _check_open(investor_type, command.investor_id, effective_on, reads)
    if reads.movement_id_taken(command.withdrawal_id):
        raise Refused(409, "already_exists", f"withdrawal {command.withdrawal_id!r} already exists", "withdrawal_id")
    data = {"withdrawal_id": command.withdrawal_id, "project_id": command.project_id,
            "investor_id": command.investor_id, "amount": format_yuan(amount), "effective_on": command.effective_on,
            "reason": command.reason}
    return Decision([NewEvent("InvestmentWithdrawn", command.project_id, data)],
                    {"withdrawal_id": command.withdrawal_id})


# -- the books ---------------------------------------------------------------------------------------------


def _entry_event(command: PostEntry, closed: Collection[str], closed_years: Collection[int]) -> NewEvent:
    """The EntryPosted of a manual entry, after the rules of DESIGN §7 (and §11: not into a closed year's
    income and expense accounts)."""
    lines = [line_from_wire(raw) for raw in command.lines]
    try:
        check_entry(lines, dt.date.fromisoformat(command.date), closed)
        check_year_open(lines, dt.date.fromisoformat(command.date), closed_years)
    except LedgerError as exc:
        raise refusal(exc) from None
    data: dict[str, Any] = {"entry_id": command.entry_id, "collective_id": command.collective_id,
                               "date": command.date, "memo": command.memo,
                               "lines": [line_to_wire(line) for line in lines],
                               "origin": {"kind": "manual", "ref": None}}
    if command.idempotency_key:
        data["idempotency_key"] = command.idempotency_key
    if command.attachments is not None:
        data["attachments"] = command.attachments
    return NewEvent("EntryPosted", command.collective_id, data)


def handle_post_entry(command: PostEntry, reads: LedgerReads) -> Decision:
    """A balanced journal entry in one collective's books, outside its closed periods."""
    require_collective(command.collective_id, reads)
    event = _entry_event(command, reads.closed_periods(command.collective_id),
                         reads.closed_years(command.collective_id))
    return Decision([event], {"entry_id": command.entry_id})


def handle_post_batch(command: PostBatch, reads: LedgerReads) -> Decision:
    """Each entry of a batch posted or refused on its own: ``results[index]`` says which (201 and the
    entry_id, or the status and the error); every posted entry in one Decision."""
    results: list[dict[str, Any]] = []
    events: list[NewEvent] = []
    closed: dict[str, list[str]] = {}
    closed_years: dict[str, set[int]] = {}
    for index, item in enumerate(command.items):
        if isinstance(item, Refused):  # refused by the HTTP layer already (unparsable, or out of scope)
            results.append({"index": index, "status": item.status, "error": item.to_dict()["error"]})
            continue
        try:
            if item.collective_id not in closed:
                if reads.collective(item.collective_id) is None:
                    raise Refused(422, "unknown_collective", f"no collective {item.collective_id!r}", "collective_id")
                closed[item.collective_id] = reads.closed_periods(item.collective_id)
                closed_years[item.collective_id] = reads.closed_years(item.collective_id)
            event = _entry_event(item, closed[item.collective_id], closed_years[item.collective_id])
        except Refused as exc:
            results.append({"index": index, "status": exc.status, "error": exc.to_dict()["error"]})
            continue
        events.append(event)
        results.append({"index": index, "status": 201, "entry_id": item.entry_id})
    return Decision(events, {"results": results})


def handle_reverse_entry(command: ReverseEntry, reads: LedgerReads) -> Decision:
    """Reverse a posted entry with a mirror entry (entries are never edited or deleted), once."""
    require_collective(command.collective_id, reads)
    original = reads.posted_entry(command.entry_id)
    if original is None or original.collective_id != command.collective_id:
        raise _not_found("entry", "entry_id", command.entry_id)
    date = dt.date.fromisoformat(command.date)
    try:
        check_reversal(original_date=original.date, reversed_by=original.reversed_by,
                       is_reversal=original.reverses is not None, date=date,
                       closed_periods=reads.closed_periods(command.collective_id))
        if original.origin_kind == YEAR_END_CLOSE:
            # A close is undone where it was made: a reversal in a later year would move the closed year's
            # income into that year's accounts.
            if date != original.date:
                raise InvalidDate(f"a year-end close entry is reversed on its own date, {original.date}", "date")
        else:
            check_year_open(original.lines, date, reads.closed_years(command.collective_id))
    except LedgerError as exc:
        raise refusal(exc) from None
    reversal_id = reversal_entry_id(command.entry_id)
    data = {"entry_id": reversal_id, "reverses": command.entry_id, "collective_id": command.collective_id,
            "date": command.date, "reason": command.reason}
    return Decision([NewEvent("EntryReversed", command.collective_id, data)], {"entry_id": reversal_id})


def handle_close_period(command: ClosePeriod, reads: LedgerReads) -> Decision:
    """Close a month: no entry may be dated inside it afterwards. (The automatic entries owed to the books
    must be posted before the decision is: the caller does that, inside the writer lock.)"""
    require_collective(command.collective_id, reads)
    try:
        check_close_period(command.period, reads.closed_periods(command.collective_id))
    except LedgerError as exc:
        raise refusal(exc) from None
    data = {"collective_id": command.collective_id, "period": command.period}
    return Decision([NewEvent("PeriodClosed", command.collective_id, data)], dict(data))


def handle_year_end_close(command: YearEndClose, reads: LedgerReads) -> Decision:
    """The year-end close (结转) of a year (DESIGN §11), dated Y-12-31, origin {year_end_close, "Y"}: derived
    EntryPosted events whose ids come from the collective, the year and the round (a close reversed and made
    again is the next round), so a retry can never post a close twice. Refused for a year to come, a year
    whose December is closed, a year already closed, a year with nothing to close."""
    require_collective(command.collective_id, reads)
    year = command.year
    if year > command.today.year:
        raise Refused(422, "invalid_year", f"{year} has not begun; a year is closed at its end", "year")
    if f"{year:04d}-12" in reads.closed_periods(command.collective_id):
        raise Refused(409, "closed_period", f"period {year:04d}-12 is closed: the close of {year}, dated "
                      f"{year:04d}-12-31, can no longer be posted", "year")
    earlier = reads.year_end_close(command.collective_id, year)
    if any(entry["reversed_by"] is None for entry in earlier):
        raise Refused(409, "year_already_closed", f"the year {year} is closed already (reverse its close entries "
                      "to close it again)", "year")
    try:
        entries, net_income = year_end_close_entries(reads.result_movements(command.collective_id, year), year)
    except LedgerError as exc:
        raise refusal(exc) from None
    cause = year_end_close_cause(command.collective_id, year, len(earlier))
    events = []
    for entry in entries:
        ids = automatic_entry_ids(cause, entry.qualifier)
        data = {"entry_id": ids.entry_id, "collective_id": command.collective_id, "date": f"{year:04d}-12-31",
                "memo": entry.memo, "lines": [line_to_wire(line) for line in entry.lines],
                "origin": {"kind": YEAR_END_CLOSE, "ref": str(year)}}
        events.append(NewEvent("EntryPosted", command.collective_id, data, event_id=ids.event_id))
    return Decision(events, {"collective_id": command.collective_id, "year": year,
                             "entry_ids": [event.data["entry_id"] for event in events],
                             "net_income": format_yuan(net_income)})


def find_year_end_close(collective_id: str, year: int, reads: LedgerReads) -> dict[str, Any]:
    """The year-end close of ``year``: whether it stands, the net income it carried into 322/undistributed and
    every close entry ever posted for the year (reversed ones marked); 404 ``year`` when it was never closed."""
    require_collective(collective_id, reads)
    entries = reads.year_end_close(collective_id, year)
    if not entries:
        raise _not_found("year-end close of", "year", str(year))
    standing = [entry for entry in entries if entry["reversed_by"] is None]
    net_income = 0
    for entry in standing:
        for raw in entry["lines"]:
            line = line_from_wire(raw)
            if line.account == UNDISTRIBUTED:
                net_income += line.credit - line.debit
    return {"collective_id": collective_id, "year": year, "closed": bool(standing),
            "net_income": format_yuan(net_income), "entries": entries}


#: The longest range of months a 科目余额表 covers (the opening balance carries everything before it).
MAX_BALANCE_MONTHS = 120


def month_range(first: str, last: str) -> tuple[str, str]:
    """The months ``first``–``last`` of a 科目余额表 (``YYYY-MM``, already of that form): 422 ``to`` when the
    range runs backwards or is longer than ``MAX_BALANCE_MONTHS``."""
    span = (int(last[:4]) * 12 + int(last[5:7])) - (int(first[:4]) * 12 + int(first[5:7])) + 1
    if span < 1:
        raise Refused(422, "invalid_range", f"to ({last}) is before from ({first})", "to")
    if span > MAX_BALANCE_MONTHS:
        raise Refused(422, "invalid_range", f"a 科目余额表 covers at most {MAX_BALANCE_MONTHS} months "
                      f"({span} asked); the opening balance carries what came before", "to")
    return first, last


def find_entry(collective_id: str, entry_id: str, reads: LedgerReads) -> dict[str, Any]:
    """A posted entry of a collective's books (404 for an unknown collective, or an entry not in its books)."""
    require_collective(collective_id, reads)
    found = reads.entry(entry_id)
    if found is None or found["collective_id"] != collective_id:
        raise _not_found("entry", "entry_id", entry_id)
    return found
