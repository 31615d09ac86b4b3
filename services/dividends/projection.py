"""The dividends projection: a pure left fold of its own topic and of its inputs.

It keeps projects (to refuse unknown ones), every input record that can move money or
capital with its place in the log (so a declaration can take exactly the records below
the positions it reached, and a rebuild finds the same ones), the versioned policies,
and the distributions with their allocations and payments. For each distribution it also
keeps the late items already taken when it was declared (DESIGN §6 step 1): the
distributions folded before it in the project's stream, one partition, tell which.

The fold is tolerant: it ignores event types it does not use and fields it does not know.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import DIVIDENDS
from services.dividends.inputs import INPUT_TOPICS, INPUT_TYPES, EarlierDistribution, LogRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (project_id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS input_records (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, offset INTEGER NOT NULL, project_id TEXT NOT NULL, type TEXT NOT NULL,
    envelope TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS input_records_by_project ON input_records (project_id);
CREATE TABLE IF NOT EXISTS policies (project_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
    set_by TEXT NOT NULL, set_at TEXT NOT NULL, PRIMARY KEY (project_id, version));
CREATE TABLE IF NOT EXISTS distributions (distribution_id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
    period_start TEXT NOT NULL, period_end TEXT NOT NULL, status TEXT NOT NULL, declared TEXT NOT NULL,
    declared_by TEXT NOT NULL, declared_at TEXT NOT NULL, approved_by TEXT, approved_at TEXT,
    cancel_reason TEXT, cancelled_at TEXT);
CREATE INDEX IF NOT EXISTS distributions_by_project ON distributions (project_id, period_start);
CREATE TABLE IF NOT EXISTS allocations (distribution_id TEXT NOT NULL, investor_id TEXT NOT NULL,
    project_id TEXT NOT NULL, investor_type TEXT NOT NULL, capital_days INTEGER NOT NULL,
    pro_rata INTEGER NOT NULL, guaranteed_floor INTEGER NOT NULL, top_up INTEGER NOT NULL,
    payout INTEGER NOT NULL, payment_id TEXT, paid_amount INTEGER, paid_on TEXT, bank_reference TEXT,
    PRIMARY KEY (distribution_id, investor_id));
CREATE INDEX IF NOT EXISTS allocations_by_investor ON allocations (investor_id);
CREATE INDEX IF NOT EXISTS allocations_by_payment ON allocations (payment_id);
-- The late items taken by the project's non-cancelled distributions when this one was declared
-- (a JSON list of event ids): it did not count them, even those dated in its period.
CREATE TABLE IF NOT EXISTS taken_before (distribution_id TEXT PRIMARY KEY, event_ids TEXT NOT NULL);
"""

#: The DistributionDeclared fields kept as they are for the read side (amounts as yuan strings).
DECLARED_TOTALS = ("gross_rent", "expenses", "management_fee", "tax", "net_profit", "pool", "retained",
                   "total_top_up", "total_payout", "total_capital_days")


def fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    """Apply one record (inside the store's transaction)."""
    kind = envelope["type"]
    data = envelope["data"]
    if topic in INPUT_TOPICS:
        if kind == "ProjectRegistered":
            conn.execute("INSERT OR IGNORE INTO projects VALUES (?, ?)", (data["project_id"], data["name"]))
        elif kind in INPUT_TYPES:
            _remember_input(conn, topic, envelope)
    elif topic == DIVIDENDS:
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(conn, envelope)


