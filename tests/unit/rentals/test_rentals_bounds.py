"""The bounds of a lease (DESIGN §3, §9; issue 13 points 2 and 6): at most 20 years, invoices that fit.

``end_on`` is exclusive (the first day not let): a lease from 2025-03-01 may end on 2045-03-01
(its last day 2045-02-28, exactly 20 years) and not a day later.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from services.contracts.money import MAX_WIRE_FEN
from services.rentals.domain import (
    MAX_LEASE_YEARS,
    InvoiceTooLarge,
    Lease,
    LeaseTooLong,
    check_new_lease,
    invoice_count,
    invoice_schedule,
    latest_end_on,
)


def lease(start_on: date = date(2025, 3, 1), end_on: date = date(2030, 3, 1), *, monthly_rent: int = 5_000_000,
          billing: str = "monthly", terminated_on: date | None = None) -> Lease:
    return Lease(lease_id="lease-b01", project_id="binhai-park", building_id="b01", start_on=start_on,
                 end_on=end_on, monthly_rent=monthly_rent, deposit=0, billing=billing, terminated_on=terminated_on)


@pytest.mark.parametrize(("start_on", "latest"), [
    (date(2025, 3, 1), date(2045, 3, 1)),
    (date(2025, 12, 31), date(2045, 12, 31)),
    (date(2028, 2, 29), date(2048, 2, 29)),  # 2048 has a 29 February
    (date(2080, 2, 29), date(2100, 3, 1)),  # 2100 has none: the last day let is 28 February
])
def test_the_latest_end_is_the_same_day_twenty_years_on(start_on: date, latest: date) -> None:
    assert MAX_LEASE_YEARS == 20
    assert latest_end_on(start_on) == latest


def test_a_lease_of_exactly_twenty_years_is_accepted() -> None:
    check_new_lease(lease(end_on=date(2045, 3, 1)), [])
    check_new_lease(lease(date(2080, 2, 29), date(2100, 3, 1)), [])


@pytest.mark.parametrize(("start_on", "end_on"), [
    (date(2025, 3, 1), date(2045, 3, 2)),  # one day more than 20 years
    (date(2080, 2, 29), date(2100, 3, 2)),
    (date(2400, 1, 1), date(9999, 1, 1)),  # the absurd lease of the issue
])
def test_a_lease_longer_than_twenty_years_is_refused_naming_end_on(start_on: date, end_on: date) -> None:
    with pytest.raises(LeaseTooLong) as raised:
        check_new_lease(lease(start_on, end_on), [])
    assert raised.value.field == "end_on"
    assert "20 years" in raised.value.message and latest_end_on(start_on).isoformat() in raised.value.message


@pytest.mark.parametrize(("billing", "months"), [("monthly", 1), ("quarterly", 3), ("annual", 12)])
def test_one_invoice_must_fit_the_wire_format(billing: str, months: int) -> None:
    fits = MAX_WIRE_FEN // months
    check_new_lease(lease(monthly_rent=fits, billing=billing), [])
    with pytest.raises(InvoiceTooLarge) as raised:
        check_new_lease(lease(monthly_rent=fits + 1, billing=billing), [])
    assert raised.value.field == "monthly_rent"
    # the largest invoice of such a lease is its full period
    assert max(due.amount for due in invoice_schedule(lease(monthly_rent=fits, billing=billing),
                                                      date(2030, 1, 1))) == fits * months


def test_an_annual_invoice_of_a_rent_that_fits_monthly_is_refused() -> None:
    with pytest.raises(InvoiceTooLarge, match="12"):
        check_new_lease(lease(monthly_rent=100_000_000_000_00, billing="annual"), [])  # 12 × 100,000,000,000 yuan
    check_new_lease(lease(monthly_rent=100_000_000_000_00, billing="quarterly"), [])


def test_invoice_count_is_the_length_of_the_schedule_without_building_it() -> None:
    rng = random.Random(13)
    for _ in range(500):
        start = date(2020, 1, 1) + timedelta(days=rng.randrange(2000))
        end = start + timedelta(days=rng.randrange(1, 2500))
        ended = start + timedelta(days=rng.randrange(1, (end - start).days + 1)) if rng.random() < 0.3 else None
        up_to = start + timedelta(days=rng.randrange(-40, 2600))
        for billing in ("monthly", "quarterly", "annual"):
            one = lease(start, end, billing=billing, terminated_on=ended)
            assert invoice_count(one, up_to) == len(invoice_schedule(one, up_to))


def test_a_lease_signed_before_the_bound_can_owe_more_invoices_than_a_request_may_publish() -> None:
    old = lease(date(2400, 1, 1), date(9999, 1, 1))
    assert invoice_count(old, date(9998, 12, 31)) == (9999 - 2400) * 12
    assert invoice_count(old, date(2900, 1, 1)) == 6_001
    assert invoice_count(old, date(2399, 12, 31)) == 0
