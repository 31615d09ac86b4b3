"""The rentals HTTP API: parse, authorize, decide inside the writer lock, render.

Operators write for the projects in their scope; admins everywhere; boards and auditors
read; everyone else is refused. A write view builds a command (:mod:`services.rentals.commands`;
the ids the request creates are chosen here, ``fresh_uuid``), authorizes it, and runs its handler
(:mod:`services.rentals.handlers`: every decision and refusal) through ``idempotent``, which
publishes the handler's events; every view renders from the projection's reads
(:mod:`services.rentals.reads`). Nothing here queries the projection or applies a money rule.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any, TypeVar

from flask import request
from marshmallow import RAISE, Schema

from services.contracts.money import format_yuan, parse_yuan, round_half_up
from services.rentals import domain, handlers, schemas
from services.rentals.commands import (
    IssueInvoices,
    ReceiveRent,
    RecordExpense,
    RegisterBuilding,
    SignLease,
    TerminateLease,
)
from services.rentals.reads import RentalsReads
from services.runtime.handling import Decision
from services.runtime.http import ApiError, Publisher, fresh_uuid, idempotent, principal, service
from services.runtime.openapi import Blueprint

blp = Blueprint("rentals", __name__, url_prefix="/v1",
                description="Buildings, leases, invoices, rent received and expenses of registered projects.")

READERS = ("operator", "board", "auditor")
WRITERS = ("operator",)

View = TypeVar("View", bound=Callable[..., Any])
Command = TypeVar("Command")


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


def _reads() -> RentalsReads:
    svc = service()
    return RentalsReads(svc.store, svc.sync)


def _write(handle: Callable[[Command, RentalsReads], Decision], command: Command,
           render: Callable[[dict[str, Any]], Any]) -> Any:
    """Decide ``command`` against the projection inside the writer lock, publish the decision, render it
    (once per Idempotency-Key: the key is bound to the route and the JSON body as sent)."""
    def write(publish: Publisher) -> dict[str, Any]:
        decision = handle(command, _reads())
        return publish(decision.events, decision.result) if decision.events else decision.result

    return idempotent({"path": request.path, "body": request.get_json(silent=True)}, write, render)


def _new_id(given: str | None, kind: str, scope: str) -> str:
    """The id a body gives, or a fresh one (derived from the bound Idempotency-Key: a retry makes the same)."""
    return given or fresh_uuid(f"{kind}:{scope}").hex


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _today() -> date:
    return datetime.now(UTC).date()


def _check_range(start: str | None, end: str | None) -> None:
    if start is not None and end is not None and end < start:
        raise ApiError(422, "validation_error", "'to' must not be before 'from'", "to")


# -- rendering --------------------------------------------------------------------------------------------


def _area(value: Fraction) -> str:
    return format_yuan(round_half_up(value * 100))


def _share(value: Fraction) -> str:
    """A share as a decimal string with 4 places, ROUND_HALF_UP."""
    basis_points = round_half_up(value * 10_000)
    return f"{basis_points // 10_000}.{basis_points % 10_000:04d}"


def _buckets(fen_by_bucket: dict[str, int]) -> dict[str, str]:
    return {bucket: format_yuan(fen_by_bucket[bucket]) for bucket in domain.ARREARS_BUCKETS}


def _building_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"building_id": row["building_id"], "project_id": row["project_id"], "name": row["name"],
            "floor_area_m2": row["floor_area_m2"]}


def _invoice_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"invoice_id": row["invoice_id"], "lease_id": row["lease_id"], "period_start": row["period_start"],
            "period_end": row["period_end"], "amount": format_yuan(int(row["amount"])),
            "issued_amount": format_yuan(int(row["issued_amount"])), "due_on": row["due_on"],
            "paid": format_yuan(int(row["paid"])), "outstanding": format_yuan(int(row["outstanding"])),
            "status": row["status"]}


def _payment_view(reads: RentalsReads, row: sqlite3.Row) -> dict[str, Any]:
    credit_after = row["credit_after"]
    return {"payment_id": row["payment_id"], "lease_id": row["lease_id"], "project_id": row["project_id"],
            "invoice_id": row["invoice_id"], "amount": format_yuan(int(row["amount"])),
            "received_on": row["received_on"],
            "applied": [{"invoice_id": invoice_id, "amount": format_yuan(fen)}
                        for invoice_id, fen in reads.applied(row["payment_id"])],
            "credit_after": format_yuan(int(credit_after)) if credit_after is not None else None}


def _lease_view(reads: RentalsReads, row: sqlite3.Row, *, detail: bool = False) -> dict[str, Any]:
    lease_id = row["lease_id"]
    totals = reads.lease_totals(lease_id)
    view: dict[str, Any] = {
        "lease_id": lease_id, "project_id": row["project_id"], "building_id": row["building_id"],
        "tenant": {"name": row["tenant_name"], "uscc": row["tenant_uscc"]},
        "start_on": row["start_on"], "end_on": row["end_on"], "monthly_rent": format_yuan(int(row["monthly_rent"])),
        "deposit": format_yuan(int(row["deposit"])), "billing": row["billing"],
        "status": "terminated" if row["terminated_on"] else "live",
        "terminated_on": row["terminated_on"], "termination_reason": row["termination_reason"],
        "invoiced": format_yuan(totals.invoiced), "received": format_yuan(totals.received),
        "outstanding": format_yuan(totals.outstanding), "credit": format_yuan(int(row["credit"])),
    }
    if detail:
        view["invoices"] = [_invoice_view(inv) for inv in reads.invoices(lease_id)]
        view["payments"] = [_payment_view(reads, pay) for pay in reads.payments(lease_id)]
    return view


def _lease_detail(result: dict[str, Any]) -> dict[str, Any]:
    reads = _reads()
    return _lease_view(reads, reads.require_lease(result["lease_id"]), detail=True)


def _expense_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"expense_id": row["expense_id"], "project_id": row["project_id"], "category": row["category"],
            "amount": format_yuan(int(row["amount"])), "incurred_on": row["incurred_on"], "memo": row["memo"]}


def _late(reads: RentalsReads, kind: str, ref: str, project_id: str, day: str) -> dict[str, str] | None:
    """The distribution the payment or expense just recorded is late for (DESIGN §6 step 1), if any."""
    row = reads.late(kind, ref, project_id, day)
    if row is None:
        return None
    return {"distribution_id": row["distribution_id"], "period_start": row["period_start"],
            "period_end": row["period_end"],
            "counts_in": f"the next distribution of {project_id} declared after it"}


# -- buildings --------------------------------------------------------------------------------------------


@endpoint("/projects/<project_id>/buildings", "POST", 201, schemas.BuildingOut, body=schemas.BuildingIn)
def register_building(body: dict[str, Any], project_id: str) -> Any:
    """Register a building of a project (the project must be registered on the ledger)."""
    principal().require(WRITERS, project=project_id)
    _reads().require_project(project_id)
    command = RegisterBuilding(project_id, _new_id(body.get("building_id"), "building", project_id), body["name"],
                               body["floor_area_m2"])

    def render(result: dict[str, Any]) -> dict[str, Any]:
        row = _reads().building(result["building_id"])
        assert row is not None
        return _building_view(row)

    return _write(handlers.handle_register_building, command, render)


@endpoint("/projects/<project_id>/buildings", "GET", 200, schemas.BuildingsOut)
def list_buildings(project_id: str) -> Any:
    """The buildings of a project."""
    principal().require(READERS, project=project_id)
    reads = _reads()
    reads.require_project(project_id)
    return {"items": [_building_view(row) for row in reads.buildings(project_id)]}


# -- leases -----------------------------------------------------------------------------------------------


@endpoint("/projects/<project_id>/leases", "POST", 201, schemas.LeaseDetailOut, body=schemas.LeaseIn)
def sign_lease(body: dict[str, Any], project_id: str) -> Any:
    """Sign a lease of one building; refused if it overlaps a live lease of that building."""
    principal().require(WRITERS, project=project_id)
    _reads().require_project(project_id)
    tenant = body["tenant"]
    command = SignLease(project_id, _new_id(body.get("lease_id"), "lease", project_id), body["building_id"],
                        tenant["name"], tenant.get("uscc"), _day(body["start_on"]), _day(body["end_on"]),
                        parse_yuan(body["monthly_rent"]), parse_yuan(body["deposit"]), body["billing"])
    return _write(handlers.handle_sign_lease, command, _lease_detail)


@endpoint("/projects/<project_id>/leases", "GET", 200, schemas.LeasesOut)
def list_leases(project_id: str) -> Any:
    """The leases of a project (live and terminated), with their balances."""
    principal().require(READERS, project=project_id)
    reads = _reads()
    reads.require_project(project_id)
    return {"items": [_lease_view(reads, row) for row in reads.leases(project_id)]}


@endpoint("/leases/<lease_id>", "GET", 200, schemas.LeaseDetailOut)
def get_lease(lease_id: str) -> Any:
    """One lease with its invoices, payments (and how each was applied), credit and outstanding."""
    who = principal()
    reads = _reads()
    row = reads.require_lease(lease_id)
    who.require(READERS, project=row["project_id"])
    return _lease_view(reads, row, detail=True)


def _require_lease_writer(lease_id: str) -> None:
    """A lease's writes: 404 for an unknown lease, then the scope check on the lease's project."""
    who = principal()
    who.require(WRITERS, project=_reads().require_lease(lease_id)["project_id"])


@endpoint("/leases/<lease_id>/terminate", "POST", 200, schemas.LeaseDetailOut, body=schemas.TerminationIn)
def terminate_lease(body: dict[str, Any], lease_id: str) -> Any:
    """End a lease early: ``end_on`` is the first day no longer let; the rent stops that day (invoices of
    later periods are voided, the period it ends in is cut to its days)."""
    _require_lease_writer(lease_id)
    command = TerminateLease(lease_id, _day(body["end_on"]), body["reason"])
    return _write(handlers.handle_terminate_lease, command, _lease_detail)


# -- invoices and payments ---------------------------------------------------------------------------------


@endpoint("/leases/<lease_id>/invoices", "POST", 200, schemas.InvoiceRunOut, body=schemas.InvoiceRunIn)
def issue_invoices(body: dict[str, Any], lease_id: str) -> Any:
    """Issue the rent invoices the lease owes up to ``up_to``; those already issued are not issued again."""
    _require_lease_writer(lease_id)

    def render(result: dict[str, Any]) -> dict[str, Any]:
        reads = _reads()
        created = [reads.invoice(invoice_id) for invoice_id in result["created"]]
        return {"lease_id": lease_id, "created": [_invoice_view(row) for row in created if row is not None],
                "existing": result["existing"]}

    return _write(handlers.handle_issue_invoices, IssueInvoices(lease_id, _day(body["up_to"])), render)


@endpoint("/leases/<lease_id>/payments", "POST", 201, schemas.PaymentResultOut, body=schemas.PaymentIn)
def receive_rent(body: dict[str, Any], lease_id: str) -> Any:
    """Record rent received: applied to the named invoice (if any), then oldest open invoice first;
    what is left over is kept as the tenant's credit."""
    _require_lease_writer(lease_id)
    command = ReceiveRent(lease_id, _new_id(body.get("payment_id"), "payment", lease_id), parse_yuan(body["amount"]),
                          _day(body["received_on"]), body.get("invoice_id"))

    def render(result: dict[str, Any]) -> dict[str, Any]:
        reads = _reads()
        row = reads.payment(result["payment_id"])
        assert row is not None
        payment = _payment_view(reads, row)  # how the fold applied it
        return {"payment": payment, "applied": payment["applied"], "credit": payment["credit_after"],
                "late": _late(reads, "payment", row["payment_id"], row["project_id"], row["received_on"])}

    return _write(handlers.handle_receive_rent, command, render)


