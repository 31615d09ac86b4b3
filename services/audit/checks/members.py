"""Every approved member plan recomputed from the members topic and the books (DESIGN §11).

During the replay the members topic is folded into each collective's charter, register
(holdings set before the shares were fixed, and every transfer since, with its effective
date) and plans (proposal, allocations, approval, payments, cancellation). At the end each
approved plan is recomputed with :mod:`services.members.split` — the rule the members
service itself runs — and compared, to the fen, with the log:

- ``distributable``: the plan's distributable amount is the balance of 322/undistributed on
  Y-12-31 in the books, the year-end close of Y posted and not reversed; net income =
  what that close moved into it;
- the appropriations (reserve = round(A × rate) at least the charter's minimum, reserve +
  welfare + members' total ≤ A, undistributed = the rest);
- the split: each household's holdings on the record date (holdings set with
  effective_on ≤ d, then every transfer with effective_on ≤ d), its weight, and its amount
  of the members' total (largest remainders); every HouseholdAllocated is one of these, and
  Σ = members' total;
- payments: only of an allocation of the plan, each for the household's whole amount,
  at most once;
- the books: the plan's appropriations entry (Dr 322/undistributed, Cr 311, 211/welfare,
  211/member-dividends, dated the meeting) and each payment's entry (Dr 211/member-dividends,
  Cr 102, dated paid_on) present once under their derived ids, not reversed; and no entry of
  origin member_plan or member_dividend without such a cause.

Findings are of check ``plan`` (the members topic) and ``posting`` (the books).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from services.audit.checks.books import BookEntry, Books
from services.audit.checks.findings import Where
from services.audit.checks.postings import Owed, verify_owed
from services.contracts.money import MoneyError, format_yuan, parse_rate, parse_yuan
from services.ledger.domain import automatic_entry_ids
from services.members import split

Report = Callable[[str, Where | None, str | None, str], None]

#: The origins of the entries a plan causes.
PLAN_ORIGINS = frozenset({"member_plan", "member_dividend"})
UNDISTRIBUTED = "322/undistributed"
WELFARE = "211/welfare"
MEMBER_DIVIDENDS = "211/member-dividends"
#: The qualifier of the one entry a PlanApproved or a HouseholdDividendPaid causes.
ENTRY_QUALIFIER = "entry"


@dataclass
class Plan:
    """One proposed plan and what followed it in the log."""

    plan_id: str
    collective_id: str
    proposed: dict[str, Any]
    where: Where
    charter: dict[str, Any] | None
    changes: list[split.Change]  # the register's changes in log order, as at the proposal
    allocations: dict[str, tuple[dict[str, Any], Where]] = field(default_factory=dict)
    status: str = "proposed"  # proposed | approved | cancelled
    approval: dict[str, Any] | None = None
    approval_event_id: str | None = None
    approval_where: Where | None = None
    payments: list[tuple[str, dict[str, Any], Where]] = field(default_factory=list)  # (event id, data, where)


@dataclass
class MemberPlans:
    """The members topic folded; :meth:`verify` recomputes every approved plan against it and the books."""

    report: Report
    charters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: collective -> its holdings set and transfers, in log order.
    changes: dict[str, list[split.Change]] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    #: How many approved plans :meth:`verify` recomputed.
    recomputed: int = 0

    def apply(self, where: Where, envelope: dict[str, Any]) -> None:
        kind = envelope["type"]
        data = envelope["data"]
        cid = data["collective_id"]
        if kind == "CharterSet":
            self.charters[cid] = data
        elif kind == "HoldingsSet":
            self.changes.setdefault(cid, []).append(split.SetHoldings(
                data["household_id"], {k: split.parse_shares(v) for k, v in data["holdings"].items()},
                dt.date.fromisoformat(data["effective_on"])))
        elif kind == "SharesTransferred":
            self.changes.setdefault(cid, []).append(split.Transfer(
                data["from_household"], data["to_household"], data["kind"], split.parse_shares(data["shares"]),
                dt.date.fromisoformat(data["effective_on"])))
        elif kind == "PlanProposed":
            self.plans[data["plan_id"]] = Plan(data["plan_id"], cid, data, where, self.charters.get(cid),
                                               list(self.changes.get(cid, [])))
        elif kind in ("HouseholdAllocated", "PlanApproved", "HouseholdDividendPaid", "PlanCancelled"):
            plan = self.plans.get(data["plan_id"])
            if plan is None or plan.collective_id != cid:
                self.report("plan", where, cid, f"{kind} of plan {data['plan_id']}, which {cid} never proposed")
                return
            self._follow(plan, kind, data, where, envelope["event_id"])

    def _follow(self, plan: Plan, kind: str, data: dict[str, Any], where: Where, event_id: str) -> None:
        cid = plan.collective_id
        if kind == "HouseholdAllocated":
            if plan.status != "proposed":
                self.report("plan", where, cid, f"plan {plan.plan_id}: an allocation after it was {plan.status}")
            if data["household_id"] in plan.allocations:
                self.report("plan", where, cid, f"plan {plan.plan_id}: {data['household_id']} is allocated twice")
            plan.allocations[data["household_id"]] = (data, where)
        elif kind == "PlanApproved":
            if plan.status != "proposed":
                self.report("plan", where, cid, f"plan {plan.plan_id} approved when it was {plan.status}")
                return
            plan.status, plan.approval, plan.approval_event_id, plan.approval_where = (
                "approved", data, event_id, where)
        elif kind == "PlanCancelled":
            if plan.status != "proposed":
                self.report("plan", where, cid, f"plan {plan.plan_id} cancelled when it was {plan.status}")
                return
            plan.status = "cancelled"
        else:
            if plan.status != "approved":
                self.report("plan", where, cid, f"payment {data['payment_id']} of plan {plan.plan_id}, which is "
                            f"{plan.status}, not approved")
            plan.payments.append((event_id, data, where))

    # -- at the end ------------------------------------------------------------------------------------

    def verify(self, books: Books) -> None:
        owed: list[Owed] = []
        for plan in self.plans.values():
            if plan.status != "approved":
                continue
            self.recomputed += 1
            try:
                self._verify_plan(plan, books)
            except (MoneyError, ValueError, KeyError, ZeroDivisionError) as exc:  # a payload the schema check reported
                self.report("plan", plan.where, plan.collective_id,
                            f"plan {plan.plan_id} cannot be recomputed: {type(exc).__name__}: {exc}")
            if plan.collective_id in books.collectives:  # the ledger keeps the books of registered collectives
                owed += self._owed(plan)
        verify_owed(self.report, books, owed, PLAN_ORIGINS, "no approved plan or household payment calls for it")

    def _verify_plan(self, plan: Plan, books: Books) -> None:
        p = plan.proposed
        cid, pid, year = plan.collective_id, plan.plan_id, int(p["year"])
        problems: list[str] = []
        # The distributable amount, from the books.
        close = _close_of(books, cid, year)
        if not close:
            problems.append(f"the books have no year-end close of {year} (not reversed)")
        else:
            booked = undistributed_on(books, cid, f"{year}-12-31")
            if booked != parse_yuan(p["distributable"], allow_negative=True):
                problems.append(f"distributable {p['distributable']} is not the balance of {UNDISTRIBUTED} on "
                                f"{year}-12-31 in the books ({format_yuan(booked)})")
            moved = _moved_into_undistributed(close)
            if moved != parse_yuan(p["net_income"], allow_negative=True):
                problems.append(f"net_income {p['net_income']} is not what the close of {year} moved into "
                                f"{UNDISTRIBUTED} ({format_yuan(moved)})")
        # The appropriations.
        distributable = parse_yuan(p["distributable"], allow_negative=True)
        rate = parse_rate(p["reserve_rate"])
        reserve, welfare, total = parse_yuan(p["reserve"]), parse_yuan(p["welfare"]), parse_yuan(p["members_total"])
        if plan.charter is not None and rate < parse_rate(plan.charter["reserve_rate_min"]):
            problems.append(f"reserve_rate {p['reserve_rate']} is below the charter's minimum "
                            f"{plan.charter['reserve_rate_min']}")
        try:
            expected = split.appropriations(distributable, rate, welfare, total)
        except split.AppropriationError as exc:
            problems.append(f"{exc} ({exc.field})")
        else:
            if reserve != expected.reserve:
                problems.append(f"reserve {p['reserve']} is not round(distributable × {p['reserve_rate']}) = "
                                f"{format_yuan(expected.reserve)}")
            if parse_yuan(p["undistributed"], allow_negative=True) != expected.undistributed:
                problems.append(f"undistributed {p['undistributed']} is not {format_yuan(expected.undistributed)}")
        approval = plan.approval or {}
        for name in ("reserve", "welfare", "members_total"):
            if name in approval and parse_yuan(approval[name]) != parse_yuan(p[name]):
                problems.append(f"the approval's {name} {approval[name]} is not the proposal's {p[name]}")
        vote = approval.get("vote")
        if vote is not None and p["record_date"] > vote["meeting_on"]:
            problems.append(f"record date {p['record_date']} is after the meeting ({vote['meeting_on']})")
        if vote is not None and plan.charter is not None and not vote_carries(vote, plan.charter):
            problems.append(f"the vote {vote} does not carry under the charter (quorum {plan.charter['quorum']}, "
                            f"majority {plan.charter['majority']})")
        for problem in problems:
            self.report("plan", plan.approval_where or plan.where, cid, f"plan {pid}: {problem}")
        self._verify_split(plan, total)
        self._verify_payments(plan)

    def _verify_split(self, plan: Plan, total: int) -> None:
        cid, pid = plan.collective_id, plan.plan_id
        record_date = plan.proposed["record_date"]
        weights_of = {k["kind"]: split.parse_shares(k["weight"]) for k in (plan.charter or {}).get("share_kinds", [])}
        holdings = split.all_holdings_on(plan.changes, dt.date.fromisoformat(record_date))
        weights = {hid: split.household_weight(held, weights_of) for hid, held in holdings.items()}
        expected = split.split_members_total(total, {hid: w for hid, w in weights.items() if w > 0})
        for hid in sorted(set(expected) | set(plan.allocations)):
            amount = expected.get(hid)
            allocated = plan.allocations.get(hid)
            if allocated is None:
                if amount:
                    self.report("plan", plan.approval_where or plan.where, cid,
                                f"plan {pid}: {hid} has weight {_shares(weights[hid])} on {record_date} and is owed "
                                f"{format_yuan(amount)}, but has no allocation")
                continue
            data, where = allocated
            problems = []
            if amount is None:
                problems.append("the household has no shares on the record date")
            else:
                if parse_yuan(data["amount"]) != amount:
                    problems.append(f"amount {data['amount']} is not {format_yuan(amount)}")
                if Fraction(data["weight"]) != weights[hid]:
                    problems.append(f"weight {data['weight']} is not {_shares(weights[hid])}")
                held = {k: Fraction(v) for k, v in holdings.get(hid, {}).items() if Fraction(v)}
                stated = {k: Fraction(v) for k, v in data["holdings"].items() if Fraction(v)}
                if held != stated:
                    problems.append(f"holdings {data['holdings']} are not those on {record_date} "
                                    f"({ {k: _shares(v) for k, v in held.items()} })")
            for problem in problems:
                self.report("plan", where, cid, f"plan {pid}: allocation of {hid}: {problem}")
        allocated_total = sum(parse_yuan(d["amount"]) for d, _ in plan.allocations.values())
        if allocated_total != total:
            self.report("plan", plan.where, cid, f"plan {pid}: the allocations add up to "
                        f"{format_yuan(allocated_total)}, not the members' total {format_yuan(total)}")

    def _verify_payments(self, plan: Plan) -> None:
        paid: Counter[str] = Counter()
        for _, data, where in plan.payments:
            hid = data["household_id"]
            allocated = plan.allocations.get(hid)
            if allocated is None:
                self.report("plan", where, plan.collective_id, f"plan {plan.plan_id}: payment {data['payment_id']} "
                            f"to {hid}, which has no allocation")
                continue
            paid[hid] += 1
            if paid[hid] > 1:
                self.report("plan", where, plan.collective_id, f"plan {plan.plan_id}: {hid} is paid again "
                            f"(payment {data['payment_id']})")
            if parse_yuan(data["amount"]) != parse_yuan(allocated[0]["amount"]):
                self.report("plan", where, plan.collective_id, f"plan {plan.plan_id}: payment {data['payment_id']} "
                            f"of {data['amount']} to {hid}, whose allocation is {allocated[0]['amount']}")

    def _owed(self, plan: Plan) -> list[Owed]:
        out = []
        approval = plan.approval
        if approval is not None and plan.approval_event_id is not None and plan.approval_where is not None:
            reserve, welfare = parse_yuan(approval["reserve"]), parse_yuan(approval["welfare"])
            total = parse_yuan(approval["members_total"])
            lines = [(UNDISTRIBUTED, reserve + welfare + total, 0), ("311", 0, reserve), (WELFARE, 0, welfare),
                     (MEMBER_DIVIDENDS, 0, total)]
            kept = tuple(line for line in lines if line[1] or line[2])
            if reserve + welfare + total:
                out.append(Owed(automatic_entry_ids(plan.approval_event_id, ENTRY_QUALIFIER).entry_id,
                                plan.collective_id, kept, "member_plan", plan.plan_id,
                                approval["vote"]["meeting_on"], plan.approval_where, plan.collective_id,
                                f"the appropriations of plan {plan.plan_id}"))
        for event_id, data, where in plan.payments:
            amount = parse_yuan(data["amount"])
            out.append(Owed(automatic_entry_ids(event_id, ENTRY_QUALIFIER).entry_id, plan.collective_id,
                            ((MEMBER_DIVIDENDS, amount, 0), ("102", 0, amount)), "member_dividend",
                            data["payment_id"], data["paid_on"], where, plan.collective_id,
                            f"payment {data['payment_id']} of {data['amount']} to {data['household_id']}"))
        return out


def vote_carries(vote: Mapping[str, Any], charter: Mapping[str, Any]) -> bool:
    """DESIGN §11: present/entitled reaches the quorum, for/present passes the majority (the charter's, at least
    2/3 and more than 1/2)."""
    quorum = max(Fraction(charter.get("quorum") or "2/3"), Fraction(2, 3))
    majority = max(Fraction(charter.get("majority") or "1/2"), Fraction(1, 2))
    present, entitled = vote["present"], vote["entitled"]
    return bool(entitled) and Fraction(present, entitled) >= quorum and present > 0 and \
        Fraction(vote["for"], present) > majority


def undistributed_on(books: Books, collective_id: str, day: str) -> int:
    """The credit balance of 322/undistributed at the end of ``day``, in fen."""
    balance = 0
    for entry in books.entries_of(collective_id):
        if entry.date > day:
            continue
        for account, debit, credit in entry.lines:
            if account == UNDISTRIBUTED:
                balance += credit - debit
    return balance


def _close_of(books: Books, collective_id: str, year: int) -> list[BookEntry]:
    """The entries of the year-end close of ``year`` that stand (a close is several entries; one reversed and
    made again is the next round)."""
    return [entry for entry in books.automatic_entries(frozenset({"year_end_close"}))
            if entry.collective_id == collective_id and entry.origin_ref == str(year) and entry.reversed_by is None]


def _moved_into_undistributed(close: list[BookEntry]) -> int:
    return sum(credit - debit for entry in close for account, debit, credit in entry.lines
               if account == UNDISTRIBUTED)


def _shares(value: Fraction) -> str:
    """An exact number of shares (at most a few decimal places) as a decimal string."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    digits = ""
    while rest and len(digits) < 8:
        digit, rest = divmod(rest * 10, value.denominator)
        digits += str(digit)
    return ("-" if value < 0 else "") + str(whole) + (f".{digits}" if digits else "")
