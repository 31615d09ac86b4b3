# mypy: disable-error-code="untyped-decorator"
# (flask-smorest ships no type hints: its route/arguments/response decorators are untyped.)
"""The ledger HTTP API: the registry, the investment register, the books and the reports.

HTTP only (services.runtime.handling): each view parses (``schemas``, unknown fields refused),
authorizes (DESIGN §8), and writes through ``idempotent``: inside the service's writer lock it
calls a handler of ``handlers.py`` with the reads and publishes its Decision; then it renders from
``reads.py``. A refused request publishes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import current_app, request
from marshmallow import ValidationError

from services.contracts.money import format_yuan
from services.contracts.validation import FastLoader
from services.ledger import handlers
from services.ledger.chart import ACCOUNTS
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
from services.ledger.domain import CHINA_STANDARD_TIME
from services.ledger.reads import LedgerReads
from services.ledger.reports import DISTRIBUTION_ITEMS, MILLION_TARGET_FEN, WEAK_THRESHOLD_FEN, IncomeSubtotal, Section
from services.ledger.schemas import (
    AccountBalancesBody,
    AccountList,
    AsOfQuery,
    BalanceSheetBody,
    BatchEntryRequest,
    BatchRequest,
    BatchResponse,
    CollectiveBody,
    CollectiveList,
    CollectiveRequest,
    EntryBody,
    EntryList,
    EntryRangeQuery,
    EntryRequest,
    IncomeStatementBody,
    InvestmentBody,
    InvestmentRequest,
    InvestorBody,
    InvestorList,
    InvestorRequest,
    MonthRangeQuery,
    PeriodBody,
    PeriodList,
    PeriodRequest,
    ProjectBody,
    ProjectList,
    ProjectRequest,
    RegisterBody,
    RegisterQuery,
    ReverseRequest,
    TrialBalanceBody,
    VillageIncomeBody,
    VillageIncomeQuery,
    WithdrawalBody,
    WithdrawalRequest,
    YearEndCloseBody,
    YearEndCloseRequest,
    YearQuery,
)
from services.runtime.auth import Forbidden, Principal
from services.runtime.handling import Decision, Refused
from services.runtime.http import (
    ApiError,
    Publisher,
    decided,
    first_field,
    fresh_uuid,
    idempotency_key,
    idempotent,
    principal,
    publish_decision,
    service,
)
from services.runtime.openapi import Blueprint

WRITERS = ("admin", "accountant")
#: Who reads a collective's books (entries, periods, statements): admin passes every check.
BOOK_READERS = ("accountant", "auditor")

IDEMPOTENCY_PARAMETER = {
    "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "maxLength": 200},
    "description": "Same key and body: the first result again. Same key, another body: 409.",
}
WRITE_DOC: dict[str, Any] = {"parameters": [IDEMPOTENCY_PARAMETER]}

Command = TypeVar("Command")


# -- helpers -------------------------------------------------------------------------------------------------


def _reads() -> LedgerReads:
    return LedgerReads(service().store)


def _today() -> dt.date:
    return dt.datetime.now(CHINA_STANDARD_TIME).date()


def _money(fen: int) -> str:
    return format_yuan(fen)


def _new_slug(prefix: str) -> str:
    """A fresh id: derived from the bound Idempotency-Key when there is one (a retry gets the same), else random."""
    return f"{prefix}-{fresh_uuid(prefix).hex[:24]}"


def _request_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an Idempotency-Key is bound to: the route and the parsed body."""
    return {"path": request.path, "body": dict(body)}


def _decide(handle: Callable[[Command, LedgerReads], Decision],
            command: Command) -> Callable[[Publisher], dict[str, Any]]:
    """The write of ``idempotent``: the handler decides on the projection as it is inside the writer lock."""
    return decided(handle, command, _reads)


def _authorize(books: bool, admin_only: frozenset[str] = frozenset()) -> Callable[[], None]:
    """Before parsing any body: 401 without a valid token; writes only for admin and accountants
    (the views in ``admin_only``: admin alone); a collective's books only for its own accountants
    (plus auditor and admin for reading; no other role reads them). Scopes named in a body are
    checked by the view."""

    def check() -> None:
        who = principal()
        collective_id = (request.view_args or {}).get("collective_id")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if who.role not in WRITERS:
                raise Forbidden(f"role {who.role!r} may not write to the ledger")
            if who.role != "admin" and (request.endpoint or "").rpartition(".")[2] in admin_only:
                raise Forbidden(f"role {who.role!r} may not do this; only admin registers")
            if books and collective_id is not None:
                who.require(("accountant",), collective=collective_id)
        elif books and collective_id is not None:
            # A collective's books are read by its own accountants, the auditor and the admin (DESIGN §8);
            # an operator or a board whose scope happens to name the same id reads nothing here.
            who.require(BOOK_READERS, collective=collective_id)

    return check