# -- expenses ---------------------------------------------------------------------------------------------


@endpoint("/projects/<project_id>/expenses", "POST", 201, schemas.ExpenseResultOut, body=schemas.ExpenseIn)
def record_expense(body: dict[str, Any], project_id: str) -> Any:
    """Record an expense of a project (maintenance, insurance, property-tax …)."""
    principal().require(WRITERS, project=project_id)
    _reads().require_project(project_id)
    command = RecordExpense(project_id, _new_id(body.get("expense_id"), "expense", project_id), body["category"],
                            parse_yuan(body["amount"]), _day(body["incurred_on"]), body.get("memo", ""))

    def render(result: dict[str, Any]) -> dict[str, Any]:
        reads = _reads()
        row = reads.expense(result["expense_id"])
        assert row is not None
        return {**_expense_view(row), "late": _late(reads, "expense", row["expense_id"], row["project_id"],
                                                    row["incurred_on"])}

    return _write(handlers.handle_record_expense, command, render)


@endpoint("/projects/<project_id>/expenses", "GET", 200, schemas.ExpensesOut, query=schemas.RangeQuery)
def list_expenses(query: dict[str, Any], project_id: str) -> Any:
    """Expenses of a project incurred between ``from`` and ``to`` (inclusive), with totals per category."""
    principal().require(READERS, project=project_id)
    reads = _reads()
    reads.require_project(project_id)
    start, end = query.get("from_"), query.get("to")
    _check_range(start, end)
    found = reads.expenses(project_id, start, end)
    return {"project_id": project_id, "from_": start, "to": end, "items": [_expense_view(row) for row in found.items],
            "by_category": [{"category": c, "amount": format_yuan(fen)} for c, fen in found.by_category.items()],
            "total": format_yuan(found.total)}


