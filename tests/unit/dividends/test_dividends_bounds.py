"""A distribution whose amounts would not fit the wire format is found before it is declared (DESIGN §3).

Inputs that each fit (rents, expenses, a project capital at most 999999999999.99) can still add up
to totals that do not: rents over a long period, or capital-days (capital × days).
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from services.contracts.money import MAX_WIRE_FEN
from services.dividends.bounds import out_of_range
from services.dividends.domain import DistributionResult, InvestorCapitalChange, Policy, compute_distribution

POLICY = Policy(management_fee_rate=Fraction(5, 100), tax_rate=Fraction(10, 100), payout_ratio=Fraction(9, 10),
                guaranteed_rate=Fraction(1, 10), guarantor_id="state-co")
JAN_1 = date(2026, 1, 1)


def distribution(days: int, *, rents: tuple[int, ...] | list[int] = (), expenses: tuple[int, ...] | list[int] = (),
                 capital: int = 100_000_000_00, policy: Policy = POLICY) -> DistributionResult:
    end = date.fromordinal(JAN_1.toordinal() + days - 1)
    return compute_distribution(JAN_1, end, policy, [(JAN_1, fen) for fen in rents],
                                [(JAN_1, fen) for fen in expenses],
                                [InvestorCapitalChange("lianmeng", "collective", capital, JAN_1)])


def test_an_ordinary_distribution_fits() -> None:
    assert out_of_range(distribution(365, rents=[500_000_00], expenses=[10_000_00])) is None


def test_capital_days_of_the_largest_capital_fit_one_day_and_not_two() -> None:
    assert out_of_range(distribution(1, rents=[100], capital=MAX_WIRE_FEN)) is None
    field, message = out_of_range(distribution(2, rents=[100], capital=MAX_WIRE_FEN)) or ("", "")
    assert field == "total_capital_days"
    assert "yuan·days" in message and "shorter period" in message


def test_a_capital_of_a_billion_yuan_fits_a_year_but_not_three() -> None:
    billion = 1_000_000_000_00
    assert out_of_range(distribution(365, rents=[100], capital=billion)) is None
    assert (out_of_range(distribution(3 * 365, rents=[100], capital=billion)) or ("",))[0] == "total_capital_days"


def test_rents_that_each_fit_may_add_up_to_a_gross_rent_that_does_not() -> None:
    assert (out_of_range(distribution(30, rents=[MAX_WIRE_FEN, 1])) or ("",))[0] == "gross_rent"


def test_a_net_loss_has_the_same_bound_as_a_profit() -> None:
    all_fees = Policy(management_fee_rate=Fraction(1), tax_rate=Fraction(1), payout_ratio=Fraction(1),
                      guaranteed_rate=Fraction(0))
    result = distribution(30, rents=[100], expenses=[MAX_WIRE_FEN], policy=all_fees)
    assert result.net_profit == -MAX_WIRE_FEN - 100
    assert (out_of_range(result) or ("",))[0] == "net_profit"
    fits = distribution(30, rents=[100], expenses=[MAX_WIRE_FEN - 100], policy=all_fees)
    assert fits.net_profit == -MAX_WIRE_FEN and out_of_range(fits) is None
