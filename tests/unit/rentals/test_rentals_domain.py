"""Unit tests of the pure rentals domain (services/rentals/domain.py).

Amounts are int fen. Figures come from data/binhai_scenario.json where possible
(lease-binhai-b01: 109200.00 yuan/month = 10_920_000 fen; the Jinqing market halls:
64583.33 yuan/month = 6_458_333 fen, billed quarterly).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.rentals.domain import (
    ARREARS_BUCKETS,
    AlreadyTerminated,
    Building,
    DuplicateInvoice,
    DuplicateLease,
    InvalidAmount,
    InvalidBilling,
    InvalidCredit,
    InvalidDeposit,
    InvalidGranularity,
    InvalidLeaseDates,
    InvalidOutstanding,
    InvalidTermination,
    InvoiceDue,
    Lease,
    LeaseOverlap,
    NonPositiveRent,
    OpenInvoice,
    RentalsError,
    apply_credit,
    apply_payment,
    arrears,
    check_new_lease,
    check_termination,
    credit_after_payment,
    income_by_period,
    invoice_schedule,
    occupancy,
    period_label,
    rent_roll,
)

B01_RENT = 10_920_000  # 109200.00 yuan
HALL_RENT = 6_458_333  # 64583.33 yuan


def lease(
    lease_id: str = "lease-binhai-b01",
    building_id: str = "binhai-b01",
    start_on: date = date(2025, 3, 1),
    end_on: date = date(2030, 3, 1),
    monthly_rent: int = B01_RENT,
    deposit: int = 2 * B01_RENT,
    billing: str = "monthly",
    terminated_on: date | None = None,
    tenant: str = "台州卫浴制造有限公司01",
) -> Lease:
    return Lease(
        lease_id=lease_id,
        project_id="binhai-park",
        building_id=building_id,
        start_on=start_on,
        end_on=end_on,
        monthly_rent=monthly_rent,
        deposit=deposit,
        billing=billing,
        terminated_on=terminated_on,
        tenant=tenant,
    )


# --------------------------------------------------------------------------- Lease


def test_effective_end_is_termination_or_end() -> None:
    assert lease().effective_end == date(2030, 3, 1)
    assert lease(terminated_on=date(2026, 1, 1)).effective_end == date(2026, 1, 1)


def test_end_on_is_exclusive() -> None:
    five_years = lease()  # 2025-03-01 .. 2030-03-01: exactly five whole years
    assert five_years.in_force_on(date(2025, 3, 1))
    assert five_years.in_force_on(date(2030, 2, 28))
    assert not five_years.in_force_on(date(2030, 3, 1))
    assert not five_years.in_force_on(date(2025, 2, 28))


# --------------------------------------------------------------------------- check_new_lease


def test_valid_lease_accepted() -> None:
    check_new_lease(lease(), [])
    check_new_lease(lease(deposit=0), [])


def test_overlap_rejected() -> None:
    existing = lease()
    new = lease("lease-b01-next", start_on=date(2029, 1, 1), end_on=date(2031, 1, 1))
    with pytest.raises(LeaseOverlap) as excinfo:
        check_new_lease(new, [existing])
    assert excinfo.value.field == "building_id"
    assert excinfo.value.conflicting_lease_id == "lease-binhai-b01"
    assert isinstance(excinfo.value, RentalsError)
    assert isinstance(excinfo.value, ValueError)


def test_overlap_rejected_when_new_lease_contains_existing() -> None:
    existing = lease(start_on=date(2026, 1, 1), end_on=date(2026, 6, 1))
    new = lease("lease-b01-long", start_on=date(2025, 1, 1), end_on=date(2027, 1, 1))
    with pytest.raises(LeaseOverlap):
        check_new_lease(new, [existing])


def test_adjacent_leases_accepted() -> None:
    existing = lease()  # 2025-03-01 .. 2030-03-01
    after = lease("lease-b01-after", start_on=date(2030, 3, 1), end_on=date(2035, 3, 1))
    before = lease("lease-b01-before", start_on=date(2024, 3, 1), end_on=date(2025, 3, 1))
    check_new_lease(after, [existing])
    check_new_lease(before, [existing])


def test_other_building_does_not_overlap() -> None:
    check_new_lease(lease("lease-binhai-b02", building_id="binhai-b02"), [lease()])


def test_terminated_lease_frees_the_building() -> None:
    existing = lease(terminated_on=date(2026, 3, 1))
    check_new_lease(lease("lease-b01-new", start_on=date(2026, 3, 1), end_on=date(2031, 3, 1)), [existing])
    # terminated only from 2026-03-01: it still covers 2026-02, so a lease from 2026-02-01 overlaps
    with pytest.raises(LeaseOverlap):
        check_new_lease(
            lease("lease-b01-new", start_on=date(2026, 2, 1), end_on=date(2031, 3, 1)), [existing]
        )


def test_duplicate_lease_id_rejected() -> None:
    with pytest.raises(DuplicateLease) as excinfo:
        check_new_lease(lease(building_id="binhai-b09"), [lease()])
    assert excinfo.value.field == "lease_id"


@pytest.mark.parametrize("end_on", [date(2025, 3, 1), date(2025, 2, 28)])
def test_end_not_after_start_rejected(end_on: date) -> None:
    with pytest.raises(InvalidLeaseDates) as excinfo:
        check_new_lease(lease(end_on=end_on), [])
    assert excinfo.value.field == "end_on"


@pytest.mark.parametrize("rent", [0, -1, -B01_RENT])
def test_zero_or_negative_rent_rejected(rent: int) -> None:
    with pytest.raises(NonPositiveRent) as excinfo:
        check_new_lease(lease(monthly_rent=rent), [])
    assert excinfo.value.field == "monthly_rent"


def test_negative_deposit_rejected() -> None:
    with pytest.raises(InvalidDeposit) as excinfo:
        check_new_lease(lease(deposit=-1), [])
    assert excinfo.value.field == "deposit"


def test_bad_billing_rejected() -> None:
    with pytest.raises(InvalidBilling) as excinfo:
        check_new_lease(lease(billing="weekly"), [])
    assert excinfo.value.field == "billing"


# --------------------------------------------------------------------------- check_termination


def test_termination_within_term_accepted() -> None:
    check_termination(lease(), date(2025, 3, 2))  # the day after start: one day covered
    check_termination(lease(), date(2027, 7, 1))
    check_termination(lease(), date(2030, 3, 1))  # end_on itself is allowed: the range is (start_on, end_on]


@pytest.mark.parametrize("end_on", [date(2025, 3, 1), date(2025, 1, 1), date(2030, 3, 2)])
def test_termination_outside_term_rejected(end_on: date) -> None:
    with pytest.raises(InvalidTermination) as excinfo:
        check_termination(lease(), end_on)
    assert excinfo.value.field == "end_on"


def test_termination_twice_rejected() -> None:
    with pytest.raises(AlreadyTerminated) as excinfo:
        check_termination(lease(terminated_on=date(2027, 1, 1)), date(2026, 1, 1))
    assert excinfo.value.field == "lease_id"


# --------------------------------------------------------------------------- invoice_schedule


def test_monthly_schedule() -> None:
    schedule = invoice_schedule(lease(), date(2025, 5, 15))
    # March, April, May 2025 (May starts 2025-05-01 <= up_to); each a full month of 10_920_000
    assert schedule == [
        InvoiceDue(
            "lease-binhai-b01:2025-03-01", date(2025, 3, 1), date(2025, 3, 31), B01_RENT, date(2025, 3, 1)
        ),
        InvoiceDue(
            "lease-binhai-b01:2025-04-01", date(2025, 4, 1), date(2025, 4, 30), B01_RENT, date(2025, 4, 1)
        ),
        InvoiceDue(
            "lease-binhai-b01:2025-05-01", date(2025, 5, 1), date(2025, 5, 31), B01_RENT, date(2025, 5, 1)
        ),
    ]


def test_schedule_before_start_is_empty() -> None:
    assert invoice_schedule(lease(), date(2025, 2, 28)) == []
    assert [d.period_start for d in invoice_schedule(lease(), date(2025, 3, 1))] == [date(2025, 3, 1)]


def test_quarterly_schedule_market_hall() -> None:
    hall = lease(
        "lease-jinqing-market-h1",
        "jinqing-market-h1",
        date(2025, 1, 1),
        date(2030, 1, 1),
        HALL_RENT,
        0,
        "quarterly",
    )
    schedule = invoice_schedule(hall, date(2025, 12, 31))
    # four calendar quarters, each 3 × 6_458_333 = 19_374_999 fen (193749.99 yuan)
    assert [(d.period_start, d.period_end, d.amount) for d in schedule] == [
        (date(2025, 1, 1), date(2025, 3, 31), 19_374_999),
        (date(2025, 4, 1), date(2025, 6, 30), 19_374_999),
        (date(2025, 7, 1), date(2025, 9, 30), 19_374_999),
        (date(2025, 10, 1), date(2025, 12, 31), 19_374_999),
    ]
    assert sum(d.amount for d in schedule) == 77_499_996  # 4 × 19_374_999
    assert [d.invoice_id for d in schedule][1] == "lease-jinqing-market-h1:2025-04-01"


def test_annual_schedule_prorated_first_and_last_year() -> None:
    yearly = lease(billing="annual")  # 2025-03-01 .. 2030-03-01, 12 × 10_920_000 = 131_040_000 a year
    schedule = invoice_schedule(yearly, date(2030, 12, 31))
    assert [(d.period_start, d.period_end) for d in schedule] == [
        (date(2025, 3, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 12, 31)),
        (date(2027, 1, 1), date(2027, 12, 31)),
        (date(2028, 1, 1), date(2028, 12, 31)),
        (date(2029, 1, 1), date(2029, 12, 31)),
        (date(2030, 1, 1), date(2030, 2, 28)),
    ]
    # 2025-03-01..12-31 = 306 of 365 days: 131_040_000 × 306 / 365 = 109_858_191.78… → 109_858_192
    # 2030-01-01..02-28 =  59 of 365 days: 131_040_000 ×  59 / 365 =  21_181_808.21… →  21_181_808
    assert [d.amount for d in schedule] == [
        109_858_192,
        131_040_000,
        131_040_000,
        131_040_000,
        131_040_000,
        21_181_808,
    ]
    assert all(d.due_on == d.period_start for d in schedule)


def test_prorated_first_month_rounds_down() -> None:
    mid = lease(start_on=date(2025, 3, 15), end_on=date(2030, 3, 15))
    first, second = invoice_schedule(mid, date(2025, 4, 1))
    # 2025-03-15..31 = 17 of 31 days: 10_920_000 × 17 / 31 = 5_988_387.09… → 5_988_387
    assert (first.period_start, first.period_end, first.amount) == (
        date(2025, 3, 15),
        date(2025, 3, 31),
        5_988_387,
    )
    assert first.invoice_id == "lease-binhai-b01:2025-03-15"
    assert first.due_on == date(2025, 3, 15)
    assert second.amount == B01_RENT


def test_prorated_first_month_half_up() -> None:
    hall = lease("lease-h1", start_on=date(2025, 2, 15), end_on=date(2026, 2, 15), monthly_rent=HALL_RENT)
    first = invoice_schedule(hall, date(2025, 2, 15))[0]
    # 2025-02-15..28 = 14 of 28 days: 6_458_333 × 14 / 28 = 3_229_166.5 → half up → 3_229_167
    assert (first.period_end, first.amount) == (date(2025, 2, 28), 3_229_167)


def test_prorated_first_quarter_half_up() -> None:
    hall = lease(
        "lease-h1",
        start_on=date(2025, 2, 15),
        end_on=date(2026, 2, 15),
        monthly_rent=HALL_RENT,
        billing="quarterly",
    )
    first = invoice_schedule(hall, date(2025, 2, 15))[0]
    # Q1 2025 has 90 days; 2025-02-15..03-31 = 14 + 31 = 45 days:
    # 3 × 6_458_333 × 45 / 90 = 19_374_999 / 2 = 9_687_499.5 → half up → 9_687_500
    assert (first.period_start, first.period_end, first.amount) == (
        date(2025, 2, 15),
        date(2025, 3, 31),
        9_687_500,
    )


def test_prorated_last_month_and_termination() -> None:
    terminated = lease(terminated_on=date(2025, 6, 21))
    schedule = invoice_schedule(terminated, date(2026, 12, 31))
    # March, April, May in full; June 1..20 = 20 of 30 days: 10_920_000 × 20 / 30 = 7_280_000
    assert [(d.period_start, d.period_end, d.amount) for d in schedule] == [
        (date(2025, 3, 1), date(2025, 3, 31), B01_RENT),
        (date(2025, 4, 1), date(2025, 4, 30), B01_RENT),
        (date(2025, 5, 1), date(2025, 5, 31), B01_RENT),
        (date(2025, 6, 1), date(2025, 6, 20), 7_280_000),
    ]


def test_prorated_last_month_of_lease_end() -> None:
    short = lease(start_on=date(2025, 3, 1), end_on=date(2025, 4, 17))
    schedule = invoice_schedule(short, date(2030, 1, 1))
    # April 1..16 = 16 of 30 days: 10_920_000 × 16 / 30 = 5_824_000 exactly
    assert [(d.period_end, d.amount) for d in schedule] == [
        (date(2025, 3, 31), B01_RENT),
        (date(2025, 4, 16), 5_824_000),
    ]


def test_one_day_lease_inside_one_month() -> None:
    one_day = lease(start_on=date(2025, 3, 10), end_on=date(2025, 3, 11))
    (only,) = invoice_schedule(one_day, date(2025, 12, 31))
    # 1 of 31 days: 10_920_000 / 31 = 352_258.06… → 352_258
    assert (only.period_start, only.period_end, only.amount) == (
        date(2025, 3, 10),
        date(2025, 3, 10),
        352_258,
    )


def test_generating_twice_yields_the_same_ids() -> None:
    first = invoice_schedule(lease(), date(2025, 12, 31))
    again = invoice_schedule(lease(), date(2025, 12, 31))
    assert first == again
    assert len({d.invoice_id for d in first}) == len(first) == 10  # March..December
    # A later run only adds periods; the ids already issued come back unchanged.
    later = invoice_schedule(lease(), date(2026, 2, 1))
    assert later[: len(first)] == first
    issued = {d.invoice_id for d in first}
    assert [d.invoice_id for d in later if d.invoice_id not in issued] == [
        "lease-binhai-b01:2026-01-01",
        "lease-binhai-b01:2026-02-01",
    ]


def test_schedule_bad_billing() -> None:
    with pytest.raises(InvalidBilling):
        invoice_schedule(lease(billing="fortnightly"), date(2026, 1, 1))


def test_whole_scenario_lease_sums_to_five_years() -> None:
    schedule = invoice_schedule(lease(), date(2031, 1, 1))
    assert len(schedule) == 60
    assert sum(d.amount for d in schedule) == 60 * B01_RENT  # 655_200_000


# --------------------------------------------------------------------------- payments


MAR = OpenInvoice("lease-binhai-b01:2025-03-01", date(2025, 3, 1), B01_RENT)
APR = OpenInvoice("lease-binhai-b01:2025-04-01", date(2025, 4, 1), B01_RENT)
MAY = OpenInvoice("lease-binhai-b01:2025-05-01", date(2025, 5, 1), B01_RENT)


def test_payment_goes_to_oldest_first_and_partially() -> None:
    result = apply_payment([MAY, MAR, APR], credit=0, amount=15_000_000)
    # 15_000_000 = 10_920_000 (March in full) + 4_080_000 (April in part)
    assert result.applied == [(MAR.invoice_id, 10_920_000), (APR.invoice_id, 4_080_000)]
    assert result.new_credit == 0
    assert result.total_applied == 15_000_000


def test_overpayment_is_kept_as_credit() -> None:
    result = apply_payment([MAR, APR, MAY], credit=0, amount=40_000_000)
    # 3 × 10_920_000 = 32_760_000 applied; 40_000_000 − 32_760_000 = 7_240_000 credit
    assert result.applied == [
        (MAR.invoice_id, B01_RENT),
        (APR.invoice_id, B01_RENT),
        (MAY.invoice_id, B01_RENT),
    ]
    assert result.new_credit == 7_240_000


def test_payment_with_no_open_invoice_is_all_credit() -> None:
    result = apply_payment([], credit=500, amount=10_920_000)
    assert result.applied == []
    assert result.new_credit == 10_920_500


def test_existing_credit_is_used_with_the_payment() -> None:
    result = apply_payment([APR, MAR], credit=100_000, amount=10_820_000)
    # 100_000 + 10_820_000 = 10_920_000: exactly March
    assert result.applied == [(MAR.invoice_id, B01_RENT)]
    assert result.new_credit == 0


def test_payment_skips_settled_invoices_and_breaks_ties_by_id() -> None:
    a = OpenInvoice("lease-a:2025-03-01", date(2025, 3, 1), 300)
    b = OpenInvoice("lease-b:2025-03-01", date(2025, 3, 1), 300)
    settled = OpenInvoice("lease-0:2025-01-01", date(2025, 1, 1), 0)
    result = apply_payment([b, settled, a], credit=0, amount=400)
    assert result.applied == [("lease-a:2025-03-01", 300), ("lease-b:2025-03-01", 100)]


@pytest.mark.parametrize("amount", [0, -1])
def test_payment_amount_must_be_positive(amount: int) -> None:
    with pytest.raises(InvalidAmount) as excinfo:
        apply_payment([MAR], credit=0, amount=amount)
    assert excinfo.value.field == "amount"


def test_payment_rejects_bad_inputs() -> None:
    with pytest.raises(InvalidCredit):
        apply_payment([MAR], credit=-1, amount=1)
    with pytest.raises(InvalidOutstanding):
        apply_payment([replace(MAR, outstanding=-5)], credit=0, amount=1)
    with pytest.raises(DuplicateInvoice):
        apply_payment([MAR, MAR], credit=0, amount=1)


def test_credit_applied_to_new_invoices_oldest_first() -> None:
    new = invoice_schedule(lease(), date(2025, 4, 1))  # March and April, 10_920_000 each
    result = apply_credit([d.as_open() for d in reversed(new)], credit=12_000_000)
    # 12_000_000 = 10_920_000 (March) + 1_080_000 (April in part); nothing left
    assert result.applied == [
        ("lease-binhai-b01:2025-03-01", B01_RENT),
        ("lease-binhai-b01:2025-04-01", 1_080_000),
    ]
    assert result.new_credit == 0


def test_credit_larger_than_new_invoice_is_kept() -> None:
    result = apply_credit([MAR], credit=20_000_000)
    assert result.applied == [(MAR.invoice_id, B01_RENT)]
    assert result.new_credit == 9_080_000  # 20_000_000 − 10_920_000


def test_no_credit_applies_nothing() -> None:
    assert apply_credit([MAR], credit=0).applied == []
    with pytest.raises(InvalidCredit):
        apply_credit([MAR], credit=-1)


open_invoices = st.lists(
    st.builds(
        OpenInvoice,
        invoice_id=st.text(alphabet="abc0123456789:-", min_size=1, max_size=8),
        due_on=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
        outstanding=st.integers(min_value=0, max_value=10**9),
    ),
    max_size=8,
    unique_by=lambda inv: inv.invoice_id,
)


@given(open_invoices, st.integers(min_value=0, max_value=10**10), st.integers(min_value=1, max_value=10**10))
def test_payment_loses_nothing(invoices: list[OpenInvoice], credit: int, amount: int) -> None:
    result = apply_payment(invoices, credit, amount)
    assert result.total_applied + result.new_credit == amount + credit
    by_id = {inv.invoice_id: inv for inv in invoices}
    ordered = [inv for inv in sorted(invoices, key=lambda i: (i.due_on, i.invoice_id)) if inv.outstanding > 0]
    assert [invoice_id for invoice_id, _ in result.applied] == [inv.invoice_id for inv in ordered][
        : len(result.applied)
    ]
    for invoice_id, fen in result.applied:
        assert 0 < fen <= by_id[invoice_id].outstanding
    # only the last invoice reached may be paid in part, and credit remains only when all are paid
    for invoice_id, fen in result.applied[:-1]:
        assert fen == by_id[invoice_id].outstanding
    if result.new_credit > 0:
        assert result.total_applied == sum(inv.outstanding for inv in invoices)


@given(open_invoices, st.integers(min_value=0, max_value=10**10), st.integers(min_value=1, max_value=10**10),
       st.booleans())
def test_the_credit_a_payment_leaves_is_known_from_the_totals(invoices: list[OpenInvoice], credit: int, amount: int,
                                                               named: bool) -> None:
    """What the rentals handler checks against the largest amount is what the fold will keep as credit."""
    first = next((inv.invoice_id for inv in invoices if inv.outstanding > 0), None) if named else None
    owed = sum(inv.outstanding for inv in invoices)
    assert credit_after_payment(owed, credit, amount) == apply_payment(invoices, credit, amount, first=first).new_credit


@given(open_invoices, st.integers(min_value=0, max_value=10**10))
def test_credit_loses_nothing(invoices: list[OpenInvoice], credit: int) -> None:
    result = apply_credit(invoices, credit)
    assert result.total_applied + result.new_credit == credit
    assert result.new_credit >= 0


@given(
    st.integers(min_value=2000, max_value=2100),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=10**9),
)
def test_whole_year_monthly_schedule_sums_to_twelve_months(year: int, month: int, rent: int) -> None:
    start = date(year, month, 1)
    end = date(year + 1, month, 1)
    schedule = invoice_schedule(lease(start_on=start, end_on=end, monthly_rent=rent), end - timedelta(days=1))
    assert len(schedule) == 12
    assert sum(d.amount for d in schedule) == 12 * rent
    # periods tile the lease: each starts the day after the previous one ends
    assert schedule[0].period_start == start
    assert schedule[-1].period_end == end - timedelta(days=1)
    for before, after in pairwise(schedule):
        assert after.period_start == before.period_end + timedelta(days=1)


@given(
    st.integers(min_value=2000, max_value=2100),
    st.sampled_from(["monthly", "quarterly", "annual"]),
    st.integers(min_value=1, max_value=10**9),
)
def test_calendar_year_lease_sums_to_twelve_months_for_any_billing(
    year: int, billing: str, rent: int
) -> None:
    whole_year = lease(
        start_on=date(year, 1, 1), end_on=date(year + 1, 1, 1), monthly_rent=rent, billing=billing
    )
    schedule = invoice_schedule(whole_year, date(year, 12, 31))
    assert len(schedule) == {"monthly": 12, "quarterly": 4, "annual": 1}[billing]
    assert sum(d.amount for d in schedule) == 12 * rent


# --------------------------------------------------------------------------- arrears


AS_OF = date(2026, 6, 30)


def due(days_ago: int, outstanding: int) -> OpenInvoice:
    return OpenInvoice(f"inv-{days_ago}", AS_OF - timedelta(days=days_ago), outstanding)


def test_arrears_bucket_boundaries() -> None:
    invoices = [
        due(-1, 1),  # due tomorrow: not yet due, excluded
        due(0, 10),  # due today → 0-30
        due(30, 100),  # → 0-30
        due(31, 1_000),  # → 31-60
        due(60, 10_000),  # → 31-60
        due(61, 100_000),  # → 61-90
        due(90, 1_000_000),  # → 61-90
        due(91, 10_000_000),  # → 90+
        due(400, 20_000_000),  # → 90+
    ]
    result = arrears(invoices, AS_OF)
    assert list(result.buckets) == list(ARREARS_BUCKETS) == ["0-30", "31-60", "61-90", "90+"]
    assert result.buckets == {"0-30": 110, "31-60": 11_000, "61-90": 1_100_000, "90+": 30_000_000}
    assert result.total == 31_111_110  # 110 + 11_000 + 1_100_000 + 30_000_000
    assert result.as_of == AS_OF


def test_arrears_days_counted_on_real_dates() -> None:
    # due 2025-03-01; on 2025-05-31 that is 31 + 30 + 30 = 91 days → 90+
    assert arrears([MAR], date(2025, 5, 31)).buckets["90+"] == B01_RENT
    # on 2025-05-30, 90 days → 61-90
    assert arrears([MAR], date(2025, 5, 30)).buckets["61-90"] == B01_RENT


def test_arrears_empty_and_bad() -> None:
    assert arrears([], AS_OF).buckets == {"0-30": 0, "31-60": 0, "61-90": 0, "90+": 0}
    assert arrears([], AS_OF).total == 0
    with pytest.raises(InvalidOutstanding):
        arrears([due(5, -1)], AS_OF)


# --------------------------------------------------------------------------- occupancy / rent roll


BUILDINGS = [
    Building("binhai-b01", "binhai-park", "1号厂房", Fraction("8400.00")),
    Building("binhai-b02", "binhai-park", "2号厂房", Fraction("8400.00")),
    Building("binhai-b03", "binhai-park", "3号厂房", Fraction("8800.00")),
]
LEASES = [
    lease(),  # b01 from 2025-03-01
    lease(
        "lease-binhai-b02",
        "binhai-b02",
        date(2025, 4, 1),
        date(2030, 4, 1),
        11_760_000,
        tenant="台州卫浴制造有限公司02",
    ),
    lease(
        "lease-binhai-b03",
        "binhai-b03",
        date(2025, 5, 1),
        date(2030, 5, 1),
        11_440_000,
        terminated_on=date(2025, 9, 1),
        tenant="台州机电制造有限公司03",
    ),
]


def test_occupancy_on_a_date() -> None:
    result = occupancy(BUILDINGS, LEASES, date(2025, 4, 15))
    # b01 and b02 let (8400 + 8400 = 16800 m²); b03's lease starts 2025-05-01
    assert result.total_area_m2 == Fraction(25_600)
    assert result.leased_area_m2 == Fraction(16_800)
    assert result.vacant_area_m2 == Fraction(8_800)
    assert result.rate == Fraction(16_800, 25_600)
    assert [(b.building_id, b.status, b.lease_id) for b in result.buildings] == [
        ("binhai-b01", "leased", "lease-binhai-b01"),
        ("binhai-b02", "leased", "lease-binhai-b02"),
        ("binhai-b03", "vacant", None),
    ]


def test_occupancy_around_termination() -> None:
    # terminated_on 2025-09-01 is exclusive: let on 08-31, vacant on 09-01
    assert occupancy(BUILDINGS, LEASES, date(2025, 8, 31)).leased_area_m2 == Fraction(25_600)
    on_the_day = occupancy(BUILDINGS, LEASES, date(2025, 9, 1))
    assert on_the_day.leased_area_m2 == Fraction(16_800)
    assert on_the_day.buildings[2].status == "vacant"


def test_occupancy_with_no_buildings() -> None:
    result = occupancy([], LEASES, date(2025, 9, 1))
    assert result.total_area_m2 == 0
    assert result.rate == 0
    assert result.buildings == []


def test_rent_roll_statuses() -> None:
    buildings = [*BUILDINGS, Building("binhai-b04", "binhai-park", "4号厂房", Fraction("8000.00"))]
    leases = [
        *LEASES,
        lease("lease-binhai-b04", "binhai-b04", date(2025, 6, 1), date(2025, 8, 1), 10_950_000),
    ]
    rows = rent_roll(buildings, leases, date(2025, 10, 1))
    assert [
        (r.building_id, r.building_name, r.status, r.lease_id, r.tenant, r.monthly_rent) for r in rows
    ] == [
        ("binhai-b01", "1号厂房", "leased", "lease-binhai-b01", "台州卫浴制造有限公司01", 10_920_000),
        ("binhai-b02", "2号厂房", "leased", "lease-binhai-b02", "台州卫浴制造有限公司02", 11_760_000),
        ("binhai-b03", "3号厂房", "terminated", "lease-binhai-b03", "台州机电制造有限公司03", 0),
        ("binhai-b04", "4号厂房", "ended", "lease-binhai-b04", "台州卫浴制造有限公司01", 0),
    ]
    assert rows[3].floor_area_m2 == Fraction(8000)


def test_rent_roll_vacant_before_any_lease() -> None:
    rows = rent_roll(BUILDINGS, LEASES, date(2025, 3, 31))
    assert [r.status for r in rows] == ["leased", "vacant", "vacant"]
    assert rows[1].tenant is None
    assert rows[1].monthly_rent == 0


def test_rent_roll_new_lease_after_termination_is_leased() -> None:
    relet = lease(
        "lease-b03-relet", "binhai-b03", date(2025, 10, 1), date(2030, 10, 1), 11_000_000, tenant="新租户"
    )
    rows = rent_roll(BUILDINGS, [*LEASES, relet], date(2025, 10, 1))
    assert (rows[2].status, rows[2].lease_id, rows[2].tenant, rows[2].monthly_rent) == (
        "leased",
        "lease-b03-relet",
        "新租户",
        11_000_000,
    )


# --------------------------------------------------------------------------- income_by_period


PAYMENTS = [
    (date(2025, 4, 10), 10_920_000),
    (date(2025, 3, 10), 10_920_000),
    (date(2025, 3, 15), 500),
    (date(2025, 7, 10), 11_760_000),
    (date(2026, 1, 5), 100),
]


def test_income_by_month() -> None:
    result = income_by_period(PAYMENTS, "month")
    assert list(result.items()) == [
        ("2025-03", 10_920_500),  # 10_920_000 + 500
        ("2025-04", 10_920_000),
        ("2025-07", 11_760_000),
        ("2026-01", 100),
    ]


def test_income_by_quarter_and_year() -> None:
    assert list(income_by_period(PAYMENTS, "quarter").items()) == [
        ("2025-Q1", 10_920_500),
        ("2025-Q2", 10_920_000),
        ("2025-Q3", 11_760_000),
        ("2026-Q1", 100),
    ]
    # 2025: 10_920_500 + 10_920_000 + 11_760_000 = 33_600_500
    assert list(income_by_period(PAYMENTS, "year").items()) == [("2025", 33_600_500), ("2026", 100)]


def test_income_by_period_empty_and_bad_granularity() -> None:
    assert income_by_period([], "month") == {}
    with pytest.raises(InvalidGranularity) as excinfo:
        income_by_period(PAYMENTS, "week")
    assert excinfo.value.field == "granularity"
    with pytest.raises(InvalidGranularity):
        period_label(date(2025, 1, 1), "day")


def test_period_labels() -> None:
    assert period_label(date(2025, 12, 31), "month") == "2025-12"
    assert period_label(date(2025, 12, 31), "quarter") == "2025-Q4"
    assert period_label(date(2025, 4, 1), "quarter") == "2025-Q2"
    assert period_label(date(2025, 3, 31), "quarter") == "2025-Q1"
    assert period_label(date(2025, 12, 31), "year") == "2025"
