# mypy: disable-error-code="untyped-decorator"
# (flask-smorest ships no type hints: its route/arguments/response decorators are untyped.)
"""The members HTTP API (DESIGN §11): the charter, households, shares, certificates and distribution plans.

HTTP only: parse -> authorize -> ``idempotent(body, write, render)``, where ``write`` is the command's handler
(:mod:`services.members.handlers`, inside the writer lock) -> render from the reads (:mod:`services.members.reads`).

Who: a collective's ``accountant`` writes and reads its register and plans; a ``board`` whose scope lists the
collective reads them and approves plans; the ``auditor`` and the ``admin`` read (the admin may do anything).
Every route names the collective, so a token scoped to another village is refused (403) before anything is
read; a plan or household of another village under one's own collective is simply not found (404).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from services.members import handlers
from services.members.commands import (
    ApprovePlan,
    CancelPlan,
    IssueCertificate,
    NewMember,
    PayHousehold,
    PlanFigures,
    ProposePlan,
    RegisterHousehold,
    RegisterMember,
    SetCharter,
    SetHouseholdHoldings,
    TransferShares,
)
from services.members.reads import MembersReads
from services.members.schemas import (
    ApproveRequest,
    CancelRequest,
    CertificateRequest,
    CertificateResponse,
    CharterBody,
    CharterRequest,
    HoldingsRequest,
    HouseholdBody,
    HouseholdList,
    HouseholdRequest,
    MemberRequest,
    MemberResponse,
    NoticeBody,
    OnQuery,
    PaymentRequest,
    PaymentResponse,
    PlanBody,
    PlanList,
    PlanRequest,
    PreviewBody,
    ProposeRequest,
    TransferRequest,
    TransferResponse,
)
from services.runtime.handling import Decision
from services.runtime.http import Publisher, decided, fresh_uuid, idempotent, principal, service
from services.runtime.openapi import Blueprint
from services.runtime.service import NewEvent

#: Who writes a collective's register and plans: its accountants (and the admin).
WRITERS = ("accountant",)
#: Who approves a plan: the board of the collective (and the admin).
APPROVERS = ("board",)
#: Who reads them: its accountants and boards, the auditor (and the admin).
READERS = ("accountant", "board", "auditor")

blp = Blueprint("members", __name__, url_prefix="/v1",
                description="A village's charter, member households, shares and distribution plans (DESIGN §11).")

Command = TypeVar("Command")


def _reads() -> MembersReads:
    svc = service()
    return MembersReads(svc.store, svc.sync)


def _decide(handler: Callable[[Command, MembersReads], Decision], command: Command
            ) -> Callable[[Publisher], dict[str, Any]]:
    """``idempotent``'s write: the handler's decision on this service's reads, published."""
    return decided(handler, command, _reads)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _new_id(prefix: str, qualifier: str) -> str:
    """A fresh id (derived from the bound Idempotency-Key when there is one, so a retry gets the same)."""
    return f"{prefix}-{fresh_uuid(qualifier).hex[:16]}"


# -- the charter ---------------------------------------------------------------------------------------------


def _render_charter(result: dict[str, Any]) -> dict[str, Any]:
    cid = result["collective_id"]
    reads = _reads()
    return {**reads.require_charter(cid), "version": reads.charter_version(cid)}


@blp.route("/collectives/<collective_id>/charter", methods=["PUT"])
@blp.arguments(CharterRequest)
@blp.response(200, CharterBody)
def set_charter(args: dict[str, Any], collective_id: str) -> Any:
    """Set the collective's charter (章程): share kinds and weights, reserve minimum, shares_fixed_on, quorum,
    majority. The same charter again changes nothing."""
    principal().require(WRITERS, collective=collective_id)
    command = SetCharter(collective_id=collective_id, **args)
    return idempotent({"collective_id": collective_id, **args}, _decide(handlers.handle_set_charter, command),
                      _render_charter)


@blp.route("/collectives/<collective_id>/charter", methods=["GET"])
@blp.response(200, CharterBody)
def get_charter(collective_id: str) -> Any:
    """The collective's charter in force, and its version."""
    principal().require(READERS, collective=collective_id)
    reads = _reads()
    reads.require_collective(collective_id)
    return _render_charter({"collective_id": collective_id})


# -- households ----------------------------------------------------------------------------------------------


def _member(args: dict[str, Any], household_id: str, joined_on: str, n: int) -> NewMember:
    member_id = args["member_id"] or _new_id(f"{household_id[:40]}-m", f"member-{n}")
    return NewMember(member_id=member_id, name=args["name"], relation=args["relation"], born_on=args["born_on"],
                     joined_on=args["joined_on"] or joined_on)


def _render_household(result: dict[str, Any]) -> dict[str, Any]:
    return _reads().household(result["collective_id"], result["household_id"], datetime.now(UTC).date())


