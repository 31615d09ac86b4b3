"""Are the automatic entries of DESIGN §7 in the villages' books, and only those?

The ledger posts an entry by itself for each investment, withdrawal, approved allocation
and payment of a registered collective, as a derived EntryPosted whose entry id is
``derived_entry_id(cause event id, qualifier)`` (qualifier ``"entry"``, or the investor id
for an approval) and whose lines are ``automatic_entry_lines`` — both from
``services.ledger.domain``, so the audit expects exactly what the ledger is meant to post.

Checked at the end of the replay (causes and entries live on different topics):
every cause has its entry, in the right collective's books, with the right lines and
origin, dated no earlier than the cause, and not reversed since; and every entry whose
origin is automatic has a cause in the log.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.audit.checks.books import BookEntry, BookLine, Books
from services.audit.checks.findings import Where
from services.audit.checks.payouts import Payouts
from services.contracts.money import format_yuan
from services.ledger.domain import LedgerError, automatic_entry_lines, derived_entry_id, local_date

Report = Callable[[str, Where | None, str | None, str], None]

#: Origins of the entries the ledger posts by itself.
AUTOMATIC_ORIGINS = frozenset({"investment", "withdrawal", "dividend", "payment"})
#: The qualifier of the one entry an investment, withdrawal or payment causes (ledger projection).
ENTRY_QUALIFIER = "entry"


@dataclass(slots=True)
class Cause:
    """An investment or withdrawal event that may owe an entry."""

    event_id: str
    event_type: str
    data: dict[str, Any]
    where: Where


@dataclass(frozen=True)
class Owed:
    """An entry the ledger owes a collective's books because of a cause in the log."""

    entry_id: str
    collective_id: str
    lines: tuple[BookLine, ...]
    origin_kind: str
    origin_ref: str
    not_before: str  # ISO date
    cause: Where
    cause_subject: str
    what: str


@dataclass
class Postings:
    """Collects the causes during the replay; :meth:`verify` compares them with the books."""

    report: Report
    causes: list[Cause] = field(default_factory=list)
    first_type: dict[tuple[str, str], str] = field(default_factory=dict)  # (project, investor) -> type

    def apply(self, where: Where, envelope: dict[str, Any]) -> None:
        kind = envelope["type"]
        data = envelope["data"]
        if kind in ("LandShareInvested", "CashInvested"):
            self.first_type.setdefault((data["project_id"], data["investor_id"]), data["investor_type"])
            if data["investor_type"] == "collective":
                self.causes.append(Cause(envelope["event_id"], kind, data, where))
        elif kind == "InvestmentWithdrawn":
            self.causes.append(Cause(envelope["event_id"], kind, data, where))

    def owed(self, books: Books, payouts: Payouts) -> list[Owed]:
        """Every automatic entry the log calls for, in the books of registered collectives."""
        out: list[Owed] = []
        kept = books.collectives
        for cause in self.causes:
            data = cause.data
            investor = data["investor_id"]
            if investor not in kept:
                continue
            if cause.event_type == "InvestmentWithdrawn":
                if self.first_type.get((data["project_id"], investor)) != "collective":
                    continue
                origin, ref, what = "withdrawal", data["withdrawal_id"], f"withdrawal {data['withdrawal_id']}"
            else:
                origin, ref, what = "investment", data["investment_id"], f"investment {data['investment_id']}"
            out += _owed(cause.event_id, ENTRY_QUALIFIER, investor, cause.event_type, data, origin, ref,
                         data["effective_on"], cause.where, data["project_id"], what)
        for distribution in payouts.distributions.values():
            if distribution.approval_event_id is None or distribution.approval_where is None:
                continue
            assert distribution.approval_instant is not None
            day = local_date(distribution.approval_instant).isoformat()
            for investor, (investor_type, payout) in sorted(distribution.approved_payouts.items()):
                if investor_type != "collective" or investor not in kept or payout <= 0:
                    continue
                allocation = {"project_id": distribution.project_id, "investor_type": investor_type,
                              "payout": format_yuan(payout)}
                out += _owed(distribution.approval_event_id, investor, investor, "DistributionApproved",
                             allocation, "dividend", distribution.distribution_id, day,
                             distribution.approval_where, distribution.project_id,
                             f"allocation of {format_yuan(payout)} to {investor} in {distribution.distribution_id}")
        for payment in payouts.payments.values():
            data = payment.data
            if data["investor_id"] not in kept:
                continue
            out += _owed(payment.event_id, ENTRY_QUALIFIER, data["investor_id"], "DividendPaid", data, "payment",
                         data["payment_id"], data["paid_on"], payment.where, data["project_id"],
                         f"payment {data['payment_id']} of {data['amount']} to {data['investor_id']}")
        return out

    def verify(self, books: Books, payouts: Payouts) -> None:
        verify_owed(self.report, books, self.owed(books, payouts), AUTOMATIC_ORIGINS,
                    "no investment, withdrawal, approval or payment calls for it")


