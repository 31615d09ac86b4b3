"""Benchmark 3 — distribution: the compute time of declaring one distribution as investors grow.

Measured on the pure rule the dividends service and the auditor both run
(``services.dividends.domain.compute_distribution``, DESIGN §6), and on the whole compute of a
declaration (the rule plus the DistributionDeclared and DividendAllocated payloads). Its
baseline is the least Python can do for the same numbers: one loop over the movements adding
amount × days per investor, and one ``divmod`` per investor for the pro-rata split.

A district of 1,000 projects: one declaration picked out of the district's whole log
(``services.dividends.inputs.compute_from_log``, as the auditor recomputes one), and the
quarter-end run that declares all of them.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.harness import Context, Figure, Outcome, profile_call, say
from bench.report import bar_chart
from services.contracts.money import format_yuan
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS
from services.dividends.domain import DistributionResult, InvestorCapitalChange, Policy, compute_distribution
from services.dividends.inputs import LogRecord, allocation_event_data, compute_from_log, declared_event_data

INVESTORS = (10, 100, 1_000, 10_000)
DISTRICT_SIZES = (10, 100, 1_000)
TARGET_MS = 100.0
START, END = dt.date(2026, 1, 1), dt.date(2026, 3, 31)
POLICY_WIRE = {"project_id": "bench-park", "management_fee_rate": "0.05", "tax_rate": "0.06", "payout_ratio": "0.90",
               "guaranteed_rate": "0.10", "guarantee_until": "2026-02-28", "guarantor_id": "luqiao-sasac"}


def project_inputs(investors: int, rng: random.Random, project_id: str = "bench-park"
                   ) -> tuple[list[tuple[dt.date, int]], list[tuple[dt.date, int]], list[InvestorCapitalChange]]:
    """Rents, expenses and capital movements of a project with ``investors`` investors.

    Mostly villages (land shares valued at 2-15 million yuan), some companies and one
    government guarantor; a third invest again during the quarter and one in twenty takes
    part of its capital out.
    """
    movements: list[InvestorCapitalChange] = []
    for i in range(investors):
        investor = f"{project_id}-inv-{i:05d}"
        kind = "collective" if i % 10 < 8 else ("company" if i % 10 == 8 else "government")
        first = rng.randrange(2_000_000, 15_000_000) * 100
        movements.append(InvestorCapitalChange(investor, kind, first,
                                               dt.date(2024, 1, 1) + dt.timedelta(rng.randrange(700))))
        if i % 3 == 0:
            movements.append(InvestorCapitalChange(investor, kind, rng.randrange(100_000, 2_000_000) * 100,
                                                   START + dt.timedelta(rng.randrange(90))))
        if i % 20 == 0:
            movements.append(InvestorCapitalChange(investor, kind, -(first // 5),
                                                   START + dt.timedelta(rng.randrange(90))))
    leases = max(3, investors // 5)
    rents = [(dt.date(2026, month, rng.randrange(1, 28)), rng.randrange(20_000, 200_000) * 100)
             for _ in range(leases) for month in (1, 2, 3)]
    expenses = [(START + dt.timedelta(rng.randrange(90)), rng.randrange(1_000, 50_000) * 100)
                for _ in range(max(3, investors // 50))]
    return rents, expenses, movements


def floor_compute(movements: list[InvestorCapitalChange], pool: int) -> dict[str, int]:
    """The baseline: capital-days per investor and a plain pro-rata split, nothing else."""
    first, last = START.toordinal(), END.toordinal()
    cds: dict[str, int] = {}
    for m in movements:
        start = max(m.effective_on.toordinal(), first)
        cds[m.investor_id] = cds.get(m.investor_id, 0) + m.amount * (last - start + 1)
    total = sum(cds.values())
    return {investor: pool * cd // total for investor, cd in cds.items()}


def declaration(policy: Policy, rents: Any, expenses: Any, movements: Any) -> tuple[DistributionResult, int]:
    """The compute of declaring: the rule, then the events' payloads (what the service publishes)."""
    result = compute_distribution(START, END, policy, rents, expenses, movements)
    declared_event_data(distribution_id="bench-2026q1", project_id="bench-park", policy=POLICY_WIRE, result=result,
                        input_positions={LEDGER_INVESTMENTS: {"0": 1}, RENTALS: {"0": 1}})
    for allocation in result.allocations:
        allocation_event_data(distribution_id="bench-2026q1", project_id="bench-park", allocation=allocation)
    return result, len(result.allocations)


