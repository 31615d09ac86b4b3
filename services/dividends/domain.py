"""The distribution rule of DESIGN §6, as a pure function.

No I/O and no framework here: the dividends service calls :func:`compute_distribution`
with what it folded from the topics, and the auditor can call it again on a replay and
must get the same numbers. Every amount is an ``int`` of fen; rates are exact
``Fraction``s; rounding is ROUND_HALF_UP on the exact value (DESIGN §3).

The result does not depend on the order of the inputs: rents and expenses are summed,
movements are grouped per investor and a capital balance is a sum, and every tie is
broken by ``investor_id``.

Late items (§6 step 1) reach the rule already chosen: which rent or expense recorded after
an earlier distribution counts here is decided from the log's positions by
``services.dividends.inputs``; the rule adds their amounts to R and E whatever their date,
and lists them in the result.

Capital-days are computed per movement, not per day: a movement of ``a`` fen effective
on ``e`` adds ``a`` fen to every period day ``d >= e``, so it contributes
``a × (days of [max(e, start), last])``. That is O(movements), whatever the length of
the period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TypeGuard

from services.contracts.money import MoneyError, apply_rate, largest_remainder, parse_rate

__all__ = [
    "DAYS_PER_YEAR",
    "INVESTOR_TYPES",
    "LATE_KINDS",
    "Allocation",
    "DistributionResult",
    "DistributionRuleError",
    "InvestorCapitalChange",
    "LateItem",
    "Policy",
    "capital_days",
    "compute_distribution",
]

#: The guaranteed rate is a yearly rate; a day is 1/365 of it, leap year or not (§6 step 6).
DAYS_PER_YEAR = 365

#: Investor types of LandShareInvested / CashInvested / InvestorRegistered (§5).
INVESTOR_TYPES = frozenset({"collective", "company", "government"})

#: The kinds of a late item: a RentReceived counts in R, an ExpenseRecorded in E (§6 step 1).
LATE_KINDS = ("rent", "expense")


class DistributionRuleError(ValueError):
    """The inputs do not admit a distribution (bad period, negative capital, bad policy …)."""


def _exact_rate(value: object, name: str) -> Fraction:
    """An exact, non-negative rate as a Fraction. Floats (inexact) are refused."""
    if isinstance(value, bool) or not isinstance(value, Fraction | int | Decimal):
        raise DistributionRuleError(f"{name} must be an exact Fraction, got {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise DistributionRuleError(f"{name} must be finite")
    rate = Fraction(value)
    if rate < 0:
        raise DistributionRuleError(f"{name} must not be negative")
    return rate


def _is_date(value: object) -> TypeGuard[date]:
    # datetime is a subclass of date but does not compare with one: refuse it.
    return isinstance(value, date) and not isinstance(value, datetime)


@dataclass(frozen=True)
class Policy:
    """The distribution policy in force (PolicySet, §5), with exact rates.

    ``int`` and ``Decimal`` rates are accepted and stored as ``Fraction``; floats are
    refused. ``payout_ratio`` must lie in [0, 1].
    """

    management_fee_rate: Fraction
    tax_rate: Fraction
    payout_ratio: Fraction
    guaranteed_rate: Fraction
    guarantee_until: date | None = None
    guarantor_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("management_fee_rate", "tax_rate", "payout_ratio", "guaranteed_rate"):
            object.__setattr__(self, name, _exact_rate(getattr(self, name), name))
        if self.payout_ratio > 1:
            raise DistributionRuleError("payout_ratio must not exceed 1")
        if self.guarantee_until is not None and not _is_date(self.guarantee_until):
            raise DistributionRuleError("guarantee_until must be a date or None")
        if self.guarantor_id is not None and (not isinstance(self.guarantor_id, str) or not self.guarantor_id):
            raise DistributionRuleError("guarantor_id must be a non-empty string or None")

    @classmethod
    def from_wire(cls, data: Mapping[str, object]) -> Policy:
        """Build a Policy from a PolicySet ``data`` (rates as decimal strings, ISO date)."""
        try:
            rates = {
                name: parse_rate(data[name])
                for name in ("management_fee_rate", "tax_rate", "payout_ratio", "guaranteed_rate")
            }
        except KeyError as exc:
            raise DistributionRuleError(f"policy is missing {exc.args[0]}") from None
        except MoneyError as exc:
            raise DistributionRuleError(str(exc)) from None
        until_text = data.get("guarantee_until")
        until: date | None = None
        if until_text is not None:
            if not isinstance(until_text, str):
                raise DistributionRuleError("guarantee_until must be an ISO date string or null")
            try:
                until = date.fromisoformat(until_text)
            except ValueError:
                raise DistributionRuleError("guarantee_until must be an ISO date (YYYY-MM-DD)") from None
        guarantor = data.get("guarantor_id")
        if guarantor is not None and not isinstance(guarantor, str):
            raise DistributionRuleError("guarantor_id must be a string or null")
        return cls(guarantee_until=until, guarantor_id=guarantor, **rates)


@dataclass(frozen=True)
class InvestorCapitalChange:
    """A change of an investor's capital in the project, in fen.

    Positive: LandShareInvested.valuation or CashInvested.amount; negative:
    InvestmentWithdrawn.amount. All movements of one investor must carry the same
    ``investor_type``.
    """

    investor_id: str
    investor_type: str  # "collective" | "company" | "government"
    amount: int  # fen; positive = investment (land valuation or cash), negative = withdrawal
    effective_on: date


@dataclass(frozen=True)
class LateItem:
    """A rent received or an expense recorded after an earlier distribution of the project was
    declared, dated inside that distribution's period: it counts in this one (§6 step 1).

    ``on`` is its received_on / incurred_on; it lies outside this distribution's period.
    """

    event_id: str
    kind: str  # "rent" | "expense"
    amount: int  # fen
    on: date


@dataclass(frozen=True)
class Allocation:
    """One investor's share (DividendAllocated, §5), all in fen (capital_days in fen·days)."""

    investor_id: str
    investor_type: str
    capital_days: int  # fen·days (Σ capital in fen × days); on the wire format_yuan(capital_days)
    pro_rata: int  # fen
    guaranteed_floor: int  # fen
    top_up: int  # fen
    payout: int  # fen


