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

from services.devtools.scenario.loader import (
    DeclaredDistribution,
    ImportResult,
    MemberPlan,
    approval_call,
    as_json,
    capital_at,
    payment_calls,
    plan,
    record_key,
)
from services.devtools.scenario.schemas import SECTIONS, ScenarioError, read_scenario, validate_scenario
from services.devtools.scenario.table import PayoutView, PlanView, grouped, payout_table, plan_table
from services.runtime.config import PROJECT_ROOT

BINHAI = PROJECT_ROOT / "data" / "binhai_scenario.json"


@pytest.fixture(scope="module")
def binhai_raw() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(BINHAI.read_text(encoding="utf-8"))
    return raw


def test_the_binhai_scenario_is_valid_and_becomes_one_call_per_record() -> None:
    scenario = read_scenario(BINHAI)
    calls = plan(scenario)
    counts = {section: len(records) for section, records in scenario.sections.items()}
    # The park (320 records), then 联盟村's own books, members and 2025 plan (DESIGN §11).
    assert sum(counts[s] for s in SECTIONS[:SECTIONS.index("distributions") + 1]) == 320
    assert {s: counts[s] for s in SECTIONS[SECTIONS.index("entries"):]} == {
        "entries": 4, "year_end_closes": 2, "charters": 1, "households": 306, "share_transfers": 5, "member_plans": 1}
    assert len(calls) == len(scenario) == 639
    assert len({c.idempotency_key for c in calls}) == 639
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
    close = calls["year_end_closes[1]"]
    assert (close.service, close.method, close.path, close.body) == (
        "ledger", "POST", "/v1/collectives/jinqing-lianmeng/year-end-close", {"year": 2025})
    charter = calls["charters[0]"]
    assert (charter.service, charter.method, charter.path) == (
        "members", "PUT", "/v1/collectives/jinqing-lianmeng/charter")
    assert [k["kind"] for k in charter.body["share_kinds"]] == ["population", "farm-age"]
    household = calls["households[0]"]
    assert (household.service, household.path) == ("members", "/v1/collectives/jinqing-lianmeng/households")
    assert household.body["household_id"] == "lm-h001" and "collective_id" not in household.body
    transfer = calls["share_transfers[0]"]
    assert (transfer.service, transfer.path) == ("members", "/v1/collectives/jinqing-lianmeng/share-transfers")
    proposal = calls["member_plans[0]"]
    assert (proposal.service, proposal.method, proposal.path) == ("members", "POST",
                                                                  "/v1/collectives/jinqing-lianmeng/plans")
    assert "vote" not in proposal.body and "payments" not in proposal.body
    assert proposal.body["year"] == 2025