def _authorize_movement(project_id: str, investor_id: str, claimed_type: str | None) -> None:
    """An investment or a withdrawal: admin, or the investing collective's own accountant. (Refusals about
    the project or the investor come first: 404 unknown project, 422 unknown investor.)"""
    registered = handlers.registered_investor(project_id, investor_id, claimed_type, _reads())
    who = principal()
    if who.role != "admin" and registered != "collective":
        raise Forbidden(f"only admin records investments of {registered} investors")
    who.require(("accountant",), collective=investor_id)


# -- registry and investment register ---------------------------------------------------------------------

registry_blp = Blueprint("registry", __name__, url_prefix="/v1",
                     description="Collectives, other investors, projects, investments and who holds what.")
registry_blp.before_request(_authorize(books=False, admin_only=frozenset(
    {"register_collective", "register_investor", "register_project"})))


@registry_blp.route("/collectives", methods=["POST"])
@registry_blp.arguments(CollectiveRequest)
@registry_blp.response(201, CollectiveBody)
@registry_blp.doc(**WRITE_DOC)
def register_collective(body: dict[str, Any]) -> Any:
    """Register a village collective (admin)."""
    command = RegisterCollective(body["collective_id"], body["name"], body["town"], body["uscc"],
                                 tuple(body["alliances"]))
    return idempotent(_request_body(body), _decide(handlers.handle_register_collective, command),
                      lambda r: _reads().collective(r["collective_id"]))


@registry_blp.route("/collectives", methods=["GET"])
@registry_blp.response(200, CollectiveList)
def list_collectives() -> Any:
    """Every registered collective (any authenticated caller)."""
    return {"items": _reads().collectives()}


@registry_blp.route("/collectives/<collective_id>", methods=["GET"])
@registry_blp.response(200, CollectiveBody)
def get_collective(collective_id: str) -> Any:
    return handlers.require_collective(collective_id, _reads())


@registry_blp.route("/investors", methods=["POST"])
@registry_blp.arguments(InvestorRequest)
@registry_blp.response(201, InvestorBody)
@registry_blp.doc(**WRITE_DOC)
def register_investor(body: dict[str, Any]) -> Any:
    """Register an investor that is not a collective: a company or a government (admin)."""
    command = RegisterInvestor(body["investor_id"], body["name"], body["investor_type"])
    return idempotent(_request_body(body), _decide(handlers.handle_register_investor, command),
                      lambda r: _reads().investor(r["investor_id"]))


@registry_blp.route("/investors", methods=["GET"])
@registry_blp.response(200, InvestorList)
def list_investors() -> Any:
    return {"items": _reads().investors()}


@registry_blp.route("/projects", methods=["POST"])
@registry_blp.arguments(ProjectRequest)
@registry_blp.response(201, ProjectBody)
@registry_blp.doc(**WRITE_DOC)
def register_project(body: dict[str, Any]) -> Any:
    """Register a project villages invest in (admin)."""
    command = RegisterProject(body["project_id"], body["name"], body["kind"], body["town"], body["operator"])
    return idempotent(_request_body(body), _decide(handlers.handle_register_project, command),
                      lambda r: _reads().project(r["project_id"]))


@registry_blp.route("/projects", methods=["GET"])
@registry_blp.response(200, ProjectList)
def list_projects() -> Any:
    return {"items": _reads().projects()}


@registry_blp.route("/projects/<project_id>", methods=["GET"])
@registry_blp.response(200, ProjectBody)
def get_project(project_id: str) -> Any:
    return handlers.require_project(project_id, _reads())


def _render_movement(found: dict[str, Any] | None, movement_id: str) -> dict[str, Any]:
    """An investment or a withdrawal, with the id of the entry it made the fold owe (None: it owed none),
    once that entry is in the books (waited for, bounded), so a GET right after sees it."""
    if found is None:  # pragma: no cover - the write waited until the projection had it
        raise ApiError(500, "internal_error", "the recorded movement is missing from the projection")
    reads = _reads()
    entry = reads.automatic_entry_of_movement(movement_id)
    if entry is not None:
        reads.wait_for_event(entry.event_id, service().settings.request_timeout_s)
    return {**found, "entry_id": entry.entry_id if entry is not None else None}


