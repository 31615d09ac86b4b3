"""The distribution rule of DESIGN §6 (services/dividends/domain.py).

Every amount is in fen. Each example's numbers are worked out by hand in the comments;
the property tests then check the rule against a naive day-by-day reference and against
the generic functions of services.contracts.money.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import date, timedelta
from fractions import Fraction
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts.money import largest_remainder, round_half_up
from services.dividends.domain import (
    Allocation,
    DistributionResult,
    DistributionRuleError,
    InvestorCapitalChange,
    Policy,
    capital_days,
    compute_distribution,
)

D = date
NO_FEES = {"management_fee_rate": Fraction(0), "tax_rate": Fraction(0)}


def plain_policy(
    *,
    payout_ratio: Fraction = Fraction(1),
    guaranteed_rate: Fraction = Fraction(0),
    guarantee_until: date | None = None,
    guarantor_id: str | None = "state-co",
) -> Policy:
    """No management fee and no tax, so the pool is just rent − expenses (× payout_ratio)."""
    return Policy(
        management_fee_rate=Fraction(0),
        tax_rate=Fraction(0),
        payout_ratio=payout_ratio,
        guaranteed_rate=guaranteed_rate,
        guarantee_until=guarantee_until,
        guarantor_id=guarantor_id,
    )


def by_investor(result: DistributionResult) -> dict[str, Allocation]:
    return {a.investor_id: a for a in result.allocations}


def payouts(result: DistributionResult) -> dict[str, int]:
    return {a.investor_id: a.payout for a in result.allocations}


# --------------------------------------------------------------------------------------
# examples


def test_pool_is_rent_minus_expenses_fee_and_tax_each_rounded_half_up() -> None:
    # R = 50; F = round(50 × 0.05 = 2.5) = 3; T = round(50 × 0.03 = 1.5) = 2; E = 0
    # NP = 50 − 0 − 3 − 2 = 45; D = round(45 × 0.9 = 40.5) = 41; retained = 45 − 41 = 4
    policy = Policy(Fraction("0.05"), Fraction("0.03"), Fraction("0.9"), Fraction(0))
    result = compute_distribution(
        D(2026, 1, 1),
        D(2026, 1, 31),
        policy,
        rents=[(D(2026, 1, 15), 50)],
        expenses=[],
        movements=[InvestorCapitalChange("a-village", "collective", 100, D(2026, 1, 1))],
    )
    assert (result.gross_rent, result.management_fee, result.tax) == (50, 3, 2)
    assert (result.net_profit, result.pool, result.retained) == (45, 41, 4)
    assert payouts(result) == {"a-village": 41}


def test_mid_period_investment_and_withdrawal_count_capital_from_their_effective_day() -> None:
    # Period 2026-01-01..2026-01-10 (10 days).
    # a-village: 100000 since 2025-12-01, withdraws 40000 effective 2026-01-06:
    #   days 1-5 at 100000 + days 6-10 at 60000 = 500000 + 300000 = 800000 fen·days
    # b-co: invests 200000 effective 2026-01-04: days 4-10 = 7 days → 1400000 fen·days
    # Σcd = 2200000.
    # R = 100000 (the rents of 2025-12-31 and 2026-01-11 are outside); E = 10000 (the
    # 2026-01-11 expense is outside); F = 5% = 5000; T = 6% = 6000;
    # NP = 100000 − 10000 − 5000 − 6000 = 79000; D = 90% = 71100; retained = 7900.
    # a: 71100 × 8/22 = 568800/22 = 25854 rem 12/22; b: 71100 × 14/22 = 995400/22 = 45245 rem 10/22
    # floors sum to 71099; the one fen left goes to a (12/22 > 10/22): a 25855, b 45245.
    policy = Policy(Fraction("0.05"), Fraction("0.06"), Fraction("0.9"), Fraction(0))
    movements = [
        InvestorCapitalChange("a-village", "collective", 100000, D(2025, 12, 1)),
        InvestorCapitalChange("a-village", "collective", -40000, D(2026, 1, 6)),
        InvestorCapitalChange("b-co", "company", 200000, D(2026, 1, 4)),
    ]
    rents = [(D(2025, 12, 31), 77777), (D(2026, 1, 5), 100000), (D(2026, 1, 11), 99999)]
    expenses = [(D(2026, 1, 10), 10000), (D(2026, 1, 11), 55555)]

    assert capital_days(movements, D(2026, 1, 1), D(2026, 1, 10)) == {"a-village": 800000, "b-co": 1400000}
    result = compute_distribution(D(2026, 1, 1), D(2026, 1, 10), policy, rents, expenses, movements)

    assert (result.gross_rent, result.expenses, result.management_fee, result.tax) == (
        100000,
        10000,
        5000,
        6000,
    )
    assert (result.net_profit, result.pool, result.retained) == (79000, 71100, 7900)
    assert result.total_capital_days == 2200000
    assert result.allocations == (
        Allocation("a-village", "collective", 800000, 25855, 0, 0, 25855),
        Allocation("b-co", "company", 1400000, 45245, 0, 0, 45245),
    )
    assert (result.total_top_up, result.total_payout) == (0, 71100)


def test_a_leap_year_period_has_366_days_and_the_floor_still_divides_by_365() -> None:
    # 2028 is a leap year: 2028-01-01..2028-12-31 is 366 days.
    # lianmeng-village: 100000000 fen since 2027-06-01 → cd = 100000000 × 366 = 36600000000
    # binhai-dev (company): 100000000 from 2028-07-01 → Jul..Dec = 31+31+30+31+30+31 = 184 days
    #   → cd = 18400000000; Σcd = 55000000000.
    # D = R = 5000000 (no fee, tax or expenses; payout_ratio 1).
    # lianmeng: 5000000 × 366/550 = 183000000/55 = 3327272 rem 40/55
    # binhai-dev: 5000000 × 184/550 = 92000000/55 = 1672727 rem 15/55; the 1 fen left → lianmeng.
    # floor(lianmeng) = round(36600000000 × 0.10 / 365) = round(3660000000/365)
    #   = round(10027397.26…) = 10027397 (365 × 10027397 = 3659999905, rem 95)
    # top_up = 10027397 − 3327273 = 6700124; binhai-dev is a company: no floor.
    movements = [
        InvestorCapitalChange("lianmeng-village", "collective", 100000000, D(2027, 6, 1)),
        InvestorCapitalChange("binhai-dev", "company", 100000000, D(2028, 7, 1)),
    ]
    policy = plain_policy(guaranteed_rate=Fraction("0.10"))
    result = compute_distribution(D(2028, 1, 1), D(2028, 12, 31), policy, [(D(2028, 12, 31), 5000000)], [], movements)

    assert by_investor(result) == {
        "binhai-dev": Allocation("binhai-dev", "company", 18400000000, 1672727, 0, 0, 1672727),
        "lianmeng-village": Allocation(
            "lianmeng-village", "collective", 36600000000, 3327273, 10027397, 6700124, 10027397
        ),
    }
    assert result.total_capital_days == 55000000000
    assert (result.pool, result.total_top_up, result.total_payout) == (5000000, 6700124, 11700124)


def test_a_guarantee_ending_inside_the_period_floors_only_the_days_up_to_its_end() -> None:
    # Period 2026 (365 days); guarantee_until 2026-03-31 → 31 + 28 + 31 = 90 guaranteed days.
    # jinqing-village: 36500000 since 2025 → cd = 36500000 × 365 = 13322500000,
    #   gcd = 36500000 × 90 = 3285000000 → floor = 3285000000 × 0.10 / 365 = 900000 exactly.
    # xiaqiao-village: 36500000 from 2026-04-01 (275 days) → cd = 10037500000, gcd = 0 → floor 0.
    # D = 500000 split 365:275 = 73:55 (of 128):
    #   jinqing 36500000/128 = 285156.25 → 285156; xiaqiao 27500000/128 = 214843.75 → 214843,
    #   the 1 fen left → xiaqiao (.75 > .25) → 214844.
    # jinqing top_up = 900000 − 285156 = 614844; total_payout = 500000 + 614844 = 1114844.
    movements = [
        InvestorCapitalChange("jinqing-village", "collective", 36500000, D(2025, 1, 1)),
        InvestorCapitalChange("xiaqiao-village", "collective", 36500000, D(2026, 4, 1)),
    ]
    policy = plain_policy(guaranteed_rate=Fraction("0.10"), guarantee_until=D(2026, 3, 31))
    result = compute_distribution(D(2026, 1, 1), D(2026, 12, 31), policy, [(D(2026, 6, 30), 500000)], [], movements)

    assert capital_days(movements, D(2026, 1, 1), D(2026, 12, 31), until=D(2026, 3, 31)) == {
        "jinqing-village": 3285000000,
        "xiaqiao-village": 0,
    }
    assert result.allocations == (
        Allocation("jinqing-village", "collective", 13322500000, 285156, 900000, 614844, 900000),
        Allocation("xiaqiao-village", "collective", 10037500000, 214844, 0, 0, 214844),
    )
    assert (result.total_top_up, result.total_payout) == (614844, 1114844)


def test_a_guarantee_that_ended_before_the_period_gives_no_floor() -> None:
    # guarantee_until 2025-12-31 < period start: gcd = 0 → floor 0; pool 0 → payout 0.
    policy = plain_policy(guaranteed_rate=Fraction("0.10"), guarantee_until=D(2025, 12, 31))
    result = compute_distribution(
        D(2026, 1, 1),
        D(2026, 12, 31),
        policy,
        [],
        [],
        [InvestorCapitalChange("a-village", "collective", 3650000, D(2025, 1, 1))],
    )
    assert result.allocations == (Allocation("a-village", "collective", 1332250000, 0, 0, 0, 0),)


def test_a_loss_making_period_has_an_empty_pool_and_the_guarantor_pays_the_floors() -> None:
    # R = 100000; E = 200000; F = 5% = 5000; T = 6% = 6000
    # NP = 100000 − 200000 − 5000 − 6000 = −111000 → pool 0, retained 0.
    # a-village: 3650000 all 2026 → cd = 3650000 × 365 = 1332250000,
    #   floor = 1332250000 × 0.10 / 365 = 365000 → top_up 365000.
    # state-co (government, the guarantor) also has capital: cd 1332250000, no floor, payout 0.
    policy = Policy(Fraction("0.05"), Fraction("0.06"), Fraction("0.9"), Fraction("0.10"), guarantor_id="state-co")
    movements = [
        InvestorCapitalChange("a-village", "collective", 3650000, D(2025, 1, 1)),
        InvestorCapitalChange("state-co", "government", 3650000, D(2025, 1, 1)),
    ]
    result = compute_distribution(
        D(2026, 1, 1),
        D(2026, 12, 31),
        policy,
        [(D(2026, 3, 1), 100000)],
        [(D(2026, 4, 1), 200000)],
        movements,
    )

    assert result.net_profit == -111000
    assert (result.pool, result.retained) == (0, 0)
    assert result.allocations == (
        Allocation("a-village", "collective", 1332250000, 0, 365000, 365000, 365000),
        Allocation("state-co", "government", 1332250000, 0, 0, 0, 0),
    )
    assert (result.total_top_up, result.total_payout) == (365000, 365000)


def test_the_guarantor_gets_no_floor_even_when_it_is_a_collective() -> None:
    # Both collectives hold 3650000 all 2026 (floor would be 365000 each); town-collective is
    # the guarantor, so only a-village is floored. Pool 0.
    policy = plain_policy(guaranteed_rate=Fraction("0.10"), guarantor_id="town-collective")
    movements = [
        InvestorCapitalChange("a-village", "collective", 3650000, D(2025, 1, 1)),
        InvestorCapitalChange("town-collective", "collective", 3650000, D(2025, 1, 1)),
    ]
    result = compute_distribution(D(2026, 1, 1), D(2026, 12, 31), policy, [], [], movements)
    assert {a.investor_id: (a.guaranteed_floor, a.top_up) for a in result.allocations} == {
        "a-village": (365000, 365000),
        "town-collective": (0, 0),
    }


def test_ties_in_the_largest_remainder_go_to_the_smaller_investor_id() -> None:
    # One day, three equal capitals of 1000 fen → 100 × 1/3 = 33 rem 1/3 each; the one fen
    # left goes to the smallest id, whatever the input order: a 34, b 33, c 33.
    movements = [
        InvestorCapitalChange("c-village", "collective", 1000, D(2026, 1, 1)),
        InvestorCapitalChange("a-village", "collective", 1000, D(2026, 1, 1)),
        InvestorCapitalChange("b-village", "collective", 1000, D(2026, 1, 1)),
    ]
    result = compute_distribution(D(2026, 1, 1), D(2026, 1, 1), plain_policy(), [(D(2026, 1, 1), 100)], [], movements)
    assert payouts(result) == {"a-village": 34, "b-village": 33, "c-village": 33}
    assert [a.investor_id for a in result.allocations] == ["a-village", "b-village", "c-village"]


def test_with_more_investors_than_fen_the_largest_remainders_get_the_fen() -> None:
    # One day, pool 3 fen, capitals 500/400/300/200/100 (Σ 1500):
    #   v1 3×500/1500 = 1.0 → 1 rem 0; v2 0.8 → 0; v3 0.6 → 0; v4 0.4 → 0; v5 0.2 → 0
    # floors sum 1; the 2 fen left go to v2 (0.8) and v3 (0.6): 1, 1, 1, 0, 0.
    # v4 and v5 had capital, so they still get an allocation (of 0).
    capitals = {"v1": 500, "v2": 400, "v3": 300, "v4": 200, "v5": 100}
    movements = [InvestorCapitalChange(i, "collective", c, D(2026, 1, 1)) for i, c in capitals.items()]
    result = compute_distribution(D(2026, 1, 1), D(2026, 1, 1), plain_policy(), [(D(2026, 1, 1), 3)], [], movements)
    assert payouts(result) == {"v1": 1, "v2": 1, "v3": 1, "v4": 0, "v5": 0}
    assert result.total_payout == result.pool == 3


def test_a_non_collective_investor_gets_no_guaranteed_floor() -> None:
    # Each holds 3650000 all 2026 → floor would be 365000, but only the collective gets it.
    policy = plain_policy(guaranteed_rate=Fraction("0.10"))
    movements = [
        InvestorCapitalChange("a-village", "collective", 3650000, D(2025, 1, 1)),
        InvestorCapitalChange("b-company", "company", 3650000, D(2025, 1, 1)),
        InvestorCapitalChange("c-county", "government", 3650000, D(2025, 1, 1)),
    ]
    result = compute_distribution(D(2026, 1, 1), D(2026, 12, 31), policy, [], [], movements)
    assert {a.investor_id: (a.guaranteed_floor, a.payout) for a in result.allocations} == {
        "a-village": (365000, 365000),
        "b-company": (0, 0),
        "c-county": (0, 0),
    }


def test_an_investor_whose_capital_starts_after_the_period_gets_no_allocation() -> None:
    # late-village invests on 2027-01-01, after the 2026 period; gone-village withdrew all its
    # capital before the period. Neither has capital-days, so neither gets an allocation;
    # a-village takes the whole pool of 1000.
    movements = [
        InvestorCapitalChange("a-village", "collective", 5000, D(2026, 1, 1)),
        InvestorCapitalChange("late-village", "collective", 5000, D(2027, 1, 1)),
        InvestorCapitalChange("gone-village", "collective", 5000, D(2025, 1, 1)),
        InvestorCapitalChange("gone-village", "collective", -5000, D(2025, 6, 1)),
    ]
    policy = plain_policy(guaranteed_rate=Fraction("0.10"))
    result = compute_distribution(D(2026, 1, 1), D(2026, 12, 31), policy, [(D(2026, 5, 1), 1000)], [], movements)
    assert [a.investor_id for a in result.allocations] == ["a-village"]
    assert capital_days(movements, D(2026, 1, 1), D(2026, 12, 31)) == {
        "a-village": 5000 * 365,
        "gone-village": 0,
        "late-village": 0,
    }


def test_no_capital_and_no_pool_gives_an_empty_distribution() -> None:
    result = compute_distribution(D(2026, 1, 1), D(2026, 12, 31), plain_policy(), [], [], [])
    assert (result.pool, result.total_payout, result.total_capital_days, result.allocations) == (0, 0, 0, ())


# --------------------------------------------------------------------------------------
# refused inputs


def test_a_period_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(DistributionRuleError, match="before period_start"):
        compute_distribution(D(2026, 2, 1), D(2026, 1, 31), plain_policy(), [], [], [])
    with pytest.raises(DistributionRuleError):
        capital_days([], D(2026, 2, 1), D(2026, 1, 31))


def test_a_withdrawal_taking_capital_below_zero_is_refused_even_outside_the_period() -> None:
    movements = [
        InvestorCapitalChange("a-village", "collective", 1000, D(2026, 1, 1)),
        InvestorCapitalChange("a-village", "collective", -1001, D(2027, 3, 1)),
    ]
    with pytest.raises(DistributionRuleError, match="below zero on 2027-03-01"):
        compute_distribution(D(2026, 1, 1), D(2026, 12, 31), plain_policy(), [], [], movements)
    with pytest.raises(DistributionRuleError, match="below zero"):
        capital_days(movements, D(2026, 1, 1), D(2026, 12, 31))


def test_a_withdrawal_before_the_investment_is_refused_but_the_same_day_nets_out() -> None:
    early = [
        InvestorCapitalChange("a-village", "collective", -1000, D(2026, 1, 1)),
        InvestorCapitalChange("a-village", "collective", 1000, D(2026, 1, 2)),
    ]
    with pytest.raises(DistributionRuleError, match="below zero on 2026-01-01"):
        capital_days(early, D(2026, 1, 1), D(2026, 1, 31))
    same_day = [
        InvestorCapitalChange("a-village", "collective", -1000, D(2026, 1, 2)),
        InvestorCapitalChange("a-village", "collective", 1500, D(2026, 1, 2)),
    ]
    # capital 500 on days 2..31 = 30 days
    assert capital_days(same_day, D(2026, 1, 1), D(2026, 1, 31)) == {"a-village": 15000}


@pytest.mark.parametrize(
    "movement",
    [
        InvestorCapitalChange("a-village", "collective", 10.0, D(2026, 1, 1)),  # type: ignore[arg-type]
        InvestorCapitalChange("a-village", "collective", True, D(2026, 1, 1)),
        InvestorCapitalChange("a-village", "village", 1000, D(2026, 1, 1)),
        InvestorCapitalChange("", "collective", 1000, D(2026, 1, 1)),
        InvestorCapitalChange("a-village", "collective", 1000, "2026-01-01"),  # type: ignore[arg-type]
    ],
    ids=["float-amount", "bool-amount", "unknown-type", "empty-id", "string-date"],
)
def test_malformed_movements_are_refused(movement: InvestorCapitalChange) -> None:
    with pytest.raises(DistributionRuleError):
        capital_days([movement], D(2026, 1, 1), D(2026, 1, 31))


def test_one_investor_with_two_investor_types_is_refused() -> None:
    movements = [
        InvestorCapitalChange("a-village", "collective", 1000, D(2026, 1, 1)),
        InvestorCapitalChange("a-village", "company", 1000, D(2026, 1, 2)),
    ]
    with pytest.raises(DistributionRuleError, match="two types"):
        capital_days(movements, D(2026, 1, 1), D(2026, 1, 31))


def test_float_rents_are_refused() -> None:
    with pytest.raises(DistributionRuleError, match="int fen"):
        compute_distribution(D(2026, 1, 1), D(2026, 1, 31), plain_policy(), [(D(2026, 1, 1), 1.5)], [], [])  # type: ignore[list-item]


def test_a_policy_refuses_float_negative_and_over_one_rates_and_normalises_exact_ones() -> None:
    with pytest.raises(DistributionRuleError, match="exact"):
        Policy(0.05, Fraction(0), Fraction(1), Fraction(0))  # type: ignore[arg-type]
    with pytest.raises(DistributionRuleError, match="negative"):
        Policy(Fraction(0), Fraction(-1, 100), Fraction(1), Fraction(0))
    with pytest.raises(DistributionRuleError, match="exceed 1"):
        Policy(Fraction(0), Fraction(0), Fraction(11, 10), Fraction(0))
    policy = Policy(0, Fraction(0), 1, Fraction(0))  # type: ignore[arg-type]
    assert policy.management_fee_rate == 0 and isinstance(policy.payout_ratio, Fraction)


def test_a_policy_reads_its_wire_form() -> None:
    data = {
        "management_fee_rate": "0.05",
        "tax_rate": "0.06",
        "payout_ratio": "0.90",
        "guaranteed_rate": "0.10",
        "guarantee_until": "2030-12-31",
        "guarantor_id": "state-co",
    }
    assert Policy.from_wire(data) == Policy(
        Fraction(5, 100), Fraction(6, 100), Fraction(9, 10), Fraction(1, 10), D(2030, 12, 31), "state-co"
    )
    with pytest.raises(DistributionRuleError):
        Policy.from_wire({**data, "tax_rate": 0.06})
    with pytest.raises(DistributionRuleError, match="missing"):
        Policy.from_wire({k: v for k, v in data.items() if k != "payout_ratio"})


def test_a_pool_with_nobody_to_share_it_is_refused() -> None:
    with pytest.raises(DistributionRuleError, match="zero capital-days"):
        compute_distribution(D(2026, 1, 1), D(2026, 1, 31), plain_policy(), [(D(2026, 1, 1), 100)], [], [])


# --------------------------------------------------------------------------------------
# performance


class _OverBudget(Exception):
    pass


def test_ten_thousand_investors_over_a_century_compute_without_a_loop_over_days() -> None:
    # A day × investor loop would be 36525 × 10000 ≈ 365 million steps; the piecewise sum is a few
    # lines of Python per movement. Counted in executed lines, not seconds (speed is bench/'s job),
    # so a slow machine cannot make it fail and a loop over days cannot make it pass.
    start, end = D(2001, 1, 1), D(2100, 12, 31)
    movements = []
    for i in range(10000):
        kind = ("collective", "company", "government")[i % 3]
        movements.append(InvestorCapitalChange(f"inv-{i:05d}", kind, 1000000 + i, start + timedelta(days=i)))
        if i % 4 == 0:
            movements.append(InvestorCapitalChange(f"inv-{i:05d}", kind, -500000, start + timedelta(days=2 * i)))
    policy = Policy(Fraction("0.05"), Fraction("0.06"), Fraction("0.9"), Fraction("0.10"), D(2050, 6, 30))
    rents = [(start + timedelta(days=d), 123456789) for d in range(0, 36000, 30)]
    budget = 100 * (len(movements) + len(rents))  # ~50 are used today
    executed = 0

    def count(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal executed
        if event == "line":
            executed += 1
            if executed > budget:
                raise _OverBudget
        return count

    sys.settrace(count)
    try:
        result = compute_distribution(start, end, policy, rents, [], movements)
    except _OverBudget:
        pytest.fail(f"more than {budget:,} lines of Python for {len(movements):,} movements: a loop over days?")
    finally:
        sys.settrace(None)
    assert len(result.allocations) == 10000
    assert sum(a.pro_rata for a in result.allocations) == result.pool
    assert executed > len(movements)  # the counter saw the computation


# --------------------------------------------------------------------------------------
# properties

INVESTOR_IDS = ["a-village", "b-village", "c-village", "d-co", "e-gov", "state-co", "z-village"]
TYPE_OF = {
    "a-village": "collective",
    "b-village": "collective",
    "c-village": "collective",
    "d-co": "company",
    "e-gov": "government",
    "state-co": "government",
    "z-village": "collective",
}
BASE = D(2027, 1, 1)


@st.composite
def investor_histories(draw: st.DrawFn) -> list[InvestorCapitalChange]:
    """Movements of a few investors; withdrawals never take capital below zero."""
    movements: list[InvestorCapitalChange] = []
    for investor in draw(st.lists(st.sampled_from(INVESTOR_IDS), min_size=0, max_size=6, unique=True)):
        offsets = sorted(draw(st.lists(st.integers(-200, 1000), min_size=1, max_size=5)))
        balance = 0
        for k, offset in enumerate(offsets):
            if k > 0 and balance > 0 and draw(st.booleans()):
                amount = -draw(st.integers(1, balance))
            else:
                amount = draw(st.integers(0, 10**9))
            balance += amount
            movements.append(InvestorCapitalChange(investor, TYPE_OF[investor], amount, BASE + timedelta(days=offset)))
    return movements


def dated_amounts(max_fen: int) -> st.SearchStrategy[list[tuple[date, int]]]:
    return st.lists(
        st.tuples(st.integers(-50, 900).map(lambda d: BASE + timedelta(days=d)), st.integers(0, max_fen)),
        max_size=8,
    )


rates = st.fractions(min_value=0, max_value=Fraction(1, 2), max_denominator=10**6)
policies = st.builds(
    Policy,
    management_fee_rate=rates,
    tax_rate=rates,
    payout_ratio=st.fractions(min_value=0, max_value=1, max_denominator=10**4),
    guaranteed_rate=st.one_of(st.just(Fraction(0)), st.fractions(min_value=0, max_value=Fraction(3, 10))),
    guarantee_until=st.one_of(st.none(), st.integers(-10, 900).map(lambda d: BASE + timedelta(days=d))),
    guarantor_id=st.sampled_from([None, "state-co", "a-village"]),
)


@st.composite
def periods(draw: st.DrawFn) -> tuple[date, date]:
    start = BASE + timedelta(days=draw(st.integers(0, 500)))
    return start, start + timedelta(days=draw(st.integers(0, 400)))


def naive_capital_days(
    movements: Iterable[InvestorCapitalChange], start: date, end: date, until: date | None = None
) -> dict[str, int]:
    """Reference: loop over every day of the period (fine for a handful of investors)."""
    movements = list(movements)
    result = {m.investor_id: 0 for m in movements}
    day = start
    while day <= end and (until is None or day <= until):
        for m in movements:
            if m.effective_on <= day:
                result[m.investor_id] += m.amount
        day += timedelta(days=1)
    return result


def has_capital(movements: list[InvestorCapitalChange], start: date, end: date) -> bool:
    return any(v > 0 for v in naive_capital_days(movements, start, end).values())


@settings(max_examples=150, deadline=None)
@given(
    period=periods(),
    policy=policies,
    rents=dated_amounts(10**9),
    expenses=dated_amounts(10**8),
    movements=investor_histories(),
)
def test_property_the_totals_add_up_and_match_the_reference_definitions(
    period: tuple[date, date],
    policy: Policy,
    rents: list[tuple[date, int]],
    expenses: list[tuple[date, int]],
    movements: list[InvestorCapitalChange],
) -> None:
    start, end = period
    try:
        result = compute_distribution(start, end, policy, rents, expenses, movements)
    except DistributionRuleError:
        # Only a pool with nobody to share it is refused here.
        assert not has_capital(movements, start, end)
        return
    allocations = result.allocations
    assert sum(a.pro_rata for a in allocations) == result.pool
    assert sum(a.payout for a in allocations) == result.pool + result.total_top_up == result.total_payout
    assert sum(a.top_up for a in allocations) == result.total_top_up
    assert result.pool + result.retained == max(result.net_profit, 0)
    assert 0 <= result.pool <= max(result.net_profit, 0)

    # Steps 1-3 against the exact definitions.
    r = sum(fen for on, fen in rents if start <= on <= end)
    e = sum(fen for on, fen in expenses if start <= on <= end)
    f = round_half_up(r * policy.management_fee_rate)
    t = round_half_up(r * policy.tax_rate)
    assert (result.gross_rent, result.expenses, result.management_fee, result.tax) == (r, e, f, t)
    assert result.net_profit == r - e - f - t
    assert result.pool == round_half_up(max(r - e - f - t, 0) * policy.payout_ratio)

    # Step 4 against a day-by-day loop; step 5 against money.largest_remainder.
    cds = naive_capital_days(movements, start, end)
    assert capital_days(movements, start, end) == dict(sorted(cds.items()))
    positive = {i: cd for i, cd in sorted(cds.items()) if cd > 0}
    assert {a.investor_id: a.capital_days for a in allocations} == positive
    assert [a.investor_id for a in allocations] == sorted(positive)
    assert result.total_capital_days == sum(positive.values())
    if positive:
        assert {a.investor_id: a.pro_rata for a in allocations} == largest_remainder(result.pool, positive)

    # Step 6 against the exact floor.
    gcds = naive_capital_days(movements, start, end, until=policy.guarantee_until)
    for a in allocations:
        floored = (
            policy.guaranteed_rate > 0 and a.investor_type == "collective" and (a.investor_id != policy.guarantor_id)
        )
        expected = round_half_up(gcds[a.investor_id] * policy.guaranteed_rate / 365) if floored else 0
        assert a.guaranteed_floor == expected
        assert a.top_up == max(0, a.guaranteed_floor - a.pro_rata)
        assert a.payout == a.pro_rata + a.top_up


@settings(max_examples=150, deadline=None)
@given(period=periods(), policy=policies, movements=investor_histories(), rent=st.integers(0, 10**10))
def test_property_no_collective_is_paid_below_its_floor(
    period: tuple[date, date], policy: Policy, movements: list[InvestorCapitalChange], rent: int
) -> None:
    start, end = period
    if not has_capital(movements, start, end):
        rent = 0
    result = compute_distribution(start, end, policy, [(start, rent)], [], movements)
    for a in result.allocations:
        assert a.payout >= a.guaranteed_floor >= 0
        assert a.payout >= a.pro_rata >= 0
        if a.investor_type != "collective" or a.investor_id == policy.guarantor_id:
            assert (a.guaranteed_floor, a.top_up) == (0, 0)


@settings(max_examples=150, deadline=None)
@given(
    period=periods(),
    policy=policies,
    rents=dated_amounts(10**9),
    expenses=dated_amounts(10**8),
    movements=investor_histories(),
    data=st.data(),
)
def test_property_shuffled_inputs_give_identical_results(
    period: tuple[date, date],
    policy: Policy,
    rents: list[tuple[date, int]],
    expenses: list[tuple[date, int]],
    movements: list[InvestorCapitalChange],
    data: st.DataObject,
) -> None:
    start, end = period
    if not has_capital(movements, start, end):
        rents = []
    first = compute_distribution(start, end, policy, rents, expenses, movements)
    second = compute_distribution(
        start,
        end,
        policy,
        data.draw(st.permutations(rents)),
        data.draw(st.permutations(expenses)),
        data.draw(st.permutations(movements)),
    )
    assert second == first
