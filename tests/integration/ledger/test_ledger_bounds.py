"""The ledger over HTTP with the largest amounts (DESIGN §3, issue 13 point 2), on a real broker.

Amounts at the bound (999999999999.99 yuan) are accepted, as many as anyone posts: 100,000 of them
on one account add up to ~10^19 fen, past SQLite's 64-bit SUM. The reports — trial balance,
balance sheet, income statement and the town's village income report — keep answering 200, to
the fen. A project's capital may reach the bound, never pass it. (One amount beyond the bound is
in the bad-input table of test_ledger_api.py.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import bearer, kept_token, running
from flask.testing import FlaskClient

from services.contracts.money import MAX_WIRE_FEN, format_yuan
from services.contracts.topics import LEDGER_INVESTMENTS
from services.ledger.app import create_app
from services.runtime.config import Settings
from services.runtime.kafka_io import OffsetsClient

pytestmark = pytest.mark.kafka

BOUND = format_yuan(MAX_WIRE_FEN)  # "999999999999.99"
BATCHES, ENTRIES_PER_BATCH, SIDE = 10, 100, 100  # 1,000 entries of 100 debits + 100 credits (~1 MB a batch)
LINES_PER_SIDE = BATCHES * ENTRIES_PER_BATCH * SIDE
TOTAL = format_yuan(LINES_PER_SIDE * MAX_WIRE_FEN)  # "99999999999999000.00", ~10^19 fen > 2^63


@dataclass
class World:
    settings: Settings
    client: FlaskClient
    u: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def village(self) -> str:
        return f"lb-{self.u}-village"

    @property
    def town(self) -> str:
        return f"边界镇{self.u}"

    def headers(self) -> dict[str, str]:
        return bearer(kept_token(self.settings, self.tokens, "admin"))

    def post(self, path: str, body: Any, status: int) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers())
        assert response.status_code == status, response.get_json()
        return dict(response.get_json())

    def ok(self, path: str) -> dict[str, Any]:
        response = self.client.get(path, headers=self.headers())
        assert response.status_code == 200, response.get_json()
        return dict(response.get_json())


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("ledger-bounds")
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=folder / "data",
                        tokens_file=folder / "tokens.json", request_timeout_s=30)
    with running(create_app, settings) as client:
        w = World(settings, client, uuid.uuid4().hex[:8])
        w.post("/v1/collectives", {"collective_id": w.village, "name": "边界村股份经济合作社", "town": w.town,
                                   "alliances": [f"边界联盟{w.u}"]}, 201)
        yield w


def test_many_entries_at_the_largest_amount_keep_every_report_answering_to_the_fen(world: World) -> None:
    lines = [{"account": "102", "debit": BOUND}] * SIDE + [{"account": "501", "credit": BOUND}] * SIDE
    for batch in range(BATCHES):
        entries = [{"collective_id": world.village, "date": f"2026-{(batch + n) % 12 + 1:02d}-15",
                    "memo": "边界", "lines": lines} for n in range(ENTRIES_PER_BATCH)]
        answer = world.post("/v1/entries/batch", {"entries": entries}, 200)
        assert {r["status"] for r in answer["results"]} == {201}

    books = f"/v1/collectives/{world.village}"
    tb = world.ok(f"{books}/trial-balance?as_of=2026-12-31")
    assert {row["code"]: (row["debit"], row["credit"], row["balance"]) for row in tb["accounts"]} == {
        "102": (TOTAL, "0.00", TOTAL), "501": ("0.00", TOTAL, TOTAL)}
    assert tb["totals"] == {"debit": TOTAL, "credit": TOTAL}

    sheet = world.ok(f"{books}/balance-sheet?year=2026")
    assert sheet["total_assets"] == sheet["total_liabilities_and_equity"] == TOTAL

    statement = world.ok(f"{books}/income-statement?year=2026")
    assert statement["net_income"] == statement["income"]["total"] == TOTAL

    report = world.ok(f"/v1/reports/village-income?year=2026&town={world.town}")
    assert [(v["collective_id"], v["income"]) for v in report["items"]] == [(world.village, TOTAL)]
    assert report["total_income"] == report["by_town"][0]["income"] == report["by_alliance"][0]["income"] == TOTAL


def test_a_projects_capital_may_reach_the_largest_amount_and_not_one_fen_more(world: World) -> None:
    project, company = f"lb-{world.u}-park", f"lb-{world.u}-soe"
    world.post("/v1/projects", {"project_id": project, "name": "边界产业园", "kind": "industrial_park",
                                "town": world.town, "operator": "边界运营公司"}, 201)
    world.post("/v1/investors", {"investor_id": company, "name": "边界国资", "investor_type": "company"}, 201)
    invest = f"/v1/projects/{project}/investments"
    world.post(invest, {"kind": "land", "investor_id": company, "area_mu": "1.0000", "price_per_mu": "1000.00",
                        "effective_on": "2026-01-01"}, 201)
    world.post(invest, {"kind": "cash", "investor_id": company, "amount": format_yuan(MAX_WIRE_FEN - 100_000),
                        "effective_on": "2026-02-01"}, 201)
    register = world.ok(f"/v1/projects/{project}/register?as_of=2026-12-31")
    assert register["total_capital"] == BOUND

    offsets = OffsetsClient(world.settings.bootstrap_servers)
    try:
        before = offsets.end_offsets([LEDGER_INVESTMENTS])
        for body, named in [({"kind": "cash", "investor_id": company, "amount": "0.01", "effective_on": "2026-06-01"},
                             "amount"),
                            ({"kind": "land", "investor_id": company, "area_mu": "0.0001", "price_per_mu": "100.00",
                              "effective_on": "2025-12-31"}, "area_mu")]:
            response = world.client.post(invest, json=body, headers=world.headers())
            error = response.get_json()["error"]
            assert (response.status_code, error["code"], error["field"]) == (422, "amount_out_of_range", named)
            assert BOUND in error["message"]
        assert offsets.end_offsets([LEDGER_INVESTMENTS]) == before
    finally:
        offsets.close()