def timed(fn: Callable[[], Any], *, min_runs: int = 7, min_seconds: float = 0.5, max_runs: int = 200) -> float:
    """Median CPU time of ``fn`` in milliseconds (this process's, so other load on the machine
    does not count), over enough runs to be stable."""
    samples: list[float] = []
    began = time.perf_counter()
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() - began < min_seconds):
        t0 = time.process_time()
        fn()
        samples.append((time.process_time() - t0) * 1000)
    return statistics.median(samples)


def district_log(projects: int, rng: random.Random) -> tuple[list[LogRecord], dict[str, dict[str, int]]]:
    """The input records of a district: ``projects`` projects of ~10 investors, as the topics hold them."""
    records: list[LogRecord] = []
    offsets = {LEDGER_INVESTMENTS: 0, RENTALS: 0}

    def add(topic: str, event_type: str, data: dict[str, Any]) -> None:
        envelope = {"event_id": f"{topic[-8:]}-{offsets[topic]}", "type": event_type, "data": data}
        records.append(LogRecord(topic, 0, offsets[topic], envelope))
        offsets[topic] += 1

    for p in range(projects):
        project_id = f"project-{p:04d}"
        rents, expenses, movements = project_inputs(rng.randrange(5, 16), rng, project_id)
        for m in movements:
            if m.amount > 0:
                add(LEDGER_INVESTMENTS, "CashInvested", {
                    "investment_id": f"{m.investor_id}-{offsets[LEDGER_INVESTMENTS]}", "project_id": project_id,
                    "investor_id": m.investor_id, "investor_type": m.investor_type, "amount": format_yuan(m.amount),
                    "effective_on": m.effective_on.isoformat()})
            else:
                add(LEDGER_INVESTMENTS, "InvestmentWithdrawn", {
                    "withdrawal_id": f"{m.investor_id}-w", "project_id": project_id, "investor_id": m.investor_id,
                    "amount": format_yuan(-m.amount), "effective_on": m.effective_on.isoformat(),
                    "reason": "调整"})
        for on, fen in rents:
            add(RENTALS, "RentReceived", {"payment_id": f"{project_id}-r{offsets[RENTALS]}", "lease_id": "l",
                                          "project_id": project_id, "amount": format_yuan(fen),
                                          "received_on": on.isoformat()})
        for on, fen in expenses:
            add(RENTALS, "ExpenseRecorded", {"expense_id": f"{project_id}-e{offsets[RENTALS]}",
                                             "project_id": project_id, "category": "maintenance",
                                             "amount": format_yuan(fen), "incurred_on": on.isoformat(), "memo": ""})
    positions = {topic: {"0": off} for topic, off in offsets.items()}
    return records, positions


