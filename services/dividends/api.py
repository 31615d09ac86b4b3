# mypy: disable-error-code="untyped-decorator"
# (flask-smorest ships no type hints: its route/arguments/response decorators are untyped.)
"""The dividends HTTP API: policies, distributions, approvals, payments and the queries on them.

Thin handlers: parse -> authorize -> check against the projection -> publish -> render.
Every write runs under the service's writer lock (``idempotent``); a declaration first
waits until the projection has consumed its input topics up to their current end.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from flask_smorest import Blueprint

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_INVESTMENTS
from services.dividends import projection as views
from services.dividends.bounds import out_of_range
from services.dividends.domain import DistributionResult, DistributionRuleError, Policy
from services.dividends.inputs import (
    INPUT_TOPICS,
    allocation_event_data,
    compute_from_log,
    declared_event_data,
    positions_to_wire,
)
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
from services.runtime.http import ApiError, Publisher, fresh_uuid, idempotent, principal, service
from services.runtime.service import NewEvent

BOARD = ("board",)
READERS = ("board", "auditor")


def _not_found(what: str, field: str, value: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} {value!r}", field)


def _require_project(project_id: str) -> None:
    with service().store.reading() as conn:
        if views.project_exists(conn, project_id):
            return
    # The ledger may have registered it a moment ago: catch up with its topic once before saying 404.
    service().sync([LEDGER_INVESTMENTS])
    with service().store.reading() as conn:
        if not views.project_exists(conn, project_id):
            raise _not_found("project", "project_id", project_id)


def _distribution(distribution_id: str) -> dict[str, Any]:
    with service().store.reading() as conn:
        body = views.distribution_body(conn, distribution_id)
    if body is None:
        raise _not_found("distribution", "distribution_id", distribution_id)
    return body


def _new_id(prefix: str) -> str:
    """A fresh id: derived from the bound Idempotency-Key when there is one (a retry gets the same), else random."""
    return f"{prefix}-{fresh_uuid(prefix).hex}"


def _distribution_id(project_id: str, period_start: str, period_end: str) -> str:
    """``{project}-{start}-{end}`` (shortened with a hash past 60 characters), then -2, -3 … if taken."""
    base = f"{project_id}-{period_start}-{period_end}"
    if len(base) > 60:
        base = f"{project_id[:44].rstrip('-')}-{hashlib.sha256(base.encode()).hexdigest()[:12]}"
    candidate, n = base, 1
    with service().store.reading() as conn:
        while views.distribution_row(conn, candidate) is not None:
            n += 1
            candidate = f"{base}-{n}"
    return candidate


def _policy_in_force(project_id: str) -> dict[str, Any]:
    with service().store.reading() as conn:
        found = views.current_policy(conn, project_id)
    if found is None:
        raise ApiError(422, "no_policy", f"project {project_id!r} has no distribution policy yet "
                       "(PUT /v1/projects/{project_id}/policy)", "project_id")
    return found[0]


def _compute(project_id: str, period_start: str, period_end: str,
             policy: dict[str, Any]) -> tuple[DistributionResult, dict[str, dict[str, int]]]:
    """DESIGN §6 over every input record consumed up to the current end of the input topics."""
    svc = service()
    # A rent acknowledged a moment ago is on the broker: wait until the projection has it.
    positions = positions_to_wire(svc.sync(list(INPUT_TOPICS)))
    with svc.store.reading() as conn:
        records = views.input_records(conn, project_id)
        # The late items of DESIGN §6 step 1: those of the non-cancelled distributions not taken yet.
        earlier = views.earlier_distributions(conn, project_id)
    try:
        result = compute_from_log(records, project_id=project_id, period_start=date.fromisoformat(period_start),
                                  period_end=date.fromisoformat(period_end), policy=Policy.from_wire(policy),
                                  input_positions=positions, earlier=earlier)
    except DistributionRuleError as exc:
        raise ApiError(422, "not_distributable", str(exc), "period_start") from None
    too_big = out_of_range(result)
    if too_big is not None:  # DESIGN §3: refused now, never a failure when the event is published
        raise ApiError(422, "amount_out_of_range", too_big[1], "period_end", errors={too_big[0]: [too_big[1]]})
    return result, positions


def _preview_body(project_id: str, result: DistributionResult, policy: dict[str, Any],
                  positions: dict[str, dict[str, int]]) -> dict[str, Any]:
    data = declared_event_data(distribution_id="preview", project_id=project_id, policy=policy, result=result,
                               input_positions=positions)
    del data["distribution_id"]
    allocations = [{**allocation_event_data(distribution_id="preview", project_id=project_id, allocation=a),
                    "paid": False, "payment": None} for a in result.allocations]
    for a in allocations:
        del a["distribution_id"], a["project_id"]
    return {**data, "status": "preview", "allocations": allocations}


def _check_status(body: dict[str, Any], wanted: str, action: str) -> None:
    if body["status"] != wanted:
        raise ApiError(409, "invalid_status", f"distribution {body['distribution_id']!r} is {body['status']}; "
                       f"only a {wanted} distribution can be {action}", "distribution_id")


def make_blueprint() -> Blueprint:
    """The /v1 routes of the dividends service."""
    blp = Blueprint("dividends", __name__, url_prefix="/v1",
                    description="Distribution policies, distributions, allocations and dividend payments.")

    @blp.before_request
    def _authenticate() -> None:
        principal()  # 401 before anything else, even a malformed body

    # -- policies --------------------------------------------------------------------------------------

    def render_policy(result: dict[str, Any]) -> dict[str, Any]:
        project_id, version = result["project_id"], result["version"]
        with service().store.reading() as conn:
            policy = views.policy_version(conn, project_id, version)
        return {"policy": policy, "version": version}

    @blp.route("/projects/<project_id>/policy", methods=["PUT"])
    @blp.arguments(PolicyRequest)
    @blp.response(200, PolicyResponse)
    def set_policy(args: dict[str, Any], project_id: str) -> Any:
        """Set the project's distribution policy (a new version; the same policy again changes nothing)."""
        principal().require(BOARD, project=project_id)
        data = {"project_id": project_id, **args}
        try:
            Policy.from_wire(data)
        except DistributionRuleError as exc:
            raise ApiError(422, "validation_error", str(exc), "payout_ratio") from None

        def write(publish: Publisher) -> dict[str, Any]:
            _require_project(project_id)
            with service().store.reading() as conn:
                current = views.current_policy(conn, project_id)
            if current is not None and current[0] == data:
                return {"project_id": project_id, "version": current[1]}
            version = current[1] + 1 if current else 1
            return publish([NewEvent("PolicySet", project_id, data)], {"project_id": project_id, "version": version})

        return idempotent(data, write, render_policy)

    @blp.route("/projects/<project_id>/policy", methods=["GET"])
    @blp.response(200, PolicyResponse)
    def get_policy(project_id: str) -> Any:
        """The policy in force and its version."""
        principal().require(READERS, project=project_id)
        _require_project(project_id)
        with service().store.reading() as conn:
            found = views.current_policy(conn, project_id)
        if found is None:
            raise _not_found("policy for project", "project_id", project_id)
        return {"policy": found[0], "version": found[1]}

    # -- distributions ---------------------------------------------------------------------------------

    @blp.route("/projects/<project_id>/distributions/preview", methods=["POST"])
    @blp.arguments(PeriodRequest)
    @blp.response(200, PreviewBody)
    def preview(args: dict[str, Any], project_id: str) -> Any:
        """Compute a distribution as a declaration would now, and publish nothing."""
        principal().require(READERS, project=project_id)
        _require_project(project_id)
        policy = _policy_in_force(project_id)
        result, positions = _compute(project_id, args["period_start"], args["period_end"], policy)
        return _preview_body(project_id, result, policy, positions)

    @blp.route("/projects/<project_id>/distributions", methods=["POST"])
    @blp.arguments(DeclareRequest)
    @blp.response(201, DistributionBody)
    def declare(args: dict[str, Any], project_id: str) -> Any:
        """Declare a distribution: DistributionDeclared and one DividendAllocated per investor with capital."""
        principal().require(BOARD, project=project_id)
        body = {"project_id": project_id, **args}
        start, end = args["period_start"], args["period_end"]

        def write(publish: Publisher) -> dict[str, Any]:
            _require_project(project_id)
            policy = _policy_in_force(project_id)
            with service().store.reading() as conn:
                clash = views.overlapping(conn, project_id, start, end)
                wanted = args["distribution_id"]
                taken = wanted is not None and views.distribution_row(conn, wanted) is not None
            if clash is not None:
                raise ApiError(409, "overlapping_period", f"the period overlaps distribution {clash!r} of "
                               f"{project_id!r}; cancel it first or choose another period", "period_start")
            if taken:
                raise ApiError(409, "already_exists", f"distribution {wanted!r} already exists", "distribution_id")
            distribution_id = wanted or _distribution_id(project_id, start, end)
            result, positions = _compute(project_id, start, end, policy)
            events = [NewEvent("DistributionDeclared", project_id, declared_event_data(
                distribution_id=distribution_id, project_id=project_id, policy=policy, result=result,
                input_positions=positions))]
            events += [NewEvent("DividendAllocated", project_id, allocation_event_data(
                distribution_id=distribution_id, project_id=project_id, allocation=a)) for a in result.allocations]
            return publish(events, {"distribution_id": distribution_id})

        return idempotent(body, write, lambda result: _distribution(result["distribution_id"]))

    @blp.route("/projects/<project_id>/distributions", methods=["GET"])
    @blp.response(200, DistributionList)
    def list_distributions(project_id: str) -> Any:
        """Every distribution of the project (cancelled ones too), by period."""
        principal().require(READERS, project=project_id)
        _require_project(project_id)
        with service().store.reading() as conn:
            return {"items": views.project_distributions(conn, project_id)}

    @blp.route("/distributions/<distribution_id>", methods=["GET"])
    @blp.response(200, DistributionBody)
    def get_distribution(distribution_id: str) -> Any:
        """A distribution with its allocations and their payments."""
        body = _distribution(distribution_id)
        principal().require(READERS, project=body["project_id"])
        return body

    @blp.route("/distributions/<distribution_id>/approve", methods=["POST"])
    @blp.arguments(ApproveRequest)
    @blp.response(200, DistributionBody)
    def approve(args: dict[str, Any], distribution_id: str) -> Any:
        """Approve a declared distribution (the ledger books each collective's payout as receivable)."""
        project_id = _distribution(distribution_id)["project_id"]
        who = principal()
        who.require(BOARD, project=project_id)

        def write(publish: Publisher) -> dict[str, Any]:
            _check_status(_distribution(distribution_id), "declared", "approved")
            data = {"distribution_id": distribution_id, "project_id": project_id, "approved_by": who.actor[:100]}
            return publish([NewEvent("DistributionApproved", project_id, data)], {"distribution_id": distribution_id})

        return idempotent({"distribution_id": distribution_id, **args}, write,
                          lambda result: _distribution(result["distribution_id"]))

    @blp.route("/distributions/<distribution_id>/cancel", methods=["POST"])
    @blp.arguments(CancelRequest)
    @blp.response(200, DistributionBody)
    def cancel(args: dict[str, Any], distribution_id: str) -> Any:
        """Cancel a distribution that is not approved yet; its period is free again."""
        project_id = _distribution(distribution_id)["project_id"]
        principal().require(BOARD, project=project_id)

        def write(publish: Publisher) -> dict[str, Any]:
            _check_status(_distribution(distribution_id), "declared", "cancelled")
            data = {"distribution_id": distribution_id, "project_id": project_id, "reason": args["reason"]}
            return publish([NewEvent("DistributionCancelled", project_id, data)],
                           {"distribution_id": distribution_id})

        return idempotent({"distribution_id": distribution_id, **args}, write,
                          lambda result: _distribution(result["distribution_id"]))

    # -- payments --------------------------------------------------------------------------------------

    def render_payment(result: dict[str, Any]) -> dict[str, Any]:
        with service().store.reading() as conn:
            row = views.payment_row(conn, result["payment_id"])
        assert row is not None, "a recorded payment is in the projection"
        return {"payment_id": row["payment_id"], "distribution_id": row["distribution_id"],
                "project_id": row["project_id"], "investor_id": row["investor_id"],
                "amount": format_yuan(row["paid_amount"]), "paid_on": row["paid_on"],
                "bank_reference": row["bank_reference"]}

    @blp.route("/distributions/<distribution_id>/payments", methods=["POST"])
    @blp.arguments(PaymentRequest)
    @blp.response(201, PaymentResponse)
    def pay(args: dict[str, Any], distribution_id: str) -> Any:
        """Record the bank payment of one investor's allocation: once, and for exactly its payout."""
        project_id = _distribution(distribution_id)["project_id"]
        principal().require(BOARD, project=project_id)
        investor_id = args["investor_id"]

        def write(publish: Publisher) -> dict[str, Any]:
            _check_status(_distribution(distribution_id), "approved", "paid")
            payment_id = args["payment_id"] or _new_id("pay")
            with service().store.reading() as conn:
                used = views.payment_row(conn, payment_id) is not None
                allocation = views.allocation_row(conn, distribution_id, investor_id)
            if used:
                raise ApiError(409, "already_exists", f"payment {payment_id!r} already exists", "payment_id")
            if allocation is None:
                raise ApiError(422, "unknown_reference", f"{investor_id!r} has no allocation in "
                               f"distribution {distribution_id!r}", "investor_id")
            if allocation["payment_id"] is not None:
                raise ApiError(409, "already_paid", f"the allocation of {investor_id!r} was paid already "
                               f"(payment {allocation['payment_id']!r})", "investor_id")
            amount, payout = parse_yuan(args["amount"]), int(allocation["payout"])
            if amount > payout:
                raise ApiError(422, "exceeds_allocation", f"{args['amount']} is more than the allocated payout "
                               f"{format_yuan(payout)}", "amount")
            if amount != payout:
                raise ApiError(422, "partial_payment", f"an allocation is paid once, in full: the amount must "
                               f"be {format_yuan(payout)}", "amount")
            data = {"payment_id": payment_id, "distribution_id": distribution_id, "project_id": project_id,
                    "investor_id": investor_id, "amount": args["amount"], "paid_on": args["paid_on"],
                    "bank_reference": args["bank_reference"]}
            return publish([NewEvent("DividendPaid", project_id, data)], {"payment_id": payment_id})

        return idempotent({"distribution_id": distribution_id, **args}, write, render_payment)

    # -- queries ---------------------------------------------------------------------------------------

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
        with service().store.reading() as conn:
            items = views.investor_dividends(conn, investor_id, args["year"])
        if who.role == "board":
            items = [i for i in items if who.can_read(project=i["project_id"])]
        return {"items": items,
                "total_payout": format_yuan(sum(parse_yuan(i["payout"]) for i in items)),
                "total_paid": format_yuan(sum(parse_yuan(i["payment"]["amount"]) for i in items if i["paid"]))}

    @blp.route("/allocations/unpaid", methods=["GET"])
    @blp.arguments(UnpaidQuery, location="query")
    @blp.response(200, UnpaidList)
    def unpaid(args: dict[str, Any]) -> Any:
        """Allocations of approved distributions still waiting for their payment."""
        who = principal()
        project_id = args["project_id"]
        who.require(READERS, project=project_id)
        if project_id is not None:
            _require_project(project_id)
        with service().store.reading() as conn:
            items = views.unpaid_allocations(conn, project_id)
        if who.role == "board":
            items = [i for i in items if who.can_read(project=i["project_id"])]
        return {"items": items, "total_unpaid": format_yuan(sum(parse_yuan(i["payout"]) for i in items))}

    return blp
