"""The dividends service's decisions: every check and refusal of a command, and the events it publishes.

Pure, in the shape of :mod:`services.runtime.handling`: ``handle_x(command, reads) -> Decision``, or
``Refused``. The API calls them inside the writer lock (the preview outside it: it publishes nothing).
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from services.contracts.money import format_yuan, parse_yuan
from services.dividends.bounds import out_of_range
from services.dividends.commands import (
    ApproveDistribution,
    CancelDistribution,
    DeclareDistribution,
    PayAllocation,
    PreviewDistribution,
    SetPolicy,
)
from services.dividends.domain import DistributionRuleError, Policy
from services.dividends.inputs import allocation_event_data, compute_from_log, declared_event_data
from services.dividends.reads import DividendsReads
from services.runtime.handling import Decision, Refused
from services.runtime.service import NewEvent

# -- policies ----------------------------------------------------------------------------------------------


def handle_set_policy(command: SetPolicy, reads: DividendsReads) -> Decision:
    """PolicySet, as a new version; the policy in force again publishes nothing and keeps its version."""
    project_id = command.project_id
    data = {"project_id": project_id, "management_fee_rate": command.management_fee_rate,
            "tax_rate": command.tax_rate, "payout_ratio": command.payout_ratio,
            "guaranteed_rate": command.guaranteed_rate, "guarantee_until": command.guarantee_until,
            "guarantor_id": command.guarantor_id}
    try:
        Policy.from_wire(data)
    except DistributionRuleError as exc:
        raise Refused(422, "validation_error", str(exc), "payout_ratio") from None
    reads.require_project(project_id)
    current = reads.current_policy(project_id)
    if current is not None and current[0] == data:
        return Decision(events=(), result={"project_id": project_id, "version": current[1]})
    version = current[1] + 1 if current else 1
    return Decision(events=[NewEvent("PolicySet", project_id, data)],
                    result={"project_id": project_id, "version": version})


def _policy_in_force(reads: DividendsReads, project_id: str) -> dict[str, Any]:
    found = reads.current_policy(project_id)
    if found is None:
        raise Refused(422, "no_policy", f"project {project_id!r} has no distribution policy yet "
                      "(PUT /v1/projects/{project_id}/policy)", "project_id")
    return found[0]


# -- distributions -----------------------------------------------------------------------------------------


def handle_preview(command: PreviewDistribution, reads: DividendsReads) -> Decision:
    """What a declaration would publish now, published by nobody: no events; ``result["would_publish"]``
    holds DistributionDeclared and the DividendAllocated events, with ``distribution_id`` ``"preview"``."""
    reads.require_project(command.project_id)
    policy = _policy_in_force(reads, command.project_id)
    events = _declaration(reads, command.project_id, "preview", command.period_start, command.period_end, policy)
    return Decision(events=(), result={"would_publish": events})


def handle_declare(command: DeclareDistribution, reads: DividendsReads) -> Decision:
    """DistributionDeclared and one DividendAllocated per investor with capital in the period (DESIGN §6)."""
    project_id, start, end = command.project_id, command.period_start, command.period_end
    reads.require_project(project_id)
    policy = _policy_in_force(reads, project_id)
    clash = reads.overlapping(project_id, start, end)
    if clash is not None:
        raise Refused(409, "overlapping_period", f"the period overlaps distribution {clash!r} of "
                      f"{project_id!r}; cancel it first or choose another period", "period_start")
    wanted = command.distribution_id
    if wanted is not None and reads.distribution_exists(wanted):
        raise Refused(409, "already_exists", f"distribution {wanted!r} already exists", "distribution_id")
    distribution_id = wanted or _distribution_id(reads, project_id, start, end)
    events = _declaration(reads, project_id, distribution_id, start, end, policy)
    return Decision(events=events, result={"distribution_id": distribution_id})


def _distribution_id(reads: DividendsReads, project_id: str, period_start: str, period_end: str) -> str:
    """``{project}-{start}-{end}`` (shortened with a hash past 60 characters), then -2, -3 … if taken."""
    base = f"{project_id}-{period_start}-{period_end}"
    if len(base) > 60:
        base = f"{project_id[:44].rstrip('-')}-{hashlib.sha256(base.encode()).hexdigest()[:12]}"
    candidate, n = base, 1
    while reads.distribution_exists(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _declaration(reads: DividendsReads, project_id: str, distribution_id: str, period_start: str,
                 period_end: str, policy: dict[str, Any]) -> list[NewEvent]:
    """DESIGN §6 over every input record consumed up to the current end of the input topics, as events."""
    inputs = reads.declaration_inputs(project_id)
    try:
        result = compute_from_log(inputs.records, project_id=project_id,
                                  period_start=date.fromisoformat(period_start),
                                  period_end=date.fromisoformat(period_end), policy=Policy.from_wire(policy),
                                  input_positions=inputs.positions, earlier=inputs.earlier)
    except DistributionRuleError as exc:
        raise Refused(422, "not_distributable", str(exc), "period_start") from None
    too_big = out_of_range(result)
    if too_big is not None:  # DESIGN §3: refused now, never a failure when the event is published
        raise Refused(422, "amount_out_of_range", too_big[1], "period_end", errors={too_big[0]: [too_big[1]]})
    declared = declared_event_data(distribution_id=distribution_id, project_id=project_id, policy=policy,
                                   result=result, input_positions=inputs.positions)
    return [NewEvent("DistributionDeclared", project_id, declared),
            *(NewEvent("DividendAllocated", project_id, allocation_event_data(
                distribution_id=distribution_id, project_id=project_id, allocation=a)) for a in result.allocations)]


def _in_status(reads: DividendsReads, distribution_id: str, wanted: str, action: str) -> dict[str, Any]:
    """The distribution, if it is ``wanted`` (409 if not)."""
    body = reads.distribution(distribution_id)
    if body["status"] != wanted:
        raise Refused(409, "invalid_status", f"distribution {distribution_id!r} is {body['status']}; "
                      f"only a {wanted} distribution can be {action}", "distribution_id")
    return body


def handle_approve(command: ApproveDistribution, reads: DividendsReads) -> Decision:
    """DistributionApproved of a declared distribution (the ledger books the payouts as receivable)."""
    project_id = _in_status(reads, command.distribution_id, "declared", "approved")["project_id"]
    data = {"distribution_id": command.distribution_id, "project_id": project_id,
            "approved_by": command.approved_by[:100]}
    return Decision(events=[NewEvent("DistributionApproved", project_id, data)],
                    result={"distribution_id": command.distribution_id})


def handle_cancel(command: CancelDistribution, reads: DividendsReads) -> Decision:
    """DistributionCancelled of a declared distribution: its period is free again."""
    project_id = _in_status(reads, command.distribution_id, "declared", "cancelled")["project_id"]
    data = {"distribution_id": command.distribution_id, "project_id": project_id, "reason": command.reason}
    return Decision(events=[NewEvent("DistributionCancelled", project_id, data)],
                    result={"distribution_id": command.distribution_id})


# -- payments ----------------------------------------------------------------------------------------------


def handle_pay(command: PayAllocation, reads: DividendsReads) -> Decision:
    """DividendPaid: one allocation of an approved distribution, once, and for exactly its payout."""
    distribution_id, payment_id, investor_id = command.distribution_id, command.payment_id, command.investor_id
    project_id = _in_status(reads, distribution_id, "approved", "paid")["project_id"]
    if reads.payment(payment_id) is not None:
        raise Refused(409, "already_exists", f"payment {payment_id!r} already exists", "payment_id")
    allocation = reads.allocation(distribution_id, investor_id)
    if allocation is None:
        raise Refused(422, "unknown_reference", f"{investor_id!r} has no allocation in "
                      f"distribution {distribution_id!r}", "investor_id")
    if allocation.payment_id is not None:
        raise Refused(409, "already_paid", f"the allocation of {investor_id!r} was paid already "
                      f"(payment {allocation.payment_id!r})", "investor_id")
    amount = parse_yuan(command.amount)
    if amount > allocation.payout:
        raise Refused(422, "exceeds_allocation", f"{command.amount} is more than the allocated payout "
                      f"{format_yuan(allocation.payout)}", "amount")
    if amount != allocation.payout:
        raise Refused(422, "partial_payment", f"an allocation is paid once, in full: the amount must "
                      f"be {format_yuan(allocation.payout)}", "amount")
    data = {"payment_id": payment_id, "distribution_id": distribution_id, "project_id": project_id,
            "investor_id": investor_id, "amount": command.amount, "paid_on": command.paid_on,
            "bank_reference": command.bank_reference}
    return Decision(events=[NewEvent("DividendPaid", project_id, data)], result={"payment_id": payment_id})
