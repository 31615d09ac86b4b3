"""The audit of a village's member plans (DESIGN §11): every approved plan recomputed from the register and the
books, its allocations, payments and entries compared to the fen.

The logs are written by services.devtools.synthetic (the split by services.members.split, the entries as the
ledger posts them), so an untouched log passes, and each change — a wrong allocation, an entry the ledger never
posted, a payment of the wrong amount — is the only thing wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgery import reseal

from services.audit.checks.auditor import AuditResult, run_audit
from services.audit.sources.archive import ArchiveSource
from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import MEMBERS
from services.devtools.synthetic import LogWriter, archive_line

V = "jinqing-lianmeng"
PLAN = "lianmeng-2025"
Row = dict[str, Any]


def village(*, pay: bool = True, post_payment_entries: bool = True) -> tuple[LogWriter, dict[str, str]]:
    """联盟村 with five households, a transfer before and one after the record date, its 2025 books closed, and
    its 2025 plan proposed, approved and (with ``pay``) paid."""
    log = LogWriter()
    log.register_collective(V, "联盟村股份经济合作社")
    log.set_charter(V, {"population": "1", "farm-age": "0.5"})
    log.register_household(V, "lm-h001", "张三明", {"population": "3", "farm-age": "2.7"})
    log.register_household(V, "lm-h002", "王五", {"population": "2", "farm-age": "0"})
    log.register_household(V, "lm-h003", "李四", {"population": "1", "farm-age": "3.1"})
    log.register_household(V, "lm-h004", "陈六", {"population": "4", "farm-age": "1.3"})
    log.register_household(V, "lm-h005", "欧阳小红", {"population": "1", "farm-age": "0.9"})
    # 李四 dies in 2023: his shares go to his son's household; the household keeps no shares.
    log.transfer_shares(V, "lm-h003", "lm-h002", "population", "1", "2023-06-15")
    log.transfer_shares(V, "lm-h003", "lm-h002", "farm-age", "3.1", "2023-06-15")
    # After the record date: not part of the 2025 split.
    log.transfer_shares(V, "lm-h004", "lm-h005", "population", "1", "2026-01-05", reason="gift")
    log.post_entry(V, "2025-03-31", [("102", "debit", "120000.00"), ("501", "credit", "120000.00")], "发包收入")
    log.post_entry(V, "2025-12-20", [("513", "debit", "20000.01"), ("102", "credit", "20000.01")], "管理费用")
    log.close_year(V, 2025, "120000.00", "20000.01")
    amounts = log.propose_plan(V, PLAN, 2025, distributable="99999.99", net_income="99999.99", reserve_rate="0.10",
                               welfare="5000.00", members_total="80000.00", record_date="2025-12-31")
    log.approve_plan(PLAN, "2026-01-18")
    if pay:
        for hid, amount in sorted(amounts.items()):
            if post_payment_entries:
                log.pay_household(PLAN, hid, amount, "2026-01-26")
            else:
                log.publish("HouseholdDividendPaid", V, {
                    "collective_id": V, "plan_id": PLAN, "payment_id": f"mp-{hid}", "household_id": hid,
                    "amount": amount, "paid_on": "2026-01-26", "bank_reference": "BANK"})
    return log, amounts


def audit(rows: list[Row], tmp_path: Path) -> AuditResult:
    path = tmp_path / "archive.jsonl"
    path.write_text("".join(archive_line(row) for row in rows), encoding="utf-8")
    return run_audit(ArchiveSource(path), archive=True)


def messages(result: AuditResult, check: str) -> list[str]:
    return [f.message for f in result.findings.of(check)]


def test_a_clean_plan_passes_and_is_recomputed(tmp_path: Path) -> None:
    log, amounts = village()
    result = audit(log.rows, tmp_path)
    assert result.ok, [f.message for f in result.findings.items]
    plan = result.auditor.members.plans[PLAN]
    assert plan.status == "approved" and len(plan.payments) == 4
    assert result.auditor.members.recomputed == 1
    # 李四's household has nothing left on the record date; the gift of 2026 does not count.
    assert sorted(amounts) == ["lm-h001", "lm-h002", "lm-h004", "lm-h005"]
    assert sum(parse_yuan(a) for a in amounts.values()) == 80000_00


def test_a_wrong_allocation_is_found_with_its_household_and_the_total(tmp_path: Path) -> None:
    log, _ = village(pay=False)
    rows: list[Row] = json.loads(json.dumps(log.rows))
    row = next(r for r in rows if r["event"]["type"] == "HouseholdAllocated"
               and r["event"]["data"]["household_id"] == "lm-h002")
    right = row["event"]["data"]["amount"]
    row["event"]["data"]["amount"] = format_yuan(parse_yuan(right) + 1)
    reseal(rows, MEMBERS, V)  # a forger who knows the hash rule: only the arithmetic gives it away
    found = messages(audit(rows, tmp_path), "plan")
    assert any("allocation of lm-h002" in m and f"is not {right}" in m for m in found), found
    assert any("add up to 80000.01" in m for m in found), found


def test_an_allocation_to_a_household_without_shares_is_found(tmp_path: Path) -> None:
    log, _ = village(pay=False)
    rows: list[Row] = json.loads(json.dumps(log.rows))
    row = next(r for r in rows if r["event"]["type"] == "HouseholdAllocated"
               and r["event"]["data"]["household_id"] == "lm-h002")
    row["event"]["data"]["household_id"] = "lm-h003"  # the household that passed its shares on in 2023
    reseal(rows, MEMBERS, V)
    found = messages(audit(rows, tmp_path), "plan")
    assert any("allocation of lm-h003: the household has no shares" in m for m in found), found
    assert any("lm-h002 has weight" in m and "has no allocation" in m for m in found), found


def test_a_payment_entry_the_ledger_never_posted_is_found(tmp_path: Path) -> None:
    log, _ = village(post_payment_entries=False)
    result = audit(log.rows, tmp_path)
    found = messages(result, "posting")
    assert len(found) == 4 and all("is not posted in the books of jinqing-lianmeng" in m for m in found), found
    assert not messages(result, "plan")


def test_a_missing_or_changed_appropriations_entry_is_found(tmp_path: Path) -> None:
    log, _ = village(pay=False)
    rows: list[Row] = json.loads(json.dumps(log.rows))
    entry = next(r for r in rows if r["event"]["type"] == "EntryPosted"
                 and r["event"]["data"]["origin"]["kind"] == "member_plan")
    entry["event"]["data"]["lines"] = [{"account": "322/undistributed", "debit": "94999.99"},
                                       {"account": "311", "credit": "9999.99"},
                                       {"account": "211/welfare", "credit": "5000.00"},
                                       {"account": "211/member-dividends", "credit": "80000.00"}]
    reseal(rows, entry["topic"], V)
    found = messages(audit(rows, tmp_path), "posting")
    assert len(found) == 1 and "the appropriations of plan lianmeng-2025" in found[0], found
    assert "expected Dr 322/undistributed 95000.00" in found[0]


def test_a_payment_of_another_amount_and_a_second_payment_are_found(tmp_path: Path) -> None:
    log, amounts = village()
    log.pay_household(PLAN, "lm-h001", amounts["lm-h001"], "2026-02-01")  # paid twice
    log.pay_household(PLAN, "lm-h002", "1.00", "2026-02-01")
    found = messages(audit(log.rows, tmp_path), "plan")
    assert any("lm-h001 is paid again" in m for m in found), found
    assert any("of 1.00 to lm-h002, whose allocation is " + amounts["lm-h002"] in m for m in found), found


def test_a_distributable_amount_that_is_not_the_books_is_found(tmp_path: Path) -> None:
    log = LogWriter()
    log.register_collective(V, "联盟村股份经济合作社")
    log.set_charter(V)
    log.register_household(V, "lm-h001", "张三明", {"population": "3", "farm-age": "2.7"})
    log.post_entry(V, "2025-03-31", [("102", "debit", "1000.00"), ("501", "credit", "1000.00")], "发包收入")
    log.close_year(V, 2025, "1000.00")
    log.propose_plan(V, PLAN, 2025, distributable="5000.00", net_income="1000.00", reserve_rate="0.10",
                     welfare="0.00", members_total="4000.00", record_date="2025-12-31")
    log.approve_plan(PLAN, "2026-01-18")
    found = messages(audit(log.rows, tmp_path), "plan")
    assert any("distributable 5000.00 is not the balance of 322/undistributed on 2025-12-31 in the books "
               "(1000.00)" in m for m in found), found


def test_a_plan_of_a_year_never_closed_is_found(tmp_path: Path) -> None:
    log = LogWriter()
    log.register_collective(V, "联盟村股份经济合作社")
    log.set_charter(V)
    log.register_household(V, "lm-h001", "张三明", {"population": "3"})
    log.propose_plan(V, PLAN, 2025, distributable="0.00", net_income="0.00", reserve_rate="0.10",
                     welfare="0.00", members_total="0.00", record_date="2025-12-31")
    log.approve_plan(PLAN, "2026-01-18")
    found = messages(audit(log.rows, tmp_path), "plan")
    assert any("no year-end close of 2025" in m for m in found), found


def test_an_entry_of_a_plan_without_a_cause_is_found(tmp_path: Path) -> None:
    log, _ = village(pay=False)
    log.post_entry(V, "2026-02-01", [("211/member-dividends", "debit", "100.00"), ("102", "credit", "100.00")],
                   "发放股份分红", origin="member_dividend", ref="mp-ghost")
    found = messages(audit(log.rows, tmp_path), "posting")
    assert len(found) == 1 and "(member_dividend mp-ghost) has no cause in the log" in found[0], found


def test_a_plan_whose_close_was_reversed_is_found(tmp_path: Path) -> None:
    log = LogWriter()
    log.register_collective(V, "联盟村股份经济合作社")
    log.set_charter(V)
    log.register_household(V, "lm-h001", "张三明", {"population": "3"})
    log.post_entry(V, "2025-03-31", [("102", "debit", "1000.00"), ("501", "credit", "1000.00")], "发包收入")
    close = log.close_year(V, 2025, "1000.00")
    log.propose_plan(V, PLAN, 2025, distributable="1000.00", net_income="1000.00", reserve_rate="0.10",
                     welfare="0.00", members_total="900.00", record_date="2025-12-31")
    assert audit(log.rows, tmp_path).ok  # proposed, not approved: nothing to recompute yet
    log.reverse_entry(V, close, "2025-12-31", "结转有误")
    log.approve_plan(PLAN, "2026-01-18")
    found = messages(audit(log.rows, tmp_path), "plan")
    assert any("no year-end close of 2025" in m for m in found), found
