"""The rentals service's decisions: ``handle_x(command, reads) -> Decision`` (services.runtime.handling).

Every refusal of a write is here, as a ``Refused`` with the status, code and field the API answers;
the rules are those of :mod:`services.rentals.domain`. A handler reads the projection through
:class:`services.rentals.reads.RentalsReads` and returns the events to publish; it never imports
Flask, SQL or Kafka. How a payment meets the invoices is decided by the fold alone (the event says
only which invoice the payment names), and the API renders what the fold recorded.
"""

from __future__ import annotations

from typing import Any

from services.contracts.envelope import derived_event_id
from services.contracts.money import MAX_YUAN, fits_wire, format_yuan
from services.rentals import domain
from services.rentals.commands import (
    IssueInvoices,
    ReceiveRent,
    RecordExpense,
    RegisterBuilding,
    SignLease,
    TerminateLease,
)
from services.rentals.reads import RentalsReads
from services.runtime.handling import Decision, Refused
from services.runtime.service import MAX_EVENTS_PER_REQUEST, NewEvent

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
}


def _refusal(exc: domain.RentalsError) -> Refused:
    status, code = _REFUSALS.get(type(exc), (422, "rule_violation"))
    return Refused(status, code, exc.message, exc.field)


def _already_exists(what: str, value: str) -> Refused:
    return Refused(409, "already_exists", f"{what} {value!r} already exists", f"{what}_id")


def _event(event_type: str, project_id: str, data: dict[str, Any], result: dict[str, Any]) -> Decision:
    return Decision([NewEvent(event_type, project_id, data)], result)


def handle_register_building(command: RegisterBuilding, reads: RentalsReads) -> Decision:
    if reads.building_exists(command.building_id):
        raise _already_exists("building", command.building_id)
    data = {"building_id": command.building_id, "project_id": command.project_id, "name": command.name,
            "floor_area_m2": command.floor_area_m2}
    return _event("BuildingRegistered", command.project_id, data, {"building_id": command.building_id})


def handle_sign_lease(command: SignLease, reads: RentalsReads) -> Decision:
    """A lease of one building of the project; refused if it overlaps a live lease of that building."""
    if reads.project_of_building(command.building_id) != command.project_id:
        raise Refused(422, "unknown_reference",
                      f"{command.building_id!r} is not a building of project {command.project_id!r}", "building_id")
    if reads.lease_exists(command.lease_id):
        raise _already_exists("lease", command.lease_id)
    lease = domain.Lease(lease_id=command.lease_id, project_id=command.project_id, building_id=command.building_id,
                         start_on=command.start_on, end_on=command.end_on, monthly_rent=command.monthly_rent,
                         deposit=command.deposit, billing=command.billing, tenant=command.tenant_name)
    try:
        domain.check_new_lease(lease, reads.leases_of_building(command.building_id))
    except domain.RentalsError as exc:
        raise _refusal(exc) from exc
    tenant = {"name": command.tenant_name}
    if command.tenant_uscc:
        tenant["uscc"] = command.tenant_uscc
    data = {"lease_id": command.lease_id, "project_id": command.project_id, "building_id": command.building_id,
            "tenant": tenant, "start_on": command.start_on.isoformat(), "end_on": command.end_on.isoformat(),
            "monthly_rent": format_yuan(command.monthly_rent), "deposit": format_yuan(command.deposit),
            "billing": command.billing}
    return _event("LeaseSigned", command.project_id, data, {"lease_id": command.lease_id})


def handle_terminate_lease(command: TerminateLease, reads: RentalsReads) -> Decision:
    lease = reads.lease(command.lease_id)
    try:
        domain.check_termination(lease, command.end_on)
    except domain.RentalsError as exc:
        raise _refusal(exc) from exc
    data = {"lease_id": lease.lease_id, "project_id": lease.project_id, "end_on": command.end_on.isoformat(),
            "reason": command.reason}
    return _event("LeaseTerminated", lease.project_id, data, {"lease_id": lease.lease_id})


