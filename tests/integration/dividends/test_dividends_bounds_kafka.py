"""A distribution whose amounts would not fit the wire format is refused when asked for (DESIGN §3, issue 13.2).

Capital-days are Σ capital × days: a project holding the largest capital (999999999999.99, as the
ledger allows) fits a one-day period and no longer one. The preview and the declaration of a longer
period answer 422 naming ``period_end`` (and ``total_capital_days`` in ``errors``), publish nothing,
and a shorter period still works. The inputs are published by stand-in ledger and rentals writers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import bearer, no_fold, running
from flask.testing import FlaskClient

from services.contracts.money import MAX_WIRE_FEN, format_yuan
from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS
from services.dividends.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import end_offsets
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

pytestmark = pytest.mark.kafka


@dataclass
class World:
    settings: Settings
    client: FlaskClient
    project_id: str
    board: str

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = self.client.post(path, json=body, headers=bearer(self.board))
        return response.status_code, dict(response.get_json())

    def dividends_end(self) -> dict[tuple[str, int], int]:
        return end_offsets(self.settings.bootstrap_servers, [DIVIDENDS])


def put(svc: EventService, event_type: str, subject: str, data: dict[str, Any]) -> None:
    with svc.writing():
        svc.publish([NewEvent(event_type, subject, data)], actor="system:test")


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("dividends-bounds")
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=folder / "data",
                        tokens_file=folder / "tokens.json", request_timeout_s=30)
    stand_ins = [EventService(name=name, settings=settings, store=ProjectionStore(folder / f"{name}.sqlite", ""),
                              fold=no_fold, inputs=[], owned=owned)
                 for name, owned in [("ledger", [LEDGER_INVESTMENTS, LEDGER_ENTRIES]), ("rentals", [RENTALS])]]
    for svc in stand_ins:
        svc.start()
    ledger, rentals = stand_ins
    project = f"bounds-{uuid.uuid4().hex[:8]}"
    put(ledger, "ProjectRegistered", project, {"project_id": project, "name": "测试产业园",
                                               "kind": "industrial_park", "town": "金清镇", "operator": "测试运营公司"})
    put(ledger, "CashInvested", project, {"investment_id": f"{project}-cash", "project_id": project,
                                          "investor_id": f"{project}-village", "investor_type": "collective",
                                          "amount": format_yuan(MAX_WIRE_FEN), "effective_on": "2026-01-01"})
    put(rentals, "RentReceived", project, {"payment_id": f"{project}-rent", "lease_id": f"{project}-lease",
                                           "project_id": project, "amount": "100000.00", "received_on": "2026-01-01"})
    assert settings.tokens_file is not None
    board = add_token(settings.tokens_file, name="board", role="board", scope=[project])
    try:
        with running(create_app, settings) as client:
            response = client.put(f"/v1/projects/{project}/policy", headers=bearer(board), json={
                "management_fee_rate": "0.05", "tax_rate": "0.10", "payout_ratio": "0.90", "guaranteed_rate": "0.00",
                "guarantee_until": None, "guarantor_id": None})
            assert response.status_code == 200, response.get_json()
            yield World(settings, client, project, board)
    finally:
        for svc in stand_ins:
            svc.stop()


def test_capital_days_beyond_the_largest_amount_are_refused_at_preview_and_declaration(world: World) -> None:
    period = {"period_start": "2026-01-01", "period_end": "2026-01-02"}  # 2 days × 999999999999.99
    before = world.dividends_end()
    for path in (f"/v1/projects/{world.project_id}/distributions/preview",
                 f"/v1/projects/{world.project_id}/distributions"):
        status, body = world.post(path, period)
        error = body["error"]
        assert (status, error["code"], error["field"]) == (422, "amount_out_of_range", "period_end"), body
        assert list(error["errors"]) == ["total_capital_days"]
        assert "1999999999999.98 yuan·days" in error["message"]
    assert world.dividends_end() == before


def test_a_period_short_enough_is_declared(world: World) -> None:
    status, body = world.post(f"/v1/projects/{world.project_id}/distributions",
                              {"period_start": "2026-02-01", "period_end": "2026-02-01"})
    assert status == 201, body
    assert body["total_capital_days"] == format_yuan(MAX_WIRE_FEN)