def verify_owed(report: Report, books: Books, owed: list[Owed], origins: frozenset[str], no_cause: str) -> None:
    """Compare the entries the log calls for with the books: each ``owed`` entry is there, as expected, and
    every entry of ``origins`` is owed (``no_cause``: what would have called for it). The rule the automatic
    entries of the ledger (here) and of the member plans (:mod:`services.audit.checks.members`) share."""
    expected = {item.entry_id for item in owed}
    for item in owed:
        entry = books.entry(item.entry_id)
        if entry is None:
            report("posting", item.cause, item.cause_subject,
                   f"{item.what} is not posted in the books of {item.collective_id} (no entry {item.entry_id})")
            continue
        _compare(report, item, entry)
    for entry in books.automatic_entries(origins):
        if entry.entry_id not in expected:
            report("posting", entry.where, entry.collective_id,
                   f"entry {entry.entry_id} ({entry.origin_kind} {entry.origin_ref}) has no cause in the log: "
                   f"{no_cause}")


def _compare(report: Report, item: Owed, entry: BookEntry) -> None:
    problems = []
    if entry.collective_id != item.collective_id:
        problems.append(f"it is in the books of {entry.collective_id}, not {item.collective_id}")
    if entry.lines != item.lines and Counter(entry.lines) != Counter(item.lines):
        problems.append(f"its lines are {lines_text(entry.lines)}, expected {lines_text(item.lines)}")
    if (entry.origin_kind, entry.origin_ref) != (item.origin_kind, item.origin_ref):
        problems.append(f"its origin is {entry.origin_kind} {entry.origin_ref}, expected "
                        f"{item.origin_kind} {item.origin_ref}")
    if entry.date < item.not_before:
        problems.append(f"it is dated {entry.date}, before its cause ({item.not_before})")
    if entry.reversed_by is not None:
        problems.append(f"it was reversed by {entry.reversed_by}, so the books no longer show it")
    for problem in problems:
        report("posting", entry.where, entry.collective_id, f"entry {entry.entry_id} for {item.what}: {problem}")


def _owed(cause_event_id: str, qualifier: str, collective_id: str, event_type: str, data: dict[str, Any],
          origin: str, ref: str, not_before: str, where: Where, subject: str, what: str) -> list[Owed]:
    try:
        lines = automatic_entry_lines(event_type, data)
    except LedgerError:
        return []  # a payload the ledger cannot post (reported by the schema check)
    if not lines:
        return []
    return [Owed(derived_entry_id(cause_event_id, qualifier), collective_id,
                 tuple((line.account, line.debit, line.credit) for line in lines), origin, ref,
                 _iso(not_before), where, subject, what)]


def _iso(day: str) -> str:
    return dt.date.fromisoformat(day).isoformat()


def lines_text(lines: tuple[BookLine, ...]) -> str:
    """Entry lines as a clerk reads them: ``Dr 102 12.30, Cr 311 12.30``."""
    parts = []
    for account, debit, credit in lines:
        parts.append(f"Dr {account} {format_yuan(debit)}" if debit else f"Cr {account} {format_yuan(credit)}")
    return ", ".join(parts)
