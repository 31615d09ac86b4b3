# mypy: disable-error-code="untyped-decorator"
# (flask-smorest ships no type hints: its route/arguments/response decorators are untyped.)
"""The dividends HTTP API: policies, distributions, approvals, payments and the queries on them.

HTTP only: parse -> authorize -> ``idempotent(body, write, render)``, where ``write`` is the
command's handler (:mod:`services.dividends.handlers`, inside the writer lock) -> render from the
reads (:mod:`services.dividends.reads`). A declaration's handler first waits until the projection
has consumed its input topics up to their current end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from services.dividends import handlers
from services.dividends.commands import (
    ApproveDistribution,
    CancelDistribution,
    DeclareDistribution,
    PayAllocation,
    PreviewDistribution,
    SetPolicy,
)
from services.dividends.reads import DividendsReads, total, unknown
from services.dividends.schemas import (
    ApproveRequest,
    CancelRequest,
    DeclareRequest,
    DistributionBody,
    DistributionList,
    DividendList,
    DividendsQuery,
    PaymentRequest,
    PaymentResponse,
    PeriodRequest,
    PolicyRequest,
    PolicyResponse,
    PreviewBody,
    UnpaidList,
    UnpaidQuery,
)
from services.runtime.auth import Forbidden
from services.runtime.handling import Decision
from services.runtime.http import Publisher, decided, fresh_uuid, idempotent, principal, service
from services.runtime.openapi import Blueprint
from services.runtime.service import NewEvent

BOARD = ("board",)
READERS = ("board", "auditor")

blp = Blueprint("dividends", __name__, url_prefix="/v1",
                description="Distribution policies, distributions, allocations and dividend payments.")

Command = TypeVar("Command")


def _reads() -> DividendsReads:
    svc = service()
    return DividendsReads(svc.store, svc.sync)


def _decide(handler: Callable[[Command, DividendsReads], Decision], command: Command
            ) -> Callable[[Publisher], dict[str, Any]]:
    """``idempotent``'s write: the handler's decision on this service's reads, published."""
    return decided(handler, command, _reads)


def _render_distribution(result: dict[str, Any]) -> dict[str, Any]:
    return _reads().distribution(result["distribution_id"])


# -- policies ----------------------------------------------------------------------------------------------


def _render_policy(result: dict[str, Any]) -> dict[str, Any]:
    project_id, version = result["project_id"], result["version"]
    return {"policy": _reads().policy_version(project_id, version), "version": version}


@blp.route("/projects/<project_id>/policy", methods=["PUT"])
@blp.arguments(PolicyRequest)
@blp.response(200, PolicyResponse)
def set_policy(args: dict[str, Any], project_id: str) -> Any:
    """Set the project's distribution policy (a new version; the same policy again changes nothing)."""
    principal().require(BOARD, project=project_id)
    command = SetPolicy(project_id=project_id, **args)
    return idempotent({"project_id": project_id, **args}, _decide(handlers.handle_set_policy, command),
                      _render_policy)


@blp.route("/projects/<project_id>/policy", methods=["GET"])
@blp.response(200, PolicyResponse)
def get_policy(project_id: str) -> Any:
    """The policy in force and its version."""
    principal().require(READERS, project=project_id)
    reads = _reads()
    reads.require_project(project_id)
    found = reads.current_policy(project_id)
    if found is None:
        raise unknown("policy for project", "project_id", project_id)
    return {"policy": found[0], "version": found[1]}


# -- distributions -----------------------------------------------------------------------------------------


def _render_preview(events: list[NewEvent]) -> dict[str, Any]:
    """The events a declaration would publish now, as one body (``status``: ``preview``, no ids)."""
    declared, *allocated = events
    body = {k: v for k, v in declared.data.items() if k != "distribution_id"}
    allocations = [{**{k: v for k, v in e.data.items() if k not in ("distribution_id", "project_id")},
                    "paid": False, "payment": None} for e in allocated]
    return {**body, "status": "preview", "allocations": allocations}


@blp.route("/projects/<project_id>/distributions/preview", methods=["POST"])
@blp.arguments(PeriodRequest)
@blp.response(200, PreviewBody)
def preview(args: dict[str, Any], project_id: str) -> Any:
    """Compute a distribution as a declaration would now, and publish nothing."""
    principal().require(READERS, project=project_id)
    decision = handlers.handle_preview(PreviewDistribution(project_id=project_id, **args), _reads())
    return _render_preview(decision.result["would_publish"])


@blp.route("/projects/<project_id>/distributions", methods=["POST"])
@blp.arguments(DeclareRequest)
@blp.response(201, DistributionBody)
def declare(args: dict[str, Any], project_id: str) -> Any:
    """Declare a distribution: DistributionDeclared and one DividendAllocated per investor with capital."""
    principal().require(BOARD, project=project_id)
    command = DeclareDistribution(project_id=project_id, **args)
    return idempotent({"project_id": project_id, **args}, _decide(handlers.handle_declare, command),
                      _render_distribution)


