"""The web page in a real browser (Debian's chromium, headless, driven by Playwright) against
the three real services and a real Kafka broker.

The services and the web app run in this process, each behind its own HTTP server on a free
loopback port; the data are loaded through the services' public APIs with an admin token.
With BAOTUAN_SCREENSHOTS=<dir> the tests also save the main pages as PNGs there (the ones in
docs/screenshots/ were made with ``BAOTUAN_SCREENSHOTS=docs/screenshots``), on a broker of
their own so that the pictures show only the demo villages.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest
import requests
from conftest import Server
from kafka_helpers import read_records

from services.accounts.policy import AddressThrottle, Backoff, SignInPolicy
from services.contracts.topics import LEDGER_ENTRIES
from services.devtools.broker import LocalBroker, free_port
from services.runtime.auth import add_token
from services.runtime.config import Settings

pytestmark = pytest.mark.kafka

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.environ.get("BAOTUAN_SCREENSHOTS")
# Making screenshots on a broker of our own: plain ids read better in the pictures.
OWN_BROKER = bool(SCREENSHOTS) and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
YEAR = "2026"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
# Every POST answers only once Kafka acknowledged it and the projection applied it: on two shared
# cores that can take longer than Playwright's default 5 s for an assertion.
expect = playwright_api.expect
expect.set_options(timeout=20_000)
if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page


# -- the stack: three services and the web app, each on its own port ----------------------------------------


@dataclass
class Stack:
    web: str
    ledger: str
    rentals: str
    dividends: str
    settings: Settings
    ids: dict[str, str]

    def token(self, role: str, scope: list[str] | tuple[str, ...] = ()) -> str:
        """A bearer token (for seeding the data through the APIs, as a script would)."""
        assert self.settings.tokens_file is not None
        return add_token(self.settings.tokens_file, name=f"{role}-{uuid.uuid4().hex[:6]}", role=role, scope=scope)

    def account(self, role: str, scope: list[str] | tuple[str, ...] = (), *, one_time: bool = False,
                display_name: str | None = None) -> tuple[str, str]:
        """An account made through the ledger's API by an admin: (name, password). With ``one_time`` the
        password is the one-time password the ledger made, which must be changed at the first sign-in."""
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        body: dict[str, Any] = {"name": name, "display_name": display_name or name, "role": role, "scope": list(scope)}
        if not one_time:
            body.update(password=f"pw-{uuid.uuid4().hex[:10]}", must_change_password=False)
        made = requests.post(f"{self.ledger}/v1/users", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {self.token('admin')}"})
        assert made.status_code == 201, made.text
        return name, body.get("password") or made.json()["one_time_password"]


@pytest.fixture(scope="module")
def bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session broker; a broker of the module's own when making screenshots (only our villages)."""
    if not OWN_BROKER:
        yield request.getfixturevalue("kafka_bootstrap")
        return
    broker = LocalBroker(tmp_path_factory.mktemp("kafka-web"), free_port(), free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def stack(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from services.dividends.app import create_app as dividends_app
    from services.ledger.app import create_app as ledger_app
    from services.rentals.app import create_app as rentals_app
    from services.web.app import create_app as web_app
    from services.web.proxy import Upstreams

    root = tmp_path_factory.mktemp("web-stack")
    settings = Settings(bootstrap_servers=bootstrap, data_dir=root / "data", tokens_file=root / "tokens.json",
                        request_timeout_s=15)
    servers: list[Server] = []
    try:
        for make in (ledger_app, rentals_app, dividends_app):
            servers.append(Server(make(settings)))
        # Quick to lock for the lockout test (its own account); every browser here comes from 127.0.0.1.
        policy = SignInPolicy(account=Backoff(slow_after=2, lock_after=3, lock_s=600, base_delay_s=5),
                              address=Backoff(slow_after=1000, lock_after=2000))
        servers[0].app.extensions.update(baotuan_sign_in_policy=policy,
                                         baotuan_address_throttle=AddressThrottle(policy))
        ledger, rentals, dividends = (s.url for s in servers)
        servers.append(Server(web_app(settings, Upstreams(ledger=ledger, rentals=rentals, dividends=dividends))))
        built = Stack(web=servers[-1].url, ledger=ledger, rentals=rentals, dividends=dividends, settings=settings,
                      ids={})
        built.ids = seed(built)
        yield built
    finally:
        for server in reversed(servers):
            server.stop()


def seed(stack: Stack) -> dict[str, str]:
    """Villages, a park with investors, a policy, buildings, leases, rent and some journal entries."""
    u = "" if OWN_BROKER else f"-{uuid.uuid4().hex[:6]}"
    ids = {"lianmeng": f"lianmeng{u}", "xinqiao": f"xinqiao{u}", "dongshan": f"dongshan{u}",
           "hexi": f"hexi{u}", "company": f"binhai-dev{u}", "project": f"binhai-park{u}"}
    admin = {"Authorization": f"Bearer {stack.token('admin')}"}

    def call(method: str, base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.request(method, base + path, json=body, headers=admin, timeout=30)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        result: dict[str, Any] = response.json()
        return result

    villages = [("lianmeng", "联盟村", "金清镇", ["滨海抱团"]), ("xinqiao", "新桥村", "金清镇", ["滨海抱团"]),
                ("dongshan", "东山村", "金清镇", ["滨海抱团"]), ("hexi", "河西村", "蓬街镇", [])]
    for key, name, town, alliances in villages:
        call("POST", stack.ledger, "/v1/collectives",
             {"collective_id": ids[key], "name": name, "town": town, "alliances": alliances})
    call("POST", stack.ledger, "/v1/investors",
         {"investor_id": ids["company"], "name": "滨海开发公司", "investor_type": "company"})
    pid = ids["project"]
    call("POST", stack.ledger, "/v1/projects", {"project_id": pid, "name": "路桥滨海产业园", "kind": "industrial_park",
                                                "town": "金清镇", "operator": "滨海园区运营公司"})
    for key, body in [("lianmeng", {"kind": "land", "area_mu": "14.2", "price_per_mu": "200000.00"}),
                      ("xinqiao", {"kind": "land", "area_mu": "9.5", "price_per_mu": "200000.00"}),
                      ("dongshan", {"kind": "cash", "amount": "1000000.00"}),
                      ("company", {"kind": "cash", "amount": "5000000.00"})]:
        call("POST", stack.ledger, f"/v1/projects/{pid}/investments",
             {**body, "investor_id": ids[key], "effective_on": f"{YEAR}-01-01"})
    call("PUT", stack.dividends, f"/v1/projects/{pid}/policy",
         {"management_fee_rate": "0.05", "tax_rate": "0.06", "payout_ratio": "0.90", "guaranteed_rate": "0.10",
          "guarantor_id": ids["company"]})
    for n, area in [(1, "8400.00"), (2, "6000.00"), (3, "5200.00")]:
        call("POST", stack.rentals, f"/v1/projects/{pid}/buildings",
             {"building_id": f"b{n}{u}", "name": f"{n}号厂房", "floor_area_m2": area})
    for n, tenant, rent, billing in [(1, "台州精工机械有限公司", "84000.00", "monthly"),
                                     (2, "路桥电子科技有限公司", "60000.00", "quarterly")]:
        call("POST", stack.rentals, f"/v1/projects/{pid}/leases",
             {"lease_id": f"lease{n}{u}", "building_id": f"b{n}{u}", "tenant": {"name": tenant},
              "start_on": f"{YEAR}-01-01", "end_on": "2029-01-01", "monthly_rent": rent, "deposit": "100000.00",
              "billing": billing})
        call("POST", stack.rentals, f"/v1/leases/lease{n}{u}/invoices", {"up_to": f"{YEAR}-10-01"})
    ids.update(lease1=f"lease1{u}", lease2=f"lease2{u}")
    for month in range(1, 9):  # lease 1: January to August paid
        call("POST", stack.rentals, f"/v1/leases/lease1{u}/payments",
             {"amount": "84000.00", "received_on": f"{YEAR}-{month:02d}-05"})
    for month in (1, 4):  # lease 2: the first two quarters paid
        call("POST", stack.rentals, f"/v1/leases/lease2{u}/payments",
             {"amount": "180000.00", "received_on": f"{YEAR}-{month:02d}-10"})
    for key, amount, account in [("lianmeng", "1200000.00", "503"), ("lianmeng", "86000.00", "501"),
                                 ("xinqiao", "650000.00", "503"), ("dongshan", "100000.00", "503"),
                                 ("hexi", "420000.00", "503")]:
        call("POST", stack.ledger, f"/v1/collectives/{ids[key]}/entries",
             {"date": f"{YEAR}-03-20", "memo": "区级扶持资金" if account == "503" else "村留地租金",
              "lines": [{"account": "102", "debit": amount}, {"account": account, "credit": amount}]})
    call("POST", stack.ledger, f"/v1/collectives/{ids['lianmeng']}/periods", {"period": f"{YEAR}-01"})
    return ids


# -- the browser ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN", base_url=stack.web)
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shoot(page: Page, name: str, tmp_path: Path, *, full_page: bool = True) -> Path:
    """Save a screenshot (to BAOTUAN_SCREENSHOTS when set) and return where it is."""
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def try_sign_in(page: Page, name: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("账号", exact=True).fill(name)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()


def sign_in(page: Page, account: tuple[str, str], landing: str) -> None:
    try_sign_in(page, *account)
    expect(page.locator(f'[data-page="{landing}"]')).to_be_visible()


def row_of(page: Page, table: str, key: str) -> Locator:
    return page.locator(f'[data-testid="{table}"] tbody tr[data-key="{key}"]')


# -- the tests ----------------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_next_to_the_password_and_the_right_one_opens_the_books(
        page: Page, stack: Stack, tmp_path: Path) -> None:
    name, password = stack.account("accountant", [stack.ids["lianmeng"]], display_name="联盟村 王会计")
    page.goto("/")
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    expect(page.get_by_label("访问令牌")).to_have_count(0)  # nobody is asked for a token any more
    shoot(page, "sign-in", tmp_path, full_page=False)
    try_sign_in(page, name, "not-the-password")
    expect(page.locator('[data-error-for="password"]')).to_have_text(re.compile("账号或密码错误"))
    expect(page.locator("#password")).to_have_value("")

    sign_in(page, (name, password), "books")
    expect(page.get_by_test_id("role")).to_have_text("报账员")
    expect(page.get_by_test_id("nav-account")).to_have_text("联盟村 王会计")
    # An accountant sees the books, entries, dividends, statement and income tabs, not rentals or the board.
    expect(page.get_by_test_id("nav-entry")).to_be_visible()
    expect(page.get_by_test_id("nav-rentals")).to_have_count(0)
    expect(page.get_by_test_id("nav-board")).to_have_count(0)
    expect(page.get_by_test_id("nav-users")).to_have_count(0)


def test_an_accountant_posts_a_balanced_entry_sees_the_balance_change_and_reverses_it(
        page: Page, stack: Stack, tmp_path: Path) -> None:
    cid = stack.ids["xinqiao"]
    sign_in(page, stack.account("accountant", [cid]), "books")
    bank = row_of(page, "trial-balance-table", "102")
    expect(bank.locator("td").nth(4)).to_have_text("650,000.00")
    expect(page.get_by_test_id("tb-status")).to_have_text("借贷平衡")

    page.get_by_test_id("nav-entry").click()
    form = page.get_by_test_id("entry-form")
    form.get_by_test_id("entry-date").fill(f"{YEAR}-04-15")
    form.get_by_test_id("entry-memo").fill("厂房维修费")
    form.get_by_test_id("entry-attachments").fill("2")
    accounts = form.get_by_test_id("line-account")
    accounts.nth(0).fill("513")
    form.get_by_test_id("line-debit").nth(0).fill("3200")
    accounts.nth(1).fill("102")
    form.get_by_test_id("line-credit").nth(1).fill("3000.5")
    # The live check: not balanced, so the form cannot be sent.
    expect(form.get_by_test_id("balance-status")).to_have_text(re.compile("借贷不平衡，差额 199.50"))
    expect(form.get_by_test_id("entry-submit")).to_be_disabled()
    expect(form.locator("tr.line").nth(0)).to_contain_text("管理费用")
    form.get_by_test_id("line-credit").nth(1).fill("3200.00")
    expect(form.get_by_test_id("balance-status")).to_have_text("借贷平衡 ✓")
    expect(form.get_by_test_id("total-debit")).to_have_text("3,200.00")
    form.get_by_test_id("entry-submit").click()
    expect(page.get_by_test_id("entry-posted")).to_contain_text(f"记-{YEAR}-04-")

    page.get_by_test_id("nav-books").click()
    expect(bank.locator("td").nth(4)).to_have_text("646,800.00")
    expense = row_of(page, "trial-balance-table", "513")
    expect(expense.locator("td").nth(2)).to_have_text("3,200.00")
    # The entry's voucher number and attachments; the 科目余额表 of this year's months.
    posted = page.locator('[data-testid="entries-table"] tbody tr').filter(has_text="厂房维修费")
    expect(posted.get_by_test_id("voucher-no")).to_have_text(re.compile(f"^记-{YEAR}-04-[0-9]{{4}}$"))
    expect(posted.locator("td").nth(2)).to_have_text("2")
    page.get_by_test_id("balances-from").fill(f"{YEAR}-04")
    page.get_by_test_id("balances-from").dispatch_event("change")
    period_expense = row_of(page, "account-balances-table", "513")
    expect(period_expense.locator("td").nth(4)).to_have_text("3,200.00")  # the period's debits
    shoot(page, "accountant-books", tmp_path)

    entry = page.locator('[data-testid="entries-table"] tbody tr').filter(has_text="厂房维修费")
    entry.get_by_role("button", name="冲销").click()
    reverse = page.get_by_test_id("reverse-form")
    reverse.locator('[data-field="date"]').fill(f"{YEAR}-04-16")
    reverse.locator('[data-field="reason"]').fill("重复记账")
    reverse.get_by_role("button", name="确认冲销").click()
    expect(bank.locator("td").nth(4)).to_have_text("650,000.00")
    expect(entry.first).to_contain_text("已冲销")

    # The 收益及收益分配表 of the year: the subsidy income, and the expense posted and reversed nets to nothing.
    page.get_by_test_id("nav-statement").click()
    page.get_by_test_id("year").fill(YEAR)
    page.get_by_test_id("year").dispatch_event("change")
    statement = page.get_by_test_id("income-statement-table")
    expect(statement.locator("tbody tr").filter(has_text="补助收入").locator("td").last).to_have_text("650,000.00")
    expect(statement.locator("tbody tr").filter(has_text="管理费用").locator("td").last).to_have_text("0.00")
    expect(statement.locator("tbody tr").filter(has_text="本年收益").locator("td").last).to_have_text("650,000.00")
    expect(statement.locator("tbody tr").filter(has_text="年末未分配收益").locator("td").last).to_have_text(
        "650,000.00")
    expect(page.get_by_test_id("close-status")).to_have_text("本年尚未结转。")
    expect(page.get_by_test_id("close-year")).to_be_visible()
    shoot(page, "income-statement", tmp_path)

    # The Excel export of the village's books, written by the audit tool from the events.
    page.get_by_test_id("nav-books").click()
    with page.expect_download() as download:
        page.get_by_test_id("export-xlsx").click()
    workbook_path = tmp_path / "books.xlsx"
    download.value.save_as(workbook_path)
    assert download.value.suggested_filename == f"baotuan-{cid}.xlsx"
    workbook = openpyxl.load_workbook(workbook_path, read_only=True)
    assert workbook.sheetnames[:3] == ["科目余额表", "凭证明细", "分红明细"]
    entries = [row for row in workbook["凭证明细"].iter_rows(values_only=True) if "厂房维修费" in map(str, row)]
    assert len(entries) == 2  # the two lines of the entry (its reversal carries the reason)
    workbook.close()


def test_the_ledgers_refusals_are_shown_next_to_the_field_they_name(page: Page, stack: Stack, tmp_path: Path) -> None:
    cid = stack.ids["lianmeng"]
    sign_in(page, stack.account("accountant", [cid]), "books")
    page.get_by_test_id("nav-entry").click()
    form = page.get_by_test_id("entry-form")
    # January is closed: the ledger answers 422 naming "date".
    form.get_by_test_id("entry-date").fill(f"{YEAR}-01-20")
    form.get_by_test_id("line-account").nth(0).fill("102")
    form.get_by_test_id("line-debit").nth(0).fill("500.00")
    form.get_by_test_id("line-account").nth(1).fill("504")
    form.get_by_test_id("line-credit").nth(1).fill("500.00")
    form.get_by_test_id("entry-submit").click()
    date_error = page.locator('[data-error-for="date"]')
    expect(date_error).to_contain_text(f"period {YEAR}-01 is closed")
    # ... right beside the date input, which is marked invalid.
    assert date_error.evaluate("el => el.parentElement.contains(document.querySelector('[data-testid=entry-date]'))")
    expect(form.get_by_test_id("entry-date")).to_have_attribute("aria-invalid", "true")
    shoot(page, "entry-form-error", tmp_path, full_page=False)

    # An account that is not on the chart: the error sits in that line's account cell.
    form.get_by_test_id("entry-date").fill(f"{YEAR}-05-20")
    form.get_by_test_id("line-account").nth(1).fill("999")
    form.get_by_test_id("entry-submit").click()
    account_error = page.locator('[data-error-for="lines.1.account"]')
    expect(account_error).to_be_visible()
    assert account_error.evaluate("el => el.closest('td').querySelector('input').value") == "999"
    expect(page.locator('[data-error-for="date"]')).to_have_count(0)


def test_an_operator_sees_rent_roll_occupancy_and_arrears_and_records_a_payment(
        page: Page, stack: Stack, tmp_path: Path) -> None:
    pid = stack.ids["project"]
    sign_in(page, stack.account("operator", [pid]), "rentals")
    page.get_by_test_id("rentals-on").fill(f"{YEAR}-10-15")
    page.get_by_test_id("rentals-on").dispatch_event("change")
    roll = page.get_by_test_id("rent-roll-table")
    expect(roll.locator("tbody tr")).to_have_count(3)
    expect(roll).to_contain_text("台州精工机械有限公司")
    expect(roll.locator("tfoot")).to_contain_text("144,000.00")
    expect(page.get_by_test_id("occupancy-rate")).to_have_text("73.47%")
    arrears = page.get_by_test_id("arrears-table")
    # Lease 1 owes September and October (84,000 each), lease 2 the third and fourth quarters (180,000 each).
    expect(arrears.locator("tfoot td").last).to_have_text("528,000.00")

    form = page.get_by_test_id("payment-form")
    form.get_by_test_id("payment-lease").select_option(stack.ids["lease1"])
    form.get_by_test_id("payment-amount").fill("84000.00")
    form.get_by_test_id("payment-date").fill(f"{YEAR}-10-15")
    # Looking at another date reloads the reports but keeps what the operator typed.
    page.get_by_test_id("rentals-on").fill(f"{YEAR}-10-20")
    page.get_by_test_id("rentals-on").dispatch_event("change")
    expect(arrears.locator("tfoot td").last).to_have_text("528,000.00")
    expect(form.get_by_test_id("payment-amount")).to_have_value("84000.00")
    expect(form.get_by_test_id("payment-lease")).to_have_value(stack.ids["lease1"])
    form.get_by_test_id("payment-submit").click()
    expect(page.get_by_test_id("payment-recorded")).to_be_visible()
    expect(arrears.locator("tfoot td").last).to_have_text("444,000.00")
    shoot(page, "operator-rentals", tmp_path)

    # A refused amount is shown next to the amount field.
    form.get_by_test_id("payment-amount").fill("12.345")
    form.get_by_test_id("payment-submit").click()
    expect(page.locator('[data-error-for="amount"]')).to_be_visible()


def test_a_board_previews_declares_approves_and_pays_a_distribution(
        page: Page, stack: Stack, browser: Browser, tmp_path: Path) -> None:
    pid, lianmeng = stack.ids["project"], stack.ids["lianmeng"]
    sign_in(page, stack.account("board", [pid]), "board")
    page.get_by_test_id("period-start").fill(f"{YEAR}-01-01")
    page.get_by_test_id("period-end").fill(f"{YEAR}-06-30")
    page.get_by_test_id("preview").click()
    preview = page.get_by_test_id("preview-allocations")
    expect(preview.locator("tbody tr")).to_have_count(4)
    summary = page.get_by_test_id("preview-result").get_by_test_id("distribution-summary")
    # Rent received January-June: 6 × 84,000 + 2 × 180,000.
    expect(summary).to_contain_text("864,000.00")
    village = preview.locator(f'tbody tr[data-key="{lianmeng}"]')
    expect(village.locator("td").nth(1)).to_have_text("村集体")
    shoot(page, "board-preview", tmp_path)

    page.get_by_test_id("declare").click()
    expect(page.get_by_test_id("declared")).to_be_visible()
    card = page.locator("article.distribution").first
    expect(card.get_by_test_id("distribution-status")).to_have_text("已宣告")
    card.get_by_role("button", name="批准").click()
    expect(card.get_by_test_id("distribution-status")).to_have_text("已批准")

    village_row = card.locator(f'tbody tr[data-key="{lianmeng}"]')
    payout = village_row.locator("td").nth(6).inner_text()
    card.get_by_test_id(f"pay-{lianmeng}").click()
    card.get_by_test_id("pay-reference").fill("ICBC-20260710-001")
    card.get_by_test_id("pay-submit").click()
    expect(village_row).to_contain_text("已付清")
    shoot(page, "board-distribution", tmp_path)

    # The village's accountant now sees the dividend, paid, under the project.
    other = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=stack.web)
    try:
        accountant = other.new_page()
        sign_in(accountant, stack.account("accountant", [lianmeng]), "books")
        accountant.get_by_test_id("nav-dividends").click()
        dividends = accountant.get_by_test_id(f"dividends-{pid}")
        expect(dividends.locator("tbody tr")).to_have_count(1)
        expect(dividends.locator("tbody tr td").nth(5)).to_have_text(payout)
        expect(dividends.locator("tbody tr td").nth(6)).to_have_text(payout)
    finally:
        other.close()

    # June rent recorded after the declaration is late (DESIGN §6 step 1): the next period's preview counts it
    # and lists it on its own, so the board sees why the rent of July–December holds June money.
    late = requests.post(f"{stack.rentals}/v1/leases/{stack.ids['lease1']}/payments", timeout=30,
                         json={"amount": "1234.00", "received_on": f"{YEAR}-06-20"},
                         headers={"Authorization": f"Bearer {stack.token('admin')}"})
    assert late.status_code == 201, late.text
    assert late.json()["late"]["period_end"] == f"{YEAR}-06-30"
    page.get_by_test_id("period-start").fill(f"{YEAR}-07-01")
    page.get_by_test_id("period-end").fill(f"{YEAR}-12-31")
    page.get_by_test_id("preview").click()
    late_items = page.get_by_test_id("preview-late-items")
    expect(late_items.locator("tbody tr")).to_have_count(1)
    expect(late_items.locator("tbody tr")).to_contain_text("租金")
    expect(late_items.locator("tbody tr")).to_contain_text(f"{YEAR}-06-20")
    expect(late_items.locator("tbody tr")).to_contain_text("1,234.00")
    shoot(page, "board-late-items", tmp_path)


def test_everyone_sees_the_village_income_chart_against_the_million_line(
        page: Page, stack: Stack, tmp_path: Path) -> None:
    sign_in(page, stack.account("operator", [stack.ids["project"]]), "rentals")
    page.get_by_test_id("nav-income").click()
    page.get_by_test_id("year").fill(YEAR)
    page.get_by_test_id("year").dispatch_event("change")
    page.get_by_test_id("town").select_option("金清镇")
    chart = page.get_by_test_id("income-chart")
    for key in ("lianmeng", "xinqiao", "dongshan"):
        expect(chart.locator(f'rect[data-village="{stack.ids[key]}"]')).to_have_count(1)
    expect(chart.locator(f'rect[data-village="{stack.ids["hexi"]}"]')).to_have_count(0)
    expect(chart.locator("line.target")).to_have_count(1)
    lianmeng = chart.locator(f'rect[data-village="{stack.ids["lianmeng"]}"]')
    expect(lianmeng).to_have_class(re.compile(r"\bmet\b"))
    expect(chart.locator(f'rect[data-village="{stack.ids["dongshan"]}"]')).to_have_class(re.compile(r"\bweak\b"))
    table = page.get_by_test_id("income-table")
    expect(table.locator("tbody tr").filter(has_text="新桥村")).to_contain_text("未达百万")
    # The target line sits at 1,000,000 on the bars' scale: right of a 650,000 bar's end, left of 1,286,000's.
    line_x = float(chart.locator("line.target").get_attribute("x1") or 0)
    box = lianmeng.bounding_box()
    assert box is not None
    xinqiao_width = float(chart.locator(f'rect[data-village="{stack.ids["xinqiao"]}"]').get_attribute("width") or 0)
    assert 170 + xinqiao_width < line_x < 170 + float(lianmeng.get_attribute("width") or 0)
    shoot(page, "village-income", tmp_path)

    page.locator("#lang").click()
    expect(page.get_by_role("heading", name="Village collective income")).to_be_visible()
    expect(page.get_by_test_id("nav-rentals")).to_have_text("Rentals")
    page.locator("#lang").click()
    expect(page.get_by_role("heading", name="村级集体经济收入")).to_be_visible()


def test_the_page_loads_nothing_from_outside_and_keeps_the_session_where_no_script_can_read_it(
        page: Page, stack: Stack) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    sign_in(page, stack.account("board", [stack.ids["project"]]), "board")
    expect(page.get_by_test_id("distributions")).to_be_visible()
    assert requested and all(url.startswith(stack.web) for url in requested), requested
    [cookie] = [c for c in page.context.cookies() if c["name"].endswith("baotuan-session")]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP on this machine; Secure (and named __Host-…) over HTTPS
    assert not any(cookie["value"] in url for url in requested)
    assert cookie["value"] not in page.evaluate("() => document.cookie")
    stored = page.evaluate("() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert cookie["value"] not in stored


# -- accounts, sessions and the admin's page (issue 19) -------------------------------------------------------


def admin_of(stack: Stack) -> tuple[str, str]:
    return stack.account("admin", display_name="镇管理员")


def actors_of(stack: Stack, collective_id: str) -> list[tuple[str, str]]:
    """(memo, actor) of the entries the ledger's topic holds for a collective."""
    out = []
    for record in read_records(stack.settings.bootstrap_servers, LEDGER_ENTRIES, key=collective_id):
        envelope = json.loads(record.value)
        if envelope["type"] == "EntryPosted":
            out.append((envelope["data"]["memo"], envelope["actor"]))
    return out


def test_an_admin_creates_a_village_accountant_who_changes_the_one_time_password_and_posts_an_entry(
        page: Page, stack: Stack, browser: Browser, tmp_path: Path) -> None:
    lianmeng = stack.ids["lianmeng"]
    sign_in(page, admin_of(stack), "users")
    expect(page.get_by_test_id("nav-users")).to_have_text("账号管理")
    form = page.get_by_test_id("user-form")
    name = f"lianmeng-kuaiji-{uuid.uuid4().hex[:4]}"
    form.get_by_test_id("user-name").fill(name)
    form.get_by_test_id("user-display-name").fill("联盟村 李会计")
    form.get_by_test_id("user-role").select_option("accountant")
    form.get_by_test_id("user-scope").select_option([lianmeng])
    form.get_by_test_id("user-submit").click()
    expect(page.get_by_test_id("user-created")).to_contain_text(name)
    one_time = page.get_by_test_id("one-time-password").inner_text()
    row = row_of(page, "users-table", name)
    expect(row).to_contain_text("报账员")
    expect(row).to_contain_text(lianmeng)
    expect(row.get_by_test_id("user-status")).to_contain_text("待改密码")
    shoot(page, "admin-accounts", tmp_path)

    other = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN", base_url=stack.web)
    try:
        accountant = other.new_page()
        try_sign_in(accountant, name, one_time)
        # First sign-in: nothing but choosing a password of their own.
        expect(accountant.get_by_test_id("password-forced")).to_be_visible()
        expect(accountant.get_by_test_id("nav-books")).to_have_count(0)
        shoot(accountant, "password-change", tmp_path, full_page=False)
        accountant.get_by_test_id("current-password").fill(one_time)
        accountant.get_by_test_id("new-password").fill("lianmeng-2026")
        accountant.get_by_test_id("repeat-password").fill("lianmeng-2026")
        accountant.get_by_test_id("password-submit").click()
        expect(accountant.locator('[data-page="books"]')).to_be_visible()

        accountant.get_by_test_id("nav-entry").click()
        entry = accountant.get_by_test_id("entry-form")
        entry.get_by_test_id("entry-date").fill(f"{YEAR}-05-08")
        entry.get_by_test_id("entry-memo").fill("村委会办公用品")
        entry.get_by_test_id("line-account").nth(0).fill("513")
        entry.get_by_test_id("line-debit").nth(0).fill("860.00")
        entry.get_by_test_id("line-account").nth(1).fill("102")
        entry.get_by_test_id("line-credit").nth(1).fill("860.00")
        entry.get_by_test_id("entry-submit").click()
        expect(accountant.get_by_test_id("entry-posted")).to_be_visible()
    finally:
        other.close()
    # The entry is written on the account's behalf: the log says who posted it.
    assert ("村委会办公用品", f"account:{name}") in actors_of(stack, lianmeng)
    # ... and the admin sees when the accountant signed in.
    page.reload()
    expect(page.get_by_test_id("sign-ins-table").locator("tbody tr").filter(has_text=name).first).to_contain_text(
        "登录成功")
    expect(row_of(page, "users-table", name).get_by_test_id("user-status")).to_have_text("启用")


def test_a_disabled_accounts_open_session_is_refused_at_once(page: Page, stack: Stack, browser: Browser) -> None:
    name, password = stack.account("accountant", [stack.ids["dongshan"]])
    sign_in(page, (name, password), "books")

    admin = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN", base_url=stack.web)
    try:
        admin_page = admin.new_page()
        sign_in(admin_page, admin_of(stack), "users")
        admin_page.get_by_test_id(f"disable-{name}").click()
        expect(row_of(admin_page, "users-table", name).get_by_test_id("user-status")).to_have_text("已停用")
    finally:
        admin.close()
    # The accountant's next request is refused by the service (the dividends service here): back to the sign-in page.
    page.get_by_test_id("nav-dividends").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page.get_by_test_id("signin-form")).to_contain_text("登录已失效")
    try_sign_in(page, name, password)
    expect(page.locator('[data-error-for="name"]')).to_have_text(re.compile("已停用"))


def test_failed_sign_ins_are_slowed_then_locked_even_for_the_right_password(page: Page, stack: Stack) -> None:
    name, password = stack.account("accountant", [stack.ids["hexi"]])
    for _ in range(2):  # this stack's policy: two at full speed ...
        try_sign_in(page, name, "wrong-password-1")
        expect(page.locator('[data-error-for="password"]')).to_have_text(re.compile("账号或密码错误"))
    try_sign_in(page, name, "wrong-password-2")  # ... then the next attempt waits (5 s here), unchecked
    expect(page.locator('[data-error-for="name"]')).to_have_text(re.compile("登录失败次数过多，请 [1-5] 秒后再试"))
    page.wait_for_timeout(5_500)
    try_sign_in(page, name, "wrong-password-3")  # the third failure locks the account (for 600 s here)
    expect(page.locator('[data-error-for="password"]')).to_have_text(re.compile("账号或密码错误"))
    try_sign_in(page, name, password)
    expect(page.locator('[data-error-for="name"]')).to_have_text(re.compile("登录失败次数过多，请 [0-9]+ 秒后再试"))
    assert int(re.findall(r"[0-9]+", page.locator('[data-error-for="name"]').inner_text())[0]) > 500
    expect(page.locator('[data-page="books"]')).to_have_count(0)


def test_sign_out_ends_the_session_everywhere_it_was_used(page: Page, stack: Stack) -> None:
    sign_in(page, stack.account("operator", [stack.ids["project"]]), "rentals")
    [cookie] = [c for c in page.context.cookies() if c["name"].endswith("baotuan-session")]
    session = {"Authorization": f"Session {cookie['value']}"}
    assert requests.get(f"{stack.rentals}/v1/projects/{stack.ids['project']}/occupancy", headers=session,
                        timeout=30).status_code == 200
    page.locator("#signout").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"].endswith("baotuan-session")]
    for base, path in [(stack.rentals, f"/v1/projects/{stack.ids['project']}/occupancy"),
                       (stack.ledger, "/v1/collectives"), (stack.dividends, "/v1/allocations/unpaid")]:
        deadline = time.monotonic() + 10  # each service folds the sign-out from the log
        while (status := requests.get(base + path, headers=session, timeout=30).status_code) != 401 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 401, (base, path, status)
