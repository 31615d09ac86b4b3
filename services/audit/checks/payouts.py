"""Distributions, allocations and payments, folded from the dividends topic and re-verified.

During the replay each project's records arrive in order (one partition per project), so
the lifecycle is checked as it happens: a declaration under the policy in force and not
overlapping an earlier live distribution; allocations of a declared distribution;
approval once, of a declared one; cancellation only before approval; payments only of an
approved allocation and never above it.

At the end every declared distribution is recomputed from the input records below its
``input_positions`` (``services.dividends.inputs.recompute_declared``, the rule the
service itself ran) and compared, to the fen, with its DistributionDeclared and
DividendAllocated events. Distributions are recomputed in the order they were declared: a
distribution takes up the late items (DESIGN §6 step 1) that the distributions of its project
still live when it was declared — as the replay saw them — had not counted, and its recomputed
``late_items`` must be those it lists.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from services.audit.checks.findings import Where
from services.audit.checks.input_rows import InputLog
from services.contracts.money import MoneyError, format_yuan, parse_rate, parse_yuan
from services.dividends.domain import DistributionResult, DistributionRuleError
from services.dividends.inputs import EarlierDistribution, late_item_data, recompute_declared

Report = Callable[[str, Where | None, str | None, str], None]

#: The totals of DistributionDeclared, in the order a finding lists them.
TOTALS = ("gross_rent", "expenses", "management_fee", "tax", "net_profit", "pool", "retained", "total_top_up",
          "total_payout", "total_capital_days")
#: The amounts of DividendAllocated.
ALLOCATION_AMOUNTS = ("capital_days", "pro_rata", "guaranteed_floor", "top_up", "payout")
_RATES = ("management_fee_rate", "tax_rate", "payout_ratio", "guaranteed_rate")
_PAYMENT_FIELDS = ("payment_id", "distribution_id", "project_id", "investor_id", "amount", "paid_on")
_SHARED = frozenset({"distribution_id", "project_id", "investor_id", "paid_on"})
_intern = sys.intern


class Amounts(NamedTuple):
    """The amounts of a DividendAllocated, in fen (capital_days in fen·days)."""

    capital_days: int
    pro_rata: int
    guaranteed_floor: int
    top_up: int
    payout: int


@dataclass(slots=True)
class Allocated:
    """One DividendAllocated as the log holds it."""

    investor_type: str
    amounts: Amounts
    where: Where


@dataclass
class Distribution:
    """One declared distribution and what followed it in the log."""

    distribution_id: str
    project_id: str
    declared: dict[str, Any]
    where: Where
    status: str = "declared"  # declared | approved | cancelled
    allocations: dict[str, Allocated] = field(default_factory=dict)
    approval_event_id: str | None = None
    approval_instant: str | None = None
    approval_where: Where | None = None
    approved_payouts: dict[str, tuple[str, int]] = field(default_factory=dict)  # investor -> (type, fen)
    paid: dict[str, int] = field(default_factory=dict)
    earlier: tuple[str, ...] = ()  # the project's distributions not cancelled when this one was declared

    @property
    def period(self) -> tuple[str, str]:
        return str(self.declared["period_start"]), str(self.declared["period_end"])


@dataclass(slots=True)
class Payment:
    """A DividendPaid: the cause of a payment entry in a village's books (only what that entry needs)."""

    event_id: str
    data: dict[str, str]  # payment_id, distribution_id, project_id, investor_id, amount, paid_on
    where: Where


