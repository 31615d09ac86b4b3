"""The demo village's plan, loaded as `make run` loads it, on its notice page printed to PDF by Debian's chromium.

The ledger, the members service and the web app run in this process on one in-memory event log, each behind
its own HTTP server on a loopback port; 联盟村's part of data/binhai_scenario.json (its collective, its
development fund, its own books, the closes, the charter, the 306 households, the transfers and the 2025
plan) goes in through ``baotuan load``'s own import over HTTP. Then the village's accountant signs in, sees
the plan in the members area, and prints the notice (公示) to PDF (Playwright drives /usr/bin/chromium; the
page's @page rule makes it A4). The PDF's text holds the plan's totals — the same as the import returned — and
every household's masked head, and no head's full name.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from conftest import Server

from services.audit.checks.auditor import run_audit
from services.audit.sources.fetch import inspect_record_value
from services.audit.sources.records import Record
from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import RECORD_TOPICS
from services.devtools.scenario.loader import ApiClient, Endpoints, ImportResult, import_scenario
from services.devtools.scenario.schemas import validate_scenario
from services.runtime.auth import add_token
from services.runtime.config import PROJECT_ROOT, Settings
from services.runtime.eventlog import InMemoryLog

CHROMIUM = "/usr/bin/chromium"
#: With BAOTUAN_SCREENSHOTS=<dir> the test also saves the members area and the notice as PNGs there (the ones in
#: docs/screenshots/ were made with ``BAOTUAN_SCREENSHOTS=docs/screenshots``).
SCREENSHOTS = os.environ.get("BAOTUAN_SCREENSHOTS")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
pypdf = pytest.importorskip("pypdf", reason="pip install pypdf (the dev extra)")
expect = playwright_api.expect
expect.set_options(timeout=20_000)
if TYPE_CHECKING:
    from playwright.sync_api import Page

VILLAGE = "jinqing-lianmeng"
SECTIONS = ("entries", "year_end_closes", "charters", "households", "share_transfers", "member_plans")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def village_scenario() -> dict[str, Any]:
    """联盟村's records of the demo file: what its books and its plan need, nothing of the park's rent."""
    raw: dict[str, Any] = json.loads((PROJECT_ROOT / "data" / "binhai_scenario.json").read_text(encoding="utf-8"))
    part: dict[str, Any] = {
        "collectives": [c for c in raw["collectives"] if c["collective_id"] == VILLAGE],
        "development_funds": [f for f in raw["development_funds"] if f["collective_id"] == VILLAGE],
    }
    for section in SECTIONS:
        part[section] = [r for r in raw[section] if r["collective_id"] == VILLAGE]
    return part


@dataclass
class MemorySource:
    """The in-memory log as ``baotuan audit`` replays Kafka: every topic of record, partition by partition."""

    log: InMemoryLog
    description: str = "in-memory log"

    def records(self) -> Iterator[Record]:
        for topic in RECORD_TOPICS:
            for partition in range(self.log.partition_count(topic)):
                for r in self.log.read(topic, partition):
                    envelope, problem, intact, noncanonical = inspect_record_value(r.value)
                    yield Record(topic, partition, r.offset, None, r.key.decode() if r.key else None, envelope,
                                 problem, raw=r.value, intact=intact, noncanonical=noncanonical)

    def progress(self) -> tuple[int, int | None]:
        return 0, None

    def stopped_at(self) -> dict[str, dict[int, int]]:
        ends = self.log.end_offsets(list(RECORD_TOPICS))
        return {topic: {p: end for (t, p), end in ends.items() if t == topic} for topic in RECORD_TOPICS}


@dataclass
class Stack:
    web: str
    ledger: str
    members: str
    settings: Settings
    raw: dict[str, Any]
    imported: ImportResult
    log: InMemoryLog

    def account(self, role: str, scope: list[str]) -> tuple[str, str]:
        name, password = f"{role}-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex[:10]}"
        assert self.settings.tokens_file is not None
        admin = add_token(self.settings.tokens_file, name=f"admin-{uuid.uuid4().hex[:6]}", role="admin")
        made = requests.post(f"{self.ledger}/v1/users", timeout=30, headers={"Authorization": f"Bearer {admin}"},
                             json={"name": name, "display_name": name, "role": role, "scope": scope,
                                   "password": password, "must_change_password": False})
        assert made.status_code == 201, made.text
        return name, password


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from services.ledger.app import create_app as ledger_app
    from services.members.app import create_app as members_app
    from services.web.app import create_app as web_app
    from services.web.proxy import Upstreams

    root = tmp_path_factory.mktemp("members-web")
    settings = Settings(bootstrap_servers="in-memory", data_dir=root / "data", tokens_file=root / "tokens.json",
                        request_timeout_s=20)
    log = InMemoryLog()
    servers: list[Server] = []
    try:
        servers.append(Server(ledger_app(settings, log=log)))
        servers.append(Server(members_app(settings, log=log)))
        ledger, members = servers[0].url, servers[1].url
        servers.append(Server(web_app(settings, Upstreams(ledger=ledger, rentals=ledger, dividends=ledger,
                                                          members=members))))
        raw = village_scenario()
        assert settings.tokens_file is not None
        client = ApiClient(Endpoints(ledger=ledger, members=members),
                           add_token(settings.tokens_file, name="loader", role="admin"))
        try:
            imported = import_scenario(validate_scenario(raw), client)
        finally:
            client.close()
        yield Stack(servers[-1].url, ledger, members, settings, raw, imported, log)
    finally:
        for server in reversed(servers):
            server.stop()


def expected_figures(raw: dict[str, Any]) -> dict[str, int]:
    """The plan's figures from the file alone: the village's income and expenses of 2024 and 2025 (the two
    closed years) carried into 322, then the plan's appropriations (reserve = 10% of it, half up)."""
    income = {"501", "502", "503", "504"}
    net = sum(parse_yuan(f["amount"]) for f in raw["development_funds"])
    for entry in raw["entries"]:
        for line in entry["lines"]:
            if line["account"].split("/")[0] in income:
                net += parse_yuan(line.get("credit", "0.00")) - parse_yuan(line.get("debit", "0.00"))
            elif line["account"].startswith("5"):
                net -= parse_yuan(line.get("debit", "0.00")) - parse_yuan(line.get("credit", "0.00"))
    plan = raw["member_plans"][0]
    reserve = (net * 10 + 50) // 100  # reserve_rate 0.10, rounded half up to the fen
    welfare, total = parse_yuan(plan["welfare"]), parse_yuan(plan["members_total"])
    return {"distributable": net, "reserve": reserve, "welfare": welfare, "members_total": total,
            "undistributed": net - reserve - welfare - total}


