"""Every query of the dividends projection: what the handlers decide on and what the API renders.

A :class:`DividendsReads` is what a handler receives. It reads the projection store and, where
a read must see what is already on the log, catches up first (``sync``, the service's): a project
registered on the ledger a moment ago, or the inputs a declaration computes from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_INVESTMENTS
from services.dividends.inputs import INPUT_TOPICS, EarlierDistribution, LogRecord, positions_to_wire
from services.runtime.handling import Refused
from services.runtime.store import ProjectionStore

#: ``sync(topics)``: wait until the projection has applied what the log holds now of ``topics``;
#: returns the positions reached ({topic: {partition: next_offset}}).
Sync = Callable[[Sequence[str]], Mapping[str, Mapping[int, int]]]

#: The DistributionDeclared fields kept as they are for the read side (amounts as yuan strings).
DECLARED_TOTALS = ("gross_rent", "expenses", "management_fee", "tax", "net_profit", "pool", "retained",
                   "total_top_up", "total_payout", "total_capital_days")


def unknown(what: str, field: str, value: str) -> Refused:
    """404 for an unknown thing named in the path, the body or the query."""
    return Refused(404, "not_found", f"no {what} {value!r}", field)


def total(amounts: Iterable[str]) -> str:
    """The sum of yuan strings, as a yuan string (the totals of the query answers)."""
    return format_yuan(sum(parse_yuan(amount) for amount in amounts))


@dataclass(frozen=True)
class DeclarationInputs:
    """What a declaration made now computes from: the project's input records, its distributions
    declared before (DESIGN §6 step 1), and the positions reached in the input topics."""

    records: list[LogRecord]
    earlier: list[EarlierDistribution]
    positions: dict[str, dict[str, int]]  # DistributionDeclared.input_positions


@dataclass(frozen=True)
class AllocationState:
    """What a payment is checked against: the allocation's payout and the payment that paid it, if any."""

    payout: int  # fen
    payment_id: str | None


class DividendsReads:
    """The reads of one request, over the service's projection store."""

    def __init__(self, store: ProjectionStore, sync: Sync) -> None:
        self.store = store
        self.sync = sync

    # -- projects and policies ---------------------------------------------------------------------------

    def require_project(self, project_id: str) -> None:
        """404 unless the project is registered. On a miss, catch up with the ledger's topic once first:
        the ledger may have registered it a moment ago."""
        sql = "SELECT 1 FROM projects WHERE project_id=?"
        if self.store.query_one(sql, (project_id,)) is not None:
            return
        self.sync([LEDGER_INVESTMENTS])
        if self.store.query_one(sql, (project_id,)) is None:
            raise unknown("project", "project_id", project_id)

    def current_policy(self, project_id: str) -> tuple[dict[str, Any], int] | None:
        """The project's latest PolicySet data and its version (1, 2, …), or None if it has none."""
        row = self.store.query_one("SELECT data, version FROM policies WHERE project_id=? "
                                   "ORDER BY version DESC LIMIT 1", (project_id,))
        return (json.loads(row[0]), int(row[1])) if row else None

    def policy_version(self, project_id: str, version: int) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT data FROM policies WHERE project_id=? AND version=?",
                                   (project_id, version))
        return json.loads(row[0]) if row else None

    # -- distributions -------------------------------------------------------------------------------------

    def distribution_exists(self, distribution_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM distributions WHERE distribution_id=?",
                                    (distribution_id,)) is not None

    def distribution(self, distribution_id: str) -> dict[str, Any]:
        """A distribution with its allocations and their payments, as the API shows it; 404 if unknown."""
        with self.store.reading() as conn:
            body = _distribution_body(conn, distribution_id)
        if body is None:
            raise unknown("distribution", "distribution_id", distribution_id)
        return body

    def overlapping(self, project_id: str, period_start: str, period_end: str) -> str | None:
        """The id of a non-cancelled distribution of the project whose period meets [start, end], if any."""
        # ISO dates compare as strings.
        row = self.store.query_one(
            "SELECT distribution_id FROM distributions WHERE project_id=? AND status != 'cancelled' "
            "AND period_start <= ? AND ? <= period_end ORDER BY period_start LIMIT 1",
            (project_id, period_end, period_start))
        return str(row[0]) if row else None

    def declaration_inputs(self, project_id: str) -> DeclarationInputs:
        """DESIGN §6's inputs, over every input record consumed up to the current end of the input topics
        (a rent acknowledged a moment ago is on the log: wait until the projection has it)."""
        positions = positions_to_wire(self.sync(list(INPUT_TOPICS)))
        with self.store.reading() as conn:
            rows = conn.execute("SELECT topic, partition, offset, envelope FROM input_records WHERE project_id=? "
                                "ORDER BY topic, partition, offset", (project_id,)).fetchall()
            # The late items of DESIGN §6 step 1: those of the non-cancelled distributions not taken yet.
            earlier = conn.execute(
                "SELECT d.declared, t.event_ids FROM distributions d LEFT JOIN taken_before t "
                "ON t.distribution_id = d.distribution_id WHERE d.project_id=? AND d.status != 'cancelled' "
                "ORDER BY d.period_start, d.distribution_id", (project_id,)).fetchall()
        return DeclarationInputs(
            records=[LogRecord(row[0], int(row[1]), int(row[2]), json.loads(row[3])) for row in rows],
            earlier=[EarlierDistribution.from_declared(json.loads(row[0]), taken_before=json.loads(row[1] or "[]"))
                     for row in earlier],
            positions=positions)

    def project_distributions(self, project_id: str) -> list[dict[str, Any]]:
        """Every distribution of a project (cancelled ones included), by period."""
        with self.store.reading() as conn:
            ids = [r[0] for r in conn.execute("SELECT distribution_id FROM distributions WHERE project_id=? "
                                              "ORDER BY period_start, distribution_id", (project_id,))]
            return [body for body in (_distribution_body(conn, i) for i in ids) if body is not None]

    # -- allocations and payments --------------------------------------------------------------------------

    def allocation(self, distribution_id: str, investor_id: str) -> AllocationState | None:
        row = self.store.query_one("SELECT payout, payment_id FROM allocations WHERE distribution_id=? "
                                   "AND investor_id=?", (distribution_id, investor_id))
        return AllocationState(int(row[0]), row[1]) if row else None

    def payment(self, payment_id: str) -> dict[str, Any] | None:
        """A recorded payment as the API shows it, or None if the payment id is unknown."""
        row = self.store.query_one("SELECT * FROM allocations WHERE payment_id=?", (payment_id,))
        if row is None:
            return None
        return {"payment_id": row["payment_id"], "distribution_id": row["distribution_id"],
                "project_id": row["project_id"], "investor_id": row["investor_id"],
                "amount": format_yuan(row["paid_amount"]), "paid_on": row["paid_on"],
                "bank_reference": row["bank_reference"]}

    def investor_dividends(self, investor_id: str, year: int | None) -> list[dict[str, Any]]:
        """An investor's allocations in every non-cancelled distribution (of ``year``: the period's end year)."""
        where = "a.investor_id = ? AND d.status != 'cancelled'"
        params: tuple[Any, ...] = (investor_id,)
        if year is not None:
            where += " AND substr(d.period_end, 1, 4) = ?"
            params += (f"{year:04d}",)
        return self._dividend_items(where, params)

    def unpaid_allocations(self, project_id: str | None) -> list[dict[str, Any]]:
        """Allocations of approved distributions with a payout that have not been paid yet."""
        where = "d.status = 'approved' AND a.payout > 0 AND a.payment_id IS NULL"
        params: tuple[Any, ...] = ()
        if project_id is not None:
            where += " AND a.project_id = ?"
            params = (project_id,)
        return self._dividend_items(where, params)

    def _dividend_items(self, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT a.*, d.period_start, d.period_end, d.status FROM allocations a "
            "JOIN distributions d ON d.distribution_id = a.distribution_id "
            f"WHERE {where} ORDER BY d.period_start, a.project_id, a.distribution_id, a.investor_id", params)
        return [{"distribution_id": r["distribution_id"], "project_id": r["project_id"],
                 "period_start": r["period_start"], "period_end": r["period_end"], "status": r["status"],
                 **_allocation_body(r)} for r in rows]