@dataclass(frozen=True)
class DistributionResult:
    """The totals of DistributionDeclared and the allocations of DividendAllocated (§5)."""

    period_start: date
    period_end: date
    gross_rent: int
    expenses: int
    management_fee: int
    tax: int
    net_profit: int  # may be negative
    pool: int
    retained: int
    total_top_up: int
    total_payout: int
    total_capital_days: int
    allocations: tuple[Allocation, ...]  # sorted by investor_id; only investors with capital_days > 0
    late_items: tuple[LateItem, ...] = ()  # in gross_rent / expenses too; sorted by (on, kind, event_id)


# --------------------------------------------------------------------------------------
# internals


def _period(period_start: object, period_end: object) -> tuple[int, int]:
    if not _is_date(period_start) or not _is_date(period_end):
        raise DistributionRuleError("period_start and period_end must be dates")
    if period_end < period_start:
        raise DistributionRuleError(
            f"period_end {period_end.isoformat()} is before period_start {period_start.isoformat()}"
        )
    return period_start.toordinal(), period_end.toordinal()


def _sum_in_period(rows: Iterable[tuple[date, int]], start: date, end: date, what: str) -> int:
    total = 0
    for row in rows:
        try:
            on, fen = row
        except (TypeError, ValueError):
            raise DistributionRuleError(f"each {what} must be a (date, fen) pair") from None
        if not _is_date(on):
            raise DistributionRuleError(f"{what} date must be a date, got {type(on).__name__}")
        if type(fen) is not int:
            raise DistributionRuleError(f"{what} amount must be int fen, got {type(fen).__name__}")
        if start <= on <= end:
            total += fen
    return total


def _late_items(late: Iterable[LateItem]) -> tuple[LateItem, ...]:
    """The late items checked, each event once, sorted by (date, kind, event_id)."""
    items: dict[str, LateItem] = {}
    for item in late:
        if not isinstance(item, LateItem):
            raise DistributionRuleError(f"late items must be LateItem, got {type(item).__name__}")
        if item.kind not in LATE_KINDS:
            raise DistributionRuleError(f"late item kind must be one of {LATE_KINDS}, got {item.kind!r}")
        if type(item.amount) is not int:
            raise DistributionRuleError(f"late item amount must be int fen, got {type(item.amount).__name__}")
        if not _is_date(item.on):
            raise DistributionRuleError("late item date must be a date")
        if item.event_id in items and items[item.event_id] != item:
            raise DistributionRuleError(f"late item {item.event_id!r} is given twice, differently")
        items[item.event_id] = item
    return tuple(sorted(items.values(), key=lambda i: (i.on, i.kind, i.event_id)))