def test_a_plan_is_approved_with_its_vote_and_each_allocation_paid_but_the_unpaid(binhai_raw: dict[str, Any]) -> None:
    record = binhai_raw["member_plans"][0]
    proposal = next(c for c in plan(validate_scenario(binhai_raw)) if c.record == "member_plans[0]")
    approval = approval_call(proposal, record, "lianmeng-2025")
    assert approval is not None
    assert approval.path == "/v1/collectives/jinqing-lianmeng/plans/lianmeng-2025/approve"
    assert approval.body == {"vote": record["vote"]}
    skipped = record["payments"]["unpaid"][0]
    allocations = [{"household_id": "lm-h001", "weight": "4.4", "amount": "2073.72"},
                   {"household_id": skipped, "weight": "2", "amount": "942.60"},
                   {"household_id": "lm-h003", "weight": "0.1", "amount": "0.00"}]
    payments = payment_calls(proposal, record, {"plan_id": "lianmeng-2025", "allocations": allocations})
    assert [p.body for p in payments] == [{"household_id": "lm-h001", "amount": "2073.72",
                                           "paid_on": record["payments"]["paid_on"],
                                           "bank_reference": record["payments"]["bank_reference"]}]
    keys = {proposal.idempotency_key, approval.idempotency_key, payments[0].idempotency_key}
    assert len(keys) == 3  # each call of the record has its own key, the same on every import


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
    # A village's books and members (DESIGN §11).
    ("unbalanced entry", _set("entries", 0, "lines", [{"account": "102", "debit": "1.00"},
                                                      {"account": "501", "credit": "2.00"}]), "entries[0].lines"),
    ("line with both sides", _set("entries", 1, "lines", [{"account": "102", "debit": "1.00", "credit": "1.00"},
                                                          {"account": "501", "credit": "1.00"}]),
     "entries[1].lines.0.debit"),
    ("entry of an unknown village", _set("entries", 2, "collective_id", "jinqing-v99"), "entries[2].collective_id"),
    ("year closed twice", _set("year_end_closes", 0, "year", 2025), "year_end_closes[1].year"),
    ("year as a string", _set("year_end_closes", 0, "year", "2024"), "year_end_closes[0].year"),
    ("share weight as a number", _set("charters", 0, "share_kinds", [{"kind": "population", "name": "人口股",
                                                                      "weight": 1}]),
     "charters[0].share_kinds.0.weight"),
    ("share kind twice", _set("charters", 0, "share_kinds", [{"kind": "population", "name": "人口股", "weight": "1"},
                                                             {"kind": "population", "name": "人口股", "weight": "2"}]),
     "charters[0].share_kinds"),
    ("second charter", lambda raw: raw["charters"].append(copy.deepcopy(raw["charters"][0])),
     "charters[1].collective_id"),
    ("five-place holding", _set("households", 4, "holdings", {"population": "1.00001"}),
     "households[4].holdings.population.value"),
    ("negative holding", _set("households", 4, "holdings", {"population": "-1"}),
     "households[4].holdings.population.value"),
    ("holding of a kind not in the charter", _set("households", 6, "holdings", {"land": "1"}),
     "households[6].holdings.land"),
    ("holdings set after the shares were fixed", _set("households", 8, "effective_on", "2021-03-01"),
     "households[8].effective_on"),
    ("household registered after the shares were fixed", _set("households", 8, "registered_on", "2020-12-31"),
     "households[8].effective_on"),
    ("duplicate household", _set("households", 9, "household_id", "lm-h001"), "households[9].household_id"),
    ("member registered twice", lambda raw: raw["households"][10]["members"].insert(
        1, copy.deepcopy(raw["households"][0]["members"][0])), "households[10].members[1].member_id"),
    ("head name of blanks", _set("households", 11, "head_name", "   "), "households[11].head_name"),
    ("transfer to an unknown household", _set("share_transfers", 0, "to_household", "lm-h999"),
     "share_transfers[0].to_household"),
    ("transfer to itself", lambda raw: raw["share_transfers"][1].update(to_household=raw["share_transfers"][1][
        "from_household"]), "share_transfers[1].to_household"),
    ("transfer for no reason", _set("share_transfers", 2, "reason", "sold"), "share_transfers[2].reason"),
    ("transfer of an unknown kind", _set("share_transfers", 2, "kind", "land"), "share_transfers[2].kind"),
    ("plan of a year never closed", _set("member_plans", 0, "year", 2023), "member_plans[0].year"),
    ("record date inside the year", _set("member_plans", 0, "record_date", "2025-12-31"),
     "member_plans[0].record_date"),
    ("plan welfare negative", _set("member_plans", 0, "welfare", "-1.00"), "member_plans[0].welfare"),
    ("vote for more than present", lambda raw: raw["member_plans"][0]["vote"].update({"for": 99}),
     "member_plans[0].vote.present"),
    ("more present than entitled", lambda raw: raw["member_plans"][0]["vote"].update(present=46),
     "member_plans[0].vote.present"),
    ("vote before the record date", lambda raw: raw["member_plans"][0]["vote"].update(meeting_on="2025-12-01"),
     "member_plans[0].record_date"),
    ("payments without a vote", _drop("member_plans", 0, "vote"), "member_plans[0].payments"),
    ("unpaid household unknown", lambda raw: raw["member_plans"][0]["payments"].update(unpaid=["lm-h999"]),
     "member_plans[0].payments.unpaid[0]"),
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


def test_the_json_output_has_the_member_distributions_of_the_issue() -> None:
    held = {"plan_id": "p-2025", "year": 2025, "status": "approved", "distributable": "1019600.00",
            "reserve": "101960.00", "welfare": "50000.00", "members_total": "800000.00", "undistributed": "67640.00",
            "record_date": "2025-12-31", "total_weight": "3",
            "allocations": [{"household_id": "h-1", "weight": "2", "holdings": {"population": "2"},
                             "amount": "533333.34", "paid": True},
                            {"household_id": "h-2", "weight": "1", "holdings": {"population": "1"},
                             "amount": "266666.66", "paid": False}]}
    result = ImportResult(member_plans=[MemberPlan({"collective_id": "a-village", "year": 2025}, held)])
    assert as_json(result)["member_distributions"] == [{
        "collective_id": "a-village", "year": 2025, "distributable": "1019600.00", "reserve": "101960.00",
        "welfare": "50000.00", "members_total": "800000.00", "undistributed": "67640.00",
        "allocations": [{"household_id": "h-1", "weight": "2", "amount": "533333.34"},
                        {"household_id": "h-2", "weight": "1", "amount": "266666.66"}]}]
    assert result.member_plans[0].households_paid == 1
    assert result.member_plans[0].amount_paid == 53_333_334


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


def test_the_plan_table_shows_the_appropriations_and_what_was_paid() -> None:
    plan = {"plan_id": "p-2025", "year": 2025, "status": "approved", "distributable": "1019600.00",
            "net_income": "719600.00", "brought_forward": "300000.00", "reserve": "101960.00", "welfare": "50000.00",
            "members_total": "800000.00", "undistributed": "67640.00", "record_date": "2026-01-10",
            "total_weight": "3", "allocations": [{"household_id": "h-1"}, {"household_id": "h-2"}]}
    console = Console(width=140, file=io.StringIO())
    console.print(plan_table(PlanView(plan, "甲村股份经济合作社", households_paid=1, amount_paid=533_333_34)))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "甲村股份经济合作社 · 2025年度收益分配方案" in text
    rows = {line.split()[0]: line.split()[-1] for line in text.splitlines() if line.strip()}
    assert rows["可分配收益"] == "1,019,600.00" and rows["提取公积公益金"] == "101,960.00"
    assert rows["公益福利"] == "50,000.00" and rows["成员分配总额"] == "800,000.00" and rows["未分配"] == "67,640.00"
    assert "1 / 2 · 533,333.34" in text
