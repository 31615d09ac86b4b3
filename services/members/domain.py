"""The members service's pure rules (DESIGN §11) beside the arithmetic of :mod:`services.members.split`: the
charter's bounds, the meeting's vote, certificate numbers.

Each check returns ``None`` when the rule holds, else ``(field, message)``; the handlers turn that into a
refusal. Nothing here reads a database or the clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

#: DESIGN §11: at least two thirds of those entitled present; more than half of those present for.
MIN_QUORUM = Fraction(2, 3)
MIN_MAJORITY = Fraction(1, 2)
#: DESIGN §11: the reserve (公积公益金) minimum a charter may set.
MIN_RESERVE_RATE = Fraction(1, 10)
#: A certificate number's prefix: upper-case letters, digits and '-' (the rest of the number is -YYYY-NNNN).
PREFIX_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,29}\Z")

Problem = tuple[str, str] | None


def parse_fraction(text: str) -> Fraction:
    """``"2/3"`` → Fraction(2, 3) (the contract's pattern is checked before)."""
    numerator, _, denominator = text.partition("/")
    return Fraction(int(numerator), int(denominator))


def charter_problem(reserve_rate_min: Fraction, quorum: Fraction, majority: Fraction) -> Problem:
    """A charter may be stricter than DESIGN §11, never looser; a rule no vote can meet is refused too."""
    if reserve_rate_min < MIN_RESERVE_RATE:
        return "reserve_rate_min", "the reserve minimum must be at least 0.10 (DESIGN §11)"
    if quorum < MIN_QUORUM:
        return "quorum", "the quorum must be at least 2/3 of those entitled"
    if quorum > 1:
        return "quorum", "the quorum cannot be more than all of those entitled (1/1)"
    if majority < MIN_MAJORITY:
        return "majority", "the majority must be at least 1/2 of those present (passed strictly)"
    if majority >= 1:
        return "majority", "no vote can pass more than all of those present: the majority must be below 1/1"
    return None


@dataclass(frozen=True)
class VoteRules:
    quorum: Fraction
    majority: Fraction


def vote_problem(vote: Mapping[str, Any], rules: VoteRules, *, year: int, record_date: date) -> tuple[str, str,
                                                                                                         str] | None:
    """Why the recorded vote does not carry the plan (code, field, message), or None (DESIGN §11):
    for + against + abstain ≤ present ≤ entitled; present/entitled ≥ quorum (at least 2/3);
    for/present > majority (at least 1/2); record_date ≤ meeting_on; the meeting after the year."""
    entitled, present = int(vote["entitled"]), int(vote["present"])
    votes_for, against, abstain = int(vote["for"]), int(vote["against"]), int(vote["abstain"])
    meeting_on = date.fromisoformat(vote["meeting_on"])
    if present > entitled:
        return "invalid_vote", "vote.present", f"{present} present is more than the {entitled} entitled"
    if votes_for + against + abstain > present:
        return ("invalid_vote", "vote.for", f"for + against + abstain = {votes_for + against + abstain} is more "
                f"than the {present} present")
    if meeting_on <= date(year, 12, 31):
        return "invalid_vote", "vote.meeting_on", f"the meeting on {meeting_on} is not after the year {year}"
    if meeting_on < record_date:
        return "invalid_vote", "vote.meeting_on", f"the meeting on {meeting_on} is before the record date {record_date}"
    if Fraction(present, entitled) < rules.quorum or 3 * present < 2 * entitled:
        return ("no_quorum", "vote.present", f"{present} of {entitled} present is short of the quorum "
                f"({rules.quorum.numerator}/{rules.quorum.denominator} of those entitled)")
    if present == 0 or Fraction(votes_for, present) <= rules.majority or 2 * votes_for <= present:
        return ("no_majority", "vote.for", f"{votes_for} for of {present} present is not more than "
                f"{rules.majority.numerator}/{rules.majority.denominator} of those present")
    return None


def default_prefix(collective_id: str) -> str:
    """A certificate prefix from the collective's id: upper case, at most 30 characters, no trailing '-'."""
    return collective_id.upper()[:30].rstrip("-")


def certificate_number(prefix: str, issued_on: date, ordinal: int) -> str:
    """``<PREFIX>-<year>-<NNNN>``: NNNN counts the collective's certificates, 1, 2, 3 …"""
    return f"{prefix}-{issued_on.year:04d}-{ordinal:04d}"
