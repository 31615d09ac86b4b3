"""The investment register's pure rules: land valuation, capital held on a date, withdrawals.

DESIGN §5 (LandShareInvested, CashInvested, InvestmentWithdrawn) and §6 step 4: the capital of
an investor in a project on day d is Σ valuations/amounts invested with ``effective_on ≤ d``
minus Σ withdrawals with ``effective_on ≤ d``. It may never go below zero on any day.

Bounds (DESIGN §3): a land valuation, like every amount that travels, is at most
999999999999.99 yuan; and a project's capital (all investors together) may never exceed it on
any day, so its capital-days of a day — and hence a distribution of some period — always fit.

No I/O here: stdlib and ``services.contracts.money`` only. Amounts are int fen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.contracts.money import (
    MAX_YUAN,
    MoneyError,
    fits_wire,
    format_yuan,
    parse_mu,
    parse_yuan,
    valuation_fen,
)
from services.ledger.chart import LedgerError


class InvalidInvestment(LedgerError):
    """An investment whose area, price or amount cannot be valued."""

    code = "invalid_investment"


class AmountOutOfRange(InvalidInvestment):
    """A valuation or a project's capital that would exceed the largest wire amount (999999999999.99)."""

    code = "amount_out_of_range"


class InsufficientCapital(LedgerError):
    """A withdrawal that would take an investor's capital below zero."""

    code = "insufficient_capital"


@dataclass(frozen=True)
class CapitalChange:
    """One dated change of capital in a project: + invested, − withdrawn (fen), effective on a day.

    It names no investor: the register pairs it with one (``holdings``), the rules take one investor's
    changes (``check_withdrawal``) or the whole project's (``check_project_capital``). (Not the dividends
    service's movement, which carries the investor and its type for the distribution rule.)
    """

    effective_on: dt.date
    amount: int


def land_valuation(area_mu: str, price_per_mu: str) -> int:
    """Valuation in fen of a land share: ROUND_HALF_UP(area in mu × price per mu) to the fen.

    Both arguments are wire strings (``"14.2000"``, ``"250000.00"``); raises InvalidInvestment
    naming ``area_mu`` or ``price_per_mu``, and AmountOutOfRange (``area_mu``) for a valuation
    beyond 999999999999.99 yuan.
    """
    try:
        area = parse_mu(area_mu)
    except MoneyError as exc:
        raise InvalidInvestment(str(exc), "area_mu") from None
    try:
        price = parse_yuan(price_per_mu)
    except MoneyError as exc:
        raise InvalidInvestment(str(exc), "price_per_mu") from None
    valuation = valuation_fen(area, price)
    if valuation <= 0:
        raise InvalidInvestment("area_mu × price_per_mu must come to at least 0.01 yuan", "area_mu")
    if not fits_wire(valuation):
        raise AmountOutOfRange(f"the valuation area_mu × price_per_mu = {format_yuan(valuation)} would exceed "
                               f"the largest amount, {MAX_YUAN}", "area_mu")
    return valuation


def capital_on(movements: Iterable[CapitalChange], day: dt.date) -> int:
    """Capital held on ``day``: every movement effective on or before it."""
    return sum(m.amount for m in movements if m.effective_on <= day)


def check_withdrawal(movements: Sequence[CapitalChange], effective_on: dt.date, amount: int) -> None:
    """Refuse a withdrawal that would leave the capital below zero on any day from ``effective_on`` on.

    Later movements count too: withdrawing today what a withdrawal already booked for next
    month needs would break that later day. Raises InsufficientCapital (field ``amount``).
    """
    if amount <= 0:
        raise InsufficientCapital("a withdrawal must be greater than 0.00", "amount")
    days = sorted({effective_on} | {m.effective_on for m in movements if m.effective_on > effective_on})
    for day in days:
        left = capital_on(movements, day) - amount
        if left < 0:
            raise InsufficientCapital(
                f"withdrawing {format_yuan(amount)} from {effective_on} would leave "
                f"{format_yuan(left)} of capital on {day}; capital never goes below zero",
                "amount",
            )


def check_project_capital(movements: Sequence[CapitalChange], effective_on: dt.date, amount: int,
                          field: str) -> None:
    """Refuse an investment of ``amount`` fen that would take the project's capital past the largest amount.

    ``movements`` are the project's movements of every investor. The capital on each day from
    ``effective_on`` on (later withdrawals included) must stay at most 999999999999.99 yuan: the
    capital-days of one day are the capital, and they must fit the wire format. Raises
    AmountOutOfRange naming ``field``.
    """
    by_day: dict[dt.date, int] = {effective_on: 0}
    for m in movements:
        by_day[m.effective_on] = by_day.get(m.effective_on, 0) + m.amount
    capital = 0
    for day in sorted(by_day):  # O(n log n): a project may have thousands of movements
        capital += by_day[day]
        if day >= effective_on and not fits_wire(capital + amount):
            raise AmountOutOfRange(
                f"the project's capital would be {format_yuan(capital + amount)} on {day}, more than the "
                f"largest amount {MAX_YUAN}", field,
            )


def holdings(movements: Iterable[tuple[str, CapitalChange]], day: dt.date) -> dict[str, int]:
    """Capital per investor on ``day`` from (investor_id, movement) pairs; investors at zero are left out."""
    totals: dict[str, int] = {}
    for investor_id, movement in movements:
        if movement.effective_on <= day:
            totals[investor_id] = totals.get(investor_id, 0) + movement.amount
    return {investor: fen for investor, fen in sorted(totals.items()) if fen != 0}
