"""The rentals HTTP API: thin handlers — parse, authorize, check against the projection, publish, render.

Operators write for the projects in their scope; admins everywhere; boards and auditors
read; everyone else is refused. The rules live in :mod:`services.rentals.domain`, the
state in the projection (:mod:`services.rentals.projection`); a handler never changes
state except by publishing an event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any, TypeVar

from flask import request
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema

from services.contracts.envelope import derived_event_id
from services.contracts.money import MAX_YUAN, fits_wire, format_yuan, parse_yuan, round_half_up
from services.contracts.topics import DIVIDENDS, LEDGER_INVESTMENTS
from services.rentals import domain, schemas
from services.rentals.projection import invoice_of, late_for, lease_of, open_invoices
from services.runtime.http import ApiError, Publisher, fresh_uuid, idempotent, principal, service
from services.runtime.service import MAX_EVENTS_PER_REQUEST, NewEvent
from services.runtime.sqlsum import exact_sum, sum_of

blp = Blueprint("rentals", __name__, url_prefix="/v1",
                description="Buildings, leases, invoices, rent received and expenses of registered projects.")

READERS = ("operator", "board", "auditor")
WRITERS = ("operator",)

#: domain error -> (HTTP status, error code). Anything else a rule refuses is a 422.
_REFUSALS: dict[type[domain.RentalsError], tuple[int, str]] = {
    domain.DuplicateLease: (409, "already_exists"),
    domain.AlreadyTerminated: (409, "already_terminated"),
    domain.LeaseOverlap: (422, "lease_overlap"),
    domain.InvalidLeaseDates: (422, "invalid_dates"),
    domain.LeaseTooLong: (422, "lease_too_long"),
    domain.InvoiceTooLarge: (422, "amount_out_of_range"),
    domain.NonPositiveRent: (422, "non_positive_rent"),
    domain.InvalidTermination: (422, "invalid_termination"),
    domain.UnknownInvoice: (422, "unknown_invoice"),
    domain.InvoiceNotOpen: (422, "invoice_not_open"),
}


# -- helpers ----------------------------------------------------------------------------------------------

View = TypeVar("View", bound=Callable[..., Any])


def endpoint(rule: str, method: str, status: int, response: type[Schema], *, body: type[Schema] | None = None,
             query: type[Schema] | None = None) -> Callable[[View], View]:
    """Register a view on the blueprint: its JSON body or query string schema, its response schema.

    (flask-smorest's own decorators are untyped; this keeps the views typed.)
    """
    def register(view: View) -> View:
        decorated = blp.response(status, response)(view)
        if body is not None:
            decorated = blp.arguments(body)(decorated)
        if query is not None:
            decorated = blp.arguments(query, location="query", unknown=RAISE)(decorated)
        blp.route(rule, methods=[method])(decorated)
        return view

    return register


def _refusal(exc: domain.RentalsError) -> ApiError:
    status, code = _REFUSALS.get(type(exc), (422, "rule_violation"))
    return ApiError(status, code, exc.message, exc.field)


def _today() -> date:
    return datetime.now(UTC).date()


def _new_id(kind: str, scope: str) -> str:
    """A fresh id: derived from the bound Idempotency-Key when there is one (a retry makes the same), else random."""
    return fresh_uuid(f"{kind}:{scope}").hex


def _request_body() -> dict[str, Any]:
    """What an Idempotency-Key is bound to: the route and the JSON body as sent."""
    return {"path": request.path, "body": request.get_json(silent=True)}


def _one(sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
    return service().store.query_one(sql, params)


def _rows(sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
    return service().store.query(sql, params)


def _require_project(project_id: str) -> sqlite3.Row:
    """The registered project, or 404. On a miss, catch up with the ledger's topic once first:
    a project registered a moment ago may not have reached this projection yet."""
    sql = "SELECT * FROM projects WHERE project_id=?"
    row = _one(sql, (project_id,))
    if row is None:
        service().sync([LEDGER_INVESTMENTS])
        row = _one(sql, (project_id,))
    if row is None:
        raise ApiError(404, "not_found", f"no project {project_id!r} is registered on the ledger", "project_id")
    return row


def _require_lease(lease_id: str) -> sqlite3.Row:
    row = _one("SELECT * FROM leases WHERE lease_id=?", (lease_id,))
    if row is None:
        raise ApiError(404, "not_found", f"no lease {lease_id!r}", "lease_id")
    return row


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _building_of(row: sqlite3.Row) -> domain.Building:
    return domain.Building(row["building_id"], row["project_id"], row["name"], Fraction(row["floor_area_m2"]))


def _area(value: Fraction) -> str:
    return format_yuan(round_half_up(value * 100))


def _share(value: Fraction) -> str:
    """A share as a decimal string with 4 places, ROUND_HALF_UP."""
    basis_points = round_half_up(value * 10_000)
    return f"{basis_points // 10_000}.{basis_points % 10_000:04d}"


def _buckets(fen_by_bucket: dict[str, int]) -> dict[str, str]:
    return {bucket: format_yuan(fen_by_bucket[bucket]) for bucket in domain.ARREARS_BUCKETS}


# -- views ------------------------------------------------------------------------------------------------


def _building_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"building_id": row["building_id"], "project_id": row["project_id"], "name": row["name"],
            "floor_area_m2": row["floor_area_m2"]}


def _invoice_view(row: sqlite3.Row) -> dict[str, Any]:
    outstanding = 0 if row["void"] else int(row["amount"]) - int(row["paid"])
    status = "void" if row["void"] else ("paid" if outstanding == 0 else "open")
    return {"invoice_id": row["invoice_id"], "lease_id": row["lease_id"], "period_start": row["period_start"],
            "period_end": row["period_end"], "amount": format_yuan(int(row["amount"])),
            "issued_amount": format_yuan(int(row["issued_amount"])), "due_on": row["due_on"],
            "paid": format_yuan(int(row["paid"])), "outstanding": format_yuan(outstanding), "status": status}


def _applied(payment_id: str) -> list[dict[str, str]]:
    return [{"invoice_id": row["invoice_id"], "amount": format_yuan(int(row["amount"]))}
            for row in _rows("SELECT invoice_id, amount FROM applications WHERE source='payment' AND ref=? "
                             "ORDER BY id", (payment_id,))]


def _payment_view(row: sqlite3.Row) -> dict[str, Any]:
    credit_after = row["credit_after"]
    return {"payment_id": row["payment_id"], "lease_id": row["lease_id"], "project_id": row["project_id"],
            "invoice_id": row["invoice_id"], "amount": format_yuan(int(row["amount"])),
            "received_on": row["received_on"], "applied": _applied(row["payment_id"]),
            "credit_after": format_yuan(int(credit_after)) if credit_after is not None else None}


def _lease_view(row: sqlite3.Row, *, detail: bool = False) -> dict[str, Any]:
    lease_id = row["lease_id"]
    # Exact sums (runtime.sqlsum): a SQLite SUM overflows past 2^63 fen; a lease may have any number of payments.
    totals = _one(f"SELECT {exact_sum('amount')}, {exact_sum('amount - paid')} FROM invoices "
                  "WHERE lease_id=? AND void=0", (lease_id,))
    received = _one(f"SELECT {exact_sum('amount')} FROM payments WHERE lease_id=?", (lease_id,))
    view: dict[str, Any] = {
        "lease_id": lease_id, "project_id": row["project_id"], "building_id": row["building_id"],
        "tenant": {"name": row["tenant_name"], "uscc": row["tenant_uscc"]},
        "start_on": row["start_on"], "end_on": row["end_on"], "monthly_rent": format_yuan(int(row["monthly_rent"])),
        "deposit": format_yuan(int(row["deposit"])), "billing": row["billing"],
        "status": "terminated" if row["terminated_on"] else "live",
        "terminated_on": row["terminated_on"], "termination_reason": row["termination_reason"],
        "invoiced": format_yuan(sum_of(totals[0], totals[1]) if totals else 0),
        "received": format_yuan(sum_of(received[0], received[1]) if received else 0),
        "outstanding": format_yuan(sum_of(totals[2], totals[3]) if totals else 0),
        "credit": format_yuan(int(row["credit"])),
    }
    if detail:
        view["invoices"] = [_invoice_view(inv) for inv in _rows(
            "SELECT * FROM invoices WHERE lease_id=? ORDER BY due_on, invoice_id", (lease_id,))]
        view["payments"] = [_payment_view(pay) for pay in _rows(
            "SELECT * FROM payments WHERE lease_id=? ORDER BY received_on, rowid", (lease_id,))]
    return view


def _lease_detail(lease_id: str) -> dict[str, Any]:
    return _lease_view(_require_lease(lease_id), detail=True)


def _expense_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"expense_id": row["expense_id"], "project_id": row["project_id"], "category": row["category"],
            "amount": format_yuan(int(row["amount"])), "incurred_on": row["incurred_on"], "memo": row["memo"]}


def _check_range(start: str | None, end: str | None) -> None:
    if start is not None and end is not None and end < start:
        raise ApiError(422, "validation_error", "'to' must not be before 'from'", "to")


def _in_range(column: str, start: str | None, end: str | None) -> tuple[str, tuple[str, ...]]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} <= ?")
        params.append(end)
    return "".join(f" AND {c}" for c in clauses), tuple(params)


# -- buildings --------------------------------------------------------------------------------------------


@endpoint("/projects/<project_id>/buildings", "POST", 201, schemas.BuildingOut, body=schemas.BuildingIn)
def register_building(body: dict[str, Any], project_id: str) -> Any:
    """Register a building of a project (the project must be registered on the ledger)."""
    principal().require(WRITERS, project=project_id)
    _require_project(project_id)

    def write(publish: Publisher) -> dict[str, Any]:
        building_id = body.get("building_id") or _new_id("building", project_id)
        if _one("SELECT 1 FROM buildings WHERE building_id=?", (building_id,)):
            raise ApiError(409, "already_exists", f"building {building_id!r} already exists", "building_id")
        data = {"building_id": building_id, "project_id": project_id, "name": body["name"],
                "floor_area_m2": body["floor_area_m2"]}
        return publish([NewEvent("BuildingRegistered", project_id, data)], {"building_id": building_id})

    def render(result: dict[str, Any]) -> dict[str, Any]:
        row = _one("SELECT * FROM buildings WHERE building_id=?", (result["building_id"],))
        assert row is not None
        return _building_view(row)

    return idempotent(_request_body(), write, render)


@endpoint("/projects/<project_id>/buildings", "GET", 200, schemas.BuildingsOut)
def list_buildings(project_id: str) -> Any:
    """The buildings of a project."""
    principal().require(READERS, project=project_id)
    _require_project(project_id)
    rows = _rows("SELECT * FROM buildings WHERE project_id=? ORDER BY building_id", (project_id,))
    return {"items": [_building_view(row) for row in rows]}


# -- leases -----------------------------------------------------------------------------------------------


@endpoint("/projects/<project_id>/leases", "POST", 201, schemas.LeaseDetailOut, body=schemas.LeaseIn)
def sign_lease(body: dict[str, Any], project_id: str) -> Any:
    """Sign a lease of one building; refused if it overlaps a live lease of that building."""
    principal().require(WRITERS, project=project_id)
    _require_project(project_id)

    def write(publish: Publisher) -> dict[str, Any]:
        building = _one("SELECT project_id FROM buildings WHERE building_id=?", (body["building_id"],))
        if building is None or building["project_id"] != project_id:
            raise ApiError(422, "unknown_reference",
                           f"{body['building_id']!r} is not a building of project {project_id!r}", "building_id")
        lease_id = body.get("lease_id") or _new_id("lease", project_id)
        if _one("SELECT 1 FROM leases WHERE lease_id=?", (lease_id,)):
            raise ApiError(409, "already_exists", f"lease {lease_id!r} already exists", "lease_id")
        lease = domain.Lease(lease_id=lease_id, project_id=project_id, building_id=body["building_id"],
                             start_on=_day(body["start_on"]), end_on=_day(body["end_on"]),
                             monthly_rent=parse_yuan(body["monthly_rent"]), deposit=parse_yuan(body["deposit"]),
                             billing=body["billing"], tenant=body["tenant"]["name"])
        same_building = _rows("SELECT * FROM leases WHERE building_id=?", (body["building_id"],))
        try:
            domain.check_new_lease(lease, [lease_of(row) for row in same_building])
        except domain.RentalsError as exc:
            raise _refusal(exc) from exc
        tenant = {"name": body["tenant"]["name"]}
        if body["tenant"].get("uscc"):
            tenant["uscc"] = body["tenant"]["uscc"]
        data = {"lease_id": lease_id, "project_id": project_id, "building_id": body["building_id"],
                "tenant": tenant, "start_on": body["start_on"], "end_on": body["end_on"],
                "monthly_rent": body["monthly_rent"], "deposit": body["deposit"], "billing": body["billing"]}
        return publish([NewEvent("LeaseSigned", project_id, data)], {"lease_id": lease_id})

    return idempotent(_request_body(), write, lambda result: _lease_detail(result["lease_id"]))


@endpoint("/projects/<project_id>/leases", "GET", 200, schemas.LeasesOut)
def list_leases(project_id: str) -> Any:
    """The leases of a project (live and terminated), with their balances."""
    principal().require(READERS, project=project_id)
    _require_project(project_id)
    rows = _rows("SELECT * FROM leases WHERE project_id=? ORDER BY building_id, start_on, lease_id", (project_id,))
    return {"items": [_lease_view(row) for row in rows]}


@endpoint("/leases/<lease_id>", "GET", 200, schemas.LeaseDetailOut)
def get_lease(lease_id: str) -> Any:
    """One lease with its invoices, payments (and how each was applied), credit and outstanding."""
    who = principal()
    row = _require_lease(lease_id)
    who.require(READERS, project=row["project_id"])
    return _lease_view(row, detail=True)


@endpoint("/leases/<lease_id>/terminate", "POST", 200, schemas.LeaseDetailOut, body=schemas.TerminationIn)
def terminate_lease(body: dict[str, Any], lease_id: str) -> Any:
    """End a lease early: ``end_on`` is the first day no longer let; the rent stops that day (invoices of
    later periods are voided, the period it ends in is cut to its days)."""
    who = principal()
    project_id = _require_lease(lease_id)["project_id"]
    who.require(WRITERS, project=project_id)

    def write(publish: Publisher) -> dict[str, Any]:
        lease = lease_of(_require_lease(lease_id))
        try:
            domain.check_termination(lease, _day(body["end_on"]))
        except domain.RentalsError as exc:
            raise _refusal(exc) from exc
        data = {"lease_id": lease_id, "project_id": project_id, "end_on": body["end_on"], "reason": body["reason"]}
        return publish([NewEvent("LeaseTerminated", project_id, data)], {"lease_id": lease_id})

    return idempotent(_request_body(), write, lambda result: _lease_detail(result["lease_id"]))


# -- invoices and payments ---------------------------------------------------------------------------------


def _check_invoice_run(lease: domain.Lease, up_to: date) -> None:
    """422 naming ``up_to`` when the run would publish more than MAX_EVENTS_PER_REQUEST invoices (DESIGN §9).

    Counted before any invoice is priced: the periods up to ``up_to`` less those already issued.
    """
    owed = domain.invoice_count(lease, up_to)
    if owed <= MAX_EVENTS_PER_REQUEST:
        return
    issued = _one("SELECT COUNT(*) FROM invoices WHERE lease_id=? AND void=0 AND due_on<=?",
                  (lease.lease_id, up_to.isoformat()))
    new = owed - (int(issued[0]) if issued else 0)
    if new > MAX_EVENTS_PER_REQUEST:
        raise ApiError(422, "too_many_events", f"issuing the invoices up to {up_to.isoformat()} would publish "
                       f"{new:,} events; one request may publish at most {MAX_EVENTS_PER_REQUEST:,}: issue them "
                       "in steps, with an earlier up_to", "up_to")


@endpoint("/leases/<lease_id>/invoices", "POST", 200, schemas.InvoiceRunOut, body=schemas.InvoiceRunIn)
def issue_invoices(body: dict[str, Any], lease_id: str) -> Any:
    """Issue the rent invoices the lease owes up to ``up_to``; those already issued are not issued again."""
    who = principal()
    project_id = _require_lease(lease_id)["project_id"]
    who.require(WRITERS, project=project_id)

    def write(publish: Publisher) -> dict[str, Any]:
        lease = lease_of(_require_lease(lease_id))
        _check_invoice_run(lease, _day(body["up_to"]))
        schedule = domain.invoice_schedule(lease, _day(body["up_to"]))
        issued = {row["invoice_id"] for row in _rows("SELECT invoice_id FROM invoices WHERE lease_id=?",
                                                     (lease_id,))}
        new = [due for due in schedule if due.invoice_id not in issued]
        result = {"lease_id": lease_id, "created": [due.invoice_id for due in new],
                  "existing": len(schedule) - len(new)}
        if not new:
            return result
        too_big = next((due for due in new if not fits_wire(due.amount)), None)
        if too_big is not None:  # only a lease signed before the bound (domain.InvoiceTooLarge) can owe one
            raise ApiError(422, "amount_out_of_range", f"invoice {too_big.invoice_id!r} would be "
                           f"{format_yuan(too_big.amount)}, more than the largest amount {MAX_YUAN}", "lease_id")
        events = [NewEvent("RentInvoiced", project_id, {
            "invoice_id": due.invoice_id, "lease_id": lease_id, "project_id": project_id,
            "period_start": due.period_start.isoformat(), "period_end": due.period_end.isoformat(),
            "amount": format_yuan(due.amount), "due_on": due.due_on.isoformat()},
            # One event id per invoice, ever: the log itself cannot hold an invoice twice.
            event_id=derived_event_id(f"rentals:invoice:{due.invoice_id}")) for due in new]
        return publish(events, result)

    def render(result: dict[str, Any]) -> dict[str, Any]:
        created = [_one("SELECT * FROM invoices WHERE invoice_id=?", (invoice_id,))
                   for invoice_id in result["created"]]
        return {"lease_id": lease_id, "created": [_invoice_view(row) for row in created if row is not None],
                "existing": result["existing"]}

    return idempotent(_request_body(), write, render)


@endpoint("/leases/<lease_id>/payments", "POST", 201, schemas.PaymentResultOut, body=schemas.PaymentIn)
def receive_rent(body: dict[str, Any], lease_id: str) -> Any:
    """Record rent received: applied to the named invoice (if any), then oldest open invoice first;
    what is left over is kept as the tenant's credit."""
    who = principal()
    project_id = _require_lease(lease_id)["project_id"]
    who.require(WRITERS, project=project_id)

    def write(publish: Publisher) -> dict[str, Any]:
        payment_id = body.get("payment_id") or _new_id("payment", lease_id)
        if _one("SELECT 1 FROM payments WHERE payment_id=?", (payment_id,)):
            raise ApiError(409, "already_exists", f"payment {payment_id!r} already exists", "payment_id")
        named = body.get("invoice_id")
        if named is not None:
            invoice = _one("SELECT void FROM invoices WHERE invoice_id=? AND lease_id=?", (named, lease_id))
            if invoice is None:
                raise ApiError(422, "unknown_invoice", f"{named!r} is not an invoice of lease {lease_id!r}",
                               "invoice_id")
            if invoice["void"]:
                raise ApiError(422, "invoice_not_open", f"invoice {named!r} was voided by the lease's termination",
                               "invoice_id")
        with service().store.reading() as conn:
            invoices = open_invoices(conn, lease_id)
        credit = int(_require_lease(lease_id)["credit"])
        try:
            spread = domain.apply_payment(invoices, credit, parse_yuan(body["amount"]), first=named)
        except domain.RentalsError as exc:
            raise _refusal(exc) from exc
        if not fits_wire(spread.new_credit):
            raise ApiError(422, "amount_out_of_range", f"the tenant's credit would become "
                           f"{format_yuan(spread.new_credit)}, more than the largest amount {MAX_YUAN}", "amount")
        applied = spread.applied
        data = {"payment_id": payment_id, "lease_id": lease_id, "project_id": project_id,
                "invoice_id": named or (applied[0][0] if applied else None), "amount": body["amount"],
                "received_on": body["received_on"]}
        return publish([NewEvent("RentReceived", project_id, data)], {"payment_id": payment_id})

    def render(result: dict[str, Any]) -> dict[str, Any]:
        row = _one("SELECT * FROM payments WHERE payment_id=?", (result["payment_id"],))
        assert row is not None
        payment = _payment_view(row)
        return {"payment": payment, "applied": payment["applied"], "credit": payment["credit_after"],
                "late": _late("payment", row["payment_id"], row["project_id"], row["received_on"])}

    return idempotent(_request_body(), write, render)


def _late(kind: str, ref: str, project_id: str, day: str) -> dict[str, str] | None:
    """Is the payment or expense just recorded late (DESIGN §6 step 1), and for which distribution?

    First catch up with baotuan.dividends.v1: every distribution declared before the record
    was written is then known, and one declared after it is never what makes it late.
    """
    service().sync([DIVIDENDS])
    with service().store.reading() as conn:
        row = late_for(conn, kind, ref, project_id, day)
    if row is None:
        return None
    return {"distribution_id": row["distribution_id"], "period_start": row["period_start"],
            "period_end": row["period_end"],
            "counts_in": f"the next distribution of {project_id} declared after it"}


# -- expenses ---------------------------------------------------------------------------------------------


@endpoint("/projects/<project_id>/expenses", "POST", 201, schemas.ExpenseResultOut, body=schemas.ExpenseIn)
def record_expense(body: dict[str, Any], project_id: str) -> Any:
    """Record an expense of a project (maintenance, insurance, property-tax …)."""
    principal().require(WRITERS, project=project_id)
    _require_project(project_id)

    def write(publish: Publisher) -> dict[str, Any]:
        expense_id = body.get("expense_id") or _new_id("expense", project_id)
        if _one("SELECT 1 FROM expenses WHERE expense_id=?", (expense_id,)):
            raise ApiError(409, "already_exists", f"expense {expense_id!r} already exists", "expense_id")
        data = {"expense_id": expense_id, "project_id": project_id, "category": body["category"],
                "amount": body["amount"], "incurred_on": body["incurred_on"], "memo": body.get("memo", "")}
        return publish([NewEvent("ExpenseRecorded", project_id, data)], {"expense_id": expense_id})

    def render(result: dict[str, Any]) -> dict[str, Any]:
        row = _one("SELECT * FROM expenses WHERE expense_id=?", (result["expense_id"],))
        assert row is not None
        return {**_expense_view(row), "late": _late("expense", row["expense_id"], row["project_id"],
                                                    row["incurred_on"])}

    return idempotent(_request_body(), write, render)


@endpoint("/projects/<project_id>/expenses", "GET", 200, schemas.ExpensesOut, query=schemas.RangeQuery)
def list_expenses(query: dict[str, Any], project_id: str) -> Any:
    """Expenses of a project incurred between ``from`` and ``to`` (inclusive), with totals per category."""
    principal().require(READERS, project=project_id)
    _require_project(project_id)
    start, end = query.get("from_"), query.get("to")
    _check_range(start, end)
    where, params = _in_range("incurred_on", start, end)
    rows = _rows(f"SELECT * FROM expenses WHERE project_id=?{where} ORDER BY incurred_on, expense_id",
                 (project_id, *params))
    by_category: dict[str, int] = {}
    for row in rows:
        by_category[row["category"]] = by_category.get(row["category"], 0) + int(row["amount"])
    return {"project_id": project_id, "from_": start, "to": end, "items": [_expense_view(row) for row in rows],
            "by_category": [{"category": c, "amount": format_yuan(fen)} for c, fen in sorted(by_category.items())],
            "total": format_yuan(sum(by_category.values(), 0))}


# -- reports ----------------------------------------------------------------------------------------------


def _project_state(project_id: str) -> tuple[list[domain.Building], list[domain.Lease]]:
    buildings = [_building_of(row) for row in _rows(
        "SELECT * FROM buildings WHERE project_id=? ORDER BY building_id", (project_id,))]
    leases = [lease_of(row) for row in _rows("SELECT * FROM leases WHERE project_id=?", (project_id,))]
    return buildings, leases


@endpoint("/projects/<project_id>/rent-roll", "GET", 200, schemas.RentRollOut, query=schemas.OnQuery)
def rent_roll(query: dict[str, Any], project_id: str) -> Any:
    """Every building of the project with its tenant, rent and status on ``on``."""
    principal().require(READERS, project=project_id)
    _require_project(project_id)
    on = _day(query["on"]) if "on" in query else _today()
    buildings, leases = _project_state(project_id)
    rows = domain.rent_roll(buildings, leases, on)
    return {"project_id": project_id, "on": on.isoformat(),
            "items": [{"building_id": r.building_id, "building_name": r.building_name,
                       "floor_area_m2": _area(r.floor_area_m2), "status": r.status, "lease_id": r.lease_id,
                       "tenant": r.tenant, "monthly_rent": format_yuan(r.monthly_rent)} for r in rows],
            "total_monthly_rent": format_yuan(sum((r.monthly_rent for r in rows), 0))}


@endpoint("/projects/<project_id>/occupancy", "GET", 200, schemas.OccupancyOut, query=schemas.OnQuery)
def occupancy(query: dict[str, Any], project_id: str) -> Any:
    """Leased and vacant floor area of the project on ``on``."""
    principal().require(READERS, project=project_id)
    _require_project(project_id)
    on = _day(query["on"]) if "on" in query else _today()
    buildings, leases = _project_state(project_id)
    result = domain.occupancy(buildings, leases, on)
    return {"project_id": project_id, "on": on.isoformat(), "total_area_m2": _area(result.total_area_m2),
            "leased_area_m2": _area(result.leased_area_m2), "vacant_area_m2": _area(result.vacant_area_m2),
            "rate": _share(result.rate),
            "buildings": [{"building_id": b.building_id, "floor_area_m2": _area(b.floor_area_m2),
                           "status": b.status, "lease_id": b.lease_id} for b in result.buildings]}


def _lease_arrears(lease_id: str, as_of: date) -> domain.Arrears:
    invoices = [invoice_of(row) for row in _rows("SELECT * FROM invoices WHERE lease_id=? AND void=0", (lease_id,))]
    payments = [domain.ReceivedPayment(row["payment_id"], _day(row["received_on"]), int(row["amount"]),
                                       row["invoice_id"])
                for row in _rows("SELECT * FROM payments WHERE lease_id=? ORDER BY rowid", (lease_id,))]
    return domain.arrears_on(invoices, payments, as_of)


def _sum_buckets(parts: Iterable[domain.Arrears]) -> dict[str, int]:
    total = dict.fromkeys(domain.ARREARS_BUCKETS, 0)
    for part in parts:
        for bucket, fen in part.buckets.items():
            total[bucket] += fen
    return total


@endpoint("/projects/<project_id>/arrears", "GET", 200, schemas.ArrearsOut, query=schemas.AsOfQuery)
def arrears(query: dict[str, Any], project_id: str) -> Any:
    """Rent owed on ``as_of``, aged 0–30, 31–60, 61–90 and 90+ days past due, per lease and in total."""
    principal().require(READERS, project=project_id)
    _require_project(project_id)
    as_of = _day(query["as_of"]) if "as_of" in query else _today()
    leases: Sequence[sqlite3.Row] = _rows("SELECT lease_id, building_id, tenant_name FROM leases "
                                          "WHERE project_id=? ORDER BY building_id, lease_id", (project_id,))
    per_lease = [(row, _lease_arrears(row["lease_id"], as_of)) for row in leases]
    owing = [(row, owed) for row, owed in per_lease if owed.total > 0]
    buckets = _sum_buckets(owed for _, owed in per_lease)
    return {"project_id": project_id, "as_of": as_of.isoformat(), "buckets": _buckets(buckets),
            "total": format_yuan(sum(buckets.values(), 0)),
            "items": [{"lease_id": row["lease_id"], "building_id": row["building_id"], "tenant": row["tenant_name"],
                       "buckets": _buckets(owed.buckets), "total": format_yuan(owed.total)} for row, owed in owing]}


@endpoint("/projects/<project_id>/income", "GET", 200, schemas.IncomeOut, query=schemas.IncomeQuery)
def income(query: dict[str, Any], project_id: str) -> Any:
    """Rent received per month, quarter or year, for payments received between ``from`` and ``to``."""
    principal().require(READERS, project=project_id)
    _require_project(project_id)
    start, end = query.get("from_"), query.get("to")
    _check_range(start, end)
    where, params = _in_range("received_on", start, end)
    rows = _rows(f"SELECT received_on, amount FROM payments WHERE project_id=?{where}", (project_id, *params))
    per_period = domain.income_by_period([(_day(r["received_on"]), int(r["amount"])) for r in rows],
                                         query["granularity"])
    return {"project_id": project_id, "granularity": query["granularity"], "from_": start, "to": end,
            "items": [{"period": period, "amount": format_yuan(fen)} for period, fen in per_period.items()],
            "total": format_yuan(sum(per_period.values(), 0))}
