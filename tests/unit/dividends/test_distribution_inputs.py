"""From log records to the rule's arguments (services/dividends/inputs.py), as service and auditor use it."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.contracts.topics import LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS
from services.dividends.domain import DistributionRuleError, InvestorCapitalChange, Policy
from services.dividends.inputs import (
    LogRecord,
    allocation_event_data,
    collect_inputs,
    compute_from_log,
    declared_event_data,
    positions_to_wire,
    recompute_declared,
)

P = "binhai-park"
POLICY = {"project_id": P, "management_fee_rate": "0.05", "tax_rate": "0.10", "payout_ratio": "0.90",
          "guaranteed_rate": "0.10", "guarantee_until": None, "guarantor_id": "state-co"}


def record(topic: str, partition: int, offset: int, event_type: str, data: dict[str, Any],
           event_id: str | None = None) -> LogRecord:
    envelope = {"event_id": event_id or f"{topic}-{partition}-{offset}", "type": event_type, "subject": P,
                "data": {"project_id": P, **data}}
    return LogRecord(topic, partition, offset, envelope)


def log() -> list[LogRecord]:
    return [
        record(LEDGER_INVESTMENTS, 1, 0, "ProjectRegistered", {"name": "滨海"}),
        record(LEDGER_INVESTMENTS, 1, 1, "LandShareInvested", {
            "investor_id": "a-village", "investor_type": "collective", "area_mu": "2.0000",
            "price_per_mu": "500000.00", "valuation": "1000000.00", "effective_on": "2025-01-01"}),
        record(LEDGER_INVESTMENTS, 1, 2, "CashInvested", {
            "investor_id": "c-co", "investor_type": "company", "amount": "2000000.00", "effective_on": "2025-01-01"}),
        record(LEDGER_INVESTMENTS, 1, 3, "InvestmentWithdrawn", {
            "investor_id": "c-co", "amount": "1000000.00", "effective_on": "2025-10-01", "reason": "退出"}),
        record(RENTALS, 2, 0, "LeaseSigned", {"lease_id": "l1"}),
        record(RENTALS, 2, 1, "RentReceived", {"lease_id": "l1", "amount": "300000.00", "received_on": "2025-03-10"}),
        record(RENTALS, 2, 2, "ExpenseRecorded", {"amount": "20000.00", "incurred_on": "2025-05-01"}),
        record(RENTALS, 2, 3, "RentReceived", {"lease_id": "l1", "amount": "40000.00", "received_on": "2025-12-20"}),
    ]


UP_TO_ALL = {LEDGER_INVESTMENTS: {"0": 0, "1": 4, "2": 0}, RENTALS: {"0": 0, "1": 0, "2": 4}}


def test_the_project_s_money_and_capital_become_the_rule_s_arguments() -> None:
    inputs = collect_inputs(log(), P, UP_TO_ALL)
    assert sorted(inputs.rents) == [(date(2025, 3, 10), 30000000), (date(2025, 12, 20), 4000000)]
    assert inputs.expenses == ((date(2025, 5, 1), 2000000),)
    # The withdrawal takes the investor type of c-co's investment.
    assert sorted(inputs.movements, key=lambda m: (m.investor_id, m.amount)) == [
        InvestorCapitalChange("a-village", "collective", 100000000, date(2025, 1, 1)),
        InvestorCapitalChange("c-co", "company", -100000000, date(2025, 10, 1)),
        InvestorCapitalChange("c-co", "company", 200000000, date(2025, 1, 1)),
    ]


def test_records_at_or_after_the_recorded_position_are_left_out() -> None:
    before_late_rent = {**UP_TO_ALL, RENTALS: {"2": 3}}
    inputs = collect_inputs(log(), P, before_late_rent)
    assert inputs.rents == ((date(2025, 3, 10), 30000000),)
    # A topic or a partition the declaration had not read contributes nothing.
    assert collect_inputs(log(), P, {LEDGER_INVESTMENTS: UP_TO_ALL[LEDGER_INVESTMENTS]}).rents == ()
    assert collect_inputs(log(), P, {**UP_TO_ALL, RENTALS: {"0": 99}}).rents == ()


def test_other_projects_other_topics_and_repeated_event_ids_do_not_count() -> None:
    other = LogRecord(RENTALS, 2, 1, {"event_id": "x", "type": "RentReceived", "subject": "market",
                                      "data": {"project_id": "market", "amount": "5.00", "received_on": "2025-03-10"}})
    duplicate = record(RENTALS, 2, 3, "RentReceived", {"amount": "300000.00", "received_on": "2025-03-10"},
                       event_id=f"{RENTALS}-2-1")
    foreign = record(LEDGER_ENTRIES, 0, 0, "RentReceived", {"amount": "1.00", "received_on": "2025-03-10"})
    records = [r for r in log() if r.offset != 3 or r.topic != RENTALS] + [other, duplicate, foreign]
    positions = {**UP_TO_ALL, LEDGER_ENTRIES: {"0": 1}}
    assert collect_inputs(records, P, positions).rents == ((date(2025, 3, 10), 30000000),)


def test_a_withdrawal_without_any_investment_is_refused() -> None:
    orphan = record(LEDGER_INVESTMENTS, 1, 4, "InvestmentWithdrawn", {
        "investor_id": "ghost", "amount": "1.00", "effective_on": "2025-10-01", "reason": "?"})
    with pytest.raises(DistributionRuleError, match="without any investment"):
        collect_inputs([*log(), orphan], P, {LEDGER_INVESTMENTS: {"1": 5}})


def test_a_declaration_recomputes_to_the_same_payloads() -> None:
    positions = positions_to_wire({RENTALS: {2: 3, 0: 0, 1: 0}, LEDGER_INVESTMENTS: {1: 4, 0: 0, 2: 0}})
    assert positions == {LEDGER_INVESTMENTS: {"0": 0, "1": 4, "2": 0}, RENTALS: {"0": 0, "1": 0, "2": 3}}
    result = compute_from_log(log(), project_id=P, period_start=date(2025, 1, 1), period_end=date(2025, 12, 31),
                              policy=Policy.from_wire(POLICY), input_positions=positions)
    declared = declared_event_data(distribution_id="d1", project_id=P, policy=POLICY, result=result,
                                   input_positions=positions)
    # R 300,000 − E 20,000 − F 15,000 − T 30,000 = NP 235,000; D = 90% = 211,500.
    # Capital-days: a-village 1,000,000 × 365 = 365M; c-co 2,000,000 × 273 + 1,000,000 × 92 = 638M.
    # Pro rata (fen): 21,150,000 × 365/1003 = 7,696,660.02 and × 638/1003 = 13,453,339.98; the fen
    # left goes to c-co (.98): 134,533.40. a-village's 76,966.60 is below its floor of 100,000.00.
    assert (declared["gross_rent"], declared["net_profit"], declared["pool"]) == ("300000.00", "235000.00",
                                                                                   "211500.00")
    again = recompute_declared(log(), declared)
    assert again == result
    assert [allocation_event_data(distribution_id="d1", project_id=P, allocation=a)["payout"]
            for a in again.allocations] == ["100000.00", "134533.40"]
