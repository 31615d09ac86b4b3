"""Journal entries, reversals, period closing and the automatic entries of DESIGN §7."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from services.ledger.domain import (
    DERIVED_ENTRY_NAMESPACE,
    ClosedPeriod,
    InvalidDate,
    InvalidEntry,
    InvalidEventData,
    InvalidLine,
    InvalidPeriod,
    LedgerError,
    Line,
    PeriodAlreadyClosed,
    UnbalancedEntry,
    UnknownAccount,
    UnknownEventType,
    automatic_entry_lines,
    check_close_period,
    check_entry,
    derived_entry_id,
    period_of,
    reversing_lines,
)

MARCH = date(2026, 3, 31)
DEVELOPMENT_FUND = (Line("102", 30_000_000, 0), Line("503", 0, 30_000_000))


def error_of(lines: Any, day: Any = MARCH, closed: tuple[str, ...] = ()) -> LedgerError:
    with pytest.raises(LedgerError) as raised:
        check_entry(lines, day, closed)
    return raised.value


# --- check_entry ------------------------------------------------------------------------


def test_a_balanced_two_line_entry_is_accepted() -> None:
    check_entry(DEVELOPMENT_FUND, MARCH, ())


def test_a_balanced_entry_with_several_lines_and_sub_accounts_is_accepted() -> None:
    lines = [
        Line("141/binhai-park", 50_000_000, 0),
        Line("513", 12_345, 0),
        Line("102", 0, 50_000_000),
        Line("211/binhai-park", 0, 12_345),
    ]
    check_entry(lines, MARCH, ["2026-02"])


def test_an_entry_whose_debits_exceed_its_credits_by_one_fen_is_unbalanced() -> None:
    error = error_of([Line("102", 30_000_001, 0), Line("503", 0, 30_000_000)])
    assert isinstance(error, UnbalancedEntry)
    assert error.field == "lines"
    assert "300000.01" in error.message and "300000.00" in error.message


def test_an_entry_whose_credits_exceed_its_debits_is_unbalanced() -> None:
    error = error_of([Line("102", 100, 0), Line("503", 0, 60), Line("504", 0, 41)])
    assert isinstance(error, UnbalancedEntry)


def test_an_entry_needs_at_least_two_lines() -> None:
    for lines in ([], [Line("102", 100, 0)]):
        error = error_of(lines)
        assert isinstance(error, InvalidEntry)
        assert error.field == "lines"


def test_lines_that_are_not_a_list_are_refused() -> None:
    assert isinstance(error_of("102"), InvalidEntry)
    assert isinstance(error_of(None), InvalidEntry)


def test_a_line_with_both_a_debit_and_a_credit_is_refused_naming_the_line() -> None:
    error = error_of([Line("102", 100, 0), Line("503", 50, 150)])
    assert isinstance(error, InvalidLine)
    assert error.field == "lines[1]"


def test_a_line_with_zero_on_both_sides_is_refused() -> None:
    error = error_of([Line("102", 0, 0), Line("102", 100, 0), Line("503", 0, 100)])
    assert isinstance(error, InvalidLine)
    assert error.field == "lines[0]"


def test_a_negative_amount_is_refused_naming_its_side() -> None:
    error = error_of([Line("102", 100, 0), Line("503", 0, -100)])
    assert isinstance(error, InvalidLine)
    assert error.field == "lines[1].credit"


@pytest.mark.parametrize("amount", [100.0, True, "100", None])
def test_an_amount_that_is_not_an_int_of_fen_is_refused(amount: Any) -> None:
    error = error_of([Line("102", amount, 0), Line("503", 0, 100)])
    assert isinstance(error, InvalidLine)
    assert error.field == "lines[0].debit"


def test_an_unknown_account_is_refused_naming_the_lines_account_field() -> None:
    error = error_of([Line("102", 100, 0), Line("599", 0, 100)])
    assert isinstance(error, UnknownAccount)
    assert error.field == "lines[1].account"


def test_a_sub_account_of_an_unknown_base_is_refused() -> None:
    error = error_of([Line("999/binhai-park", 100, 0), Line("503", 0, 100)])
    assert isinstance(error, UnknownAccount)
    assert error.field == "lines[0].account"


def test_a_sub_account_with_a_bad_segment_is_refused() -> None:
    error = error_of([Line("102", 100, 0), Line("141/Binhai_Park", 0, 100)])
    assert isinstance(error, UnknownAccount)
    assert error.field == "lines[1].account"


def test_an_entry_dated_inside_a_closed_period_is_refused_naming_the_date() -> None:
    for day in (date(2026, 3, 1), date(2026, 3, 31)):
        error = error_of(DEVELOPMENT_FUND, day, ("2026-02", "2026-03"))
        assert isinstance(error, ClosedPeriod)
        assert error.field == "date"


def test_an_entry_dated_just_outside_a_closed_period_is_accepted() -> None:
    check_entry(DEVELOPMENT_FUND, date(2026, 2, 28), {"2026-03"})
    check_entry(DEVELOPMENT_FUND, date(2026, 4, 1), {"2026-03"})


def test_a_date_that_is_not_a_calendar_date_is_refused() -> None:
    error = error_of(DEVELOPMENT_FUND, "2026-03-31")
    assert isinstance(error, InvalidDate)
    assert error.field == "date"


def test_every_ledger_error_is_a_value_error_with_a_readable_message() -> None:
    error = error_of([Line("102", 100, 0), Line("599", 0, 100)])
    assert isinstance(error, ValueError)
    assert str(error).startswith("lines[1].account: ")


def test_period_of_a_date_is_year_and_month() -> None:
    assert period_of(date(2026, 3, 9)) == "2026-03"


# --- reversal ---------------------------------------------------------------------------


def test_the_reversing_lines_mirror_the_original_with_sides_swapped() -> None:
    original = (Line("141/binhai-park", 50_000_000, 0), Line("513", 1, 0), Line("102", 0, 50_000_001))
    assert reversing_lines(original) == (
        Line("141/binhai-park", 0, 50_000_000),
        Line("513", 0, 1),
        Line("102", 50_000_001, 0),
    )


def test_a_reversal_is_itself_a_valid_entry_and_nets_the_original_to_zero() -> None:
    reversal = reversing_lines(DEVELOPMENT_FUND)
    check_entry(reversal, MARCH, ())
    net: dict[str, int] = {}
    for line in DEVELOPMENT_FUND + reversal:
        net[line.account] = net.get(line.account, 0) + line.debit - line.credit
    assert net == {"102": 0, "503": 0}


def test_reversing_twice_gives_back_the_original() -> None:
    assert reversing_lines(reversing_lines(DEVELOPMENT_FUND)) == DEVELOPMENT_FUND


# --- closing periods --------------------------------------------------------------------


def test_an_open_period_written_yyyy_mm_may_be_closed() -> None:
    check_close_period("2026-03", {"2026-01", "2026-02"})
    check_close_period("2026-12", ())


@pytest.mark.parametrize(
    "period", ["2026-3", "2026-13", "2026-00", "202603", "2026-03-01", "26-03", "", "2026-03\n"]
)
def test_a_period_not_written_yyyy_mm_cannot_be_closed(period: str) -> None:
    with pytest.raises(InvalidPeriod) as raised:
        check_close_period(period, ())
    assert raised.value.field == "period"


def test_a_period_already_closed_cannot_be_closed_again() -> None:
    with pytest.raises(PeriodAlreadyClosed) as raised:
        check_close_period("2026-03", ["2026-03"])
    assert raised.value.field == "period"


# --- automatic entries ------------------------------------------------------------------


def test_a_land_share_debits_the_project_long_term_investment_and_credits_the_reserve_fund() -> None:
    data = {
        "investment_id": "lianmeng-land-1",
        "project_id": "binhai-park",
        "investor_id": "lianmeng",
        "investor_type": "collective",
        "area_mu": "14.2000",
        "price_per_mu": "350000.00",
        "valuation": "4970000.00",
        "effective_on": "2026-01-01",
    }
    assert automatic_entry_lines("LandShareInvested", data) == (
        Line("141/binhai-park", 497_000_000, 0),
        Line("311", 0, 497_000_000),
    )


def test_a_land_share_valuation_is_checked_against_area_times_price_rounded_half_up() -> None:
    data = {
        "project_id": "binhai-park",
        "investor_type": "collective",
        "area_mu": "0.5",
        "price_per_mu": "0.01",
    }
    assert automatic_entry_lines("LandShareInvested", {**data, "valuation": "0.01"}) == (
        Line("141/binhai-park", 1, 0),
        Line("311", 0, 1),
    )
    with pytest.raises(InvalidEventData) as raised:
        automatic_entry_lines("LandShareInvested", {**data, "valuation": "0.00"})
    assert raised.value.field == "data.valuation"


def test_a_cash_investment_debits_the_project_investment_and_credits_the_bank() -> None:
    data = {"project_id": "shangtang-market", "investor_type": "collective", "amount": "500000.00"}
    assert automatic_entry_lines("CashInvested", data) == (
        Line("141/shangtang-market", 50_000_000, 0),
        Line("102", 0, 50_000_000),
    )


def test_a_withdrawal_debits_the_bank_and_credits_the_project_investment() -> None:
    data = {
        "withdrawal_id": "w1",
        "project_id": "binhai-park",
        "investor_id": "lianmeng",
        "amount": "1234.56",
    }
    assert automatic_entry_lines("InvestmentWithdrawn", data) == (
        Line("102", 123_456, 0),
        Line("141/binhai-park", 0, 123_456),
    )


def test_an_approved_allocation_debits_the_receivable_and_credits_investment_income() -> None:
    allocation = {
        "distribution_id": "d1",
        "project_id": "binhai-park",
        "investor_id": "lianmeng",
        "investor_type": "collective",
        "payout": "520000.07",
    }
    expected = (Line("112/binhai-park", 52_000_007, 0), Line("502/binhai-park", 0, 52_000_007))
    assert automatic_entry_lines("DividendAllocated", allocation) == expected
    assert automatic_entry_lines("DistributionApproved", allocation) == expected


def test_an_allocation_with_zero_payout_posts_nothing() -> None:
    allocation = {"project_id": "binhai-park", "investor_type": "collective", "payout": "0.00"}
    assert automatic_entry_lines("DividendAllocated", allocation) == ()


def test_a_dividend_paid_debits_the_bank_and_credits_the_receivable() -> None:
    data = {"payment_id": "p1", "project_id": "binhai-park", "investor_id": "lianmeng", "amount": "520000.07"}
    assert automatic_entry_lines("DividendPaid", data) == (
        Line("102", 52_000_007, 0),
        Line("112/binhai-park", 0, 52_000_007),
    )


def test_every_automatic_entry_is_itself_a_valid_balanced_entry() -> None:
    cases: list[tuple[str, dict[str, str]]] = [
        ("LandShareInvested", {"project_id": "binhai-park", "valuation": "4970000.00"}),
        ("CashInvested", {"project_id": "binhai-park", "amount": "0.01"}),
        ("InvestmentWithdrawn", {"project_id": "binhai-park", "amount": "99.99"}),
        ("DividendAllocated", {"project_id": "binhai-park", "payout": "1.00"}),
        ("DividendPaid", {"project_id": "binhai-park", "amount": "1.00"}),
    ]
    for event_type, data in cases:
        check_entry(automatic_entry_lines(event_type, data), MARCH, ())


@pytest.mark.parametrize("investor_type", ["company", "government"])
def test_investors_that_are_not_collectives_get_no_automatic_entry(investor_type: str) -> None:
    data = {"project_id": "binhai-park", "investor_type": investor_type, "amount": "100.00", "payout": "1.00"}
    assert automatic_entry_lines("CashInvested", data) == ()
    assert automatic_entry_lines("DividendAllocated", data) == ()


def test_an_event_type_without_an_automatic_entry_is_refused() -> None:
    with pytest.raises(UnknownEventType) as raised:
        automatic_entry_lines("RentReceived", {"project_id": "binhai-park", "amount": "1.00"})
    assert raised.value.field == "type"


@pytest.mark.parametrize("amount", [100.0, 100, "100", "100.0", "-1.00", None])
def test_an_amount_that_is_not_a_wire_yuan_string_is_refused(amount: Any) -> None:
    with pytest.raises(InvalidEventData) as raised:
        automatic_entry_lines("CashInvested", {"project_id": "binhai-park", "amount": amount})
    assert raised.value.field == "data.amount"


@pytest.mark.parametrize("project_id", ["Binhai Park", "", None, "binhai/park"])
def test_a_project_id_that_cannot_name_a_sub_account_is_refused(project_id: Any) -> None:
    with pytest.raises(InvalidEventData) as raised:
        automatic_entry_lines("DividendPaid", {"project_id": project_id, "amount": "1.00"})
    assert raised.value.field == "data.project_id"


def test_a_bad_land_area_is_refused() -> None:
    data = {"project_id": "binhai-park", "area_mu": "14.20001", "price_per_mu": "1.00", "valuation": "14.20"}
    with pytest.raises(InvalidEventData) as raised:
        automatic_entry_lines("LandShareInvested", data)
    assert raised.value.field == "data.area_mu"


# --- derived entry ids ------------------------------------------------------------------

CAUSE = "3f2b1c4e-0000-4000-8000-000000000001"


def test_a_derived_entry_id_is_the_same_every_time_the_cause_is_replayed() -> None:
    assert derived_entry_id(CAUSE, "lianmeng") == derived_entry_id(CAUSE, "lianmeng")


def test_a_derived_entry_id_is_uuid5_of_the_fixed_namespace_and_cause_colon_qualifier() -> None:
    assert derived_entry_id(CAUSE, "lianmeng") == str(
        uuid.uuid5(DERIVED_ENTRY_NAMESPACE, f"{CAUSE}:lianmeng")
    )
    assert derived_entry_id(CAUSE) == str(uuid.uuid5(DERIVED_ENTRY_NAMESPACE, f"{CAUSE}:"))
    assert uuid.UUID(derived_entry_id(CAUSE)).version == 5


def test_the_derived_entry_namespace_never_changes_so_old_ids_stay_valid() -> None:
    assert uuid.UUID("87fb2c8a-4486-44d7-adad-3f3cda85cc3b") == DERIVED_ENTRY_NAMESPACE
    assert derived_entry_id(CAUSE, "lianmeng") == "a8ac94e5-0893-536c-9cdf-504fa4c83827"


def test_different_qualifiers_or_causes_give_different_entry_ids() -> None:
    ids = {
        derived_entry_id(CAUSE),
        derived_entry_id(CAUSE, "lianmeng"),
        derived_entry_id(CAUSE, "xinqiao"),
        derived_entry_id("3f2b1c4e-0000-4000-8000-000000000002", "lianmeng"),
    }
    assert len(ids) == 4
