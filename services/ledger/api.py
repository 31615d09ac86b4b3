# mypy: disable-error-code="untyped-decorator"
# (flask-smorest ships no type hints: its route/arguments/response decorators are untyped.)
"""The ledger HTTP API: the registry, the investment register, the books and the reports.

Thin handlers: parse (marshmallow, unknown fields refused) -> authorize (DESIGN §8) ->
check against the projection with the pure rules -> publish -> render from the projection.
Every write runs inside the service's writer lock (``idempotent``); a refused request
publishes nothing. Blueprints are built per app (nothing is bound at import time).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import ValidationError

from services.contracts.envelope import derived_event_id, new_uuid
from services.contracts.money import format_yuan, parse_yuan
from services.contracts.validation import FastLoader
from services.ledger import projection as views
from services.ledger.capital import check_project_capital, check_withdrawal, holdings, land_valuation
from services.ledger.chart import ACCOUNTS, LedgerError
from services.ledger.domain import (
    CHINA_STANDARD_TIME,
    Line,
    check_close_period,
    check_entry,
    check_reversal,
    derived_entry_id,
    period_of,
)
from services.ledger.reports import (
    MILLION_TARGET_FEN,
    WEAK_THRESHOLD_FEN,
    IncomeSubtotal,
    Section,
    balance_sheet,
    income_statement,
    trial_balance,
    village_income_report,
)
from services.ledger.schemas import (
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
    YearQuery,
)
from services.runtime.auth import Forbidden
from services.runtime.http import (
    ApiError,
    Publisher,
    first_field,
    fresh_uuid,
    idempotency_key,
    idempotent,
    principal,
    service,
)
from services.runtime.service import NewEvent
from services.runtime.store import ProjectionStore

WRITERS = ("admin", "accountant")
#: Who reads a collective's books (entries, periods, statements): admin passes every check.
BOOK_READERS = ("accountant", "auditor")
#: Refusals that are conflicts with the books' state rather than bad input.
CONFLICTS = frozenset({"already_reversed", "reversal_of_reversal", "period_already_closed"})

IDEMPOTENCY_PARAMETER = {
    "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "maxLength": 200},
    "description": "Same key and body: the first result again. Same key, another body: 409.",
}
WRITE_DOC: dict[str, Any] = {"parameters": [IDEMPOTENCY_PARAMETER]}


# -- helpers -------------------------------------------------------------------------------------------------


def _store() -> ProjectionStore:
    return service().store


def _today() -> dt.date:
    return dt.datetime.now(CHINA_STANDARD_TIME).date()


def _dotted(field: str) -> str:
    """``lines[1].account`` (the domain's spelling) -> ``lines.1.account`` (the API's, like webargs)."""
    return re.sub(r"\[(\d+)\]", r".\1", field)


def refusal(exc: LedgerError) -> ApiError:
    """A domain refusal as the HTTP error naming the field: 409 for state conflicts, else 422."""
    return ApiError(409 if exc.code in CONFLICTS else 422, exc.code, exc.message, _dotted(exc.field))


def _not_found(what: str, field: str, value: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} {value!r}", field)


def _already_exists(what: str, field: str, value: str) -> ApiError:
    return ApiError(409, "already_exists", f"{what} {value!r} already exists", field)


def _id_is_free(new_id: str, field: str) -> None:
    """Collectives, investors and projects share one id namespace (DESIGN §8): 409 on any clash, so an
    id in a token's scope, a URL or an export always means one thing."""
    store = _store()
    for what, taken in (("collective", views.collective(store, new_id)), ("investor", views.investor(store, new_id)),
                        ("project", views.project(store, new_id))):
        if taken is not None:
            raise ApiError(409, "already_exists", f"{new_id!r} is already the id of a {what}", field)


def _require_collective(collective_id: str) -> None:
    if views.collective(_store(), collective_id) is None:
        raise _not_found("collective", "collective_id", collective_id)


def _new_slug(prefix: str) -> str:
    """A fresh id: derived from the bound Idempotency-Key when there is one (a retry gets the same), else random."""
    return f"{prefix}-{fresh_uuid(prefix).hex[:24]}"


def _new_entry_id(qualifier: str) -> str:
    return str(fresh_uuid(qualifier))


