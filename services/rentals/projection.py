"""The rentals projection: a pure left fold of baotuan.rentals.v1, ProjectRegistered and the
declared and cancelled distributions of baotuan.dividends.v1.

Every table here is rebuilt by replaying the topics from the beginning; nothing else
writes to it. How money was applied to invoices is recomputed from the events by the
rules of :mod:`services.rentals.domain` (oldest open invoice first, a named invoice
before the others, credit used up by new invoices, invoices voided by termination), so
the same log always gives the same balances. The fold is tolerant: unknown fields are
ignored, and an event about something it does not know (a payment on an unknown lease)
is kept without being applied rather than stopping the consumer.

Where each rent payment and expense sits in the log (partition, offset) is kept, and so are
the distributions with their input position on baotuan.rentals.v1: a payment or expense
recorded at or after the position of a non-cancelled distribution whose period holds its
date is *late* (DESIGN §6 step 1), and the answer that records it says so.

This module is every write to the projection; every query of it is in :mod:`services.rentals.reads`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from services.contracts.money import parse_yuan
from services.contracts.topics import DIVIDENDS, RENTALS
from services.rentals import domain
from services.rentals.reads import invoice_of, lease_of, open_invoices

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    project_id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, town TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS buildings (
    building_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, floor_area_m2 TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS buildings_by_project ON buildings (project_id);
CREATE TABLE IF NOT EXISTS leases (
    lease_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, building_id TEXT NOT NULL,
    tenant_name TEXT NOT NULL, tenant_uscc TEXT, start_on TEXT NOT NULL, end_on TEXT NOT NULL,
    monthly_rent INTEGER NOT NULL, deposit INTEGER NOT NULL, billing TEXT NOT NULL,
    terminated_on TEXT, termination_reason TEXT, credit INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS leases_by_project ON leases (project_id);
CREATE INDEX IF NOT EXISTS leases_by_building ON leases (building_id);
CREATE TABLE IF NOT EXISTS invoices (
    invoice_id TEXT PRIMARY KEY, lease_id TEXT NOT NULL, project_id TEXT NOT NULL,
    period_start TEXT NOT NULL, period_end TEXT NOT NULL, amount INTEGER NOT NULL, due_on TEXT NOT NULL,
    issued_amount INTEGER NOT NULL, paid INTEGER NOT NULL DEFAULT 0, void INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS invoices_by_lease ON invoices (lease_id);
-- A payment's invoice_id: the invoice it names, or else the first invoice the fold applied it to.
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY, lease_id TEXT NOT NULL, project_id TEXT NOT NULL, invoice_id TEXT,
    amount INTEGER NOT NULL, received_on TEXT NOT NULL, credit_after INTEGER);
CREATE INDEX IF NOT EXISTS payments_by_lease ON payments (lease_id);
CREATE INDEX IF NOT EXISTS payments_by_project ON payments (project_id, received_on);
-- How money met invoices, in fold order: source 'payment' (ref = payment_id), 'credit'
-- (credit used by a new invoice, ref = that invoice) or 'refund' (negative: an invoice voided
-- or cut by a termination gives money back to credit, ref = lease_id).
CREATE TABLE IF NOT EXISTS applications (
    id INTEGER PRIMARY KEY AUTOINCREMENT, lease_id TEXT NOT NULL, invoice_id TEXT NOT NULL,
    amount INTEGER NOT NULL, source TEXT NOT NULL, ref TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS applications_by_ref ON applications (ref);
CREATE TABLE IF NOT EXISTS expenses (
    expense_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, category TEXT NOT NULL, amount INTEGER NOT NULL,
    incurred_on TEXT NOT NULL, memo TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS expenses_by_project ON expenses (project_id, incurred_on);
-- Where a RentReceived (kind 'payment', ref = payment_id) or ExpenseRecorded (kind 'expense',
-- ref = expense_id) sits on baotuan.rentals.v1.
CREATE TABLE IF NOT EXISTS recorded_at (
    kind TEXT NOT NULL, ref TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (kind, ref));
-- Distributions declared on baotuan.dividends.v1: their period and their input positions on
-- baotuan.rentals.v1 ({"partition": next_offset}, JSON).
CREATE TABLE IF NOT EXISTS distributions (
    distribution_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, period_start TEXT NOT NULL,
    period_end TEXT NOT NULL, rentals_positions TEXT NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS distributions_by_project ON distributions (project_id, period_start);
"""

