"""The members service's decisions: every check and refusal of a command, and the events it publishes.

Pure, in the shape of :mod:`services.runtime.handling`: ``handle_x(command, reads) -> Decision``, or ``Refused``.
The API calls them inside the writer lock (the preview outside it: it publishes nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from fractions import Fraction
from typing import Any

from services.contracts.events import CERTIFICATE_RE, SHARES_RE, WEIGHT_RE
from services.contracts.money import MAX_YUAN, fits_wire, format_yuan, parse_rate, parse_yuan
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
from services.members.domain import (
    PREFIX_RE,
    VoteRules,
    certificate_number,
    charter_problem,
    default_prefix,
    parse_fraction,
    vote_problem,
)
from services.members.reads import MembersReads, holdings_to_wire
from services.members.split import (
    AppropriationError,
    Change,
    SetHoldings,
    Transfer,
    all_holdings_on,
    appropriations,
    first_shortfall,
    format_decimal,
    format_shares,
    household_weight,
    parse_shares,
    split_members_total,
)
from services.runtime.handling import Decision, Refused
from services.runtime.service import NewEvent

# -- the charter ---------------------------------------------------------------------------------------------


def handle_set_charter(command: SetCharter, reads: MembersReads) -> Decision:
    """CharterSet (a new version); the charter in force again publishes nothing."""
    cid = command.collective_id
    reads.require_collective(cid)
    kinds = [dict(k) for k in command.share_kinds]
    names = [k["kind"] for k in kinds]
    if len(set(names)) != len(names):
        raise Refused(422, "validation_error", "each share kind may be listed once", "share_kinds")
    problem = charter_problem(parse_rate(command.reserve_rate_min), parse_fraction(command.quorum),
                              parse_fraction(command.majority))
    if problem is not None:
        raise Refused(422, "validation_error", problem[1], problem[0])
    data: dict[str, Any] = {"collective_id": cid, "share_kinds": kinds, "reserve_rate_min": command.reserve_rate_min,
                            "shares_fixed_on": command.shares_fixed_on, "quorum": command.quorum,
                            "majority": command.majority, "adopted_on": command.adopted_on}
    current = reads.charter(cid)
    if current is not None:
        if current == data:
            return Decision(events=(), result={"collective_id": cid})
        if _weights(current) != _weights(data):
            plan_id = reads.any_plan(cid)
            if plan_id is not None:
                raise Refused(409, "share_kinds_fixed", f"plan {plan_id!r} was proposed with the share kinds in "
                              "force: they can no longer change (cancel the plan first if it is not approved)",
                              "share_kinds")
        fixed = current.get("shares_fixed_on")
        if fixed is not None and command.shares_fixed_on != fixed:
            raise Refused(409, "shares_fixed", f"the shares were fixed on {fixed} (股权固化): that date cannot be "
                          "moved or taken back", "shares_fixed_on")
    held = reads.kinds_held(cid) - set(names)
    if held:
        raise Refused(409, "kind_in_use", f"share kind {sorted(held)[0]!r} is held by households: it cannot be left "
                      "out of the charter", "share_kinds")
    if command.shares_fixed_on is not None:
        late = [c for c in reads.changes(cid) if isinstance(c, SetHoldings)
                and c.effective_on >= date.fromisoformat(command.shares_fixed_on)]
        if late:
            raise Refused(409, "shares_fixed", f"holdings of {late[0].household_id!r} were set effective "
                          f"{late[0].effective_on}, on or after shares_fixed_on", "shares_fixed_on")
    return Decision(events=[NewEvent("CharterSet", cid, data)], result={"collective_id": cid})


def _weights(charter: Mapping[str, Any]) -> dict[str, Fraction]:
    return {k["kind"]: parse_shares(k["weight"]) for k in charter["share_kinds"]}


# -- households and holdings ---------------------------------------------------------------------------------


def _member_event(cid: str, household_id: str, member: NewMember) -> NewEvent:
    return NewEvent("MemberRegistered", cid, {
        "collective_id": cid, "member_id": member.member_id, "household_id": household_id, "name": member.name,
        "relation": member.relation, "born_on": member.born_on, "joined_on": member.joined_on})


def _check_holdings(reads: MembersReads, cid: str, household_id: str, holdings: Mapping[str, str],
                    effective_on: str) -> dict[str, str]:
    """A HoldingsSet's holdings, checked: kinds of the charter, before the shares were fixed, after the record
    date of every plan, leaving no later transfer short. Returns them as the wire writes them."""
    charter = reads.require_charter(cid, status=409)
    kinds = _weights(charter)
    for kind in holdings:
        if kind not in kinds:
            raise Refused(422, "unknown_kind", f"{kind!r} is not a share kind of the charter "
                          f"({', '.join(sorted(kinds))})", f"holdings.{kind}")
    day = date.fromisoformat(effective_on)
    fixed = charter.get("shares_fixed_on")
    if fixed is not None and day >= date.fromisoformat(fixed):
        raise Refused(409, "shares_fixed", f"the shares were fixed on {fixed} (股权固化, 生不增、死不减): after "
                      "that, holdings change only by a recorded transfer", "effective_on")
    _after_the_fixed_split(reads, cid, day, "effective_on")
    parsed = {kind: parse_shares(n) for kind, n in holdings.items()}
    change = SetHoldings(household_id, parsed, day)
    _no_shortfall(reads.changes(cid), change, "holdings")
    return {kind: format_shares(n) for kind, n in sorted(parsed.items()) if n != 0}


def _after_the_fixed_split(reads: MembersReads, cid: str, day: date, field: str) -> None:
    fixed = reads.fixed_split(cid)
    if fixed is not None and day <= date.fromisoformat(fixed[1]):
        raise Refused(409, "split_fixed", f"plan {fixed[0]!r} split the members' total on the holdings of its record "
                      f"date {fixed[1]}: no change may take effect on or before it (cancel the plan first if it "
                      "is not approved)", field)


def _no_shortfall(changes: list[Change], change: Change, field: str) -> None:
    short = first_shortfall([*changes, change])
    if short is not None:
        raise Refused(409, "insufficient_shares", f"household {short.household_id!r} would hold "
                      f"{short.holding} {short.kind} shares from {short.day}: not enough shares", field)
    for household, held in all_holdings_on([*changes, change], date.max).items():
        for kind, n in held.items():
            if not SHARES_RE.fullmatch(format_shares(n)):
                raise Refused(422, "shares_out_of_range", f"household {household!r} would hold {n} {kind} shares, "
                              "more than 999999999.9999", field)


def handle_register_household(command: RegisterHousehold, reads: MembersReads) -> Decision:
    """HouseholdRegistered, a MemberRegistered per member, and HoldingsSet if holdings are given."""
    cid, hid = command.collective_id, command.household_id
    reads.require_collective(cid)
    if reads.household_exists(cid, hid):
        raise Refused(409, "already_exists", f"household {hid!r} is registered already", "household_id")
    seen: set[str] = set()
    for i, member in enumerate(command.members):
        if member.member_id in seen or reads.member_exists(cid, member.member_id):
            raise Refused(409, "already_exists", f"member {member.member_id!r} is registered already",
                          f"members.{i}.member_id")
        seen.add(member.member_id)
    events = [NewEvent("HouseholdRegistered", cid, {
        "collective_id": cid, "household_id": hid, "head_name": command.head_name, "address": command.address,
        "registered_on": command.registered_on})]
    events += [_member_event(cid, hid, m) for m in command.members]
    if command.holdings is not None:
        holdings = _check_holdings(reads, cid, hid, command.holdings, command.effective_on)
        events.append(NewEvent("HoldingsSet", cid, {"collective_id": cid, "household_id": hid, "holdings": holdings,
                                                    "effective_on": command.effective_on}))
    return Decision(events=events, result={"collective_id": cid, "household_id": hid})


def handle_register_member(command: RegisterMember, reads: MembersReads) -> Decision:
    cid, hid, member = command.collective_id, command.household_id, command.member
    reads.require_collective(cid)
    reads.require_household(cid, hid)
    if reads.member_exists(cid, member.member_id):
        raise Refused(409, "already_exists", f"member {member.member_id!r} is registered already", "member_id")
    return Decision(events=[_member_event(cid, hid, member)],
                    result={"collective_id": cid, "household_id": hid, "member_id": member.member_id})


def handle_set_holdings(command: SetHouseholdHoldings, reads: MembersReads) -> Decision:
    """HoldingsSet: the household's holdings of every kind from effective_on (before the shares were fixed)."""
    cid, hid = command.collective_id, command.household_id
    reads.require_collective(cid)
    reads.require_household(cid, hid)
    holdings = _check_holdings(reads, cid, hid, command.holdings, command.effective_on)
    return Decision(events=[NewEvent("HoldingsSet", cid, {"collective_id": cid, "household_id": hid,
                                                          "holdings": holdings,
                                                          "effective_on": command.effective_on})],
                    result={"collective_id": cid, "household_id": hid})