def _request_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an Idempotency-Key is bound to: the route and the parsed body."""
    return {"path": request.path, "body": dict(body)}


def _await_derived(event_id: str) -> None:
    """Wait (bounded) until the reactor has posted a derived entry, so a GET right after sees it."""
    svc = service()
    store = svc.store
    with store.applied:
        store.applied.wait_for(lambda: store.has_event(event_id), timeout=svc.settings.request_timeout_s)


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


def _money(fen: int) -> str:
    return format_yuan(fen)


# -- registry and investment register ---------------------------------------------------------------------


def registry_blueprint() -> Blueprint:
    """Collectives, investors, projects, investments, withdrawals and the register of holdings."""
    blp = Blueprint("registry", __name__, url_prefix="/v1",
                    description="Collectives, other investors, projects, investments and who holds what.")
    blp.before_request(_authorize(books=False, admin_only=frozenset(
        {"register_collective", "register_investor", "register_project"})))

    @blp.route("/collectives", methods=["POST"])
    @blp.arguments(CollectiveRequest)
    @blp.response(201, CollectiveBody)
    @blp.doc(**WRITE_DOC)
    def register_collective(body: dict[str, Any]) -> Any:
        """Register a village collective (admin)."""
        collective_id = body["collective_id"]

        def write(publish: Publisher) -> dict[str, Any]:
            _id_is_free(collective_id, "collective_id")
            data = {"collective_id": collective_id, "name": body["name"], "town": body["town"],
                    "uscc": body["uscc"], "alliances": list(body["alliances"])}
            return publish([NewEvent("CollectiveRegistered", collective_id, data)], {"collective_id": collective_id})

        return idempotent(_request_body(body), write, lambda r: views.collective(_store(), r["collective_id"]))

    @blp.route("/collectives", methods=["GET"])
    @blp.response(200, CollectiveList)
    def list_collectives() -> Any:
        """Every registered collective (any authenticated caller)."""
        return {"items": views.collectives(_store())}

    @blp.route("/collectives/<collective_id>", methods=["GET"])
    @blp.response(200, CollectiveBody)
    def get_collective(collective_id: str) -> Any:
        found = views.collective(_store(), collective_id)
        if found is None:
            raise _not_found("collective", "collective_id", collective_id)
        return found

    @blp.route("/investors", methods=["POST"])
    @blp.arguments(InvestorRequest)
    @blp.response(201, InvestorBody)
    @blp.doc(**WRITE_DOC)
    def register_investor(body: dict[str, Any]) -> Any:
        """Register an investor that is not a collective: a company or a government (admin)."""
        investor_id = body["investor_id"]

        def write(publish: Publisher) -> dict[str, Any]:
            _id_is_free(investor_id, "investor_id")
            return publish([NewEvent("InvestorRegistered", investor_id, dict(body))], {"investor_id": investor_id})

        return idempotent(_request_body(body), write, lambda r: views.investor(_store(), r["investor_id"]))

    @blp.route("/investors", methods=["GET"])
    @blp.response(200, InvestorList)
    def list_investors() -> Any:
        return {"items": views.investors(_store())}

    @blp.route("/projects", methods=["POST"])
    @blp.arguments(ProjectRequest)
    @blp.response(201, ProjectBody)
    @blp.doc(**WRITE_DOC)
    def register_project(body: dict[str, Any]) -> Any:
        """Register a project villages invest in (admin)."""
        project_id = body["project_id"]

        def write(publish: Publisher) -> dict[str, Any]:
            _id_is_free(project_id, "project_id")
            return publish([NewEvent("ProjectRegistered", project_id, dict(body))], {"project_id": project_id})

        return idempotent(_request_body(body), write, lambda r: views.project(_store(), r["project_id"]))

    @blp.route("/projects", methods=["GET"])
    @blp.response(200, ProjectList)
    def list_projects() -> Any:
        return {"items": views.projects(_store())}

    @blp.route("/projects/<project_id>", methods=["GET"])
    @blp.response(200, ProjectBody)
    def get_project(project_id: str) -> Any:
        found = views.project(_store(), project_id)
        if found is None:
            raise _not_found("project", "project_id", project_id)
        return found

    def investor_checked(project_id: str, investor_id: str, claimed_type: str | None) -> str:
        """404 unknown project, 422 unknown investor, 403 unless admin or the investor's own accountant."""
        if views.project(_store(), project_id) is None:
            raise _not_found("project", "project_id", project_id)
        registered = views.investor_type(_store(), investor_id)
        if registered is None:
            raise ApiError(422, "unknown_investor", f"{investor_id!r} is neither a registered collective "
                           "nor a registered investor", "investor_id")
        if claimed_type is not None and claimed_type != registered:
            raise ApiError(422, "investor_type_mismatch",
                           f"{investor_id!r} is registered as {registered!r}", "investor_type")
        who = principal()
        if who.role != "admin" and registered != "collective":
            raise Forbidden(f"only admin records investments of {registered} investors")
        who.require(("accountant",), collective=investor_id)
        return registered

    def check_open(investor_type: str, investor_id: str, effective_on: str) -> None:
        if investor_type == "collective":
            period = period_of(dt.date.fromisoformat(effective_on))
            if period in views.closed_periods(_store(), investor_id):
                raise ApiError(422, "closed_period", f"period {period} is closed in the books of {investor_id}; "
                               "its automatic entry could not be dated there", "effective_on")

    def render_movement(found: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, Any]:
        if found is None:  # pragma: no cover - the write waited until the projection had it
            raise ApiError(500, "internal_error", "the recorded movement is missing from the projection")
        entry_event = result.get("entry_event_id")
        if entry_event:
            _await_derived(entry_event)
        return {**found, "entry_id": result.get("entry_id")}

    @blp.route("/projects/<project_id>/investments", methods=["POST"])
    @blp.arguments(InvestmentRequest)
    @blp.response(201, InvestmentBody)
    @blp.doc(**WRITE_DOC)
    def invest(body: dict[str, Any], project_id: str) -> Any:
        """Record a land share or a cash investment (admin, or the investing collective's accountant).

        A collective's investment also posts its entry: Dr 141/{project}, Cr 311 (land) or 102 (cash).
        """
        investor_id = body["investor_id"]
        kind = investor_checked(project_id, investor_id, body.get("investor_type"))
        if body["kind"] == "land":
            try:
                valuation = land_valuation(body["area_mu"], body["price_per_mu"])
            except LedgerError as exc:
                raise refusal(exc) from None

        def write(publish: Publisher) -> dict[str, Any]:
            check_open(kind, investor_id, body["effective_on"])
            land = body["kind"] == "land"
            try:  # the project's capital stays within the wire bound on every day (DESIGN §3)
                check_project_capital([m for _, m in views.capital_movements(_store(), project_id)],
                                      dt.date.fromisoformat(body["effective_on"]),
                                      valuation if land else parse_yuan(body["amount"]),
                                      "area_mu" if land else "amount")
            except LedgerError as exc:
                raise refusal(exc) from None
            investment_id = body["investment_id"] or _new_slug("inv")
            if views.movement_id_taken(_store(), investment_id):
                raise _already_exists("investment", "investment_id", investment_id)
            data: dict[str, Any] = {"investment_id": investment_id, "project_id": project_id,
                                    "investor_id": investor_id, "investor_type": kind,
                                    "effective_on": body["effective_on"]}
            if body["kind"] == "land":
                event_type = "LandShareInvested"
                data.update(area_mu=body["area_mu"], price_per_mu=_money(parse_yuan(body["price_per_mu"])),
                            valuation=_money(valuation), parcel=body.get("parcel"))
            else:
                event_type = "CashInvested"
                data["amount"] = _money(parse_yuan(body["amount"]))
            event_id = new_uuid()
            result: dict[str, Any] = {"investment_id": investment_id, "entry_id": None, "entry_event_id": None}
            if kind == "collective":
                result["entry_id"] = derived_entry_id(event_id, views.ENTRY_QUALIFIER)
                result["entry_event_id"] = derived_event_id(event_id, views.ENTRY_QUALIFIER)
            return publish([NewEvent(event_type, project_id, data, event_id=event_id)], result)

        return idempotent(_request_body(body), write,
                          lambda r: render_movement(views.investment(_store(), r["investment_id"]), r))

    @blp.route("/projects/<project_id>/withdrawals", methods=["POST"])
    @blp.arguments(WithdrawalRequest)
    @blp.response(201, WithdrawalBody)
    @blp.doc(**WRITE_DOC)
    def withdraw(body: dict[str, Any], project_id: str) -> Any:
        """Withdraw capital from a project; refused if the capital would go below zero on any later day.

        A collective's withdrawal also posts its entry: Dr 102, Cr 141/{project}.
        """
        investor_id = body["investor_id"]
        kind = investor_checked(project_id, investor_id, None)
        amount = parse_yuan(body["amount"])

        def write(publish: Publisher) -> dict[str, Any]:
            mine = [m for who, m in views.capital_movements(_store(), project_id) if who == investor_id]
            try:
                check_withdrawal(mine, dt.date.fromisoformat(body["effective_on"]), amount)
            except LedgerError as exc:
                raise refusal(exc) from None
            check_open(kind, investor_id, body["effective_on"])
            withdrawal_id = body["withdrawal_id"] or _new_slug("wd")
            if views.movement_id_taken(_store(), withdrawal_id):
                raise _already_exists("withdrawal", "withdrawal_id", withdrawal_id)
            data = {"withdrawal_id": withdrawal_id, "project_id": project_id, "investor_id": investor_id,
                    "amount": _money(amount), "effective_on": body["effective_on"], "reason": body["reason"]}
            event_id = new_uuid()
            result: dict[str, Any] = {"withdrawal_id": withdrawal_id, "entry_id": None, "entry_event_id": None}
            if views.investor_types_in(_store(), project_id).get(investor_id) == "collective":
                result["entry_id"] = derived_entry_id(event_id, views.ENTRY_QUALIFIER)
                result["entry_event_id"] = derived_event_id(event_id, views.ENTRY_QUALIFIER)
            return publish([NewEvent("InvestmentWithdrawn", project_id, data, event_id=event_id)], result)

        return idempotent(_request_body(body), write,
                          lambda r: render_movement(views.withdrawal(_store(), r["withdrawal_id"]), r))

    @blp.route("/projects/<project_id>/register", methods=["GET"])
    @blp.arguments(RegisterQuery, location="query")
    @blp.response(200, RegisterBody)
    def register(query: dict[str, Any], project_id: str) -> Any:
        """Who holds what capital in the project at the end of ``as_of``."""
        if views.project(_store(), project_id) is None:
            raise _not_found("project", "project_id", project_id)
        as_of = dt.date.fromisoformat(query["as_of"]) if query["as_of"] else _today()
        held = holdings(views.capital_movements(_store(), project_id), as_of)
        types = views.investor_types_in(_store(), project_id)
        return {"project_id": project_id, "as_of": as_of.isoformat(),
                "items": [{"investor_id": investor_id, "investor_type": types.get(investor_id, "collective"),
                           "capital": _money(fen)} for investor_id, fen in held.items()],
                "total_capital": _money(sum(held.values()))}

    return blp


