"""What an audit finds: one :class:`Finding` per problem, naming the check and the record.

A finding points at a record of the log (topic, partition, offset) and its subject (the
record key: a collective or a project), or only at a subject when no single record is to
blame (a balance that differs from the ledger service's).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

#: Every check, in the order a report lists them, with what it verifies.
CHECKS: dict[str, str] = {
    "schema": "every record is an envelope valid against its event type's schema version, on its own topic, "
              "from the topic's owner, keyed by its subject",
    "chain": "every (topic, subject) stream has consecutive seq, each prev_hash is the previous hash, "
             "and each hash matches the envelope's content",
    "order": "an archive holds each partition's records once, in offset order, with no offset missing",
    "canonical": "every record value is exactly the canonical encoding of its envelope: no duplicate keys, "
                 "whitespace, escapes or key order of its own",
    "checkpoint": "every signed checkpoint is signed by a trusted key of its topic's writer (pinned, or announced "
                  "by a verified checkpoint), numbered without gaps, and its heads digests chain",
    "anchored": "the records give, at every checkpoint, the stream heads it signed: no stream changed, dropped, "
                "reordered, re-sealed or cut before it",
    "receipt": "every receipt (--receipts) is signed by the writer of its topic, and its record is in the log as "
               "it says",
    "balanced": "every journal entry's debits equal its credits",
    "accounts": "every journal line is on an account of the statutory chart",
    "books": "entries belong to registered collectives, stay out of closed periods, and reverse "
             "an existing entry at most once",
    "distribution": "every distribution recomputed from its input_positions equals, to the fen, its "
                    "DistributionDeclared and DividendAllocated events; policy, periods and lifecycle hold",
    "posting": "every investment, withdrawal, approved allocation and payment of a collective, and every "
               "approved member plan and household payment, is posted in its books, once, with the right lines; "
               "no automatic entry lacks its cause",
    "payment": "every payment is for an approved allocation and no payment is above it",
    "plan": "every approved member plan recomputed from the register on its record date and the books equals, "
            "to the fen, its appropriations and HouseholdAllocated events; each household is paid its allocation, "
            "once",
    "balances": "the trial balance of every collective, recomputed from the events, equals the "
                "ledger service's",
}

#: How many findings of one check are kept in full (all are counted).
KEEP_PER_CHECK = 10_000


class Where(NamedTuple):
    """A record's place in the log."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Finding:
    """One problem: the check that found it, the record (if any) and the subject it concerns."""

    check: str
    topic: str | None
    partition: int | None
    offset: int | None
    subject: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def location(self) -> str:
        if self.topic is None:
            return "-"
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass
class Findings:
    """Collects findings; keeps the first ``KEEP_PER_CHECK`` of each check and counts all."""

    items: list[Finding] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, check: str, where: Where | None, subject: str | None, message: str) -> None:
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}")
        self.counts[check] += 1
        if self.counts[check] <= KEEP_PER_CHECK:
            if where is None:
                self.items.append(Finding(check, None, None, None, subject, message))
            else:
                self.items.append(Finding(check, where.topic, where.partition, where.offset, subject, message))

    def __len__(self) -> int:
        return sum(self.counts.values())

    def of(self, check: str) -> list[Finding]:
        return [finding for finding in self.items if finding.check == check]
