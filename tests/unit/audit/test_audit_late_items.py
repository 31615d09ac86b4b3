"""The audit's recomputation of late items (DESIGN §6 step 1), on logs written in memory (no broker).

A rent or expense recorded after a distribution was declared and dated inside its period counts once, in the
next distribution of the project declared after it. The audit recomputes every distribution in the order of
declaration, with the distributions of the project that were not cancelled then, and must get exactly the
declared totals and ``late_items``; a declaration that forgot one (as before late items existed) is found.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from services.audit.checks.auditor import AuditResult, run_audit
from services.audit.sources.archive import ArchiveSource
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS
from services.devtools.synthetic import LogWriter
from services.dividends.domain import Policy
from services.dividends.inputs import allocation_event_data, compute_from_log, declared_event_data

P = "binhai-park"
V1, V2 = "jinqing-lianmeng", "jinqing-xinqiao"


def audit(log: LogWriter, tmp_path: Path) -> AuditResult:
    return run_audit(ArchiveSource(log.write(tmp_path / "archive.jsonl")), archive=True)


def park() -> LogWriter:
    log = LogWriter()
    log.register_investor("state-co", "路桥国资公司")
    log.register_collective(V1, "联盟村")
    log.register_collective(V2, "新桥村")
    log.register_project(P, "路桥滨海产业园")
    log.invest_land(P, V1, "collective", "14.2000", "50000.00", "2025-01-01")
    log.invest_land(P, V2, "collective", "8.5000", "50000.00", "2025-03-01")
    log.invest_cash(P, "state-co", "government", "2000000.00", "2025-01-01")
    log.set_policy(P, guarantee_until="2028-12-31", guarantor_id="state-co")
    for month in range(1, 13):
        log.rent(P, "50000.00", f"2025-{month:02d}-05")
    log.at("2026-01-05")
    return log


def declared(log: LogWriter, distribution_id: str) -> dict[str, object]:
    return next(row["event"]["data"] for row in log.rows if row["event"]["type"] == "DistributionDeclared"
                and row["event"]["data"]["distribution_id"] == distribution_id)


def test_late_rent_and_expense_are_taken_up_by_the_next_distribution_and_the_audit_agrees(tmp_path: Path) -> None:
    log = park()
    d2025 = log.declare(P, "2025-01-01", "2025-12-31")
    log.approve(d2025)
    late_rent = log.rent(P, "40000.00", "2025-12-20")["event_id"]
    log.expense(P, "3000.00", "2025-11-30")
    log.rent(P, "60000.00", "2026-02-05")
    d2026 = log.declare(P, "2026-01-01", "2026-06-30")
    data = declared(log, d2026)
    assert (data["gross_rent"], data["expenses"]) == ("100000.00", "3000.00")
    assert [(item["kind"], item["amount"], item["date"]) for item in data["late_items"]] == [  # type: ignore[attr-defined]
        ("expense", "3000.00", "2025-11-30"), ("rent", "40000.00", "2025-12-20")]
    assert late_rent in [item["event_id"] for item in data["late_items"]]  # type: ignore[attr-defined]
    log.declare(P, "2026-07-01", "2026-12-31")
    result = audit(log, tmp_path)
    assert result.ok, result.findings.items


def test_a_cancelled_distribution_frees_its_late_items_for_the_next_one_and_the_audit_agrees(
        tmp_path: Path) -> None:
    log = park()
    log.declare(P, "2025-01-01", "2025-12-31")
    late_rent = log.rent(P, "40000.00", "2025-12-20")["event_id"]
    first = log.declare(P, "2026-01-01", "2026-06-30")
    log.cancel(first)
    again = log.declare(P, "2026-01-01", "2026-06-30", distribution_id="binhai-park-2026h1-2")
    assert [item["event_id"] for item in declared(log, again)["late_items"]] == [late_rent]  # type: ignore[attr-defined]
    result = audit(log, tmp_path)
    assert result.ok, result.findings.items


def test_a_declaration_that_left_a_late_item_out_is_found(tmp_path: Path) -> None:
    log = park()
    log.declare(P, "2025-01-01", "2025-12-31")
    late_rent = log.rent(P, "40000.00", "2025-12-20")["event_id"]
    # Declared by the old rule: without the earlier distribution, so the late rent counts nowhere.
    policy = log._policies[P]
    positions = log.positions((LEDGER_INVESTMENTS, RENTALS))
    start, end = dt.date(2026, 1, 1), dt.date(2026, 6, 30)
    result = compute_from_log(log._inputs.records_for(P, start, end), project_id=P, period_start=start,
                              period_end=end, policy=Policy.from_wire(policy), input_positions=positions)
    log.publish("DistributionDeclared", P, declared_event_data(
        distribution_id="forgetful", project_id=P, policy=policy, result=result, input_positions=positions))
    for allocation in result.allocations:
        log.publish("DividendAllocated", P, allocation_event_data(distribution_id="forgetful", project_id=P,
                                                                  allocation=allocation))
    found = audit(log, tmp_path).findings.of("distribution")
    messages = " | ".join(f.message for f in found)
    assert "distribution forgetful: gross_rent is 0.00 in the log, recomputed 40000.00" in messages
    assert f"distribution forgetful: late_items differ from the recomputation: {late_rent} (rent 40000.00 of " \
           "2025-12-20) is not listed" in messages