def _allocation_body(row: sqlite3.Row) -> dict[str, Any]:
    """An allocation as the API shows it (amounts as yuan strings)."""
    payment = None
    if row["payment_id"] is not None:
        payment = {"payment_id": row["payment_id"], "amount": format_yuan(row["paid_amount"]),
                   "paid_on": row["paid_on"], "bank_reference": row["bank_reference"]}
    return {
        "investor_id": row["investor_id"],
        "investor_type": row["investor_type"],
        "capital_days": format_yuan(row["capital_days"]),
        "pro_rata": format_yuan(row["pro_rata"]),
        "guaranteed_floor": format_yuan(row["guaranteed_floor"]),
        "top_up": format_yuan(row["top_up"]),
        "payout": format_yuan(row["payout"]),
        "paid": payment is not None,
        "payment": payment,
    }


def _distribution_body(conn: sqlite3.Connection, distribution_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM distributions WHERE distribution_id=?", (distribution_id,)).fetchone()
    if row is None:
        return None
    declared = json.loads(row["declared"])
    rows = conn.execute("SELECT * FROM allocations WHERE distribution_id=? ORDER BY investor_id",
                        (distribution_id,)).fetchall()
    payable = [r for r in rows if r["payout"] > 0]
    return {
        "distribution_id": row["distribution_id"],
        "project_id": row["project_id"],
        "period_start": row["period_start"],
        "period_end": row["period_end"],
        "status": row["status"],
        "policy": declared["policy"],
        **{name: declared[name] for name in DECLARED_TOTALS},
        "input_positions": declared["input_positions"],
        "late_items": declared.get("late_items") or [],
        "declared_by": row["declared_by"],
        "declared_at": row["declared_at"],
        "approved_by": row["approved_by"],
        "approved_at": row["approved_at"],
        "cancel_reason": row["cancel_reason"],
        "cancelled_at": row["cancelled_at"],
        "total_paid": format_yuan(sum(r["paid_amount"] or 0 for r in rows)),
        "fully_paid": row["status"] == "approved" and all(r["payment_id"] is not None for r in payable),
        "allocations": [_allocation_body(r) for r in rows],
    }
