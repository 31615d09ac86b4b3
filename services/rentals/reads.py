"""Every query of the rentals projection: what the handlers decide on, what the API renders, the reports.

``RentalsReads`` is what handlers receive. It reads the projection store, and catches up with
the ledger's topic (a project registered a moment ago) or the dividends' (a distribution declared a
moment ago) before a read that must see them as of now. Amounts are ints of fen; the rows are the
projection's own (:mod:`services.rentals.projection`), with an invoice's ``outstanding`` and
``status`` worked out here; the reports run the rules of :mod:`services.rentals.domain`.

The module functions taking a connection (``lease_of``, ``invoice_of``, ``open_invoices``) are the
fold's reads too, inside its own transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import date
from fractions import Fraction
from typing import Any, NamedTuple

from services.contracts.topics import DIVIDENDS, LEDGER_INVESTMENTS
from services.rentals import domain
from services.runtime.handling import Refused
from services.runtime.sqlsum import exact_sum, sum_of
from services.runtime.store import ProjectionStore

#: An invoice row with what is still owed on it and its status (open | paid | void).
_INVOICES = ("SELECT *, CASE WHEN void THEN 0 ELSE amount - paid END AS outstanding, "
             "CASE WHEN void THEN 'void' WHEN amount = paid THEN 'paid' ELSE 'open' END AS status FROM invoices")


class LeaseTotals(NamedTuple):
    invoiced: int  # Σ live invoices
    received: int  # Σ payments
    outstanding: int  # Σ unpaid on live invoices


class Expenses(NamedTuple):
    items: list[sqlite3.Row]
    by_category: dict[str, int]  # sorted by category
    total: int


class RentRoll(NamedTuple):
    rows: list[domain.RentRollRow]
    total_monthly_rent: int


class ArrearsReport(NamedTuple):
    buckets: dict[str, int]  # the project's, per bucket
    total: int
    owing: list[tuple[sqlite3.Row, domain.Arrears]]  # the leases owing something, each with its arrears


class Income(NamedTuple):
    per_period: dict[str, int]
    total: int


class RentalsReads:
    """The reads of the rentals projection (``sync(topics)``: catch up with those topics of the log)."""

    def __init__(self, store: ProjectionStore, sync: Callable[[Sequence[str]], object]) -> None:
        self.store = store
        self.sync = sync

    def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        return self.store.query_one(sql, params)

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        return self.store.query(sql, params)

    def _exists(self, table: str, column: str, value: str) -> bool:
        return self._one(f"SELECT 1 FROM {table} WHERE {column}=?", (value,)) is not None

    # -- what a path names (404) -----------------------------------------------------------------------

    def require_project(self, project_id: str) -> None:
        """404 unless the project is registered on the ledger. On a miss, catch up with the ledger's
        topic once first: a project registered a moment ago may not have reached this projection yet."""
        if self._exists("projects", "project_id", project_id):
            return
        self.sync([LEDGER_INVESTMENTS])
        if not self._exists("projects", "project_id", project_id):
            raise Refused(404, "not_found", f"no project {project_id!r} is registered on the ledger", "project_id")

    def require_lease(self, lease_id: str) -> sqlite3.Row:
        """The lease's row, or 404."""
        row = self._one("SELECT * FROM leases WHERE lease_id=?", (lease_id,))
        if row is None:
            raise Refused(404, "not_found", f"no lease {lease_id!r}", "lease_id")
        return row

    # -- what the handlers decide on -------------------------------------------------------------------

    def building_exists(self, building_id: str) -> bool:
        return self._exists("buildings", "building_id", building_id)

    def project_of_building(self, building_id: str) -> str | None:
        row = self._one("SELECT project_id FROM buildings WHERE building_id=?", (building_id,))
        return None if row is None else str(row["project_id"])

    def lease_exists(self, lease_id: str) -> bool:
        return self._exists("leases", "lease_id", lease_id)

    def payment_exists(self, payment_id: str) -> bool:
        return self._exists("payments", "payment_id", payment_id)

    def expense_exists(self, expense_id: str) -> bool:
        return self._exists("expenses", "expense_id", expense_id)

    def lease(self, lease_id: str) -> domain.Lease:
        """The lease (404 if unknown)."""
        return lease_of(self.require_lease(lease_id))

    def leases_of_building(self, building_id: str) -> list[domain.Lease]:
        return [lease_of(row) for row in self._rows("SELECT * FROM leases WHERE building_id=?", (building_id,))]

    def credit(self, lease_id: str) -> int:
        """The tenant's credit on the lease."""
        return int(self.require_lease(lease_id)["credit"])

    def owed(self, lease_id: str) -> int:
        """What is still unpaid on the lease's live invoices."""
        return self.lease_totals(lease_id).outstanding

    def invoice_ids(self, lease_id: str) -> set[str]:
        """The ids of every invoice issued for the lease (void ones too)."""
        return {row["invoice_id"] for row in self._rows("SELECT invoice_id FROM invoices WHERE lease_id=?",
                                                        (lease_id,))}

    def live_invoices_due_by(self, lease_id: str, day: date) -> int:
        """How many live invoices of the lease are due on or before ``day``."""
        row = self._one("SELECT COUNT(*) FROM invoices WHERE lease_id=? AND void=0 AND due_on<=?",
                        (lease_id, day.isoformat()))
        return int(row[0]) if row else 0

    def invoice_of_lease(self, invoice_id: str, lease_id: str) -> sqlite3.Row | None:
        """The invoice (with ``outstanding`` and ``status``) if it is one of the lease's."""
        return self._one(f"{_INVOICES} WHERE invoice_id=? AND lease_id=?", (invoice_id, lease_id))

    # -- what the API renders --------------------------------------------------------------------------

    def building(self, building_id: str) -> sqlite3.Row | None:
        return self._one("SELECT * FROM buildings WHERE building_id=?", (building_id,))

    def buildings(self, project_id: str) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM buildings WHERE project_id=? ORDER BY building_id", (project_id,))

    def leases(self, project_id: str) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM leases WHERE project_id=? ORDER BY building_id, start_on, lease_id",
                          (project_id,))

    def lease_totals(self, lease_id: str) -> LeaseTotals:
        # Exact sums (runtime.sqlsum): a SQLite SUM overflows past 2^63 fen; a lease may have any number of payments.
        invoiced = self._one(f"SELECT {exact_sum('amount')}, {exact_sum('amount - paid')} FROM invoices "
                             "WHERE lease_id=? AND void=0", (lease_id,))
        received = self._one(f"SELECT {exact_sum('amount')} FROM payments WHERE lease_id=?", (lease_id,))
        assert invoiced is not None and received is not None  # an aggregate always answers one row
        return LeaseTotals(sum_of(invoiced[0], invoiced[1]), sum_of(received[0], received[1]),
                           sum_of(invoiced[2], invoiced[3]))

    def invoice(self, invoice_id: str) -> sqlite3.Row | None:
        return self._one(f"{_INVOICES} WHERE invoice_id=?", (invoice_id,))

    def invoices(self, lease_id: str) -> list[sqlite3.Row]:
        return self._rows(f"{_INVOICES} WHERE lease_id=? ORDER BY due_on, invoice_id", (lease_id,))

    def payment(self, payment_id: str) -> sqlite3.Row | None:
        return self._one("SELECT * FROM payments WHERE payment_id=?", (payment_id,))

    def payments(self, lease_id: str) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM payments WHERE lease_id=? ORDER BY received_on, rowid", (lease_id,))

    def applied(self, payment_id: str) -> list[tuple[str, int]]:
        """How the fold applied a payment: (invoice_id, fen), in the order it met the invoices."""
        return [(row["invoice_id"], int(row["amount"])) for row in self._rows(
            "SELECT invoice_id, amount FROM applications WHERE source='payment' AND ref=? ORDER BY id", (payment_id,))]

    def expense(self, expense_id: str) -> sqlite3.Row | None:
        return self._one("SELECT * FROM expenses WHERE expense_id=?", (expense_id,))

    def expenses(self, project_id: str, start: str | None, end: str | None) -> Expenses:
        """The project's expenses incurred between ``start`` and ``end`` (inclusive, each optional), by date."""
        where, params = _in_range("incurred_on", start, end)
        items = self._rows(f"SELECT * FROM expenses WHERE project_id=?{where} ORDER BY incurred_on, expense_id",
                           (project_id, *params))
        by_category: dict[str, int] = {}
        for row in items:
            by_category[row["category"]] = by_category.get(row["category"], 0) + int(row["amount"])
        return Expenses(items, dict(sorted(by_category.items())), sum(by_category.values(), 0))

    def late(self, kind: str, ref: str, project_id: str, day: str) -> sqlite3.Row | None:
        """The non-cancelled distribution of the project that a payment (``kind`` 'payment') or expense
        ('expense') dated ``day`` is late for, or None (DESIGN §6 step 1).

        Late: recorded at or after the distribution's input position for its partition, and dated inside
        its period. It then counts in the next distribution of the project declared after it. First
        catches up with baotuan.dividends.v1: every distribution declared before the record was written
        is then known, and one declared after it is never what makes it late.
        """
        self.sync([DIVIDENDS])
        place = self._one("SELECT partition, offset FROM recorded_at WHERE kind=? AND ref=?", (kind, ref))
        if place is None:
            return None
        rows = self._rows("SELECT * FROM distributions WHERE project_id=? AND cancelled=0 AND period_start <= ? "
                          "AND ? <= period_end ORDER BY period_start, distribution_id", (project_id, day, day))
        for row in rows:
            position = int(json.loads(row["rentals_positions"]).get(str(place["partition"]), 0))
            if place["offset"] >= position:
                return row
        return None

    # -- reports ---------------------------------------------------------------------------------------

    def _project_state(self, project_id: str) -> tuple[list[domain.Building], list[domain.Lease]]:
        buildings = [domain.Building(row["building_id"], row["project_id"], row["name"],
                                     Fraction(row["floor_area_m2"])) for row in self.buildings(project_id)]
        leases = [lease_of(row) for row in self._rows("SELECT * FROM leases WHERE project_id=?", (project_id,))]
        return buildings, leases

    def rent_roll(self, project_id: str, on: date) -> RentRoll:
        rows = domain.rent_roll(*self._project_state(project_id), on)
        return RentRoll(rows, sum((row.monthly_rent for row in rows), 0))

    def occupancy(self, project_id: str, on: date) -> domain.Occupancy:
        return domain.occupancy(*self._project_state(project_id), on)

    def _lease_arrears(self, lease_id: str, as_of: date) -> domain.Arrears:
        invoices = [invoice_of(row) for row in self._rows("SELECT * FROM invoices WHERE lease_id=? AND void=0",
                                                          (lease_id,))]
        payments = [domain.ReceivedPayment(row["payment_id"], date.fromisoformat(row["received_on"]),
                                           int(row["amount"]), row["invoice_id"])
                    for row in self._rows("SELECT * FROM payments WHERE lease_id=? ORDER BY rowid", (lease_id,))]
        return domain.arrears_on(invoices, payments, as_of)

    def arrears(self, project_id: str, as_of: date) -> ArrearsReport:
        """Rent owed on ``as_of`` per age bucket: the project's, and each lease's that owes something."""
        leases = self._rows("SELECT lease_id, building_id, tenant_name FROM leases WHERE project_id=? "
                            "ORDER BY building_id, lease_id", (project_id,))
        per_lease = [(row, self._lease_arrears(row["lease_id"], as_of)) for row in leases]
        buckets = dict.fromkeys(domain.ARREARS_BUCKETS, 0)
        for _, owed in per_lease:
            for bucket, fen in owed.buckets.items():
                buckets[bucket] += fen
        owing = [(row, owed) for row, owed in per_lease if owed.total > 0]
        return ArrearsReport(buckets, sum(buckets.values(), 0), owing)

    def income(self, project_id: str, granularity: str, start: str | None, end: str | None) -> Income:
        """Rent received per period, for payments received between ``start`` and ``end`` (inclusive)."""
        where, params = _in_range("received_on", start, end)
        rows = self._rows(f"SELECT received_on, amount FROM payments WHERE project_id=?{where}", (project_id, *params))
        per_period = domain.income_by_period([(date.fromisoformat(r["received_on"]), int(r["amount"])) for r in rows],
                                             granularity)
        return Income(per_period, sum(per_period.values(), 0))


