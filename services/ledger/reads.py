"""Every query of the ledger's projection: what the handlers decide on and what the API renders.

``LedgerReads`` wraps the projection store (``projection.py`` holds its schema and the fold that
writes it). Rows come back as wire-shaped dicts, or as the pure modules' values (``CapitalChange``,
``PostedLine``, the reports); amounts in those are int fen.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from services.contracts.money import format_yuan
from services.ledger.capital import CapitalChange, holdings
from services.ledger.domain import (
    ENTRY_QUALIFIER,
    YEAR_END_CLOSE,
    AutomaticEntryIds,
    Line,
    automatic_entry_ids,
    line_to_wire,
)
from services.ledger.reports import (
    AccountBalances,
    BalanceSheet,
    CollectiveInfo,
    IncomeStatement,
    PostedLine,
    TrialBalance,
    VillageIncomeReport,
    account_balances,
    balance_sheet,
    income_statement,
    trial_balance,
    village_income_report,
)
from services.runtime.sqlsum import exact_sum, sum_of
from services.runtime.store import ProjectionStore


@dataclass(frozen=True)
class PostedEntry:
    """What the rules of a reversal need to know of a posted entry."""

    entry_id: str
    collective_id: str
    date: dt.date
    reversed_by: str | None
    reverses: str | None
    origin_kind: str = "manual"
    origin_ref: str | None = None
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class Holding:
    """An investor's capital in a project on a day (fen)."""

    investor_id: str
    investor_type: str
    capital: int


@dataclass(frozen=True)
class Register:
    """The investment register of a project on a day: its holdings by investor_id (none at zero) and their sum."""

    holdings: tuple[Holding, ...]
    total_capital: int