@dataclass
class Payouts:
    """The dividends topic folded, plus the rule's inputs from the two input topics."""

    report: Report
    inputs: InputLog = field(default_factory=InputLog)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    distributions: dict[str, Distribution] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    _by_project: dict[str, list[Distribution]] = field(default_factory=dict)

    def apply(self, where: Where, envelope: dict[str, Any]) -> None:
        kind = envelope["type"]
        data = envelope["data"]
        if kind == "PolicySet":
            self.policies[data["project_id"]] = data
        elif kind == "DistributionDeclared":
            self._declared(where, data)
        elif kind == "DividendAllocated":
            self._allocated(where, data)
        elif kind == "DistributionApproved":
            self._approved(where, envelope)
        elif kind == "DistributionCancelled":
            self._cancelled(where, data)
        elif kind == "DividendPaid":
            self._paid(where, envelope)

    # -- the lifecycle ---------------------------------------------------------------------------------

    def _declared(self, where: Where, data: dict[str, Any]) -> None:
        distribution_id, project_id = data["distribution_id"], data["project_id"]
        if distribution_id in self.distributions:
            self.report("distribution", where, project_id,
                        f"distribution {distribution_id} is declared a second time; this one is ignored")
            return
        if data["period_end"] < data["period_start"]:
            self.report("distribution", where, project_id,
                        f"distribution {distribution_id}: period_end {data['period_end']} is before period_start")
        for other in self._by_project.get(project_id, ()):
            if other.status != "cancelled":
                start, end = other.period
                if data["period_start"] <= end and start <= data["period_end"]:
                    self.report("distribution", where, project_id,
                                f"distribution {distribution_id} ({data['period_start']}..{data['period_end']}) "
                                f"overlaps {other.distribution_id} ({start}..{end}), which is not cancelled")
        self._check_policy(where, data)
        live = tuple(other.distribution_id for other in self._by_project.get(project_id, ())
                     if other.status != "cancelled")
        distribution = Distribution(distribution_id, project_id, data, where, earlier=live)
        self.distributions[distribution_id] = distribution
        self._by_project.setdefault(project_id, []).append(distribution)

    def _check_policy(self, where: Where, data: Mapping[str, Any]) -> None:
        in_force = self.policies.get(data["project_id"])
        applied = data["policy"]
        name = data["distribution_id"]
        if in_force is None:
            self.report("distribution", where, data["project_id"],
                        f"distribution {name} is declared but no PolicySet of the project precedes it")
            return
        for rate in _RATES:
            try:
                same = parse_rate(applied.get(rate)) == parse_rate(in_force.get(rate))
            except MoneyError:
                same = False
            if not same:
                self.report("distribution", where, data["project_id"],
                            f"distribution {name} applied {rate} {applied.get(rate)!r}; the policy in force "
                            f"says {in_force.get(rate)!r}")
        for key in ("guarantee_until", "guarantor_id"):
            if applied.get(key) != in_force.get(key):
                self.report("distribution", where, data["project_id"],
                            f"distribution {name} applied {key} {applied.get(key)!r}; the policy in force "
                            f"says {in_force.get(key)!r}")

    def _allocated(self, where: Where, data: dict[str, Any]) -> None:
        distribution = self.distributions.get(data["distribution_id"])
        investor = data["investor_id"]
        if distribution is None:
            self.report("distribution", where, data["project_id"],
                        f"allocation to {investor} in {data['distribution_id']}, which was never declared")
            return
        if distribution.status != "declared":
            self.report("distribution", where, data["project_id"],
                        f"allocation to {investor} in {distribution.distribution_id} after it was "
                        f"{distribution.status}")
        if investor in distribution.allocations:
            self.report("distribution", where, data["project_id"],
                        f"second allocation to {investor} in {distribution.distribution_id}")
        amounts = Amounts(*(parse_yuan(data[name]) for name in ALLOCATION_AMOUNTS))
        distribution.allocations[_intern(investor)] = Allocated(_intern(data["investor_type"]), amounts, where)

    def _approved(self, where: Where, envelope: dict[str, Any]) -> None:
        data = envelope["data"]
        distribution = self.distributions.get(data["distribution_id"])
        if distribution is None:
            self.report("distribution", where, data["project_id"],
                        f"approval of {data['distribution_id']}, which was never declared")
            return
        if distribution.status != "declared":
            self.report("distribution", where, data["project_id"],
                        f"approval of {distribution.distribution_id}, which was {distribution.status} already")
            if distribution.status == "approved":
                return
        distribution.status = "approved"
        distribution.approval_event_id = envelope["event_id"]
        distribution.approval_instant = envelope["occurred_at"]
        distribution.approval_where = where
        distribution.approved_payouts = {investor: (a.investor_type, a.amounts.payout)
                                         for investor, a in distribution.allocations.items()}

    def _cancelled(self, where: Where, data: dict[str, Any]) -> None:
        distribution = self.distributions.get(data["distribution_id"])
        if distribution is None:
            self.report("distribution", where, data["project_id"],
                        f"cancellation of {data['distribution_id']}, which was never declared")
            return
        if distribution.status != "declared":
            self.report("distribution", where, data["project_id"],
                        f"cancellation of {distribution.distribution_id}, which was {distribution.status} "
                        "(only a declared distribution may be cancelled)")
            if distribution.status == "approved":
                return
        distribution.status = "cancelled"

    def _paid(self, where: Where, envelope: dict[str, Any]) -> None:
        data = envelope["data"]
        payment_id, investor = data["payment_id"], data["investor_id"]
        project = data["project_id"]
        if payment_id in self.payments:
            self.report("payment", where, project, f"payment id {payment_id} is used a second time")
        else:
            self.payments[payment_id] = Payment(envelope["event_id"], {
                name: _intern(data[name]) if name in _SHARED else data[name] for name in _PAYMENT_FIELDS}, where)
        distribution = self.distributions.get(data["distribution_id"])
        if distribution is None:
            self.report("payment", where, project,
                        f"payment {payment_id} to {investor} is for {data['distribution_id']}, "
                        "which was never declared")
            return
        if distribution.status != "approved":
            self.report("payment", where, project,
                        f"payment {payment_id} to {investor}: distribution {distribution.distribution_id} is "
                        f"{distribution.status}, not approved")
        allocation = distribution.allocations.get(investor)
        amount = parse_yuan(data["amount"])
        if allocation is None:
            self.report("payment", where, project,
                        f"payment {payment_id} of {data['amount']} to {investor}, who has no allocation in "
                        f"{distribution.distribution_id}")
            return
        paid = distribution.paid.get(investor, 0) + amount
        distribution.paid[investor] = paid
        payout = allocation.amounts.payout
        if paid > payout:
            self.report("payment", where, project,
                        f"payment {payment_id} to {investor} brings the paid total to {format_yuan(paid)}, above "
                        f"the allocated payout {format_yuan(payout)} of {distribution.distribution_id}")

    # -- recomputation -----------------------------------------------------------------------------------

    def verify_distributions(self, replayed: Mapping[str, Mapping[int, int]]) -> None:
        """Recompute every declared distribution from its inputs, in the order of declaration, and compare
        with the log."""
        late: dict[str, frozenset[str]] = {}  # distribution -> the late items it took up (as recomputed)
        taken_before: dict[str, frozenset[str]] = {}  # distribution -> late items taken when it was declared
        for distribution in self.distributions.values():
            earlier = [EarlierDistribution.from_declared(self.distributions[other].declared,
                                                         taken_before=taken_before[other],
                                                         late_event_ids=late[other])
                       for other in distribution.earlier]
            taken_before[distribution.distribution_id] = frozenset().union(*(e.late_event_ids for e in earlier))
            result = self._verify(distribution, replayed, earlier)
            if result is None:  # not recomputable (reported): take its word for what it took up
                late[distribution.distribution_id] = frozenset(
                    str(item.get("event_id")) for item in distribution.declared.get("late_items") or ())
            else:
                late[distribution.distribution_id] = frozenset(item.event_id for item in result.late_items)

    def _verify(self, distribution: Distribution, replayed: Mapping[str, Mapping[int, int]],
                earlier: list[EarlierDistribution]) -> DistributionResult | None:
        declared = distribution.declared
        name, project = distribution.distribution_id, distribution.project_id
        for topic, parts in declared["input_positions"].items():
            for partition, position in parts.items():
                have = replayed.get(topic, {}).get(int(partition), 0)
                if position > have:
                    self.report("distribution", distribution.where, project,
                                f"distribution {name} was computed from {topic}[{partition}] up to offset "
                                f"{position}, but the replay holds only up to {have}: cannot recompute it")
                    return None
        start = dt.date.fromisoformat(declared["period_start"])
        end = dt.date.fromisoformat(declared["period_end"])
        records = self.inputs.records_for(project, start, end, earlier)
        try:
            result = recompute_declared(records, declared, earlier)
        except DistributionRuleError as exc:
            self.report("distribution", distribution.where, project,
                        f"distribution {name} cannot be recomputed from its inputs: {exc}")
            return None
        self._compare(distribution, result)
        return result

    def _compare_late_items(self, distribution: Distribution, result: DistributionResult) -> None:
        """The late items it lists must be exactly those it takes up when recomputed (DESIGN §6 step 1)."""
        logged = list(distribution.declared.get("late_items") or [])
        recomputed = [late_item_data(item) for item in result.late_items]
        if logged == recomputed:
            return
        listed = {str(item.get("event_id")): item for item in logged}
        wanted = {item["event_id"]: item for item in recomputed}
        problems = [f"{event_id} ({item['kind']} {item['amount']} of {item['date']}) is not listed"
                    for event_id, item in wanted.items() if event_id not in listed]
        problems += [f"{event_id} is listed but is not one of its late items" for event_id in listed
                     if event_id not in wanted]
        problems += [f"{event_id} is listed as {listed[event_id]}, recomputed {item}"
                     for event_id, item in wanted.items() if event_id in listed and listed[event_id] != item]
        if not problems:
            problems = ["they are listed out of order (by date, kind, event_id)"]
        self.report("distribution", distribution.where, distribution.project_id,
                    f"distribution {distribution.distribution_id}: late_items differ from the recomputation: "
                    + "; ".join(problems))

    def _compare(self, distribution: Distribution, result: DistributionResult) -> None:
        declared = distribution.declared
        name, project = distribution.distribution_id, distribution.project_id
        for total in TOTALS:
            logged = parse_yuan(declared[total], allow_negative=True)
            recomputed = getattr(result, total)
            if logged != recomputed:
                self.report("distribution", distribution.where, project,
                            f"distribution {name}: {total} is {format_yuan(logged)} in the log, recomputed "
                            f"{format_yuan(recomputed)}")
        self._compare_late_items(distribution, result)
        expected = {a.investor_id: a for a in result.allocations}
        for investor, allocated in distribution.allocations.items():
            want = expected.get(investor)
            if want is None:
                self.report("distribution", allocated.where, project,
                            f"distribution {name}: allocation to {investor} (payout "
                            f"{format_yuan(allocated.amounts.payout)}), who gets nothing when recomputed")
                continue
            if allocated.investor_type != want.investor_type:
                self.report("distribution", allocated.where, project,
                            f"distribution {name}: {investor} is allocated as {allocated.investor_type}, "
                            f"recomputed as {want.investor_type}")
            for amount in ALLOCATION_AMOUNTS:
                logged = getattr(allocated.amounts, amount)
                recomputed = getattr(want, amount)
                if logged != recomputed:
                    self.report("distribution", allocated.where, project,
                                f"distribution {name}: {amount} of {investor} is {format_yuan(logged)} in the "
                                f"log, recomputed {format_yuan(recomputed)}")
        for investor, want in expected.items():
            if investor not in distribution.allocations:
                self.report("distribution", distribution.where, project,
                            f"distribution {name}: no DividendAllocated for {investor}, whose recomputed payout "
                            f"is {format_yuan(want.payout)}")
