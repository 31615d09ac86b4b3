"""Each check of the audit on small logs written in memory (no broker): what it finds, and where."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from services.audit.checks.auditor import AuditResult, run_audit
from services.audit.checks.findings import Finding
from services.audit.sources.archive import ArchiveSource
from services.audit.sources.records import parse_offsets
from services.contracts import envelope as env
from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS
from services.devtools.synthetic import LogWriter, archive_line, small_scenario

P = "binhai-park"
V1, V2 = "jinqing-lianmeng", "jinqing-xinqiao"


def audit(log: LogWriter, tmp_path: Path, **options: Any) -> AuditResult:
    path = log.write(tmp_path / "archive.jsonl")
    return run_audit(ArchiveSource(path, **options), archive=True)


def park(*, rents: int = 6) -> LogWriter:
    """Two villages with land in the park, a state co-investor, a policy and half a year of rent."""
    log = LogWriter()
    log.register_investor("state-co", "路桥国资公司")
    log.register_collective(V1, "联盟村")
    log.register_collective(V2, "新桥村")
    log.register_project(P, "路桥滨海产业园")
    log.invest_land(P, V1, "collective", "14.2000", "50000.00", "2025-01-01")
    log.invest_land(P, V2, "collective", "8.5000", "50000.00", "2025-03-01")
    log.invest_cash(P, "state-co", "government", "2000000.00", "2025-01-01")
    log.set_policy(P, guarantee_until="2028-12-31", guarantor_id="state-co")
    for month in range(1, rents + 1):
        log.rent(P, "50000.00", f"2025-{month:02d}-05")
    log.expense(P, "3000.00", "2025-02-10")
    return log


def only(result: AuditResult, check: str) -> Finding:
    found = result.findings.of(check)
    assert len(found) == 1, result.findings.items
    assert len(result.findings) == 1, result.findings.items
    return found[0]


def last(log: LogWriter) -> tuple[str, int, int]:
    row = log.rows[-1]
    return row["topic"], row["partition"], row["offset"]


def place(finding: Finding) -> tuple[str | None, int | None, int | None]:
    return finding.topic, finding.partition, finding.offset


# -- the books -----------------------------------------------------------------------------------------


def test_a_clean_park_with_a_paid_distribution_and_a_withdrawal_passes(tmp_path: Path) -> None:
    log = park()
    log.withdraw(P, V2, "100000.00", "2025-05-01")
    log.at("2025-07-02")
    distribution = log.declare(P, "2025-01-01", "2025-06-30")
    log.approve(distribution)
    log.pay(distribution, "2025-07-10")
    result = audit(log, tmp_path)
    assert result.ok, result.findings.items
    # The withdrawal went back to the bank: Dr 102 / Cr 141/binhai-park in 新桥村's books.
    rows = {row.code: row for row in result.auditor.books.trial_balance(V2).rows}
    assert rows["141/binhai-park"].balance == 425_000_00 - 100_000_00
    assert rows["112/binhai-park"].balance == 0


def test_an_unbalanced_entry_is_found_and_named(tmp_path: Path) -> None:
    log = park(rents=0)
    log.post_entry(V1, "2025-02-01", [("102", "debit", "100.00"), ("503", "credit", "99.99")], "少记一分")
    finding = only(audit(log, tmp_path), "balanced")
    assert place(finding) == last(log) and finding.subject == V1
    assert "debits 100.00 ≠ credits 99.99" in finding.message


def test_a_line_on_an_account_off_the_chart_is_found(tmp_path: Path) -> None:
    log = park(rents=0)
    log.post_entry(V1, "2025-02-01", [("102", "debit", "100.00"), ("599", "credit", "100.00")], "无此科目")
    finding = only(audit(log, tmp_path), "accounts")
    assert place(finding) == last(log)
    assert "'599' is not on the chart" in finding.message


def test_entries_of_an_unknown_village_or_in_a_closed_month_are_found(tmp_path: Path) -> None:
    log = park(rents=0)
    log.post_entry("jinqing-nowhere", "2025-02-01", [("102", "debit", "1.00"), ("503", "credit", "1.00")], "x")
    stranger = last(log)
    log.close_period(V1, "2025-01")
    log.post_entry(V1, "2025-01-31", [("102", "debit", "1.00"), ("503", "credit", "1.00")], "补记")
    closed = last(log)
    result = audit(log, tmp_path)
    books = result.findings.of("books")
    assert [place(f) for f in books] == [stranger, closed]
    assert "not registered" in books[0].message
    assert "inside closed period 2025-01" in books[1].message


def test_a_reversal_of_nothing_and_a_second_reversal_are_found(tmp_path: Path) -> None:
    log = park(rents=0)
    log.reverse_entry(V1, "00000000-0000-4000-8000-000000000000", "2025-02-01", "冲销")
    nothing = last(log)
    entry = log.post_entry(V1, "2025-02-01", [("513", "debit", "10.00"), ("102", "credit", "10.00")], "办公")
    log.reverse_entry(V1, entry["data"]["entry_id"], "2025-02-02", "冲销")
    log.reverse_entry(V1, entry["data"]["entry_id"], "2025-02-03", "再冲")
    twice = last(log)
    books = audit(log, tmp_path).findings.of("books")
    assert [place(f) for f in books] == [nothing, twice]
    assert "which is not an entry" in books[0].message
    assert "already reversed" in books[1].message


# -- dividends -------------------------------------------------------------------------------------------


def test_a_payment_above_the_allocation_is_found(tmp_path: Path) -> None:
    log = park()
    log.at("2025-07-02")
    distribution = log.declare(P, "2025-01-01", "2025-06-30")
    log.approve(distribution)
    log.pay(distribution, "2025-07-10", investor_id=V1)
    log.pay(distribution, "2025-07-11", investor_id=V1)  # paid twice
    second_payment = log.rows[-2]  # the DividendPaid (its derived entry follows it)
    finding = only(audit(log, tmp_path), "payment")
    assert place(finding) == (second_payment["topic"], second_payment["partition"], second_payment["offset"])
    assert finding.subject == P and "above the allocated payout" in finding.message


def test_a_payment_before_approval_is_found(tmp_path: Path) -> None:
    log = park()
    log.at("2025-07-02")
    distribution = log.declare(P, "2025-01-01", "2025-06-30")
    log.pay(distribution, "2025-07-10", investor_id="state-co")
    finding = only(audit(log, tmp_path), "payment")
    assert place(finding) == last(log)
    assert "is declared, not approved" in finding.message


def test_an_approved_allocation_missing_from_the_books_is_found(tmp_path: Path) -> None:
    log = park()
    log.at("2025-07-02")
    distribution = log.declare(P, "2025-01-01", "2025-06-30")
    # The approval is published, but the ledger never posts the villages' income.
    log.publish("DistributionApproved", P, {"distribution_id": distribution, "project_id": P,
                                             "approved_by": "board"})
    approval = last(log)
    result = audit(log, tmp_path)
    postings = result.findings.of("posting")
    assert len(result.findings) == 2 == len(postings)
    assert {place(f) for f in postings} == {approval}
    assert {f.message.split(" is not posted in the books of ")[1].split(" ")[0] for f in postings} == {V1, V2}


def test_an_automatic_entry_without_a_cause_is_found(tmp_path: Path) -> None:
    log = park(rents=0)
    log.post_entry(V1, "2025-03-01", [("102", "debit", "500.00"), ("112/binhai-park", "credit", "500.00")],
                   "收到分红", origin="payment", ref="pay-nobody")
    finding = only(audit(log, tmp_path), "posting")
    assert place(finding) == last(log) and finding.subject == V1
    assert "has no cause in the log" in finding.message


def test_a_distribution_declared_under_another_policy_or_overlapping_another_is_found(tmp_path: Path) -> None:
    log = park()
    log.at("2025-07-02")
    log.declare(P, "2025-01-01", "2025-06-30")
    log.rent(P, "1000.00", "2025-07-05")
    log.declare(P, "2025-06-01", "2025-07-31", distribution_id="overlapping")
    overlapping = next(row for row in log.rows if row["event"]["type"] == "DistributionDeclared"
                       and row["event"]["data"]["distribution_id"] == "overlapping")
    found = audit(log, tmp_path).findings.of("distribution")
    assert [(place(f), "overlaps" in f.message) for f in found] == [
        ((DIVIDENDS, overlapping["partition"], overlapping["offset"]), True)]
    # A declaration that applied a payout ratio other than the policy in force.
    log = park()
    log.at("2025-07-02")
    log._policies[P] = {**log._policies[P], "payout_ratio": "1.00"}
    log.declare(P, "2025-01-01", "2025-06-30")
    found = audit(log, tmp_path).findings.of("distribution")
    assert len(found) == 1 and "applied payout_ratio '1.00'; the policy in force says '0.90'" in found[0].message


def test_a_cancelled_distribution_cannot_be_approved(tmp_path: Path) -> None:
    log = park()
    log.at("2025-07-02")
    distribution = log.declare(P, "2025-01-01", "2025-06-30")
    log.publish("DistributionCancelled", P, {"distribution_id": distribution, "project_id": P, "reason": "重算"})
    log.approve(distribution)
    result = audit(log, tmp_path)
    [lifecycle] = result.findings.of("distribution")
    assert "which was cancelled already" in lifecycle.message


# -- the record contract ---------------------------------------------------------------------------------


def test_records_that_break_the_envelope_contract_are_found(tmp_path: Path) -> None:
    log = park(rents=1)
    path = log.write(tmp_path / "archive.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def sealed(event_type: str, subject: str, data: dict[str, Any], source: str) -> dict[str, Any]:
        return env.seal(env.new_envelope(event_type=event_type, version=1, source=source, subject=subject,
                                         data=data, actor="x"), env.ChainHead())

    good_rent = {"payment_id": "r-9", "lease_id": "l-1", "project_id": "other-park", "invoice_id": None,
                 "amount": "10.00", "received_on": "2025-01-01"}
    extra = [
        (RENTALS, "bad-amount", sealed("RentReceived", "bad-amount",
                                       {**good_rent, "project_id": "bad-amount", "amount": "10.5"}, "rentals")),
        (LEDGER_ENTRIES, "wrong-topic", sealed("RentReceived", "wrong-topic",
                                               {**good_rent, "project_id": "wrong-topic"}, "rentals")),
        (RENTALS, "impostor", sealed("RentReceived", "impostor", {**good_rent, "project_id": "impostor"}, "ledger")),
        (RENTALS, "subject-a", sealed("RentReceived", "subject-a", {**good_rent, "project_id": "subject-b"},
                                      "rentals")),
    ]
    offset = 100
    for topic, key, event in extra:
        rows.append({"topic": topic, "partition": 2, "offset": offset, "timestamp": 1, "key": key, "event": event})
        offset += 1
    lines = [archive_line(row).rstrip("\n") for row in rows]
    lines.append(f'{{"topic": "{RENTALS}", "partition": 2, "offset": {offset}, "timestamp": 1, "key": "f", '
                 '"event": {"amount": 12.5}}')
    lines.append("not json at all")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_audit(ArchiveSource(path), archive=False)
    schema = result.findings.of("schema")
    messages = [f.message for f in schema]
    assert len(schema) == 6, messages
    assert "data.amount: amount must have exactly two decimals" in messages[0]
    assert "RentReceived does not belong on baotuan.ledger.entries.v1" in messages[1]
    assert "source 'ledger' is not 'rentals'" in messages[2]
    assert "subject 'subject-a' differs from data.project_id 'subject-b'" in messages[3]
    assert "floats are not allowed" in messages[4] and schema[4].offset == offset
    assert f"line {len(lines)} is not a valid archive record" in messages[5] and schema[5].topic is None
    assert [f.subject for f in schema[:4]] == ["bad-amount", "wrong-topic", "impostor", "subject-a"]


def test_a_land_valuation_that_is_not_area_times_price_is_found(tmp_path: Path) -> None:
    log = park(rents=0)
    cause = log.publish("LandShareInvested", P, {
        "investment_id": "land-x", "project_id": P, "investor_id": "state-co", "investor_type": "government",
        "area_mu": "1.0000", "price_per_mu": "100.00", "valuation": "100.01", "effective_on": "2025-01-01",
        "parcel": None})
    finding = only(audit(log, tmp_path), "schema")
    assert place(finding) == last(log) and cause["data"]["valuation"] in finding.message
    assert "= 100.00" in finding.message


# -- where a replay stops ------------------------------------------------------------------------------


def test_an_audit_up_to_offsets_cannot_recompute_a_distribution_whose_inputs_lie_beyond(tmp_path: Path) -> None:
    log = park()
    log.at("2025-07-02")
    log.declare(P, "2025-01-01", "2025-06-30")
    rent_partition = next(row["partition"] for row in log.rows if row["topic"] == RENTALS)
    stop = parse_offsets(f"{RENTALS}:{rent_partition}:3")
    result = audit(log, tmp_path, offsets=stop)
    [finding] = result.findings.of("distribution")
    assert f"{RENTALS}[{rent_partition}] up to offset 7, but the replay holds only up to 3" in finding.message
    assert result.stopped_at[RENTALS] == {rent_partition: 3}


def test_an_audit_up_to_a_day_leaves_out_what_came_later(tmp_path: Path) -> None:
    log = small_scenario(villages=2, months=12)
    everything = audit(log, tmp_path)
    assert everything.ok
    mid_year = audit(log, tmp_path, until=dt.date(2025, 3, 31))
    assert mid_year.ok, mid_year.findings.items
    assert mid_year.auditor.records < everything.auditor.records
    assert not mid_year.auditor.payouts.distributions
    assert mid_year.auditor.by_type["RentReceived"] == 3 * 4


@pytest.mark.parametrize("text, expected", [
    ("", {}),
    (f"{RENTALS}:0:12", {(RENTALS, 0): 12}),
    (f"{RENTALS}:0:12, {LEDGER_INVESTMENTS}:2:0", {(RENTALS, 0): 12, (LEDGER_INVESTMENTS, 2): 0}),
])
def test_stop_offsets_are_read_as_topic_partition_offset(text: str, expected: dict[Any, int]) -> None:
    assert parse_offsets(text) == expected


@pytest.mark.parametrize("text", ["rentals", f"{RENTALS}:x:1", f"{RENTALS}:0:-1", ":0:1"])
def test_malformed_stop_offsets_are_refused(text: str) -> None:
    from services.audit.sources.records import ReplayError

    with pytest.raises(ReplayError):
        parse_offsets(text)


def test_the_compact_inputs_give_the_rule_what_the_full_envelopes_give_it() -> None:
    from services.dividends.inputs import LogRecord, recompute_declared

    log = park()
    log.withdraw(P, "state-co", "500000.00", "2025-04-01")
    log.at("2025-07-02")
    log.declare(P, "2025-01-01", "2025-06-30")
    full = [LogRecord(row["topic"], row["partition"], row["offset"], row["event"]) for row in log.rows
            if row["topic"] in (LEDGER_INVESTMENTS, RENTALS)]
    [declared] = [row["event"]["data"] for row in log.rows if row["event"]["type"] == "DistributionDeclared"]
    compact = log._inputs.records_for(P, dt.date(2025, 1, 1), dt.date(2025, 6, 30))
    assert len(compact) < len(full)
    assert recompute_declared(compact, declared) == recompute_declared(full, declared)
