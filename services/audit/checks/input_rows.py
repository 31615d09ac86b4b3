"""The distribution rule's inputs as a replay meets them, kept compact.

A replay of a million events cannot keep a million envelopes. For each project this keeps,
per input record (rent received, expense, investment, withdrawal), only where it sits
(topic, partition, offset), its event id and the few values the rule reads, in typed
arrays (about 50 bytes a record). When a distribution is checked, the project's records are
given back as :class:`services.dividends.inputs.LogRecord` objects with minimal envelopes,
and the dividends service's own ``recompute_declared`` chooses among them and applies the
rule: the audit never re-implements which records count or how.

A distribution may also take up late items (DESIGN §6 step 1): rents and expenses dated in
the period of an earlier distribution and recorded after it. For each earlier distribution
this keeps, incrementally, the records dated in its period at or after its input position,
so a check gives the rule only those besides the records of its own period.
"""

from __future__ import annotations

import datetime as dt
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS
from services.dividends.inputs import INPUT_TYPES, Covering, EarlierDistribution, LogRecord

#: Input event types, their date field and their money field (as the payloads name them).
KINDS: tuple[tuple[str, str, str], ...] = (
    ("RentReceived", "received_on", "amount"),
    ("ExpenseRecorded", "incurred_on", "amount"),
    ("LandShareInvested", "effective_on", "valuation"),
    ("CashInvested", "effective_on", "amount"),
    ("InvestmentWithdrawn", "effective_on", "amount"),
)
KIND_CODE = {name: code for code, (name, _, _) in enumerate(KINDS)}
_PERIOD_KINDS = frozenset({KIND_CODE["RentReceived"], KIND_CODE["ExpenseRecorded"]})
TOPIC_CODES = (LEDGER_INVESTMENTS, RENTALS)
assert set(KIND_CODE) == set(INPUT_TYPES), "the audit keeps exactly the rule's input types"


