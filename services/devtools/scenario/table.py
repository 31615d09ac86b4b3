"""The payout table of a declared distribution, for people (rich).

One table per distribution: each investor's capital at the end of the period, its pro-rata
share of the pool, its guaranteed floor, the guarantor's top-up and the payout, with totals.
Amounts come as the services' wire strings and are added up in integer fen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from services.contracts.money import format_yuan, parse_yuan

COLUMNS = ("pro_rata", "guaranteed_floor", "top_up", "payout")


def grouped(amount: str) -> str:
    """``"3550000.00"`` -> ``"3,550,000.00"`` (string work only: no float ever sees the amount)."""
    sign = "-" if amount.startswith("-") else ""
    whole, _, frac = amount.lstrip("-").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return f"{sign}{','.join(groups)}.{frac}"


def fen(amount: str | None) -> int:
    return parse_yuan(amount, allow_negative=True) if amount is not None else 0


@dataclass(frozen=True)
class PayoutView:
    """What one table shows: the declared distribution, the project's name, investors' names and capital."""

    declared: Mapping[str, Any]
    project_id: str
    project_name: str
    period_start: str
    period_end: str
    names: Mapping[str, str]
    capital: Mapping[str, int]  # fen, at period end


def payout_table(view: PayoutView) -> Group:
    d = view.declared
    title = Text.assemble((f"{view.project_name}", "bold"), f" ({view.project_id}) · ",
                          f"{view.period_start} – {view.period_end} · ", (f"{d.get('distribution_id', '')}", "dim"))
    summary = [f"gross rent {grouped(d['gross_rent'])}"]
    for key, label in (("expenses", "expenses"), ("management_fee", "management fee"), ("tax", "tax"),
                       ("net_profit", "net profit")):
        if key in d:
            summary.append(f"{label} {grouped(d[key])}")
    summary.append(f"pool {grouped(d['pool'])}")
    table = Table(box=box.SIMPLE_HEAVY, show_footer=True, title_justify="left", caption_justify="left",
                  caption=" · ".join(summary))
    allocations = list(d.get("allocations", []))
    totals = {col: sum(fen(a.get(col)) for a in allocations) for col in COLUMNS}
    capital_total = sum(view.capital.get(a["investor_id"], 0) for a in allocations)
    table.add_column("village / investor", footer="total")
    table.add_column("capital", justify="right", footer=grouped(format_yuan(capital_total)))
    table.add_column("pro-rata", justify="right", footer=grouped(format_yuan(totals["pro_rata"])))
    table.add_column("guaranteed floor", justify="right", footer=grouped(format_yuan(totals["guaranteed_floor"])))
    table.add_column("top-up", justify="right", footer=grouped(format_yuan(totals["top_up"])))
    table.add_column("payout", justify="right", footer=Text(grouped(format_yuan(totals["payout"])), style="bold"))
    for a in sorted(allocations, key=_row_order):
        investor = a["investor_id"]
        name = view.names.get(investor, investor)
        label = name if a.get("investor_type", "collective") == "collective" else f"{name} ({a['investor_type']})"
        capital = view.capital.get(investor)
        table.add_row(Text(label), grouped(format_yuan(capital)) if capital is not None else "–",
                      *(grouped(a[col]) for col in COLUMNS[:-1]), Text(grouped(a["payout"]), style="bold"))
    return Group(title, table)


def _row_order(allocation: Mapping[str, Any]) -> tuple[int, str]:
    # Villages first (in id order), then the other investors.
    return (0 if allocation.get("investor_type", "collective") == "collective" else 1, allocation["investor_id"])


def print_payout_tables(console: Console, views: Iterable[PayoutView]) -> None:
    for view in views:
        console.print(payout_table(view))
        console.print()


@dataclass(frozen=True)
class PlanView:
    """What a member plan's table shows (DESIGN §11): the appropriations, the split and what was paid."""

    plan: Mapping[str, Any]
    collective_name: str
    households_paid: int
    amount_paid: int  # fen


PLAN_FIGURES = (("distributable", "可分配收益 distributable"), ("net_income", "  其中 本年收益 net income"),
                ("brought_forward", "  上年结转 brought forward"), ("reserve", "提取公积公益金 reserve"),
                ("welfare", "公益福利 welfare"), ("members_total", "成员分配总额 members' total"),
                ("undistributed", "未分配 undistributed"))


def plan_table(view: PlanView) -> Group:
    p = view.plan
    allocations = list(p.get("allocations", []))
    title = Text.assemble((f"{view.collective_name}", "bold"), f" · {p['year']}年度收益分配方案 · ",
                          (f"{p.get('plan_id', '')} · {p.get('status', '')}", "dim"))
    table = Table(box=box.SIMPLE_HEAVY, show_header=False, title_justify="left", caption_justify="left",
                  caption=f"record date {p.get('record_date', '–')} · weight {p.get('total_weight', '–')}")
    table.add_column("figure")
    table.add_column("amount", justify="right")
    for key, label in PLAN_FIGURES:
        if p.get(key) is not None:
            shown = grouped(p[key])
            table.add_row(label, Text(shown, style="bold") if key == "members_total" else shown)
    table.add_row("已发放 households paid",
                  f"{view.households_paid} / {len(allocations)} · {grouped(format_yuan(view.amount_paid))}")
    return Group(title, table)


def print_plan_tables(console: Console, views: Iterable[PlanView]) -> None:
    for view in views:
        console.print(plan_table(view))
        console.print()
