"""The tables a village accountant opens in Excel or WPS: 科目余额表, 凭证明细, 分红明细, 本年科目余额表.

- ``csv``: ``trial_balance.csv``, ``entries.csv``, ``dividends.csv``, ``account_balances.csv`` (UTF-8
  with BOM, Chinese headers);
- ``xlsx``: one workbook with the same four sheets.

本年科目余额表 is the 科目余额表 of the year to date (opening balance on 1 January, the year's debits and
credits, closing balance at the books' date), computed by the ledger's own report function.

Both hold every collective (a column names it) unless ``--collective`` picks one.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from services.audit.checks.books import Books
from services.audit.checks.payouts import Payouts
from services.audit.exports.journals import ORIGIN, books_entries, on_chart
from services.ledger.chart import lookup, split
from services.ledger.reports import PostedLine, account_balances

_SIDE = {"debit": "借", "credit": "贷"}
_STATUS = {"declared": "已宣告", "approved": "已批准", "cancelled": "已取消"}


def _amount(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)


TRIAL_BALANCE_HEADER = ("村集体编号", "村集体", "截止日期", "科目编码", "科目名称", "余额方向", "借方累计", "贷方累计",
                        "期末余额")
ENTRIES_HEADER = ("村集体编号", "村集体", "日期", "凭证编号", "摘要", "来源", "来源编号", "附件张数", "科目编码",
                  "科目名称", "借方金额", "贷方金额", "分录编号")
ACCOUNT_BALANCES_HEADER = ("村集体编号", "村集体", "起始月份", "截止日期", "科目编码", "科目名称", "余额方向",
                           "期初余额", "本期借方", "本期贷方", "期末余额")
DIVIDENDS_HEADER = ("分配编号", "项目", "期间起", "期间止", "状态", "投资方编号", "投资方", "投资方类型",
                    "资本日积数(元·日)", "按比例分配", "保底收益", "保底补足", "应付分红", "已付金额")


def trial_balance_rows(books: Books, collective_id: str | None = None) -> Iterator[tuple[Any, ...]]:
    """科目余额表 rows of one collective or all, with a 合计 row per collective."""
    ids = [collective_id] if collective_id else books.collective_ids()
    for cid in ids:
        tb = books.trial_balance(cid)
        name = books.name_of(cid)
        for row in tb.rows:
            yield (cid, name, tb.as_of.isoformat(), row.code, _row_name(row.code), _SIDE[row.normal_side],
                   _amount(row.debit), _amount(row.credit), _amount(row.balance))
        yield (cid, name, tb.as_of.isoformat(), "", "合计", "", _amount(tb.total_debit), _amount(tb.total_credit), "")


def account_balance_rows(books: Books, collective_id: str | None = None) -> Iterator[tuple[Any, ...]]:
    """科目余额表 of the year to date (January of the books' date to that date), the ledger's report
    (``services.ledger.reports.account_balances``) over the lines of the log, with a 合计 row per collective."""
    as_of = books.balance_date()
    start = dt.date(as_of.year, 1, 1).isoformat()
    last = as_of.isoformat()
    ids = [collective_id] if collective_id else books.collective_ids()
    for cid in ids:
        name = books.name_of(cid)
        before: list[PostedLine] = []
        during: list[PostedLine] = []
        for entry in books.entries_of(cid):
            if entry.date > last:
                continue
            chosen = before if entry.date < start else during
            chosen.extend(PostedLine(cid, entry.entry_id, as_of, account, debit, credit)
                          for account, debit, credit in entry.lines if on_chart(account))
        table = account_balances(before, during, start[:7], last[:7])
        for row in table.rows:
            yield (cid, name, start[:7], last, row.code, _row_name(row.code), _SIDE[row.normal_side],
                   _amount(row.opening), _amount(row.debit), _amount(row.credit), _amount(row.closing))
        yield (cid, name, start[:7], last, "", "合计", "", "", _amount(table.total_debit), _amount(table.total_credit),
               "")


def _row_name(code: str) -> str:
    segment = split(code)[1]
    name = lookup(code).name
    return f"{name} - {segment}" if segment else name


def entry_rows(books: Books, collective_id: str | None = None) -> Iterator[tuple[Any, ...]]:
    """凭证明细: one row per journal line, by collective, date and log order, with the entry's voucher number
    (记-YYYY-MM-NNNN, the ledger's) and its entry id."""
    ids = [collective_id] if collective_id else books.collective_ids()
    for cid in ids:
        name = books.name_of(cid)
        vouchers = books.voucher_numbers(cid)
        for entry in books_entries(books, cid):
            attachments = "" if entry.attachments is None else entry.attachments
            for account, debit, credit in entry.lines:
                known = on_chart(account)
                yield (cid, name, entry.date, vouchers[entry.entry_id], entry.memo,
                       ORIGIN.get(entry.origin_kind, entry.origin_kind), entry.origin_ref or "", attachments,
                       account, _row_name(account) if known else "?", _amount(debit) if debit else "",
                       _amount(credit) if credit else "", entry.entry_id)


def dividend_rows(books: Books, payouts: Payouts, collective_id: str | None = None) -> Iterator[tuple[Any, ...]]:
    """分红明细: one row per allocation (of one collective, or all)."""
    for distribution in payouts.distributions.values():
        start, end = distribution.period
        for investor, allocated in sorted(distribution.allocations.items()):
            if collective_id is not None and investor != collective_id:
                continue
            if investor in books.collectives:
                who = books.collectives[investor].name
            else:
                who = books.investors.get(investor, (investor, ""))[0]
            amounts = allocated.amounts
            yield (distribution.distribution_id, distribution.project_id, start, end,
                   _STATUS.get(distribution.status, distribution.status), investor, who, allocated.investor_type,
                   _amount(amounts.capital_days), _amount(amounts.pro_rata),
                   _amount(amounts.guaranteed_floor), _amount(amounts.top_up), _amount(amounts.payout),
                   _amount(distribution.paid.get(investor, 0)))


def write_csv(books: Books, payouts: Payouts, folder: Path, collective_id: str | None = None) -> list[Path]:
    """trial_balance.csv, entries.csv, dividends.csv and account_balances.csv in ``folder`` (UTF-8 with BOM
    for Excel)."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = (("trial_balance.csv", TRIAL_BALANCE_HEADER, trial_balance_rows(books, collective_id)),
              ("entries.csv", ENTRIES_HEADER, entry_rows(books, collective_id)),
              ("dividends.csv", DIVIDENDS_HEADER, dividend_rows(books, payouts, collective_id)),
              ("account_balances.csv", ACCOUNT_BALANCES_HEADER, account_balance_rows(books, collective_id)))
    written = []
    for filename, header, rows in tables:
        path = folder / filename
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        written.append(path)
    return written


def write_xlsx(books: Books, payouts: Payouts, target: Path | IO[bytes], collective_id: str | None = None) -> None:
    """One workbook: 科目余额表, 凭证明细, 分红明细, 本年科目余额表 (amounts are numbers with two decimals)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheets = (("科目余额表", TRIAL_BALANCE_HEADER, trial_balance_rows(books, collective_id), (6, 7, 8)),
              ("凭证明细", ENTRIES_HEADER, entry_rows(books, collective_id), (10, 11)),
              ("分红明细", DIVIDENDS_HEADER, dividend_rows(books, payouts, collective_id), (8, 9, 10, 11, 12, 13)),
              ("本年科目余额表", ACCOUNT_BALANCES_HEADER, account_balance_rows(books, collective_id), (7, 8, 9, 10)))
    first = True
    for title, header, rows, money_columns in sheets:
        sheet = workbook.active if first else workbook.create_sheet()
        first = False
        sheet.title = title
        sheet.append(list(header))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(list(row))
        for column in money_columns:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=column + 1, max_col=column + 1):
                cell.number_format = "#,##0.00"
        for index, label in enumerate(header, start=1):
            letter = sheet.cell(row=1, column=index).column_letter
            sheet.column_dimensions[letter].width = max(10, 2 * len(label) + 4)
        sheet.freeze_panes = "A2"
    note = workbook.create_sheet("说明")
    note.append(["baotuan 导出 / export"])
    note.append(["来源 source", "事件日志 (baotuan.ledger.entries.v1, baotuan.dividends.v1)，非服务数据库"])
    note.append(["截止日期 as of", books.balance_date().isoformat()])
    note.append(["村集体 collective", collective_id or "全部 all"])
    workbook.save(target)