@blp.route("/collectives/<collective_id>/households", methods=["POST"])
@blp.arguments(HouseholdRequest)
@blp.response(201, HouseholdBody)
def register_household(args: dict[str, Any], collective_id: str) -> Any:
    """Register a household (户), with its members and holdings if given (holdings only before the shares were
    fixed)."""
    principal().require(WRITERS, collective=collective_id)
    hid = args["household_id"]
    members = tuple(_member(m, hid, args["registered_on"], n) for n, m in enumerate(args["members"]))
    command = RegisterHousehold(collective_id=collective_id, household_id=hid, head_name=args["head_name"],
                                address=args["address"], registered_on=args["registered_on"], members=members,
                                holdings=args["holdings"], effective_on=args["effective_on"] or args["registered_on"])
    return idempotent({"collective_id": collective_id, **args},
                      _decide(handlers.handle_register_household, command), _render_household)


@blp.route("/collectives/<collective_id>/households", methods=["GET"])
@blp.arguments(OnQuery, location="query")
@blp.response(200, HouseholdList)
def list_households(args: dict[str, Any], collective_id: str) -> Any:
    """Every household with its holdings on ``on`` (default today)."""
    principal().require(READERS, collective=collective_id)
    reads = _reads()
    reads.require_collective(collective_id)
    on = args["on"] or _today()
    return {"on": on, "items": reads.households(collective_id, datetime.fromisoformat(on).date())}


@blp.route("/collectives/<collective_id>/households/<household_id>", methods=["GET"])
@blp.arguments(OnQuery, location="query")
@blp.response(200, HouseholdBody)
def get_household(args: dict[str, Any], collective_id: str, household_id: str) -> Any:
    """A household: members, holdings on ``on`` (default today), its history of changes, transfers and
    certificates."""
    principal().require(READERS, collective=collective_id)
    reads = _reads()
    reads.require_collective(collective_id)
    on = args["on"] or _today()
    return reads.household(collective_id, household_id, datetime.fromisoformat(on).date())


@blp.route("/collectives/<collective_id>/households/<household_id>/members", methods=["POST"])
@blp.arguments(MemberRequest)
@blp.response(201, MemberResponse)
def register_member(args: dict[str, Any], collective_id: str, household_id: str) -> Any:
    """Register a member (成员) of a household."""
    principal().require(WRITERS, collective=collective_id)
    member = _member(args, household_id, args["joined_on"] or _today(), 0)
    command = RegisterMember(collective_id=collective_id, household_id=household_id, member=member)

    def render(result: dict[str, Any]) -> dict[str, Any]:
        body = _reads().household(collective_id, household_id, datetime.now(UTC).date())
        found = next(m for m in body["members"] if m["member_id"] == result["member_id"])
        return {"collective_id": collective_id, "household_id": household_id, "member": found}

    return idempotent({"collective_id": collective_id, "household_id": household_id, **args},
                      _decide(handlers.handle_register_member, command), render)


@blp.route("/collectives/<collective_id>/households/<household_id>/holdings", methods=["PUT"])
@blp.arguments(HoldingsRequest)
@blp.response(200, HouseholdBody)
def set_holdings(args: dict[str, Any], collective_id: str, household_id: str) -> Any:
    """Set the household's holdings of every kind from ``effective_on`` (refused on or after shares_fixed_on:
    after that, shares move only by transfers)."""
    principal().require(WRITERS, collective=collective_id)
    command = SetHouseholdHoldings(collective_id=collective_id, household_id=household_id, **args)
    return idempotent({"collective_id": collective_id, "household_id": household_id, **args},
                      _decide(handlers.handle_set_holdings, command), _render_household)


@blp.route("/collectives/<collective_id>/share-transfers", methods=["POST"])
@blp.arguments(TransferRequest)
@blp.response(201, TransferResponse)
def transfer_shares(args: dict[str, Any], collective_id: str) -> Any:
    """Record a transfer of shares between two households of the collective (inheritance, gift, court, other)."""
    principal().require(WRITERS, collective=collective_id)
    transfer_id = args["transfer_id"] or _new_id("tr", "transfer")
    command = TransferShares(collective_id=collective_id, **{**args, "transfer_id": transfer_id})

    def render(result: dict[str, Any]) -> dict[str, Any]:
        body = _reads().household(collective_id, args["from_household"], datetime.now(UTC).date())
        found = next(t for t in body["transfers"] if t["transfer_id"] == result["transfer_id"])
        return {"collective_id": collective_id, **found}

    return idempotent({"collective_id": collective_id, **args}, _decide(handlers.handle_transfer, command), render)


@blp.route("/collectives/<collective_id>/households/<household_id>/certificates", methods=["POST"])
@blp.arguments(CertificateRequest)
@blp.response(201, CertificateResponse)
def issue_certificate(args: dict[str, Any], collective_id: str, household_id: str) -> Any:
    """Issue the household's share certificate (股权证) with its holdings on ``issued_on``; it replaces the
    previous one, and is reissued only when the holdings changed."""
    principal().require(WRITERS, collective=collective_id)
    command = IssueCertificate(collective_id=collective_id, household_id=household_id, **args)
    return idempotent({"collective_id": collective_id, "household_id": household_id, **args},
                      _decide(handlers.handle_issue_certificate, command),
                      lambda result: _reads().certificate(collective_id, result["certificate_no"]))


# -- plans ---------------------------------------------------------------------------------------------------


