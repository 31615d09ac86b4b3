"""The scenario file: validation that names the record and field, the API calls it becomes, the tables."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from services.devtools.scenario.loader import DeclaredDistribution, ImportResult, as_json, capital_at, plan, record_key
from services.devtools.scenario.schemas import SECTIONS, ScenarioError, read_scenario, validate_scenario
from services.devtools.scenario.table import PayoutView, grouped, payout_table
from services.runtime.config import PROJECT_ROOT

BINHAI = PROJECT_ROOT / "data" / "binhai_scenario.json"


@pytest.fixture(scope="module")
def binhai_raw() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(BINHAI.read_text(encoding="utf-8"))
    return raw


def test_the_binhai_scenario_is_valid_and_becomes_one_call_per_record() -> None:
    scenario = read_scenario(BINHAI)
    calls = plan(scenario)
    assert len(calls) == len(scenario) == 320
    assert len({c.idempotency_key for c in calls}) == 320
    assert [c.record.split("[")[0] for c in calls] == sorted(
        (c.record.split("[")[0] for c in calls), key=SECTIONS.index)


def test_a_record_keeps_its_idempotency_key_wherever_it_sits_in_whichever_file(
        binhai_raw: dict[str, Any], tmp_path: Path) -> None:
    moved = copy.deepcopy(binhai_raw)
    moved["rent_payments"].reverse()
    elsewhere = tmp_path / "another-name.json"
    elsewhere.write_text(json.dumps(moved), encoding="utf-8")
    original = {c.idempotency_key for c in plan(read_scenario(BINHAI))}
    assert {c.idempotency_key for c in plan(read_scenario(elsewhere))} == original


def test_two_identical_records_are_two_records_not_a_repeat(binhai_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(binhai_raw)
    raw["expenses"].append(copy.deepcopy(raw["expenses"][0]))
    calls = [c for c in plan(validate_scenario(raw)) if c.record.startswith("expenses[")]
    assert calls[0].body == calls[-1].body
    assert calls[0].idempotency_key != calls[-1].idempotency_key
    assert calls[0].idempotency_key == record_key("expenses", raw["expenses"][0])


def test_records_become_the_public_api_requests(binhai_raw: dict[str, Any]) -> None:
    calls = {c.record: c for c in plan(validate_scenario(binhai_raw))}
    fund = calls["development_funds[0]"]
    assert (fund.service, fund.method, fund.path) == ("ledger", "POST", "/v1/collectives/jinqing-lianmeng/entries")
    assert fund.body == {"date": "2024-03-15", "memo": "飞地抱团项目一次性发展资金",
                         "lines": [{"account": "102", "debit": "300000.00"}, {"account": "503", "credit": "300000.00"}]}
    rent = calls["rent_payments[0]"]
    assert (rent.service, rent.path) == ("rentals", "/v1/leases/lease-binhai-b01/payments")
    assert rent.body == {"amount": "109200.00", "received_on": "2025-03-10"}
    land = calls["investments[0]"]
    assert land.path == "/v1/projects/binhai-park/investments"
    assert land.body == {"kind": "land", "investor_id": "jinqing-lianmeng", "area_mu": "14.2000",
                         "price_per_mu": "250000.00", "effective_on": "2024-03-01"}
    policy = calls["policies[1]"]
    assert (policy.service, policy.method, policy.path) == ("dividends", "PUT", "/v1/projects/jinqing-market/policy")
    assert "project_id" not in policy.body
    declare = calls["distributions[2]"]
    assert declare.body == {"period_start": "2025-01-01", "period_end": "2025-12-31"}


def _set(section: str, index: int, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw[section][index][field] = value
    return change


def _drop(section: str, index: int, field: str) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        del raw[section][index][field]
    return change


def _whole(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw[key] = value
    return change


BAD_FILES = [
    ("float area", _set("investments", 3, "area_mu", 14.3), "investments[3].area_mu"),
    ("five decimal area", _set("investments", 3, "area_mu", "14.30001"), "investments[3].area_mu"),
    ("amount with three decimals", _set("rent_payments", 7, "amount", "109200.001"), "rent_payments[7].amount"),
    ("negative expense", _set("expenses", 2, "amount", "-60000.00"), "expenses[2].amount"),
    ("missing effective date", _drop("investments", 5, "effective_on"), "investments[5].effective_on"),
    ("impossible date", _set("rent_payments", 0, "received_on", "2025-02-30"), "rent_payments[0].received_on"),
    ("unknown field", _set("collectives", 2, "mayor", "张三"), "collectives[2].mayor"),
    ("uppercase id", _set("collectives", 0, "collective_id", "Lianmeng"), "collectives[0].collective_id"),
    ("land share with an amount", _set("investments", 0, "amount", "1.00"), "investments[0].amount"),
    ("cash investment without amount", _drop("investments", 19, "amount"), "investments[19].amount"),
    ("unknown investor", _set("investments", 4, "investor_id", "jinqing-v99"), "investments[4].investor_id"),
    ("wrong investor type", _set("investments", 19, "investor_type", "collective"), "investments[19].investor_type"),
    ("unknown project", _set("expenses", 1, "project_id", "nowhere-park"), "expenses[1].project_id"),
    ("lease of another project's building", _set("leases", 0, "building_id", "jinqing-market-h1"),
     "leases[0].building_id"),
    ("payment of an unknown lease", _set("rent_payments", 9, "lease_id", "lease-x"), "rent_payments[9].lease_id"),
    ("duplicate collective", _set("collectives", 5, "collective_id", "jinqing-v03"), "collectives[5].collective_id"),
    ("lease ending before it starts", _set("leases", 2, "end_on", "2020-01-01"), "leases[2].end_on"),
    ("period backwards", _set("distributions", 1, "period_end", "2025-12-31"), "distributions[1].period_end"),
    ("rate as a number", _set("policies", 0, "tax_rate", 0.12), "policies[0].tax_rate"),
    ("unknown billing", _set("leases", 4, "billing", "weekly"), "leases[4].billing"),
    ("tenant without name", _set("leases", 1, "tenant", {}), "leases[1].tenant.name"),
    ("unknown guarantor", _set("policies", 0, "guarantor_id", "nobody-co"), "policies[0].guarantor_id"),
    ("record not an object", _whole("buildings", ["b01"]), "buildings[0]"),
    ("section not a list", _whole("leases", {"lease_id": "x"}), "leases"),
    ("unknown section", _whole("tenants", []), "tenants"),
]


@pytest.mark.parametrize(("case", "change", "path"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_is_refused_naming_the_record_and_field(
        binhai_raw: dict[str, Any], case: str, change: Callable[[dict[str, Any]], None], path: str) -> None:
    raw = copy.deepcopy(binhai_raw)
    change(raw)
    with pytest.raises(ScenarioError) as refused:
        validate_scenario(raw)
    assert refused.value.path == path, str(refused.value)


def test_a_file_that_is_not_json_is_refused_with_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"collectives": [\n  {"collective_id": "a1",}\n]}', encoding="utf-8")
    with pytest.raises(ScenarioError, match="line 2"):
        read_scenario(broken)


def test_capital_at_period_end_counts_only_investments_already_effective() -> None:
    scenario = read_scenario(BINHAI)
    mid_2025 = capital_at(scenario, "binhai-park", "2025-06-30")
    end_2025 = capital_at(scenario, "binhai-park", "2025-12-31")
    assert mid_2025["jinqing-lianmeng"] == 355_000_000  # 14.2 mu × 250,000.00 yuan, in fen
    assert "jinqing-v19" not in mid_2025  # joined 2025-07-01
    assert end_2025["jinqing-v19"] == 372_500_000
    assert end_2025["luqiao-state-assets"] == 5_000_000_000
    assert capital_at(scenario, "jinqing-market", "2025-12-31") == {"jinqing-shangtang": 212_500_000 + 2_787_500_000}


DECLARED = {
    "distribution_id": "demo-park-2025-01-01-2025-12-31", "gross_rent": "1000.00", "expenses": "0.00",
    "pool": "900.00", "total_top_up": "50.00", "total_payout": "950.00", "status": "declared",
    "allocations": [
        {"investor_id": "b-co", "investor_type": "company", "capital_days": "3650.00", "pro_rata": "600.00",
         "guaranteed_floor": "0.00", "top_up": "0.00", "payout": "600.00", "paid": False},
        {"investor_id": "a-village", "investor_type": "collective", "capital_days": "1825.00", "pro_rata": "300.00",
         "guaranteed_floor": "350.00", "top_up": "50.00", "payout": "350.00", "paid": False},
    ],
}


def test_the_json_output_has_exactly_the_documented_shape() -> None:
    result = ImportResult(calls=1, distributions=[DeclaredDistribution(
        {"project_id": "demo-park", "period_start": "2025-01-01", "period_end": "2025-12-31"}, DECLARED)])
    [doc] = as_json(result)["distributions"]
    assert list(doc) == ["project_id", "period_start", "period_end", "distribution_id", "gross_rent", "pool",
                         "total_top_up", "total_payout", "allocations"]
    assert doc["allocations"][1] == {"investor_id": "a-village", "capital_days": "1825.00", "pro_rata": "300.00",
                                     "guaranteed_floor": "350.00", "top_up": "50.00", "payout": "350.00"}


def test_the_payout_table_lists_villages_first_with_exact_totals() -> None:
    view = PayoutView(declared=DECLARED, project_id="demo-park", project_name="示范园", period_start="2025-01-01",
                      period_end="2025-12-31", names={"a-village": "甲村", "b-co": "乙公司"},
                      capital={"a-village": 100_000_00, "b-co": 2_000_000_00})
    console = Console(width=140, file=io.StringIO())
    console.print(payout_table(view))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert text.index("甲村") < text.index("乙公司 (company)")
    total_line = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert total_line.split()[1:] == ["2,100,000.00", "900.00", "350.00", "50.00", "950.00"]


@pytest.mark.parametrize(("amount", "shown"), [("0.00", "0.00"), ("999.99", "999.99"), ("1000.00", "1,000.00"),
                                                ("3550000.00", "3,550,000.00"), ("-1234567.89", "-1,234,567.89")])
def test_amounts_are_grouped_by_thousands(amount: str, shown: str) -> None:
    assert grouped(amount) == shown
