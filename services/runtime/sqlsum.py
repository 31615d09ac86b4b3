"""Exact sums of integer columns in SQLite, however many rows and however big the amounts.

SQLite's SUM of integers is 64-bit and raises "integer overflow" past 2^63 — about 92,000 lines
of the largest wire amount (999999999999.99 yuan) — and TOTAL is a float, which is not exact.
So a sum is taken in two halves: the high bits (``expression >> 32``, an arithmetic shift) and
the low 32 bits (``expression & 0xFFFFFFFF``). Neither half can overflow for fewer than 2^31
rows; :func:`sum_of` joins them exactly into a Python int. Both halves are plain integer
aggregates, so a report over a million lines stays as fast as with SUM itself.
"""

from __future__ import annotations


def exact_sum(expression: str) -> str:
    """SQL for the exact SUM of an integer ``expression`` as two result columns; empty sets give 0, 0.

    ``f"SELECT account, {exact_sum('debit')} FROM entry_lines GROUP BY account"`` → rows
    ``(account, high, low)``; ``sum_of(high, low)`` is the sum.
    """
    return f"COALESCE(SUM(({expression}) >> 32), 0), COALESCE(SUM(({expression}) & 4294967295), 0)"


def sum_of(high: int, low: int) -> int:
    """The exact sum from the two columns of :func:`exact_sum` (a Python int of any size)."""
    return (int(high) << 32) + int(low)