@dataclass
class ProjectInputs:
    """One project's input records, column by column."""

    kinds: bytearray = field(default_factory=bytearray)
    topics: bytearray = field(default_factory=bytearray)
    partitions: array[int] = field(default_factory=lambda: array("i"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    days: array[int] = field(default_factory=lambda: array("i"))  # date ordinals
    amounts: array[int] = field(default_factory=lambda: array("q"))  # fen
    investors: array[int] = field(default_factory=lambda: array("i"))  # index into investor_table, -1 none
    event_ids: bytearray = field(default_factory=bytearray)  # 16 bytes each
    investor_table: list[tuple[str, str | None]] = field(default_factory=list)
    _investor_index: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kinds)

    def add(self, kind: int, topic: int, partition: int, offset: int, event_id: str, day: int, fen: int,
            investor: tuple[str, str | None] | None) -> None:
        self.kinds.append(kind)
        self.topics.append(topic)
        self.partitions.append(partition)
        self.offsets.append(offset)
        self.days.append(day)
        self.amounts.append(fen)
        if investor is None:
            self.investors.append(-1)
        else:
            index = self._investor_index.get(investor)
            if index is None:
                index = self._investor_index[investor] = len(self.investor_table)
                self.investor_table.append(investor)
            self.investors.append(index)
        self.event_ids += bytes.fromhex(event_id.replace("-", ""))  # a valid envelope's id is a uuid

    def _record(self, project_id: str, i: int) -> LogRecord:
        name, day_field, money_field = KINDS[self.kinds[i]]
        data: dict[str, Any] = {"project_id": project_id,
                                day_field: dt.date.fromordinal(self.days[i]).isoformat(),
                                money_field: format_yuan(self.amounts[i])}
        if self.investors[i] >= 0:
            investor_id, investor_type = self.investor_table[self.investors[i]]
            data["investor_id"] = investor_id
            if investor_type is not None:
                data["investor_type"] = investor_type
        event_id = str(uuid.UUID(bytes=bytes(self.event_ids[16 * i:16 * i + 16])))
        return LogRecord(TOPIC_CODES[self.topics[i]], self.partitions[i], self.offsets[i],
                         {"event_id": event_id, "type": name, "data": data})


@dataclass
class _LateIndex:
    """Per earlier distribution of one project: its records dated in its period at or after its position."""

    # distribution id -> (its period and positions as a key, the distribution)
    known: dict[str, tuple[str, EarlierDistribution]] = field(default_factory=dict)
    after: dict[str, list[int]] = field(default_factory=dict)  # id -> record indices
    covering: Covering = field(default_factory=lambda: Covering(()))
    upto: int = 0  # records looked at so far
    ids: dict[bytes, list[int]] = field(default_factory=dict)  # event id (16 bytes) -> record indices
    ids_upto: int = 0


def _at_or_after(project: ProjectInputs, i: int, earlier: EarlierDistribution) -> bool:
    parts = earlier.input_positions.get(TOPIC_CODES[project.topics[i]])
    return parts is None or project.offsets[i] >= int(parts.get(str(project.partitions[i]), 0))


@dataclass
class InputLog:
    """The input records of every project, and the means to give them back for one period."""

    projects: dict[str, ProjectInputs] = field(default_factory=dict)
    _ordinals: dict[str, int] = field(default_factory=dict)
    _sorted: dict[str, tuple[list[int], list[int], list[int]]] = field(default_factory=dict)
    _late: dict[str, _LateIndex] = field(default_factory=dict)

    def add(self, topic: str, partition: int, offset: int, envelope: Mapping[str, Any]) -> None:
        """Keep an input record (a valid envelope of one of the rule's input types)."""
        kind = KIND_CODE[envelope["type"]]
        _, day_field, money_field = KINDS[kind]
        data = envelope["data"]
        day_text = data[day_field]
        day = self._ordinals.get(day_text)
        if day is None:
            day = self._ordinals[day_text] = dt.date.fromisoformat(day_text).toordinal()
        investor = None
        if "investor_id" in data:
            investor = (data["investor_id"], data.get("investor_type"))
        project = self.projects.get(data["project_id"])
        if project is None:
            project = self.projects[data["project_id"]] = ProjectInputs()
        project.add(kind, TOPIC_CODES.index(topic), partition, offset, envelope["event_id"], day,
                    parse_yuan(data[money_field]), investor)
        self._sorted.pop(data["project_id"], None)

    def records_for(self, project_id: str, period_start: dt.date, period_end: dt.date,
                    earlier: Sequence[EarlierDistribution] = ()) -> list[LogRecord]:
        """The project's capital movements of every date, its rents and expenses dated in the period,
        and those that may be late items of ``earlier`` (the distributions of the project declared
        before this one and not cancelled then): dated in the period of one of them and recorded at
        or after its position, or among the late items taken when it was declared.

        Other rents and expenses are left out only because the rule ignores them (DESIGN §6
        step 1); it is what keeps a check O(records of the period).
        """
        project = self.projects.get(project_id)
        if project is None:
            return []
        movements, days, by_day = self._index(project_id, project)
        low = bisect_left(days, period_start.toordinal())
        high = bisect_right(days, period_end.toordinal())
        chosen = movements + by_day[low:high]
        if earlier:
            chosen = list(set(chosen).union(self._late_candidates(project_id, project, earlier)))
        return [project._record(project_id, i) for i in sorted(chosen)]

    def _late_candidates(self, project_id: str, project: ProjectInputs,
                         earlier: Sequence[EarlierDistribution]) -> set[int]:
        late = self._late.setdefault(project_id, _LateIndex())
        _, days, by_day = self._index(project_id, project)
        changed = False
        for e in earlier:
            key = repr((e.period_start, e.period_end,
                        sorted((t, sorted(p.items())) for t, p in e.input_positions.items())))
            if e.distribution_id in late.known and late.known[e.distribution_id][0] == key:
                continue
            # A distribution met for the first time: the records so far dated in its period.
            low = bisect_left(days, e.period_start.toordinal())
            high = bisect_right(days, e.period_end.toordinal())
            late.after[e.distribution_id] = sorted(i for i in by_day[low:high]
                                                   if i < late.upto and _at_or_after(project, i, e))
            late.known[e.distribution_id] = (key, e)
            changed = True
        if changed:
            late.covering = Covering(known for _, known in late.known.values())
        # Records added since the last look: to the distributions whose period holds their date.
        for i in range(late.upto, len(project)):
            if project.kinds[i] in _PERIOD_KINDS:
                for e in late.covering.of(dt.date.fromordinal(project.days[i])):
                    if _at_or_after(project, i, e):
                        late.after[e.distribution_id].append(i)
        late.upto = len(project)
        found: set[int] = set()
        for e in earlier:
            found.update(late.after[e.distribution_id])
            if e.taken_before:
                found.update(self._by_event_id(late, project, e.taken_before))
        return found

    @staticmethod
    def _by_event_id(late: _LateIndex, project: ProjectInputs, event_ids: frozenset[str]) -> list[int]:
        for i in range(late.ids_upto, len(project)):
            late.ids.setdefault(bytes(project.event_ids[16 * i:16 * i + 16]), []).append(i)
        late.ids_upto = len(project)
        found: list[int] = []
        for event_id in event_ids:
            try:
                key = uuid.UUID(event_id).bytes
            except ValueError:
                continue
            found += late.ids.get(key, [])
        return found

    def _index(self, project_id: str, project: ProjectInputs) -> tuple[list[int], list[int], list[int]]:
        found = self._sorted.get(project_id)
        if found is None:
            movements = [i for i in range(len(project)) if project.kinds[i] not in _PERIOD_KINDS]
            periodic = sorted((project.days[i], i) for i in range(len(project)) if project.kinds[i] in _PERIOD_KINDS)
            found = (movements, [day for day, _ in periodic], [i for _, i in periodic])
            self._sorted[project_id] = found
        return found

    def size(self) -> int:
        return sum(len(project) for project in self.projects.values())
