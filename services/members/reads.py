"""Every query of the members projection: what the handlers decide on and what the API renders.

A :class:`MembersReads` is what a handler receives. It reads the projection store and, where a read must see
what is already on the log, catches up first (``sync``, the service's): a collective the ledger registered a
moment ago, or the books a plan computes its distributable amount from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.contracts.money import format_yuan
from services.contracts.topics import LEDGER_ENTRIES
from services.members.split import (
    Change,
    SetHoldings,
    Transfer,
    all_holdings_on,
    format_shares,
    mask_name,
    parse_shares,
)
from services.runtime.handling import Refused
from services.runtime.store import ProjectionStore

#: ``sync(topics)``: wait until the projection has applied what the log holds now of ``topics``.
Sync = Callable[[Sequence[str]], Mapping[str, Mapping[int, int]]]

#: The origin kind of the ledger's year-end close entries (ref: the year).
YEAR_END_CLOSE = "year_end_close"


def unknown(what: str, field: str, value: str) -> Refused:
    """404 for an unknown thing named in the path, the body or the query."""
    return Refused(404, "not_found", f"no {what} {value!r}", field)


def holdings_to_wire(holdings: Mapping[str, Any]) -> dict[str, str]:
    return {kind: format_shares(n) for kind, n in sorted(holdings.items())}


@dataclass(frozen=True)
class Books:
    """What the books say about a year (DESIGN §11): whether it was closed, and the amounts, in fen."""

    closed: bool
    distributable: int  # the credit balance of 322/undistributed on Y-12-31
    net_income: int  # what the year-end close of Y moved into 322/undistributed


@dataclass(frozen=True)
class PlanState:
    collective_id: str
    plan_id: str
    year: int
    status: str  # proposed | approved | paid | cancelled
    proposed: dict[str, Any]
    approved: dict[str, Any] | None


@dataclass(frozen=True)
class AllocationState:
    amount: int  # fen
    payment_id: str | None


class MembersReads:
    """The reads of one request, over the service's projection store."""

    def __init__(self, store: ProjectionStore, sync: Sync) -> None:
        self.store = store
        self.sync = sync

    # -- collectives and charters ------------------------------------------------------------------------------

    def require_collective(self, collective_id: str) -> str:
        """The collective's name; 404 unless the ledger registered it (catching up with the ledger once on a miss)."""
        sql = "SELECT name FROM collectives WHERE collective_id=?"
        row = self.store.query_one(sql, (collective_id,))
        if row is None:
            self.sync([LEDGER_ENTRIES])
            row = self.store.query_one(sql, (collective_id,))
        if row is None:
            raise unknown("collective", "collective_id", collective_id)
        return str(row[0])

    def charter(self, collective_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT data FROM charters WHERE collective_id=?", (collective_id,))
        return json.loads(row[0]) if row else None

    def require_charter(self, collective_id: str, status: int = 404) -> dict[str, Any]:
        found = self.charter(collective_id)
        if found is None:
            raise Refused(status, "no_charter", f"collective {collective_id!r} has no charter yet "
                          "(PUT /v1/collectives/{collective_id}/charter)", "collective_id")
        return found

    def charter_version(self, collective_id: str) -> int:
        row = self.store.query_one("SELECT version FROM charters WHERE collective_id=?", (collective_id,))
        return int(row[0]) if row else 0

    def kinds_held(self, collective_id: str) -> set[str]:
        """Every share kind any change of holdings of the collective ever named."""
        kinds: set[str] = set()
        for row in self.store.query("SELECT change, data FROM holding_changes WHERE collective_id=?",
                                    (collective_id,)):
            data = json.loads(row["data"])
            kinds |= set(data["holdings"]) if row["change"] == "set" else {data["kind"]}
        return kinds

    # -- households --------------------------------------------------------------------------------------------

    def household_exists(self, collective_id: str, household_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM households WHERE collective_id=? AND household_id=?",
                                    (collective_id, household_id)) is not None

    def require_household(self, collective_id: str, household_id: str, field: str = "household_id") -> None:
        if not self.household_exists(collective_id, household_id):
            raise unknown(f"household of {collective_id!r}", field, household_id)

    def member_exists(self, collective_id: str, member_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM members WHERE collective_id=? AND member_id=?",
                                    (collective_id, member_id)) is not None

    def member_count(self, collective_id: str, household_id: str) -> int:
        row = self.store.query_one("SELECT COUNT(*) FROM members WHERE collective_id=? AND household_id=?",
                                   (collective_id, household_id))
        return int(row[0]) if row else 0

    def transfer_exists(self, collective_id: str, transfer_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM holding_changes WHERE collective_id=? AND transfer_id=?",
                                    (collective_id, transfer_id)) is not None

    def changes(self, collective_id: str) -> list[Change]:
        """Every change of holdings of the collective, in log order."""
        rows = self.store.query("SELECT change, data FROM holding_changes WHERE collective_id=? ORDER BY n",
                                (collective_id,))
        return [_change(row["change"], json.loads(row["data"])) for row in rows]

    def holdings_on(self, collective_id: str, day: date) -> dict[str, dict[str, Any]]:
        return all_holdings_on(self.changes(collective_id), day)

    def households(self, collective_id: str, on: date) -> list[dict[str, Any]]:
        """Every household of the collective with its members' count and its holdings on ``on``."""
        held = self.holdings_on(collective_id, on)
        rows = self.store.query("SELECT h.*, (SELECT COUNT(*) FROM members m WHERE m.collective_id=h.collective_id "
                                "AND m.household_id=h.household_id) AS member_count FROM households h "
                                "WHERE h.collective_id=? ORDER BY h.household_id", (collective_id,))
        return [{**_household_row(row), "members": int(row["member_count"]),
                 "holdings": holdings_to_wire(held.get(row["household_id"], {}))} for row in rows]

    def household(self, collective_id: str, household_id: str, on: date) -> dict[str, Any]:
        """A household with its members, holdings on ``on``, history of changes, transfers and certificates."""
        with self.store.reading() as conn:
            row = conn.execute("SELECT * FROM households WHERE collective_id=? AND household_id=?",
                               (collective_id, household_id)).fetchone()
            if row is None:
                raise unknown(f"household of {collective_id!r}", "household_id", household_id)
            members = conn.execute("SELECT * FROM members WHERE collective_id=? AND household_id=? "
                                   "ORDER BY rowid", (collective_id, household_id)).fetchall()
            changes = conn.execute("SELECT * FROM holding_changes WHERE collective_id=? AND (household_id=? OR "
                                   "to_household=?) ORDER BY n", (collective_id, household_id, household_id)
                                   ).fetchall()
            certificates = conn.execute("SELECT * FROM certificates WHERE collective_id=? AND household_id=? "
                                        "ORDER BY n", (collective_id, household_id)).fetchall()
        held = self.holdings_on(collective_id, on).get(household_id, {})
        history = []
        transfers = []
        for change in changes:
            data = json.loads(change["data"])
            if change["change"] == "set":
                history.append({"change": "set", "effective_on": data["effective_on"],
                                "holdings": dict(sorted(data["holdings"].items())),
                                "recorded_at": change["recorded_at"]})
                continue
            item = {k: data[k] for k in ("transfer_id", "from_household", "to_household", "kind", "shares",
                                         "effective_on", "reason")}
            item["note"] = data.get("note") or ""
            transfers.append(item)
            history.append({"change": "transfer_out" if data["from_household"] == household_id else "transfer_in",
                            **item, "recorded_at": change["recorded_at"]})
        current = certificates[-1]["certificate_no"] if certificates else None
        return {**_household_row(row), "on": on.isoformat(), "holdings": holdings_to_wire(held),
                "members": [_member_row(m) for m in members], "history": history, "transfers": transfers,
                "certificates": [{"certificate_no": c["certificate_no"], "holdings": json.loads(c["holdings"]),
                                  "issued_on": c["issued_on"], "replaces": c["replaces"],
                                  "current": c["certificate_no"] == current} for c in certificates]}

    # -- certificates ------------------------------------------------------------------------------------------

    def latest_certificate(self, collective_id: str, household_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT certificate_no, holdings FROM certificates WHERE collective_id=? "
                                   "AND household_id=? ORDER BY n DESC LIMIT 1", (collective_id, household_id))
        if row is None:
            return None
        return {"certificate_no": row["certificate_no"], "holdings": json.loads(row["holdings"])}

    def certificate_count(self, collective_id: str) -> int:
        row = self.store.query_one("SELECT COUNT(*) FROM certificates WHERE collective_id=?", (collective_id,))
        return int(row[0]) if row else 0

    def certificate(self, collective_id: str, certificate_no: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM certificates WHERE collective_id=? AND certificate_no=?",
                                   (collective_id, certificate_no))
        if row is None:
            raise unknown("certificate", "certificate_no", certificate_no)
        return {"collective_id": collective_id, "certificate_no": row["certificate_no"],
                "household_id": row["household_id"], "holdings": json.loads(row["holdings"]),
                "issued_on": row["issued_on"], "replaces": row["replaces"]}

    # -- the books ---------------------------------------------------------------------------------------------

    def books(self, collective_id: str, year: int) -> Books:
        """The year's close and the distributable amount, over the books as the log holds them now."""
        self.sync([LEDGER_ENTRIES])
        end = f"{year:04d}-12-31"
        with self.store.reading() as conn:
            balance = conn.execute("SELECT COALESCE(SUM(undistributed), 0) FROM book_entries WHERE collective_id=? "
                                   "AND date <= ?", (collective_id, end)).fetchone()[0]
            close = conn.execute("SELECT COUNT(*), COALESCE(SUM(undistributed), 0) FROM book_entries "
                                 "WHERE collective_id=? AND origin_kind=? AND origin_ref=? AND reversed_by IS NULL",
                                 (collective_id, YEAR_END_CLOSE, str(year))).fetchone()
        return Books(closed=int(close[0]) > 0, distributable=int(balance), net_income=int(close[1]))

    # -- plans -------------------------------------------------------------------------------------------------

    def plan_exists(self, collective_id: str, plan_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM plans WHERE collective_id=? AND plan_id=?",
                                    (collective_id, plan_id)) is not None

    def any_plan(self, collective_id: str) -> str | None:
        """A non-cancelled plan of the collective, if any (its share kinds are then fixed)."""
        row = self.store.query_one("SELECT plan_id FROM plans WHERE collective_id=? AND status != 'cancelled' "
                                   "ORDER BY year LIMIT 1", (collective_id,))
        return str(row[0]) if row else None

    def live_plan_of_year(self, collective_id: str, year: int) -> str | None:
        row = self.store.query_one("SELECT plan_id FROM plans WHERE collective_id=? AND year=? "
                                   "AND status != 'cancelled'", (collective_id, year))
        return str(row[0]) if row else None

    def fixed_split(self, collective_id: str) -> tuple[str, str] | None:
        """(plan_id, record_date) of the non-cancelled plan with the latest record date: no change of holdings
        may take effect on or before it."""
        best: tuple[str, str] | None = None
        for row in self.store.query("SELECT plan_id, proposed FROM plans WHERE collective_id=? "
                                    "AND status != 'cancelled'", (collective_id,)):
            record_date = str(json.loads(row["proposed"])["record_date"])
            if best is None or record_date > best[1]:
                best = (str(row["plan_id"]), record_date)
        return best

    def plan_state(self, collective_id: str, plan_id: str) -> PlanState:
        with self.store.reading() as conn:
            row = conn.execute("SELECT * FROM plans WHERE collective_id=? AND plan_id=?",
                               (collective_id, plan_id)).fetchone()
            if row is None:
                raise unknown(f"plan of {collective_id!r}", "plan_id", plan_id)
            status = _status(conn, row)
        return PlanState(collective_id, plan_id, int(row["year"]), status, json.loads(row["proposed"]),
                         json.loads(row["approved"]) if row["approved"] else None)

    def allocation(self, collective_id: str, plan_id: str, household_id: str) -> AllocationState | None:
        row = self.store.query_one("SELECT amount, payment_id FROM allocations WHERE collective_id=? AND plan_id=? "
                                   "AND household_id=?", (collective_id, plan_id, household_id))
        return AllocationState(int(row[0]), row[1]) if row else None

    def payment_exists(self, collective_id: str, payment_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM allocations WHERE collective_id=? AND payment_id=?",
                                    (collective_id, payment_id)) is not None

    def payment(self, collective_id: str, payment_id: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM allocations WHERE collective_id=? AND payment_id=?",
                                   (collective_id, payment_id))
        if row is None:
            raise unknown("payment", "payment_id", payment_id)
        return {"payment_id": row["payment_id"], "collective_id": collective_id, "plan_id": row["plan_id"],
                "household_id": row["household_id"], "amount": format_yuan(row["paid_amount"]),
                "paid_on": row["paid_on"], "bank_reference": row["bank_reference"]}

    def plan(self, collective_id: str, plan_id: str) -> dict[str, Any]:
        """A plan with its allocations and payments, as the API shows it; 404 if unknown."""
        with self.store.reading() as conn:
            body = _plan_body(conn, collective_id, plan_id)
        if body is None:
            raise unknown(f"plan of {collective_id!r}", "plan_id", plan_id)
        return body

    def plans(self, collective_id: str) -> list[dict[str, Any]]:
        with self.store.reading() as conn:
            ids = [r[0] for r in conn.execute("SELECT plan_id FROM plans WHERE collective_id=? "
                                              "ORDER BY year, proposed_at, plan_id", (collective_id,))]
            return [body for body in (_plan_body(conn, collective_id, i, allocations=False) for i in ids)
                    if body is not None]

    def notice(self, collective_id: str, plan_id: str) -> dict[str, Any]:
        """The public notice (公示) of an approved or paid plan: figures, vote, each household masked."""
        name = self.require_collective(collective_id)
        body = self.plan(collective_id, plan_id)
        if body["status"] not in ("approved", "paid"):
            raise Refused(409, "not_approved", f"plan {plan_id!r} is {body['status']}; only an approved plan has a "
                          "public notice", "plan_id")
        charter = self.require_charter(collective_id)
        heads = {r["household_id"]: r["head_name"] for r in self.store.query(
            "SELECT household_id, head_name FROM households WHERE collective_id=?", (collective_id,))}
        figures = ("net_income", "brought_forward", "distributable", "reserve_rate", "reserve", "welfare",
                   "members_total", "undistributed")
        return {
            "collective_id": collective_id, "collective_name": name, "plan_id": plan_id, "year": body["year"],
            "status": body["status"], "record_date": body["record_date"],
            "figures": {k: body[k] for k in figures},
            "share_kinds": charter["share_kinds"],
            "vote": body["vote"], "approved_at": body["approved_at"],
            "total_weight": body["total_weight"], "household_count": len(body["allocations"]),
            "households": [{"household_id": a["household_id"],
                            "head_name_masked": mask_name(heads.get(a["household_id"], "")),
                            "holdings": a["holdings"], "weight": a["weight"], "amount": a["amount"]}
                           for a in body["allocations"]],
        }


def _change(kind: str, data: dict[str, Any]) -> Change:
    effective_on = date.fromisoformat(data["effective_on"])
    if kind == "set":
        return SetHoldings(data["household_id"], {k: parse_shares(v) for k, v in data["holdings"].items()},
                           effective_on)
    return Transfer(data["from_household"], data["to_household"], data["kind"], parse_shares(data["shares"]),
                    effective_on)


def _household_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"collective_id": row["collective_id"], "household_id": row["household_id"],
            "head_name": row["head_name"], "address": row["address"], "registered_on": row["registered_on"]}


