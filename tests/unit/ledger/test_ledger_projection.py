"""The ledger's fold, without a broker: what it books, what entries it owes, and that order never matters."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.contracts import envelope as env
from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS
from services.contracts.validation import read_envelope
from services.ledger.domain import derived_entry_id
from services.ledger.projection import SCHEMA, fold
from services.ledger.reads import LedgerReads
from services.runtime.store import ProjectionStore

APPROVED_AT = "2026-01-05T02:00:00Z"


class Log:
    """A projection store fed by hand, record by record, as the consumer would."""

    def __init__(self, path: Path) -> None:
        self.store = ProjectionStore(path, SCHEMA)
        self.offsets: dict[str, Iterator[int]] = {}

    def apply(self, topic: str, envelope: dict[str, Any]) -> None:
        offsets = self.offsets.setdefault(topic, itertools.count())
        self.store.apply(topic, 0, next(offsets), read_envelope(envelope), fold, chain=False)

    def owed(self) -> list[dict[str, Any]]:
        return [{"event_id": row["event_id"], "subject": row["subject"], "causation_id": row["causation_id"],
                 **json.loads(row["data"])} for row in self.store.outbox()]

    def post_owed(self) -> None:
        """What the reactor does: publish every owed entry (here: fold it straight back in)."""
        for row in self.store.outbox():
            self.apply(LEDGER_ENTRIES, event("EntryPosted", row["subject"], json.loads(row["data"]),
                                             event_id=row["event_id"]))


def event(event_type: str, subject: str, data: dict[str, Any], *, event_id: str | None = None,
          occurred_at: str = APPROVED_AT) -> dict[str, Any]:
    return env.seal(env.new_envelope(event_type=event_type, version=1, source="test", subject=subject, data=data,
                                     actor="test", event_id=event_id, occurred_at=occurred_at), env.ChainHead())


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    books = Log(tmp_path / "ledger.sqlite")
    yield books
    books.store.close()


def register(log: Log, collective_id: str = "lianmeng") -> None:
    log.apply(LEDGER_ENTRIES, event("CollectiveRegistered", collective_id, {
        "collective_id": collective_id, "name": "联盟村", "town": "金清镇", "alliances": []}))


LAND = {"investment_id": "inv-1", "project_id": "binhai-park", "investor_id": "lianmeng",
        "investor_type": "collective", "area_mu": "14.2000", "price_per_mu": "250000.00",
        "valuation": "3550000.00", "effective_on": "2024-03-01", "parcel": None}


def balances(log: Log, collective_id: str = "lianmeng") -> dict[str, tuple[int, int]]:
    rows = log.store.query("SELECT account, SUM(debit), SUM(credit) FROM entry_lines WHERE collective_id=? "
                           "GROUP BY account", (collective_id,))
    return {row[0]: (row[1], row[2]) for row in rows}


def test_a_collectives_land_share_owes_the_entry_141_to_311_under_ids_derived_from_it(log: Log) -> None:
    register(log)
    land = event("LandShareInvested", "binhai-park", LAND)
    log.apply(LEDGER_INVESTMENTS, land)
    [owed] = log.owed()
    assert owed["event_id"] == env.derived_event_id(land["event_id"], "entry")
    assert owed["entry_id"] == derived_entry_id(land["event_id"], "entry")
    assert owed["causation_id"] == land["event_id"]
    assert (owed["subject"], owed["date"]) == ("lianmeng", "2024-03-01")
    assert owed["lines"] == [{"account": "141/binhai-park", "debit": "3550000.00"},
                             {"account": "311", "credit": "3550000.00"}]
    assert owed["origin"] == {"kind": "investment", "ref": "inv-1"}
    log.post_owed()
    assert log.owed() == []
    assert balances(log) == {"141/binhai-park": (355_000_000, 0), "311": (0, 355_000_000)}


def test_a_companys_cash_investment_is_registered_but_keeps_no_books(log: Log) -> None:
    log.apply(LEDGER_INVESTMENTS, event("CashInvested", "binhai-park", {
        "investment_id": "inv-soe", "project_id": "binhai-park", "investor_id": "luqiao-state-assets",
        "investor_type": "company", "amount": "50000000.00", "effective_on": "2024-03-01"}))
    assert log.owed() == []
    assert LedgerReads(log.store).capital_changes("binhai-park")[0][1].amount == 5_000_000_000


def test_an_investment_by_a_collective_the_ledger_never_registered_owes_nothing(log: Log) -> None:
    log.apply(LEDGER_INVESTMENTS, event("LandShareInvested", "binhai-park", LAND))
    assert log.owed() == []


def test_a_withdrawal_by_a_collective_owes_102_to_141(log: Log) -> None:
    register(log)
    log.apply(LEDGER_INVESTMENTS, event("LandShareInvested", "binhai-park", LAND))
    log.post_owed()
    log.apply(LEDGER_INVESTMENTS, event("InvestmentWithdrawn", "binhai-park", {
        "withdrawal_id": "wd-1", "project_id": "binhai-park", "investor_id": "lianmeng", "amount": "50000.00",
        "effective_on": "2025-01-01", "reason": "道路征用"}))
    [owed] = log.owed()
    assert owed["lines"] == [{"account": "102", "debit": "50000.00"},
                             {"account": "141/binhai-park", "credit": "50000.00"}]
    assert owed["origin"] == {"kind": "withdrawal", "ref": "wd-1"}


def test_an_entry_already_in_the_log_is_not_owed_again_whatever_order_a_replay_reads_the_topics_in(
        log: Log) -> None:
    register(log)
    land = event("LandShareInvested", "binhai-park", LAND)
    derived = env.derived_event_id(land["event_id"], "entry")
    data = {"entry_id": derived_entry_id(land["event_id"], "entry"), "collective_id": "lianmeng",
            "date": "2024-03-01", "memo": "", "origin": {"kind": "investment", "ref": "inv-1"},
            "lines": [{"account": "141/binhai-park", "debit": "3550000.00"},
                      {"account": "311", "credit": "3550000.00"}]}
    log.apply(LEDGER_ENTRIES, event("EntryPosted", "lianmeng", data, event_id=derived))  # the entries topic first
    log.apply(LEDGER_INVESTMENTS, land)
    assert log.owed() == []
    assert balances(log) == {"141/binhai-park": (355_000_000, 0), "311": (0, 355_000_000)}


def declare_and_allocate(log: Log) -> None:
    log.apply(DIVIDENDS, event("DistributionDeclared", "binhai-park", {
        "distribution_id": "d-2025", "project_id": "binhai-park", "period_start": "2025-01-01",
        "period_end": "2025-12-31",
        "policy": {"project_id": "binhai-park", "management_fee_rate": "0.05", "tax_rate": "0.12",
                   "payout_ratio": "0.90", "guaranteed_rate": "0"},
        "gross_rent": "1000.00", "expenses": "0.00", "management_fee": "50.00", "tax": "120.00",
        "net_profit": "830.00", "pool": "747.00", "retained": "83.00", "total_top_up": "0.00",
        "total_payout": "747.00", "total_capital_days": "1.00", "input_positions": {}}))
    for investor_id, investor_type, payout in (("lianmeng", "collective", "500.00"),
                                               ("stranger", "collective", "100.00"),
                                               ("soe", "company", "147.00"), ("zero", "collective", "0.00")):
        log.apply(DIVIDENDS, event("DividendAllocated", "binhai-park", {
            "distribution_id": "d-2025", "project_id": "binhai-park", "investor_id": investor_id,
            "investor_type": investor_type, "capital_days": "1.00", "pro_rata": payout,
            "guaranteed_floor": "0.00", "top_up": "0.00", "payout": payout}))


def test_an_approval_owes_112_to_502_for_each_registered_collective_with_a_payout(log: Log) -> None:
    register(log)
    declare_and_allocate(log)
    approval = event("DistributionApproved", "binhai-park",
                     {"distribution_id": "d-2025", "project_id": "binhai-park", "approved_by": "board:jinqing"},
                     occurred_at="2026-01-04T17:30:00Z")
    log.apply(DIVIDENDS, approval)
    [owed] = log.owed()  # not the company, not an unregistered collective, not a zero payout
    assert owed["event_id"] == env.derived_event_id(approval["event_id"], "lianmeng")
    assert owed["date"] == "2026-01-05"  # 01:30 in China the next morning
    assert owed["lines"] == [{"account": "112/binhai-park", "debit": "500.00"},
                             {"account": "502/binhai-park", "credit": "500.00"}]
    assert owed["origin"] == {"kind": "dividend", "ref": "d-2025"}


def test_a_payment_owes_102_to_112_and_dated_in_a_closed_month_moves_to_the_next_open_day(log: Log) -> None:
    register(log)
    log.apply(LEDGER_ENTRIES, event("PeriodClosed", "lianmeng", {"collective_id": "lianmeng", "period": "2026-01"}))
    log.apply(DIVIDENDS, event("DividendPaid", "binhai-park", {
        "payment_id": "pay-1", "distribution_id": "d-2025", "project_id": "binhai-park", "investor_id": "lianmeng",
        "amount": "500.00", "paid_on": "2026-01-20", "bank_reference": "ICBC-1"}))
    [owed] = log.owed()
    assert owed["date"] == "2026-02-01"
    assert owed["lines"] == [{"account": "102", "debit": "500.00"},
                             {"account": "112/binhai-park", "credit": "500.00"}]
    assert owed["origin"] == {"kind": "payment", "ref": "pay-1"}


def test_an_entry_owed_before_its_month_is_closed_and_not_yet_posted_moves_out_of_the_closed_month(
        log: Log) -> None:
    """The interleaving of issue 13.8: the payment is folded (its entry owed, dated 2026-01-20), then the
    month is closed before the reactor posts the entry. The owed entry must not land in the closed month."""
    register(log)
    log.apply(DIVIDENDS, event("DividendPaid", "binhai-park", {
        "payment_id": "pay-1", "distribution_id": "d-2025", "project_id": "binhai-park", "investor_id": "lianmeng",
        "amount": "500.00", "paid_on": "2026-01-20", "bank_reference": "ICBC-1"}))
    assert [owed["date"] for owed in log.owed()] == ["2026-01-20"]
    log.apply(LEDGER_ENTRIES, event("PeriodClosed", "lianmeng", {"collective_id": "lianmeng", "period": "2026-01"}))
    log.apply(LEDGER_ENTRIES, event("PeriodClosed", "lianmeng", {"collective_id": "lianmeng", "period": "2026-02"}))
    [owed] = log.owed()
    assert owed["date"] == "2026-03-01"
    log.post_owed()
    booked = log.store.query("SELECT DISTINCT date FROM entry_lines WHERE collective_id='lianmeng'")
    assert [row[0] for row in booked] == ["2026-03-01"]


def test_a_reversal_books_the_mirror_lines_and_marks_the_original(log: Log) -> None:
    register(log)
    original = {"entry_id": "11111111-1111-4111-8111-111111111111", "collective_id": "lianmeng",
                "date": "2026-03-01", "memo": "发展资金", "origin": {"kind": "manual"},
                "lines": [{"account": "102", "debit": "300000.00"}, {"account": "503", "credit": "300000.00"}]}
    log.apply(LEDGER_ENTRIES, event("EntryPosted", "lianmeng", original))
    reversal_id = "22222222-2222-4222-8222-222222222222"
    log.apply(LEDGER_ENTRIES, event("EntryReversed", "lianmeng", {
        "entry_id": reversal_id, "reverses": original["entry_id"], "collective_id": "lianmeng",
        "date": "2026-03-02", "reason": "记错"}))
    assert balances(log) == {"102": (30_000_000, 30_000_000), "503": (30_000_000, 30_000_000)}
    first = LedgerReads(log.store).entry(str(original["entry_id"]))
    second = LedgerReads(log.store).entry(reversal_id)
    assert first is not None and second is not None
    assert first["reversed_by"] == reversal_id
    assert second["reverses"] == original["entry_id"]
    assert second["origin"] == {"kind": "reversal", "ref": original["entry_id"]}
    assert second["lines"] == [{"account": "102", "credit": "300000.00"}, {"account": "503", "debit": "300000.00"}]