Handler = Callable[[sqlite3.Connection, dict[str, Any]], None]


def fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    """Apply one event to the projection (called inside the store's transaction)."""
    handler = _HANDLERS.get(envelope["type"])
    if handler is not None and (topic == DIVIDENDS) == (envelope["type"] in _FROM_DIVIDENDS):
        handler(conn, envelope["data"])
        if topic == RENTALS and envelope["type"] in _PLACED:
            kind, ref = _PLACED[envelope["type"]]
            # The store wrote this record's (partition, offset) to _events just before calling the fold.
            place = conn.execute("SELECT partition, offset FROM _events WHERE event_id=?",
                                 (envelope["event_id"],)).fetchone()
            conn.execute("INSERT OR IGNORE INTO recorded_at VALUES (?,?,?,?)",
                         (kind, envelope["data"][ref], place[0], place[1]))


# -- ledger.investments -------------------------------------------------------------------------------


def _project_registered(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    conn.execute("INSERT OR IGNORE INTO projects VALUES (?,?,?,?)",
                 (data["project_id"], data["name"], data["kind"], data["town"]))


# -- rentals ----------------------------------------------------------------------------------------------


def _building_registered(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    conn.execute("INSERT OR IGNORE INTO buildings VALUES (?,?,?,?)",
                 (data["building_id"], data["project_id"], data["name"], data["floor_area_m2"]))


def _lease_signed(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    tenant = data["tenant"]
    conn.execute(
        "INSERT OR IGNORE INTO leases (lease_id, project_id, building_id, tenant_name, tenant_uscc, start_on, "
        "end_on, monthly_rent, deposit, billing) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (data["lease_id"], data["project_id"], data["building_id"], tenant["name"], tenant.get("uscc"),
         data["start_on"], data["end_on"], parse_yuan(data["monthly_rent"]), parse_yuan(data["deposit"]),
         data["billing"]))


def _rent_invoiced(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    lease = conn.execute("SELECT terminated_on FROM leases WHERE lease_id=?", (data["lease_id"],)).fetchone()
    void = lease is not None and lease["terminated_on"] is not None and data["period_start"] >= lease[
        "terminated_on"]
    amount = parse_yuan(data["amount"])
    inserted = conn.execute(
        "INSERT OR IGNORE INTO invoices (invoice_id, lease_id, project_id, period_start, period_end, amount, "
        "due_on, issued_amount, void) VALUES (?,?,?,?,?,?,?,?,?)",
        (data["invoice_id"], data["lease_id"], data["project_id"], data["period_start"], data["period_end"],
         amount, data["due_on"], amount, int(void))).rowcount
    if inserted and lease is not None:
        _use_credit(conn, data["lease_id"], ref=data["invoice_id"])


def _rent_received(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    lease_id, payment_id = data["lease_id"], data["payment_id"]
    amount = parse_yuan(data["amount"])
    inserted = conn.execute(
        "INSERT OR IGNORE INTO payments (payment_id, lease_id, project_id, invoice_id, amount, received_on) "
        "VALUES (?,?,?,?,?,?)",
        (payment_id, lease_id, data["project_id"], data.get("invoice_id"), amount, data["received_on"])).rowcount
    lease = conn.execute("SELECT credit FROM leases WHERE lease_id=?", (lease_id,)).fetchone()
    if not inserted or lease is None:
        return
    invoices = open_invoices(conn, lease_id)
    named = data.get("invoice_id")
    first = named if any(inv.invoice_id == named and inv.outstanding > 0 for inv in invoices) else None
    result = domain.apply_payment(invoices, int(lease["credit"]), amount, first=first)
    _record(conn, lease_id, result, source="payment", ref=payment_id)
    # The payment's invoice: the one it names, or else the first one it reached (none if all went to credit).
    reached = named or (result.applied[0][0] if result.applied else None)
    conn.execute("UPDATE payments SET invoice_id=?, credit_after=? WHERE payment_id=?",
                 (reached, result.new_credit, payment_id))


# -- dividends --------------------------------------------------------------------------------------------


def _distribution_declared(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    positions = data["input_positions"].get(RENTALS) or {}
    conn.execute("INSERT OR IGNORE INTO distributions (distribution_id, project_id, period_start, period_end, "
                 "rentals_positions) VALUES (?,?,?,?,?)",
                 (data["distribution_id"], data["project_id"], data["period_start"], data["period_end"],
                  json.dumps(positions, sort_keys=True)))


def _distribution_cancelled(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    conn.execute("UPDATE distributions SET cancelled=1 WHERE distribution_id=?", (data["distribution_id"],))


# -- rentals (continued) ----------------------------------------------------------------------------------


def _expense_recorded(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    conn.execute("INSERT OR IGNORE INTO expenses VALUES (?,?,?,?,?,?)",
                 (data["expense_id"], data["project_id"], data["category"], parse_yuan(data["amount"]),
                  data["incurred_on"], data.get("memo") or ""))


def _lease_terminated(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    lease_id = data["lease_id"]
    changed = conn.execute(
        "UPDATE leases SET terminated_on=?, termination_reason=? WHERE lease_id=? AND terminated_on IS NULL",
        (data["end_on"], data["reason"], lease_id)).rowcount
    if not changed:
        return
    row = conn.execute("SELECT * FROM leases WHERE lease_id=?", (lease_id,)).fetchone()
    issued = {r["invoice_id"]: r for r in conn.execute("SELECT * FROM invoices WHERE lease_id=? AND void=0",
                                                        (lease_id,))}
    effect = domain.invoices_after_termination(lease_of(row), [invoice_of(r) for r in issued.values()])
    refunded = 0
    for invoice_id in effect.voided:
        refunded += _give_back(conn, lease_id, invoice_id, int(issued[invoice_id]["paid"]))
        conn.execute("UPDATE invoices SET void=1, paid=0 WHERE invoice_id=?", (invoice_id,))
    for cut in effect.repriced:
        paid = int(issued[cut.invoice_id]["paid"])
        refunded += _give_back(conn, lease_id, cut.invoice_id, max(0, paid - cut.amount))
        conn.execute("UPDATE invoices SET period_end=?, amount=?, paid=? WHERE invoice_id=?",
                     (cut.period_end.isoformat(), cut.amount, min(paid, cut.amount), cut.invoice_id))
    if refunded:
        conn.execute("UPDATE leases SET credit = credit + ? WHERE lease_id=?", (refunded, lease_id))
        _use_credit(conn, lease_id, ref=lease_id)


def _give_back(conn: sqlite3.Connection, lease_id: str, invoice_id: str, fen: int) -> int:
    """Record money taken off an invoice by a termination (it goes back to the tenant's credit)."""
    if fen:
        conn.execute("INSERT INTO applications (lease_id, invoice_id, amount, source, ref) VALUES (?,?,?,?,?)",
                     (lease_id, invoice_id, -fen, "refund", lease_id))
    return fen


# -- helpers ----------------------------------------------------------------------------------------------


def _use_credit(conn: sqlite3.Connection, lease_id: str, *, ref: str) -> None:
    credit = int(conn.execute("SELECT credit FROM leases WHERE lease_id=?", (lease_id,)).fetchone()[0])
    if credit == 0:
        return
    result = domain.apply_credit(open_invoices(conn, lease_id), credit)
    _record(conn, lease_id, result, source="credit", ref=ref)


def _record(conn: sqlite3.Connection, lease_id: str, result: domain.PaymentApplication, *, source: str,
            ref: str) -> None:
    for invoice_id, fen in result.applied:
        conn.execute("UPDATE invoices SET paid = paid + ? WHERE invoice_id=?", (fen, invoice_id))
        conn.execute("INSERT INTO applications (lease_id, invoice_id, amount, source, ref) VALUES (?,?,?,?,?)",
                     (lease_id, invoice_id, fen, source, ref))
    conn.execute("UPDATE leases SET credit=? WHERE lease_id=?", (result.new_credit, lease_id))


_HANDLERS: dict[str, Handler] = {
    "ProjectRegistered": _project_registered,
    "BuildingRegistered": _building_registered,
    "LeaseSigned": _lease_signed,
    "RentInvoiced": _rent_invoiced,
    "RentReceived": _rent_received,
    "ExpenseRecorded": _expense_recorded,
    "LeaseTerminated": _lease_terminated,
    "DistributionDeclared": _distribution_declared,
    "DistributionCancelled": _distribution_cancelled,
}

#: The events read from baotuan.dividends.v1 (and only from there).
_FROM_DIVIDENDS = frozenset({"DistributionDeclared", "DistributionCancelled"})
#: The events whose place in the log is kept: (kind, the data field naming them).
_PLACED = {"RentReceived": ("payment", "payment_id"), "ExpenseRecorded": ("expense", "expense_id")}
