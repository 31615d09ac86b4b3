"""Exports checked by independent oracles: the real hledger and bean-check accept the books written from
the events, and hledger's balances are baotuan's trial balance, account by account, for every village."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from services.audit.checks.auditor import AuditResult, run_audit
from services.audit.checks.books import Books
from services.audit.cli import export_command
from services.audit.exports.journals import beancount_account, hledger_account, write_books
from services.audit.exports.tables import write_csv, write_xlsx
from services.audit.sources.archive import ArchiveSource
from services.contracts.money import format_yuan, parse_yuan
from services.devtools.synthetic import LogWriter, small_scenario

HLEDGER = shutil.which("hledger")
BEAN_CHECK = Path(sys.executable).parent / "bean-check"
needs_hledger = pytest.mark.skipif(HLEDGER is None, reason="hledger is not installed (apt-get install hledger)")
needs_beancount = pytest.mark.skipif(not BEAN_CHECK.exists(), reason="beancount is not installed in the venv")
V1 = "jinqing-lianmeng"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = small_scenario(villages=3, months=12)
    # A line on a base account beside its sub-account, and one memo hledger would cut at ';'.
    log.post_entry(V1, "2025-03-01", [("141", "debit", "1000.00"), ("102", "credit", "1000.00")],
                   "购入股权; 凭证附件 2 张 | \"说明\"")
    return log.write(tmp_path_factory.mktemp("export") / "archive.jsonl")


@pytest.fixture(scope="module")
def replayed(archive: Path) -> AuditResult:
    result = run_audit(ArchiveSource(archive), archive=True, keep_memos=True)
    assert result.ok, result.findings.items
    return result


def hledger_balances(journal: Path) -> dict[str, int]:
    """``hledger balance`` of a journal: account -> debit-positive balance in fen."""
    assert HLEDGER is not None
    done = subprocess.run([HLEDGER, "-f", str(journal), "balance", "--flat", "-E", "--no-total", "-O", "csv"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    out = {}
    for account, amount in list(csv.reader(done.stdout.splitlines()))[1:]:
        out[account] = 0 if amount.strip() == "0" else parse_yuan(amount.removesuffix(" CNY"), allow_negative=True)
    return out


def expected_balances(books: Books, collective_id: str) -> dict[str, int]:
    return {hledger_account(row.code): row.debit - row.credit for row in books.trial_balance(collective_id).rows}


@needs_hledger
def test_hledger_accepts_every_village_s_journal_and_agrees_with_the_trial_balance(
        replayed: AuditResult, tmp_path: Path) -> None:
    books = replayed.auditor.books
    written = write_books(books, "hledger", tmp_path, None)
    assert sorted(p.stem for p in written) == books.collective_ids() and len(written) == 3
    for journal in written:
        assert hledger_balances(journal) == expected_balances(books, journal.stem)
    rows = {row.code: row for row in books.trial_balance(V1).rows}
    assert rows["141"].balance == 1000_00 and "资产:141 长期投资" in hledger_balances(tmp_path / f"{V1}.journal")


@needs_hledger
def test_hledger_refuses_a_journal_whose_balances_no_longer_hold(replayed: AuditResult, tmp_path: Path) -> None:
    [journal] = write_books(replayed.auditor.books, "hledger", tmp_path / f"{V1}.journal", V1)
    text = journal.read_text(encoding="utf-8")
    assert "= " in text  # the closing balance assertions
    forged = text.replace("资产:102 银行存款  200000.00 CNY", "资产:102 银行存款  200000.01 CNY", 1)
    forged = forged.replace("损益:503 补助收入  -200000.00 CNY", "损益:503 补助收入  -200000.01 CNY", 1)
    assert forged != text
    journal.write_text(forged, encoding="utf-8")
    assert HLEDGER is not None
    done = subprocess.run([HLEDGER, "-f", str(journal), "balance"], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "balance assertion" in done.stderr.lower()


@needs_beancount
def test_bean_check_accepts_every_village_s_books_and_their_balances(replayed: AuditResult, tmp_path: Path) -> None:
    books = replayed.auditor.books
    for path in write_books(books, "beancount", tmp_path, None):
        done = subprocess.run([str(BEAN_CHECK), str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        text = path.read_text(encoding="utf-8")
        assert 'name: "银行存款"' in text and " balance Assets:102 " in text and "~ 0.00 CNY" in text
    assert beancount_account("141/binhai-park") == "Assets:141:Binhai-park"
    assert beancount_account("502/binhai-park") == "Income:502:Binhai-park"
    assert beancount_account("513") == "Expenses:513"


@needs_beancount
def test_bean_check_refuses_books_whose_balances_no_longer_hold(replayed: AuditResult, tmp_path: Path) -> None:
    [path] = write_books(replayed.auditor.books, "beancount", tmp_path / "one.beancount", V1)
    text = path.read_text(encoding="utf-8")
    forged = text.replace("  Assets:102  200000.00 CNY", "  Assets:102  200000.01 CNY", 1)
    forged = forged.replace("  Income:503  -200000.00 CNY", "  Income:503  -200000.01 CNY", 1)
    assert forged != text
    path.write_text(forged, encoding="utf-8")
    done = subprocess.run([str(BEAN_CHECK), str(path)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "Balance failed" in done.stdout + done.stderr


def test_the_csv_files_open_with_chinese_headers_and_add_up(replayed: AuditResult, tmp_path: Path) -> None:
    books, payouts = replayed.auditor.books, replayed.auditor.payouts
    written = write_csv(books, payouts, tmp_path)
    assert [p.name for p in written] == ["trial_balance.csv", "entries.csv", "dividends.csv", "account_balances.csv"]
    assert written[0].read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel and WPS read it as UTF-8
    with written[0].open(encoding="utf-8-sig") as handle:
        trial = list(csv.DictReader(handle))
    totals = [row for row in trial if row["科目名称"] == "合计" and row["村集体编号"] == V1]
    tb = books.trial_balance(V1)
    assert totals[0]["借方累计"] == totals[0]["贷方累计"] == format_yuan(tb.total_debit)
    bank = next(row for row in trial if row["村集体编号"] == V1 and row["科目编码"] == "102")
    assert (bank["科目名称"], bank["余额方向"], bank["村集体"]) == ("银行存款", "借", "联盟村")
    with written[1].open(encoding="utf-8-sig") as handle:
        lines = list(csv.DictReader(handle))
    assert sum(Decimal(r["借方金额"] or 0) for r in lines if r["村集体编号"] == V1) == Decimal(tb.total_debit) / 100
    with written[2].open(encoding="utf-8-sig") as handle:
        dividends = list(csv.DictReader(handle))
    assert {r["状态"] for r in dividends} == {"已批准"}
    unpaid = [r for r in dividends if r["已付金额"] == "0.00"]
    assert [r["投资方编号"] for r in unpaid] == ["jinqing-huangjiao"]  # the last village, second half-year
    with written[3].open(encoding="utf-8-sig") as handle:
        balances = [r for r in csv.DictReader(handle) if r["村集体编号"] == V1]
    # The year to date ends where the trial balance is taken: every closing balance is the trial balance's.
    closing = {r["科目编码"]: parse_yuan(r["期末余额"], allow_negative=True) for r in balances if r["科目编码"]}
    assert closing == {row.code: row.balance for row in tb.rows if row.balance or row.code in closing}
    total = next(r for r in balances if r["科目名称"] == "合计")
    assert total["本期借方"] == total["本期贷方"] != "0.00"
    assert sum(parse_yuan(r["本期借方"]) for r in balances if r["科目编码"]) == parse_yuan(total["本期借方"])


def test_the_workbook_has_the_three_tables_with_amounts_as_numbers(replayed: AuditResult, tmp_path: Path) -> None:
    books, payouts = replayed.auditor.books, replayed.auditor.payouts
    write_xlsx(books, payouts, tmp_path / "books.xlsx", V1)
    workbook = load_workbook(tmp_path / "books.xlsx")
    assert workbook.sheetnames == ["科目余额表", "凭证明细", "分红明细", "本年科目余额表", "说明"]
    sheet = workbook["科目余额表"]
    header = [cell.value for cell in sheet[1]]
    assert header[:5] == ["村集体编号", "村集体", "截止日期", "科目编码", "科目名称"]
    bank = next(row for row in sheet.iter_rows(min_row=2, values_only=True) if row[3] == "102")
    rows = {row.code: row for row in books.trial_balance(V1).rows}
    assert Decimal(str(bank[8])) == Decimal(rows["102"].balance) / 100
    assert sheet.cell(row=2, column=9).number_format == "#,##0.00"
    dividends = list(workbook["分红明细"].iter_rows(min_row=2, values_only=True))
    assert {row[5] for row in dividends} == {V1} and len(dividends) == 2


def test_the_command_exports_an_archive_that_audits_the_same(archive: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "copy.jsonl"
    done = runner.invoke(export_command, ["--format", "jsonl", "--archive", str(archive), "-o", str(out)])
    assert done.exit_code == 0, done.output
    original = [json.loads(line) for line in archive.read_text(encoding="utf-8").splitlines()]
    copied = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert copied == original
    assert run_audit(ArchiveSource(out), archive=True).ok
    refused = runner.invoke(export_command, ["--format", "jsonl", "--archive", str(archive), "--collective", V1])
    assert refused.exit_code == 2 and "whole log" in refused.output


def test_the_command_prints_one_village_s_journal_or_writes_every_village_s_files(
        archive: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    one = runner.invoke(export_command, ["--format", "hledger", "--archive", str(archive), "--collective", V1])
    assert one.exit_code == 0 and one.output.startswith("; baotuan books of 联盟村 (jinqing-lianmeng)")
    every = runner.invoke(export_command, ["--format", "beancount", "--archive", str(archive), "-o",
                                           str(tmp_path / "books")])
    assert every.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "books").iterdir()) == [
        "jinqing-huangjiao.beancount", "jinqing-lianmeng.beancount", "jinqing-xinqiao.beancount"]
    unknown = runner.invoke(export_command, ["--format", "csv", "--archive", str(archive), "--collective", "nobody"])
    assert unknown.exit_code == 2 and "no books of collective 'nobody'" in unknown.output


@needs_hledger
def test_books_with_a_line_off_the_chart_still_export_and_load(tmp_path: Path) -> None:
    log = LogWriter()
    log.register_collective(V1, "联盟村")
    log.post_entry(V1, "2025-02-01", [("102", "debit", "5.00"), ("599", "credit", "5.00")], "无此科目")
    result = run_audit(ArchiveSource(log.write(tmp_path / "a.jsonl")), archive=True, keep_memos=True)
    assert [f.check for f in result.findings.items] == ["accounts"]
    [journal] = write_books(result.auditor.books, "hledger", tmp_path / "v.journal", V1)
    assert "未知科目:599" in journal.read_text(encoding="utf-8")
    assert hledger_balances(journal)["资产:102 银行存款"] == 500
