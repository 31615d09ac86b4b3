"""Unit tests of the rules the rentals domain gained with its service: a payment naming its invoice,
what an early termination does to issued invoices, and arrears recomputed for a past date."""

from __future__ import annotations

from datetime import date

import pytest

from services.rentals.domain import (
    InvalidTermination,
    InvoiceDue,
    InvoiceNotOpen,
    Lease,
    OpenInvoice,
    ReceivedPayment,
    UnknownInvoice,
    apply_payment,
    arrears_on,
    invoice_schedule,
    invoices_after_termination,
)

RENT = 5_000_000  # 50000.00 yuan a month


def lease(terminated_on: date | None = None, billing: str = "monthly") -> Lease:
    return Lease("lease-b03", "binhai-park", "binhai-b03", date(2025, 1, 1), date(2030, 1, 1), RENT, 0, billing,
                 terminated_on=terminated_on, tenant="台州机电制造有限公司03")


APR = OpenInvoice("lease-b03:2025-04-01", date(2025, 4, 1), 100_000)
MAY = OpenInvoice("lease-b03:2025-05-01", date(2025, 5, 1), 100_000)


def test_a_named_invoice_is_paid_before_older_ones() -> None:
    result = apply_payment([APR, MAY], credit=0, amount=150_000, first=MAY.invoice_id)
    assert result.applied == [(MAY.invoice_id, 100_000), (APR.invoice_id, 50_000)]
    assert result.new_credit == 0


def test_naming_an_unknown_or_settled_invoice_is_refused() -> None:
    with pytest.raises(UnknownInvoice) as unknown:
        apply_payment([APR], credit=0, amount=1, first="lease-b03:2031-01-01")
    assert unknown.value.field == "invoice_id"
    with pytest.raises(InvoiceNotOpen) as settled:
        apply_payment([OpenInvoice(APR.invoice_id, APR.due_on, 0)], credit=0, amount=1, first=APR.invoice_id)
    assert settled.value.field == "invoice_id"


def test_termination_voids_later_periods_and_cuts_the_period_it_ends_in() -> None:
    issued = invoice_schedule(lease(), date(2025, 6, 30))  # January to June, 5_000_000 each
    effect = invoices_after_termination(lease(terminated_on=date(2025, 5, 15)), issued)
    assert effect.voided == ["lease-b03:2025-06-01"]
    # May 1–14: 14 of 31 days × 5_000_000 = 2_258_064.5… → 2_258_065
    assert effect.repriced == [InvoiceDue("lease-b03:2025-05-01", date(2025, 5, 1), date(2025, 5, 14), 2_258_065,
                                          date(2025, 5, 1))]


def test_termination_on_a_period_boundary_only_voids() -> None:
    issued = invoice_schedule(lease(), date(2025, 6, 30))
    effect = invoices_after_termination(lease(terminated_on=date(2025, 5, 1)), issued)
    assert effect.voided == ["lease-b03:2025-05-01", "lease-b03:2025-06-01"]
    assert effect.repriced == []


def test_termination_cuts_a_quarter_by_its_days() -> None:
    issued = invoice_schedule(lease(billing="quarterly"), date(2025, 4, 1))  # Q1 and Q2, 15_000_000 each
    effect = invoices_after_termination(lease(terminated_on=date(2025, 5, 1), billing="quarterly"), issued)
    # Q2 has 91 days; April is 30 of them: 15_000_000 × 30/91 = 4_945_054.9… → 4_945_055
    assert [(d.invoice_id, d.period_end, d.amount) for d in effect.repriced] == [
        ("lease-b03:2025-04-01", date(2025, 4, 30), 4_945_055)]
    assert effect.voided == []


def test_a_lease_not_terminated_has_no_termination_effect() -> None:
    with pytest.raises(InvalidTermination):
        invoices_after_termination(lease(), [])


def test_arrears_on_a_past_date_ignore_later_payments_and_invoices_not_yet_due() -> None:
    issued = invoice_schedule(lease(), date(2025, 4, 1))  # January to April
    payments = [ReceivedPayment("p1", date(2025, 1, 5), RENT),            # January
                ReceivedPayment("p2", date(2025, 4, 20), 2 * RENT)]       # after the date asked about
    on_april_10 = arrears_on(issued, payments, date(2025, 4, 10))
    # February 68 days past due, March 40, April 9
    assert on_april_10.buckets == {"0-30": RENT, "31-60": RENT, "61-90": RENT, "90+": 0}
    assert on_april_10.total == 3 * RENT
    # By the end of April p2 paid February and March (oldest first); April is 29 days past due.
    assert arrears_on(issued, payments, date(2025, 4, 30)).buckets == {"0-30": RENT, "31-60": 0, "61-90": 0,
                                                                        "90+": 0}
    assert arrears_on(issued, payments, date(2024, 12, 31)).total == 0


def test_arrears_on_a_date_honour_a_named_invoice() -> None:
    issued = invoice_schedule(lease(), date(2025, 2, 1))  # January and February
    named = [ReceivedPayment("p1", date(2025, 2, 2), RENT, "lease-b03:2025-02-01")]
    result = arrears_on(issued, named, date(2025, 3, 10))
    assert result.buckets == {"0-30": 0, "31-60": 0, "61-90": RENT, "90+": 0}  # January, 68 days, still owed