# -- the books -------------------------------------------------------------------------------------------------


def _domain_lines(raw_lines: list[dict[str, Any]]) -> list[Line]:
    return [Line(raw["account"], parse_yuan(raw["debit"]) if "debit" in raw else 0,
                 parse_yuan(raw["credit"]) if "credit" in raw else 0) for raw in raw_lines]


def _entry_event(collective_id: str, body: Mapping[str, Any], closed: list[str], entry_id: str,
                 key: str | None) -> NewEvent:
    """The EntryPosted of a manual entry, after the rules of DESIGN §7 (raises ApiError naming the field)."""
    lines = _domain_lines(body["lines"])
    try:
        check_entry(lines, dt.date.fromisoformat(body["date"]), closed)
    except LedgerError as exc:
        raise refusal(exc) from None
    data: dict[str, Any] = {"entry_id": entry_id, "collective_id": collective_id, "date": body["date"],
                            "memo": body.get("memo") or "", "lines": [views.line_to_wire(line) for line in lines],
                            "origin": {"kind": "manual", "ref": None}}
    if key:
        data["idempotency_key"] = key
    return NewEvent("EntryPosted", collective_id, data)


def _section(section: Section) -> dict[str, Any]:
    return {"title": section.title, "total": _money(section.total),
            "rows": [{"code": row.code, "name": row.name, "amount": _money(row.amount)} for row in section.rows]}


