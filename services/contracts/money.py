"""Money in integer fen, and the exact splitting rules of DESIGN §3 and §6.

Inside baotuan every amount is an ``int`` of fen (1 yuan = 100 fen). On the wire it is a
string with exactly two decimals in yuan (``"1234.50"``). Floats are refused everywhere:
a float cannot say 0.10 exactly, and village money must add up to the fen.

Bounds (DESIGN §3): an amount on the wire (a request's or an event's) is at most
``999999999999.99`` yuan in absolute value — 12 integer digits (:data:`MAX_WIRE_FEN`).
Computed amounts that travel (a land valuation, an invoice, capital-days, the totals of a
distribution) must fit too: :func:`fits_wire` tells, and the services refuse the request
that would create one that does not (422). Sums in reports are exact Python ints and may
be larger; :func:`format_yuan` writes any int.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import cast

#: The most integer digits of a wire amount (DESIGN §3).
MAX_WHOLE_DIGITS = 12
#: The largest wire amount in fen: 999999999999.99 yuan (the smallest is its negative).
MAX_WIRE_FEN = 99_999_999_999_999
#: The largest wire amount as written: "999999999999.99".
MAX_YUAN = "999999999999.99"

# ASCII digits only and \Z (not $, which also matches before a trailing newline).
# _YUAN_RE is the published pattern of an event's amount: canonical (no leading zeros, no "-0.00"
# is left to the field), so 12 integer digits at most. parse_yuan also takes leading zeros as long
# as the value is within the bound (a request's "0001.00"); the contract takes only format_yuan's form.
_YUAN_RE = re.compile(r"^-?(0|[1-9][0-9]{0,11})\.[0-9]{2}\Z")
_YUAN_ANY_RE = re.compile(r"^(-?)([0-9]+)\.([0-9]{2})\Z")
_RATE_RE = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,10})?\Z")
_MU_RE = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,4})?\Z")


class MoneyError(ValueError):
    """A value that is not a valid amount, rate or area."""


def parse_yuan(text: object, *, allow_negative: bool = False) -> int:
    """Parse a wire amount (``"1234.50"``: a string, exactly two decimals) into fen.

    Raises MoneyError for floats, ints, other scales, more than 12 integer digits (beyond
    ``999999999999.99``, leading zeros aside) and (unless allowed) negatives.
    """
    if isinstance(text, bool) or not isinstance(text, str):
        raise MoneyError("amount must be a string with exactly two decimals, e.g. \"1234.50\"")
    found = _YUAN_ANY_RE.match(text)
    if found is None:
        raise MoneyError("amount must have exactly two decimals, e.g. \"1234.50\"")
    sign, whole, frac = found.groups()
    digits = whole.lstrip("0")
    if len(digits) > MAX_WHOLE_DIGITS:
        raise MoneyError(f"amount must have at most {MAX_WHOLE_DIGITS} integer digits (at most {MAX_YUAN})")
    fen = int(digits or "0") * 100 + int(frac)
    if sign:
        if not allow_negative:
            raise MoneyError("amount must not be negative")
        fen = -fen
    return fen


def fits_wire(fen: int) -> bool:
    """True when ``fen`` can travel as a wire amount: at most 999999999999.99 yuan either way."""
    return -MAX_WIRE_FEN <= fen <= MAX_WIRE_FEN


def format_yuan(fen: int) -> str:
    """Format integer fen as the wire string in yuan with two decimals (``12345 -> "123.45"``)."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise MoneyError(f"fen must be an int, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    whole, frac = divmod(abs(fen), 100)
    return f"{sign}{whole}.{frac:02d}"


def parse_rate(text: object) -> Fraction:
    """Parse a decimal rate string (``"0.10"``) into an exact Fraction. Floats are refused."""
    if isinstance(text, bool) or not isinstance(text, str) or not _RATE_RE.match(text):
        raise MoneyError("rate must be a decimal string such as \"0.10\"")
    return Fraction(Decimal(text))


def parse_mu(text: object) -> Fraction:
    """Parse a land area in mu (decimal string, at most 4 places) into an exact Fraction."""
    if isinstance(text, bool) or not isinstance(text, str) or not _MU_RE.match(text):
        raise MoneyError("area must be a decimal string with at most 4 decimals, e.g. \"14.2000\"")
    return Fraction(Decimal(text))


def round_half_up(value: Fraction | int) -> int:
    """Round an exact value (in fen) to a whole fen, ROUND_HALF_UP (halves away from zero)."""
    value = Fraction(value)
    floor = value.numerator // value.denominator
    remainder = value - floor
    if remainder > Fraction(1, 2) or (remainder == Fraction(1, 2) and value >= 0):
        return int(floor + 1)
    return int(floor)  # below a half, or a negative half (away from zero is down)


def apply_rate(fen: int, rate: Fraction) -> int:
    """``round(fen × rate)`` to the fen, ROUND_HALF_UP on the exact product."""
    return round_half_up(Fraction(fen) * rate)


def valuation_fen(area_mu: Fraction, price_per_mu_fen: int) -> int:
    """Valuation of a land share: ROUND_HALF_UP(area in mu × price per mu) to the fen."""
    return round_half_up(area_mu * price_per_mu_fen)


def largest_remainder(total: int, weights: Mapping[str, int | Fraction]) -> dict[str, int]:
    """Split ``total`` fen in proportion to ``weights`` by largest remainder (DESIGN §6 step 5).

    Each key gets floor(total × w / Σw) fen; the fen left over go one each to the largest
    remainders, ties to the smaller key. The parts always sum to ``total`` exactly. Keys
    with zero weight get 0; if every weight is zero, everyone gets 0 and ``total`` must be 0.

    In integers: Fraction weights are first scaled by the least common multiple of their
    denominators (the same proportions). Then floor(total × w / S) and its remainder
    (total × w) mod S share the denominator S, so comparing the integer remainders orders
    the exact fractional remainders, and int weights make no Fraction at all (10,000
    investors take milliseconds).
    """
    if total < 0:
        raise MoneyError("cannot split a negative amount")
    if any(w < 0 for w in weights.values()):
        raise MoneyError("weights must not be negative")
    denominators = [w.denominator for w in weights.values() if type(w) is not int]
    whole_weights = cast("Mapping[str, int]", weights)
    if denominators:
        scale = math.lcm(*denominators)
        whole_weights = {key: int(w * scale) for key, w in weights.items()}
    weight_sum = sum(whole_weights.values())
    if weight_sum == 0:
        if total != 0:
            raise MoneyError("cannot split a non-zero amount over zero weights")
        return {key: 0 for key in weights}
    shares: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    handed_out = 0
    for key, weight in whole_weights.items():
        whole, remainder = divmod(total * weight, weight_sum)
        shares[key] = whole
        handed_out += whole
        remainders.append((-remainder, key))
    left = total - handed_out
    if left:
        remainders.sort()  # largest remainder first; ties go to the smaller key
        for _, key in remainders[:left]:
            shares[key] += 1
    return shares

