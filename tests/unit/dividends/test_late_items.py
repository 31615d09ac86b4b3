"""Late items (DESIGN §6 step 1), the pure rule: rent or an expense recorded after a distribution was declared
and dated inside its period counts once, in the next distribution of the project declared after it.

A small ledger of declarations stands in for the dividends service: each declaration is computed from the log
up to its positions, with the project's distributions that are not cancelled at that moment, as the service's
projection gives them (``views.earlier_distributions``) and as the audit replays them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS
from services.dividends.domain import (
    DistributionRuleError,
    InvestorCapitalChange,
    LateItem,
    Policy,
    compute_distribution,
)
from services.dividends.inputs import (
    EarlierDistribution,
    LogRecord,
    collect_inputs,
    compute_from_log,
    declared_event_data,
    recompute_declared,
)

P = "binhai-park"
POLICY = {"project_id": P, "management_fee_rate": "0.05", "tax_rate": "0.10", "payout_ratio": "0.90",
          "guaranteed_rate": "0", "guarantee_until": None, "guarantor_id": None}


@dataclass
class Log:
    """The project's records, numbered per (topic, partition) like Kafka offsets."""

    records: list[LogRecord] = field(default_factory=list)

    def _append(self, topic: str, partition: int, event_type: str, data: dict[str, Any]) -> str:
        offset = sum(1 for r in self.records if (r.topic, r.partition) == (topic, partition))
        event_id = f"{event_type}-{topic}-{partition}-{offset}"
        self.records.append(LogRecord(topic, partition, offset, {
            "event_id": event_id, "type": event_type, "subject": P, "data": {"project_id": P, **data}}))
        return event_id

    def invest(self, amount: str = "1000000.00") -> str:
        return self._append(LEDGER_INVESTMENTS, 1, "CashInvested", {
            "investor_id": "a-village", "investor_type": "collective", "amount": amount, "effective_on": "2020-01-01"})

    def rent(self, amount: str, on: str, partition: int = 2) -> str:
        return self._append(RENTALS, partition, "RentReceived", {"lease_id": "l1", "amount": amount,
                                                                  "received_on": on})

    def expense(self, amount: str, on: str, partition: int = 2) -> str:
        return self._append(RENTALS, partition, "ExpenseRecorded", {"amount": amount, "incurred_on": on})

    def positions(self) -> dict[str, dict[str, int]]:
        """Every partition's next offset: what a declaration made now has consumed."""
        out: dict[str, dict[str, int]] = {LEDGER_INVESTMENTS: {"0": 0, "1": 0, "2": 0}, RENTALS: {"0": 0, "1": 0,
                                                                                                   "2": 0}}
        for r in self.records:
            out[r.topic][str(r.partition)] = max(out[r.topic][str(r.partition)], r.offset + 1)
        return out


@dataclass
class Board:
    """Declares and cancels the project's distributions, in order, as the dividends service does."""

    log: Log
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> DistributionDeclared data
    cancelled: set[str] = field(default_factory=set)
    taken_before: dict[str, frozenset[str]] = field(default_factory=dict)

    def earlier(self) -> list[EarlierDistribution]:
        return [EarlierDistribution.from_declared(data, taken_before=self.taken_before[name])
                for name, data in self.declared.items() if name not in self.cancelled]

    def declare(self, name: str, start: str, end: str) -> dict[str, Any]:
        earlier = self.earlier()
        positions = self.log.positions()
        result = compute_from_log(self.log.records, project_id=P, period_start=date.fromisoformat(start),
                                  period_end=date.fromisoformat(end), policy=Policy.from_wire(POLICY),
                                  input_positions=positions, earlier=earlier)
        data = declared_event_data(distribution_id=name, project_id=P, policy=POLICY, result=result,
                                   input_positions=positions)
        # Replaying the same records (and later ones) with the same earlier distributions gives the same numbers.
        assert recompute_declared(self.log.records + self.later_records(), data, earlier) == result
        self.declared[name] = data
        self.taken_before[name] = frozenset().union(*(e.late_event_ids for e in earlier))
        return data

    def later_records(self) -> list[LogRecord]:
        return [LogRecord(RENTALS, 2, 10_000 + n, {"event_id": f"later-{n}", "type": "RentReceived", "subject": P,
                                                    "data": {"project_id": P, "lease_id": "l1", "amount": "1.00",
                                                             "received_on": on}})
                for n, on in enumerate(("2024-06-01", "2025-06-01", "2026-06-01"))]

    def cancel(self, name: str) -> None:
        self.cancelled.add(name)


def late_ids(data: dict[str, Any]) -> list[str]:
    return [item["event_id"] for item in data["late_items"]]


