"""Voucher numbers (记账凭证编号, DESIGN §11): ``记-YYYY-MM-NNNN``, consecutive per collective and month.

Every entry of a collective's books — manual, automatic or a reversal — gets the next number of
the month its *date* falls in, in the order the entries topic holds them (log order). A number is
never reused nor renumbered: a reversal is an entry of its own and gets its own number, in the
month of its own date. The ledger's fold (one entry at a time, the numbers already issued read
from its projection) and the audit's exports (a replay of the whole log) number with the same
function, :func:`number_vouchers`, so an export shows the very numbers the ledger shows.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["VOUCHER_PATTERN", "VOUCHER_PREFIX", "Voucher", "is_voucher_no", "number_vouchers", "voucher_no"]

#: 记 (记账凭证): the one kind of voucher the books use (no 收/付/转 split).
VOUCHER_PREFIX: Final = "记"
#: A voucher number as it is written (four digits at least; a month with more than 9,999 entries goes on).
VOUCHER_PATTERN: Final = r"记-[0-9]{4}-(0[1-9]|1[0-2])-[0-9]{4,9}"
_VOUCHER_RE: Final = re.compile(VOUCHER_PATTERN)


def voucher_no(period: str, sequence: int) -> str:
    """``voucher_no("2026-03", 1) == "记-2026-03-0001"``."""
    return f"{VOUCHER_PREFIX}-{period}-{sequence:04d}"


def is_voucher_no(value: str) -> bool:
    """Whether ``value`` is written like a voucher number."""
    return bool(_VOUCHER_RE.fullmatch(value))


@dataclass(frozen=True)
class Voucher:
    """The voucher of one entry: its collective, the month of its date and its place in that month."""

    collective_id: str
    period: str  # YYYY-MM
    sequence: int  # 1, 2, … within (collective_id, period)

    @property
    def number(self) -> str:
        return voucher_no(self.period, self.sequence)


def _none_issued(collective_id: str, period: str) -> int:
    return 0


def number_vouchers(entries: Iterable[tuple[str, str]],
                    issued: Callable[[str, str], int] = _none_issued) -> list[Voucher]:
    """The vouchers of ``entries`` — ``(collective_id, date "YYYY-MM-DD")`` pairs in log order — one each.

    ``issued(collective_id, period)`` is how many numbers the month had before the first of these
    entries (the ledger reads it from its projection; a replay from the start of the log passes
    nothing: none). Each entry gets the next number of its collective's month.
    """
    counters: dict[tuple[str, str], int] = {}
    out = []
    for collective_id, date in entries:
        period = date[:7]
        key = (collective_id, period)
        last = counters.get(key)
        if last is None:
            last = issued(collective_id, period)
        counters[key] = last + 1
        out.append(Voucher(collective_id, period, last + 1))
    return out