# -- reports ----------------------------------------------------------------------------------------------


def _report_reads(project_id: str) -> RentalsReads:
    principal().require(READERS, project=project_id)
    reads = _reads()
    reads.require_project(project_id)
    return reads


@endpoint("/projects/<project_id>/rent-roll", "GET", 200, schemas.RentRollOut, query=schemas.OnQuery)
def rent_roll(query: dict[str, Any], project_id: str) -> Any:
    """Every building of the project with its tenant, rent and status on ``on``."""
    reads = _report_reads(project_id)
    on = _day(query["on"]) if "on" in query else _today()
    roll = reads.rent_roll(project_id, on)
    return {"project_id": project_id, "on": on.isoformat(),
            "items": [{"building_id": r.building_id, "building_name": r.building_name,
                       "floor_area_m2": _area(r.floor_area_m2), "status": r.status, "lease_id": r.lease_id,
                       "tenant": r.tenant, "monthly_rent": format_yuan(r.monthly_rent)} for r in roll.rows],
            "total_monthly_rent": format_yuan(roll.total_monthly_rent)}


@endpoint("/projects/<project_id>/occupancy", "GET", 200, schemas.OccupancyOut, query=schemas.OnQuery)
def occupancy(query: dict[str, Any], project_id: str) -> Any:
    """Leased and vacant floor area of the project on ``on``."""
    reads = _report_reads(project_id)
    on = _day(query["on"]) if "on" in query else _today()
    result = reads.occupancy(project_id, on)
    return {"project_id": project_id, "on": on.isoformat(), "total_area_m2": _area(result.total_area_m2),
            "leased_area_m2": _area(result.leased_area_m2), "vacant_area_m2": _area(result.vacant_area_m2),
            "rate": _share(result.rate),
            "buildings": [{"building_id": b.building_id, "floor_area_m2": _area(b.floor_area_m2),
                           "status": b.status, "lease_id": b.lease_id} for b in result.buildings]}