def counted_in(board: Board, event_id: str) -> list[str]:
    """The non-cancelled distributions that count the record (as a normal or a late item)."""
    out = []
    for name, data in board.declared.items():
        if name in board.cancelled:
            continue
        if event_id in late_ids(data):
            out.append(name)
            continue
        record = next(r for r in board.log.records if r.envelope["event_id"] == event_id)
        on = date.fromisoformat(record.envelope["data"].get("received_on") or record.envelope["data"]["incurred_on"])
        e = EarlierDistribution.from_declared(data, taken_before=board.taken_before[name])
        if e.counted_normally(record, on):
            out.append(name)
    return out


def a_declared_2025() -> tuple[Log, Board]:
    log = Log()
    log.invest()
    log.rent("100000.00", "2025-03-10")
    board = Board(log)
    board.declare("d2025", "2025-01-01", "2025-12-31")
    return log, board


# -- the rule ---------------------------------------------------------------------------------------------


def test_late_rent_counts_once_in_the_next_distribution_declared_after_it() -> None:
    log, board = a_declared_2025()
    late = log.rent("40000.00", "2025-12-20")
    log.rent("60000.00", "2026-03-01")
    # 2025 as declared does not change: the late rent is at or after its position.
    again = recompute_declared(log.records, board.declared["d2025"], [])
    assert again.gross_rent == 100000_00 and again.late_items == ()
    d2026 = board.declare("d2026", "2026-01-01", "2026-12-31")
    assert d2026["gross_rent"] == "100000.00"  # 60,000 of 2026 + 40,000 late from 2025
    assert d2026["management_fee"] == "5000.00" and d2026["tax"] == "10000.00"
    assert d2026["late_items"] == [{"event_id": late, "kind": "rent", "amount": "40000.00", "date": "2025-12-20"}]
    # Never again: 2027 does not take it up a second time.
    d2027 = board.declare("d2027", "2027-01-01", "2027-12-31")
    assert d2027["gross_rent"] == "0.00" and d2027["late_items"] == []
    assert counted_in(board, late) == ["d2026"]


def test_a_late_expense_counts_in_the_next_distribution_s_expenses() -> None:
    log, board = a_declared_2025()
    late = log.expense("3000.00", "2025-11-30")
    log.rent("50000.00", "2026-02-01")
    d2026 = board.declare("d2026", "2026-01-01", "2026-06-30")
    assert (d2026["gross_rent"], d2026["expenses"]) == ("50000.00", "3000.00")
    # NP = 50,000 − 3,000 − 2,500 − 5,000 = 39,500.
    assert d2026["net_profit"] == "39500.00"
    assert d2026["late_items"] == [{"event_id": late, "kind": "expense", "amount": "3000.00", "date": "2025-11-30"}]
    assert counted_in(board, late) == ["d2026"]


def test_rent_dated_where_no_distribution_was_declared_is_not_late() -> None:
    log, board = a_declared_2025()
    log.rent("7000.00", "2024-12-31")  # before every declared period: it waits for a 2024 distribution
    log.rent("8000.00", "2026-01-15")  # a normal item of 2026
    d2026 = board.declare("d2026", "2026-01-01", "2026-12-31")
    assert d2026["gross_rent"] == "8000.00" and d2026["late_items"] == []


def test_a_late_item_taken_by_a_cancelled_distribution_goes_to_the_next_one() -> None:
    log, board = a_declared_2025()
    late = log.rent("40000.00", "2025-12-20")
    first = board.declare("d2026", "2026-01-01", "2026-12-31")
    assert late_ids(first) == [late]
    board.cancel("d2026")
    # The cancelled one took nothing: the declaration that replaces it takes the item up again.
    again = board.declare("d2026-2", "2026-01-01", "2026-12-31")
    assert late_ids(again) == [late] and again["gross_rent"] == "40000.00"
    assert counted_in(board, late) == ["d2026-2"]


def test_when_the_late_distribution_itself_is_cancelled_its_replacement_counts_the_item_as_a_normal_one() -> None:
    log, board = a_declared_2025()
    late = log.rent("40000.00", "2025-12-20")
    board.cancel("d2025")
    redone = board.declare("d2025-2", "2025-01-01", "2025-12-31")
    assert redone["gross_rent"] == "140000.00" and redone["late_items"] == []
    assert late_ids(board.declare("d2026", "2026-01-01", "2026-12-31")) == []
    assert counted_in(board, late) == ["d2025-2"]


