"""The audit: every record through the record checks, then the checks across topics.

:class:`Auditor` is fed records one at a time (from Kafka or an archive) and keeps only the
state the checks need: the head of every hash chain, the villages' books, the dividends
lifecycle, and the distribution rule's inputs in compact form. ``finish`` then runs the
checks that need the whole log: distributions recomputed, automatic entries posted.

Record checks, per record:
- ``order`` (archives): offsets of a partition increase, none is missing;
- ``schema``: the value is an envelope valid against its type's schema version, on the
  topic of its type, from the topic's owner, with key = subject = the payload's id;
- ``canonical``: the value is exactly the canonical encoding of its envelope (DESIGN §4);
- ``chain``: seq follows the stream's previous seq, prev_hash is its hash, and the hash is
  the envelope's own. After a break the check carries on from the record that broke it
  (unless it goes back in seq), so an altered or dropped record is named once, and two
  swapped records twice.

A record failing ``schema``, ``canonical`` or its own hash is not folded any further: the
services' consumers dead-letter such records, so they are not part of anybody's state.

The signed checkpoints (``baotuan.checkpoints.v1``) are fed first, through the same record
checks, to :class:`services.audit.checks.anchors.Anchors`; then every record of the record topics
goes to it too, which compares the streams' heads with the checkpoints (``checkpoint``,
``anchored`` and ``receipt`` checks).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.audit.checks.anchors import Anchors, TrustedKeys, placement_problem, read_receipts
from services.audit.checks.books import Books
from services.audit.checks.findings import Findings, Where
from services.audit.checks.input_rows import KIND_CODE
from services.audit.checks.members import MemberPlans
from services.audit.checks.payouts import Payouts
from services.audit.checks.postings import Postings
from services.audit.sources.records import Record, ReplayError, Source, fewer_collections
from services.contracts.envelope import ChainVerifier
from services.contracts.money import MoneyError, format_yuan, parse_mu, parse_yuan, valuation_fen
from services.contracts.topics import (
    ACCOUNTS,
    CHECKPOINTS,
    DIVIDENDS,
    LEDGER_ENTRIES,
    LEDGER_INVESTMENTS,
    MEMBERS,
    RENTALS,
    TOPICS,
)
from services.contracts.validation import envelope_problem

#: The payload field that must equal the record's subject (its key), per event type.
SUBJECT_FIELD: dict[str, str] = {
    **{t: "collective_id" for t in TOPICS[LEDGER_ENTRIES].event_types},
    "InvestorRegistered": "investor_id",
    **{t: "project_id" for name in (LEDGER_INVESTMENTS, RENTALS, DIVIDENDS) for t in TOPICS[name].event_types},
    "ChainCheckpoint": "topic",
    **{t: "name" for t in TOPICS[ACCOUNTS].event_types},
    **{t: "collective_id" for t in TOPICS[MEMBERS].event_types},
}
_TYPES_OF = {name: frozenset(topic.event_types) for name, topic in TOPICS.items()}
_OWNER_OF = {name: topic.owner for name, topic in TOPICS.items()}


@dataclass
class Auditor:
    """Feed it records (``feed``), then ``finish``; the findings are in ``findings``."""

    as_of: dt.date | None = None
    keep_memos: bool = False
    check_gaps: bool = False  # archives: a missing offset is a missing record
    trusted_keys: TrustedKeys | None = None  # the auditor's pinned keys (None: authenticity not checked)
    findings: Findings = field(default_factory=Findings)
    records: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    chains: ChainVerifier = field(default_factory=ChainVerifier)
    _next_offset: dict[tuple[str, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        report = self.findings.add
        self.books = Books(report, as_of=self.as_of, keep_memos=self.keep_memos)
        self.payouts = Payouts(report)
        self.postings = Postings(report)
        self.members = MemberPlans(report)
        self.anchors = Anchors(self.findings, self.trusted_keys)

    # -- per record ------------------------------------------------------------------------------------

    def feed(self, record: Record) -> None:
        if record.skip_to is not None:  # offsets without a record (transaction markers): none is missing there
            position = (record.topic, record.partition)
            self._check_order(record, Where(record.topic, record.partition, record.offset))
            self._next_offset[position] = max(self._next_offset.get(position, 0), record.skip_to)
            return
        if record.topic != CHECKPOINTS:  # the records of the log; the checkpoints are counted apart
            self.records += 1
        report = self.findings.add
        where = Where(record.topic, record.partition, record.offset)
        if record.partition >= 0:
            self._check_order(record, where)
        envelope = record.envelope
        topic = record.topic
        if envelope is None:
            report("schema", where if record.partition >= 0 else None, record.key, record.problem or "no value")
            if record.partition >= 0 and topic != CHECKPOINTS and self.anchors.active:
                self.anchors.feed(record)
            return
        problem: object
        if record.schema_checked:  # by the reader process the audit started itself
            problem = record.schema_problem
        else:  # a record read from bytes (Kafka, an archive line) was decoded by codec.decode, which refuses floats
            problem = envelope_problem(envelope, float_free=record.raw is not None or record.line is not None)
        subject = envelope.get("subject") if isinstance(envelope.get("subject"), str) else record.key
        valid = problem is None
        if problem is not None:
            report("schema", where, subject, f"{envelope.get('type')} v{envelope.get('version')}: {problem}")
        elif not self._check_placement(record, envelope, where):
            valid = False
        if record.noncanonical is not None:
            report("canonical", where, subject, f"{envelope.get('type')}: {record.noncanonical}")
            valid = False
        intact = self._check_chain(topic, envelope, where, record.intact)
        if topic == CHECKPOINTS:
            if valid and intact:
                self.by_type[envelope["type"]] += 1
                self.anchors.add_checkpoint(where, envelope)
            return
        if self.anchors.active:
            self.anchors.feed(record)
        if not valid or not intact:
            return
        kind = envelope["type"]
        self.by_type[kind] += 1
        if topic == LEDGER_ENTRIES:
            self.books.apply(where, envelope)
        elif topic == DIVIDENDS:
            self.payouts.apply(where, envelope)
        elif topic == MEMBERS:
            self.members.apply(where, envelope)
        else:
            if kind in KIND_CODE:
                self.payouts.inputs.add(topic, record.partition, record.offset, envelope)
            if topic == LEDGER_INVESTMENTS:
                if kind == "LandShareInvested":
                    self._check_valuation(where, envelope["data"])
                self.postings.apply(where, envelope)

    def _check_order(self, record: Record, where: Where) -> None:
        position = (record.topic, record.partition)
        expected = self._next_offset.get(position)
        if expected is not None and record.offset < expected:
            self.findings.add("order", where, record.key,
                              f"offset {record.offset} comes after offset {expected - 1} of the same partition: "
                              "records are repeated or out of order")
            return
        if self.check_gaps and record.offset > (expected or 0):
            first = expected or 0
            missing = f"offset {first}" if record.offset - first == 1 else f"offsets {first}..{record.offset - 1}"
            self.findings.add("order", where, record.key,
                              f"{missing} of {record.topic}[{record.partition}] missing before this record")
        self._next_offset[position] = record.offset + 1

    def _check_placement(self, record: Record, envelope: Mapping[str, Any], where: Where) -> bool:
        """Type on its own topic, written by the topic's owner, key = subject = payload id."""
        kind = envelope["type"]
        subject = envelope["subject"]
        problems = []
        if kind not in _TYPES_OF.get(record.topic, ()):
            problems.append(f"{kind} does not belong on {record.topic}")
        elif record.topic == CHECKPOINTS:
            wrong = placement_problem(envelope)  # its writer is the owner of the topic it covers
            if wrong is not None:
                problems.append(wrong)
        elif envelope["source"] != _OWNER_OF[record.topic]:
            problems.append(f"source {envelope['source']!r} is not {_OWNER_OF[record.topic]!r}, "
                            f"the only writer of {record.topic}")
        if record.key is not None and record.key != subject:
            problems.append(f"record key {record.key!r} differs from subject {subject!r}")
        key_field = SUBJECT_FIELD.get(kind)
        if key_field is not None and envelope["data"].get(key_field) != subject:
            problems.append(f"subject {subject!r} differs from data.{key_field} {envelope['data'].get(key_field)!r}")
        for problem in problems:
            self.findings.add("schema", where, subject, f"{kind}: {problem}")
        return not problems

    def _check_chain(self, topic: str, envelope: Mapping[str, Any], where: Where,
                     known_intact: bool | None = None) -> bool:
        """Check one link; False when the record's own hash is wrong (it was altered).

        ``known_intact``: the hash comparison, when the reader process already made it.
        """
        breaks = self.chains.follow(topic, envelope, known_intact)
        if breaks is None:
            return False  # reported by the schema check; no link to follow
        if breaks:
            self.findings.add("chain", where, envelope["subject"], "; ".join(b.message for b in breaks))
        return not any(b.field == "hash" for b in breaks)

    def _check_valuation(self, where: Where, data: Mapping[str, Any]) -> None:
        try:
            expected = valuation_fen(parse_mu(data["area_mu"]), parse_yuan(data["price_per_mu"]))
            stated = parse_yuan(data["valuation"])
        except MoneyError:
            return  # the schema check reports it
        if stated != expected:
            self.findings.add("schema", where, data["project_id"],
                              f"land share {data['investment_id']}: valuation {data['valuation']} is not "
                              f"ROUND_HALF_UP(area_mu × price_per_mu) = {format_yuan(expected)}")

    # -- across topics -----------------------------------------------------------------------------------

    def finish(self, replayed: Mapping[str, Mapping[int, int]],
               limited: Callable[[str, int], bool] | None = None) -> None:
        """Run the checks that need the whole replay. ``replayed``: next offset read per partition;
        ``limited(topic, partition)``: whether the replay was told to stop early there (--until, --offsets)."""
        self.payouts.verify_distributions(replayed)
        self.postings.verify(self.books, self.payouts)
        self.members.verify(self.books)
        self.anchors.finish(replayed, limited)