#: One entry of a batch, read a thousand times per request: compiled once (marshmallow decides when unsure).
_BATCH_ENTRY = FastLoader(BatchEntryRequest)


def books_blueprint() -> Blueprint:
    """Journal entries, reversals, closed periods and the statements of one collective's books."""
    blp = Blueprint("books", __name__, url_prefix="/v1",
                    description="Each collective's double-entry books on the statutory chart (财会〔2023〕14号).")
    blp.before_request(_authorize(books=True))

    def render_entry(result: dict[str, Any]) -> dict[str, Any]:
        found = views.entry(_store(), result["entry_id"])
        if found is None:  # pragma: no cover - the write waited until the projection had it
            raise ApiError(500, "internal_error", "the posted entry is missing from the projection")
        return found

    @blp.route("/collectives/<collective_id>/entries", methods=["POST"])
    @blp.arguments(EntryRequest)
    @blp.response(201, EntryBody)
    @blp.doc(**WRITE_DOC)
    def post_entry(body: dict[str, Any], collective_id: str) -> Any:
        """Post a balanced journal entry (the collective's accountant, or admin)."""
        key = idempotency_key()

        def write(publish: Publisher) -> dict[str, Any]:
            _require_collective(collective_id)
            closed = views.closed_periods(_store(), collective_id)
            event = _entry_event(collective_id, body, closed, _new_entry_id("entry"), key)
            return publish([event], {"entry_id": event.data["entry_id"]})

        return idempotent(_request_body(body), write, render_entry)

    @blp.route("/collectives/<collective_id>/entries", methods=["GET"])
    @blp.arguments(EntryRangeQuery, location="query")
    @blp.response(200, EntryList)
    def list_entries(query: dict[str, Any], collective_id: str) -> Any:
        """Entries dated between ``from`` and ``to`` (inclusive), in date then posting order."""
        _require_collective(collective_id)
        return {"items": views.entries(_store(), collective_id, query["date_from"], query["date_to"])}

    @blp.route("/collectives/<collective_id>/entries/<entry_id>", methods=["GET"])
    @blp.response(200, EntryBody)
    def get_entry(collective_id: str, entry_id: str) -> Any:
        _require_collective(collective_id)
        found = views.entry(_store(), entry_id)
        if found is None or found["collective_id"] != collective_id:
            raise _not_found("entry", "entry_id", entry_id)
        return found

    @blp.route("/collectives/<collective_id>/entries/<entry_id>/reverse", methods=["POST"])
    @blp.arguments(ReverseRequest)
    @blp.response(201, EntryBody)
    @blp.doc(**WRITE_DOC)
    def reverse_entry(body: dict[str, Any], collective_id: str, entry_id: str) -> Any:
        """Reverse a posted entry with a mirror entry (entries are never edited or deleted)."""

        def write(publish: Publisher) -> dict[str, Any]:
            _require_collective(collective_id)
            original = views.entry_row(_store(), entry_id)
            if original is None or original["collective_id"] != collective_id:
                raise _not_found("entry", "entry_id", entry_id)
            try:
                check_reversal(original_date=dt.date.fromisoformat(original["date"]),
                               reversed_by=original["reversed_by"], is_reversal=original["reverses"] is not None,
                               date=dt.date.fromisoformat(body["date"]),
                               closed_periods=views.closed_periods(_store(), collective_id))
            except LedgerError as exc:
                raise refusal(exc) from None
            # One reversal per entry: its id follows from the entry's, so it can never be posted twice.
            reversal_id = derived_entry_id(entry_id, "reversal")
            data = {"entry_id": reversal_id, "reverses": entry_id, "collective_id": collective_id,
                    "date": body["date"], "reason": body["reason"]}
            return publish([NewEvent("EntryReversed", collective_id, data)], {"entry_id": reversal_id})

        return idempotent(_request_body(body), write, render_entry)

    @blp.route("/entries/batch", methods=["POST"])
    @blp.arguments(BatchRequest)
    @blp.response(200, BatchResponse)
    @blp.doc(**WRITE_DOC)
    def post_batch(body: dict[str, Any]) -> Any:
        """Post up to 1000 entries at once: each valid one is posted (status 201), each invalid one is
        reported with its error; all valid entries go to Kafka in one producer flush."""
        who = principal()
        key = idempotency_key()

        def write(publish: Publisher) -> dict[str, Any]:
            results: list[dict[str, Any]] = []
            events: list[NewEvent] = []
            closed: dict[str, list[str]] = {}
            for index, raw in enumerate(body["entries"]):
                try:
                    try:
                        item = _BATCH_ENTRY.load(raw)
                    except ValidationError as exc:
                        field, message = first_field(exc.messages)
                        raise ApiError(422, "validation_error", message, field) from None
                    collective_id = item["collective_id"]
                    who.require(("accountant",), collective=collective_id)
                    if collective_id not in closed:
                        if views.collective(_store(), collective_id) is None:
                            raise ApiError(422, "unknown_collective", f"no collective {collective_id!r}",
                                           "collective_id")
                        closed[collective_id] = views.closed_periods(_store(), collective_id)
                    event = _entry_event(collective_id, item, closed[collective_id],
                                         _new_entry_id(f"batch-{index}"), key)
                except ApiError as exc:
                    results.append({"index": index, "status": exc.status, "error": exc.to_dict()["error"]})
                    continue
                except Forbidden as exc:
                    results.append({"index": index, "status": 403, "error": ApiError(
                        403, "forbidden", str(exc), "collective_id").to_dict()["error"]})
                    continue
                events.append(event)
                results.append({"index": index, "status": 201, "entry_id": event.data["entry_id"]})
            if not events:
                return {"results": results}
            return publish(events, {"results": results})

        def render(result: dict[str, Any]) -> Any:
            posted = views.entries_by_id(_store(), [r["entry_id"] for r in result["results"] if "entry_id" in r])
            out = []
            for r in result["results"]:
                if "entry_id" in r:
                    entry = posted[r["entry_id"]]
                    try:  # a repeat is answered only with what the caller may still see
                        who.require(("accountant",), collective=entry["collective_id"])
                    except Forbidden as exc:
                        out.append({"index": r["index"], "status": 403, "error": ApiError(
                            403, "forbidden", str(exc), "collective_id").to_dict()["error"]})
                        continue
                    out.append({"index": r["index"], "status": r["status"], "entry": entry})
                else:
                    out.append(r)
            # The entries are already in their wire shape (EntryBody, every field declared): dumping a
            # thousand of them through the response schema again cost a tenth of a batch's time.
            return current_app.json.response({"results": out})

        return idempotent(_request_body(body), write, render)

    @blp.route("/collectives/<collective_id>/periods", methods=["POST"])
    @blp.arguments(PeriodRequest)
    @blp.response(201, PeriodBody)
    @blp.doc(**WRITE_DOC)
    def close_period(body: dict[str, Any], collective_id: str) -> Any:
        """Close a month: no entry may be dated inside it afterwards."""

        def write(publish: Publisher) -> dict[str, Any]:
            _require_collective(collective_id)
            try:
                check_close_period(body["period"], views.closed_periods(_store(), collective_id))
            except LedgerError as exc:
                raise refusal(exc) from None
            # The automatic entries owed to these books (a dividend approved or paid, an investment …)
            # are posted first, at their own dates: the writer lock keeps the reactor out meanwhile, so
            # none of them can land inside the month after it is closed (DESIGN §7).
            while service().publish_owed(collective_id):
                pass
            data = {"collective_id": collective_id, "period": body["period"]}
            return publish([NewEvent("PeriodClosed", collective_id, data)], data)

        return idempotent(_request_body(body), write, lambda r: {"collective_id": r["collective_id"],
                                                                  "period": r["period"]})

    @blp.route("/collectives/<collective_id>/periods", methods=["GET"])
    @blp.response(200, PeriodList)
    def list_periods(collective_id: str) -> Any:
        _require_collective(collective_id)
        return {"items": [{"collective_id": collective_id, "period": period}
                          for period in views.closed_periods(_store(), collective_id)]}

    @blp.route("/collectives/<collective_id>/trial-balance", methods=["GET"])
    @blp.arguments(AsOfQuery, location="query")
    @blp.response(200, TrialBalanceBody)
    def get_trial_balance(query: dict[str, Any], collective_id: str) -> Any:
        """科目余额表: every account used, with its debit and credit totals and balance at ``as_of``."""
        _require_collective(collective_id)
        as_of = dt.date.fromisoformat(query["as_of"]) if query["as_of"] else _today()
        tb = trial_balance(views.balances_to(_store(), collective_id, as_of), as_of)
        return {"collective_id": collective_id, "as_of": as_of.isoformat(),
                "accounts": [{"code": row.code, "name": row.name, "debit": _money(row.debit),
                              "credit": _money(row.credit), "balance": _money(row.balance)} for row in tb.rows],
                "totals": {"debit": _money(tb.total_debit), "credit": _money(tb.total_credit)}}

    @blp.route("/collectives/<collective_id>/balance-sheet", methods=["GET"])
    @blp.arguments(YearQuery, location="query")
    @blp.response(200, BalanceSheetBody)
    def get_balance_sheet(query: dict[str, Any], collective_id: str) -> Any:
        """资产负债表 at 31 December of ``year``."""
        _require_collective(collective_id)
        year = query["year"]
        sheet = balance_sheet(views.movements_by_year(_store(), collective_id, year), year)
        return {"collective_id": collective_id, "year": year, "as_of": sheet.as_of.isoformat(),
                "assets": _section(sheet.assets), "liabilities": _section(sheet.liabilities),
                "equity": _section(sheet.equity), "total_assets": _money(sheet.total_assets),
                "total_liabilities_and_equity": _money(sheet.total_liabilities_and_equity)}

    @blp.route("/collectives/<collective_id>/income-statement", methods=["GET"])
    @blp.arguments(YearQuery, location="query")
    @blp.response(200, IncomeStatementBody)
    def get_income_statement(query: dict[str, Any], collective_id: str) -> Any:
        """收益及收益分配表 (the 收益 part) for ``year``."""
        _require_collective(collective_id)
        year = query["year"]
        statement = income_statement(views.movements_by_year(_store(), collective_id, year), year)
        return {"collective_id": collective_id, "year": year, "income": _section(statement.income),
                "expenses": _section(statement.expenses), "net_income": _money(statement.net_income)}

    return blp