def test_an_item_taken_late_is_left_out_of_a_redeclared_period_and_never_lost_nor_counted_twice() -> None:
    log, board = a_declared_2025()
    late = log.rent("40000.00", "2025-12-20")
    assert late_ids(board.declare("d2026", "2026-01-01", "2026-06-30")) == [late]
    board.cancel("d2025")
    # 2026 H1 (not cancelled) has taken it: the new 2025 leaves it out although its period covers it.
    redone = board.declare("d2025-2", "2025-01-01", "2025-12-31")
    assert redone["gross_rent"] == "100000.00" and redone["late_items"] == []
    assert counted_in(board, late) == ["d2026"]
    # Now 2026 H1 is cancelled too: no distribution counts it any more, so the next one takes it up.
    board.cancel("d2026")
    assert counted_in(board, late) == []
    h1 = board.declare("d2026-2", "2026-01-01", "2026-06-30")
    assert late_ids(h1) == [late]
    assert counted_in(board, late) == ["d2026-2"]


def test_positions_are_per_partition() -> None:
    log = Log()
    log.invest()
    for n in range(3):
        log.rent("1000.00", f"2025-0{n + 1}-01", partition=0)  # partition 0: offsets 0..2
    log.rent("2000.00", "2025-05-01", partition=2)  # partition 2: offset 0
    board = Board(log)
    d2025 = board.declare("d2025", "2025-01-01", "2025-12-31")
    assert d2025["gross_rent"] == "5000.00"
    assert d2025["input_positions"][RENTALS] == {"0": 3, "1": 0, "2": 1}
    # Partition 1 was never read by d2025 (position 0): anything there is after its position.
    on_1 = log.rent("300.00", "2025-07-01", partition=1)
    on_2 = log.rent("400.00", "2025-08-01", partition=2)  # offset 1 ≥ position 1
    on_0 = log.expense("50.00", "2025-09-01", partition=0)  # offset 3 ≥ position 3
    d2026 = board.declare("d2026", "2026-01-01", "2026-12-31")
    assert sorted(late_ids(d2026)) == sorted([on_0, on_1, on_2])
    assert (d2026["gross_rent"], d2026["expenses"]) == ("700.00", "50.00")
    # Sorted by date, then kind, then event id.
    assert [item["date"] for item in d2026["late_items"]] == ["2025-07-01", "2025-08-01", "2025-09-01"]


def test_a_record_at_an_offset_below_the_position_of_another_partition_is_not_late() -> None:
    log = Log()
    log.invest()
    for n in range(5):
        log.rent("1.00", f"2025-01-0{n + 1}", partition=0)  # partition 0 up to offset 4
    board = Board(log)
    board.declare("d2025", "2025-01-01", "2025-12-31")
    # Offset 0 of partition 2: below partition 0's position 5, but partition 2's position is 0: late.
    late = log.rent("9.00", "2025-12-31", partition=2)
    assert late_ids(board.declare("d2026", "2026-01-01", "2026-12-31")) == [late]


def test_a_preview_of_another_period_takes_the_late_items_up_as_a_declaration_would() -> None:
    log, board = a_declared_2025()
    late = log.rent("40000.00", "2025-12-20")
    inputs = collect_inputs(log.records, P, log.positions(), board.earlier())
    assert [(i.event_id, i.kind, i.amount, i.on) for i in inputs.late] == [(late, "rent", 4000000,
                                                                           date(2025, 12, 20))]
    # Without the earlier distributions (the code before late items), it was simply lost to 2026.
    lost = compute_from_log(log.records, project_id=P, period_start=date(2026, 1, 1), period_end=date(2026, 12, 31),
                            policy=Policy.from_wire(POLICY), input_positions=log.positions())
    assert lost.gross_rent == 0


# -- compute_distribution ---------------------------------------------------------------------------------


def test_compute_distribution_adds_late_items_to_r_and_e_whatever_their_date_and_lists_them_sorted() -> None:
    movements = [InvestorCapitalChange("a-village", "collective", 100_000_000, date(2020, 1, 1))]
    late = [LateItem("e2", "expense", 100_00, date(2025, 12, 1)), LateItem("r1", "rent", 1_000_00, date(2025, 12, 1)),
            LateItem("r0", "rent", 500_00, date(2025, 6, 1))]
    result = compute_distribution(date(2026, 1, 1), date(2026, 12, 31), Policy.from_wire(POLICY),
                                  [(date(2026, 2, 1), 10_000_00)], [], movements, late=late)
    assert (result.gross_rent, result.expenses) == (11_500_00, 100_00)
    assert [i.event_id for i in result.late_items] == ["r0", "e2", "r1"]
    with pytest.raises(DistributionRuleError, match="kind"):
        compute_distribution(date(2026, 1, 1), date(2026, 12, 31), Policy.from_wire(POLICY), [], [], movements,
                             late=[LateItem("x", "invoice", 1, date(2025, 1, 1))])
    with pytest.raises(DistributionRuleError, match="int fen"):
        compute_distribution(date(2026, 1, 1), date(2026, 12, 31), Policy.from_wire(POLICY), [], [], movements,
                             late=[LateItem("x", "rent", 1.5, date(2025, 1, 1))])  # type: ignore[arg-type]