@registry_blp.route("/projects/<project_id>/investments", methods=["POST"])
@registry_blp.arguments(InvestmentRequest)
@registry_blp.response(201, InvestmentBody)
@registry_blp.doc(**WRITE_DOC)
def invest(body: dict[str, Any], project_id: str) -> Any:
    """Record a land share or a cash investment (admin, or the investing collective's accountant).

    A collective's investment also posts its entry: Dr 141/{project}, Cr 311 (land) or 102 (cash).
    """
    _authorize_movement(project_id, body["investor_id"], body.get("investor_type"))
    command = Invest(project_id=project_id, investment_id=body["investment_id"] or _new_slug("inv"),
                     investor_id=body["investor_id"], claimed_type=body.get("investor_type"), kind=body["kind"],
                     effective_on=body["effective_on"], area_mu=body.get("area_mu"),
                     price_per_mu=body.get("price_per_mu"), parcel=body.get("parcel"), amount=body.get("amount"))
    return idempotent(_request_body(body), _decide(handlers.handle_invest, command),
                      lambda r: _render_movement(_reads().investment(r["investment_id"]), r["investment_id"]))


@registry_blp.route("/projects/<project_id>/withdrawals", methods=["POST"])
@registry_blp.arguments(WithdrawalRequest)
@registry_blp.response(201, WithdrawalBody)
@registry_blp.doc(**WRITE_DOC)
def withdraw(body: dict[str, Any], project_id: str) -> Any:
    """Withdraw capital from a project; refused if the capital would go below zero on any later day.

    A collective's withdrawal also posts its entry: Dr 102, Cr 141/{project}.
    """
    _authorize_movement(project_id, body["investor_id"], None)
    command = Withdraw(project_id=project_id, withdrawal_id=body["withdrawal_id"] or _new_slug("wd"),
                       investor_id=body["investor_id"], amount=body["amount"], effective_on=body["effective_on"],
                       reason=body["reason"])
    return idempotent(_request_body(body), _decide(handlers.handle_withdraw, command),
                      lambda r: _render_movement(_reads().withdrawal(r["withdrawal_id"]), r["withdrawal_id"]))


@registry_blp.route("/projects/<project_id>/register", methods=["GET"])
@registry_blp.arguments(RegisterQuery, location="query")
@registry_blp.response(200, RegisterBody)
def register(query: dict[str, Any], project_id: str) -> Any:
    """Who holds what capital in the project at the end of ``as_of``."""
    reads = _reads()
    handlers.require_project(project_id, reads)
    as_of = dt.date.fromisoformat(query["as_of"]) if query["as_of"] else _today()
    held = reads.register(project_id, as_of)
    return {"project_id": project_id, "as_of": as_of.isoformat(),
            "items": [{"investor_id": h.investor_id, "investor_type": h.investor_type, "capital": _money(h.capital)}
                      for h in held.holdings],
            "total_capital": _money(held.total_capital)}


# -- the books -------------------------------------------------------------------------------------------------

books_blp = Blueprint("books", __name__, url_prefix="/v1",
                  description="Each collective's double-entry books on the statutory chart (财会〔2023〕14号).")
books_blp.before_request(_authorize(books=True))

#: One entry of a batch, read a thousand times per request: compiled once (marshmallow decides when unsure).
_BATCH_ENTRY = FastLoader(BatchEntryRequest)


def _render_entry(result: dict[str, Any]) -> dict[str, Any]:
    found = _reads().entry(result["entry_id"])
    if found is None:  # pragma: no cover - the write waited until the projection had it
        raise ApiError(500, "internal_error", "the posted entry is missing from the projection")
    return found


@books_blp.route("/collectives/<collective_id>/entries", methods=["POST"])
@books_blp.arguments(EntryRequest)
@books_blp.response(201, EntryBody)
@books_blp.doc(**WRITE_DOC)
def post_entry(body: dict[str, Any], collective_id: str) -> Any:
    """Post a balanced journal entry (the collective's accountant, or admin)."""
    command = PostEntry(collective_id, str(fresh_uuid("entry")), body["date"], body["memo"] or "",
                        tuple(body["lines"]), idempotency_key(), body.get("attachments"))
    return idempotent(_request_body(body), _decide(handlers.handle_post_entry, command), _render_entry)