def handle_transfer(command: TransferShares, reads: MembersReads) -> Decision:
    """SharesTransferred between two households of the collective; the giver must hold enough on effective_on
    and on every later date."""
    cid = command.collective_id
    reads.require_collective(cid)
    if command.from_household == command.to_household:
        raise Refused(422, "validation_error", "a household cannot transfer shares to itself", "to_household")
    reads.require_household(cid, command.from_household, "from_household")
    reads.require_household(cid, command.to_household, "to_household")
    if reads.transfer_exists(cid, command.transfer_id):
        raise Refused(409, "already_exists", f"transfer {command.transfer_id!r} is recorded already", "transfer_id")
    kinds = _weights(reads.require_charter(cid, status=409))
    if command.kind not in kinds:
        raise Refused(422, "unknown_kind", f"{command.kind!r} is not a share kind of the charter "
                      f"({', '.join(sorted(kinds))})", "kind")
    shares = parse_shares(command.shares)
    if shares <= 0:
        raise Refused(422, "validation_error", "a transfer moves more than 0 shares", "shares")
    day = date.fromisoformat(command.effective_on)
    _after_the_fixed_split(reads, cid, day, "effective_on")
    _no_shortfall(reads.changes(cid), Transfer(command.from_household, command.to_household, command.kind, shares,
                                               day), "shares")
    data = {"collective_id": cid, "transfer_id": command.transfer_id, "from_household": command.from_household,
            "to_household": command.to_household, "kind": command.kind, "shares": format_shares(shares),
            "effective_on": command.effective_on, "reason": command.reason, "note": command.note}
    return Decision(events=[NewEvent("SharesTransferred", cid, data)],
                    result={"collective_id": cid, "transfer_id": command.transfer_id})


