"""From the log to the distribution rule and back, shared by the service and the auditor.

A declared distribution records ``input_positions``: for every partition of the input
topics, the next offset the service had consumed when it declared. Whoever holds the same
records — the service's projection, a replay from Kafka, an export archive — gets the same
rule arguments from :func:`collect_inputs` and so the same numbers from
:func:`recompute_declared`, whatever arrived after the declaration.

Pure: no Kafka, no SQLite, no Flask. The records are envelopes as
``services.contracts.events.read_event`` returns them; a record the consumers dead-letter
(undecodable, failing its schema or its hash) is not an input. A record whose ``event_id``
appeared earlier in the log is a duplicate (a producer retry) and counts once, as the
projection store dedupes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS, topic_of
from services.dividends.domain import (
    Allocation,
    CapitalMovement,
    DistributionResult,
    DistributionRuleError,
    Policy,
    compute_distribution,
)

__all__ = [
    "INPUT_TOPICS",
    "INPUT_TYPES",
    "DistributionInputs",
    "LogRecord",
    "allocation_event_data",
    "collect_inputs",
    "compute_from_log",
    "declared_event_data",
    "positions_to_wire",
    "recompute_declared",
]

#: The topics a distribution reads; their offsets are its ``input_positions``.
INPUT_TOPICS = (LEDGER_INVESTMENTS, RENTALS)

#: The event types of those topics that move money or capital in a distribution.
INPUT_TYPES = frozenset({"LandShareInvested", "CashInvested", "InvestmentWithdrawn", "RentReceived",
                         "ExpenseRecorded"})
_HOME_TOPIC = {kind: topic_of(kind) for kind in INPUT_TYPES}


@dataclass(frozen=True)
class LogRecord:
    """One record of an input topic: where it sits in the log, and its envelope."""

    topic: str
    partition: int
    offset: int
    envelope: Mapping[str, Any]


@dataclass(frozen=True)
class DistributionInputs:
    """The arguments :func:`compute_distribution` takes for one project, in fen."""

    rents: tuple[tuple[date, int], ...]  # (received_on, amount)
    expenses: tuple[tuple[date, int], ...]  # (incurred_on, amount)
    movements: tuple[CapitalMovement, ...]


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


def collect_inputs(records: Iterable[LogRecord], project_id: str,
                   input_positions: Mapping[str, Mapping[str, int]]) -> DistributionInputs:
    """The project's rents, expenses and capital movements among the records below ``input_positions``.

    Records of other projects, other types, types on a topic that is not theirs, or at or
    after the recorded position are left out; the first record of an ``event_id`` counts,
    later copies do not. A withdrawal takes the investor type of the investor's investments
    in the project (raises DistributionRuleError if the investor has none).
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
        earlier = chosen.get(event_id)
        if earlier is None or (record.topic, record.partition, record.offset) < (
                earlier.topic, earlier.partition, earlier.offset):
            chosen[event_id] = record

    rents: list[tuple[date, int]] = []
    expenses: list[tuple[date, int]] = []
    invested: list[tuple[str, str, int, date]] = []
    withdrawn: list[tuple[str, int, date]] = []
    for record in chosen.values():
        kind = record.envelope["type"]
        data = record.envelope["data"]
        if kind == "RentReceived":
            rents.append((_date(data, "received_on"), parse_yuan(data["amount"])))
        elif kind == "ExpenseRecorded":
            expenses.append((_date(data, "incurred_on"), parse_yuan(data["amount"])))
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
    movements = [CapitalMovement(investor, kind, amount, on) for investor, kind, amount, on in invested]
    for investor, amount, on in withdrawn:
        if investor not in type_of:
            raise DistributionRuleError(f"{investor!r} withdrew from {project_id!r} without any investment in it")
        movements.append(CapitalMovement(investor, type_of[investor], -amount, on))
    return DistributionInputs(tuple(rents), tuple(expenses), tuple(movements))


def compute_from_log(records: Iterable[LogRecord], *, project_id: str, period_start: date, period_end: date,
                     policy: Policy, input_positions: Mapping[str, Mapping[str, int]]) -> DistributionResult:
    """DESIGN §6 for one project and period, from the records consumed up to ``input_positions``."""
    inputs = collect_inputs(records, project_id, input_positions)
    return compute_distribution(period_start, period_end, policy, inputs.rents, inputs.expenses, inputs.movements)


def recompute_declared(records: Iterable[LogRecord], declared: Mapping[str, Any]) -> DistributionResult:
    """Recompute a DistributionDeclared (its ``data``) from the log: its policy, period and positions."""
    return compute_from_log(
        records,
        project_id=str(declared["project_id"]),
        period_start=date.fromisoformat(str(declared["period_start"])),
        period_end=date.fromisoformat(str(declared["period_end"])),
        policy=Policy.from_wire(declared["policy"]),
        input_positions=declared["input_positions"],
    )


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