@books_blp.route("/collectives/<collective_id>/entries", methods=["GET"])
@books_blp.arguments(EntryRangeQuery, location="query")
@books_blp.response(200, EntryList)
def list_entries(query: dict[str, Any], collective_id: str) -> Any:
    """Entries dated between ``from`` and ``to`` (inclusive), in date then posting order; or, with
    ``voucher_no``, the one entry of that voucher number (if it is dated within the range)."""
    reads = _reads()
    handlers.require_collective(collective_id, reads)
    if query["voucher_no"] is not None:
        found = reads.entry_by_voucher(collective_id, query["voucher_no"])
        inside = found is not None and (query["date_from"] or "") <= found["date"] <= (query["date_to"] or "9999")
        return {"items": [found] if inside else []}
    return {"items": reads.entries(collective_id, query["date_from"], query["date_to"])}


@books_blp.route("/collectives/<collective_id>/entries/<entry_id>", methods=["GET"])
@books_blp.response(200, EntryBody)
def get_entry(collective_id: str, entry_id: str) -> Any:
    return handlers.find_entry(collective_id, entry_id, _reads())


@books_blp.route("/collectives/<collective_id>/entries/<entry_id>/reverse", methods=["POST"])
@books_blp.arguments(ReverseRequest)
@books_blp.response(201, EntryBody)
@books_blp.doc(**WRITE_DOC)
def reverse_entry(body: dict[str, Any], collective_id: str, entry_id: str) -> Any:
    """Reverse a posted entry with a mirror entry (entries are never edited or deleted)."""
    command = ReverseEntry(collective_id, entry_id, body["date"], body["reason"])
    return idempotent(_request_body(body), _decide(handlers.handle_reverse_entry, command), _render_entry)


def _forbidden_item(exc: Forbidden) -> Refused:
    return Refused(403, "forbidden", str(exc), "collective_id")


def _batch_item(index: int, raw: Any, who: Principal, key: str | None) -> PostEntry | Refused:
    """One entry of a batch, parsed and authorized on its own: its command, or why it is refused."""
    try:
        item = _BATCH_ENTRY.load(raw)
    except ValidationError as exc:
        field, message = first_field(exc.messages)
        return Refused(422, "validation_error", message, field)
    try:
        who.require(("accountant",), collective=item["collective_id"])
    except Forbidden as exc:
        return _forbidden_item(exc)
    return PostEntry(item["collective_id"], str(fresh_uuid(f"batch-{index}")), item["date"], item.get("memo") or "",
                     tuple(item["lines"]), key, item.get("attachments"))


def _render_batch(result: dict[str, Any], who: Principal) -> Any:
    posted = _reads().entries_by_id([r["entry_id"] for r in result["results"] if "entry_id" in r])
    out = []
    for r in result["results"]:
        if "entry_id" in r:
            entry = posted[r["entry_id"]]
            try:  # a repeat is answered only with what the caller may still see
                who.require(("accountant",), collective=entry["collective_id"])
            except Forbidden as exc:
                out.append({"index": r["index"], "status": 403, "error": _forbidden_item(exc).to_dict()["error"]})
                continue
            out.append({"index": r["index"], "status": r["status"], "entry": entry})
        else:
            out.append(r)
    # The entries are already in their wire shape (EntryBody, every field declared): dumping a
    # thousand of them through the response schema again cost a tenth of a batch's time.
    return current_app.json.response({"results": out})


@books_blp.route("/entries/batch", methods=["POST"])
@books_blp.arguments(BatchRequest)
@books_blp.response(200, BatchResponse)
@books_blp.doc(**WRITE_DOC)
def post_batch(body: dict[str, Any]) -> Any:
    """Post up to 1000 entries at once: each valid one is posted (status 201), each invalid one is
    reported with its error; all valid entries go to Kafka in one producer flush."""
    who = principal()
    key = idempotency_key()
    command = PostBatch(tuple(_batch_item(index, raw, who, key) for index, raw in enumerate(body["entries"])))
    return idempotent(_request_body(body), _decide(handlers.handle_post_batch, command),
                      lambda r: _render_batch(r, who))