# -- reports across collectives ------------------------------------------------------------------------------


def _subtotal(subtotal: IncomeSubtotal) -> dict[str, Any]:
    return {"group": subtotal.group, "village_count": subtotal.village_count, "income": _money(subtotal.income),
            "below_million_count": subtotal.below_million_count, "weak_count": subtotal.weak_count}


def reports_blueprint() -> Blueprint:
    """The village income report and the chart of accounts (any authenticated caller)."""
    blp = Blueprint("reports", __name__, url_prefix="/v1",
                    description="The village income report (村村百万) and the chart of accounts.")
    blp.before_request(_authorize(books=False))

    @blp.route("/reports/village-income", methods=["GET"])
    @blp.arguments(VillageIncomeQuery, location="query")
    @blp.response(200, VillageIncomeBody)
    def village_income(query: dict[str, Any]) -> Any:
        """Collective income (net credit of 501–504) per village for ``year``; who is under 1,000,000
        yuan (村村百万) and under 200,000 yuan (weak), with subtotals by town and by alliance."""
        year = query["year"]
        infos = [info for info in views.collective_infos(_store())
                 if (query["town"] is None or info.town == query["town"])
                 and (query["alliance"] is None or query["alliance"] in info.alliances)]
        report = village_income_report(infos, views.movements_by_year(_store(), None, year, income_only=True), year)
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

    @blp.route("/accounts", methods=["GET"])
    @blp.response(200, AccountList)
    def accounts() -> Any:
        """The statutory chart of accounts (财会〔2023〕14号); sub-accounts are written CODE/segment."""
        return {"items": [{"code": a.code, "name": a.name, "account_class": a.account_class,
                           "normal_side": a.normal_side} for a in ACCOUNTS]}

    return blp


def blueprints() -> list[Blueprint]:
    """The ledger's blueprints, fresh for each app."""
    return [registry_blueprint(), books_blueprint(), reports_blueprint()]


__all__ = ["blueprints", "refusal"]
