"""The commands of the dividends service: what a request asks for, parsed (wire strings kept), with the
ids it creates already chosen by the API and the caller's name where an event records it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SetPolicy:
    """PUT /v1/projects/{project_id}/policy (rates as decimal strings)."""

    project_id: str
    management_fee_rate: str
    tax_rate: str
    payout_ratio: str
    guaranteed_rate: str
    guarantee_until: str | None
    guarantor_id: str | None


@dataclass(frozen=True)
class PreviewDistribution:
    """POST /v1/projects/{project_id}/distributions/preview: an inclusive period (ISO dates)."""

    project_id: str
    period_start: str
    period_end: str


@dataclass(frozen=True)
class DeclareDistribution:
    """POST /v1/projects/{project_id}/distributions (``distribution_id``: the one asked for, if any)."""

    project_id: str
    period_start: str
    period_end: str
    distribution_id: str | None


@dataclass(frozen=True)
class ApproveDistribution:
    distribution_id: str
    approved_by: str  # the caller's actor name


@dataclass(frozen=True)
class CancelDistribution:
    distribution_id: str
    reason: str


@dataclass(frozen=True)
class PayAllocation:
    """POST /v1/distributions/{distribution_id}/payments (``payment_id``: given, or chosen by the API)."""

    distribution_id: str
    payment_id: str
    investor_id: str
    amount: str  # yuan
    paid_on: str
    bank_reference: str
