"""The rentals API as its tests drive it: a running rentals service beside a stand-in ledger that only
publishes ProjectRegistered (``World``), and a registered project with its operator (``Park``).

The same helpers serve the tests on the in-memory log (tests/unit/rentals) and on Kafka
(tests/integration/rentals).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from conftest import bearer, no_fold, without_receipts
from flask.testing import FlaskClient

from services.contracts.topics import LEDGER_INVESTMENTS
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore


def stand_in_ledger(settings: Settings, path: Path, log: EventLog | None = None) -> EventService:
    """A started writer of baotuan.ledger.investments.v1 that keeps no state (stop it afterwards)."""
    ledger = EventService(name="ledger", settings=settings, store=ProjectionStore(path, ""), fold=no_fold,
                          inputs=[], owned=[LEDGER_INVESTMENTS], log=log)
    ledger.start()
    return ledger


@dataclass
class World:
    """The running rentals service, a stand-in ledger and a token maker, shared by a test module.
    ``rentals_end()``: how far the rentals topic has grown (its records, or on Kafka its end offsets), to
    prove that a refused request published nothing."""

    settings: Settings
    client: FlaskClient
    ledger: EventService
    rentals_end: Callable[[], int]
    _numbers: Iterator[int] = field(default_factory=count)

    def token(self, role: str, scope: list[str] | tuple[str, ...] = ()) -> str:
        assert self.settings.tokens_file is not None
        return add_token(self.settings.tokens_file, name=f"{role}-{next(self._numbers)}", role=role, scope=scope)

    def register_project(self, project_id: str) -> None:
        with self.ledger.writing():
            self.ledger.publish([NewEvent("ProjectRegistered", project_id, {
                "project_id": project_id, "name": "路桥滨海产业园", "kind": "industrial_park", "town": "金清镇",
                "operator": "路桥滨海产业园运营有限公司"})], actor="admin:test")


@dataclass
class Park:
    """A registered project of one test, with its operator's token."""

    world: World
    project_id: str
    operator: str

    @property
    def client(self) -> FlaskClient:
        return self.world.client

    def post(self, url: str, body: dict[str, Any], status: int = 201, tok: str | None = None,
             **headers: str) -> dict[str, Any]:
        response = self.client.post(url, json=body, headers=bearer(tok or self.operator, **headers))
        assert response.status_code == status, response.get_json()
        result: dict[str, Any] = response.get_json()
        return without_receipts(result) if response.status_code < 300 else result

    def get(self, url: str, status: int = 200, tok: str | None = None) -> dict[str, Any]:
        response = self.client.get(url, headers=bearer(tok or self.operator))
        assert response.status_code == status, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result

    def building(self, building_id: str, area: str = "8400.00") -> str:
        full = f"{building_id}-{self.project_id}"
        self.post(f"/v1/projects/{self.project_id}/buildings",
                  {"building_id": full, "name": f"{building_id}号厂房", "floor_area_m2": area})
        return full

    def lease(self, building_id: str, start_on: str, end_on: str, rent: str, billing: str = "monthly",
              tenant: str = "台州卫浴制造有限公司", status: int = 201, **extra: Any) -> dict[str, Any]:
        return self.post(f"/v1/projects/{self.project_id}/leases", {
            "building_id": building_id, "tenant": {"name": tenant}, "start_on": start_on, "end_on": end_on,
            "monthly_rent": rent, "deposit": "0.00", "billing": billing, **extra}, status)

    def invoices(self, lease_id: str, up_to: str) -> dict[str, Any]:
        return self.post(f"/v1/leases/{lease_id}/invoices", {"up_to": up_to}, 200)

    def pay(self, lease_id: str, amount: str, received_on: str, **extra: Any) -> dict[str, Any]:
        return self.post(f"/v1/leases/{lease_id}/payments", {"amount": amount, "received_on": received_on, **extra})


def new_park(world: World, unique: str) -> Park:
    """A project of its own (``park-<unique>``), registered on the ledger, with its operator's token."""
    project_id = f"park-{unique}"
    world.register_project(project_id)
    return Park(world, project_id, world.token("operator", [project_id]))
