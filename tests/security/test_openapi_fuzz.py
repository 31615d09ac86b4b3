"""Bad input at scale: schemathesis fuzzes every operation of every service's OpenAPI document.

Valid-looking (positive) and schema-violating (negative) requests, with an admin token so
they get past access control to the parsers and the rules. No request may produce a 5xx,
and a request that was refused (4xx) must not have written anything: the end offsets of the
service's topics are the same after it as before. Path parameters name real resources half
the time, so the domain rules are reached, not just the 404s.

Bounded: ``BAOTUAN_FUZZ_EXAMPLES`` examples per operation and mode (default 25), on a broker
of the module's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conftest import bearer, running
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, MEMBERS, RENTALS
from services.devtools.broker import LocalBroker, free_port
from services.dividends.app import create_app as dividends_app
from services.ledger.app import create_app as ledger_app
from services.members.app import create_app as members_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import PROJECT_ROOT, Settings
from services.runtime.kafka_io import OffsetsClient
from services.runtime.service import EventService

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLES = int(os.environ.get("BAOTUAN_FUZZ_EXAMPLES", "25"))
OWNED = {"ledger": [LEDGER_ENTRIES, LEDGER_INVESTMENTS], "rentals": [RENTALS], "dividends": [DIVIDENDS],
         "members": [MEMBERS]}
FACTORIES: dict[str, Callable[..., Flask]] = {"ledger": ledger_app, "rentals": rentals_app,
                                              "dividends": dividends_app, "members": members_app}


@dataclass
class World:
    broker: LocalBroker
    root: Path
    admin: str
    clients: dict[str, FlaskClient] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)

    def settings(self, name: str) -> Settings:
        return Settings(bootstrap_servers=self.broker.bootstrap, data_dir=self.root / name,
                        tokens_file=self.root / "tokens.json", request_timeout_s=10)


def _post(client: FlaskClient, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers=bearer(token, **{"Idempotency-Key": f"seed{path}"}))
    assert response.status_code in (200, 201), (path, response.status_code, response.get_json())
    result: dict[str, Any] = response.get_json()
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The four services in-process on a broker of their own, with a village (its charter and a household), a
    park, a lease and a declared distribution to aim at."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("needs a broker of its own (writes are counted by end offsets)")
    root = tmp_path_factory.mktemp("fuzz")
    broker = LocalBroker(root / "kafka", free_port(), free_port())
    broker.start()
    admin = add_token(root / "tokens.json", name="fuzz-admin", role="admin")
    found = World(broker, root, admin)
    try:
        with running(ledger_app, found.settings("ledger")) as ledger, \
                running(rentals_app, found.settings("rentals")) as rentals, \
                running(dividends_app, found.settings("dividends")) as dividends, \
                running(members_app, found.settings("members")) as members:
            found.clients = {"ledger": ledger, "rentals": rentals, "dividends": dividends, "members": members}
            _post(ledger, "/v1/collectives", admin, {"collective_id": "fz-village", "name": "模糊村", "town": "金清镇"})
            _post(ledger, "/v1/projects", admin, {"project_id": "fz-park", "name": "模糊园", "kind": "industrial_park",
                                                  "town": "金清镇", "operator": "运营公司"})
            _post(ledger, "/v1/projects/fz-park/investments", admin,
                  {"kind": "land", "investor_id": "fz-village", "area_mu": "10", "price_per_mu": "100000.00",
                   "effective_on": "2026-01-01"})
            entry = _post(ledger, "/v1/collectives/fz-village/entries", admin,
                          {"date": "2026-02-01", "lines": [{"account": "102", "debit": "10.00"},
                                                           {"account": "504", "credit": "10.00"}]})
            building = _post(rentals, "/v1/projects/fz-park/buildings", admin,
                             {"name": "1号", "floor_area_m2": "100.00"})
            lease = _post(rentals, "/v1/projects/fz-park/leases", admin,
                          {"building_id": building["building_id"], "tenant": {"name": "租户"},
                           "start_on": "2026-01-01", "end_on": "2027-01-01", "monthly_rent": "1000.00",
                           "deposit": "0.00", "billing": "monthly"})
            _post(rentals, f"/v1/leases/{lease['lease_id']}/payments", admin,
                  {"amount": "1000.00", "received_on": "2026-01-05"})
            put = dividends.put("/v1/projects/fz-park/policy", headers=bearer(admin), json={
                "management_fee_rate": "0.05", "tax_rate": "0.06", "payout_ratio": "0.90", "guaranteed_rate": "0"})
            assert put.status_code == 200, put.get_json()
            declared = _post(dividends, "/v1/projects/fz-park/distributions", admin,
                             {"period_start": "2026-01-01", "period_end": "2026-01-31"})
            charter = members.put("/v1/collectives/fz-village/charter", headers=bearer(admin), json={
                "share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"}], "adopted_on": "2026-01-01"})
            assert charter.status_code == 200, charter.get_json()
            _post(members, "/v1/collectives/fz-village/households", admin,
                  {"household_id": "fz-hu", "head_name": "模糊户", "registered_on": "2026-01-01",
                   "holdings": {"population": "2"}})
            found.known = {"household_id": "fz-hu",
                           "collective_id": "fz-village", "investor_id": "fz-village", "project_id": "fz-park",
                           "entry_id": entry["entry_id"], "building_id": building["building_id"],
                           "lease_id": lease["lease_id"], "distribution_id": declared["distribution_id"]}
            yield found
    finally:
        broker.stop()


def record_figures(title: str, figures: dict[str, Any]) -> None:
    """Print the run's figures and append them to var/fault-figures.jsonl (as tests/faults do)."""
    print(f"[{title}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    out = PROJECT_ROOT / "var" / "fault-figures.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"test": title, **figures}, ensure_ascii=False) + "\n")


def _quiet(svc: EventService, timeout_s: float = 10.0) -> None:
    """Wait until the service owes no derived event (its reactor writes on its own, not for a request)."""
    deadline = time.monotonic() + timeout_s
    while svc.pending_derived() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("name", ["ledger", "rentals", "dividends", "members"])
def test_no_fuzzed_request_gets_a_5xx_and_no_refused_request_writes(world: World, name: str) -> None:
    client = world.clients[name]
    app = client.application
    svc: EventService = app.extensions["baotuan_service"]
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    offsets = OffsetsClient(world.broker.bootstrap)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode), aim=st.booleans())
            @hsettings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                       suppress_health_check=list(HealthCheck))
            def fuzz(case: Any, aim: bool) -> None:
                if aim and case.path_parameters:
                    case.path_parameters = {k: world.known.get(k, v) for k, v in case.path_parameters.items()}
                _quiet(svc)
                before = offsets.end_offsets(OWNED[name])
                response = case.call(headers={"Authorization": f"Bearer {world.admin}"})
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                    f"{response.text[:300]} body={case.body!r:.300}")
                elif 400 <= response.status_code < 500:
                    after = offsets.end_offsets(OWNED[name])
                    if after != before:
                        failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} but wrote "
                                        f"{sum(after.values()) - sum(before.values())} record(s)")

            with contextlib.suppress(Unsatisfiable):  # no schema-violating request exists for this operation
                fuzz()
    offsets.close()

    cases = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    record_figures(f"fuzz-{name}", {"operations": operations, "cases": cases, "5xx": server_errors,
                                    "refused_with_a_write": len([f for f in failures if "wrote" in f]),
                                    "statuses": {str(k): v for k, v in sorted(statuses.items())}})
    assert failures == [], "\n".join(failures[:20])
    assert cases >= operations * EXAMPLES  # the fuzzer really ran