@blp.route("/projects/<project_id>/distributions", methods=["GET"])
@blp.response(200, DistributionList)
def list_distributions(project_id: str) -> Any:
    """Every distribution of the project (cancelled ones too), by period."""
    principal().require(READERS, project=project_id)
    reads = _reads()
    reads.require_project(project_id)
    return {"items": reads.project_distributions(project_id)}


@blp.route("/distributions/<distribution_id>", methods=["GET"])
@blp.response(200, DistributionBody)
def get_distribution(distribution_id: str) -> Any:
    """A distribution with its allocations and their payments."""
    body = _reads().distribution(distribution_id)
    principal().require(READERS, project=body["project_id"])
    return body


@blp.route("/distributions/<distribution_id>/approve", methods=["POST"])
@blp.arguments(ApproveRequest)
@blp.response(200, DistributionBody)
def approve(args: dict[str, Any], distribution_id: str) -> Any:
    """Approve a declared distribution (the ledger books each collective's payout as receivable)."""
    who = principal()
    who.require(BOARD, project=_reads().distribution(distribution_id)["project_id"])
    command = ApproveDistribution(distribution_id=distribution_id, approved_by=who.actor)
    return idempotent({"distribution_id": distribution_id, **args}, _decide(handlers.handle_approve, command),
                      _render_distribution)


@blp.route("/distributions/<distribution_id>/cancel", methods=["POST"])
@blp.arguments(CancelRequest)
@blp.response(200, DistributionBody)
def cancel(args: dict[str, Any], distribution_id: str) -> Any:
    """Cancel a distribution that is not approved yet; its period is free again."""
    principal().require(BOARD, project=_reads().distribution(distribution_id)["project_id"])
    command = CancelDistribution(distribution_id=distribution_id, reason=args["reason"])
    return idempotent({"distribution_id": distribution_id, **args}, _decide(handlers.handle_cancel, command),
                      _render_distribution)


# -- payments ----------------------------------------------------------------------------------------------


def _render_payment(result: dict[str, Any]) -> dict[str, Any]:
    payment = _reads().payment(result["payment_id"])
    assert payment is not None, "a recorded payment is in the projection"
    return payment


@blp.route("/distributions/<distribution_id>/payments", methods=["POST"])
@blp.arguments(PaymentRequest)
@blp.response(201, PaymentResponse)
def pay(args: dict[str, Any], distribution_id: str) -> Any:
    """Record the bank payment of one investor's allocation: once, and for exactly its payout."""
    principal().require(BOARD, project=_reads().distribution(distribution_id)["project_id"])
    # A fresh id: derived from the bound Idempotency-Key when there is one (a retry gets the same), else random.
    payment_id = args["payment_id"] or f"pay-{fresh_uuid('pay').hex}"
    command = PayAllocation(distribution_id=distribution_id, **{**args, "payment_id": payment_id})
    return idempotent({"distribution_id": distribution_id, **args}, _decide(handlers.handle_pay, command),
                      _render_payment)


# -- queries -----------------------------------------------------------------------------------------------


@blp.route("/investors/<investor_id>/dividends", methods=["GET"])
@blp.arguments(DividendsQuery, location="query")
@blp.response(200, DividendList)
def investor_dividends(args: dict[str, Any], investor_id: str) -> Any:
    """An investor's allocations across projects and years (cancelled distributions left out)."""
    who = principal()
    if who.role == "accountant":
        who.require(("accountant",), collective=investor_id)
    elif who.role not in ("board", "auditor", "admin"):
        raise Forbidden(f"role {who.role!r} may not read dividends")
    items = _reads().investor_dividends(investor_id, args["year"])
    if who.role == "board":
        items = [i for i in items if who.can_read(project=i["project_id"])]
    return {"items": items, "total_payout": total(i["payout"] for i in items),
            "total_paid": total(i["payment"]["amount"] for i in items if i["paid"])}


@blp.route("/allocations/unpaid", methods=["GET"])
@blp.arguments(UnpaidQuery, location="query")
@blp.response(200, UnpaidList)
def unpaid(args: dict[str, Any]) -> Any:
    """Allocations of approved distributions still waiting for their payment."""
    who = principal()
    project_id = args["project_id"]
    who.require(READERS, project=project_id)
    reads = _reads()
    if project_id is not None:
        reads.require_project(project_id)
    items = reads.unpaid_allocations(project_id)
    if who.role == "board":
        items = [i for i in items if who.can_read(project=i["project_id"])]
    return {"items": items, "total_unpaid": total(i["payout"] for i in items)}
