"""The pure arithmetic of DESIGN §11 (services/members/split.py), by hand and by property."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.members.split import (
    AppropriationError,
    Change,
    SetHoldings,
    Transfer,
    all_holdings_on,
    appropriations,
    first_shortfall,
    format_decimal,
    format_shares,
    holdings_on,
    household_weight,
    mask_name,
    parse_shares,
    split_members_total,
)

F = Fraction
ONE = {"population": F(1), "farm-age": F(1)}


# -- the split, by hand ------------------------------------------------------------------------------------


def test_a_tie_of_remainders_goes_to_the_smaller_household_id() -> None:
    # 1.00 yuan over three equal households: 33 each, the fen left over to the smallest id.
    assert split_members_total(100, {"hu-b": F(1), "hu-a": F(1), "hu-c": F(1)}) == {"hu-a": 34, "hu-b": 33,
                                                                                       "hu-c": 33}


def test_one_fen_over_three_households() -> None:
    assert split_members_total(1, {"hu-1": F(1), "hu-2": F(1), "hu-3": F(1)}) == {"hu-1": 1, "hu-2": 0, "hu-3": 0}
    # with unequal weights the largest remainder wins, not the smallest id
    assert split_members_total(1, {"hu-1": F(1), "hu-2": F(2), "hu-3": F(1)}) == {"hu-1": 0, "hu-2": 1, "hu-3": 0}


def test_largest_remainders_by_hand() -> None:
    # M = 10.00 over weights 1, 2, 4 (Σ 7): 142.857…, 285.714…, 571.428… → 142, 285, 571 (998); the two fen
    # left go to the largest remainders .857 (hu-1) and .714 (hu-2).
    assert split_members_total(1000, {"hu-1": F(1), "hu-2": F(2), "hu-3": F(4)}) == {"hu-1": 143, "hu-2": 286,
                                                                                      "hu-3": 571}


def test_a_household_with_only_farm_age_shares() -> None:
    kinds = {"population": F(1), "farm-age": F("0.5")}
    weights = {"hu-1": household_weight({"population": F(3), "farm-age": F(10)}, kinds),   # 3 + 5 = 8
               "hu-2": household_weight({"farm-age": F(24)}, kinds)}                       # 12
    assert weights == {"hu-1": F(8), "hu-2": F(12)}
    assert split_members_total(10_000, weights) == {"hu-1": 4_000, "hu-2": 6_000}


def test_households_of_weight_zero_are_left_out() -> None:
    assert split_members_total(500, {"hu-1": F(0), "hu-2": F(3), "hu-3": F(1)}) == {"hu-2": 375, "hu-3": 125}
    assert split_members_total(0, {"hu-1": F(0)}) == {}
    assert split_members_total(0, {"hu-1": F(2)}) == {"hu-1": 0}


def test_nobody_to_pay_or_a_negative_input_is_an_error() -> None:
    with pytest.raises(ValueError):
        split_members_total(1, {"hu-1": F(0)})
    with pytest.raises(ValueError):
        split_members_total(1, {})
    with pytest.raises(ValueError):
        split_members_total(-1, {"hu-1": F(1)})
    with pytest.raises(ValueError):
        split_members_total(1, {"hu-1": F(-1), "hu-2": F(2)})


def test_weights_are_exact_products_of_shares_and_kind_weights() -> None:
    kinds = {"population": F("1.2345"), "farm-age": F("0.0001")}
    weight = household_weight({"population": F("0.1234"), "farm-age": F("999999999.9999")}, kinds)
    assert weight == F("0.1234") * F("1.2345") + F("999999999.9999") * F("0.0001")
    assert format_decimal(weight) == "100000.15233729"
    assert household_weight({"unknown": F(5)}, kinds) == 0


# -- transfers around the record date ------------------------------------------------------------------------


def _register() -> list[Change]:
    return [SetHoldings("hu-1", {"population": F(2)}, date(2024, 1, 1)),
            SetHoldings("hu-2", {"population": F(2)}, date(2024, 1, 1))]


@pytest.mark.parametrize(("effective_on", "expected"), [
    # the day before the record date: the heir's household is paid for the shares
    (date(2026, 3, 30), {"hu-2": 10_000}),
    # on the record date: still counted (every change with effective_on ≤ the record date)
    (date(2026, 3, 31), {"hu-2": 10_000}),
    # the day after: the split was fixed before it
    (date(2026, 4, 1), {"hu-1": 5_000, "hu-2": 5_000}),
])
def test_a_transfer_the_day_before_and_the_day_after_the_record_date(effective_on: date,
                                                                     expected: dict[str, int]) -> None:
    changes = [*_register(), Transfer("hu-1", "hu-2", "population", F(2), effective_on)]
    held = all_holdings_on(changes, date(2026, 3, 31))
    weights = {household: household_weight(h, ONE) for household, h in held.items()}
    assert split_members_total(10_000, weights) == expected


def test_holdings_on_applies_changes_by_effective_date_then_log_order() -> None:
    changes: list[Change] = [SetHoldings("hu-1", {"population": F(3)}, date(2024, 1, 1)),
                             Transfer("hu-1", "hu-2", "population", F(1), date(2025, 6, 1)),
                             # recorded later, effective earlier: it is applied before the transfer
                             SetHoldings("hu-1", {"population": F(4), "farm-age": F("2.5")}, date(2024, 6, 1))]
    assert holdings_on(changes, "hu-1", date(2023, 12, 31)) == {}
    assert holdings_on(changes, "hu-1", date(2024, 6, 1)) == {"population": F(4), "farm-age": F("2.5")}
    assert holdings_on(changes, "hu-1", date(2025, 6, 1)) == {"population": F(3), "farm-age": F("2.5")}
    assert holdings_on(changes, "hu-2", date(2025, 6, 1)) == {"population": F(1)}


def test_a_transfer_of_more_than_held_now_or_later_is_a_shortfall() -> None:
    base = _register()
    assert first_shortfall([*base, Transfer("hu-1", "hu-2", "population", F(2), date(2025, 1, 1))]) is None
    short = first_shortfall([*base, Transfer("hu-1", "hu-2", "population", F("2.0001"), date(2025, 1, 1))])
    assert short is not None and (short.household_id, short.kind, short.day) == ("hu-1", "population",
                                                                                 date(2025, 1, 1))
    # enough on its own date, but a transfer recorded earlier and effective later leaves too little
    later = Transfer("hu-1", "hu-2", "population", F(2), date(2026, 1, 1))
    short = first_shortfall([*base, later, Transfer("hu-1", "hu-2", "population", F(1), date(2025, 1, 1))])
    assert short is not None and short.day == date(2026, 1, 1) and short.holding == -1
    # two transfers on one day: the day is judged once both apply
    same_day = [Transfer("hu-2", "hu-1", "population", F(1), date(2025, 1, 1)),
                Transfer("hu-1", "hu-2", "population", F(3), date(2025, 1, 1))]
    assert first_shortfall([*base, *same_day]) is None


# -- appropriations ------------------------------------------------------------------------------------------


def test_appropriations_in_order_with_the_reserve_rounded_half_up() -> None:
    got = appropriations(100_005, F("0.15"), 1_000, 50_000)  # 15000.75 → 15001
    assert (got.reserve, got.welfare, got.members_total, got.undistributed) == (15_001, 1_000, 50_000, 34_004)
    exact = appropriations(100_000, F("0.10"), 0, 90_000)
    assert exact.undistributed == 0


@pytest.mark.parametrize(("args", "field"), [
    ((100_000, F("0.10"), 0, 90_001), "members_total"),
    ((100_000, F("0.10"), 90_001, 0), "welfare"),
    ((100_000, F("0.10"), -1, 0), "welfare"),
    ((100_000, F("0.10"), 0, -1), "members_total"),
    ((0, F("0.10"), 0, 1), "members_total"),
    ((-5_000, F("0.10"), 1, 0), "welfare"),
    ((100_000, F("1.5"), 0, 0), "reserve_rate"),
])
def test_appropriations_that_do_not_fit_name_the_field(args: tuple[int, Fraction, int, int], field: str) -> None:
    with pytest.raises(AppropriationError) as caught:
        appropriations(*args)
    assert caught.value.field == field and isinstance(caught.value, ValueError)


def test_a_distributable_amount_of_zero_or_less_pays_nothing() -> None:
    got = appropriations(-12_345, F("0.10"), 0, 0)
    assert (got.reserve, got.welfare, got.members_total, got.undistributed) == (0, 0, 0, -12_345)


# -- properties ----------------------------------------------------------------------------------------------

households = st.dictionaries(st.from_regex(r"hu-[a-z0-9]{1,4}", fullmatch=True),
                             st.fractions(min_value=0, max_value=1000, max_denominator=10_000),
                             min_size=1, max_size=30)


@given(total=st.integers(min_value=0, max_value=10**14), weights=households)
def test_the_split_sums_to_the_members_total_and_leaves_out_weight_zero(total: int,
                                                                        weights: dict[str, Fraction]) -> None:
    if total and not any(weights.values()):
        with pytest.raises(ValueError):
            split_members_total(total, weights)
        return
    split = split_members_total(total, weights)
    assert sum(split.values()) == total
    assert set(split) == {h for h, w in weights.items() if w > 0}
    weight_sum = sum(weights.values())
    for household, amount in split.items():
        exact = total * weights[household] / weight_sum
        assert exact - 1 < amount < exact + 1  # each within a fen of its exact share


@given(total=st.integers(min_value=0, max_value=10**12), weights=households, seed=st.randoms())
def test_the_split_does_not_depend_on_the_order_of_the_mapping(total: int, weights: dict[str, Fraction],
                                                               seed: random.Random) -> None:
    if not any(weights.values()):
        total = 0
    items = list(weights.items())
    seed.shuffle(items)
    assert split_members_total(total, dict(items)) == split_members_total(total, weights)


@given(shares=st.decimals(min_value=0, max_value=999_999_999, places=4, allow_nan=False, allow_infinity=False))
def test_shares_round_trip_through_the_wire(shares: Decimal) -> None:
    text = format_shares(F(str(shares)))
    assert parse_shares(text) == F(str(shares))


@pytest.mark.parametrize("bad", ["-1", "1.23456", "1e3", " 1", "1\n", "01", 1.5, True, None, ".5", "1."])
def test_shares_that_are_not_a_4_place_decimal_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_shares(bad)


# -- names on the notice -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "masked"), [
    ("张小明", "张*明"), ("王五", "王*"), ("欧阳小明", "欧**明"), ("李", "*"), (" 赵钱孙 ", "赵*孙"),
    ("Anna", "A**a"), ("𠮷野家", "𠮷*家"), ("", "*"),
])
def test_names_are_masked_as_village_notices_do(name: str, masked: str) -> None:
    assert mask_name(name) == masked
