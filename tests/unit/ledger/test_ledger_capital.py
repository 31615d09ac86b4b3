"""The investment register's rules: land valuation, capital on a date, withdrawals never below zero."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.capital import (
    CapitalChange,
    InsufficientCapital,
    InvalidInvestment,
    capital_on,
    check_withdrawal,
    holdings,
    land_valuation,
)

MARCH = date(2024, 3, 1)


def test_lianmengs_land_share_is_valued_at_area_times_price() -> None:
    assert land_valuation("14.2000", "250000.00") == 355_000_000


def test_a_land_valuation_is_rounded_half_up_to_the_fen() -> None:
    assert land_valuation("1.0005", "1.00") == 100  # 100.05 fen -> 100
    assert land_valuation("1.0050", "1.00") == 101  # 100.5 fen -> 101 (half up)
    assert land_valuation("0.3333", "0.03") == 1  # 0.9999 fen -> 1


def test_a_land_share_worth_less_than_a_fen_is_refused() -> None:
    with pytest.raises(InvalidInvestment) as raised:
        land_valuation("0.0001", "0.01")
    assert raised.value.field == "area_mu"


@pytest.mark.parametrize(("area", "price", "field"), [
    ("14.20001", "250000.00", "area_mu"),
    ("-1", "250000.00", "area_mu"),
    ("14.2", "250000.0", "price_per_mu"),
    ("14.2", "-1.00", "price_per_mu"),
])
def test_badly_written_areas_and_prices_are_refused_naming_the_field(area: str, price: str, field: str) -> None:
    with pytest.raises(InvalidInvestment) as raised:
        land_valuation(area, price)
    assert raised.value.field == field


MOVES = [
    CapitalChange(date(2024, 3, 1), 355_000_000),
    CapitalChange(date(2025, 1, 1), -5_000_000),
    CapitalChange(date(2025, 7, 1), 10_000_000),
]


def test_capital_on_a_day_counts_every_movement_effective_on_or_before_it() -> None:
    assert capital_on(MOVES, date(2024, 2, 29)) == 0
    assert capital_on(MOVES, date(2024, 3, 1)) == 355_000_000
    assert capital_on(MOVES, date(2025, 1, 1)) == 350_000_000
    assert capital_on(MOVES, date(2030, 1, 1)) == 360_000_000


def test_a_withdrawal_of_everything_held_is_allowed() -> None:
    check_withdrawal(MOVES, date(2025, 1, 1), 350_000_000)


def test_a_withdrawal_one_fen_above_the_capital_is_refused_on_the_amount() -> None:
    with pytest.raises(InsufficientCapital) as raised:
        check_withdrawal(MOVES, date(2025, 1, 1), 350_000_001)
    assert raised.value.field == "amount"
    assert "-0.01" in raised.value.message


def test_a_withdrawal_before_any_investment_is_refused() -> None:
    with pytest.raises(InsufficientCapital):
        check_withdrawal(MOVES, date(2024, 1, 1), 1)


def test_a_withdrawal_that_a_later_withdrawal_would_push_below_zero_is_refused() -> None:
    later = [CapitalChange(date(2024, 3, 1), 1_000), CapitalChange(date(2024, 9, 1), -800)]
    # On 2024-06-01 there are 10.00 yuan, but from 2024-09-01 only 2.00 remain to take.
    with pytest.raises(InsufficientCapital) as raised:
        check_withdrawal(later, date(2024, 6, 1), 300)
    assert "2024-09-01" in raised.value.message
    check_withdrawal(later, date(2024, 6, 1), 200)


def test_a_withdrawal_of_zero_is_refused() -> None:
    with pytest.raises(InsufficientCapital):
        check_withdrawal(MOVES, date(2025, 1, 1), 0)


def test_holdings_list_investors_with_capital_on_the_day_sorted_and_without_zeros() -> None:
    pairs = [("v2", CapitalChange(MARCH, 100)), ("v1", CapitalChange(MARCH, 50)),
             ("v1", CapitalChange(date(2024, 4, 1), -50)), ("v3", CapitalChange(date(2024, 5, 1), 7))]
    assert holdings(pairs, date(2024, 3, 31)) == {"v1": 50, "v2": 100}
    assert holdings(pairs, date(2024, 4, 1)) == {"v2": 100}
    assert list(holdings(pairs, date(2024, 5, 1))) == ["v2", "v3"]


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 10_000)), min_size=1, max_size=8),
       st.integers(0, 60), st.integers(1, 50_000))
def test_an_accepted_withdrawal_never_leaves_a_negative_capital_on_any_day(
        invested: list[tuple[int, int]], offset: int, amount: int) -> None:
    start = date(2024, 1, 1).toordinal()
    moves = [CapitalChange(date.fromordinal(start + d), fen) for d, fen in invested]
    day = date.fromordinal(start + offset)
    try:
        check_withdrawal(moves, day, amount)
    except InsufficientCapital:
        assert any(capital_on(moves, date.fromordinal(start + d)) < amount for d in range(offset, 61))
        return
    after = [*moves, CapitalChange(day, -amount)]
    assert all(capital_on(after, date.fromordinal(start + d)) >= 0 for d in range(offset, 61))