@books_blp.route("/collectives/<collective_id>/periods", methods=["POST"])
@books_blp.arguments(PeriodRequest)
@books_blp.response(201, PeriodBody)
@books_blp.doc(**WRITE_DOC)
def close_period(body: dict[str, Any], collective_id: str) -> Any:
    """Close a month: no entry may be dated inside it afterwards."""
    command = ClosePeriod(collective_id, body["period"])

    def write(publish: Publisher) -> dict[str, Any]:
        decision = handlers.handle_close_period(command, _reads())
        # The automatic entries owed to these books (a dividend approved or paid, an investment …)
        # are posted first, at their own dates: the writer lock keeps the reactor out meanwhile, so
        # none of them can land inside the month after it is closed (DESIGN §7).
        while service().publish_owed(collective_id):
            pass
        return publish_decision(publish, decision)

    return idempotent(_request_body(body), write, lambda r: {"collective_id": r["collective_id"],
                                                              "period": r["period"]})


@books_blp.route("/collectives/<collective_id>/year-end-close", methods=["POST"])
@books_blp.arguments(YearEndCloseRequest)
@books_blp.response(201, YearEndCloseBody)
@books_blp.doc(**WRITE_DOC)
def year_end_close(body: dict[str, Any], collective_id: str) -> Any:
    """Close a year (结转, DESIGN §11): entries dated 31 December carry each income and expense account's
    balance of the year into 321 本年收益, then the net income into 322/undistributed."""
    command = YearEndClose(collective_id, body["year"], _today())

    def write(publish: Publisher) -> dict[str, Any]:
        # The automatic entries owed to these books are posted first, at their own dates (a dividend of the
        # year approved but not yet posted is income of the year the close must carry).
        while service().publish_owed(collective_id):
            pass
        return publish_decision(publish, handlers.handle_year_end_close(command, _reads()))

    return idempotent(_request_body(body), write,
                      lambda r: handlers.find_year_end_close(collective_id, r["year"], _reads()))


@books_blp.route("/collectives/<collective_id>/year-end-close/<int:year>", methods=["GET"])
@books_blp.response(200, YearEndCloseBody)
def get_year_end_close(collective_id: str, year: int) -> Any:
    """The year-end close of ``year``: whether it stands, the net income it carried, its entries."""
    return handlers.find_year_end_close(collective_id, year, _reads())


@books_blp.route("/collectives/<collective_id>/periods", methods=["GET"])
@books_blp.response(200, PeriodList)
def list_periods(collective_id: str) -> Any:
    reads = _reads()
    handlers.require_collective(collective_id, reads)
    return {"items": [{"collective_id": collective_id, "period": period}
                      for period in reads.closed_periods(collective_id)]}


def _as_of(query: Mapping[str, Any]) -> dt.date:
    return dt.date.fromisoformat(query["as_of"]) if query["as_of"] else _today()


def _section(section: Section) -> dict[str, Any]:
    return {"title": section.title, "total": _money(section.total),
            "rows": [{"code": row.code, "name": row.name, "amount": _money(row.amount)} for row in section.rows]}


@books_blp.route("/collectives/<collective_id>/trial-balance", methods=["GET"])
@books_blp.arguments(AsOfQuery, location="query")
@books_blp.response(200, TrialBalanceBody)
def get_trial_balance(query: dict[str, Any], collective_id: str) -> Any:
    """科目余额表: every account used, with its debit and credit totals and balance at ``as_of``."""
    reads = _reads()
    handlers.require_collective(collective_id, reads)
    as_of = _as_of(query)
    tb = reads.trial_balance(collective_id, as_of)
    return {"collective_id": collective_id, "as_of": as_of.isoformat(),
            "accounts": [{"code": row.code, "name": row.name, "debit": _money(row.debit),
                          "credit": _money(row.credit), "balance": _money(row.balance)} for row in tb.rows],
            "totals": {"debit": _money(tb.total_debit), "credit": _money(tb.total_credit)}}


@books_blp.route("/collectives/<collective_id>/account-balances", methods=["GET"])
@books_blp.arguments(MonthRangeQuery, location="query")
@books_blp.response(200, AccountBalancesBody)
def get_account_balances(query: dict[str, Any], collective_id: str) -> Any:
    """科目余额表 of the months ``from``–``to``: per account and sub-account, the opening balance, the period's
    debits and credits and the closing balance (balances on the account's normal side)."""
    reads = _reads()
    handlers.require_collective(collective_id, reads)
    first, last = handlers.month_range(query["first"], query["last"])
    table = reads.account_balances(collective_id, first, last)
    return {"collective_id": collective_id, "first": first, "last": last,
            "accounts": [{"code": row.code, "name": row.name, "normal_side": row.normal_side,
                          "opening_balance": _money(row.opening), "debit": _money(row.debit),
                          "credit": _money(row.credit), "closing_balance": _money(row.closing)}
                         for row in table.rows],
            "totals": {"opening_debit": _money(table.opening_debit), "opening_credit": _money(table.opening_credit),
                       "debit": _money(table.total_debit), "credit": _money(table.total_credit),
                       "closing_debit": _money(table.closing_debit), "closing_credit": _money(table.closing_credit)}}


