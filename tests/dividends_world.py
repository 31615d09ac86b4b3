"""The dividends service under test, fed the way production feeds it, on any event log.

ProjectRegistered and the investments are published by a stand-in "ledger" writer, rent and
expenses by a stand-in "rentals" writer, each an EventService owning its topics; the service
under test reads them from the log. ``world_on(settings, folder, log)`` runs it on the in-memory
log (tests/unit/dividends) or, without ``log``, on the broker of ``settings`` (tests/integration).

Not a test module; test modules import it by name, as they do ``conftest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import bearer, kept_token, no_fold, running, without_receipts
from flask.testing import FlaskClient

from services.contracts.money import format_yuan, parse_mu, parse_yuan, valuation_fen
from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS
from services.dividends.app import create_app
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore


def stand_in(name: str, owned: list[str], settings: Settings, folder: Path, log: EventLog | None) -> EventService:
    store = ProjectionStore(folder / f"{name}-stand-in.sqlite", "")
    svc = EventService(name=name, settings=settings, store=store, fold=no_fold, inputs=[], owned=owned, log=log)
    svc.start()
    return svc


@dataclass
class World:
    settings: Settings
    client: FlaskClient
    ledger: EventService
    rentals: EventService
    tokens: dict[str, str]

    def token(self, role: str, *scope: str) -> str:
        return kept_token(self.settings, self.tokens, role, *scope)

    def put(self, svc: EventService, event_type: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        with svc.writing():
            [sealed] = svc.publish([NewEvent(event_type, subject, data)], actor="system:test")
        return sealed

    def dividends_end(self) -> dict[tuple[str, int], int]:
        """The end offsets of the dividends topic (what the service under test has published)."""
        return self.ledger.log.end_offsets([DIVIDENDS], self.settings.request_timeout_s)

    # -- inputs -----------------------------------------------------------------------------------------

    def project(self, project_id: str) -> None:
        self.put(self.ledger, "ProjectRegistered", project_id, {
            "project_id": project_id, "name": "测试产业园", "kind": "industrial_park", "town": "金清镇",
            "operator": "测试运营公司"})

    def land(self, project_id: str, investor_id: str, kind: str, area_mu: str, price_per_mu: str,
             effective_on: str) -> None:
        valuation = format_yuan(valuation_fen(parse_mu(area_mu), parse_yuan(price_per_mu)))
        self.put(self.ledger, "LandShareInvested", project_id, {
            "investment_id": f"{investor_id}-{effective_on}", "project_id": project_id, "investor_id": investor_id,
            "investor_type": kind, "area_mu": area_mu, "price_per_mu": price_per_mu, "valuation": valuation,
            "effective_on": effective_on})

    def cash(self, project_id: str, investor_id: str, kind: str, amount: str, effective_on: str) -> None:
        self.put(self.ledger, "CashInvested", project_id, {
            "investment_id": f"{investor_id}-c-{effective_on}", "project_id": project_id, "investor_id": investor_id,
            "investor_type": kind, "amount": amount, "effective_on": effective_on})

    def withdraw(self, project_id: str, investor_id: str, amount: str, effective_on: str) -> None:
        self.put(self.ledger, "InvestmentWithdrawn", project_id, {
            "withdrawal_id": f"{investor_id}-w-{effective_on}", "project_id": project_id, "investor_id": investor_id,
            "amount": amount, "effective_on": effective_on, "reason": "部分退出"})

    def rent(self, project_id: str, amount: str, received_on: str, n: int = 1) -> None:
        self.put(self.rentals, "RentReceived", project_id, {
            "payment_id": f"rent-{received_on}-{n}", "lease_id": f"{project_id}-lease", "project_id": project_id,
            "amount": amount, "received_on": received_on})

    def expense(self, project_id: str, amount: str, incurred_on: str) -> None:
        self.put(self.rentals, "ExpenseRecorded", project_id, {
            "expense_id": f"exp-{incurred_on}", "project_id": project_id, "category": "maintenance",
            "amount": amount, "incurred_on": incurred_on, "memo": "厂房维修"})

    # -- HTTP -------------------------------------------------------------------------------------------

    def board(self, project_id: str) -> dict[str, str]:
        return bearer(self.token("board", project_id))

    def policy(self, project_id: str, **overrides: Any) -> dict[str, Any]:
        body = {"management_fee_rate": "0.05", "tax_rate": "0.10", "payout_ratio": "0.90",
                "guaranteed_rate": "0.10", "guarantee_until": None, "guarantor_id": "state-co", **overrides}
        resp = self.client.put(f"/v1/projects/{project_id}/policy", json=body, headers=self.board(project_id))
        assert resp.status_code == 200, resp.get_json()
        return dict(without_receipts(resp.get_json()))

    def declare(self, project_id: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
        resp = self.client.post(f"/v1/projects/{project_id}/distributions", headers=self.board(project_id),
                                json={"period_start": start, "period_end": end, **extra})
        assert resp.status_code == 201, resp.get_json()
        return dict(without_receipts(resp.get_json()))


@contextmanager
def world_on(settings: Settings, folder: Path, log: EventLog | None = None) -> Iterator[World]:
    """The stand-in writers and the dividends service, on ``log`` (else the broker of ``settings``)."""
    ledger = stand_in("ledger", [LEDGER_INVESTMENTS, LEDGER_ENTRIES], settings, folder, log)
    rentals = stand_in("rentals", [RENTALS], settings, folder, log)
    try:
        with running(create_app, settings, log) as client:
            yield World(settings, client, ledger, rentals, {})
    finally:
        ledger.stop()
        rentals.stop()


def two_villages_and_a_company(world: World, project_id: str, u: str) -> tuple[str, str, str]:
    """Village A: 2 mu × 500,000 = 1,000,000.00 from 2025-01-01; village B: 500,000.00 cash from
    2025-07-01; company C: 2,000,000.00 from 2025-01-01, 1,000,000.00 of it withdrawn on 2025-10-01."""
    a, b, c = f"a-village-{u}", f"b-village-{u}", f"c-company-{u}"
    world.project(project_id)
    world.land(project_id, a, "collective", "2.0000", "500000.00", "2025-01-01")
    world.cash(project_id, b, "collective", "500000.00", "2025-07-01")
    world.cash(project_id, c, "company", "2000000.00", "2025-01-01")
    world.withdraw(project_id, c, "1000000.00", "2025-10-01")
    return a, b, c