def _movement_error(m: object) -> DistributionRuleError:
    """The reason a movement is malformed (the slow path of :func:`_scan_movements`)."""
    if not isinstance(m, InvestorCapitalChange):
        return DistributionRuleError(f"movements must be InvestorCapitalChange, got {type(m).__name__}")
    if type(m.amount) is not int:
        return DistributionRuleError(
            f"movement amount of {m.investor_id!r} must be int fen, got {type(m.amount).__name__}"
        )
    return DistributionRuleError(f"movement effective_on of {m.investor_id!r} must be a date")


def _scan_movements(
    movements: Iterable[InvestorCapitalChange], first: int, last: int, guarantee_last: int
) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """One pass over the movements: (type, capital-days, guaranteed capital-days) per investor.

    A movement of ``a`` fen effective on ordinal ``e`` is part of the capital on every day
    ``d >= e``, so it adds ``a × |[max(e, first), last]|`` fen·days (and the same up to
    ``guarantee_last`` for the guaranteed capital-days). Raises DistributionRuleError for a
    malformed movement, two investor types for one investor, or capital below zero on
    any day.
    """
    rows = list(movements)
    types: dict[str, str] = {}
    cds: dict[str, int] = {}
    gcds: dict[str, int] = {}
    withdrawing: set[str] = set()
    for m in rows:
        if type(m) is not InvestorCapitalChange and not isinstance(m, InvestorCapitalChange):
            raise _movement_error(m)
        investor = m.investor_id
        amount = m.amount
        on = m.effective_on
        if type(amount) is not int or (type(on) is not date and not _is_date(on)):
            raise _movement_error(m)
        known = types.get(investor)
        if known is None:
            if not isinstance(investor, str) or not investor:
                raise DistributionRuleError("investor_id must be a non-empty string")
            kind = m.investor_type
            if kind not in INVESTOR_TYPES:
                raise DistributionRuleError(
                    f"investor_type of {investor!r} must be one of {sorted(INVESTOR_TYPES)}, got {kind!r}"
                )
            types[investor] = kind
            cds[investor] = 0
            gcds[investor] = 0
        elif known != m.investor_type:
            raise DistributionRuleError(
                f"investor {investor!r} has movements of two types: {known!r} and {m.investor_type!r}"
            )
        if amount < 0:
            withdrawing.add(investor)
        ordinal = on.toordinal()
        if ordinal < first:
            ordinal = first
        if ordinal <= last:
            cds[investor] += amount * (last - ordinal + 1)
            if ordinal <= guarantee_last:
                gcds[investor] += amount * (guarantee_last - ordinal + 1)
    if withdrawing:
        _check_never_negative(rows, withdrawing)
    return types, cds, gcds


def _check_never_negative(movements: list[InvestorCapitalChange], investors: set[str]) -> None:
    """Raise if the capital of one of ``investors`` is below zero on any day, in or out of the period.

    Capital on day d is the sum of the movements effective on or before d, so only the
    balance after the last movement of each date counts (same-day movements net out).
    """
    rows: dict[str, list[tuple[int, int]]] = {investor: [] for investor in investors}
    for m in movements:
        if m.investor_id in rows:
            rows[m.investor_id].append((m.effective_on.toordinal(), m.amount))
    for investor in sorted(rows):
        ordered = sorted(rows[investor])
        balance = 0
        for k, (ordinal, amount) in enumerate(ordered):
            balance += amount
            if balance < 0 and (k + 1 == len(ordered) or ordered[k + 1][0] != ordinal):
                raise DistributionRuleError(
                    f"withdrawal takes the capital of {investor!r} below zero on "
                    f"{date.fromordinal(ordinal).isoformat()} ({balance} fen)"
                )


def _allocation(
    investor_id: str, investor_type: str, capital_days: int, pro_rata: int, floor: int, top_up: int, payout: int
) -> Allocation:
    """``Allocation(...)`` without the frozen dataclass __init__ (one object.__setattr__ per
    field), which alone would take ~17 ms for 10,000 investors. Equal to the normal
    constructor's result in every way (fields, ==, hash, repr); the tests compare them.
    """
    allocation = _new_object(Allocation)
    _set_attribute(
        allocation,
        "__dict__",
        {
            "investor_id": investor_id,
            "investor_type": investor_type,
            "capital_days": capital_days,
            "pro_rata": pro_rata,
            "guaranteed_floor": floor,
            "top_up": top_up,
            "payout": payout,
        },
    )
    return allocation


_new_object = object.__new__
_set_attribute = object.__setattr__