def run(ctx: Context) -> Outcome:
    outcome = Outcome("distribution", "3. Distribution: time to declare one distribution")
    rng = random.Random(7)
    policy = Policy.from_wire(POLICY_WIRE)
    rows = []
    curve = []
    inputs_10k: tuple[Any, Any, Any] | None = None
    for n in INVESTORS:
        rents, expenses, movements = project_inputs(n, rng)
        rule_ms = timed(partial(compute_distribution, START, END, policy, rents, expenses, movements))
        declare_ms = timed(partial(declaration, policy, rents, expenses, movements))
        pool = compute_distribution(START, END, policy, rents, expenses, movements).pool
        floor_ms = timed(partial(floor_compute, movements, pool))
        rows.append(f"| {n:,} | {len(movements):,} | {rule_ms:.2f} | {declare_ms:.2f} | {floor_ms:.2f} | "
                    f"{rule_ms / floor_ms:.1f} | {1000 * rule_ms / n:.1f} |")
        curve.append((f"{n:>6,} investors", declare_ms))
        say(f"  {n:>6,} investors: rule {rule_ms:.2f} ms, declaration {declare_ms:.2f} ms, floor {floor_ms:.2f} ms")
        if n == 10_000:
            inputs_10k = (rents, expenses, movements)
            outcome.add(Figure("Compute one distribution, 10,000 investors (compute_distribution)", rule_ms, "ms",
                               baseline=floor_ms, baseline_label="floor (capital-days + divmod loop)",
                               ratio=rule_ms / floor_ms, ratio_label="× floor",
                               target=f"≤ {TARGET_MS:.0f} ms", met=rule_ms <= TARGET_MS, digits=1))
            outcome.add(Figure("Declare one distribution, 10,000 investors (rule + event payloads)", declare_ms, "ms",
                               baseline=floor_ms, baseline_label="floor", ratio=declare_ms / floor_ms,
                               ratio_label="× floor", digits=1))
    outcome.details += [
        "Median CPU time of repeated runs (the benchmark process's CPU time: the compute, not the wait for "
        "a core on a shared machine). *rule*: `compute_distribution` alone; *declaration*: the rule plus "
        "building the DistributionDeclared and every DividendAllocated payload; *floor*: a bare loop doing only "
        "capital-days and a pro-rata `divmod` (no guarantee, no rounding rules, no checks).",
        "",
        "| investors | capital movements | rule (ms) | declaration (ms) | floor (ms) | rule ÷ floor "
        "| µs per investor |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "The curve (declaration time, linear scale):",
        "",
        bar_chart(curve, "ms"),
        "",
    ]

    # A district: one declaration out of the district's log, and the quarter-end run over all of it.
    district_rows = []
    for size in DISTRICT_SIZES:
        records, positions = district_log(size, rng)
        target_project = f"project-{size // 2:04d}"
        one_ms = timed(partial(compute_from_log, records, project_id=target_project, period_start=START,
                               period_end=END, policy=policy, input_positions=positions), min_runs=3, min_seconds=0.3)
        grouped: dict[str, list[LogRecord]] = {}
        for record in records:
            grouped.setdefault(record.envelope["data"]["project_id"], []).append(record)
        t0 = time.process_time()
        for project_id, own in grouped.items():
            compute_from_log(own, project_id=project_id, period_start=START, period_end=END, policy=policy,
                             input_positions=positions)
        all_ms = (time.process_time() - t0) * 1000
        district_rows.append(f"| {size:,} | {len(records):,} | {one_ms:.1f} | {all_ms:.0f} | {all_ms / size:.2f} |")
        say(f"  district of {size:,} projects ({len(records):,} input records): one declaration from the log "
            f"{one_ms:.1f} ms, all {size:,} declarations {all_ms:.0f} ms")
        if size == 1_000:
            outcome.add(Figure("District of 1,000 projects: declare all (quarter-end run)", all_ms, "ms", digits=0))
            outcome.add(Figure("District of 1,000 projects: one declaration recomputed from the district's log",
                               one_ms, "ms", digits=1))
    outcome.details += [
        "A district (each project ~10 investors, a quarter of rents and expenses; the input topics as "
        "`LogRecord`s). *one from the log*: `compute_from_log` for one project, scanning the whole district's "
        "records (what the auditor does for each DistributionDeclared); *all*: every project's declaration, "
        "records grouped by project first.",
        "",
        "| projects | input records | one from the log (ms) | all declarations (ms) | ms per declaration |",
        "|---:|---:|---:|---:|---:|",
        *district_rows,
        "",
    ]
    outcome.note("Compute only: the dividends service adds its projection reads and publishing (acks=all) of "
                 "1 + N events; the service path is not measured here.")
    if inputs_10k is not None and ctx.should_profile(outcome.missed):
        rents, expenses, movements = inputs_10k
        outcome.profile = profile_call(lambda: [declaration(policy, rents, expenses, movements) for _ in range(5)])
    return outcome
