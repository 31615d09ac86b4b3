"""Properties of services/contracts/money.py (DESIGN §3 and §6 step 5)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.money import (
    MAX_WIRE_FEN,
    MAX_YUAN,
    MoneyError,
    apply_rate,
    fits_wire,
    format_yuan,
    largest_remainder,
    parse_rate,
    parse_yuan,
    round_half_up,
)

# The wire format allows up to 12 digits of whole yuan (DESIGN §3: at most 999999999999.99).
WIRE_FEN = st.integers(-MAX_WIRE_FEN, MAX_WIRE_FEN)
KEYS = st.text(alphabet="abcdefghij-", min_size=1, max_size=6)
WEIGHTS = st.dictionaries(
    KEYS,
    st.one_of(st.integers(0, 10**15), st.fractions(min_value=0, max_value=10**6)),
    min_size=1,
    max_size=12,
).filter(lambda w: sum(Fraction(v) for v in w.values()) > 0)


@given(total=st.integers(0, 10**12), weights=WEIGHTS)
def test_largest_remainder_parts_sum_to_the_total_and_stay_within_a_fen_of_the_exact_share(
    total: int, weights: dict[str, int | Fraction]
) -> None:
    parts = largest_remainder(total, weights)
    assert parts.keys() == weights.keys()
    assert sum(parts.values()) == total
    weight_sum = sum(Fraction(w) for w in weights.values())
    for key, weight in weights.items():
        exact = Fraction(total) * Fraction(weight) / weight_sum
        assert abs(parts[key] - exact) < 1
        assert parts[key] >= 0
        if weight == 0:
            assert parts[key] == 0


def test_largest_remainder_gives_the_leftover_fen_to_the_largest_remainders_then_the_smaller_key() -> None:
    # 10 × 1/3 = 3 rem 1/3 each → the one fen left goes to "a".
    assert largest_remainder(10, {"c": 1, "a": 1, "b": 1}) == {"a": 4, "b": 3, "c": 3}
    # 3 over 5:4:1 (of 10) = 1.5, 1.2, 0.3 → 1, 1, 0 and the 1 left to the largest remainder, "x" (.5)
    assert largest_remainder(3, {"x": 5, "y": 4, "z": 1}) == {"x": 2, "y": 1, "z": 0}


def test_largest_remainder_refuses_a_nonzero_total_over_zero_weights() -> None:
    assert largest_remainder(0, {"a": 0}) == {"a": 0}
    with pytest.raises(MoneyError):
        largest_remainder(1, {"a": 0})
    with pytest.raises(MoneyError):
        largest_remainder(-1, {"a": 1})



def exact_largest_remainder(total: int, weights: dict[str, int | Fraction]) -> dict[str, int]:
    """The rule as DESIGN §6 step 5 words it, on exact fractions: the oracle of the integer split."""
    weight_sum = sum(Fraction(w) for w in weights.values())
    exact = {key: Fraction(total) * Fraction(w) / weight_sum for key, w in weights.items()}
    shares = {key: share.numerator // share.denominator for key, share in exact.items()}
    by_remainder = sorted(weights, key=lambda key: (-(exact[key] - shares[key]), key))
    for key in by_remainder[:total - sum(shares.values())]:
        shares[key] += 1
    return shares


TIED_WEIGHTS = st.dictionaries(KEYS, st.one_of(st.integers(0, 4), st.sampled_from([Fraction(1, 3), Fraction(2, 6)])),
                               min_size=1, max_size=12).filter(lambda w: sum(Fraction(v) for v in w.values()) > 0)


@given(total=st.integers(0, 10**12), weights=st.one_of(WEIGHTS, TIED_WEIGHTS))
def test_largest_remainder_in_integers_is_the_exact_rule_to_the_fen_ties_included(
    total: int, weights: dict[str, int | Fraction]
) -> None:
    assert largest_remainder(total, weights) == exact_largest_remainder(total, weights)

@given(fen=WIRE_FEN)
def test_format_then_parse_gives_back_the_fen(fen: int) -> None:
    text = format_yuan(fen)
    assert parse_yuan(text, allow_negative=True) == fen
    if fen >= 0:
        assert parse_yuan(text) == fen


@given(whole=st.integers(0, 10**12 - 1), cents=st.integers(0, 99), negative=st.booleans())
def test_parse_then_format_gives_back_a_canonical_string(whole: int, cents: int, negative: bool) -> None:
    fen = whole * 100 + cents
    text = ("-" if negative and fen else "") + f"{whole}.{cents:02d}"
    assert format_yuan(parse_yuan(text, allow_negative=True)) == text


def test_the_wire_bound_is_twelve_integer_digits_either_way() -> None:
    assert MAX_YUAN == "999999999999.99" == format_yuan(MAX_WIRE_FEN)
    assert parse_yuan(MAX_YUAN) == MAX_WIRE_FEN
    assert parse_yuan("-999999999999.99", allow_negative=True) == -MAX_WIRE_FEN
    assert parse_yuan("000999999999999.99") == MAX_WIRE_FEN  # leading zeros do not count
    assert fits_wire(MAX_WIRE_FEN) and fits_wire(-MAX_WIRE_FEN) and fits_wire(0)
    assert not fits_wire(MAX_WIRE_FEN + 1) and not fits_wire(-MAX_WIRE_FEN - 1)


@pytest.mark.parametrize("value", ["1000000000000.00", "999999999999999.99", "-1000000000000.00",
                                   "1" * 5000 + ".00", "-" + "9" * 13 + ".99"])
def test_parse_yuan_refuses_more_than_twelve_integer_digits(value: str) -> None:
    with pytest.raises(MoneyError, match="at most 12 integer digits"):
        parse_yuan(value, allow_negative=True)


def test_format_yuan_writes_any_sum_exactly_beyond_the_bound() -> None:
    # Sums in reports are exact ints, far beyond 2^63 fen: written out digit for digit.
    assert format_yuan(100 * MAX_WIRE_FEN) == "99999999999999.00"
    assert format_yuan(2**64 * 100 + 5) == f"{2**64}.05"


def test_format_yuan_writes_two_decimals() -> None:
    assert [format_yuan(f) for f in (0, 5, 12345, -5, -100)] == ["0.00", "0.05", "123.45", "-0.05", "-1.00"]


@pytest.mark.parametrize(
    "value",
    [1.5, 150, True, None, "1.5", "1.234", "1", "1.", ".50", "1,50", "+1.00", " 1.00", "1.00\n", "١.٥٠", "1e2"],
)
def test_parse_yuan_refuses_anything_but_a_two_decimal_string(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_yuan(value)


def test_parse_yuan_refuses_negatives_unless_allowed() -> None:
    with pytest.raises(MoneyError, match="negative"):
        parse_yuan("-1.00")
    assert parse_yuan("-1.00", allow_negative=True) == -100


@given(value=st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_parse_yuan_refuses_every_float_and_int(value: float | int) -> None:
    with pytest.raises(MoneyError):
        parse_yuan(value)


@pytest.mark.parametrize("value", [0.1, "0.1\n", "١", "-0.1", "1e-2", ".1"])
def test_parse_rate_refuses_floats_and_non_decimal_strings(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_rate(value)


def test_parse_rate_is_exact() -> None:
    assert parse_rate("0.10") == Fraction(1, 10)
    assert apply_rate(12345, parse_rate("0.10")) == 1235  # 1234.5 → half up


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(5, 2), 3),
        (Fraction(-5, 2), -3),
        (Fraction(1, 2), 1),
        (Fraction(-1, 2), -1),
        (Fraction(49, 20), 2),
        (Fraction(-49, 20), -2),
        (Fraction(51, 20), 3),
        (Fraction(-51, 20), -3),
        (7, 7),
        (-7, -7),
    ],
)
def test_round_half_up_rounds_halves_away_from_zero(value: Fraction | int, expected: int) -> None:
    assert round_half_up(value) == expected


@given(value=st.fractions())
def test_round_half_up_is_within_half_a_fen_and_breaks_halves_away_from_zero(value: Fraction) -> None:
    rounded = round_half_up(value)
    assert isinstance(rounded, int)
    assert abs(value - rounded) <= Fraction(1, 2)
    if abs(value - rounded) == Fraction(1, 2):
        assert abs(rounded) > abs(value)
    assert round_half_up(-value) == -rounded