def _remember_input(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    # The store wrote this record's (partition, offset) to _events just before calling the fold.
    place = conn.execute("SELECT partition, offset FROM _events WHERE event_id=?",
                         (envelope["event_id"],)).fetchone()
    conn.execute("INSERT OR IGNORE INTO input_records VALUES (?,?,?,?,?,?,?)",
                 (envelope["event_id"], topic, place[0], place[1], envelope["data"]["project_id"],
                  envelope["type"], json.dumps(envelope, ensure_ascii=False)))


def _policy_set(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM policies WHERE project_id=?",
                       (data["project_id"],)).fetchone()
    conn.execute("INSERT INTO policies VALUES (?,?,?,?,?)",
                 (data["project_id"], int(row[0]) + 1, json.dumps(data, ensure_ascii=False), envelope["actor"],
                  envelope["occurred_at"]))


def _declared(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    taken = _late_ids_taken(conn, data["project_id"])
    inserted = conn.execute(
        "INSERT OR IGNORE INTO distributions (distribution_id, project_id, period_start, period_end, "
        "status, declared, declared_by, declared_at) VALUES (?,?,?,?,'declared',?,?,?)",
        (data["distribution_id"], data["project_id"], data["period_start"], data["period_end"],
         json.dumps(data, ensure_ascii=False), envelope["actor"], envelope["occurred_at"])).rowcount
    if inserted and taken:
        conn.execute("INSERT OR IGNORE INTO taken_before VALUES (?, ?)",
                     (data["distribution_id"], json.dumps(sorted(taken))))


def _late_ids_taken(conn: sqlite3.Connection, project_id: str) -> set[str]:
    """The event ids of the late items of the project's non-cancelled distributions."""
    taken: set[str] = set()
    for row in conn.execute("SELECT declared FROM distributions WHERE project_id=? AND status != 'cancelled'",
                            (project_id,)):
        taken.update(str(item["event_id"]) for item in json.loads(row[0]).get("late_items") or ())
    return taken


def _allocated(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO allocations (distribution_id, investor_id, project_id, investor_type, "
                 "capital_days, pro_rata, guaranteed_floor, top_up, payout) VALUES (?,?,?,?,?,?,?,?,?)",
                 (data["distribution_id"], data["investor_id"], data["project_id"], data["investor_type"],
                  parse_yuan(data["capital_days"]), parse_yuan(data["pro_rata"]),
                  parse_yuan(data["guaranteed_floor"]), parse_yuan(data["top_up"]), parse_yuan(data["payout"])))


def _approved(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("UPDATE distributions SET status='approved', approved_by=?, approved_at=? "
                 "WHERE distribution_id=? AND status='declared'",
                 (data["approved_by"], envelope["occurred_at"], data["distribution_id"]))


def _paid(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    if conn.execute("SELECT 1 FROM allocations WHERE payment_id=?", (data["payment_id"],)).fetchone():
        return  # a payment id pays one allocation only; the service never publishes a second use
    conn.execute("UPDATE allocations SET payment_id=?, paid_amount=?, paid_on=?, bank_reference=? "
                 "WHERE distribution_id=? AND investor_id=? AND payment_id IS NULL",
                 (data["payment_id"], parse_yuan(data["amount"]), data["paid_on"], data["bank_reference"],
                  data["distribution_id"], data["investor_id"]))


def _cancelled(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("UPDATE distributions SET status='cancelled', cancel_reason=?, cancelled_at=? "
                 "WHERE distribution_id=? AND status='declared'",
                 (data["reason"], envelope["occurred_at"], data["distribution_id"]))


_HANDLERS = {
    "PolicySet": _policy_set,
    "DistributionDeclared": _declared,
    "DividendAllocated": _allocated,
    "DistributionApproved": _approved,
    "DividendPaid": _paid,
    "DistributionCancelled": _cancelled,
}


# -- reads ---------------------------------------------------------------------------------------------


def input_records(conn: sqlite3.Connection, project_id: str) -> list[LogRecord]:
    """The stored input records of a project, with their place in the log."""
    rows = conn.execute("SELECT topic, partition, offset, envelope FROM input_records WHERE project_id=? "
                        "ORDER BY topic, partition, offset", (project_id,)).fetchall()
    return [LogRecord(row[0], int(row[1]), int(row[2]), json.loads(row[3])) for row in rows]


def earlier_distributions(conn: sqlite3.Connection, project_id: str) -> list[EarlierDistribution]:
    """The project's non-cancelled distributions, as a declaration made now needs them (DESIGN §6 step 1)."""
    rows = conn.execute("SELECT d.declared, t.event_ids FROM distributions d LEFT JOIN taken_before t "
                        "ON t.distribution_id = d.distribution_id WHERE d.project_id=? AND d.status != 'cancelled' "
                        "ORDER BY d.period_start, d.distribution_id", (project_id,)).fetchall()
    return [EarlierDistribution.from_declared(json.loads(row[0]), taken_before=json.loads(row[1] or "[]"))
            for row in rows]


def project_exists(conn: sqlite3.Connection, project_id: str) -> bool:
    return conn.execute("SELECT 1 FROM projects WHERE project_id=?", (project_id,)).fetchone() is not None


def current_policy(conn: sqlite3.Connection, project_id: str) -> tuple[dict[str, Any], int] | None:
    """The project's latest PolicySet data and its version (1, 2, …), or None if it has none."""
    row = conn.execute("SELECT data, version FROM policies WHERE project_id=? ORDER BY version DESC LIMIT 1",
                       (project_id,)).fetchone()
    return (json.loads(row[0]), int(row[1])) if row else None


def policy_version(conn: sqlite3.Connection, project_id: str, version: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT data FROM policies WHERE project_id=? AND version=?", (project_id, version)).fetchone()
    return json.loads(row[0]) if row else None


def distribution_row(conn: sqlite3.Connection, distribution_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM distributions WHERE distribution_id=?",
                                           (distribution_id,)).fetchone()
    return row


def overlapping(conn: sqlite3.Connection, project_id: str, period_start: str, period_end: str) -> str | None:
    """The id of a non-cancelled distribution of the project whose period meets [start, end], if any."""
    # ISO dates compare as strings.
    row = conn.execute("SELECT distribution_id FROM distributions WHERE project_id=? AND status != 'cancelled' "
                       "AND period_start <= ? AND ? <= period_end ORDER BY period_start LIMIT 1",
                       (project_id, period_end, period_start)).fetchone()
    return str(row[0]) if row else None


def allocation_row(conn: sqlite3.Connection, distribution_id: str, investor_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM allocations WHERE distribution_id=? AND investor_id=?",
                                           (distribution_id, investor_id)).fetchone()
    return row


def payment_row(conn: sqlite3.Connection, payment_id: str) -> sqlite3.Row | None:
    """The allocation a payment paid, if the payment id is known."""
    row: sqlite3.Row | None = conn.execute("SELECT * FROM allocations WHERE payment_id=?", (payment_id,)).fetchone()
    return row


def allocation_body(row: sqlite3.Row) -> dict[str, Any]:
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


def distribution_body(conn: sqlite3.Connection, distribution_id: str) -> dict[str, Any] | None:
    """A distribution with its allocations and their payments, or None if unknown."""
    row = distribution_row(conn, distribution_id)
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
        "allocations": [allocation_body(r) for r in rows],
    }


def project_distributions(conn: sqlite3.Connection, project_id: str) -> list[dict[str, Any]]:
    """Every distribution of a project (cancelled ones included), by period."""
    ids = [r[0] for r in conn.execute("SELECT distribution_id FROM distributions WHERE project_id=? "
                                      "ORDER BY period_start, distribution_id", (project_id,))]
    return [body for body in (distribution_body(conn, i) for i in ids) if body is not None]


def _dividend_items(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT a.*, d.period_start, d.period_end, d.status FROM allocations a "
        "JOIN distributions d ON d.distribution_id = a.distribution_id "
        f"WHERE {where} ORDER BY d.period_start, a.project_id, a.distribution_id, a.investor_id", params).fetchall()
    return [{"distribution_id": r["distribution_id"], "project_id": r["project_id"],
             "period_start": r["period_start"], "period_end": r["period_end"], "status": r["status"],
             **allocation_body(r)} for r in rows]


def investor_dividends(conn: sqlite3.Connection, investor_id: str, year: int | None) -> list[dict[str, Any]]:
    """An investor's allocations in every non-cancelled distribution (of ``year``: the period's end year)."""
    where = "a.investor_id = ? AND d.status != 'cancelled'"
    params: tuple[Any, ...] = (investor_id,)
    if year is not None:
        where += " AND substr(d.period_end, 1, 4) = ?"
        params += (f"{year:04d}",)
    return _dividend_items(conn, where, params)


def unpaid_allocations(conn: sqlite3.Connection, project_id: str | None) -> list[dict[str, Any]]:
    """Allocations of approved distributions with a payout that have not been paid yet."""
    where = "d.status = 'approved' AND a.payout > 0 AND a.payment_id IS NULL"
    params: tuple[Any, ...] = ()
    if project_id is not None:
        where += " AND a.project_id = ?"
        params = (project_id,)
    return _dividend_items(conn, where, params)
