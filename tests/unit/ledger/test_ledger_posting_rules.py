"""Reversals, and the dates the ledger gives the entries it posts by itself."""

from __future__ import annotations

from datetime import date

import pytest

from services.ledger.domain import (
    AlreadyReversed,
    ClosedPeriod,
    InvalidDate,
    LedgerError,
    ReversalOfReversal,
    check_reversal,
    local_date,
    posting_date,
)

ORIGINAL = date(2026, 3, 10)


def reversal_error(**overrides: object) -> LedgerError:
    args: dict[str, object] = {"original_date": ORIGINAL, "reversed_by": None, "is_reversal": False,
                               "date": date(2026, 3, 31), "closed_periods": ()}
    args.update(overrides)
    with pytest.raises(LedgerError) as raised:
        check_reversal(**args)  # type: ignore[arg-type]
    return raised.value


def test_an_entry_may_be_reversed_on_its_own_date_or_later() -> None:
    check_reversal(original_date=ORIGINAL, reversed_by=None, is_reversal=False, date=ORIGINAL, closed_periods=())
    check_reversal(original_date=ORIGINAL, reversed_by=None, is_reversal=False, date=date(2027, 1, 1),
                   closed_periods=("2026-03",))


def test_an_entry_is_reversed_at_most_once() -> None:
    error = reversal_error(reversed_by="9b1f0c2e-0000-4000-8000-000000000000")
    assert isinstance(error, AlreadyReversed)
    assert error.field == "entry_id"


def test_a_reversing_entry_cannot_itself_be_reversed() -> None:
    assert isinstance(reversal_error(is_reversal=True), ReversalOfReversal)


def test_a_reversal_cannot_be_dated_before_the_entry_it_reverses() -> None:
    error = reversal_error(date=date(2026, 3, 9))
    assert isinstance(error, InvalidDate)
    assert error.field == "date"


def test_a_reversal_cannot_be_dated_inside_a_closed_period() -> None:
    error = reversal_error(closed_periods=("2026-03",))
    assert isinstance(error, ClosedPeriod)
    assert error.field == "date"


def test_an_automatic_entry_keeps_its_date_when_the_period_is_open() -> None:
    assert posting_date(date(2025, 12, 31), ("2025-11",)) == date(2025, 12, 31)


def test_an_automatic_entry_dated_in_closed_periods_moves_to_the_first_open_day_after_them() -> None:
    assert posting_date(date(2025, 11, 15), ("2025-11", "2025-12")) == date(2026, 1, 1)
    assert posting_date(date(2025, 6, 30), ("2025-06",)) == date(2025, 7, 1)


def test_instants_are_dated_in_china_standard_time() -> None:
    assert local_date("2025-12-31T15:59:59.999Z") == date(2025, 12, 31)
    assert local_date("2025-12-31T16:00:00Z") == date(2026, 1, 1)
