"""The members projection: a pure left fold of baotuan.members.v1 and of the villages' books it reads.

From baotuan.ledger.entries.v1 it keeps the collectives (their names, for the notice) and, per entry, only what
the distributable amount of DESIGN §11 needs: the entry's date, its movement of 322/undistributed (credit −
debit, in fen), its origin, and whether it was reversed. A reversal is kept as an entry of its own, dated the
reversal's date, with the opposite movement.

From its own topic: the charter, the households and their members, every change of holdings in log order (a
HoldingsSet or a SharesTransferred, with the row number as the log order), the certificates, and the plans
with their allocations and payments.

The fold is tolerant: it ignores event types it does not use and fields it does not know. Every query of these
tables is in :mod:`services.members.reads`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from services.contracts.money import parse_yuan
from services.contracts.topics import LEDGER_ENTRIES, MEMBERS

#: The account whose balance is the distributable amount (DESIGN §11), and its sub-accounts.
UNDISTRIBUTED = "322/undistributed"

SCHEMA = """
CREATE TABLE IF NOT EXISTS collectives (collective_id TEXT PRIMARY KEY, name TEXT NOT NULL, town TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS book_entries (entry_id TEXT PRIMARY KEY, collective_id TEXT NOT NULL, date TEXT NOT NULL,
    undistributed INTEGER NOT NULL, origin_kind TEXT NOT NULL, origin_ref TEXT, reverses TEXT, reversed_by TEXT);
CREATE INDEX IF NOT EXISTS book_entries_by_collective ON book_entries (collective_id, date);
CREATE TABLE IF NOT EXISTS charters (collective_id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL,
    set_by TEXT NOT NULL, set_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS households (collective_id TEXT NOT NULL, household_id TEXT NOT NULL,
    head_name TEXT NOT NULL, address TEXT NOT NULL, registered_on TEXT NOT NULL,
    PRIMARY KEY (collective_id, household_id));
CREATE TABLE IF NOT EXISTS members (collective_id TEXT NOT NULL, member_id TEXT NOT NULL, household_id TEXT NOT NULL,
    name TEXT NOT NULL, relation TEXT NOT NULL, born_on TEXT, joined_on TEXT NOT NULL,
    PRIMARY KEY (collective_id, member_id));
CREATE INDEX IF NOT EXISTS members_by_household ON members (collective_id, household_id);
-- Every change of holdings, in log order (n): kind 'set' (HoldingsSet of household_id) or 'transfer'.
CREATE TABLE IF NOT EXISTS holding_changes (n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
    collective_id TEXT NOT NULL, change TEXT NOT NULL, household_id TEXT NOT NULL, to_household TEXT,
    transfer_id TEXT, effective_on TEXT NOT NULL, data TEXT NOT NULL, recorded_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS holding_changes_by_collective ON holding_changes (collective_id, n);
CREATE TABLE IF NOT EXISTS certificates (collective_id TEXT NOT NULL, certificate_no TEXT NOT NULL,
    household_id TEXT NOT NULL, holdings TEXT NOT NULL, issued_on TEXT NOT NULL, replaces TEXT,
    n INTEGER NOT NULL, PRIMARY KEY (collective_id, certificate_no));
CREATE INDEX IF NOT EXISTS certificates_by_household ON certificates (collective_id, household_id, n);
CREATE TABLE IF NOT EXISTS plans (collective_id TEXT NOT NULL, plan_id TEXT NOT NULL, year INTEGER NOT NULL,
    status TEXT NOT NULL, proposed TEXT NOT NULL, proposed_by TEXT NOT NULL, proposed_at TEXT NOT NULL,
    approved TEXT, approved_at TEXT, cancel_reason TEXT, cancelled_at TEXT,
    PRIMARY KEY (collective_id, plan_id));
CREATE TABLE IF NOT EXISTS allocations (collective_id TEXT NOT NULL, plan_id TEXT NOT NULL,
    household_id TEXT NOT NULL, holdings TEXT NOT NULL, weight TEXT NOT NULL, amount INTEGER NOT NULL,
    payment_id TEXT, paid_amount INTEGER, paid_on TEXT, bank_reference TEXT,
    PRIMARY KEY (collective_id, plan_id, household_id));
CREATE INDEX IF NOT EXISTS allocations_by_payment ON allocations (collective_id, payment_id);
"""


def fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    """Apply one record (inside the store's transaction)."""
    handlers = _LEDGER if topic == LEDGER_ENTRIES else _OWN if topic == MEMBERS else None
    if handlers is None:
        return
    handler = handlers.get(envelope["type"])
    if handler is not None:
        handler(conn, envelope)


# -- the villages' books -----------------------------------------------------------------------------------------


def _collective_registered(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO collectives VALUES (?, ?, ?)",
                 (data["collective_id"], data["name"], data.get("town") or ""))


def _undistributed_movement(lines: list[dict[str, Any]]) -> int:
    """Credit − debit of 322/undistributed (and its sub-accounts) in an entry's lines, in fen."""
    moved = 0
    for line in lines:
        account = str(line.get("account", ""))
        if account != UNDISTRIBUTED and not account.startswith(UNDISTRIBUTED + "/"):
            continue
        if line.get("credit") is not None:
            moved += parse_yuan(line["credit"])
        if line.get("debit") is not None:
            moved -= parse_yuan(line["debit"])
    return moved


def _entry_posted(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    origin = data.get("origin") or {}
    conn.execute("INSERT OR IGNORE INTO book_entries (entry_id, collective_id, date, undistributed, origin_kind, "
                 "origin_ref) VALUES (?,?,?,?,?,?)",
                 (data["entry_id"], data["collective_id"], data["date"], _undistributed_movement(data["lines"]),
                  str(origin.get("kind") or "manual"), origin.get("ref")))


def _entry_reversed(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    original = conn.execute("SELECT undistributed FROM book_entries WHERE entry_id=?", (data["reverses"],)).fetchone()
    moved = -int(original[0]) if original is not None else 0
    inserted = conn.execute(
        "INSERT OR IGNORE INTO book_entries (entry_id, collective_id, date, undistributed, origin_kind, origin_ref, "
        "reverses) VALUES (?,?,?,?,'reversal',NULL,?)",
        (data["entry_id"], data["collective_id"], data["date"], moved, data["reverses"])).rowcount
    if inserted:
        conn.execute("UPDATE book_entries SET reversed_by=? WHERE entry_id=? AND reversed_by IS NULL",
                     (data["entry_id"], data["reverses"]))


# -- the register --------------------------------------------------------------------------------------------------


def _charter_set(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    row = conn.execute("SELECT version FROM charters WHERE collective_id=?", (data["collective_id"],)).fetchone()
    version = int(row[0]) + 1 if row else 1
    conn.execute("INSERT OR REPLACE INTO charters VALUES (?,?,?,?,?)",
                 (data["collective_id"], version, json.dumps(data, ensure_ascii=False), envelope["actor"],
                  envelope["occurred_at"]))


def _household_registered(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO households VALUES (?,?,?,?,?)",
                 (data["collective_id"], data["household_id"], data["head_name"], data.get("address") or "",
                  data["registered_on"]))


def _member_registered(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO members VALUES (?,?,?,?,?,?,?)",
                 (data["collective_id"], data["member_id"], data["household_id"], data["name"],
                  data.get("relation") or "", data.get("born_on"), data["joined_on"]))


def _holdings_set(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO holding_changes (event_id, collective_id, change, household_id, effective_on, "
                 "data, recorded_at) VALUES (?,?,'set',?,?,?,?)",
                 (envelope["event_id"], data["collective_id"], data["household_id"], data["effective_on"],
                  json.dumps(data, ensure_ascii=False), envelope["occurred_at"]))


def _shares_transferred(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO holding_changes (event_id, collective_id, change, household_id, to_household, "
                 "transfer_id, effective_on, data, recorded_at) VALUES (?,?,'transfer',?,?,?,?,?,?)",
                 (envelope["event_id"], data["collective_id"], data["from_household"], data["to_household"],
                  data["transfer_id"], data["effective_on"], json.dumps(data, ensure_ascii=False),
                  envelope["occurred_at"]))


def _certificate_issued(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    row = conn.execute("SELECT COUNT(*) FROM certificates WHERE collective_id=?", (data["collective_id"],)).fetchone()
    conn.execute("INSERT OR IGNORE INTO certificates VALUES (?,?,?,?,?,?,?)",
                 (data["collective_id"], data["certificate_no"], data["household_id"],
                  json.dumps(data["holdings"], ensure_ascii=False, sort_keys=True), data["issued_on"],
                  data.get("replaces"), int(row[0]) + 1))


# -- plans ---------------------------------------------------------------------------------------------------------


def _plan_proposed(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO plans (collective_id, plan_id, year, status, proposed, proposed_by, "
                 "proposed_at) VALUES (?,?,?,'proposed',?,?,?)",
                 (data["collective_id"], data["plan_id"], data["year"], json.dumps(data, ensure_ascii=False),
                  data.get("proposed_by") or envelope["actor"], envelope["occurred_at"]))


def _household_allocated(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("INSERT OR IGNORE INTO allocations (collective_id, plan_id, household_id, holdings, weight, amount) "
                 "VALUES (?,?,?,?,?,?)",
                 (data["collective_id"], data["plan_id"], data["household_id"],
                  json.dumps(data["holdings"], ensure_ascii=False, sort_keys=True), data["weight"],
                  parse_yuan(data["amount"])))


def _plan_approved(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("UPDATE plans SET status='approved', approved=?, approved_at=? WHERE collective_id=? AND plan_id=? "
                 "AND status='proposed'",
                 (json.dumps(data, ensure_ascii=False), envelope["occurred_at"], data["collective_id"],
                  data["plan_id"]))


def _dividend_paid(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    if conn.execute("SELECT 1 FROM allocations WHERE collective_id=? AND payment_id=?",
                    (data["collective_id"], data["payment_id"])).fetchone():
        return  # a payment id pays one allocation only; the service never publishes a second use
    conn.execute("UPDATE allocations SET payment_id=?, paid_amount=?, paid_on=?, bank_reference=? "
                 "WHERE collective_id=? AND plan_id=? AND household_id=? AND payment_id IS NULL",
                 (data["payment_id"], parse_yuan(data["amount"]), data["paid_on"], data["bank_reference"],
                  data["collective_id"], data["plan_id"], data["household_id"]))


def _plan_cancelled(conn: sqlite3.Connection, envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    conn.execute("UPDATE plans SET status='cancelled', cancel_reason=?, cancelled_at=? WHERE collective_id=? "
                 "AND plan_id=? AND status='proposed'",
                 (data["reason"], envelope["occurred_at"], data["collective_id"], data["plan_id"]))


_LEDGER = {
    "CollectiveRegistered": _collective_registered,
    "EntryPosted": _entry_posted,
    "EntryReversed": _entry_reversed,
}

_OWN = {
    "CharterSet": _charter_set,
    "HouseholdRegistered": _household_registered,
    "MemberRegistered": _member_registered,
    "HoldingsSet": _holdings_set,
    "SharesTransferred": _shares_transferred,
    "CertificateIssued": _certificate_issued,
    "PlanProposed": _plan_proposed,
    "HouseholdAllocated": _household_allocated,
    "PlanApproved": _plan_approved,
    "HouseholdDividendPaid": _dividend_paid,
    "PlanCancelled": _plan_cancelled,
}