#: Chromium's PDF names some glyphs by the CJK Radicals Supplement code point the font shares them with (⻩ for
#: 黄, ⺠ for 民); NFKC folds the Kangxi radicals (⼾ → 户) but not these: their unified ideographs.
RADICAL_FORMS = str.maketrans({
    "\u2e9f": "母", "\u2ea0": "民", "\u2ec5": "见", "\u2ec6": "角", "\u2ec8": "讠", "\u2ec9": "贝", "\u2ecb": "车",
    "\u2ed3": "长", "\u2ed4": "门", "\u2ed6": "阝", "\u2ed8": "青", "\u2ed9": "韦", "\u2eda": "页", "\u2edb": "风",
    "\u2edc": "飞", "\u2edd": "食", "\u2ee2": "马", "\u2ee3": "骨", "\u2ee4": "鬼", "\u2ee5": "鱼", "\u2ee6": "鸟",
    "\u2ee8": "麦", "\u2ee9": "黄", "\u2eec": "齐", "\u2eee": "齿", "\u2ef0": "龙", "\u2ef3": "龟",
})


def readable(text: str) -> str:
    """The text a person reads in the PDF: compatibility and radical forms folded to the ideographs."""
    return unicodedata.normalize("NFKC", text).translate(RADICAL_FORMS)


def grouped(fen: int) -> str:
    whole, _, cents = format_yuan(fen).partition(".")
    return f"{int(whole):,}.{cents}"


def test_the_import_makes_the_plan_the_file_calls_for(stack: Stack) -> None:
    [item] = stack.imported.member_plans
    plan = item.plan
    figures = expected_figures(stack.raw)
    assert stack.raw["member_plans"][0]["reserve_rate"] == "0.10"
    assert {k: parse_yuan(plan[k]) for k in figures} == figures
    assert plan["status"] in ("approved", "paid")
    unpaid = set(stack.raw["member_plans"][0]["payments"]["unpaid"])
    allocated = {a["household_id"]: a for a in plan["allocations"]}
    assert sum(parse_yuan(a["amount"]) for a in allocated.values()) == figures["members_total"]
    assert {hid for hid, a in allocated.items() if a["paid"]} == set(allocated) - unpaid
    assert item.households_paid == len(allocated) - len(unpaid & set(allocated))