def handle_issue_certificate(command: IssueCertificate, reads: MembersReads) -> Decision:
    """CertificateIssued with the household's holdings on issued_on, numbered ``<PREFIX>-<year>-<NNNN>``
    consecutively per collective, replacing its previous certificate (only if the holdings changed)."""
    cid, hid = command.collective_id, command.household_id
    reads.require_collective(cid)
    reads.require_household(cid, hid)
    day = date.fromisoformat(command.issued_on)
    holdings = holdings_to_wire(reads.holdings_on(cid, day).get(hid, {}))
    if not holdings:
        raise Refused(409, "no_holdings", f"household {hid!r} holds no shares on {day}", "household_id")
    previous = reads.latest_certificate(cid, hid)
    if previous is not None and previous["holdings"] == holdings:
        raise Refused(409, "unchanged", f"certificate {previous['certificate_no']!r} already shows these holdings: "
                      "a certificate is reissued only when the holdings changed", "household_id")
    prefix = command.prefix or default_prefix(cid)
    if not PREFIX_RE.fullmatch(prefix):
        raise Refused(422, "validation_error", "a prefix is 1-30 upper-case letters, digits or '-'", "prefix")
    number = certificate_number(prefix, day, reads.certificate_count(cid) + 1)
    if not CERTIFICATE_RE.fullmatch(number):
        raise Refused(422, "validation_error", f"{number!r} would be longer than 40 characters: choose a shorter "
                      "prefix", "prefix")
    data = {"collective_id": cid, "certificate_no": number, "household_id": hid, "holdings": holdings,
            "issued_on": command.issued_on, "replaces": previous["certificate_no"] if previous else None}
    return Decision(events=[NewEvent("CertificateIssued", cid, data)],
                    result={"collective_id": cid, "certificate_no": number})


# -- plans ---------------------------------------------------------------------------------------------------


