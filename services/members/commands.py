"""The commands of the members service: what a request asks for, parsed (wire strings kept), with the ids it
creates already chosen by the API and the caller's name where an event records it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SetCharter:
    """PUT /v1/collectives/{collective_id}/charter."""

    collective_id: str
    share_kinds: Sequence[Mapping[str, str]]  # [{kind, name, weight}]
    reserve_rate_min: str
    shares_fixed_on: str | None
    quorum: str
    majority: str
    adopted_on: str


@dataclass(frozen=True)
class NewMember:
    member_id: str
    name: str
    relation: str
    born_on: str | None
    joined_on: str


@dataclass(frozen=True)
class RegisterHousehold:
    """POST /v1/collectives/{collective_id}/households (members and holdings optional)."""

    collective_id: str
    household_id: str
    head_name: str
    address: str
    registered_on: str
    members: Sequence[NewMember]
    holdings: Mapping[str, str] | None
    effective_on: str


@dataclass(frozen=True)
class RegisterMember:
    """POST /v1/collectives/{collective_id}/households/{household_id}/members."""

    collective_id: str
    household_id: str
    member: NewMember


@dataclass(frozen=True)
class SetHouseholdHoldings:
    """PUT /v1/collectives/{collective_id}/households/{household_id}/holdings (before the shares were fixed)."""

    collective_id: str
    household_id: str
    holdings: Mapping[str, str]
    effective_on: str


@dataclass(frozen=True)
class TransferShares:
    """POST /v1/collectives/{collective_id}/share-transfers."""

    collective_id: str
    transfer_id: str
    from_household: str
    to_household: str
    kind: str
    shares: str
    effective_on: str
    reason: str
    note: str


@dataclass(frozen=True)
class IssueCertificate:
    """POST /v1/collectives/{collective_id}/households/{household_id}/certificates."""

    collective_id: str
    household_id: str
    issued_on: str
    prefix: str | None


@dataclass(frozen=True)
class PlanFigures:
    """What a plan is asked for (POST …/plans/preview and POST …/plans): amounts in yuan, the rate a decimal."""

    collective_id: str
    year: int
    reserve_rate: str
    welfare: str
    members_total: str
    record_date: str


@dataclass(frozen=True)
class ProposePlan:
    figures: PlanFigures
    plan_id: str | None
    proposed_by: str  # the caller's actor name


@dataclass(frozen=True)
class ApprovePlan:
    collective_id: str
    plan_id: str
    vote: Mapping[str, Any]  # {body, meeting_on, entitled, present, for, against, abstain}
    approved_by: str


@dataclass(frozen=True)
class PayHousehold:
    """POST …/plans/{plan_id}/payments (``payment_id``: given, or chosen by the API)."""

    collective_id: str
    plan_id: str
    payment_id: str
    household_id: str
    amount: str
    paid_on: str
    bank_reference: str


@dataclass(frozen=True)
class CancelPlan:
    collective_id: str
    plan_id: str
    reason: str
