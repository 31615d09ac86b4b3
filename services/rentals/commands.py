"""The rentals service's commands: what a write request asks for, parsed, with the ids it creates
already chosen by the API (``services.runtime.http.fresh_uuid``). Money in fen, dates as dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class RegisterBuilding:
    project_id: str
    building_id: str
    name: str
    floor_area_m2: str  # the canonical wire string ("8400.00")


@dataclass(frozen=True)
class SignLease:
    project_id: str
    lease_id: str
    building_id: str
    tenant_name: str
    tenant_uscc: str | None
    start_on: date
    end_on: date
    monthly_rent: int
    deposit: int
    billing: str


@dataclass(frozen=True)
class TerminateLease:
    lease_id: str
    end_on: date
    reason: str


@dataclass(frozen=True)
class IssueInvoices:
    lease_id: str
    up_to: date


@dataclass(frozen=True)
class ReceiveRent:
    lease_id: str
    payment_id: str
    amount: int
    received_on: date
    invoice_id: str | None  # the invoice the payment names, if any


@dataclass(frozen=True)
class RecordExpense:
    project_id: str
    expense_id: str
    category: str
    amount: int
    incurred_on: date
    memo: str
