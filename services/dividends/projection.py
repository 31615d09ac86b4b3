"""The dividends projection: a pure left fold of its own topic and of its inputs.

It keeps projects (to refuse unknown ones), every input record that can move money or
capital with its place in the log (so a declaration can take exactly the records below
the positions it reached, and a rebuild finds the same ones), the versioned policies,
and the distributions with their allocations and payments. For each distribution it also
keeps the late items already taken when it was declared (DESIGN §6 step 1): the
distributions folded before it in the project's stream, one partition, tell which.

The fold is tolerant: it ignores event types it does not use and fields it does not know.
Every query of these tables is in :mod:`services.dividends.reads`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from services.contracts.money import parse_yuan
from services.contracts.topics import DIVIDENDS
from services.dividends.inputs import INPUT_TOPICS, INPUT_TYPES
from services.runtime.store import place_of

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
    partition, offset = place_of(conn, envelope["event_id"])
    conn.execute("INSERT OR IGNORE INTO input_records VALUES (?,?,?,?,?,?,?)",
                 (envelope["event_id"], topic, partition, offset, envelope["data"]["project_id"],
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
