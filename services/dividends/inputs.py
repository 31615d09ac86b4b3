"""From the log to the distribution rule and back, shared by the service and the auditor.

A declared distribution records ``input_positions``: for every partition of the input
topics, the next offset the service had consumed when it declared. Whoever holds the same
records — the service's projection, a replay from Kafka, an export archive — gets the same
rule arguments from :func:`collect_inputs` and so the same numbers from
:func:`recompute_declared`, whatever arrived after the declaration.

Pure: no Kafka, no SQLite, no Flask. The records are envelopes as
``services.contracts.validation.read_envelope`` returns them; a record the consumers dead-letter
(undecodable, failing its schema or its hash) is not an input. A record whose ``event_id``
appeared earlier in the log is a duplicate (a producer retry) and counts once, as the
projection store dedupes it.

**Late items** (DESIGN §6 step 1). A rent or expense recorded after a distribution of the
project was declared (at or after its position for the record's partition) and dated inside
that distribution's period was not counted there. It counts in the first distribution of
the project declared after it was recorded, listed there in ``late_items``. Each record
counts in at most one non-cancelled distribution. So a declaration also needs the
distributions of the project that were declared before it and were not cancelled when it
was declared (:class:`EarlierDistribution`): which late items each one took (those are
taken), and which records each one counted or left over. A cancelled distribution takes
nothing: what it took is free again, for the next declaration, as a normal item if that
one's period covers its date, else as a late item.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS, topic_of
from services.dividends.domain import (
    Allocation,
    DistributionResult,
    DistributionRuleError,
    InvestorCapitalChange,
    LateItem,
    Policy,
    compute_distribution,
)

__all__ = [
    "INPUT_TOPICS",
    "INPUT_TYPES",
    "LATE_KIND",
    "Covering",
    "DistributionInputs",
    "EarlierDistribution",
    "LogRecord",
    "allocation_event_data",
    "collect_inputs",
    "compute_from_log",
    "declared_event_data",
    "late_item_data",
    "positions_to_wire",
    "recompute_declared",
]

#: The topics a distribution reads; their offsets are its ``input_positions``.
INPUT_TOPICS = (LEDGER_INVESTMENTS, RENTALS)

#: The event types of those topics that move money or capital in a distribution.
INPUT_TYPES = frozenset({"LandShareInvested", "CashInvested", "InvestmentWithdrawn", "RentReceived",
                         "ExpenseRecorded"})
_HOME_TOPIC = {kind: topic_of(kind) for kind in INPUT_TYPES}

#: The event types that can be late, and their ``kind`` in ``late_items``.
LATE_KIND = {"RentReceived": "rent", "ExpenseRecorded": "expense"}


@dataclass(frozen=True)
class LogRecord:
    """One record of an input topic: where it sits in the log, and its envelope."""

    topic: str
    partition: int
    offset: int
    envelope: Mapping[str, Any]


@dataclass(frozen=True)
class EarlierDistribution:
    """A distribution of the project declared before the one being computed, and not cancelled
    when that one is declared.

    ``late_event_ids``: the late items it took up (its ``late_items``). ``taken_before``: the
    late items taken by the distributions that were not cancelled when *it* was declared; it
    did not count those even where they are dated in its period.
    """

    distribution_id: str
    period_start: date
    period_end: date
    input_positions: Mapping[str, Mapping[str, int]]
    late_event_ids: frozenset[str] = frozenset()
    taken_before: frozenset[str] = frozenset()

    @classmethod
    def from_declared(cls, declared: Mapping[str, Any], *, taken_before: Iterable[str] = (),
                      late_event_ids: Iterable[str] | None = None) -> EarlierDistribution:
        """From a DistributionDeclared ``data`` (its own ``late_items`` unless ``late_event_ids`` is given)."""
        if late_event_ids is None:
            late_event_ids = (str(item["event_id"]) for item in declared.get("late_items") or ())
        return cls(str(declared["distribution_id"]), date.fromisoformat(str(declared["period_start"])),
                   date.fromisoformat(str(declared["period_end"])), declared["input_positions"],
                   frozenset(late_event_ids), frozenset(taken_before))

    def counted_normally(self, record: LogRecord, day: date) -> bool:
        """Did this distribution count ``record`` (dated ``day``) as an item of its own period?"""
        return (self.period_start <= day <= self.period_end and _consumed(record, self.input_positions)
                and str(record.envelope["event_id"]) not in self.taken_before)


@dataclass(frozen=True)
class DistributionInputs:
    """The arguments :func:`compute_distribution` takes for one project, in fen.

    ``rents`` and ``expenses`` leave out the late items earlier distributions took. ``late``
    are the records no earlier distribution counted although they are dated in the period of
    one of them: the late items of a distribution over another period (one dated in its own
    period is one of its normal items, already in ``rents`` or ``expenses``).
    """

    rents: tuple[tuple[date, int], ...]  # (received_on, amount)
    expenses: tuple[tuple[date, int], ...]  # (incurred_on, amount)
    movements: tuple[InvestorCapitalChange, ...]
    late: tuple[LateItem, ...] = ()


def positions_to_wire(positions: Mapping[str, Mapping[int, int]]) -> dict[str, dict[str, int]]:
    """``{topic: {partition: next_offset}}`` with string partitions, as DistributionDeclared carries it."""
    return {topic: {str(p): int(off) for p, off in sorted(parts.items())} for topic, parts in sorted(positions.items())}


def _consumed(record: LogRecord, input_positions: Mapping[str, Mapping[str, int]]) -> bool:
    """Was ``record`` consumed before the declaration? Partitions not listed were not read at all."""
    parts = input_positions.get(record.topic)
    if parts is None:
        return False
    return record.offset < int(parts.get(str(record.partition), 0))


def _date(data: Mapping[str, Any], name: str) -> date:
    return date.fromisoformat(str(data[name]))


class Covering:
    """Which of some distributions have a period that covers a day (bisect on the starts: O(log n) when
    the periods do not overlap, as those of a project's non-cancelled distributions never do)."""

    def __init__(self, earlier: Iterable[EarlierDistribution]) -> None:
        self.rows = sorted(earlier, key=lambda e: (e.period_start, e.period_end, e.distribution_id))
        self.starts = [e.period_start for e in self.rows]
        self.reach: list[date] = []  # the latest period_end among rows[:i + 1]
        for e in self.rows:
            self.reach.append(max(self.reach[-1], e.period_end) if self.reach else e.period_end)

    def of(self, day: date) -> list[EarlierDistribution]:
        found = []
        i = bisect_right(self.starts, day) - 1
        while i >= 0 and self.reach[i] >= day:
            if self.rows[i].period_end >= day:
                found.append(self.rows[i])
            i -= 1
        return found


def collect_inputs(records: Iterable[LogRecord], project_id: str,
                   input_positions: Mapping[str, Mapping[str, int]],
                   earlier: Sequence[EarlierDistribution] = ()) -> DistributionInputs:
    """The project's rents, expenses and capital movements among the records below ``input_positions``.

    Records of other projects, other types, types on a topic that is not theirs, or at or
    after the recorded position are left out; the first record of an ``event_id`` counts,
    later copies do not. A withdrawal takes the investor type of the investor's investments
    in the project (raises DistributionRuleError if the investor has none).

    ``earlier``: the project's distributions declared before this one and not cancelled when
    it is declared. The late items they took are left out of ``rents`` and ``expenses``; a
    rent or expense dated in the period of one of them that none of them counted is in
    ``late``.
    """
    chosen: dict[str, LogRecord] = {}
    for record in records:
        envelope = record.envelope
        if _HOME_TOPIC.get(str(envelope.get("type"))) != record.topic or not _consumed(record, input_positions):
            continue
        data = envelope.get("data") or {}
        if data.get("project_id") != project_id:
            continue
        event_id = str(envelope["event_id"])
        kept = chosen.get(event_id)
        if kept is None or (record.topic, record.partition, record.offset) < (
                kept.topic, kept.partition, kept.offset):
            chosen[event_id] = record

    taken = frozenset[str]().union(*(e.late_event_ids for e in earlier))
    covering = Covering(earlier)
    rents: list[tuple[date, int]] = []
    expenses: list[tuple[date, int]] = []
    late: list[LateItem] = []
    invested: list[tuple[str, str, int, date]] = []
    withdrawn: list[tuple[str, int, date]] = []
    for event_id, record in chosen.items():
        kind = record.envelope["type"]
        data = record.envelope["data"]
        if kind in LATE_KIND:
            if event_id in taken:
                continue  # counted in an earlier distribution, as one of its late items
            day = _date(data, "received_on" if kind == "RentReceived" else "incurred_on")
            amount = parse_yuan(data["amount"])
            (rents if kind == "RentReceived" else expenses).append((day, amount))
            covered = covering.of(day) if covering.rows else ()
            if covered and not any(e.counted_normally(record, day) for e in covered):
                late.append(LateItem(event_id, LATE_KIND[kind], amount, day))
        elif kind == "LandShareInvested":
            invested.append((data["investor_id"], data["investor_type"], parse_yuan(data["valuation"]),
                             _date(data, "effective_on")))
        elif kind == "CashInvested":
            invested.append((data["investor_id"], data["investor_type"], parse_yuan(data["amount"]),
                             _date(data, "effective_on")))
        else:  # InvestmentWithdrawn
            withdrawn.append((data["investor_id"], parse_yuan(data["amount"]), _date(data, "effective_on")))

    # The smallest type wins only if an investor was recorded with two (compute_distribution refuses that).
    type_of: dict[str, str] = {}
    for investor, kind, _, _ in sorted(invested):
        type_of.setdefault(investor, kind)
    movements = [InvestorCapitalChange(investor, kind, amount, on) for investor, kind, amount, on in invested]
    for investor, amount, on in withdrawn:
        if investor not in type_of:
            raise DistributionRuleError(f"{investor!r} withdrew from {project_id!r} without any investment in it")
        movements.append(InvestorCapitalChange(investor, type_of[investor], -amount, on))
    return DistributionInputs(tuple(rents), tuple(expenses), tuple(movements), tuple(late))


def compute_from_log(records: Iterable[LogRecord], *, project_id: str, period_start: date, period_end: date,
                     policy: Policy, input_positions: Mapping[str, Mapping[str, int]],
                     earlier: Sequence[EarlierDistribution] = ()) -> DistributionResult:
    """DESIGN §6 for one project and period, from the records consumed up to ``input_positions``.

    ``earlier``: the project's distributions declared before this one and not cancelled then
    (see :func:`collect_inputs`); the late items of theirs that this one takes up are in its
    totals and in ``late_items``.
    """
    inputs = collect_inputs(records, project_id, input_positions, earlier)
    late = [item for item in inputs.late if not period_start <= item.on <= period_end]
    return compute_distribution(period_start, period_end, policy, inputs.rents, inputs.expenses, inputs.movements,
                                late=late)


def recompute_declared(records: Iterable[LogRecord], declared: Mapping[str, Any],
                       earlier: Sequence[EarlierDistribution] = ()) -> DistributionResult:
    """Recompute a DistributionDeclared (its ``data``) from the log: its policy, period and positions, and
    the distributions of the project that were declared before it and not cancelled then."""
    return compute_from_log(
        records,
        project_id=str(declared["project_id"]),
        period_start=date.fromisoformat(str(declared["period_start"])),
        period_end=date.fromisoformat(str(declared["period_end"])),
        policy=Policy.from_wire(declared["policy"]),
        input_positions=declared["input_positions"],
        earlier=earlier,
    )


def late_item_data(item: LateItem) -> dict[str, str]:
    """One entry of ``late_items`` (DistributionDeclared, the preview and the distribution's answer)."""
    return {"event_id": item.event_id, "kind": item.kind, "amount": format_yuan(item.amount),
            "date": item.on.isoformat()}


def declared_event_data(*, distribution_id: str, project_id: str, policy: Mapping[str, Any],
                        result: DistributionResult,
                        input_positions: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The DistributionDeclared payload of a result (amounts as yuan strings)."""
    return {
        "distribution_id": distribution_id,
        "project_id": project_id,
        "period_start": result.period_start.isoformat(),
        "period_end": result.period_end.isoformat(),
        "policy": dict(policy),
        "gross_rent": format_yuan(result.gross_rent),
        "expenses": format_yuan(result.expenses),
        "management_fee": format_yuan(result.management_fee),
        "tax": format_yuan(result.tax),
        "net_profit": format_yuan(result.net_profit),
        "pool": format_yuan(result.pool),
        "retained": format_yuan(result.retained),
        "total_top_up": format_yuan(result.total_top_up),
        "total_payout": format_yuan(result.total_payout),
        "total_capital_days": format_yuan(result.total_capital_days),
        "input_positions": {topic: dict(parts) for topic, parts in input_positions.items()},
        "late_items": [late_item_data(item) for item in result.late_items],
    }


def allocation_event_data(*, distribution_id: str, project_id: str, allocation: Allocation) -> dict[str, Any]:
    """The DividendAllocated payload of one allocation (capital_days in yuan·days, two decimals)."""
    return {
        "distribution_id": distribution_id,
        "project_id": project_id,
        "investor_id": allocation.investor_id,
        "investor_type": allocation.investor_type,
        "capital_days": format_yuan(allocation.capital_days),
        "pro_rata": format_yuan(allocation.pro_rata),
        "guaranteed_floor": format_yuan(allocation.guaranteed_floor),
        "top_up": format_yuan(allocation.top_up),
        "payout": format_yuan(allocation.payout),
    }