def _plan_events(reads: MembersReads, figures: PlanFigures, plan_id: str, proposed_by: str) -> list[NewEvent]:
    """PlanProposed and one HouseholdAllocated per household of weight > 0 (DESIGN §11)."""
    cid, year = figures.collective_id, figures.year
    reads.require_collective(cid)
    charter = reads.require_charter(cid, status=409)
    record_date = date.fromisoformat(figures.record_date)
    if record_date <= date(year, 12, 31):
        raise Refused(422, "validation_error", f"the record date must be after the year {year} it distributes",
                      "record_date")
    rate = parse_rate(figures.reserve_rate)
    if rate < parse_rate(charter["reserve_rate_min"]):
        raise Refused(422, "below_charter_minimum", f"the reserve rate {figures.reserve_rate} is below the "
                      f"charter's minimum {charter['reserve_rate_min']}", "reserve_rate")
    books = reads.books(cid, year)
    if not books.closed:
        raise Refused(409, "year_not_closed", f"the books of {year} are not closed: the year-end close (origin "
                      f"year_end_close, ref {year}) must be posted first", "year")
    for name, fen in (("distributable", books.distributable), ("net_income", books.net_income),
                      ("brought_forward", books.distributable - books.net_income)):
        if not fits_wire(fen):  # DESIGN §3: refused now, never a failure when the event is published
            raise Refused(422, "amount_out_of_range", f"the books' {name} of {year} is past the wire format "
                          f"(±{MAX_YUAN})", "year")
    welfare, members_total = parse_yuan(figures.welfare), parse_yuan(figures.members_total)
    try:
        found = appropriations(books.distributable, rate, welfare, members_total)
    except AppropriationError as exc:
        raise Refused(422, "exceeds_distributable", f"{exc} ({format_yuan(books.distributable)} distributable, "
                      f"reserve {format_yuan(max(0, _reserve(books.distributable, rate)))})", exc.field) from None
    kinds = _weights(charter)
    held = reads.holdings_on(cid, record_date)
    weights = {household: household_weight(h, kinds) for household, h in held.items()}
    try:
        split = split_members_total(found.members_total, weights)
    except ValueError as exc:
        raise Refused(422, "no_shares", str(exc), "members_total") from None
    total_weight = format_decimal(sum(weights.values(), Fraction(0)))
    if not WEIGHT_RE.fullmatch(total_weight):
        raise Refused(422, "shares_out_of_range", "the households' total weight is past the wire format", "year")
    data = {"collective_id": cid, "plan_id": plan_id, "year": year, "net_income": format_yuan(books.net_income),
            "brought_forward": format_yuan(books.distributable - books.net_income),
            "distributable": format_yuan(books.distributable), "reserve_rate": figures.reserve_rate,
            "reserve": format_yuan(found.reserve), "welfare": format_yuan(found.welfare),
            "members_total": format_yuan(found.members_total), "undistributed": format_yuan(found.undistributed),
            "record_date": figures.record_date, "total_weight": total_weight, "households": len(split),
            "proposed_by": proposed_by[:100]}
    return [NewEvent("PlanProposed", cid, data),
            *(NewEvent("HouseholdAllocated", cid, {
                "collective_id": cid, "plan_id": plan_id, "household_id": household,
                "holdings": holdings_to_wire(held[household]), "weight": format_decimal(weights[household]),
                "amount": format_yuan(amount)}) for household, amount in split.items())]


def _reserve(distributable: int, rate: Fraction) -> int:
    return appropriations(distributable, rate, 0, 0).reserve if distributable > 0 else 0


def handle_preview(command: PlanFigures, reads: MembersReads) -> Decision:
    """What a proposal would publish now, published by nobody: ``result["would_publish"]`` holds the events."""
    return Decision(events=(), result={"would_publish": _plan_events(reads, command, "preview", "preview")})


def handle_propose(command: ProposePlan, reads: MembersReads) -> Decision:
    figures = command.figures
    cid, year = figures.collective_id, figures.year
    reads.require_collective(cid)
    live = reads.live_plan_of_year(cid, year)
    if live is not None:
        raise Refused(409, "plan_exists", f"plan {live!r} of {year} is not cancelled: one plan per year", "year")
    wanted = command.plan_id
    if wanted is not None and reads.plan_exists(cid, wanted):
        raise Refused(409, "already_exists", f"plan {wanted!r} exists already", "plan_id")
    plan_id = wanted or _plan_id(reads, cid, year)
    return Decision(events=_plan_events(reads, figures, plan_id, command.proposed_by),
                    result={"collective_id": cid, "plan_id": plan_id})