def _member_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"member_id": row["member_id"], "name": row["name"], "relation": row["relation"],
            "born_on": row["born_on"], "joined_on": row["joined_on"]}


def _status(conn: sqlite3.Connection, row: sqlite3.Row) -> str:
    """proposed | approved | paid (approved, and every household with an amount paid) | cancelled."""
    if row["status"] != "approved":
        return str(row["status"])
    unpaid = conn.execute("SELECT COUNT(*) FROM allocations WHERE collective_id=? AND plan_id=? AND amount > 0 "
                          "AND payment_id IS NULL", (row["collective_id"], row["plan_id"])).fetchone()[0]
    return "paid" if int(unpaid) == 0 else "approved"


def _plan_body(conn: sqlite3.Connection, collective_id: str, plan_id: str, *,
               allocations: bool = True) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM plans WHERE collective_id=? AND plan_id=?", (collective_id, plan_id)).fetchone()
    if row is None:
        return None
    proposed = json.loads(row["proposed"])
    approved = json.loads(row["approved"]) if row["approved"] else None
    rows = conn.execute("SELECT a.*, h.head_name FROM allocations a LEFT JOIN households h ON "
                        "h.collective_id=a.collective_id AND h.household_id=a.household_id "
                        "WHERE a.collective_id=? AND a.plan_id=? ORDER BY a.household_id",
                        (collective_id, plan_id)).fetchall()
    body: dict[str, Any] = {
        **{k: proposed[k] for k in ("collective_id", "plan_id", "year", "net_income", "brought_forward",
                                    "distributable", "reserve_rate", "reserve", "welfare", "members_total",
                                    "undistributed", "record_date", "total_weight", "households", "proposed_by")},
        "status": _status(conn, row),
        "proposed_at": row["proposed_at"],
        "vote": approved["vote"] if approved else None,
        "approved_by": approved["approved_by"] if approved else None,
        "approved_at": row["approved_at"],
        "cancel_reason": row["cancel_reason"],
        "cancelled_at": row["cancelled_at"],
        "total_paid": format_yuan(sum(r["paid_amount"] or 0 for r in rows)),
        "unpaid_households": sum(1 for r in rows if r["amount"] > 0 and r["payment_id"] is None),
    }
    if allocations:
        body["allocations"] = [_allocation_body(r) for r in rows]
    return body


def _allocation_body(row: sqlite3.Row) -> dict[str, Any]:
    payment = None
    if row["payment_id"] is not None:
        payment = {"payment_id": row["payment_id"], "amount": format_yuan(row["paid_amount"]),
                   "paid_on": row["paid_on"], "bank_reference": row["bank_reference"]}
    return {"household_id": row["household_id"], "head_name": row["head_name"] or "",
            "holdings": json.loads(row["holdings"]), "weight": row["weight"], "amount": format_yuan(row["amount"]),
            "paid": payment is not None, "payment": payment}
