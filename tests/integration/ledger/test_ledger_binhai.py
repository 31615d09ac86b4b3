"""The Binhai scenario's 19 villages, its state-owned co-investor, 2 projects, their investments and the
villages' development funds load through the ledger API, and every village's books show its 141."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import bearer, running
from flask.testing import FlaskClient

from services.contracts.money import format_yuan, parse_mu, parse_yuan, valuation_fen
from services.ledger.app import create_app
from services.runtime.config import PROJECT_ROOT, Settings

pytestmark = pytest.mark.kafka


def scenario_file() -> Path:
    """BAOTUAN_SCENARIO_FILE, else the project's data/ copy."""
    named = os.environ.get("BAOTUAN_SCENARIO_FILE")
    if named:
        return Path(named)
    return PROJECT_ROOT / "data" / "binhai_scenario.json"


def post(client: FlaskClient, tok: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers=bearer(tok))
    assert response.status_code in (200, 201), (path, body, response.get_json())
    return dict(response.get_json())


def get(client: FlaskClient, tok: str, path: str) -> dict[str, Any]:
    response = client.get(path, headers=bearer(tok))
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def test_the_binhai_villages_load_through_the_api_and_each_trial_balance_shows_its_141(
        settings: Settings, token: Callable[..., str], unique: str) -> None:
    scenario = json.loads(scenario_file().read_text(encoding="utf-8"))
    assert len(scenario["collectives"]) == 19

    def own(slug: str) -> str:
        return f"{slug}-{unique}"

    capital: dict[str, int] = {}  # investor -> Σ valuations and amounts from the file, in fen
    holdings: dict[str, dict[str, int]] = {}  # project -> investor -> capital, in fen
    for item in scenario["investments"]:
        fen = (valuation_fen(parse_mu(item["area_mu"]), parse_yuan(item["price_per_mu"])) if item["kind"] == "land"
               else parse_yuan(item["amount"]))
        investor, project = own(item["investor_id"]), own(item["project_id"])
        capital[investor] = capital.get(investor, 0) + fen
        holdings.setdefault(project, {})[investor] = holdings.get(project, {}).get(investor, 0) + fen
    admin = token("admin")
    with running(create_app, settings) as client:
        for collective in scenario["collectives"]:
            post(client, admin, "/v1/collectives", {**collective, "collective_id": own(collective["collective_id"])})
        for investor in scenario["investors"]:
            post(client, admin, "/v1/investors", {**investor, "investor_id": own(investor["investor_id"])})
        for project in scenario["projects"]:
            post(client, admin, "/v1/projects", {**project, "project_id": own(project["project_id"])})
        for item in scenario["investments"]:
            body = {k: v for k, v in item.items() if k != "project_id"}
            body["investor_id"] = own(item["investor_id"])
            invested = post(client, admin, f"/v1/projects/{own(item['project_id'])}/investments", body)
            assert invested["investor_type"] == item["investor_type"]
        batch = post(client, admin, "/v1/entries/batch", {"entries": [
            {"collective_id": own(fund["collective_id"]), "date": fund["date"], "memo": fund["memo"],
             "lines": [{"account": "102", "debit": fund["amount"]}, {"account": "503", "credit": fund["amount"]}]}
            for fund in scenario["development_funds"]]})
        assert {r["status"] for r in batch["results"]} == {201}

        long_term: dict[str, int] = {}
        for collective in scenario["collectives"]:
            village = own(collective["collective_id"])
            tb = get(client, admin, f"/v1/collectives/{village}/trial-balance?as_of=2025-12-31")
            rows = {row["code"]: row for row in tb["accounts"]}
            long_term[village] = sum(parse_yuan(row["balance"]) for code, row in rows.items() if code[:3] == "141")
            assert tb["totals"]["debit"] == tb["totals"]["credit"]
            assert rows["503"]["balance"] == "300000.00"
        registers = {own(p["project_id"]): get(client, admin, f"/v1/projects/{own(p['project_id'])}/register"
                                                               "?as_of=2025-12-31") for p in scenario["projects"]}
        report = get(client, admin, "/v1/reports/village-income?year=2024")

    villages = {own(c["collective_id"]) for c in scenario["collectives"]}
    assert long_term == {village: capital[village] for village in villages}
    lianmeng, shangtang = own("jinqing-lianmeng"), own("jinqing-shangtang")
    assert format_yuan(long_term[lianmeng]) == "3550000.00"  # 14.2 mu × 250,000.00
    assert format_yuan(long_term[shangtang]) == "32125000.00"  # 8.5 mu in each project + 27,875,000.00 cash
    for project_id, register in registers.items():
        assert {i["investor_id"]: parse_yuan(i["capital"]) for i in register["items"]} == holdings[project_id]
        assert register["total_capital"] == format_yuan(sum(holdings[project_id].values()))
    park = registers[own("binhai-park")]
    assert len(park["items"]) == 20  # 19 villages (v19 from 2025-07-01) and the state-owned company
    assert {i["investor_type"] for i in park["items"]} == {"collective", "company"}
    mine = [v for v in report["items"] if v["collective_id"] in villages]
    assert len(mine) == 19
    assert {(v["income"], v["below_million"], v["weak"]) for v in mine} == {("300000.00", True, False)}