@dataclass
class AuditResult:
    """An audit's outcome: the auditor (state and findings) and how the replay went."""

    auditor: Auditor
    source: str
    seconds: float
    stopped_at: dict[str, dict[int, int]]
    notes: list[str] = field(default_factory=list)
    balances_compared: list[str] | None = None  # collectives compared with the ledger service (None: not asked)

    @property
    def findings(self) -> Findings:
        return self.auditor.findings

    @property
    def ok(self) -> bool:
        return len(self.auditor.findings) == 0


def run_audit(source: Source, *, as_of: dt.date | None = None, keep_memos: bool = False,
              archive: bool = False, on_progress: Callable[[int, int | None], None] | None = None,
              progress_every: int = 5000, trusted_keys: TrustedKeys | None = None,
              receipts: Path | None = None) -> AuditResult:
    """Replay ``source`` through an :class:`Auditor` and run every check of the log.

    The checkpoints come first (``source.checkpoint_records()``, when the source has them), then the
    records. ``trusted_keys``: the pinned keys the checkpoints and receipts must be signed with (None:
    authenticity is not checked, and the report says so); ``receipts``: a JSON Lines file of receipts.
    """
    began = time.monotonic()
    auditor = Auditor(as_of=as_of, keep_memos=keep_memos, check_gaps=archive, trusted_keys=trusted_keys)
    feed = auditor.feed
    if receipts is not None:
        try:
            kept, unreadable = read_receipts(receipts)
        except OSError as exc:
            raise ReplayError(f"cannot read the receipts {receipts}: {exc}") from exc
        auditor.anchors.expect_receipts(kept, str(receipts), unreadable)
    checkpoint_records = getattr(source, "checkpoint_records", None)
    with fewer_collections():
        if checkpoint_records is not None:
            for record in checkpoint_records():
                feed(record)
        auditor.anchors.prepare()
        for count, record in enumerate(source.records(), start=1):
            feed(record)
            if on_progress is not None and count % progress_every == 0:
                on_progress(*source.progress())
        if on_progress is not None:
            on_progress(*source.progress())
        stopped_at = source.stopped_at()
        auditor.finish(stopped_at, getattr(source, "limited", None))
    return AuditResult(auditor, source.description, time.monotonic() - began, stopped_at)
