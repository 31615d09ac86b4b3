"""A realistic baotuan event log, written straight to a broker: ``python -m bench.generate``.

The log is what five years of a district looks like (DESIGN §1): 500 villages keep their
books (journal entries, now and then a reversal, a monthly period close), 50 projects (parks
and markets) take land shares and cash from the villages and from a few companies and a
government guarantor, let their buildings and shops, invoice and collect rent every month
and record expenses, and every quarter each project declares, approves and pays a
distribution — with the entries the ledger posts by itself for every investment, approved
dividend and payment, under the same deterministic ids the ledger service uses.

Every envelope is valid (each ``LogWriter.check_every``-th is checked against the event
schemas and ``envelope.seal``), every (topic, subject) hash chain is unbroken, every
distribution is computed by ``services.dividends.domain.compute_distribution`` from the
records below the ``input_positions`` it records, and every entry balances. The mix is sized
so the log holds exactly ``events`` records and about as many journal postings (the
peer benchmark balances that journal with hledger).

The generator is deterministic for a given ``--seed``. It refuses to write into topics that
already hold baotuan events unless ``--prefix`` gives its ids a fresh namespace.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.eventlog import JavaSink, LogWriter, PythonSink, Sink
from services.contracts.money import format_yuan, parse_mu, valuation_fen
from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS, TOPICS
from services.dividends.domain import InvestorCapitalChange, Policy, compute_distribution
from services.dividends.inputs import allocation_event_data, declared_event_data
from services.ledger.domain import automatic_entry_ids, local_date, posting_date
from services.runtime.kafka_io import end_offsets, ensure_topics

TOWNS = ("金清镇", "蓬街镇", "新桥镇", "横街镇", "桐屿街道", "峰江街道", "路南街道", "路北街道", "螺洋街道", "路桥街道")
SYLLABLES = "联盟上塘新华东方红星金清江海前后南北西中永丰和平长春利民兴旺青龙白云凤凰"
ROOT_INVESTORS = (  # (investor_id, name, type): the co-investors that keep no books here
    ("luqiao-sasac", "路桥区国有资产投资公司", "government"),
    ("binhai-devco", "台州滨海开发有限公司", "company"),
    ("luqiao-urban-invest", "路桥城市建设投资集团", "company"),
    ("taizhou-rural-fund", "台州乡村振兴基金", "company"),
    ("pengjie-town", "蓬街镇人民政府", "government"),
)
GUARANTOR = "luqiao-sasac"
EXPENSE_CATEGORIES = ("maintenance", "utilities", "property-management", "insurance", "security")

#: Manual journal entries a village accountant posts: (memo, debit accounts, credit accounts, low, high yuan).
ENTRY_TEMPLATES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], int, int, int], ...] = (
    # memo, debits, credits, min yuan, max yuan, weight
    ("收到经营收入", ("102",), ("501",), 500, 80_000, 14),
    ("收到上级补助资金", ("102",), ("503",), 5_000, 300_000, 4),
    ("支付办公及管理费用", ("513",), ("102",), 100, 20_000, 12),
    ("提取备用金", ("101",), ("102",), 1_000, 20_000, 6),
    ("发放村干部报酬", ("212",), ("102",), 5_000, 60_000, 6),
    ("计提本月报酬", ("513", "511"), ("212",), 3_000, 40_000, 6),
    ("公益事业支出", ("514",), ("102",), 500, 100_000, 6),
    ("缴纳税费", ("214",), ("102",), 100, 30_000, 4),
    ("经营支出及进项税", ("511", "214"), ("102",), 1_000, 60_000, 8),
    ("收到其他收入", ("101",), ("504",), 100, 5_000, 5),
    ("购入库存物资", ("121",), ("102",), 500, 50_000, 4),
    ("一事一议筹资", ("102",), ("231",), 1_000, 50_000, 2),
    ("报销差旅及公益支出", ("513", "514", "515"), ("101",), 300, 8_000, 6),
    ("收到租金及往来款", ("102",), ("501", "112"), 2_000, 90_000, 6),
    ("支付工程款", ("153",), ("102",), 10_000, 400_000, 3),
    ("归还短期借款", ("201",), ("102",), 10_000, 200_000, 1),
)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _month_start(start: dt.date, m: int) -> dt.date:
    return dt.date(start.year + (start.month - 1 + m) // 12, (start.month - 1 + m) % 12 + 1, 1)


def _days_in(day: dt.date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _instant(day: dt.date, n: int) -> str:
    """An instant on ``day`` between 01:00 and 08:59 UTC (09:00-16:59 in China: same local date)."""
    return f"{day.isoformat()}T{1 + (n // 3600) % 8:02d}:{(n // 60) % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z"


@dataclass(frozen=True)
class Shape:
    """How big the log is. ``events`` is exact; the rest follows from it."""

    events: int = 1_000_000
    villages: int = 500
    projects: int = 50
    months: int = 60
    start: dt.date = dt.date(2021, 1, 1)
    seed: int = 2026
    prefix: str = ""

    @classmethod
    def for_events(cls, events: int, **overrides: Any) -> Shape:
        """Five years for a big log; fewer months for a small one, so every month stays realistic."""
        months = 60 if events >= 400_000 else max(6, min(60, events // 4_000))
        return cls(events=events, months=months, **overrides)


@dataclass
class Project:
    project_id: str
    kind: str
    policy: dict[str, Any]
    leases: list[tuple[str, int]] = field(default_factory=list)  # (lease_id, monthly rent fen)
    movements: list[InvestorCapitalChange] = field(default_factory=list)
    capital: dict[str, int] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    rents: list[tuple[dt.date, int]] = field(default_factory=list)  # this quarter's
    expenses: list[tuple[dt.date, int]] = field(default_factory=list)  # this quarter's


@dataclass
class Summary:
    """What was written, for the benchmark report."""

    events: int
    seconds: float
    flush_seconds: float
    bytes: int
    producer: str
    by_type: dict[str, int]
    by_topic: dict[str, int]
    postings: int
    entries: int
    distributions: int
    villages: int
    projects: int
    leases: int
    months: int
    end_offsets: dict[str, dict[str, int]]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class District:
    """Generates the district's history month by month into a LogWriter."""

    def __init__(self, shape: Shape, log: LogWriter) -> None:
        self.shape = shape
        self.log = log
        self.rng = random.Random(shape.seed)
        self.n = 0  # a counter that spreads occurred_at over the day
        p = shape.prefix
        self.villages = [f"{p}village-{i:03d}" for i in range(1, shape.villages + 1)]
        self.projects: list[Project] = []
        self.closed: dict[str, set[str]] = {v: set() for v in self.villages}
        self.postings = 0
        self.entries = 0
        self.distributions = 0
        self.pending_payments: list[tuple[Project, str, str, str, int]] = []
        self.weights = [t[5] for t in ENTRY_TEMPLATES]
        self.entries_per_village_month = 0.0
        self.leases_total = 0
        self.months_written = 0

    # -- emitting -------------------------------------------------------------------------------------

    def _at(self, day: dt.date) -> str:
        self.n += 7
        return _instant(day, self.n)

    def _emit(self, topic: str, event_type: str, subject: str, data: dict[str, Any], *, actor: str, day: dt.date,
              event_id: str | None = None, causation_id: str | None = None, occurred_at: str | None = None) -> str:
        event_id = event_id or _uuid(self.rng)
        source = TOPICS[topic].owner
        self.log.emit(topic, event_type, subject, data, source=source, actor=actor,
                      occurred_at=occurred_at or self._at(day), event_id=event_id, causation_id=causation_id)
        return event_id

    def _entry(self, village: str, day: dt.date, memo: str, lines: list[dict[str, str]], *, actor: str,
               origin: dict[str, Any], entry_id: str | None = None, event_id: str | None = None,
               causation_id: str | None = None) -> str:
        entry_id = entry_id or _uuid(self.rng)
        data = {"entry_id": entry_id, "collective_id": village, "date": day.isoformat(), "memo": memo,
                "lines": lines, "origin": origin}
        self._emit(LEDGER_ENTRIES, "EntryPosted", village, data, actor=actor, day=day, event_id=event_id,
                   causation_id=causation_id)
        self.postings += len(lines)
        self.entries += 1
        return entry_id

    def _derived_entry(self, cause: str, qualifier: str, village: str, day: dt.date, memo: str,
                       debit: str, credit: str, fen: int, kind: str, ref: str) -> None:
        """The entry the ledger's reactor posts for ``cause`` (same ids, date rule and lines as the ledger)."""
        if fen <= 0:
            return
        day = posting_date(day, self.closed[village])
        amount = format_yuan(fen)
        ids = automatic_entry_ids(cause, qualifier)
        self._entry(village, day, memo, [{"account": debit, "debit": amount}, {"account": credit, "credit": amount}],
                    actor="system:ledger", origin={"kind": kind, "ref": ref},
                    entry_id=ids.entry_id, event_id=ids.event_id, causation_id=cause)

    # -- the plan -------------------------------------------------------------------------------------

    def plan(self) -> None:
        """Size leases and manual entries so the log has ``events`` records and about as many postings."""
        s = self.shape
        investors_per_project = 1.7 * s.villages / s.projects + 1.2
        collectives_per_project = 1.7 * s.villages / s.projects
        quarters = s.months // 3
        dividends = quarters * s.projects * (3 + 2 * investors_per_project + 2 * collectives_per_project)
        setup = s.villages * 3.7 + s.projects * 3 + len(ROOT_INVESTORS)
        closes = s.villages * (s.months - 1)
        expenses = s.projects * 1.5 * s.months
        fixed = setup + dividends + closes + expenses
        derived_postings = 2 * (1.7 * s.villages + quarters * s.projects * 2 * collectives_per_project)
        avg_lines = sum(w * (len(t[1]) + len(t[2])) for t, w in zip(ENTRY_TEMPLATES, self.weights, strict=True)) / sum(
            self.weights)
        # Manual entries carry the postings up to ~events; rents (two records a lease-month) fill the rest.
        manual_entries = max(0.0, (s.events * 0.98 - derived_postings) / (avg_lines * 1.01))
        rent_records = s.events - fixed - manual_entries * 1.01 - s.villages  # ~1 % reversals
        if rent_records < 0:
            manual_entries = max(0.0, manual_entries + rent_records)
            rent_records = 0
        self.entries_per_village_month = manual_entries / (s.villages * s.months)
        self.leases_total = max(s.projects, int(rent_records / (2 * s.months + 1.2)))

    # -- setup -----------------------------------------------------------------------------------------

    def setup(self) -> None:
        s, rng, p = self.shape, self.rng, self.shape.prefix
        day0 = s.start - dt.timedelta(days=40)
        for i, village in enumerate(self.villages):
            town = TOWNS[i % len(TOWNS)]
            name = SYLLABLES[rng.randrange(len(SYLLABLES))] + SYLLABLES[rng.randrange(len(SYLLABLES))] + "村"
            alliances = [f"{town}强村联盟"] if i % 3 == 0 else []
            if i % 19 == 0:
                alliances.append("滨海飞地抱团")
            self._emit(LEDGER_ENTRIES, "CollectiveRegistered", village,
                       {"collective_id": village, "name": name, "town": town, "uscc": None, "alliances": alliances},
                       actor="admin:district", day=day0)
        for investor_id, name, kind in ROOT_INVESTORS:
            self._emit(LEDGER_ENTRIES, "InvestorRegistered", p + investor_id,
                       {"investor_id": p + investor_id, "name": name, "investor_type": kind},
                       actor="admin:district", day=day0)
        # Projects: one in five is a market (many shops), the rest industrial parks (factory buildings).
        weights = []
        for j in range(1, s.projects + 1):
            kind = "market" if j % 5 == 0 else ("other" if j % 11 == 0 else "industrial_park")
            project_id = f"{p}project-{j:02d}"
            town = TOWNS[j % len(TOWNS)]
            guaranteed = j % 2 == 1
            policy = {"project_id": project_id, "management_fee_rate": "0.05", "tax_rate": "0.06",
                      "payout_ratio": "0.90", "guaranteed_rate": "0.10" if guaranteed else "0.00",
                      "guarantee_until": (s.start + dt.timedelta(days=5 * 365)).isoformat() if guaranteed else None,
                      "guarantor_id": p + GUARANTOR if guaranteed else None}
            self.projects.append(Project(project_id, kind, policy))
            weights.append(6 if kind == "market" else 1)
            label = {"market": "综合市场", "other": "商业综合体", "industrial_park": "产业园"}[kind]
            self._emit(LEDGER_INVESTMENTS, "ProjectRegistered", project_id,
                       {"project_id": project_id, "name": f"{town}{label}{j:02d}", "kind": kind, "town": town,
                        "operator": "路桥区国有资产投资公司"}, actor="admin:district", day=day0)
            self._emit(DIVIDENDS, "PolicySet", project_id, policy, actor=f"board:{project_id}", day=day0)
        # Land shares and cash: every village in 1-3 projects, every project one or two outside investors.
        for i, village in enumerate(self.villages):
            chosen = {i % s.projects}
            if rng.random() < 0.5:
                chosen.add(rng.randrange(s.projects))
            if rng.random() < 0.2:
                chosen.add(rng.randrange(s.projects))
            for j in sorted(chosen):
                self._invest(self.projects[j], village, "collective", day0 - dt.timedelta(days=rng.randrange(300)))
        for j, project in enumerate(self.projects):
            investor_id, _, kind = ROOT_INVESTORS[j % 2 + 1] if j % 3 else ROOT_INVESTORS[0]
            self._invest(project, p + investor_id, kind, day0)
        # Buildings and leases.
        total_weight = sum(weights)
        for project, weight in zip(self.projects, weights, strict=True):
            leases = max(1, round(self.leases_total * weight / total_weight))
            shops = project.kind == "market"
            buildings = max(1, leases // 40) if shops else leases
            for b in range(buildings):
                building_id = f"{project.project_id}-b{b + 1:03d}"
                area = rng.randrange(2_000, 12_000) if shops else rng.randrange(3_000, 20_000)
                self._emit(RENTALS, "BuildingRegistered", project.project_id,
                           {"building_id": building_id, "project_id": project.project_id,
                            "name": f"{b + 1}号{'市场楼' if shops else '厂房'}", "floor_area_m2": f"{area}.00"},
                           actor=f"operator:{project.project_id}", day=day0)
            for k in range(leases):
                lease_id = f"{project.project_id}-l{k + 1:04d}"
                rent = rng.randrange(3_000, 20_000) * 100 if shops else rng.randrange(40_000, 250_000) * 100
                start = s.start - dt.timedelta(days=rng.randrange(0, 30))
                self._emit(RENTALS, "LeaseSigned", project.project_id,
                           {"lease_id": lease_id, "project_id": project.project_id,
                            "building_id": f"{project.project_id}-b{k % buildings + 1:03d}",
                            "tenant": {"name": f"台州{SYLLABLES[k % len(SYLLABLES)]}{k:04d}"
                                               f"{'商行' if shops else '制造有限公司'}", "uscc": None},
                            "start_on": start.isoformat(), "end_on": dt.date(start.year + 10, 12, 31).isoformat(),
                            "monthly_rent": _yuan(rent), "deposit": _yuan(2 * rent), "billing": "monthly"},
                           actor=f"operator:{project.project_id}", day=day0)
                project.leases.append((lease_id, rent))

    def _invest(self, project: Project, investor: str, investor_type: str, day: dt.date) -> None:
        rng = self.rng
        investment_id = f"{project.project_id}-{investor}"[:63].rstrip("-")
        land = investor_type == "collective" and rng.random() < 0.7
        if land:
            area = f"{rng.randrange(20_000, 300_000) / 10_000:.4f}"
            price = rng.randrange(150_000, 400_000) * 100
            fen = valuation_fen(parse_mu(area), price)
            data = {"investment_id": investment_id, "project_id": project.project_id, "investor_id": investor,
                    "investor_type": investor_type, "area_mu": area, "price_per_mu": _yuan(price),
                    "valuation": _yuan(fen), "effective_on": day.isoformat(),
                    "parcel": f"JQ-{rng.randrange(1000, 9999)}"}
            event_type = "LandShareInvested"
        else:
            fen = rng.randrange(500_000, 5_000_000) * 100 if investor_type == "collective" else \
                rng.randrange(5_000_000, 30_000_000) * 100
            data = {"investment_id": investment_id, "project_id": project.project_id, "investor_id": investor,
                    "investor_type": investor_type, "amount": _yuan(fen), "effective_on": day.isoformat()}
            event_type = "CashInvested"
        actor = f"accountant:{investor}" if investor_type == "collective" else "admin:district"
        cause = self._emit(LEDGER_INVESTMENTS, event_type, project.project_id, data, actor=actor, day=day)
        project.movements.append(InvestorCapitalChange(investor, investor_type, fen, day))
        project.capital[investor] = project.capital.get(investor, 0) + fen
        project.types[investor] = investor_type
        if investor_type == "collective":
            if land:
                self._derived_entry(cause, "entry", investor, day, f"{data['area_mu']} 亩土地入股 {project.project_id}",
                                    f"141/{project.project_id}", "311", fen, "investment", investment_id)
            else:
                self._derived_entry(cause, "entry", investor, day, f"现金投资 {project.project_id}",
                                    f"141/{project.project_id}", "102", fen, "investment", investment_id)

    def _withdraw(self, project: Project, village: str, day: dt.date) -> None:
        fen = project.capital[village] // 4
        withdrawal_id = f"{project.project_id}-w-{village}"[:63].rstrip("-")
        cause = self._emit(LEDGER_INVESTMENTS, "InvestmentWithdrawn", project.project_id,
                           {"withdrawal_id": withdrawal_id, "project_id": project.project_id, "investor_id": village,
                            "amount": format_yuan(fen), "effective_on": day.isoformat(), "reason": "村集体资金调整"},
                           actor=f"accountant:{village}", day=day)
        project.movements.append(InvestorCapitalChange(village, "collective", -fen, day))
        project.capital[village] -= fen
        self._derived_entry(cause, "entry", village, day, f"撤回投资 {project.project_id}: 村集体资金调整", "102",
                            f"141/{project.project_id}", fen, "withdrawal", withdrawal_id)

    # -- a month ---------------------------------------------------------------------------------------

    def month_size(self, m: int) -> int:
        """An upper bound of the records month ``m`` writes (payments owed included)."""
        size = 2 * self.leases_total + 2 * len(self.projects) + len(self.villages)
        # At most one entry above the mean per village, and ~1 % of them reversed (5 % allowed).
        size += int((int(self.entries_per_village_month) + 1) * len(self.villages) * 1.05) + 10
        size += 2 * len(self.pending_payments) + 12
        if m % 3 == 2:
            size += sum(3 + 2 * len(p.capital) + 2 * len(p.capital) for p in self.projects)
        return size

    def month(self, m: int) -> None:
        first = _month_start(self.shape.start, m)
        days = _days_in(first)
        rng = self.rng
        self._pay(first + dt.timedelta(days=9))
        if m == self.shape.months // 2:  # a few villages take some capital out mid-way
            for project in self.projects[:5]:
                village = next(v for v, t in sorted(project.types.items()) if t == "collective")
                self._withdraw(project, village, first)
        for project in self.projects:
            actor = f"operator:{project.project_id}"
            due = first + dt.timedelta(days=9)
            for lease_id, rent in project.leases:
                invoice_id = f"{lease_id}-{first.year}{first.month:02d}"
                self._emit(RENTALS, "RentInvoiced", project.project_id,
                           {"invoice_id": invoice_id, "lease_id": lease_id, "project_id": project.project_id,
                            "period_start": first.isoformat(),
                            "period_end": first.replace(day=days).isoformat(), "amount": _yuan(rent),
                            "due_on": due.isoformat()}, actor=actor, day=first)
                if rng.random() < 0.02:  # arrears: some tenants do not pay this month
                    continue
                received = first + dt.timedelta(days=rng.randrange(days))
                self._emit(RENTALS, "RentReceived", project.project_id,
                           {"payment_id": f"{invoice_id}-paid", "lease_id": lease_id, "project_id": project.project_id,
                            "invoice_id": invoice_id, "amount": _yuan(rent), "received_on": received.isoformat()},
                           actor=actor, day=received)
                project.rents.append((received, rent))
            monthly_rent = sum(rent for _, rent in project.leases)
            for e in range(1 + (m % 2)):
                fen = rng.randrange(max(1, monthly_rent // 40), max(2, monthly_rent // 12))
                on = first + dt.timedelta(days=rng.randrange(days))
                self._emit(RENTALS, "ExpenseRecorded", project.project_id,
                           {"expense_id": f"{project.project_id}-x{first.year}{first.month:02d}-{e + 1}",
                            "project_id": project.project_id, "category": EXPENSE_CATEGORIES[(m + e) % 5],
                            "amount": _yuan(fen), "incurred_on": on.isoformat(), "memo": "园区运营支出"},
                           actor=actor, day=on)
                project.expenses.append((on, fen))
        self.manual_entries(first, days, self.entries_per_village_month)
        if m % 3 == 2:
            quarter_start = _month_start(self.shape.start, m - 2)
            for project in self.projects:
                self._distribute(project, quarter_start, first.replace(day=days))
        if m >= 1:  # the books of the month before are closed at the end of this one
            period = f"{_month_start(self.shape.start, m - 1):%Y-%m}"
            for village in self.villages:
                self._emit(LEDGER_ENTRIES, "PeriodClosed", village, {"collective_id": village, "period": period},
                           actor=f"accountant:{village}", day=first.replace(day=days))
                self.closed[village].add(period)

    def manual_entries(self, first: dt.date, days: int, per_village: float, limit: int | None = None) -> None:
        """Each village's accountant posts ~``per_village`` entries dated in the month (at most ``limit``)."""
        rng = self.rng
        templates = ENTRY_TEMPLATES
        whole = int(per_village)
        fraction = per_village - whole
        written = 0
        for village in self.villages:
            count = whole + (1 if rng.random() < fraction else 0)
            actor = f"accountant:{village}"
            for _ in range(count):
                if limit is not None and written >= limit:
                    return
                memo, debits, credits, low, high, _w = rng.choices(templates, self.weights)[0]
                day = first + dt.timedelta(days=rng.randrange(days))
                total = rng.randrange(low * 100, high * 100)
                lines = self._split(debits, "debit", total) + self._split(credits, "credit", total)
                entry_id = self._entry(village, day, memo, lines, actor=actor, origin={"kind": "manual", "ref": None})
                written += 1
                if rng.random() < 0.01 and (limit is None or written < limit):  # an error, reversed by its author
                    self._emit(LEDGER_ENTRIES, "EntryReversed", village,
                               {"entry_id": _uuid(rng), "reverses": entry_id, "collective_id": village,
                                "date": day.isoformat(), "reason": "录入错误，冲销原分录"}, actor=actor, day=day)
                    self.postings += len(lines)
                    written += 1

    def _split(self, accounts: tuple[str, ...], side: str, total: int) -> list[dict[str, str]]:
        if len(accounts) == 1:
            return [{"account": accounts[0], side: _yuan(total)}]
        parts = []
        left = total
        for account in accounts[:-1]:
            share = max(1, left * self.rng.randrange(30, 70) // 100)
            parts.append({"account": account, side: _yuan(share)})
            left -= share
        parts.append({"account": accounts[-1], side: _yuan(left)})
        return parts

    def _distribute(self, project: Project, start: dt.date, end: dt.date) -> None:
        """Declare, allocate and approve the quarter's distribution; the payments follow next month."""
        distribution_id = f"{project.project_id}-{start.year}q{(start.month - 1) // 3 + 1}"
        policy = Policy.from_wire(project.policy)
        result = compute_distribution(start, end, policy, project.rents, project.expenses, project.movements)
        positions = {LEDGER_INVESTMENTS: self.log.positions(LEDGER_INVESTMENTS), RENTALS: self.log.positions(RENTALS)}
        board = f"board:{project.project_id}"
        self._emit(DIVIDENDS, "DistributionDeclared", project.project_id,
                   declared_event_data(distribution_id=distribution_id, project_id=project.project_id,
                                       policy=project.policy, result=result, input_positions=positions),
                   actor=board, day=end)
        for allocation in result.allocations:
            self._emit(DIVIDENDS, "DividendAllocated", project.project_id,
                       allocation_event_data(distribution_id=distribution_id, project_id=project.project_id,
                                             allocation=allocation), actor=board, day=end)
        approved_at = self._at(end)
        approval = self._emit(DIVIDENDS, "DistributionApproved", project.project_id,
                              {"distribution_id": distribution_id, "project_id": project.project_id,
                               "approved_by": f"{project.project_id} 董事会"}, actor=board, day=end,
                              occurred_at=approved_at)
        approved_on = local_date(approved_at)
        for allocation in result.allocations:
            if allocation.payout > 0 and allocation.investor_type == "collective":
                self._derived_entry(approval, allocation.investor_id, allocation.investor_id, approved_on,
                                    f"投资收益 {project.project_id} {distribution_id}", f"112/{project.project_id}",
                                    f"502/{project.project_id}", allocation.payout, "dividend", distribution_id)
        for allocation in result.allocations:
            if allocation.payout > 0:
                self.pending_payments.append((project, distribution_id, allocation.investor_id,
                                              allocation.investor_type, allocation.payout))
        project.rents = []
        project.expenses = []
        self.distributions += 1

    def _pay(self, paid_on: dt.date) -> None:
        for project, distribution_id, investor, investor_type, payout in self.pending_payments:
            payment_id = f"{distribution_id}-{investor}"[:63].rstrip("-")
            cause = self._emit(DIVIDENDS, "DividendPaid", project.project_id,
                               {"payment_id": payment_id, "distribution_id": distribution_id,
                                "project_id": project.project_id, "investor_id": investor,
                                "amount": format_yuan(payout), "paid_on": paid_on.isoformat(),
                                "bank_reference": f"NSH{paid_on:%Y%m%d}{self.rng.randrange(10**8):08d}"},
                               actor=f"board:{project.project_id}", day=paid_on)
            if investor_type == "collective":
                self._derived_entry(cause, "entry", investor, paid_on,
                                    f"收到分红 {project.project_id} {distribution_id}", "102",
                                    f"112/{project.project_id}", payout, "payment", payment_id)
        self.pending_payments = []

    # -- the whole log -----------------------------------------------------------------------------------

    def run(self) -> None:
        self.plan()
        self.setup()
        target = self.shape.events
        m = 0
        while m < self.shape.months and self.log.count + self.month_size(m) <= target:
            self.month(m)
            m += 1
        # Top up to exactly ``events`` with the next month's manual entries (its period is open).
        first = _month_start(self.shape.start, m)
        if self.log.count + 2 * len(self.pending_payments) <= target:
            self._pay(first + dt.timedelta(days=9))
        while self.log.count < target:
            left = target - self.log.count
            self.manual_entries(first, _days_in(first), max(1.0, left / len(self.villages)), limit=left)
        self.months_written = m


def _existing_events(bootstrap: str) -> int:
    offsets = end_offsets(bootstrap, [LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS, DIVIDENDS])
    return sum(offsets.values())


def generate(bootstrap: str, shape: Shape, *, producer: str = "auto", work_dir: Path | None = None) -> Summary:
    """Write ``shape.events`` records to the broker and check the end offsets are the predicted ones."""
    topics = [LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS, DIVIDENDS]
    ensure_topics(bootstrap, topics)
    base = end_offsets(bootstrap, topics)
    if any(base.values()) and not shape.prefix:
        raise SystemExit(f"the broker at {bootstrap} already holds baotuan events: use a fresh broker, or --prefix "
                         "to give the generated ids their own namespace")
    partitions: dict[str, int] = {}
    for topic, partition in base:
        partitions[topic] = max(partitions.get(topic, 0), partition + 1)
    if producer == "auto":
        producer = "java" if JavaSink.available() else "python"
    sink: Sink = JavaSink(bootstrap, work_dir or Path("/tmp")) if producer == "java" else PythonSink(bootstrap)
    log = LogWriter(sink, partitions, base)
    district = District(shape, log)
    began = time.perf_counter()
    try:
        district.run()
    finally:
        flush = log.close()
    seconds = time.perf_counter() - began
    after = end_offsets(bootstrap, topics)
    expected = log.next_offset
    wrong = {f"{t}[{p}]": (after.get((t, p)), off) for (t, p), off in expected.items() if after.get((t, p)) != off}
    if wrong:
        raise RuntimeError(f"end offsets differ from the predicted ones (got, expected): {wrong}")
    by_topic: dict[str, int] = {}
    for (topic, partition), off in expected.items():
        by_topic[topic] = by_topic.get(topic, 0) + off - base.get((topic, partition), 0)
    return Summary(events=log.count, seconds=seconds, flush_seconds=flush, bytes=log.bytes, producer=sink.name,
                   by_type=dict(sorted(log.by_type.items(), key=lambda kv: -kv[1])), by_topic=by_topic,
                   postings=district.postings, entries=district.entries, distributions=district.distributions,
                   villages=len(district.villages), projects=len(district.projects),
                   leases=sum(len(p.leases) for p in district.projects), months=district.months_written,
                   end_offsets={t: {str(p): off for (tt, p), off in sorted(expected.items()) if tt == t}
                                for t in topics})


def _iter_lines(summary: Summary) -> Iterator[str]:
    yield (f"{summary.events:,} events ({summary.bytes / 1e6:.0f} MB) in {summary.seconds:.1f} s "
           f"({summary.events / summary.seconds:,.0f}/s, {summary.producer}; flush {summary.flush_seconds:.1f} s)")
    yield (f"{summary.villages} villages, {summary.projects} projects, {summary.leases} leases, "
           f"{summary.months} months, {summary.distributions} distributions, "
           f"{summary.entries:,} entries with {summary.postings:,} postings")
    for event_type, count in summary.by_type.items():
        yield f"  {event_type:22} {count:>9,}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
                        help="broker (default: $KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--producer", choices=("auto", "java", "python"), default="auto")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--prefix", default="", help="prefix of every generated id (to share a broker)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("--bootstrap or KAFKA_BOOTSTRAP_SERVERS is required")
    summary = generate(args.bootstrap, Shape.for_events(args.events, seed=args.seed, prefix=args.prefix),
                       producer=args.producer)
    if args.json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        for line in _iter_lines(summary):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
