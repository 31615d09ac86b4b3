"""Each service answers as its OpenAPI document says: `schemathesis run` against the live services.

The three services run in-process on a broker of the module's own (the fuzzed writes stay out of
the session's topics), each served over HTTP on a free loopback port;
the schemathesis CLI (all its phases: examples, coverage, fuzzing, stateful) reads each
service's ``/openapi.json`` with an admin token and runs exactly these checks on every
answer: no 5xx (``not_a_server_error``), a status the operation documents
(``status_code_conformance``), the documented content type (``content_type_conformance``)
and a body that matches the documented schema (``response_schema_conformance``), errors
included. Path, query and body ids name real resources half the time (schemathesis
dictionaries), so the success bodies are checked too, not only the 404s.

Bounded: ``BAOTUAN_CONFORMANCE_EXAMPLES`` examples per operation (default 50), one worker;
about a minute per service on two shared cores. A failure prints schemathesis' report with
the ``curl`` line that reproduces it, and its seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Server
from flask import Flask

from services.devtools.broker import LocalBroker, free_port
from services.dividends.app import create_app as dividends_app
from services.ledger.app import create_app as ledger_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("BAOTUAN_CONFORMANCE_EXAMPLES", "50"))
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
FACTORIES: dict[str, Callable[..., Flask]] = {"ledger": ledger_app, "rentals": rentals_app,
                                              "dividends": dividends_app}


@dataclass
class Stack:
    root: Path
    admin: str
    urls: dict[str, str] = field(default_factory=dict)
    #: real ids by parameter name, for schemathesis' dictionaries
    known: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The three services over HTTP with a village, a park, an entry, a lease paid and a declared distribution."""
    root = tmp_path_factory.mktemp("conformance")
    tokens = root / "tokens.json"
    found = Stack(root, add_token(tokens, name="conformance-admin", role="admin"))
    servers: list[Server] = []
    broker: LocalBroker | None = None
    kafka_bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not kafka_bootstrap:
        broker = LocalBroker(root / "kafka", free_port(), free_port())
        broker.start()
        kafka_bootstrap = broker.bootstrap
    try:
        for name, factory in FACTORIES.items():
            settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=root / name, tokens_file=tokens,
                                request_timeout_s=15)
            servers.append(Server(factory(settings)))
            found.urls[name] = servers[-1].url
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {found.admin}"

            def post(name: str, path: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
                response = http.request(method, found.urls[name] + path, json=body, timeout=60)
                assert response.status_code in (200, 201), (path, response.status_code, response.text)
                result: dict[str, Any] = response.json()
                return result

            tag = uuid.uuid4().hex[:8]
            village, park = f"cf-village-{tag}", f"cf-park-{tag}"
            post("ledger", "/v1/collectives", {"collective_id": village, "name": "一致村", "town": "金清镇"})
            post("ledger", "/v1/projects", {"project_id": park, "name": "一致园", "kind": "industrial_park",
                                            "town": "金清镇", "operator": "运营公司"})
            post("ledger", f"/v1/projects/{park}/investments",
                 {"kind": "land", "investor_id": village, "area_mu": "10", "price_per_mu": "100000.00",
                  "effective_on": "2026-01-01"})
            entry = post("ledger", f"/v1/collectives/{village}/entries",
                         {"date": "2026-02-01", "lines": [{"account": "102", "debit": "10.00"},
                                                          {"account": "504", "credit": "10.00"}]})
            building = post("rentals", f"/v1/projects/{park}/buildings", {"name": "1号", "floor_area_m2": "100.00"})
            lease = post("rentals", f"/v1/projects/{park}/leases",
                         {"building_id": building["building_id"], "tenant": {"name": "租户"},
                          "start_on": "2026-01-01", "end_on": "2027-01-01", "monthly_rent": "1000.00",
                          "deposit": "0.00", "billing": "monthly"})
            post("rentals", f"/v1/leases/{lease['lease_id']}/payments",
                 {"amount": "1000.00", "received_on": "2026-01-05"})
            post("dividends", f"/v1/projects/{park}/policy", {"management_fee_rate": "0.05", "tax_rate": "0.06",
                                                              "payout_ratio": "0.90", "guaranteed_rate": "0"},
                 method="PUT")
            declared = post("dividends", f"/v1/projects/{park}/distributions",
                            {"period_start": "2026-01-01", "period_end": "2026-01-31"})
        found.known = {"collective_id": village, "investor_id": village, "project_id": park,
                       "entry_id": entry["entry_id"], "building_id": building["building_id"],
                       "lease_id": lease["lease_id"], "distribution_id": declared["distribution_id"]}
        yield found
    finally:
        for server in servers:
            server.stop()
        if broker is not None:
            broker.stop()


def config_file(stack: Stack, path: Path) -> Path:
    """schemathesis.toml: the admin token, and each id parameter (path, query, body) drawn from the
    real ids half the time."""
    lines = [f'headers = {{ Authorization = "Bearer {stack.admin}" }}', ""]
    for name, value in stack.known.items():
        lines += [f"[dictionaries.{name}]", f"values = [{json.dumps(value)}]", ""]
    lines.append("[parameters]")
    for name in stack.known:
        for where in ("path", "query", "body"):
            lines.append(f'"{where}.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def schemathesis_run(stack: Stack, name: str, workdir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``schemathesis run`` of one service's /openapi.json with the four checks; its output and JSON report."""
    report = workdir / f"{name}-report.json"
    command = [str(Path(sys.executable).with_name("schemathesis")),
               "--config-file", str(config_file(stack, workdir / f"{name}.toml")),
               "run", f"{stack.urls[name]}/openapi.json", "--checks", CHECKS,
               "--max-examples", str(EXAMPLES), "--workers", "1", "--request-timeout", "60",
               "--generation-database", "none", "--no-color", "--report", "json", "--report-json-path", str(report)]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=840, check=False)
    result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
    return done, result


@pytest.mark.parametrize("name", list(FACTORIES))
def test_schemathesis_finds_every_answer_as_the_openapi_document_says(stack: Stack, name: str,
                                                                      tmp_path: Path) -> None:
    done, report = schemathesis_run(stack, name, tmp_path)
    output = done.stdout[-20_000:] + done.stderr[-5_000:]
    assert done.returncode == 0 and report.get("exit_code") == 0, output
    operations = report["operations"]
    assert operations["tested"] == operations["total"] > 0, output
    assert report["failures"] == [] and report["errors"] == [], output
    assert all(phase["status"] in ("success", "skipped") for phase in report["phases"].values()), report["phases"]
    # Success bodies were checked against their schemas too, not only errors.
    accepted = sum(rates.get("accepted", 0) for phases in report["valid_rates"].values() for rates in phases.values())
    cases = report["test_cases"]["generated"]
    print(f"[conformance-{name}] seed={report['seed']} operations={operations['tested']} cases={cases} "
          f"accepted={accepted}")
    assert accepted > 0, output
    assert cases >= operations["tested"] * min(EXAMPLES, 10), output  # the fuzzer really ran