@books_blp.route("/collectives/<collective_id>/balance-sheet", methods=["GET"])
@books_blp.arguments(YearQuery, location="query")
@books_blp.response(200, BalanceSheetBody)
def get_balance_sheet(query: dict[str, Any], collective_id: str) -> Any:
    """资产负债表 at 31 December of ``year``."""
    reads = _reads()
    handlers.require_collective(collective_id, reads)
    year = query["year"]
    sheet = reads.balance_sheet(collective_id, year)
    return {"collective_id": collective_id, "year": year, "as_of": sheet.as_of.isoformat(),
            "assets": _section(sheet.assets), "liabilities": _section(sheet.liabilities),
            "equity": _section(sheet.equity), "total_assets": _money(sheet.total_assets),
            "total_liabilities_and_equity": _money(sheet.total_liabilities_and_equity)}


@books_blp.route("/collectives/<collective_id>/income-statement", methods=["GET"])
@books_blp.arguments(YearQuery, location="query")
@books_blp.response(200, IncomeStatementBody)
def get_income_statement(query: dict[str, Any], collective_id: str) -> Any:
    """收益及收益分配表 for ``year``: the year's income and expenses (the year-end close left out) and 收益分配."""
    reads = _reads()
    handlers.require_collective(collective_id, reads)
    year = query["year"]
    statement = reads.income_statement(collective_id, year)
    shared = statement.distribution
    items = [] if shared is None else [{"item": key, "name": name, "amount": _money(getattr(shared, key))}
                                       for key, name in DISTRIBUTION_ITEMS]
    return {"collective_id": collective_id, "year": year, "income": _section(statement.income),
            "expenses": _section(statement.expenses), "net_income": _money(statement.net_income),
            "distribution": items}


# -- reports across collectives ------------------------------------------------------------------------------

reports_blp = Blueprint("reports", __name__, url_prefix="/v1",
                    description="The village income report (村村百万) and the chart of accounts.")
reports_blp.before_request(_authorize(books=False))


def _subtotal(subtotal: IncomeSubtotal) -> dict[str, Any]:
    return {"group": subtotal.group, "village_count": subtotal.village_count, "income": _money(subtotal.income),
            "below_million_count": subtotal.below_million_count, "weak_count": subtotal.weak_count}


@reports_blp.route("/reports/village-income", methods=["GET"])
@reports_blp.arguments(VillageIncomeQuery, location="query")
@reports_blp.response(200, VillageIncomeBody)
def village_income(query: dict[str, Any]) -> Any:
    """Collective income (net credit of 501–504) per village for ``year``; who is under 1,000,000
    yuan (村村百万) and under 200,000 yuan (weak), with subtotals by town and by alliance."""
    year = query["year"]
    report = _reads().village_income(year, query["town"], query["alliance"])
    return {
        "year": year,
        "thresholds": {"million": _money(MILLION_TARGET_FEN), "weak": _money(WEAK_THRESHOLD_FEN)},
        "items": [{"collective_id": v.collective_id, "name": v.name, "town": v.town,
                   "alliances": list(v.alliances), "income": _money(v.income),
                   "below_million": v.below_million, "weak": v.weak} for v in report.villages],
        "by_town": [_subtotal(s) for s in report.by_town],
        "by_alliance": [_subtotal(s) for s in report.by_alliance],
        "total_income": _money(report.total_income),
        "below_million_count": report.below_million_count,
        "weak_count": report.weak_count,
    }


@reports_blp.route("/accounts", methods=["GET"])
@reports_blp.response(200, AccountList)
def accounts() -> Any:
    """The statutory chart of accounts (财会〔2023〕14号); sub-accounts are written CODE/segment."""
    return {"items": [{"code": a.code, "name": a.name, "account_class": a.account_class,
                       "normal_side": a.normal_side} for a in ACCOUNTS]}


def blueprints() -> list[Blueprint]:
    """The ledger's blueprints."""
    return [registry_blp, books_blp, reports_blp]


__all__ = ["blueprints", "books_blp", "registry_blp", "reports_blp"]
