"""hledger journals and beancount files of each collective's books, for the auditor's own tools.

- ``hledger``: one journal per collective; account names ``资产:102 银行存款``,
  ``资产:141 长期投资:binhai-park`` (class : code and statutory name : sub-account segment);
  each entry one transaction; a closing transaction asserts every account's balance.
- ``beancount``: one file per collective; accounts ``Assets:141:Binhai-park`` (beancount wants
  capitalised ASCII components: the statutory Chinese name is the ``name`` metadata of the
  ``open`` directive); ``balance`` directives, to the fen, the day after the books' date.

Books are per collective: ``write_books`` writes one file per collective into a directory
(``<collective_id>.journal`` / ``.beancount``), or one file with ``--collective``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from services.audit.checks.books import BookEntry, Books
from services.contracts.money import format_yuan
from services.ledger.chart import Account, lookup, split

CURRENCY = "CNY"
#: How each origin of an entry is called in Chinese (beancount narrations, the tables' 来源 column).
ORIGIN = {"manual": "手工", "investment": "投资入账", "withdrawal": "撤资", "dividend": "投资收益",
          "payment": "收到分红", "development_fund": "发展资金", "year_end_close": "年终结转",
          "member_plan": "收益分配方案", "member_dividend": "成员分红", "reversal": "冲销"}


# -- names -----------------------------------------------------------------------------------------


def hledger_account(code: str) -> str:
    """``141/binhai-park`` -> ``资产:141 长期投资:binhai-park`` (``未知科目:999`` off the chart)."""
    if not on_chart(code):
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
    if not on_chart(code):
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


def books_entries(books: Books, collective_id: str) -> list[BookEntry]:
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
        if not on_chart(code):
            out.append(f"account {hledger_account(code)}")
            continue
        chart = lookup(code)
        kind = {"资产": "A", "成本": "A", "负债": "L", "所有者权益": "E"}.get(chart.account_class)
        kind = kind or ("R" if chart.normal_side == "credit" else "X")
        out.append(f"account {hledger_account(code)}  ; type: {kind}")
    out.append("")
    vouchers = books.voucher_numbers(collective_id)
    for entry in books_entries(books, collective_id):
        memo = _text(entry.memo).replace(";", "；").replace("|", "｜") or entry.origin_kind
        # The voucher number is the transaction's code (hledger's "(CODE)"), and a tag too.
        out.append(f"{entry.date} * ({vouchers[entry.entry_id]}) {memo}  ; voucher:{vouchers[entry.entry_id]}, "
                   f"entry:{entry.entry_id}, origin:{entry.origin_kind}"
                   + (f", ref:{_text(entry.origin_ref)}" if entry.origin_ref else "")
                   + (f", attachments:{entry.attachments}" if entry.attachments is not None else ""))
        for account, debit, credit in entry.lines:
            out.append(f"    {hledger_account(account)}  {_yuan(debit - credit)}")
        out.append("")
    if tb.rows:
        out.append(f"{as_of} * 期末余额核对 (balance assertions)  ; baotuan trial balance as of {as_of}")
        for row in tb.rows:
            out.append(f"    {hledger_account(row.code)}  0.00 {CURRENCY} = {_yuan(row.debit - row.credit)}")
        out.append("")
    return "\n".join(out)


def on_chart(code: str) -> bool:
    """Whether ``code`` is on the chart of accounts (an account off it is an audit finding)."""
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
    entries = books_entries(books, collective_id)
    tb = books.trial_balance(collective_id)
    out = [f"; baotuan books of {name} ({collective_id}), as of {as_of}",
           "; written from the events of baotuan.ledger.entries.v1, not from a service database",
           f"option \"title\" {_quoted(f'{name} ({collective_id})')}",
           f'option "operating_currency" "{CURRENCY}"', ""]
    opened = entries[0].date if entries else as_of.isoformat()
    used = {row.code for row in tb.rows} | {line[0] for entry in entries for line in entry.lines}
    for code in sorted(used, key=_code_order):
        label = lookup(code).name if on_chart(code) else "未知科目"
        out += [f"{opened} open {beancount_account(code)} {CURRENCY}",
                f"  name: {_quoted(label)}", f"  code: {_quoted(code)}"]
    out.append("")
    vouchers = books.voucher_numbers(collective_id)
    for entry in entries:
        out.append(f"{entry.date} * {_quoted(entry.memo or ORIGIN.get(entry.origin_kind, entry.origin_kind))}")
        out.append(f"  voucher: {_quoted(vouchers[entry.entry_id])}")
        if entry.attachments is not None:
            out.append(f"  attachments: {entry.attachments}")
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
