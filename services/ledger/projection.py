"""The ledger's projection: its SQLite schema and a pure left fold of its topics, the dividends and the members topics.

``fold(conn, topic, envelope)`` is called by the runtime inside one SQLite transaction per
record (with the offset and the event_id dedupe). Delete the file, restart, and the same
records give back the same tables: nothing here reads a clock or anything but the event.

Entries the ledger posts by itself (DESIGN §7, and §11 for a plan's appropriations and a household's
dividend) are *owed* from the fold with
``store.emit`` under a deterministic event id; the service's reactor publishes them on the
entries topic, and folding them books them like any other entry. A replay finds them
already in the log and never owes them twice. Their ids come from ``domain.automatic_entry_ids``.

Every write to the projection is here; every query of it is in ``reads.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.ledger.domain import (
    ENTRY_QUALIFIER,
    YEAR_END_CLOSE,
    Line,
    automatic_entry_ids,
    automatic_entry_lines,
    line_from_wire,
    line_to_wire,
    local_date,
    member_entry_lines,
    posting_date,
    results_posting_date,
    reversing_lines,
    touches_results,
)
from services.ledger.vouchers import number_vouchers
from services.runtime.store import emit

SCHEMA = """
CREATE TABLE IF NOT EXISTS collectives (collective_id TEXT PRIMARY KEY, name TEXT NOT NULL, town TEXT NOT NULL,
    uscc TEXT, alliances TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS investors (investor_id TEXT PRIMARY KEY, name TEXT NOT NULL,
    investor_type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (project_id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
    town TEXT NOT NULL, operator TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS investments (investment_id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
    investor_id TEXT NOT NULL, investor_type TEXT NOT NULL, kind TEXT NOT NULL, area_mu TEXT,
    price_per_mu TEXT, amount INTEGER NOT NULL, effective_on TEXT NOT NULL, parcel TEXT,
    event_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS investments_by_project ON investments (project_id, investor_id);
CREATE TABLE IF NOT EXISTS withdrawals (withdrawal_id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
    investor_id TEXT NOT NULL, amount INTEGER NOT NULL, effective_on TEXT NOT NULL, reason TEXT NOT NULL,
    event_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS withdrawals_by_project ON withdrawals (project_id, investor_id);
CREATE TABLE IF NOT EXISTS entries (entry_id TEXT PRIMARY KEY, collective_id TEXT NOT NULL, date TEXT NOT NULL,
    memo TEXT NOT NULL, origin_kind TEXT NOT NULL, origin_ref TEXT, idempotency_key TEXT, reverses TEXT,
    reversed_by TEXT, event_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_collective ON entries (collective_id, date);
CREATE TABLE IF NOT EXISTS entry_lines (entry_id TEXT NOT NULL, line_no INTEGER NOT NULL,
    collective_id TEXT NOT NULL, date TEXT NOT NULL, account TEXT NOT NULL, debit INTEGER NOT NULL,
    credit INTEGER NOT NULL, PRIMARY KEY (entry_id, line_no));
CREATE INDEX IF NOT EXISTS lines_by_collective ON entry_lines (collective_id, date);
CREATE TABLE IF NOT EXISTS vouchers (entry_id TEXT PRIMARY KEY, collective_id TEXT NOT NULL, period TEXT NOT NULL,
    sequence INTEGER NOT NULL, voucher_no TEXT NOT NULL, attachments INTEGER,
    UNIQUE (collective_id, period, sequence));
CREATE UNIQUE INDEX IF NOT EXISTS vouchers_by_number ON vouchers (collective_id, voucher_no);
CREATE TABLE IF NOT EXISTS closing_entries (entry_id TEXT PRIMARY KEY, collective_id TEXT NOT NULL,
    year INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS closed_periods (collective_id TEXT NOT NULL, period TEXT NOT NULL,
    PRIMARY KEY (collective_id, period));
CREATE TABLE IF NOT EXISTS distributions (distribution_id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
    period_start TEXT, period_end TEXT, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS allocations (distribution_id TEXT NOT NULL, investor_id TEXT NOT NULL,
    investor_type TEXT NOT NULL, payout INTEGER NOT NULL, PRIMARY KEY (distribution_id, investor_id));
"""

Envelope = dict[str, Any]
Handler = Callable[[sqlite3.Connection, Envelope], None]


# -- registry ----------------------------------------------------------------------------------------------


def _collective_registered(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("INSERT OR REPLACE INTO collectives VALUES (?,?,?,?,?)",
                 (d["collective_id"], d["name"], d["town"], d.get("uscc"),
                  json.dumps(list(d.get("alliances") or []), ensure_ascii=False)))


def _investor_registered(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("INSERT OR REPLACE INTO investors VALUES (?,?,?)", (d["investor_id"], d["name"], d["investor_type"]))


def _project_registered(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("INSERT OR REPLACE INTO projects VALUES (?,?,?,?,?)",
                 (d["project_id"], d["name"], d["kind"], d["town"], d["operator"]))


# -- the books ---------------------------------------------------------------------------------------------


def _book(conn: sqlite3.Connection, *, entry_id: str, collective_id: str, date: str, lines: list[Line],
          memo: str, origin_kind: str, origin_ref: str | None, idempotency_key: str | None,
          reverses: str | None, event_id: str, attachments: int | None = None) -> None:
    booked = conn.execute("INSERT OR IGNORE INTO entries VALUES (?,?,?,?,?,?,?,?,NULL,?)",
                          (entry_id, collective_id, date, memo, origin_kind, origin_ref, idempotency_key, reverses,
                           event_id)).rowcount
    if booked:  # an entry id booked before keeps its voucher; a copy gets none
        _number(conn, entry_id, collective_id, date, attachments)
    conn.executemany("INSERT OR IGNORE INTO entry_lines VALUES (?,?,?,?,?,?,?)",
                     [(entry_id, i, collective_id, date, line.account, line.debit, line.credit)
                      for i, line in enumerate(lines)])


def _number(conn: sqlite3.Connection, entry_id: str, collective_id: str, date: str, attachments: int | None) -> None:
    """The entry's voucher: the next number of its collective's month, in log order (``vouchers``)."""

    def issued(collective: str, period: str) -> int:
        row = conn.execute("SELECT MAX(sequence) FROM vouchers WHERE collective_id=? AND period=?",
                           (collective, period)).fetchone()
        return int(row[0] or 0)

    (voucher,) = number_vouchers([(collective_id, date)], issued)
    conn.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                 (entry_id, collective_id, voucher.period, voucher.sequence, voucher.number, attachments))


def _entry_posted(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    origin = d.get("origin") or {}
    _book(conn, entry_id=d["entry_id"], collective_id=d["collective_id"], date=d["date"],
          lines=[line_from_wire(raw) for raw in d["lines"]], memo=d.get("memo") or "",
          origin_kind=origin.get("kind", "manual"), origin_ref=origin.get("ref"),
          idempotency_key=d.get("idempotency_key"), reverses=None, event_id=e["event_id"],
          attachments=d.get("attachments"))
    if origin.get("kind") == YEAR_END_CLOSE and str(origin.get("ref") or "").isdigit():
        conn.execute("INSERT OR IGNORE INTO closing_entries VALUES (?,?,?)",
                     (d["entry_id"], d["collective_id"], int(origin["ref"])))
        _redate_owed(conn, d["collective_id"])  # an entry still owed into the year just closed moves out of it


def _entry_reversed(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    original = _lines_of(conn, d["reverses"])
    if not original:
        raise ValueError(f"EntryReversed {d['entry_id']} reverses unknown entry {d['reverses']}")
    _book(conn, entry_id=d["entry_id"], collective_id=d["collective_id"], date=d["date"],
          lines=list(reversing_lines(original)), memo=d["reason"], origin_kind="reversal",
          origin_ref=d["reverses"], idempotency_key=None, reverses=d["reverses"], event_id=e["event_id"])
    conn.execute("UPDATE entries SET reversed_by=? WHERE entry_id=? AND reversed_by IS NULL",
                 (d["entry_id"], d["reverses"]))
    # The reversal of a close entry belongs to the close (neither counts in the year's income statement).
    conn.execute("INSERT OR IGNORE INTO closing_entries SELECT ?, collective_id, year FROM closing_entries "
                 "WHERE entry_id=?", (d["entry_id"], d["reverses"]))


def _period_closed(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("INSERT OR IGNORE INTO closed_periods VALUES (?,?)", (d["collective_id"], d["period"]))
    _redate_owed(conn, d["collective_id"])


def _closed_years(conn: sqlite3.Connection, collective_id: str) -> set[int]:
    """The years whose year-end close stands (some close entry of the year not reversed)."""
    return {int(row[0]) for row in conn.execute(
        "SELECT DISTINCT c.year FROM closing_entries c JOIN entries e USING (entry_id) WHERE c.collective_id=? "
        "AND e.origin_kind=? AND e.reversed_by IS NULL", (collective_id, YEAR_END_CLOSE))}


def _automatic_date(conn: sqlite3.Connection, collective_id: str, day: dt.date, lines: list[Line]) -> dt.date:
    """Where an automatic entry lands: out of a closed year if it touches 501–521, then out of closed months."""
    if touches_results(lines):
        day = results_posting_date(day, _closed_years(conn, collective_id))
    closed = {row[0] for row in conn.execute("SELECT period FROM closed_periods WHERE collective_id=?",
                                             (collective_id,))}
    return posting_date(day, closed)


def _redate_owed(conn: sqlite3.Connection, collective_id: str) -> None:
    """An automatic entry still owed (its cause folded, the entry not yet in the log) that is dated in a month
    just closed, or in a year just closed while it touches 501–521, moves to the first open day after it, as
    if its cause came now: closed books are never touched, whatever the order in which the consumer and the
    writer ran."""
    owed = conn.execute("SELECT event_id, data FROM _outbox WHERE type='EntryPosted' AND subject=?",
                        (collective_id,)).fetchall()
    for event_id, raw in owed:
        data = json.loads(raw)
        lines = [line_from_wire(line) for line in data["lines"]]
        day = _automatic_date(conn, collective_id, dt.date.fromisoformat(data["date"]), lines).isoformat()
        if day != data["date"]:
            data["date"] = day
            conn.execute("UPDATE _outbox SET data=? WHERE event_id=?", (json.dumps(data, ensure_ascii=False), event_id))


def _lines_of(conn: sqlite3.Connection, entry_id: str) -> list[Line]:
    rows = conn.execute("SELECT account, debit, credit FROM entry_lines WHERE entry_id=? ORDER BY line_no",
                        (entry_id,)).fetchall()
    return [Line(row[0], row[1], row[2]) for row in rows]


# -- automatic entries (DESIGN §7) -------------------------------------------------------------------------


def _owe_entry(conn: sqlite3.Connection, cause: Envelope, *, qualifier: str, collective_id: str, day: dt.date,
               lines: tuple[Line, ...], memo: str, origin_kind: str, origin_ref: str) -> None:
    """Owe the EntryPosted an event causes, under ids derived from the cause (never posted twice)."""
    if not lines:
        return
    ids = automatic_entry_ids(cause["event_id"], qualifier)
    data = {
        "entry_id": ids.entry_id,
        "collective_id": collective_id,
        "date": _automatic_date(conn, collective_id, day, list(lines)).isoformat(),
        "memo": memo,
        "lines": [line_to_wire(line) for line in lines],
        "origin": {"kind": origin_kind, "ref": origin_ref},
    }
    emit(conn, event_id=ids.event_id, event_type="EntryPosted",
         subject=collective_id, data=data, causation_id=cause["event_id"])


def _books_kept(conn: sqlite3.Connection, investor_id: str) -> bool:
    """Only collectives registered in the ledger keep books here (not other investors, nor strangers).

    The registration is on the entries topic, the cause on another: a rebuild may fold them in
    another order and owe nothing, but then the entry owed the first time is already in the log.
    """
    return conn.execute("SELECT 1 FROM collectives WHERE collective_id=?", (investor_id,)).fetchone() is not None


def _invested(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    land = e["type"] == "LandShareInvested"
    amount = parse_yuan(d["valuation"] if land else d["amount"])
    conn.execute("INSERT OR IGNORE INTO investments VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 (d["investment_id"], d["project_id"], d["investor_id"], d["investor_type"],
                  "land" if land else "cash", d.get("area_mu"), d.get("price_per_mu"), amount,
                  d["effective_on"], d.get("parcel"), e["event_id"]))
    if d["investor_type"] == "collective" and _books_kept(conn, d["investor_id"]):
        what = f"{d['area_mu']} 亩土地入股" if land else "现金投资"
        _owe_entry(conn, e, qualifier=ENTRY_QUALIFIER, collective_id=d["investor_id"],
                   day=dt.date.fromisoformat(d["effective_on"]), lines=automatic_entry_lines(e["type"], d),
                   memo=f"{what} {d['project_id']}", origin_kind="investment", origin_ref=d["investment_id"])


def _withdrawn(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("INSERT OR IGNORE INTO withdrawals VALUES (?,?,?,?,?,?,?)",
                 (d["withdrawal_id"], d["project_id"], d["investor_id"], parse_yuan(d["amount"]),
                  d["effective_on"], d["reason"], e["event_id"]))
    row = conn.execute("SELECT investor_type FROM investments WHERE project_id=? AND investor_id=? LIMIT 1",
                       (d["project_id"], d["investor_id"])).fetchone()
    if row is not None and row[0] == "collective" and _books_kept(conn, d["investor_id"]):
        _owe_entry(conn, e, qualifier=ENTRY_QUALIFIER, collective_id=d["investor_id"],
                   day=dt.date.fromisoformat(d["effective_on"]),
                   lines=automatic_entry_lines("InvestmentWithdrawn", d),
                   memo=f"撤回投资 {d['project_id']}: {d['reason']}"[:500], origin_kind="withdrawal",
                   origin_ref=d["withdrawal_id"])


def _distribution_declared(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("INSERT OR REPLACE INTO distributions VALUES (?,?,?,?,'declared')",
                 (d["distribution_id"], d["project_id"], d["period_start"], d["period_end"]))


def _dividend_allocated(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("INSERT OR REPLACE INTO allocations VALUES (?,?,?,?)",
                 (d["distribution_id"], d["investor_id"], d["investor_type"], parse_yuan(d["payout"])))


def _distribution_approved(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    conn.execute("UPDATE distributions SET status='approved' WHERE distribution_id=?", (d["distribution_id"],))
    rows = conn.execute("SELECT investor_id, investor_type, payout FROM allocations WHERE distribution_id=? "
                        "AND payout > 0 ORDER BY investor_id", (d["distribution_id"],)).fetchall()
    for investor_id, investor_type, payout in rows:
        if investor_type != "collective" or not _books_kept(conn, investor_id):
            continue
        allocation = {"project_id": d["project_id"], "investor_type": investor_type, "payout": format_yuan(payout)}
        _owe_entry(conn, e, qualifier=investor_id, collective_id=investor_id, day=local_date(e["occurred_at"]),
                   lines=automatic_entry_lines("DistributionApproved", allocation),
                   memo=f"投资收益 {d['project_id']} {d['distribution_id']}", origin_kind="dividend",
                   origin_ref=d["distribution_id"])


def _dividend_paid(conn: sqlite3.Connection, e: Envelope) -> None:
    d = e["data"]
    if not _books_kept(conn, d["investor_id"]):
        return
    _owe_entry(conn, e, qualifier=ENTRY_QUALIFIER, collective_id=d["investor_id"],
               day=dt.date.fromisoformat(d["paid_on"]), lines=automatic_entry_lines("DividendPaid", d),
               memo=f"收到分红 {d['project_id']} {d['distribution_id']}", origin_kind="payment",
               origin_ref=d["payment_id"])


def _distribution_cancelled(conn: sqlite3.Connection, e: Envelope) -> None:
    conn.execute("UPDATE distributions SET status='cancelled' WHERE distribution_id=?",
                 (e["data"]["distribution_id"],))


# -- a village's own distribution (DESIGN §11, baotuan.members.v1) ------------------------------------------


def _plan_approved(conn: sqlite3.Connection, e: Envelope) -> None:
    """The plan's appropriations, dated the meeting's day: Dr 322/undistributed, Cr 311, 211/welfare, 211/…"""
    d = e["data"]
    if not _books_kept(conn, d["collective_id"]):
        return
    _owe_entry(conn, e, qualifier=ENTRY_QUALIFIER, collective_id=d["collective_id"],
               day=dt.date.fromisoformat(d["vote"]["meeting_on"]), lines=member_entry_lines("PlanApproved", d),
               memo=f"{d['year']}年收益分配方案 {d['plan_id']}", origin_kind="member_plan", origin_ref=d["plan_id"])


def _household_dividend_paid(conn: sqlite3.Connection, e: Envelope) -> None:
    """A household's dividend paid: Dr 211/member-dividends, Cr 102, dated the day it was paid."""
    d = e["data"]
    if not _books_kept(conn, d["collective_id"]):
        return
    _owe_entry(conn, e, qualifier=ENTRY_QUALIFIER, collective_id=d["collective_id"],
               day=dt.date.fromisoformat(d["paid_on"]), lines=member_entry_lines("HouseholdDividendPaid", d),
               memo=f"支付成员分红 {d['household_id']} {d['plan_id']}"[:500], origin_kind="member_dividend",
               origin_ref=d["payment_id"])


HANDLERS: dict[str, Handler] = {
    "CollectiveRegistered": _collective_registered,
    "InvestorRegistered": _investor_registered,
    "EntryPosted": _entry_posted,
    "EntryReversed": _entry_reversed,
    "PeriodClosed": _period_closed,
    "ProjectRegistered": _project_registered,
    "LandShareInvested": _invested,
    "CashInvested": _invested,
    "InvestmentWithdrawn": _withdrawn,
    "DistributionDeclared": _distribution_declared,
    "DividendAllocated": _dividend_allocated,
    "DistributionApproved": _distribution_approved,
    "DividendPaid": _dividend_paid,
    "DistributionCancelled": _distribution_cancelled,
    "PlanApproved": _plan_approved,
    "HouseholdDividendPaid": _household_dividend_paid,
}


def fold(conn: sqlite3.Connection, topic: str, envelope: Envelope) -> None:
    """Apply one event to the projection (event types the ledger does not need are skipped)."""
    handler = HANDLERS.get(envelope["type"])
    if handler is not None:
        handler(conn, envelope)
