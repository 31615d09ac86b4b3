"""The members service under test, fed the way production feeds it, on any event log.

The villages' books come from a stand-in "ledger" writer (an EventService owning baotuan.ledger.entries.v1):
CollectiveRegistered, and the year-end close of a year as the ledger posts it (EntryPosted dated Y-12-31,
origin {kind: year_end_close, ref: "Y"}, 321 into 322/undistributed). ``world_on(settings, folder, log)`` runs
it on the in-memory log (tests/unit/members) or, without ``log``, on the broker of ``settings``.

Not a test module; test modules import it by name, as they do ``conftest``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import bearer, kept_token, no_fold, running, without_receipts
from flask.testing import FlaskClient

from services.contracts.topics import LEDGER_ENTRIES
from services.members.app import create_app
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

CHARTER = {"share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"},
                           {"kind": "farm-age", "name": "农龄股", "weight": "0.5"}],
           "reserve_rate_min": "0.10", "shares_fixed_on": "2025-06-30", "quorum": "2/3", "majority": "1/2",
           "adopted_on": "2025-01-10"}
#: A vote that carries: 30 of 45 present (exactly 2/3), 16 for (more than half of 30).
VOTE = {"body": "representatives", "meeting_on": "2026-04-10", "entitled": 45, "present": 30, "for": 16,
        "against": 10, "abstain": 4}


@dataclass
class World:
    settings: Settings
    client: FlaskClient
    ledger: EventService
    tokens: dict[str, str]

    def token(self, role: str, *scope: str) -> str:
        return kept_token(self.settings, self.tokens, role, *scope)

    def accountant(self, cid: str) -> dict[str, str]:
        return bearer(self.token("accountant", cid))

    def board(self, cid: str) -> dict[str, str]:
        return bearer(self.token("board", cid))

    def put(self, event_type: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.ledger.writing():
            [sealed] = self.ledger.publish([NewEvent(event_type, subject, data)], actor="system:test")
        return sealed

    # -- the books -----------------------------------------------------------------------------------------

    def collective(self, cid: str, name: str = "联盟村") -> str:
        self.put("CollectiveRegistered", cid, {"collective_id": cid, "name": name, "town": "金清镇", "uscc": None,
                                               "alliances": []})
        return cid

    def entry(self, cid: str, day: str, lines: list[tuple[str, str, str]], *, kind: str = "manual",
              ref: str | None = None) -> str:
        entry_id = str(uuid.uuid4())
        self.put("EntryPosted", cid, {
            "entry_id": entry_id, "collective_id": cid, "date": day, "memo": "测试",
            "lines": [{"account": account, side: amount} for account, side, amount in lines],
            "origin": {"kind": kind, "ref": ref}, "idempotency_key": None})
        return entry_id

    def close_year(self, cid: str, year: int, net_income: str) -> str:
        """The ledger's year-end close of ``year`` as far as 322 goes: 321 into 322/undistributed (a loss the
        other way)."""
        debit, credit = ("321", "322/undistributed") if not net_income.startswith("-") else ("322/undistributed",
                                                                                               "321")
        amount = net_income.lstrip("-")
        return self.entry(cid, f"{year}-12-31", [(debit, "debit", amount), (credit, "credit", amount)],
                          kind="year_end_close", ref=str(year))

    def reverse(self, cid: str, entry_id: str, day: str) -> None:
        self.put("EntryReversed", cid, {"entry_id": str(uuid.uuid4()), "reverses": entry_id, "collective_id": cid,
                                        "date": day, "reason": "冲销"})

    # -- HTTP ----------------------------------------------------------------------------------------------

    def ok(self, method: str, path: str, status: int, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        resp = self.client.open(path, method=method, json=body, headers=headers)
        assert resp.status_code == status, resp.get_json()
        return dict(without_receipts(resp.get_json()))

    def charter(self, cid: str, **overrides: Any) -> dict[str, Any]:
        return self.ok("PUT", f"/v1/collectives/{cid}/charter", 200, self.accountant(cid), **{**CHARTER, **overrides})

    def household(self, cid: str, hid: str, head: str, holdings: dict[str, str] | None = None,
                  **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"household_id": hid, "head_name": head, "registered_on": "2025-01-15", **extra}
        if holdings is not None:
            body["holdings"] = holdings
        return self.ok("POST", f"/v1/collectives/{cid}/households", 201, self.accountant(cid), **body)

    def transfer(self, cid: str, source: str, target: str, kind: str, shares: str, on: str,
                 reason: str = "inheritance") -> dict[str, Any]:
        return self.ok("POST", f"/v1/collectives/{cid}/share-transfers", 201, self.accountant(cid),
                       from_household=source, to_household=target, kind=kind, shares=shares, effective_on=on,
                       reason=reason)

    def propose(self, cid: str, year: int = 2025, **overrides: Any) -> dict[str, Any]:
        body = {"year": year, "reserve_rate": "0.10", "welfare": "0.00", "members_total": "1000.00",
                "record_date": f"{year + 1}-03-31", **overrides}
        return self.ok("POST", f"/v1/collectives/{cid}/plans", 201, self.accountant(cid), **body)

    def approve(self, cid: str, plan_id: str, **vote: Any) -> dict[str, Any]:
        return self.ok("POST", f"/v1/collectives/{cid}/plans/{plan_id}/approve", 200, self.board(cid),
                       vote={**VOTE, **vote})

    def pay(self, cid: str, plan_id: str, hid: str, amount: str, paid_on: str = "2026-04-20") -> dict[str, Any]:
        return self.ok("POST", f"/v1/collectives/{cid}/plans/{plan_id}/payments", 201, self.accountant(cid),
                       household_id=hid, amount=amount, paid_on=paid_on, bank_reference=f"RCC-{hid}")

    def village(self, cid: str) -> str:
        """A registered, charted village with three households (on 2025-01-15) and 2025 closed with 10,000.00:
        hu-1 张小明 population 3 + farm-age 10 (weight 8), hu-2 王五 population 2 (weight 2), hu-3 欧阳小明
        farm-age 20 (weight 10: only 农龄股)."""
        self.collective(cid)
        self.charter(cid)
        self.household(cid, "hu-1", "张小明", {"population": "3", "farm-age": "10"})
        self.household(cid, "hu-2", "王五", {"population": "2"})
        self.household(cid, "hu-3", "欧阳小明", {"farm-age": "20"})
        self.close_year(cid, 2025, "10000.00")
        return cid


def stand_in_ledger(settings: Settings, folder: Path, log: EventLog | None) -> EventService:
    store = ProjectionStore(folder / "ledger-stand-in.sqlite", "")
    svc = EventService(name="ledger", settings=settings, store=store, fold=no_fold, inputs=[],
                       owned=[LEDGER_ENTRIES], log=log)
    svc.start()
    return svc


@contextmanager
def world_on(settings: Settings, folder: Path, log: EventLog | None = None) -> Iterator[World]:
    """The stand-in ledger and the members service, on ``log`` (else the broker of ``settings``)."""
    ledger = stand_in_ledger(settings, folder, log)
    try:
        with running(create_app, settings, log) as client:
            yield World(settings, client, ledger, {})
    finally:
        ledger.stop()
