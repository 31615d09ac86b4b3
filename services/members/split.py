"""The village's own distribution, as pure arithmetic (DESIGN §11): shares, appropriations, the household split.

The members service computes a plan with these functions, and the audit imports them to compute it again from
the log. Everything is exact: shares and weights are :class:`fractions.Fraction`, money is integer fen.
Nothing here reads a database, the clock or the network.

- :func:`household_weight`: weight_h = Σ_kind holding_h,kind × weight_kind.
- :func:`split_members_total`: amount_h = floor(M × weight_h / Σ weight) fen, the leftover fen one each to the
  largest remainders, ties to the smaller household_id; households of weight 0 left out; Σ = M exactly.
- :func:`appropriations`: reserve = round half up (A × rate), then welfare, then the members' total; what is left
  stays undistributed; refused (:class:`AppropriationError`, naming the field) when they exceed A.
- :func:`holdings_on` / :func:`all_holdings_on`: the holdings on a date, from the recorded changes
  (:class:`SetHoldings` before the shares were fixed, :class:`Transfer` at any time), every change with
  effective_on ≤ the date applied, in the order (effective_on, log order).
- :func:`mask_name`: a name as a village notice (公示) shows it: 张小明 → 张*明, 王五 → 王*.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from services.contracts.money import largest_remainder, round_half_up

#: A number of shares or a share kind's weight on the wire: a decimal ≥ 0 with at most 4 places.
_SHARES_RE = re.compile(r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,4})?\Z")
#: A household's weight (Σ shares × kind weight): up to 8 places, as the products of two 4-place decimals.
WEIGHT_PLACES = 8


class SharesError(ValueError):
    """A number of shares that is not a decimal ≥ 0 with at most 4 places."""


def parse_shares(text: object) -> Fraction:
    """``"1.5"`` → Fraction(3, 2); refuses floats, signs, exponents and more than 4 places."""
    if isinstance(text, bool) or not isinstance(text, str) or not _SHARES_RE.match(text):
        raise SharesError("shares must be a decimal ≥ 0 with at most 4 places, such as \"1.5\"")
    return Fraction(Decimal(text))


def format_decimal(value: Fraction, places: int = WEIGHT_PLACES) -> str:
    """An exact decimal with at most ``places`` places, written shortest ("1", "0.5", "2.125"); raises ValueError
    if ``value`` is negative or not exact at that many places."""
    if value < 0:
        raise ValueError(f"{value} is negative")
    scaled = value * 10 ** places
    if scaled.denominator != 1:
        raise ValueError(f"{value} has more than {places} decimal places")
    whole, frac = divmod(scaled.numerator, 10 ** places)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:0{places}d}".rstrip("0")


def format_shares(value: Fraction) -> str:
    """Shares (or a kind's weight) as the wire writes them: shortest decimal, at most 4 places."""
    return format_decimal(value, 4)


# -- weights and the split ------------------------------------------------------------------------------------


def household_weight(holdings: Mapping[str, Fraction], kind_weights: Mapping[str, Fraction]) -> Fraction:
    """Σ_kind holding × weight of the kind, exact. A kind the charter does not list weighs 0 (the service refuses
    a charter that drops a kind someone holds, so it does not happen on a plan)."""
    return sum((Fraction(shares) * Fraction(kind_weights.get(kind, 0)) for kind, shares in holdings.items()),
               Fraction(0))


def split_members_total(members_total: int, weights: Mapping[str, Fraction]) -> dict[str, int]:
    """Split ``members_total`` fen over the households by weight (DESIGN §11), keyed and sorted by household_id.

    Each household of weight > 0 gets floor(M × w / Σw) fen; the fen left over go one each to the largest
    remainders, ties to the smaller household_id. Households of weight 0 are left out. Σ = M exactly.
    Raises ValueError for a negative M or weight, or M > 0 with Σw = 0 (nobody to pay).
    """
    if members_total < 0:
        raise ValueError("members_total must not be negative")
    if any(Fraction(w) < 0 for w in weights.values()):
        raise ValueError("a household's weight must not be negative")
    positive = {household: Fraction(w) for household, w in weights.items() if w > 0}
    if not positive:
        if members_total:
            raise ValueError("members_total is more than 0.00 but no household holds a share of weight > 0")
        return {}
    split = largest_remainder(members_total, positive)
    return {household: split[household] for household in sorted(positive)}


# -- appropriations -------------------------------------------------------------------------------------------


class AppropriationError(ValueError):
    """Appropriations that do not fit the distributable amount; ``field`` names the request field to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Appropriations:
    """The appropriations of DESIGN §11, in fen, in their order: reserve, welfare, the members' total."""

    distributable: int
    reserve_rate: Fraction
    reserve: int
    welfare: int
    members_total: int
    undistributed: int


def appropriations(distributable: int, reserve_rate: Fraction, welfare: int, members_total: int) -> Appropriations:
    """reserve = round half up (A × rate) to the fen; then welfare W; then M; undistributed = A − reserve − W − M.

    A ≤ 0 pays nothing: the reserve is 0 and W and M must be 0. Raises :class:`AppropriationError` naming
    ``reserve_rate``, ``welfare`` or ``members_total`` when the appropriations exceed A (the first that does).
    """
    if reserve_rate < 0 or reserve_rate > 1:
        raise AppropriationError("reserve_rate", "reserve_rate must be between 0 and 1")
    if welfare < 0:
        raise AppropriationError("welfare", "welfare must not be negative")
    if members_total < 0:
        raise AppropriationError("members_total", "members_total must not be negative")
    if distributable <= 0:
        if welfare:
            raise AppropriationError("welfare", "the distributable amount is not above 0.00: the plan pays nothing, "
                                                "welfare must be 0.00")
        if members_total:
            raise AppropriationError("members_total", "the distributable amount is not above 0.00: the plan pays "
                                                      "nothing, members_total must be 0.00")
        return Appropriations(distributable, reserve_rate, 0, 0, 0, distributable)
    reserve = round_half_up(Fraction(distributable) * reserve_rate)
    if reserve + welfare > distributable:
        raise AppropriationError("welfare", "reserve + welfare is more than the distributable amount")
    if reserve + welfare + members_total > distributable:
        raise AppropriationError("members_total", "reserve + welfare + members_total is more than the distributable "
                                                  "amount")
    return Appropriations(distributable, reserve_rate, reserve, welfare, members_total,
                          distributable - reserve - welfare - members_total)


# -- holdings over time ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetHoldings:
    """HoldingsSet: the household holds exactly ``holdings`` (every kind; kinds not listed: 0) from ``effective_on``."""

    household_id: str
    holdings: Mapping[str, Fraction]
    effective_on: date


@dataclass(frozen=True)
class Transfer:
    """SharesTransferred: ``shares`` of ``kind`` pass from one household to another from ``effective_on``."""

    from_household: str
    to_household: str
    kind: str
    shares: Fraction
    effective_on: date


Change = SetHoldings | Transfer


def _in_order(changes: Iterable[Change], day: date | None = None) -> list[Change]:
    """The changes with effective_on ≤ ``day`` (all if None), by effective_on, then in log order (a stable sort)."""
    chosen = [c for c in changes if day is None or c.effective_on <= day]
    return sorted(chosen, key=lambda c: c.effective_on)


def _apply(state: dict[str, dict[str, Fraction]], change: Change) -> None:
    if isinstance(change, SetHoldings):
        state[change.household_id] = {kind: Fraction(n) for kind, n in change.holdings.items()}
        return
    source = state.setdefault(change.from_household, {})
    target = state.setdefault(change.to_household, {})
    source[change.kind] = source.get(change.kind, Fraction(0)) - change.shares
    target[change.kind] = target.get(change.kind, Fraction(0)) + change.shares


def all_holdings_on(changes: Iterable[Change], day: date) -> dict[str, dict[str, Fraction]]:
    """Every household's holdings on ``day`` (kinds held 0 left out), by household_id."""
    state: dict[str, dict[str, Fraction]] = {}
    for change in _in_order(changes, day):
        _apply(state, change)
    return {household: {kind: n for kind, n in sorted(held.items()) if n != 0}
            for household, held in sorted(state.items())}


def holdings_on(changes: Iterable[Change], household_id: str, day: date) -> dict[str, Fraction]:
    """One household's holdings on ``day`` (kinds held 0 left out)."""
    return all_holdings_on(changes, day).get(household_id, {})


@dataclass(frozen=True)
class Shortfall:
    """A household that would hold fewer than 0 shares of a kind from a date on."""

    household_id: str
    kind: str
    day: date
    holding: Fraction


def first_shortfall(changes: Sequence[Change]) -> Shortfall | None:
    """The first (date, household, kind) where the changes leave a negative holding, if any: a transfer of more
    than the household holds on its date, or on any later date (after a later transfer out)."""
    state: dict[str, dict[str, Fraction]] = {}
    ordered = _in_order(changes)
    for i, change in enumerate(ordered):
        _apply(state, change)
        if i + 1 < len(ordered) and ordered[i + 1].effective_on == change.effective_on:
            continue  # a day's changes all apply before the day is looked at
        for household in sorted(state):
            for kind, n in sorted(state[household].items()):
                if n < 0:
                    return Shortfall(household, kind, change.effective_on, n)
    return None


# -- the public notice ----------------------------------------------------------------------------------------


def mask_name(name: str) -> str:
    """A name as village notices show it: two characters → the first and ``*`` (王五 → 王*); three or more → the
    first, ``*`` for each middle character, the last (张小明 → 张*明, 欧阳小明 → 欧**明); one character → ``*``.
    Leading and trailing whitespace is dropped first."""
    chars = list(name.strip())
    if len(chars) <= 1:
        return "*"
    if len(chars) == 2:
        return chars[0] + "*"
    return chars[0] + "*" * (len(chars) - 2) + chars[-1]