def _plan_id(reads: MembersReads, cid: str, year: int) -> str:
    candidate, n = f"plan-{year}", 1
    while reads.plan_exists(cid, candidate):
        n += 1
        candidate = f"plan-{year}-{n}"
    return candidate


def handle_approve(command: ApprovePlan, reads: MembersReads) -> Decision:
    """PlanApproved, only with a recorded vote that carries it (DESIGN §11 and the charter's own rules)."""
    cid = command.collective_id
    plan = reads.plan_state(cid, command.plan_id)
    if plan.status != "proposed":
        raise Refused(409, "invalid_status", f"plan {command.plan_id!r} is {plan.status}; only a proposed plan can "
                      "be approved", "plan_id")
    charter = reads.require_charter(cid, status=409)
    rules = VoteRules(parse_fraction(charter["quorum"]), parse_fraction(charter["majority"]))
    problem = vote_problem(command.vote, rules, year=plan.year,
                           record_date=date.fromisoformat(plan.proposed["record_date"]))
    if problem is not None:
        raise Refused(422, problem[0], problem[2], problem[1])
    vote = {k: command.vote[k] for k in ("body", "meeting_on", "entitled", "present", "for", "against", "abstain")}
    data = {"collective_id": cid, "plan_id": command.plan_id, "year": plan.year, "vote": vote,
            "reserve": plan.proposed["reserve"], "welfare": plan.proposed["welfare"],
            "members_total": plan.proposed["members_total"], "approved_by": command.approved_by[:100]}
    return Decision(events=[NewEvent("PlanApproved", cid, data)],
                    result={"collective_id": cid, "plan_id": command.plan_id})


def handle_cancel(command: CancelPlan, reads: MembersReads) -> Decision:
    cid = command.collective_id
    plan = reads.plan_state(cid, command.plan_id)
    if plan.status != "proposed":
        raise Refused(409, "invalid_status", f"plan {command.plan_id!r} is {plan.status}; only a proposed plan can "
                      "be cancelled", "plan_id")
    return Decision(events=[NewEvent("PlanCancelled", cid, {"collective_id": cid, "plan_id": command.plan_id,
                                                            "reason": command.reason})],
                    result={"collective_id": cid, "plan_id": command.plan_id})


def handle_pay(command: PayHousehold, reads: MembersReads) -> Decision:
    """HouseholdDividendPaid: one household of an approved plan, once, for exactly its amount."""
    cid, hid = command.collective_id, command.household_id
    plan = reads.plan_state(cid, command.plan_id)
    if plan.status not in ("approved", "paid"):
        raise Refused(409, "invalid_status", f"plan {command.plan_id!r} is {plan.status}; only an approved plan is "
                      "paid", "plan_id")
    if reads.payment_exists(cid, command.payment_id):
        raise Refused(409, "already_exists", f"payment {command.payment_id!r} exists already", "payment_id")
    allocation = reads.allocation(cid, command.plan_id, hid)
    if allocation is None:
        raise Refused(422, "unknown_reference", f"household {hid!r} has no allocation in plan {command.plan_id!r}",
                      "household_id")
    if allocation.payment_id is not None:
        raise Refused(409, "already_paid", f"household {hid!r} was paid already (payment "
                      f"{allocation.payment_id!r})", "household_id")
    if allocation.amount == 0:
        raise Refused(409, "nothing_to_pay", f"household {hid!r} is allocated 0.00: there is nothing to pay",
                      "household_id")
    if parse_yuan(command.amount) != allocation.amount:
        raise Refused(422, "wrong_amount", f"a household is paid once, exactly its amount: "
                      f"{format_yuan(allocation.amount)}", "amount")
    assert plan.approved is not None
    meeting_on = plan.approved["vote"]["meeting_on"]
    if date.fromisoformat(command.paid_on) < date.fromisoformat(meeting_on):
        raise Refused(422, "validation_error", f"paid before the meeting of {meeting_on} approved the plan",
                      "paid_on")
    data = {"collective_id": cid, "plan_id": command.plan_id, "payment_id": command.payment_id, "household_id": hid,
            "amount": format_yuan(allocation.amount), "paid_on": command.paid_on,
            "bank_reference": command.bank_reference}
    return Decision(events=[NewEvent("HouseholdDividendPaid", cid, data)],
                    result={"collective_id": cid, "payment_id": command.payment_id})