@endpoint("/projects/<project_id>/arrears", "GET", 200, schemas.ArrearsOut, query=schemas.AsOfQuery)
def arrears(query: dict[str, Any], project_id: str) -> Any:
    """Rent owed on ``as_of``, aged 0–30, 31–60, 61–90 and 90+ days past due, per lease and in total."""
    reads = _report_reads(project_id)
    as_of = _day(query["as_of"]) if "as_of" in query else _today()
    report = reads.arrears(project_id, as_of)
    return {"project_id": project_id, "as_of": as_of.isoformat(), "buckets": _buckets(report.buckets),
            "total": format_yuan(report.total),
            "items": [{"lease_id": row["lease_id"], "building_id": row["building_id"], "tenant": row["tenant_name"],
                       "buckets": _buckets(owed.buckets), "total": format_yuan(owed.total)}
                      for row, owed in report.owing]}


@endpoint("/projects/<project_id>/income", "GET", 200, schemas.IncomeOut, query=schemas.IncomeQuery)
def income(query: dict[str, Any], project_id: str) -> Any:
    """Rent received per month, quarter or year, for payments received between ``from`` and ``to``."""
    reads = _report_reads(project_id)
    start, end = query.get("from_"), query.get("to")
    _check_range(start, end)
    found = reads.income(project_id, query["granularity"], start, end)
    return {"project_id": project_id, "granularity": query["granularity"], "from_": start, "to": end,
            "items": [{"period": period, "amount": format_yuan(fen)} for period, fen in found.per_period.items()],
            "total": format_yuan(found.total)}