def _round_half_up_ratio(numerator: int, denominator: int) -> int:
    """ROUND_HALF_UP(numerator / denominator) for numerator >= 0 and denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


# --------------------------------------------------------------------------------------
# public API


def capital_days(
    movements: Iterable[InvestorCapitalChange],
    period_start: date,
    period_end: date,
    *,
    until: date | None = None,
) -> dict[str, int]:
    """Fen·days per investor over the inclusive period (§6 step 4).

    With ``until``, only the period's days on or before ``until`` count (the guarantee's
    gcd of step 6). Every investor that has a movement is a key (possibly with 0); keys
    are in investor_id order. Raises DistributionRuleError for a bad period or a
    withdrawal taking capital below zero.
    """
    first, last = _period(period_start, period_end)
    if until is not None:
        if not _is_date(until):
            raise DistributionRuleError("until must be a date or None")
        last = min(last, until.toordinal())
    _, cds, _ = _scan_movements(movements, first, last, last)
    return {investor: cds[investor] for investor in sorted(cds)}


def compute_distribution(
    period_start: date,
    period_end: date,
    policy: Policy,
    rents: Iterable[tuple[date, int]],
    expenses: Iterable[tuple[date, int]],
    movements: Iterable[InvestorCapitalChange],
    *,
    late: Iterable[LateItem] = (),
) -> DistributionResult:
    """Apply DESIGN §6 to one project and one inclusive period.

    ``rents`` are (received_on, fen), ``expenses`` (incurred_on, fen), both filtered to the
    period here; ``movements`` are the project's capital movements of every date. ``late``
    are the late items this distribution takes up (step 1): each counts once, in R or E,
    whatever its date, and is listed in ``late_items``.
    """
    first, last = _period(period_start, period_end)
    if not isinstance(policy, Policy):
        raise DistributionRuleError(f"policy must be a Policy, got {type(policy).__name__}")

    # Steps 1-3: the pool.
    late_items = _late_items(late)
    gross_rent = _sum_in_period(rents, period_start, period_end, "rent")
    expense_total = _sum_in_period(expenses, period_start, period_end, "expense")
    for item in late_items:
        if item.kind == "rent":
            gross_rent += item.amount
        else:
            expense_total += item.amount
    management_fee = apply_rate(gross_rent, policy.management_fee_rate)
    tax = apply_rate(gross_rent, policy.tax_rate)
    net_profit = gross_rent - expense_total - management_fee - tax
    profit = max(net_profit, 0)
    pool = apply_rate(profit, policy.payout_ratio)
    retained = profit - pool

    # Step 4: capital-days, and the guaranteed capital-days where the guarantee applies.
    rate = policy.guaranteed_rate
    guarantee_last = last if policy.guarantee_until is None else min(last, policy.guarantee_until.toordinal())
    types, all_cds, gcds = _scan_movements(movements, first, last, guarantee_last)
    guarantor = policy.guarantor_id
    guarantee_on = rate > 0
    floor_numerator, floor_denominator = rate.numerator, rate.denominator * DAYS_PER_YEAR
    cds: dict[str, int] = {}
    floors: dict[str, int] = {}
    for investor in sorted(all_cds):
        cd = all_cds[investor]
        if cd <= 0:
            continue  # no capital in the period: nothing, and no allocation (step 7)
        cds[investor] = cd
        if guarantee_on and types[investor] == "collective" and investor != guarantor:
            # Step 6: round(gcd × rate / 365) on the exact value.
            floors[investor] = _round_half_up_ratio(gcds[investor] * floor_numerator, floor_denominator)

    # Step 5: pro-rata by largest remainder.
    if pool and not cds:
        raise DistributionRuleError("cannot split a non-zero pool over zero capital-days")
    pro_rata = largest_remainder(pool, cds)

    # Step 6: top-ups by the guarantor.
    allocations: list[Allocation] = []
    total_top_up = 0
    total_payout = 0
    for investor, cd in cds.items():  # already in investor_id order
        share = pro_rata[investor]
        floor = floors.get(investor, 0)
        top_up = floor - share if floor > share else 0
        payout = share + top_up
        total_top_up += top_up
        total_payout += payout
        allocations.append(_allocation(investor, types[investor], cd, share, floor, top_up, payout))

    return DistributionResult(
        period_start=period_start,
        period_end=period_end,
        gross_rent=gross_rent,
        expenses=expense_total,
        management_fee=management_fee,
        tax=tax,
        net_profit=net_profit,
        pool=pool,
        retained=retained,
        total_top_up=total_top_up,
        total_payout=total_payout,
        total_capital_days=sum(cds.values()),
        allocations=tuple(allocations),
        late_items=late_items,
    )
