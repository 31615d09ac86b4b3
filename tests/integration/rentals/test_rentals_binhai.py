"""The Binhai scenario's buildings, leases, rent payments and expenses load through the rentals API,
the received rent per project and year matches the scenario file, and a projection deleted and
rebuilt from the topics gives the same answers."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import bearer, no_fold, running
from flask.testing import FlaskClient

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_INVESTMENTS
from services.rentals.app import create_app
from services.runtime.config import PROJECT_ROOT, Settings
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

pytestmark = pytest.mark.kafka

SCENARIO = Path(os.environ.get("BAOTUAN_SCENARIO_FILE", PROJECT_ROOT / "data" / "binhai_scenario.json"))


def register_projects(settings: Settings, projects: list[dict[str, Any]]) -> None:
    """Publish ProjectRegistered as the ledger would (rentals only reads it)."""
    store = ProjectionStore(settings.data_dir / "ledger-stand-in.sqlite", "")
    ledger = EventService(name="ledger", settings=settings, store=store, fold=no_fold, inputs=[],
                          owned=[LEDGER_INVESTMENTS])
    ledger.start()
    try:
        with ledger.writing():
            ledger.publish([NewEvent("ProjectRegistered", p["project_id"], p) for p in projects],
                           actor="admin:test")
    finally:
        ledger.stop()


def scenario_sums(scenario: dict[str, Any], suffix: str) -> dict[tuple[str, str], int]:
    """Σ rent_payments.amount per (project, year of received_on), straight from the file, in fen."""
    sums: dict[tuple[str, str], int] = {}
    for payment in scenario["rent_payments"]:
        key = (f"{payment['project_id']}-{suffix}", payment["received_on"][:4])
        sums[key] = sums.get(key, 0) + parse_yuan(payment["amount"])
    return sums


def post(client: FlaskClient, tok: str, url: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    response = client.post(url, json=body, headers=bearer(tok, **({"Idempotency-Key": key} if key else {})))
    assert response.status_code in (200, 201), (url, response.get_json())
    result: dict[str, Any] = response.get_json()
    return result


def get(client: FlaskClient, tok: str, url: str) -> dict[str, Any]:
    response = client.get(url, headers=bearer(tok))
    assert response.status_code == 200, (url, response.get_json())
    result: dict[str, Any] = response.get_json()
    return result


def load(client: FlaskClient, tok: str, scenario: dict[str, Any], suffix: str,
         sections: tuple[str, ...] = ("buildings", "leases", "rent_payments", "expenses")) -> None:
    """What `baotuan load` does for rentals: the scenario's records through the API, ids made unique,
    one Idempotency-Key per record (so loading a file twice records nothing twice)."""
    def uid(value: str) -> str:
        return f"{value}-{suffix}"

    for section in sections:
        for i, record in enumerate(scenario[section]):
            key = f"scenario:{section}:{i}:{suffix}"
            if section == "buildings":
                post(client, tok, f"/v1/projects/{uid(record['project_id'])}/buildings",
                     {"building_id": uid(record["building_id"]), "name": record["name"],
                      "floor_area_m2": record["floor_area_m2"]}, key)
            elif section == "leases":
                body = {k: v for k, v in record.items() if k != "project_id"}
                body.update(lease_id=uid(record["lease_id"]), building_id=uid(record["building_id"]))
                post(client, tok, f"/v1/projects/{uid(record['project_id'])}/leases", body, key)
            elif section == "rent_payments":  # "period" is the file's annotation, not part of the API
                post(client, tok, f"/v1/leases/{uid(record['lease_id'])}/payments",
                     {"amount": record["amount"], "received_on": record["received_on"]}, key)
            else:
                body = {k: v for k, v in record.items() if k != "project_id"}
                post(client, tok, f"/v1/projects/{uid(record['project_id'])}/expenses", body, key)


def snapshot(client: FlaskClient, tok: str, project_ids: list[str]) -> dict[str, Any]:
    """Every read the API offers for the projects, to compare a rebuilt projection with the original."""
    out: dict[str, Any] = {}
    for pid in project_ids:
        leases = get(client, tok, f"/v1/projects/{pid}/leases")["items"]
        out[pid] = {
            "buildings": get(client, tok, f"/v1/projects/{pid}/buildings"),
            "leases": [get(client, tok, f"/v1/leases/{lease['lease_id']}") for lease in leases],
            "rent_roll": get(client, tok, f"/v1/projects/{pid}/rent-roll?on=2026-06-30"),
            "occupancy": get(client, tok, f"/v1/projects/{pid}/occupancy?on=2025-09-15"),
            "arrears": get(client, tok, f"/v1/projects/{pid}/arrears?as_of=2026-06-30"),
            "income": get(client, tok, f"/v1/projects/{pid}/income?granularity=month"),
            "expenses": get(client, tok, f"/v1/projects/{pid}/expenses"),
        }
    return out


@pytest.mark.slow
def test_binhai_scenario_loads_and_received_rent_per_project_and_year_matches_the_file(
        settings: Settings, token: Callable[..., str], unique: str) -> None:
    if not SCENARIO.exists():
        pytest.skip(f"scenario file {SCENARIO} not found (set BAOTUAN_SCENARIO_FILE)")
    scenario = json.loads(SCENARIO.read_text(encoding="utf-8"))
    assert (len(scenario["buildings"]), len(scenario["leases"]), len(scenario["rent_payments"])) == (21, 21, 202)
    projects = [{**p, "project_id": f"{p['project_id']}-{unique}"} for p in scenario["projects"]]
    project_ids = [p["project_id"] for p in projects]
    register_projects(settings, projects)
    operator = token("operator", project_ids)
    auditor = token("auditor")

    with running(create_app, settings) as client:
        started = time.monotonic()
        load(client, operator, scenario, unique)
        seconds = time.monotonic() - started
        print(f"\nloaded 21 buildings, 21 leases, 202 payments, {len(scenario['expenses'])} expenses "
              f"in {seconds:.1f}s")

        load(client, operator, scenario, unique, ("rent_payments", "expenses"))  # again: nothing new
        expected = scenario_sums(scenario, unique)
        received: dict[tuple[str, str], int] = {}
        for pid in project_ids:
            for item in get(client, auditor, f"/v1/projects/{pid}/income?granularity=year")["items"]:
                received[(pid, item["period"])] = parse_yuan(item["amount"])
        for (pid, year), fen in sorted(received.items()):
            print(f"received rent {pid} {year}: API {format_yuan(fen)}, file {format_yuan(expected[(pid, year)])}")
        assert received == expected
        assert {k: format_yuan(v) for k, v in received.items()} == {
            (f"binhai-park-{unique}", "2025"): "8611900.00",
            (f"binhai-park-{unique}", "2026"): "10652600.00",
            (f"jinqing-market-{unique}", "2025"): "3099999.96",
            (f"jinqing-market-{unique}", "2026"): "1549999.98",
        }

        # With no invoice issued yet every payment is the tenant's credit; issuing the invoices up to
        # the last month paid uses it up exactly: nothing owed, no credit left, on every lease.
        for lease in scenario["leases"]:
            run = post(client, operator, f"/v1/leases/{lease['lease_id']}-{unique}/invoices", {"up_to": "2026-06-30"})
            assert run["existing"] == 0 and run["created"]
        for pid in project_ids:
            arrears = get(client, auditor, f"/v1/projects/{pid}/arrears?as_of=2026-06-30")
            assert arrears["total"] == "0.00" and arrears["items"] == []
            for lease in get(client, auditor, f"/v1/projects/{pid}/leases")["items"]:
                assert (lease["outstanding"], lease["credit"]) == ("0.00", "0.00"), lease["lease_id"]
                assert lease["invoiced"] == lease["received"]
            occupancy = get(client, auditor, f"/v1/projects/{pid}/occupancy?on=2026-06-30")
            assert occupancy["rate"] == "1.0000"
        park = f"binhai-park-{unique}"
        assert get(client, auditor, f"/v1/projects/{park}/occupancy?on=2025-09-15")["leased_area_m2"] == "85500.00"
        expenses = get(client, auditor, f"/v1/projects/{park}/expenses?from=2025-01-01&to=2025-12-31")
        assert expenses["total"] == "360000.00"  # 4 × 60000.00 maintenance + 120000.00 insurance
        before = snapshot(client, auditor, project_ids)

    # Delete the projection: replaying the topics rebuilds exactly the same answers.
    for suffix in ("", "-wal", "-shm"):
        Path(str(settings.data_dir / "rentals.sqlite") + suffix).unlink(missing_ok=True)
    with running(create_app, settings) as client:
        assert snapshot(client, auditor, project_ids) == before
