"""The three distributions of the Binhai demo scenario (data/binhai_scenario.json).

The figures asserted here were computed with services.dividends.domain and then checked
against an independent day-by-day calculation written in this file (Decimal for the money
steps, a loop over every day for capital, its own largest-remainder split), and by hand for
Lianmeng village (联盟村, jinqing-lianmeng) in the comments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from services.contracts.money import format_yuan, parse_mu, parse_yuan, valuation_fen
from services.dividends.domain import DistributionResult, InvestorCapitalChange, Policy, compute_distribution

SCENARIO_PATHS = [
    Path(__file__).resolve().parents[3] / "data" / "binhai_scenario.json",
]
LIANMENG = "jinqing-lianmeng"


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    for path in SCENARIO_PATHS:
        if path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    pytest.skip("binhai_scenario.json is not available")


def distribute(scenario: dict[str, Any], project_id: str, start: str, end: str) -> DistributionResult:
    """The scenario's inputs for one project, through the service's rule."""
    movements = []
    for inv in scenario["investments"]:
        if inv["project_id"] != project_id:
            continue
        amount = (valuation_fen(parse_mu(inv["area_mu"]), parse_yuan(inv["price_per_mu"])) if inv["kind"] == "land"
                  else parse_yuan(inv["amount"]))
        movements.append(InvestorCapitalChange(inv["investor_id"], inv["investor_type"], amount,
                                               date.fromisoformat(inv["effective_on"])))
    for w in scenario.get("withdrawals", []):
        if w["project_id"] == project_id:
            kind = next(i["investor_type"] for i in scenario["investments"] if i["investor_id"] == w["investor_id"])
            movements.append(InvestorCapitalChange(w["investor_id"], kind, -parse_yuan(w["amount"]),
                                                   date.fromisoformat(w["effective_on"])))
    rents = [(date.fromisoformat(r["received_on"]), parse_yuan(r["amount"]))
             for r in scenario["rent_payments"] if r["project_id"] == project_id]
    expenses = [(date.fromisoformat(e["incurred_on"]), parse_yuan(e["amount"]))
                for e in scenario["expenses"] if e["project_id"] == project_id]
    policy = Policy.from_wire(next(p for p in scenario["policies"] if p["project_id"] == project_id))
    return compute_distribution(date.fromisoformat(start), date.fromisoformat(end), policy, rents, expenses,
                                movements)


# --------------------------------------------------------------------------------------
# the independent reference: Decimal yuan, a loop over every day, its own split

CENT = Decimal("0.01")


def yuan(value: Decimal | Fraction) -> Decimal:
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Reference:
    pool: Decimal
    total_top_up: Decimal
    payouts: dict[str, Decimal]


def reference(scenario: dict[str, Any], project_id: str, start: str, end: str) -> Reference:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    policy = next(p for p in scenario["policies"] if p["project_id"] == project_id)
    rate = {k: Decimal(str(policy[k])) for k in ("management_fee_rate", "tax_rate", "payout_ratio",
                                                 "guaranteed_rate")}
    until = date.fromisoformat(policy["guarantee_until"]) if policy["guarantee_until"] else last

    def inside(on: str) -> bool:
        return first <= date.fromisoformat(on) <= last

    rent = sum((Decimal(r["amount"]) for r in scenario["rent_payments"]
                if r["project_id"] == project_id and inside(r["received_on"])), Decimal(0))
    spent = sum((Decimal(e["amount"]) for e in scenario["expenses"]
                 if e["project_id"] == project_id and inside(e["incurred_on"])), Decimal(0))
    profit = rent - spent - yuan(rent * rate["management_fee_rate"]) - yuan(rent * rate["tax_rate"])
    pool = yuan(max(profit, Decimal(0)) * rate["payout_ratio"])

    stakes = []  # (investor, type, yuan, effective_on)
    for inv in scenario["investments"]:
        if inv["project_id"] == project_id:
            amount = (yuan(Decimal(inv["area_mu"]) * Decimal(inv["price_per_mu"])) if inv["kind"] == "land"
                      else Decimal(inv["amount"]))
            stakes.append((inv["investor_id"], inv["investor_type"], amount, date.fromisoformat(inv["effective_on"])))
    kinds = {s[0]: s[1] for s in stakes}
    cd = dict.fromkeys(kinds, Decimal(0))
    gcd = dict.fromkeys(kinds, Decimal(0))
    day = first
    while day <= last:
        for investor, _, amount, on in stakes:
            if on <= day:
                cd[investor] += amount
                if day <= until:
                    gcd[investor] += amount
        day += timedelta(days=1)
    cd = {i: v for i, v in cd.items() if v > 0}

    # Largest remainder in fen: floor shares, then one fen each to the largest remainders (ties: smaller id).
    total_cd = sum(cd.values())
    pool_fen = int(pool * 100)
    exact = {i: Fraction(pool_fen) * Fraction(v) / Fraction(total_cd) for i, v in cd.items()}
    shares = {i: int(x) for i, x in exact.items()}
    for i in sorted(exact, key=lambda i: (-(exact[i] - shares[i]), i))[: pool_fen - sum(shares.values())]:
        shares[i] += 1

    payouts: dict[str, Decimal] = {}
    top_up_total = Decimal(0)
    for investor in cd:
        pro_rata = Decimal(shares[investor]) / 100
        guaranteed = (rate["guaranteed_rate"] > 0 and kinds[investor] == "collective"
                      and investor != policy["guarantor_id"])
        floor = yuan(gcd[investor] * rate["guaranteed_rate"] / 365) if guaranteed else Decimal(0)
        top_up = max(Decimal(0), floor - pro_rata)
        top_up_total += top_up
        payouts[investor] = pro_rata + top_up
    return Reference(pool, top_up_total, payouts)


# --------------------------------------------------------------------------------------

BINHAI = [
    # (project, start, end, pool, total top-up, Lianmeng's payout or None if it has no allocation)
    ("binhai-park", "2025-01-01", "2025-12-31", "6109089.30", "2121153.44", "355000.00"),
    ("binhai-park", "2026-01-01", "2026-06-30", "7741492.20", "0.00", "263366.53"),
    ("jinqing-market", "2025-01-01", "2025-12-31", "2634999.96", "0.00", None),
]


@pytest.mark.parametrize(("project", "start", "end", "pool", "top_up", "lianmeng"), BINHAI,
                         ids=["binhai-2025", "binhai-2026h1", "market-2025"])
def test_the_binhai_distributions_match_an_independent_day_by_day_calculation(
        scenario: dict[str, Any], project: str, start: str, end: str, pool: str, top_up: str,
        lianmeng: str | None) -> None:
    result = distribute(scenario, project, start, end)
    by_investor = {a.investor_id: a for a in result.allocations}
    assert format_yuan(result.pool) == pool
    assert format_yuan(result.total_top_up) == top_up
    assert (format_yuan(by_investor[LIANMENG].payout) if LIANMENG in by_investor else None) == lianmeng

    ref = reference(scenario, project, start, end)
    assert (ref.pool, ref.total_top_up) == (Decimal(pool), Decimal(top_up))
    assert {i: format_yuan(a.payout) for i, a in by_investor.items()} == {i: f"{v:.2f}" for i, v in ref.payouts.items()}


def test_lianmeng_is_topped_up_to_its_floor_in_2025_and_earns_above_it_in_2026(scenario: dict[str, Any]) -> None:
    # Lianmeng's land: 14.2 mu × 250,000.00 = 3,550,000.00 yuan, from 2024-03-01.
    #
    # 2025 (365 days): R = 8,611,900.00; E = 4 × 60,000 + 120,000 = 360,000.00;
    # F = 5% = 430,595.00; T = 12% = 1,033,428.00; NP = 6,787,877.00; D = 90% = 6,109,089.30.
    # Capital-days: 18 villages with 202.5 mu all year = 50,625,000 × 365 = 18,478,125,000;
    # v19 3,725,000 × 184 (from 2025-07-01) = 685,400,000; the state company 50,000,000 × 365 =
    # 18,250,000,000; Σ = 37,413,525,000 yuan·days. Lianmeng: 3,550,000 × 365 = 1,295,750,000,
    # pro rata 6,109,089.30 × 1,295,750,000 / 37,413,525,000 = 211,577.2962… → 211,577.29 plus one
    # of the fen the floors leave over (its remainder .62 is among the largest) = 211,577.30; floor
    # 3,550,000 × 365 × 10% / 365 = 355,000.00, so the guarantor tops up 143,422.70.
    #
    # 2026 H1 (181 days): floor 3,550,000 × 181 × 10% / 365 = 176,041.0958… → 176,041.10, below
    # the pro-rata share of 263,366.53, so no top-up.
    y2025 = {a.investor_id: a for a in distribute(scenario, "binhai-park", "2025-01-01", "2025-12-31").allocations}
    assert (y2025[LIANMENG].capital_days, y2025[LIANMENG].pro_rata, y2025[LIANMENG].guaranteed_floor,
            y2025[LIANMENG].top_up) == (129575000000, 21157730, 35500000, 14342270)
    h2026 = {a.investor_id: a for a in distribute(scenario, "binhai-park", "2026-01-01", "2026-06-30").allocations}
    assert (h2026[LIANMENG].guaranteed_floor, h2026[LIANMENG].pro_rata, h2026[LIANMENG].top_up) == (
        17604110, 26336653, 0)
    market = distribute(scenario, "jinqing-market", "2025-01-01", "2025-12-31")
    assert [a.investor_id for a in market.allocations] == ["jinqing-shangtang"]
