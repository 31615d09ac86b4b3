"""The rentals service's bounds over HTTP, on a real broker (DESIGN §3, §9; issue 13 points 2 and 6).

A lease of exactly 20 years is signed; longer ones, and rents whose invoice would not fit the wire
format, are in the refused-input table of test_rentals_api.py. Leases already in the log from before
those rules (published here straight through the service's writer) cannot make an invoice run publish
more than 5,000 events, nor an invoice beyond the largest amount: 422, and nothing is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import bearer, no_fold, running
from flask.testing import FlaskClient

from services.contracts.money import MAX_WIRE_FEN, format_yuan
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS
from services.rentals.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import OffsetsClient
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

pytestmark = pytest.mark.kafka

BOUND = format_yuan(MAX_WIRE_FEN)


@dataclass
class World:
    client: FlaskClient
    rentals: EventService
    offsets: OffsetsClient
    project_id: str
    building_id: str
    operator: str

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = self.client.post(url, json=body, headers=bearer(self.operator))
        return response.status_code, dict(response.get_json())

    def rentals_end(self) -> int:
        return sum(self.offsets.end_offsets([RENTALS]).values())

    def lease(self, lease_id: str, start_on: str, end_on: str, rent: str, billing: str = "monthly") -> dict[str, Any]:
        return {"building_id": self.building_id, "tenant": {"name": "台州卫浴制造有限公司"}, "start_on": start_on,
                "end_on": end_on, "monthly_rent": rent, "deposit": "0.00", "billing": billing, "lease_id": lease_id}

    def legacy_lease(self, lease_id: str, start_on: str, end_on: str, rent: str, billing: str = "monthly") -> None:
        """A LeaseSigned written before the bounds: straight through the service's own writer."""
        data = {**self.lease(lease_id, start_on, end_on, rent, billing), "project_id": self.project_id}
        with self.rentals.writing():
            self.rentals.publish([NewEvent("LeaseSigned", self.project_id, data)], actor="operator:legacy")


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("rentals-bounds")
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=tmp / "data", tokens_file=tmp / "tokens.json",
                        request_timeout_s=30)
    ledger = EventService(name="ledger", settings=settings, store=ProjectionStore(tmp / "ledger.sqlite", ""),
                          fold=no_fold, inputs=[], owned=[LEDGER_INVESTMENTS])
    ledger.start()
    offsets = OffsetsClient(kafka_bootstrap)
    project_id = f"bounds-{uuid.uuid4().hex[:8]}"
    with ledger.writing():
        ledger.publish([NewEvent("ProjectRegistered", project_id, {
            "project_id": project_id, "name": "路桥滨海产业园", "kind": "industrial_park", "town": "金清镇",
            "operator": "路桥滨海产业园运营有限公司"})], actor="admin:test")
    assert settings.tokens_file is not None
    operator = add_token(settings.tokens_file, name="operator", role="operator", scope=[project_id])
    try:
        with running(create_app, settings) as client:
            response = client.post(f"/v1/projects/{project_id}/buildings", headers=bearer(operator),
                                   json={"building_id": f"b1-{project_id}", "name": "1号厂房",
                                         "floor_area_m2": "8400.00"})
            assert response.status_code == 201, response.get_json()
            yield World(client, client.application.extensions["baotuan_service"], offsets, project_id,
                        f"b1-{project_id}", operator)
    finally:
        offsets.close()
        ledger.stop()


def test_a_lease_of_exactly_twenty_years_is_signed(world: World) -> None:
    status, body = world.post(f"/v1/projects/{world.project_id}/leases",
                              world.lease(f"twenty-{world.project_id}", "2030-03-01", "2050-03-01", "109200.00"))
    assert status == 201, body
    assert (body["start_on"], body["end_on"]) == ("2030-03-01", "2050-03-01")


def test_an_invoice_run_that_would_publish_more_than_5000_events_is_refused_and_writes_nothing(
        world: World) -> None:
    lease_id = f"legacy-{world.project_id}"
    world.legacy_lease(lease_id, "2400-01-01", "9999-01-01", "1000.00")
    before = world.rentals_end()
    status, body = world.post(f"/v1/leases/{lease_id}/invoices", {"up_to": "2900-01-01"})  # 6,001 invoices
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "too_many_events", "up_to"), body
    assert "6,001" in body["error"]["message"] and "5,000" in body["error"]["message"]
    assert world.rentals_end() == before
    # In steps it works: the first half year, then nothing more is owed up to the same date.
    status, body = world.post(f"/v1/leases/{lease_id}/invoices", {"up_to": "2400-06-30"})
    assert status == 200 and len(body["created"]) == 6, body


def test_an_invoice_beyond_the_largest_amount_is_never_issued(world: World) -> None:
    lease_id = f"legacy-annual-{world.project_id}"
    world.legacy_lease(lease_id, "2200-01-01", "2201-01-01", "100000000000.00", billing="annual")
    before = world.rentals_end()
    status, body = world.post(f"/v1/leases/{lease_id}/invoices", {"up_to": "2200-12-31"})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "amount_out_of_range", "lease_id"), body
    assert world.rentals_end() == before


def test_the_tenants_credit_may_reach_the_largest_amount_and_not_one_fen_more(world: World) -> None:
    lease_id = f"credit-{world.project_id}"
    status, body = world.post(f"/v1/projects/{world.project_id}/leases",
                              world.lease(lease_id, "2300-01-01", "2301-01-01", "1000.00"))
    assert status == 201, body
    status, body = world.post(f"/v1/leases/{lease_id}/payments", {"amount": BOUND, "received_on": "2299-12-01"})
    assert status == 201 and body["credit"] == BOUND, body
    before = world.rentals_end()
    status, body = world.post(f"/v1/leases/{lease_id}/payments", {"amount": "0.01", "received_on": "2299-12-02"})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "amount_out_of_range", "amount"), body
    assert world.rentals_end() == before