def handle_issue_invoices(command: IssueInvoices, reads: RentalsReads) -> Decision:
    """The invoices the lease owes up to ``up_to`` that were not issued before (one RentInvoiced each)."""
    lease = reads.lease(command.lease_id)
    up_to = command.up_to
    # At most MAX_EVENTS_PER_REQUEST invoices (DESIGN §9), counted before any invoice is priced: the
    # periods up to ``up_to`` less those already issued.
    owed = domain.invoice_count(lease, up_to)
    if owed > MAX_EVENTS_PER_REQUEST:
        new_count = owed - reads.live_invoices_due_by(lease.lease_id, up_to)
        if new_count > MAX_EVENTS_PER_REQUEST:
            raise Refused(422, "too_many_events", f"issuing the invoices up to {up_to.isoformat()} would publish "
                          f"{new_count:,} events; one request may publish at most {MAX_EVENTS_PER_REQUEST:,}: issue "
                          "them in steps, with an earlier up_to", "up_to")
    schedule = domain.invoice_schedule(lease, up_to)
    issued = reads.invoice_ids(lease.lease_id)
    new = [due for due in schedule if due.invoice_id not in issued]
    result = {"lease_id": lease.lease_id, "created": [due.invoice_id for due in new],
              "existing": len(schedule) - len(new)}
    too_big = next((due for due in new if not fits_wire(due.amount)), None)
    if too_big is not None:  # only a lease signed before the bound (domain.InvoiceTooLarge) can owe one
        raise Refused(422, "amount_out_of_range", f"invoice {too_big.invoice_id!r} would be "
                      f"{format_yuan(too_big.amount)}, more than the largest amount {MAX_YUAN}", "lease_id")
    events = [NewEvent("RentInvoiced", lease.project_id, {
        "invoice_id": due.invoice_id, "lease_id": lease.lease_id, "project_id": lease.project_id,
        "period_start": due.period_start.isoformat(), "period_end": due.period_end.isoformat(),
        "amount": format_yuan(due.amount), "due_on": due.due_on.isoformat()},
        # One event id per invoice, ever: the log itself cannot hold an invoice twice.
        event_id=derived_event_id(f"rentals:invoice:{due.invoice_id}")) for due in new]
    return Decision(events, result)


def handle_receive_rent(command: ReceiveRent, reads: RentalsReads) -> Decision:
    """Rent received. The fold applies it (the named invoice first, then oldest first, the rest to credit);
    here only what refuses it: a named invoice that is not the lease's or has nothing left to pay, and a
    credit the payment would take past the largest amount."""
    lease = reads.lease(command.lease_id)
    if reads.payment_exists(command.payment_id):
        raise _already_exists("payment", command.payment_id)
    named = command.invoice_id
    if named is not None:
        invoice = reads.invoice_of_lease(named, lease.lease_id)
        if invoice is None:
            raise Refused(422, "unknown_invoice", f"{named!r} is not an invoice of lease {lease.lease_id!r}",
                          "invoice_id")
        if invoice["status"] == "void":
            raise Refused(422, "invoice_not_open", f"invoice {named!r} was voided by the lease's termination",
                          "invoice_id")
        if invoice["status"] == "paid":
            raise Refused(422, "invoice_not_open", f"invoice {named!r} has nothing left to pay", "invoice_id")
    credit = domain.credit_after_payment(reads.owed(lease.lease_id), reads.credit(lease.lease_id), command.amount)
    if not fits_wire(credit):
        raise Refused(422, "amount_out_of_range", f"the tenant's credit would become {format_yuan(credit)}, more "
                      f"than the largest amount {MAX_YUAN}", "amount")
    data = {"payment_id": command.payment_id, "lease_id": lease.lease_id, "project_id": lease.project_id,
            "invoice_id": named, "amount": format_yuan(command.amount),
            "received_on": command.received_on.isoformat()}
    return _event("RentReceived", lease.project_id, data, {"payment_id": command.payment_id})


def handle_record_expense(command: RecordExpense, reads: RentalsReads) -> Decision:
    if reads.expense_exists(command.expense_id):
        raise _already_exists("expense", command.expense_id)
    data = {"expense_id": command.expense_id, "project_id": command.project_id, "category": command.category,
            "amount": format_yuan(command.amount), "incurred_on": command.incurred_on.isoformat(),
            "memo": command.memo}
    return _event("ExpenseRecorded", command.project_id, data, {"expense_id": command.expense_id})
