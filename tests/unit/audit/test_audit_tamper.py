"""Tamper drills: take an exported archive, change it the way a forger would, and the audit names it.

The archive is written by services.devtools.synthetic (sealed as the runtime seals, derived
entries as the ledger posts them, distributions by the dividends rule), so the untouched
file passes every check and each change is the only thing wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from forgery import reseal

from services.audit.checks.auditor import AuditResult, run_audit
from services.audit.checks.findings import Finding
from services.audit.cli import audit_command
from services.audit.sources.archive import ArchiveSource
from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import DIVIDENDS, RENTALS
from services.devtools.synthetic import archive_line, small_scenario

Row = dict[str, Any]


@pytest.fixture(scope="module")
def original() -> list[Row]:
    return small_scenario().rows


def rows_copy(rows: list[Row]) -> list[Row]:
    copied: list[Row] = json.loads(json.dumps(rows))
    return copied


def write(rows: list[Row], path: Path) -> Path:
    path.write_text("".join(archive_line(row) for row in rows), encoding="utf-8")  # as the export writes them
    return path


def audit(rows: list[Row], tmp_path: Path) -> AuditResult:
    return run_audit(ArchiveSource(write(rows, tmp_path / "archive.jsonl")), archive=True)


def index_of(rows: list[Row], event_type: str, nth: int = 0, **data: Any) -> int:
    found = [i for i, row in enumerate(rows) if row["event"]["type"] == event_type
             and all(row["event"]["data"].get(k) == v for k, v in data.items())]
    return found[nth]


def at(row: Row) -> tuple[str, int, int, str]:
    return row["topic"], row["partition"], row["offset"], row["event"]["subject"]


def place(finding: Finding) -> tuple[str | None, int | None, int | None, str | None]:
    return finding.topic, finding.partition, finding.offset, finding.subject


def test_the_untouched_archive_passes_every_check(original: list[Row], tmp_path: Path) -> None:
    result = audit(original, tmp_path)
    assert result.ok, result.findings.items
    assert result.auditor.records == len(original)
    assert len(result.auditor.payouts.distributions) == 2
    for collective_id in result.auditor.books.collective_ids():
        assert result.auditor.books.trial_balance(collective_id).balanced


def test_a_changed_amount_is_named_by_its_own_record(original: list[Row], tmp_path: Path) -> None:
    rows = rows_copy(original)
    i = index_of(rows, "RentReceived", 3)
    rows[i]["event"]["data"]["amount"] = format_yuan(parse_yuan(rows[i]["event"]["data"]["amount"]) + 100_00)
    result = audit(rows, tmp_path)
    [chain] = result.findings.of("chain")
    assert place(chain) == at(rows[i])
    assert "altered" in chain.message
    assert not result.ok


def test_a_dropped_record_is_named_where_its_stream_breaks(original: list[Row], tmp_path: Path) -> None:
    rows = rows_copy(original)
    i = index_of(rows, "RentReceived", 5)
    dropped = rows.pop(i)
    after = next(row for row in rows[i:] if (row["topic"], row["event"]["subject"]) == (RENTALS, "binhai-park"))
    result = audit(rows, tmp_path)
    [chain] = result.findings.of("chain")
    assert place(chain) == at(after)
    assert f"seq {dropped['event']['seq'] + 1} after seq {dropped['event']['seq'] - 1}: 1 record(s) missing" \
        in chain.message
    # The offset gap in the partition says the same.
    [gap] = result.findings.of("order")
    assert (gap.topic, gap.partition, gap.offset) == (RENTALS, dropped["partition"], dropped["offset"] + 1)
    assert f"offset {dropped['offset']} of {RENTALS}[{dropped['partition']}] missing" in gap.message


def test_two_swapped_records_are_named_at_the_first_of_them(original: list[Row], tmp_path: Path) -> None:
    rows = rows_copy(original)
    i = index_of(rows, "RentReceived", 5)
    j = index_of(rows, "RentReceived", 6)
    assert rows[j]["offset"] == rows[i]["offset"] + 1
    # Swap the records' contents, keeping their places in the log.
    rows[i]["event"], rows[j]["event"] = rows[j]["event"], rows[i]["event"]
    result = audit(rows, tmp_path)
    first, second = result.findings.of("chain")
    assert place(first)[:3] == at(rows[i])[:3]
    assert first.subject == "binhai-park"
    assert "1 record(s) missing" in first.message
    assert place(second)[:3] == at(rows[j])[:3]
    assert "repeated or out of order" in second.message


def test_two_swapped_lines_of_the_archive_are_out_of_offset_order(original: list[Row], tmp_path: Path) -> None:
    rows = rows_copy(original)
    i = index_of(rows, "RentReceived", 5)
    j = index_of(rows, "RentReceived", 6)
    rows[i], rows[j] = rows[j], rows[i]
    result = audit(rows, tmp_path)
    assert result.findings.of("chain")
    order = result.findings.of("order")
    assert any(f.offset == rows[j]["offset"] and "out of order" in f.message for f in order)


def test_a_changed_payout_is_named_by_its_allocation(original: list[Row], tmp_path: Path) -> None:
    rows = rows_copy(original)
    i = index_of(rows, "DividendAllocated", investor_id="jinqing-lianmeng")
    rows[i]["event"]["data"]["payout"] = format_yuan(parse_yuan(rows[i]["event"]["data"]["payout"]) + 1)
    result = audit(rows, tmp_path)
    [chain] = result.findings.of("chain")
    assert place(chain) == at(rows[i]) == (DIVIDENDS, rows[i]["partition"], rows[i]["offset"], "binhai-park")


def test_a_changed_payout_resealed_is_found_by_the_recomputation_and_in_the_books(
        original: list[Row], tmp_path: Path) -> None:
    rows = rows_copy(original)
    i = index_of(rows, "DividendAllocated", investor_id="jinqing-lianmeng")
    payout = parse_yuan(rows[i]["event"]["data"]["payout"])
    rows[i]["event"]["data"]["payout"] = format_yuan(payout - 1)  # one fen less
    reseal(rows, DIVIDENDS, "binhai-park")
    result = audit(rows, tmp_path)
    assert not result.findings.of("chain")  # the forger re-hashed the stream ...
    [recomputed] = result.findings.of("distribution")  # ... but the rule gives the real payout
    assert place(recomputed) == at(rows[i])
    assert recomputed.message.endswith(f"payout of jinqing-lianmeng is {format_yuan(payout - 1)} in the log, "
                                       f"recomputed {format_yuan(payout)}")
    # The village was paid (and booked) the real payout: one fen above the forged allocation.
    [paid] = result.findings.of("payment")
    assert "above the allocated payout" in paid.message and paid.subject == "binhai-park"
    [posting] = result.findings.of("posting")
    assert posting.subject == "jinqing-lianmeng" and "its lines are" in posting.message


def test_a_changed_rent_resealed_is_found_by_the_distribution_totals(original: list[Row], tmp_path: Path) -> None:
    rows = rows_copy(original)
    i = index_of(rows, "RentReceived", 2)  # January: in the first half-year distribution
    rows[i]["event"]["data"]["amount"] = format_yuan(parse_yuan(rows[i]["event"]["data"]["amount"]) + 10_000_00)
    reseal(rows, RENTALS, "binhai-park")
    result = audit(rows, tmp_path)
    assert not result.findings.of("chain")
    declared = rows[index_of(rows, "DistributionDeclared")]
    gross = [f for f in result.findings.of("distribution") if "gross_rent" in f.message]
    assert [place(f) for f in gross] == [at(declared)]
    assert "recomputed" in gross[0].message


def test_the_command_names_each_tamper_and_exits_non_zero(original: list[Row], tmp_path: Path) -> None:
    runner = CliRunner()
    clean = write(original, tmp_path / "clean.jsonl")
    ok = runner.invoke(audit_command, ["--archive", str(clean), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    rows = rows_copy(original)
    i = index_of(rows, "DividendAllocated", investor_id="jinqing-xinqiao")
    rows[i]["event"]["data"]["payout"] = "0.01"
    bad = runner.invoke(audit_command, ["--archive", str(write(rows, tmp_path / "bad.jsonl")), "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["ok"] is False and report["checks"]["chain"] == 1
    [finding] = [f for f in report["findings"] if f["check"] == "chain"]
    assert (finding["topic"], finding["partition"], finding["offset"], finding["subject"]) == at(rows[i])
    human = runner.invoke(audit_command, ["--archive", str(tmp_path / "bad.jsonl")])
    assert human.exit_code == 1
    assert "finding(s)" in human.output and f"{DIVIDENDS}[{rows[i]['partition']}]@{rows[i]['offset']}" in human.output
