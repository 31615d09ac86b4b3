"""The statutory chart of accounts of 《农村集体经济组织会计制度》 (财会〔2023〕14号), as data.

DESIGN §7: each collective keeps double-entry books on this chart. An account is written
either as its three-digit code (``"141"``) or as a sub-account ``CODE/segment``
(``"141/binhai-park"``): the segment names a project, a counterparty, and so on, and the
sub-account has the class, name and normal side of its base account.

The codes are those published for the 2023 system (in force 2024-01-01). 171, 502, 511
and 521 meant something else in the 2004 system, so an import from old books maps by name.

This module is pure: no I/O, no framework. It also defines the root of the ledger's error
hierarchy (``LedgerError``) and ``UnknownAccount``, because the chart is the lowest layer
that raises them; ``services.ledger.domain`` re-exports both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

AccountClass = Literal["资产", "负债", "所有者权益", "成本", "损益"]
NormalSide = Literal["debit", "credit"]

SEGMENT_PATTERN: Final = r"[a-z0-9][a-z0-9-]{0,62}"
_SEGMENT_RE: Final = re.compile(SEGMENT_PATTERN)


class LedgerError(ValueError):
    """A request the ledger refuses. ``field`` names the offending input, e.g. ``"lines[1].account"``.

    ``code`` is a stable machine-readable name of the kind of error.
    """

    code: ClassVar[str] = "ledger_error"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class UnknownAccount(LedgerError):
    """An account code not on the chart, or a sub-account with a bad base or segment."""

    code = "unknown_account"


@dataclass(frozen=True)
class Account:
    """One account of the chart: code, statutory name, class and normal (balance) side."""

    code: str
    name: str
    account_class: AccountClass
    normal_side: NormalSide


ACCOUNTS: Final[tuple[Account, ...]] = (
    # 资产
    Account("101", "库存现金", "资产", "debit"),
    Account("102", "银行存款", "资产", "debit"),
    Account("111", "短期投资", "资产", "debit"),
    Account("112", "应收款", "资产", "debit"),
    Account("113", "内部往来", "资产", "debit"),
    Account("121", "库存物资", "资产", "debit"),
    Account("131", "消耗性生物资产", "资产", "debit"),
    Account("132", "生产性生物资产", "资产", "debit"),
    Account("133", "生产性生物资产累计折旧", "资产", "credit"),  # contra-asset
    Account("134", "公益性生物资产", "资产", "debit"),
    Account("141", "长期投资", "资产", "debit"),
    Account("151", "固定资产", "资产", "debit"),
    Account("152", "累计折旧", "资产", "credit"),  # contra-asset
    Account("153", "在建工程", "资产", "debit"),
    Account("154", "固定资产清理", "资产", "debit"),
    Account("161", "无形资产", "资产", "debit"),
    Account("162", "累计摊销", "资产", "credit"),  # contra-asset
    Account("171", "长期待摊费用", "资产", "debit"),
    Account("181", "待处理财产损溢", "资产", "debit"),
    # 负债
    Account("201", "短期借款", "负债", "credit"),
    Account("211", "应付款", "负债", "credit"),
    Account("212", "应付工资", "负债", "credit"),
    Account("213", "应付劳务费", "负债", "credit"),
    Account("214", "应交税费", "负债", "credit"),
    Account("221", "长期借款及应付款", "负债", "credit"),
    Account("231", "一事一议资金", "负债", "credit"),
    Account("241", "专项应付款", "负债", "credit"),
    # 所有者权益
    Account("301", "资本", "所有者权益", "credit"),
    Account("311", "公积公益金", "所有者权益", "credit"),
    Account("321", "本年收益", "所有者权益", "credit"),
    Account("322", "收益分配", "所有者权益", "credit"),
    # 成本
    Account("401", "生产（劳务）成本", "成本", "debit"),
    # 损益: income
    Account("501", "经营收入", "损益", "credit"),
    Account("502", "投资收益", "损益", "credit"),
    Account("503", "补助收入", "损益", "credit"),
    Account("504", "其他收入", "损益", "credit"),
    # 损益: expense
    Account("511", "经营支出", "损益", "debit"),
    Account("512", "税金及附加", "损益", "debit"),
    Account("513", "管理费用", "损益", "debit"),
    Account("514", "公益支出", "损益", "debit"),
    Account("515", "其他支出", "损益", "debit"),
    Account("521", "所得税费用", "损益", "debit"),
)

BY_CODE: Final[dict[str, Account]] = {account.code: account for account in ACCOUNTS}

INCOME_CODES: Final[tuple[str, ...]] = ("501", "502", "503", "504")
EXPENSE_CODES: Final[tuple[str, ...]] = ("511", "512", "513", "514", "515", "521")


def split(code: str) -> tuple[str, str | None]:
    """Split ``"141/binhai-park"`` into ``("141", "binhai-park")``; ``"141"`` gives ``("141", None)``.

    Only splits at the first ``/``; it does not check the chart (see ``lookup``).
    """
    base, sep, segment = code.partition("/")
    return (base, segment) if sep else (base, None)


def lookup(code_or_sub: str) -> Account:
    """The chart account for a code or a sub-account ``CODE/segment`` (the base account).

    Raises UnknownAccount (field ``"account"``) for a code not on the chart, or a segment
    that does not match ``[a-z0-9][a-z0-9-]{0,62}``.
    """
    if not isinstance(code_or_sub, str):
        raise UnknownAccount('account must be a string such as "102" or "141/binhai-park"', "account")
    base, segment = split(code_or_sub)
    account = BY_CODE.get(base)
    if account is None:
        raise UnknownAccount(f"account {base!r} is not on the chart (财会〔2023〕14号)", "account")
    if segment is not None and not _SEGMENT_RE.fullmatch(segment):
        raise UnknownAccount(
            f'sub-account segment {segment!r} must match {SEGMENT_PATTERN} (e.g. "141/binhai-park")',
            "account",
        )
    return account


def sub_account(code: str, segment: str) -> str:
    """Build the sub-account ``CODE/segment``, checking both parts (raises UnknownAccount)."""
    account = f"{code}/{segment}"
    lookup(account)
    return account


def is_income(code: str) -> bool:
    """True for the income accounts 501–504 (and their sub-accounts); False otherwise."""
    return split(code)[0] in INCOME_CODES
