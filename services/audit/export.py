"""Exports for the auditor's own tools, written from the events (never from a service database).

- ``jsonl``: the archive of DESIGN §4, one Kafka record per line; ``baotuan audit --archive``
  reads it back.
- ``hledger``: one journal per collective; account names ``资产:102 银行存款``,
  ``资产:141 长期投资:binhai-park`` (class : code and statutory name : sub-account segment);
  each entry one transaction; a closing transaction asserts every account's balance.
- ``beancount``: one file per collective; accounts ``Assets:141:Binhai-park`` (beancount wants
  capitalised ASCII components: the statutory Chinese name is the ``name`` metadata of the
  ``open`` directive); ``balance`` directives, to the fen, the day after the books' date.
- ``csv``: ``trial_balance.csv``, ``entries.csv``, ``dividends.csv`` (UTF-8 with BOM, Chinese
  headers) — a village accountant opens them in Excel or WPS.
- ``xlsx``: one workbook with the same three sheets (科目余额表, 凭证明细, 分红明细).

Books are per collective: hledger and beancount write one file per collective into a
directory (``<collective_id>.journal`` / ``.beancount``), or one file with ``--collective``.
CSV and Excel hold every collective (a column names it) unless ``--collective`` picks one.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from services.audit.books import BookEntry, Books
from services.audit.payouts import Payouts
from services.audit.replay import Record
from services.contracts.money import format_yuan
from services.ledger.chart import Account, lookup, split

FORMATS = ("jsonl", "hledger", "beancount", "csv", "xlsx")
CURRENCY = "CNY"

_SIDE = {"debit": "借", "credit": "贷"}
_STATUS = {"declared": "已宣告", "approved": "已批准", "cancelled": "已取消"}
_ORIGIN = {"manual": "手工", "investment": "投资入账", "withdrawal": "撤资", "dividend": "投资收益",
           "payment": "收到分红", "development_fund": "发展资金", "reversal": "冲销"}


# -- the archive -----------------------------------------------------------------------------------


def archive_line(record: Record) -> bytes:
    """One archive line (DESIGN §4) for a record; the envelope's bytes as the broker holds them."""
    head = json.dumps({"topic": record.topic, "partition": record.partition, "offset": record.offset,
                       "timestamp": record.timestamp, "key": record.key}, ensure_ascii=False,
                      separators=(",", ":"))[:-1]
    if record.raw is not None and record.envelope is not None:
        event = record.raw
    elif record.envelope is not None:
        event = json.dumps(record.envelope, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    else:  # not an envelope: keep the value as text so the archive still says what the log held
        value = (record.raw or b"").decode("utf-8", errors="replace")
        return (head + ',"event":null,"raw":' + json.dumps(value, ensure_ascii=False) + "}\n").encode()
    return head.encode() + b',"event":' + event + b"}\n"


def write_archive(records: Iterable[Record], out: IO[bytes]) -> int:
    """Write every record as an archive line; returns how many."""
    count = 0
    for record in records:
        if record.partition < 0:
            continue  # an unreadable line of an input archive: nothing to place
        out.write(archive_line(record))
        count += 1
    return count


# -- names -----------------------------------------------------------------------------------------


def hledger_account(code: str) -> str:
    """``141/binhai-park`` -> ``资产:141 长期投资:binhai-park`` (``未知科目:999`` off the chart)."""
    if not _on_chart(code):
        return "未知科目:" + code.replace("/", ":")
    account = lookup(code)
    base, segment = split(code)
    name = f"{account.account_class}:{base} {account.name}"
    return f"{name}:{segment}" if segment else name


def _beancount_root(account: Account) -> str:
    if account.account_class in ("资产", "成本"):
        return "Assets"  # 401 生产（劳务）成本 is carried with the assets (work in progress)
    if account.account_class == "负债":
        return "Liabilities"
    if account.account_class == "所有者权益":
        return "Equity"
    return "Income" if account.normal_side == "credit" else "Expenses"


def beancount_account(code: str) -> str:
    """``141/binhai-park`` -> ``Assets:141:Binhai-park`` (components start with a capital or a digit).

    An account off the chart (an audit finding) goes to ``Equity:Unknown:X999`` so the file still loads.
    """
    if not _on_chart(code):
        return "Equity:Unknown:X" + re.sub(r"[^A-Za-z0-9-]", "-", code)
    account = lookup(code)
    base, segment = split(code)
    name = f"{_beancount_root(account)}:{base}"
    return f"{name}:{segment[0].upper()}{segment[1:]}" if segment else name


def _code_order(code: str) -> tuple[str, str]:
    base, segment = split(code)
    return base, segment or ""


def _yuan(fen: int) -> str:
    return f"{format_yuan(fen)} {CURRENCY}"


def _text(value: str) -> str:
    return " ".join(value.split())


def _books_entries(books: Books, collective_id: str) -> list[BookEntry]:
    """The collective's entries dated on or before the books' date, by date then log order."""
    last = books.balance_date().isoformat()
    chosen = [entry for entry in books.entries_of(collective_id) if entry.date <= last]
    return sorted(chosen, key=lambda entry: entry.date)  # stable: log order within a day


# -- hledger ---------------------------------------------------------------------------------------


def hledger_journal(books: Books, collective_id: str) -> str:
    """The collective's books as an hledger journal, closed by balance assertions."""
    name = books.name_of(collective_id)
    as_of = books.balance_date()
    tb = books.trial_balance(collective_id)
    out = [f"; baotuan books of {name} ({collective_id}), as of {as_of}",
           "; written from the events of baotuan.ledger.entries.v1, not from a service database",
           "; chart of accounts: 农村集体经济组织会计制度 (财会〔2023〕14号)", "",
           f"commodity 1000.00 {CURRENCY}", ""]
    used = sorted({line[0] for entry in books.entries_of(collective_id) for line in entry.lines},
                  key=_code_order)
    for code in used:
        if not _on_chart(code):
            out.append(f"account {hledger_account(code)}")
            continue
        chart = lookup(code)
        kind = {"资产": "A", "成本": "A", "负债": "L", "所有者权益": "E"}.get(chart.account_class)
        kind = kind or ("R" if chart.normal_side == "credit" else "X")
        out.append(f"account {hledger_account(code)}  ; type: {kind}")
    out.append("")
    for entry in _books_entries(books, collective_id):
        memo = _text(entry.memo).replace(";", "；").replace("|", "｜") or entry.origin_kind
        out.append(f"{entry.date} * {memo}  ; entry:{entry.entry_id}, origin:{entry.origin_kind}"
                   + (f", ref:{_text(entry.origin_ref)}" if entry.origin_ref else ""))
        for account, debit, credit in entry.lines:
            out.append(f"    {hledger_account(account)}  {_yuan(debit - credit)}")
        out.append("")
    if tb.rows:
        out.append(f"{as_of} * 期末余额核对 (balance assertions)  ; baotuan trial balance as of {as_of}")
        for row in tb.rows:
            out.append(f"    {hledger_account(row.code)}  0.00 {CURRENCY} = {_yuan(row.debit - row.credit)}")
        out.append("")
    return "\n".join(out)


def _on_chart(code: str) -> bool:
    try:
        lookup(code)
    except ValueError:
        return False
    return True


# -- beancount -------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return '"' + _text(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def beancount_file(books: Books, collective_id: str) -> str:
    """The collective's books as a beancount 3 file, with a balance directive per account."""
    name = books.name_of(collective_id)
    as_of = books.balance_date()
    entries = _books_entries(books, collective_id)
    tb = books.trial_balance(collective_id)
    out = [f"; baotuan books of {name} ({collective_id}), as of {as_of}",
           "; written from the events of baotuan.ledger.entries.v1, not from a service database",
           f"option \"title\" {_quoted(f'{name} ({collective_id})')}",
           f'option "operating_currency" "{CURRENCY}"', ""]
    opened = entries[0].date if entries else as_of.isoformat()
    used = {row.code for row in tb.rows} | {line[0] for entry in entries for line in entry.lines}
    for code in sorted(used, key=_code_order):
        label = lookup(code).name if _on_chart(code) else "未知科目"
        out += [f"{opened} open {beancount_account(code)} {CURRENCY}",
                f"  name: {_quoted(label)}", f"  code: {_quoted(code)}"]
    out.append("")
    for entry in entries:
        out.append(f"{entry.date} * {_quoted(entry.memo or _ORIGIN.get(entry.origin_kind, entry.origin_kind))}")
        out.append(f"  entry_id: {_quoted(entry.entry_id)}")
        out.append(f"  origin: {_quoted(entry.origin_kind)}")
        if entry.origin_ref:
            out.append(f"  ref: {_quoted(entry.origin_ref)}")
        for account, debit, credit in entry.lines:
            out.append(f"  {beancount_account(account)}  {_yuan(debit - credit)}")
        out.append("")
    # beancount's balance includes sub-accounts: Assets:141 asserts 141 and every 141/segment.
    own = {beancount_account(row.code): row.debit - row.credit for row in tb.rows}
    day_after = as_of + dt.timedelta(days=1)
    for name in own:
        inclusive = sum(amount for other, amount in own.items() if other == name or other.startswith(name + ":"))
        # "~ 0.00": to the fen (beancount would otherwise tolerate a difference of 0.01).
        out.append(f"{day_after} balance {name}  {format_yuan(inclusive)} ~ 0.00 {CURRENCY}")
    out.append("")
    return "\n".join(out)


# -- tables for people ---------------------------------------------------------------------------


def _amount(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)


TRIAL_BALANCE_HEADER = ("村集体编号", "村集体", "截止日期", "科目编码", "科目名称", "余额方向", "借方累计", "贷方累计",
                        "期末余额")
ENTRIES_HEADER = ("村集体编号", "村集体", "日期", "凭证编号", "摘要", "来源", "来源编号", "科目编码", "科目名称",
                  "借方金额", "贷方金额")
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


def _row_name(code: str) -> str:
    segment = split(code)[1]
    name = lookup(code).name
    return f"{name} - {segment}" if segment else name


def entry_rows(books: Books, collective_id: str | None = None) -> Iterator[tuple[Any, ...]]:
    """凭证明细: one row per journal line, by collective, date and log order."""
    ids = [collective_id] if collective_id else books.collective_ids()
    for cid in ids:
        name = books.name_of(cid)
        for entry in _books_entries(books, cid):
            for account, debit, credit in entry.lines:
                known = _on_chart(account)
                yield (cid, name, entry.date, entry.entry_id, entry.memo, _ORIGIN.get(entry.origin_kind,
                       entry.origin_kind), entry.origin_ref or "", account, _row_name(account) if known else "?",
                       _amount(debit) if debit else "", _amount(credit) if credit else "")


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
    """trial_balance.csv, entries.csv and dividends.csv in ``folder`` (UTF-8 with BOM for Excel)."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = (("trial_balance.csv", TRIAL_BALANCE_HEADER, trial_balance_rows(books, collective_id)),
              ("entries.csv", ENTRIES_HEADER, entry_rows(books, collective_id)),
              ("dividends.csv", DIVIDENDS_HEADER, dividend_rows(books, payouts, collective_id)))
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
    """One workbook: 科目余额表, 凭证明细, 分红明细 (amounts are numbers with two decimals)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheets = (("科目余额表", TRIAL_BALANCE_HEADER, trial_balance_rows(books, collective_id), (6, 7, 8)),
              ("凭证明细", ENTRIES_HEADER, entry_rows(books, collective_id), (9, 10)),
              ("分红明细", DIVIDENDS_HEADER, dividend_rows(books, payouts, collective_id), (8, 9, 10, 11, 12, 13)))
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


def write_books(books: Books, fmt: str, output: Path, collective_id: str | None) -> list[Path]:
    """hledger or beancount books: one file (``--collective``) or one per collective in a directory."""
    render = hledger_journal if fmt == "hledger" else beancount_file
    suffix = ".journal" if fmt == "hledger" else ".beancount"
    if collective_id is not None:
        if output.is_dir():
            output = output / f"{collective_id}{suffix}"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render(books, collective_id), encoding="utf-8")
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for cid in books.collective_ids():
        path = output / f"{cid}{suffix}"
        path.write_text(render(books, cid), encoding="utf-8")
        written.append(path)
    return written