def _in_range(column: str, start: str | None, end: str | None) -> tuple[str, tuple[str, ...]]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} <= ?")
        params.append(end)
    return "".join(f" AND {c}" for c in clauses), tuple(params)


# -- rows as domain values (the fold's reads too) -------------------------------------------------------


def lease_of(row: sqlite3.Row) -> domain.Lease:
    """The domain Lease of a ``leases`` row."""
    return domain.Lease(
        lease_id=row["lease_id"], project_id=row["project_id"], building_id=row["building_id"],
        start_on=date.fromisoformat(row["start_on"]), end_on=date.fromisoformat(row["end_on"]),
        monthly_rent=int(row["monthly_rent"]), deposit=int(row["deposit"]), billing=row["billing"],
        terminated_on=date.fromisoformat(row["terminated_on"]) if row["terminated_on"] else None,
        tenant=row["tenant_name"])


def invoice_of(row: sqlite3.Row) -> domain.InvoiceDue:
    """The domain InvoiceDue of an ``invoices`` row (its current period and amount)."""
    return domain.InvoiceDue(row["invoice_id"], date.fromisoformat(row["period_start"]),
                             date.fromisoformat(row["period_end"]), int(row["amount"]),
                             date.fromisoformat(row["due_on"]))


def open_invoices(conn: sqlite3.Connection, lease_id: str) -> list[domain.OpenInvoice]:
    """The lease's issued, not void invoices with what is still unpaid on each (0 when settled)."""
    return [domain.OpenInvoice(row["invoice_id"], date.fromisoformat(row["due_on"]), int(row["outstanding"]))
            for row in conn.execute("SELECT invoice_id, due_on, amount - paid AS outstanding FROM invoices "
                                    "WHERE lease_id=? AND void=0", (lease_id,))]