def test_the_audit_recomputes_the_plan_and_finds_nothing(stack: Stack) -> None:
    """``baotuan audit``'s replay of the same log: the plan recomputed from the register and the books, its
    entries and its payments' entries in the books (posted by the ledger)."""
    result = run_audit(MemorySource(stack.log))
    assert result.ok, [f"{f.check}: {f.message}" for f in result.findings.items][:20]
    plan = result.auditor.members.plans[stack.imported.member_plans[0].plan["plan_id"]]
    assert plan.status == "approved"
    assert len(plan.allocations) == len(stack.imported.member_plans[0].plan["allocations"])


def sign_in(page: Page, name: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("账号", exact=True).fill(name)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.locator('[data-page="books"]')).to_be_visible()


def test_the_accountant_prints_the_notice_with_the_plans_totals_and_only_masked_names(
        stack: Stack, tmp_path: Path) -> None:
    # Without a Chinese font chromium prints every character as an empty box, and the PDF holds no text.
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False).stdout
    assert fonts.strip(), "no Chinese font installed (apt-get install fonts-noto-cjk; .ci/run does)"
    name, password = stack.account("accountant", [VILLAGE])
    plan_id = stack.imported.member_plans[0].plan["plan_id"]
    figures = expected_figures(stack.raw)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", base_url=stack.web)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, name, password)
            # The members area shows the plan, approved, with its figures and the way to its notice.
            page.goto("/#/members")
            card = page.locator(f'[data-testid="plan-{plan_id}"]')
            expect(card).to_be_visible()
            expect(card.locator('[data-figure="members_total"]')).to_have_text(grouped(figures["members_total"]))
            expect(card.locator(f'[data-testid="notice-{plan_id}"]')).to_be_visible()
            assert not errors, errors
            if SCREENSHOTS:
                page.set_viewport_size({"width": 1280, "height": 900})
                page.screenshot(path=str(Path(SCREENSHOTS) / "members-plan.png"))
            # The notice, printed as the browser prints it.
            page.goto(f"/notice/{VILLAGE}/{plan_id}")
            expect(page.get_by_test_id("notice-title")).to_have_text("联盟村股份经济合作社2025年度收益分配方案公示")
            if SCREENSHOTS:
                page.screenshot(path=str(Path(SCREENSHOTS) / "members-notice.png"))
            pdf = page.pdf(prefer_css_page_size=True, print_background=True)
            context.close()
        finally:
            browser.close()
    (tmp_path / "notice.pdf").write_bytes(pdf)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    first = reader.pages[0].mediabox
    assert (round(float(first.width) / 72 * 25.4), round(float(first.height) / 72 * 25.4)) == (210, 297)  # A4
    text = readable("\n".join(sheet.extract_text() for sheet in reader.pages))
    assert "联盟村股份经济合作社2025年度收益分配方案公示" in text.replace("\n", "")
    for label, key in (("可分配收益", "distributable"), ("提取公积公益金(10%)", "reserve"), ("公益福利", "welfare"),
                       ("成员分配总额", "members_total"), ("未分配(结转下年)", "undistributed")):
        assert f"{label} {grouped(figures[key])}" in text, (label, text[:2000])
    vote = stack.raw["member_plans"][0]["vote"]
    assert f"实到 {vote['present']}" in text and f"赞成 {vote['for']}" in text
    allocations = stack.imported.member_plans[0].plan["allocations"]
    totals = next(line for line in text.splitlines() if line.startswith("合计"))
    assert totals.endswith(grouped(figures["members_total"])), totals
    assert totals.split()[1] == f"{len(allocations)}", totals
    heads = {h["household_id"]: h["head_name"] for h in stack.raw["households"]}
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("lm-h")}
    assert set(rows) == {a["household_id"] for a in allocations}
    for a in allocations:
        row = rows[a["household_id"]]
        full = heads[a["household_id"]]
        assert row[1] == (full[0] + "*" if len(full) == 2 else full[0] + "*" * (len(full) - 2) + full[-1]), row
        assert row[-1] == grouped(parse_yuan(a["amount"])), row
    for full in heads.values():
        assert full not in text, f"the full name {full} is on the notice"