def _render_plan(result: dict[str, Any]) -> dict[str, Any]:
    return _reads().plan(result["collective_id"], result["plan_id"])


def _render_preview(events: list[NewEvent]) -> dict[str, Any]:
    proposed, *allocated = events
    body = {k: v for k, v in proposed.data.items() if k not in ("plan_id", "proposed_by")}
    allocations = [{**{k: v for k, v in e.data.items() if k not in ("plan_id", "collective_id")},
                    "paid": False, "payment": None} for e in allocated]
    return {**body, "status": "preview", "allocations": allocations}


@blp.route("/collectives/<collective_id>/plans/preview", methods=["POST"])
@blp.arguments(PlanRequest)
@blp.response(200, PreviewBody)
def preview_plan(args: dict[str, Any], collective_id: str) -> Any:
    """Compute a plan as a proposal would now (appropriations and the household split), and publish nothing."""
    principal().require(READERS, collective=collective_id)
    decision = handlers.handle_preview(PlanFigures(collective_id=collective_id, **args), _reads())
    return _render_preview(decision.result["would_publish"])


@blp.route("/collectives/<collective_id>/plans", methods=["POST"])
@blp.arguments(ProposeRequest)
@blp.response(201, PlanBody)
def propose_plan(args: dict[str, Any], collective_id: str) -> Any:
    """Propose the year's plan (收益分配方案): PlanProposed and one HouseholdAllocated per household of weight > 0."""
    who = principal()
    who.require(WRITERS, collective=collective_id)
    figures = PlanFigures(collective_id=collective_id, **{k: v for k, v in args.items() if k != "plan_id"})
    command = ProposePlan(figures=figures, plan_id=args["plan_id"], proposed_by=who.actor)
    return idempotent({"collective_id": collective_id, **args}, _decide(handlers.handle_propose, command),
                      _render_plan)


@blp.route("/collectives/<collective_id>/plans", methods=["GET"])
@blp.response(200, PlanList)
def list_plans(collective_id: str) -> Any:
    """Every plan of the collective (cancelled ones too), by year."""
    principal().require(READERS, collective=collective_id)
    reads = _reads()
    reads.require_collective(collective_id)
    return {"items": reads.plans(collective_id)}


@blp.route("/collectives/<collective_id>/plans/<plan_id>", methods=["GET"])
@blp.response(200, PlanBody)
def get_plan(collective_id: str, plan_id: str) -> Any:
    """A plan with its allocations and their payments."""
    principal().require(READERS, collective=collective_id)
    return _reads().plan(collective_id, plan_id)


@blp.route("/collectives/<collective_id>/plans/<plan_id>/approve", methods=["POST"])
@blp.arguments(ApproveRequest)
@blp.response(200, PlanBody)
def approve_plan(args: dict[str, Any], collective_id: str, plan_id: str) -> Any:
    """Record the meeting's vote that approves the plan (only if it meets the quorum and majority)."""
    who = principal()
    who.require(APPROVERS, collective=collective_id)
    command = ApprovePlan(collective_id=collective_id, plan_id=plan_id, vote=args["vote"], approved_by=who.actor)
    return idempotent({"collective_id": collective_id, "plan_id": plan_id, **args},
                      _decide(handlers.handle_approve, command), _render_plan)


@blp.route("/collectives/<collective_id>/plans/<plan_id>/cancel", methods=["POST"])
@blp.arguments(CancelRequest)
@blp.response(200, PlanBody)
def cancel_plan(args: dict[str, Any], collective_id: str, plan_id: str) -> Any:
    """Cancel a plan that is not approved yet; its year is free again."""
    principal().require(WRITERS, collective=collective_id)
    command = CancelPlan(collective_id=collective_id, plan_id=plan_id, reason=args["reason"])
    return idempotent({"collective_id": collective_id, "plan_id": plan_id, **args},
                      _decide(handlers.handle_cancel, command), _render_plan)


@blp.route("/collectives/<collective_id>/plans/<plan_id>/payments", methods=["POST"])
@blp.arguments(PaymentRequest)
@blp.response(201, PaymentResponse)
def pay_household(args: dict[str, Any], collective_id: str, plan_id: str) -> Any:
    """Record the bank payment of one household's amount: once, and exactly its amount."""
    principal().require(WRITERS, collective=collective_id)
    payment_id = args["payment_id"] or _new_id("hpay", "payment")
    command = PayHousehold(collective_id=collective_id, plan_id=plan_id, **{**args, "payment_id": payment_id})
    return idempotent({"collective_id": collective_id, "plan_id": plan_id, **args},
                      _decide(handlers.handle_pay, command),
                      lambda result: _reads().payment(collective_id, result["payment_id"]))


@blp.route("/collectives/<collective_id>/plans/<plan_id>/notice", methods=["GET"])
@blp.response(200, NoticeBody)
def plan_notice(collective_id: str, plan_id: str) -> Any:
    """The public notice (公示) of an approved plan: figures, vote, and each household (name masked), as JSON."""
    principal().require(READERS, collective=collective_id)
    return _reads().notice(collective_id, plan_id)
