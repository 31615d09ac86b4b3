"""The rentals service over HTTP on a real broker: what only Kafka shows. A project the ledger registered a
moment ago is found (on a miss the service catches up with the ledger's topic), and the records the broker
holds carry amounts in their canonical form. Every other rule of the API, and the table of refused
inputs, runs on the in-memory log: tests/unit/rentals/test_rentals_api.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import bearer, running, without_receipts
from kafka_helpers import read_records
from rentals_world import Park, World, new_park, stand_in_ledger

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import RENTALS
from services.rentals.app import create_app
from services.runtime.config import Settings
from services.runtime.kafka_io import OffsetsClient

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("rentals-api")
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=tmp / "data", tokens_file=tmp / "tokens.json",
                        request_timeout_s=15)
    ledger = stand_in_ledger(settings, tmp / "ledger.sqlite")
    offsets = OffsetsClient(kafka_bootstrap)
    try:
        with running(create_app, settings) as client:
            # End offsets: they move with every write (records and transaction markers alike).
            yield World(settings, client, ledger, lambda: sum(offsets.end_offsets([RENTALS]).values()))
    finally:
        offsets.close()
        ledger.stop()


@pytest.fixture
def park(world: World, unique: str) -> Park:
    return new_park(world, unique)


def test_a_building_needs_a_project_registered_on_the_ledger(world: World, unique: str) -> None:
    project_id = f"late-{unique}"
    admin = world.token("admin")
    body = {"building_id": f"b1-{unique}", "name": "1号厂房", "floor_area_m2": "8400.00"}
    refused = world.client.post(f"/v1/projects/{project_id}/buildings", json=body, headers=bearer(admin))
    assert refused.status_code == 404
    assert refused.get_json()["error"]["field"] == "project_id"

    world.register_project(project_id)  # the ledger registers it; rentals sees it on its next request
    created = world.client.post(f"/v1/projects/{project_id}/buildings", json=body, headers=bearer(admin))
    assert created.status_code == 201
    building = without_receipts(created.get_json())
    assert building == {
        "building_id": f"b1-{unique}", "project_id": project_id, "name": "1号厂房", "floor_area_m2": "8400.00"}
    listed = world.client.get(f"/v1/projects/{project_id}/buildings", headers=bearer(admin)).get_json()
    assert listed["items"] == [building]



def test_amounts_written_with_leading_zeros_are_published_in_their_canonical_form(park: Park) -> None:
    """Issue 13.11: a clerk's "0060000.00" is taken as 60000.00, and every event carries "60000.00"."""
    expense = park.post(f"/v1/projects/{park.project_id}/expenses",
                        {"category": "maintenance", "amount": "0060000.00", "incurred_on": "2025-04-30"})
    assert expense["amount"] == "60000.00"
    park.post(f"/v1/projects/{park.project_id}/leases", {
        "building_id": park.building("b-canon"), "tenant": {"name": "台州某机电"}, "start_on": "2025-01-01",
        "end_on": "2026-01-01", "monthly_rent": "000080000.00", "deposit": "0.00", "billing": "monthly",
        "lease_id": f"canon-{park.project_id}"})
    payment = park.post(f"/v1/leases/canon-{park.project_id}/payments",
                        {"amount": "080000.00", "received_on": "2025-01-05"})
    assert payment["payment"]["amount"] == "80000.00"
    logged = [r.envelope["data"] for r in read_records(park.world.settings.bootstrap_servers, RENTALS,
                                                       key=park.project_id)]
    amounts = [(d.get("amount") or d.get("monthly_rent")) for d in logged if "amount" in d or "monthly_rent" in d]
    assert "60000.00" in amounts and "80000.00" in amounts
    assert all(a == format_yuan(parse_yuan(a, allow_negative=True)) for a in amounts), amounts