class LedgerReads:
    """The ledger's reads of its projection store."""

    def __init__(self, store: ProjectionStore) -> None:
        self.store = store

    # -- registry ------------------------------------------------------------------------------------------

    def collective(self, collective_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT * FROM collectives WHERE collective_id=?", (collective_id,))
        return _collective_dict(row) if row else None

    def collectives(self) -> list[dict[str, Any]]:
        return [_collective_dict(row) for row in self.store.query("SELECT * FROM collectives ORDER BY collective_id")]

    def collective_infos(self) -> list[CollectiveInfo]:
        return [CollectiveInfo(c["collective_id"], c["name"], c["town"], tuple(c["alliances"]))
                for c in self.collectives()]

    def investor(self, investor_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT * FROM investors WHERE investor_id=?", (investor_id,))
        return dict(row) if row else None

    def investors(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.store.query("SELECT * FROM investors ORDER BY investor_id")]

    def investor_type(self, investor_id: str) -> str | None:
        """``"collective"`` for a registered collective, else the registered investor's type, else None."""
        if self.collective(investor_id) is not None:
            return "collective"
        found = self.investor(investor_id)
        return str(found["investor_type"]) if found else None

    def project(self, project_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT * FROM projects WHERE project_id=?", (project_id,))
        return dict(row) if row else None

    def projects(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.store.query("SELECT * FROM projects ORDER BY project_id")]

    def holder_of_id(self, some_id: str) -> str | None:
        """What holds ``some_id`` in the registry's one id namespace: ``"collective"``, ``"investor"``,
        ``"project"``, or None when it is free."""
        for what, found in (("collective", self.collective), ("investor", self.investor), ("project", self.project)):
            if found(some_id) is not None:
                return what
        return None

    # -- the investment register ---------------------------------------------------------------------------

    def investment(self, investment_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT * FROM investments WHERE investment_id=?", (investment_id,))
        if row is None:
            return None
        out: dict[str, Any] = {"investment_id": row["investment_id"], "project_id": row["project_id"],
                               "investor_id": row["investor_id"], "investor_type": row["investor_type"],
                               "kind": row["kind"], "effective_on": row["effective_on"]}
        if row["kind"] == "land":
            out.update(area_mu=row["area_mu"], price_per_mu=row["price_per_mu"],
                       valuation=format_yuan(row["amount"]), parcel=row["parcel"])
        else:
            out["amount"] = format_yuan(row["amount"])
        return out

    def withdrawal(self, withdrawal_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT * FROM withdrawals WHERE withdrawal_id=?", (withdrawal_id,))
        if row is None:
            return None
        return {"withdrawal_id": row["withdrawal_id"], "project_id": row["project_id"],
                "investor_id": row["investor_id"], "amount": format_yuan(row["amount"]),
                "effective_on": row["effective_on"], "reason": row["reason"]}

    def movement_id_taken(self, movement_id: str) -> bool:
        """Investments and withdrawals share one id namespace."""
        return self._movement_event(movement_id) is not None

    def capital_changes(self, project_id: str) -> list[tuple[str, CapitalChange]]:
        """Every (investor_id, change) of a project: investments positive, withdrawals negative."""
        rows = self.store.query("SELECT investor_id, effective_on, amount FROM investments WHERE project_id=? "
                                "UNION ALL SELECT investor_id, effective_on, -amount FROM withdrawals "
                                "WHERE project_id=?", (project_id, project_id))
        return [(row[0], CapitalChange(dt.date.fromisoformat(row[1]), int(row[2]))) for row in rows]

    def investor_types_in(self, project_id: str) -> dict[str, str]:
        rows = self.store.query("SELECT DISTINCT investor_id, investor_type FROM investments WHERE project_id=?",
                                (project_id,))
        return {row[0]: row[1] for row in rows}

    def register(self, project_id: str, as_of: dt.date) -> Register:
        """Who holds what capital in the project at the end of ``as_of``."""
        types = self.investor_types_in(project_id)
        held = holdings(self.capital_changes(project_id), as_of)
        return Register(tuple(Holding(investor_id, types.get(investor_id, "collective"), fen)
                              for investor_id, fen in held.items()), sum(held.values()))

    def automatic_entry_of_movement(self, movement_id: str) -> AutomaticEntryIds | None:
        """The entry the fold owed for an investment or a withdrawal (posted already or still owed),
        or None when it owed none (an investor that keeps no books here)."""
        event_id = self._movement_event(movement_id)
        return self.automatic_entry(event_id) if event_id is not None else None

    def _movement_event(self, movement_id: str) -> str | None:
        row = self.store.query_one("SELECT event_id FROM investments WHERE investment_id=? UNION ALL "
                                   "SELECT event_id FROM withdrawals WHERE withdrawal_id=?", (movement_id, movement_id))
        return str(row[0]) if row else None

    # -- automatic entries ---------------------------------------------------------------------------------

    def automatic_entry(self, cause_event_id: str, qualifier: str = ENTRY_QUALIFIER) -> AutomaticEntryIds | None:
        """The automatic entry ``cause_event_id`` made the fold owe, whether the reactor has posted it yet
        or not; None when the fold owed none for it. (Ask once the cause is folded.)"""
        ids = automatic_entry_ids(cause_event_id, qualifier)
        with self.store.reading() as conn:  # owed, then posted: the fold moves it from one to the other
            owed = conn.execute("SELECT 1 FROM _outbox WHERE event_id=?", (ids.event_id,)).fetchone()
            posted = conn.execute("SELECT 1 FROM _events WHERE event_id=?", (ids.event_id,)).fetchone()
        return ids if owed or posted else None

    def wait_for_event(self, event_id: str, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until the projection has folded ``event_id``; whether it has."""
        with self.store.applied:
            return self.store.applied.wait_for(lambda: self.store.has_event(event_id), timeout=timeout_s)

    # -- the books -----------------------------------------------------------------------------------------

    def closed_periods(self, collective_id: str) -> list[str]:
        rows = self.store.query("SELECT period FROM closed_periods WHERE collective_id=? ORDER BY period",
                                (collective_id,))
        return [str(row[0]) for row in rows]

    def entry(self, entry_id: str) -> dict[str, Any] | None:
        found = self._entry_dicts("entry_id=?", (entry_id,))
        return found[0] if found else None

    def entries_by_id(self, entry_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(entry_ids), 500):
            chunk = entry_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update({e["entry_id"]: e for e in self._entry_dicts(f"entry_id IN ({marks})", tuple(chunk))})
        return out

    def entries(self, collective_id: str, date_from: str | None, date_to: str | None) -> list[dict[str, Any]]:
        """Entries dated between ``date_from`` and ``date_to`` (inclusive), in date then posting order."""
        return self._entry_dicts("collective_id=? AND date>=? AND date<=?",
                                 (collective_id, date_from or "0000-01-01", date_to or "9999-12-31"))

    def entry_by_voucher(self, collective_id: str, voucher_no: str) -> dict[str, Any] | None:
        """The entry of ``collective_id``'s books numbered ``voucher_no``, or None."""
        row = self.store.query_one("SELECT entry_id FROM vouchers WHERE collective_id=? AND voucher_no=?",
                                   (collective_id, voucher_no))
        return self.entry(str(row[0])) if row else None

    def posted_entry(self, entry_id: str) -> PostedEntry | None:
        row = self.store.query_one("SELECT entry_id, collective_id, date, reversed_by, reverses, origin_kind, "
                                   "origin_ref FROM entries WHERE entry_id=?", (entry_id,))
        if row is None:
            return None
        return PostedEntry(row["entry_id"], row["collective_id"], dt.date.fromisoformat(row["date"]),
                           row["reversed_by"], row["reverses"], row["origin_kind"], row["origin_ref"],
                           tuple(self._lines(entry_id)))

    def _lines(self, entry_id: str) -> list[Line]:
        rows = self.store.query("SELECT account, debit, credit FROM entry_lines WHERE entry_id=? ORDER BY line_no",
                                (entry_id,))
        return [Line(row[0], row[1], row[2]) for row in rows]

    # -- the year-end close --------------------------------------------------------------------------------

    def closed_years(self, collective_id: str) -> set[int]:
        """The years whose year-end close stands (a close entry of the year not reversed)."""
        rows = self.store.query("SELECT DISTINCT c.year FROM closing_entries c JOIN entries e USING (entry_id) "
                                "WHERE c.collective_id=? AND e.origin_kind=? AND e.reversed_by IS NULL",
                                (collective_id, YEAR_END_CLOSE))
        return {int(row[0]) for row in rows}

    def year_end_close(self, collective_id: str, year: int) -> list[dict[str, Any]]:
        """Every close entry of ``year`` ever posted in the collective's books (reversed ones too), in log order."""
        return self._entry_dicts("collective_id=? AND origin_kind=? AND origin_ref=?",
                                 (collective_id, YEAR_END_CLOSE, str(year)))

    def result_movements(self, collective_id: str, year: int) -> dict[str, int]:
        """Each income and expense account (501–521, sub-accounts apart) -> its net debit movement in ``year``
        (the close entries of earlier rounds, reversed, net out)."""
        rows = self.store.query(f"SELECT account, {exact_sum('debit')}, {exact_sum('credit')} FROM entry_lines "
                                "WHERE collective_id=? AND date>=? AND date<=? AND substr(account, 1, 1)='5' "
                                "GROUP BY account", (collective_id, f"{year:04d}-01-01", f"{year:04d}-12-31"))
        return {row[0]: sum_of(row[1], row[2]) - sum_of(row[3], row[4]) for row in rows}

    def _entry_dicts(self, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Entries matching ``where`` (a condition on the entries table), lines included, in date then posting
        order."""
        with self.store.reading() as conn:
            rows = conn.execute("SELECT *, (SELECT voucher_no FROM vouchers v WHERE v.entry_id=entries.entry_id) "
                                "AS voucher_no, (SELECT attachments FROM vouchers v WHERE "
                                f"v.entry_id=entries.entry_id) AS attachments FROM entries WHERE {where} "
                                "ORDER BY date, rowid", params).fetchall()
            lines: dict[str, list[Line]] = {row["entry_id"]: [] for row in rows}
            for line in conn.execute("SELECT entry_id, account, debit, credit FROM entry_lines WHERE entry_id IN "
                                     f"(SELECT entry_id FROM entries WHERE {where}) ORDER BY entry_id, line_no",
                                     params):
                lines[line[0]].append(Line(line[1], line[2], line[3]))
        return [_entry_dict(row, lines[row["entry_id"]]) for row in rows]

    def balances_to(self, collective_id: str, as_of: dt.date) -> list[PostedLine]:
        """The books up to ``as_of``, one summed line per account (what a trial balance needs).

        Sums are exact however big (``runtime.sqlsum``): a SQLite SUM would overflow past 2^63 fen.
        """
        rows = self.store.query(f"SELECT account, {exact_sum('debit')}, {exact_sum('credit')} FROM entry_lines "
                                "WHERE collective_id=? AND date<=? GROUP BY account",
                                (collective_id, as_of.isoformat()))
        return [PostedLine(collective_id, "", as_of, row[0], sum_of(row[1], row[2]), sum_of(row[3], row[4]))
                for row in rows]

    def movements_by_year(self, collective_id: str | None, to_year: int, *,
                          income_only: bool = False, without_close: bool = False) -> list[PostedLine]:
        """Summed lines per collective, account and year up to ``to_year`` (dated 1 January of their year).

        Enough for the balance sheet, the income statement and the village income report, which
        only ever look at which year a line falls in. Sums are exact however big, as in ``balances_to``.
        """
        sql = (f"SELECT collective_id, account, substr(date, 1, 4) AS year, {exact_sum('debit')}, "
               f"{exact_sum('credit')} FROM entry_lines WHERE date <= ?")
        params: list[Any] = [f"{to_year:04d}-12-31"]
        if collective_id is not None:
            sql += " AND collective_id = ?"
            params.append(collective_id)
        if income_only:
            sql += " AND date >= ? AND substr(account, 1, 3) IN ('501', '502', '503', '504')"
            params.append(f"{to_year:04d}-01-01")
        if without_close:  # the year-end close and its reversals empty 501–521: a year's income is before them
            sql += " AND entry_id NOT IN (SELECT entry_id FROM closing_entries)"
        rows = self.store.query(sql + " GROUP BY collective_id, account, year", tuple(params))
        return [PostedLine(row[0], "", dt.date(int(row[2]), 1, 1), row[1], sum_of(row[3], row[4]),
                           sum_of(row[5], row[6])) for row in rows]

    # -- reports -------------------------------------------------------------------------------------------

    def account_balances(self, collective_id: str, first: str, last: str) -> AccountBalances:
        """科目余额表 of the months ``first``–``last`` (``YYYY-MM``, both included); sums exact however big."""
        start, end = f"{first}-01", f"{last}-31"  # ISO dates compare as text: every day of ``last`` is <= end

        def summed(condition: str, params: tuple[str, ...]) -> list[PostedLine]:
            rows = self.store.query(f"SELECT account, {exact_sum('debit')}, {exact_sum('credit')} FROM entry_lines "
                                    f"WHERE collective_id=? AND {condition} GROUP BY account", (collective_id, *params))
            return [PostedLine(collective_id, "", dt.date.min, row[0], sum_of(row[1], row[2]), sum_of(row[3], row[4]))
                    for row in rows]

        return account_balances(summed("date<?", (start,)), summed("date>=? AND date<=?", (start, end)), first, last)

    def trial_balance(self, collective_id: str, as_of: dt.date) -> TrialBalance:
        return trial_balance(self.balances_to(collective_id, as_of), as_of)

    def balance_sheet(self, collective_id: str, year: int) -> BalanceSheet:
        return balance_sheet(self.movements_by_year(collective_id, year), year)

    def income_statement(self, collective_id: str, year: int) -> IncomeStatement:
        start, end = f"{year:04d}-01-01", f"{year:04d}-12-31"
        row = self.store.query_one(f"SELECT {exact_sum('debit')}, {exact_sum('credit')} FROM entry_lines "
                                   "WHERE collective_id=? AND date<? AND substr(account, 1, 3)='322'",
                                   (collective_id, start))
        brought_forward = sum_of(row[2], row[3]) - sum_of(row[0], row[1]) if row else 0
        # The lines, other than on 322, of the year's entries that moved 322 (the close left out): the appropriations.
        rows = self.store.query(
            f"SELECT account, {exact_sum('debit')}, {exact_sum('credit')} FROM entry_lines WHERE collective_id=? "
            "AND date>=? AND date<=? AND substr(account, 1, 3)!='322' AND entry_id NOT IN "
            "(SELECT entry_id FROM closing_entries) AND entry_id IN (SELECT entry_id FROM entry_lines WHERE "
            "collective_id=? AND date>=? AND date<=? AND substr(account, 1, 3)='322') GROUP BY account",
            (collective_id, start, end, collective_id, start, end))
        appropriations = [PostedLine(collective_id, "", dt.date(year, 1, 1), r[0], sum_of(r[1], r[2]),
                                     sum_of(r[3], r[4])) for r in rows]
        return income_statement(self.movements_by_year(collective_id, year, without_close=True), year,
                                brought_forward=brought_forward, appropriations=appropriations)

    def village_income(self, year: int, town: str | None, alliance: str | None) -> VillageIncomeReport:
        """The village income report of ``year`` over the collectives of ``town`` and ``alliance`` (None: all)."""
        infos = [info for info in self.collective_infos()
                 if (town is None or info.town == town) and (alliance is None or alliance in info.alliances)]
        return village_income_report(infos, self.movements_by_year(None, year, income_only=True, without_close=True),
                                     year)


def _collective_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"collective_id": row["collective_id"], "name": row["name"], "town": row["town"], "uscc": row["uscc"],
            "alliances": json.loads(row["alliances"])}


def _entry_dict(row: sqlite3.Row, lines: list[Line]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "entry_id": row["entry_id"], "collective_id": row["collective_id"], "date": row["date"],
        "memo": row["memo"], "lines": [line_to_wire(line) for line in lines],
        "origin": {"kind": row["origin_kind"], "ref": row["origin_ref"]},
        "reversed_by": row["reversed_by"], "reverses": row["reverses"],
        "voucher_no": row["voucher_no"], "attachments": row["attachments"],
    }
    if row["idempotency_key"] is not None:
        out["idempotency_key"] = row["idempotency_key"]
    return out
