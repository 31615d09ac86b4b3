"""The Binhai scenario end to end: real broker, the four services as real processes, real HTTP.

scenario import → distributions declared → approved → paid; each village's trial balance
shows the dividend receivable, then the cash; 联盟村's own books closed and its 2025 plan
proposed, approved and paid to its households; the auditor reads the same numbers and
recomputes the plan; a second import publishes nothing; a bad file publishes nothing and names
the record and field.

The tests of this module share one stack (a broker of its own, with an empty log, and four
``baotuan serve`` processes) and run in file order: each step builds on the one before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from binhai_figures import (
    BINHAI_2025,
    CALLS,
    DISTRIBUTIONS,
    LIANMENG_2025,
    PAYOUTS_2025,
    PLAN_2025,
    PLAN_HOUSEHOLDS,
    PLAN_PAID,
    PLAN_PRINTED,
    VILLAGES,
)
from click.testing import CliRunner

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import ACCOUNTS, CHECKPOINTS, TOPICS
from services.devtools.broker import LocalBroker, free_port
from services.devtools.launcher.stack import (
    ServiceProcess,
    free_base_port,
    port_is_free,
    service_env,
    start_services,
    stop_services,
)
from services.devtools.scenario.cli import load_command, status_command
from services.devtools.scenario.loader import (
    ApiClient,
    Endpoints,
    ImportResult,
    as_json,
    capital_at,
    import_scenario,
    ledger_capital,
)
from services.devtools.scenario.schemas import Scenario, read_scenario
from services.devtools.scenario.tokens import demo_principals, demo_token, ensure_demo_tokens
from services.runtime.config import PROJECT_ROOT
from services.runtime.kafka_io import end_offsets, ensure_topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BINHAI = PROJECT_ROOT / "data" / "binhai_scenario.json"


@dataclass
class Stack:
    root: Path
    bootstrap: str
    endpoints: Endpoints
    demo_file: Path
    scenario: Scenario

    def token(self, name: str) -> str:
        found = demo_token(name, self.demo_file)
        assert found is not None, name
        return found

    def get(self, service: str, path: str, who: str, **params: str) -> Any:
        response = requests.get(self.endpoints.url(service, path), params=params,
                                headers={"Authorization": f"Bearer {self.token(who)}"}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, service: str, path: str, who: str, body: dict[str, Any], key: str) -> requests.Response:
        return requests.post(self.endpoints.url(service, path), json=body, timeout=30,
                             headers={"Authorization": f"Bearer {self.token(who)}", "Idempotency-Key": key})

    def log_size(self) -> dict[tuple[str, int], int]:
        """The end offsets of every topic, once the services' last writes are covered by their checkpoints
        (a checkpoint follows a burst of writes within seconds: it is part of the log that burst made)."""
        deadline = time.monotonic() + 30
        for url in (self.endpoints.ledger, self.endpoints.rentals, self.endpoints.dividends, self.endpoints.members):
            while requests.get(f"{url}/health", timeout=5).json()["checkpoints"]["uncovered_events"]:
                assert time.monotonic() < deadline, f"{url}: the last writes were never covered by a checkpoint"
                time.sleep(0.2)
        return end_offsets(self.bootstrap, list(TOPICS))

    def cli_env(self) -> dict[str, str]:
        return {"BAOTUAN_LEDGER_URL": self.endpoints.ledger, "BAOTUAN_RENTALS_URL": self.endpoints.rentals,
                "BAOTUAN_DIVIDENDS_URL": self.endpoints.dividends, "BAOTUAN_MEMBERS_URL": self.endpoints.members,
                "BAOTUAN_TOKEN": self.token("admin"),
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A broker with an empty log (the whole scenario goes in) and the four services as processes."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("loads fixed scenario ids: needs a broker of its own, with an empty log")
    root = tmp_path_factory.mktemp("binhai")
    scenario = read_scenario(BINHAI)
    broker = LocalBroker(root / "kafka", free_port(), free_port())
    broker.start()
    services: list[ServiceProcess] = []
    try:
        ensure_topics(broker.bootstrap)
        demo_file, tokens_file = root / "demo-tokens.json", root / "tokens.json"
        ensure_demo_tokens(demo_principals(scenario), tokens_file=tokens_file, demo_file=demo_file)
        services = [ServiceProcess(name, free_port(), root / "log" / f"{name}.log")
                    for name in ("ledger", "rentals", "dividends", "members")]
        start_services(services, service_env(broker.bootstrap, root / "data", tokens_file), timeout=120)
        yield Stack(root, broker.bootstrap, Endpoints(**{s.name: s.url for s in services}), demo_file, scenario)
    finally:
        stop_services(services)
        broker.stop()


@pytest.fixture(scope="module")
def first_import(stack: Stack) -> ImportResult:
    client = ApiClient(stack.endpoints, stack.token("admin"))
    try:
        return import_scenario(stack.scenario, client)
    finally:
        client.close()


def balances(stack: Stack, collective_id: str, who: str | None = None) -> dict[str, str]:
    tb = stack.get("ledger", f"/v1/collectives/{collective_id}/trial-balance", who or f"accountant-{collective_id}")
    return {row["code"]: row["balance"] for row in tb["accounts"]}


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the ledger to post the derived entries"
        time.sleep(0.3)


def declared(result: ImportResult, distribution_id: str) -> dict[str, Any]:
    return next(d.declared for d in result.distributions if d.declared["distribution_id"] == distribution_id)


def payouts(distribution: dict[str, Any]) -> dict[str, str]:
    return {a["investor_id"]: a["payout"] for a in distribution["allocations"]}


def test_importing_the_scenario_declares_three_distributions_with_exact_payouts(first_import: ImportResult) -> None:
    assert first_import.calls == CALLS
    summary = {(d.record["project_id"], d.record["period_start"]): (d.declared["gross_rent"], d.declared["pool"],
                                                                   d.declared["total_top_up"],
                                                                   d.declared["total_payout"])
               for d in first_import.distributions}
    assert summary == DISTRIBUTIONS
    year = declared(first_import, BINHAI_2025)
    lianmeng = next(a for a in year["allocations"] if a["investor_id"] == "jinqing-lianmeng")
    # 14.2 mu × 250,000.00 = 3,550,000.00 of capital; 10% a year guaranteed; the pool's share falls short.
    assert (lianmeng["pro_rata"], lianmeng["guaranteed_floor"], lianmeng["top_up"], lianmeng["payout"]) \
        == LIANMENG_2025
    # 滨港村 joined on 2025-07-01 (its floor counts 184 days); the guarantor: pro-rata only, no floor.
    assert {investor: payouts(year)[investor] for investor in PAYOUTS_2025} == PAYOUTS_2025


def village_net_income(scenario: Scenario, collective_id: str) -> int:
    """What the file's records put in a village's income and expense accounts (fen): its development funds
    and its own entries (the park's dividends are booked only when approved, after the plan)."""
    net = sum(parse_yuan(f["amount"]) for f in scenario.sections["development_funds"]
              if f["collective_id"] == collective_id)
    for entry in scenario.sections["entries"]:
        if entry["collective_id"] != collective_id:
            continue
        for line in entry["lines"]:
            if line["account"][:1] == "5":
                net += parse_yuan(line.get("credit", "0.00")) - parse_yuan(line.get("debit", "0.00"))
    return net


def test_the_villages_plan_is_the_books_distributable_split_over_its_households_and_paid(
        stack: Stack, first_import: ImportResult) -> None:
    [item] = first_import.member_plans
    plan, record = item.plan, item.record
    # 2024: the park's development fund; 2025: its own income less expenses (both years closed by the file).
    distributable = village_net_income(stack.scenario, "jinqing-lianmeng")
    assert format_yuan(distributable) == PLAN_2025["distributable"]
    reserve = (distributable + 5) // 10  # 10%, half up to the fen
    welfare, members_total = parse_yuan(PLAN_2025["welfare"]), parse_yuan(PLAN_2025["members_total"])
    assert (plan["distributable"], plan["reserve"], plan["welfare"], plan["members_total"], plan["undistributed"]) == (
        PLAN_2025["distributable"], format_yuan(reserve), PLAN_2025["welfare"], PLAN_2025["members_total"],
        format_yuan(distributable - reserve - welfare - members_total))
    assert plan["status"] in ("approved", "paid")
    allocations = {a["household_id"]: a for a in plan["allocations"]}
    assert len(allocations) == PLAN_HOUSEHOLDS  # 306 households, one of which passed all its shares on in 2023
    assert sum(parse_yuan(a["amount"]) for a in allocations.values()) == members_total
    unpaid = set(record["payments"]["unpaid"])
    assert {h for h, a in allocations.items() if not a["paid"]} == unpaid
    assert item.households_paid == PLAN_PAID
    # The books: the close moved 2025's income into 322, the plan's appropriations out of it, the payments
    # out of 211/member-dividends and the bank. The ledger posts them as it folds the plan's events (derived
    # entries): wait until the last payment's is in.
    left = format_yuan(members_total - item.amount_paid)
    eventually(lambda: balances(stack, "jinqing-lianmeng").get("211/member-dividends") == left)
    books = balances(stack, "jinqing-lianmeng")
    assert books["311"] == format_yuan(parse_yuan("3550000.00") + reserve)  # the land share and the reserve
    assert books["211/welfare"] == "50000.00"
    assert books["211/member-dividends"] == left
    assert books["322/undistributed"] == plan["undistributed"]
    # The same in --json, as the issue gives it.
    [doc] = as_json(first_import)["member_distributions"]
    assert (doc["collective_id"], doc["year"], doc["members_total"]) == ("jinqing-lianmeng", 2025, "800000.00")
    assert len(doc["allocations"]) == 305 and set(doc["allocations"][0]) == {"household_id", "weight", "amount"}


def test_the_ledgers_investment_register_agrees_with_the_file(stack: Stack, first_import: ImportResult) -> None:
    client = ApiClient(stack.endpoints, stack.token("auditor"))
    try:
        for project_id, day in (("binhai-park", "2025-06-30"), ("binhai-park", "2025-12-31"),
                                ("jinqing-market", "2025-12-31")):
            assert ledger_capital(client, project_id, day) == capital_at(stack.scenario, project_id, day)
    finally:
        client.close()


def test_loading_the_same_file_again_publishes_nothing_and_prints_the_first_results(
        stack: Stack, first_import: ImportResult) -> None:
    before = stack.log_size()
    result = CliRunner().invoke(load_command, [str(BINHAI), "--json"], env=stack.cli_env())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == as_json(first_import)
    assert stack.log_size() == before


def test_a_bad_file_is_refused_naming_the_record_and_field_and_nothing_is_published(
        stack: Stack, first_import: ImportResult, tmp_path: Path) -> None:
    raw = json.loads(BINHAI.read_text(encoding="utf-8"))
    raw["collectives"].insert(0, {"collective_id": "jinqing-newcomer", "name": "新来村股份经济合作社",
                                  "town": "金清镇"})
    raw["investments"][3]["area_mu"] = 14.3  # a float: refused, money and areas are decimal strings
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    before = stack.log_size()
    result = CliRunner().invoke(load_command, [str(bad)], env=stack.cli_env())
    assert result.exit_code == 2
    assert "investments[3].area_mu" in result.stderr and "nothing was imported" in result.stderr
    assert stack.log_size() == before
    response = requests.get(stack.endpoints.url("ledger", "/v1/collectives/jinqing-newcomer"), timeout=10,
                            headers={"Authorization": f"Bearer {stack.token('admin')}"})
    assert response.status_code == 404


def test_a_record_a_service_refuses_stops_the_import_naming_record_and_field(
        stack: Stack, first_import: ImportResult, tmp_path: Path) -> None:
    raw = json.loads(BINHAI.read_text(encoding="utf-8"))
    overlapping = {"projects": raw["projects"][:1],  # already imported: a no-op
                   "distributions": [{"project_id": "binhai-park", "period_start": "2025-06-01",
                                      "period_end": "2025-06-30"}]}
    file = tmp_path / "overlap.json"
    file.write_text(json.dumps(overlapping, ensure_ascii=False), encoding="utf-8")
    before = stack.log_size()
    result = CliRunner().invoke(load_command, [str(file)], env=stack.cli_env())
    assert result.exit_code == 1
    assert "distributions[0].period_start" in result.stderr and "409" in result.stderr
    assert stack.log_size() == before


def test_approval_books_each_village_a_receivable_and_payment_turns_it_into_cash(
        stack: Stack, first_import: ImportResult) -> None:
    year = declared(first_import, BINHAI_2025)
    owed = {v: p for v, p in payouts(year).items() if v in VILLAGES}
    assert len(owed) == 19
    cash_before = {v: balances(stack, v)["102"] for v in VILLAGES}
    # The development fund and the village's own income and expenses, less what it paid its households.
    lianmeng_cash = village_net_income(stack.scenario, "jinqing-lianmeng") - first_import.member_plans[0].amount_paid
    assert cash_before["jinqing-lianmeng"] == format_yuan(lianmeng_cash)
    assert cash_before["jinqing-shangtang"] == "-27575000.00"  # the same, less its 27,875,000.00 cash in the market
    assert not any("112/binhai-park" in balances(stack, v) for v in VILLAGES)

    approved = stack.post("dividends", f"/v1/distributions/{BINHAI_2025}/approve", "board-binhai-park", {},
                          key=f"e2e-approve-{uuid.uuid4().hex}")
    assert approved.status_code in (200, 201), approved.text
    eventually(lambda: all(balances(stack, v).get("112/binhai-park") == owed[v] for v in VILLAGES))
    for village in VILLAGES:
        books = balances(stack, village)
        assert books["502/binhai-park"] == owed[village]  # 投资收益
        assert books["102"] == cash_before[village]  # not paid yet

    for allocation in year["allocations"]:
        paid = stack.post("dividends", f"/v1/distributions/{BINHAI_2025}/payments", "board-binhai-park",
                          {"investor_id": allocation["investor_id"], "amount": allocation["payout"],
                           "paid_on": "2026-02-10", "bank_reference": f"ICBC-{allocation['investor_id']}"},
                          key=f"e2e-pay-{allocation['investor_id']}")
        assert paid.status_code in (200, 201), paid.text

    def cash_arrived() -> bool:
        return all(balances(stack, v).get("112/binhai-park", "0.00") == "0.00" for v in VILLAGES)

    eventually(cash_arrived)
    lianmeng = balances(stack, "jinqing-lianmeng")
    assert lianmeng["102"] == format_yuan(lianmeng_cash + 355000_00)  # its cash before + the 355,000.00 dividend
    for village in VILLAGES:
        books = balances(stack, village)
        cash = parse_yuan(cash_before[village], allow_negative=True) + parse_yuan(owed[village])
        assert books["102"] == format_yuan(cash)
        assert books["502/binhai-park"] == owed[village]


def test_the_auditor_reads_the_same_books_and_a_fully_paid_distribution(
        stack: Stack, first_import: ImportResult) -> None:
    for village in VILLAGES:
        assert balances(stack, village, who="auditor") == balances(stack, village)
    distribution = stack.get("dividends", f"/v1/distributions/{BINHAI_2025}", "auditor")
    assert distribution["status"] in ("approved", "paid")
    assert distribution["total_paid"] == distribution["total_payout"] == "8230242.74"
    assert all(a["paid"] for a in distribution["allocations"])
    income = sum(parse_yuan(balances(stack, v, who="auditor")["502/binhai-park"]) for v in VILLAGES)
    company = parse_yuan(payouts(distribution)["luqiao-state-assets"])
    assert format_yuan(income + company) == "8230242.74"  # every village's income plus the company's payout


def test_the_audit_replay_of_the_log_finds_nothing_and_agrees_with_the_ledger(
        stack: Stack, first_import: ImportResult) -> None:
    checks = pytest.importorskip("services.audit.checks.auditor")
    replay = pytest.importorskip("services.audit.sources.kafka")
    remote = pytest.importorskip("services.audit.checks.remote")
    result = checks.run_audit(replay.KafkaSource(stack.bootstrap))
    assert result.ok, [finding.message for finding in result.findings.items]
    comparison = remote.compare_with_ledger(result.auditor.books, result.findings, ledger_url=stack.endpoints.ledger,
                                            token=stack.token("auditor"))
    assert comparison.notes == []
    assert sorted(comparison.compared) == sorted(VILLAGES)
    assert result.ok, [finding.message for finding in result.findings.items]


def test_the_example_subscriber_prints_every_declared_payout(stack: Stack, first_import: ImportResult) -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "examples" / "subscriber.py"), "--bootstrap", stack.bootstrap,
         "--group", f"e2e-{uuid.uuid4().hex[:8]}", "--max-payouts", "41", "--max-seconds", "60"],
        capture_output=True, text=True, timeout=90, check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 41  # 20 + 20 allocations of the park, 1 of the market
    assert ("binhai-park 2025-01-01..2025-12-31  jinqing-lianmeng (collective)  payout 355000.00 = "
            "pro-rata 211577.30 + top-up 143422.70") in lines


def test_status_reports_four_healthy_services(stack: Stack, first_import: ImportResult) -> None:
    result = CliRunner().invoke(status_command, ["--json"], env=stack.cli_env())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["broker"]["reachable"] is True
    assert {name: h["status"] for name, h in report["services"].items()} == {
        "ledger": "ok", "rentals": "ok", "dividends": "ok", "members": "ok"}


def _free_ports() -> int:
    """A base port with the web page's port below it and the four services' from it free."""
    return free_base_port(range(-1, 4))


def test_baotuan_run_reuses_the_broker_imports_nothing_new_and_stops_cleanly_on_ctrl_c(
        stack: Stack, first_import: ImportResult, tmp_path: Path) -> None:
    base = _free_ports()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "BAOTUAN_DATA_DIR": str(tmp_path / "var")}
    env.pop("BAOTUAN_TOKENS_FILE", None)
    before = stack.log_size()
    run = subprocess.Popen([sys.executable, "-m", "services.devtools.launcher", "--base-port", str(base)],
                           cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        shown = []
        for line in run.stdout:
            shown.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        printed = "".join(shown)
        assert "联盟村股份经济合作社" in printed and "355,000.00" in printed, printed
        # After the park's tables, 联盟村's own plan: distributable, 公积公益金, welfare, members' total, paid.
        plan = printed[printed.index("2025年度收益分配方案"):]
        assert printed.index("2025年度收益分配方案") > printed.index("355,000.00")
        for figure in PLAN_PRINTED:
            assert figure in plan, plan
        assert f"http://127.0.0.1:{base}/docs" in printed
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert "the event log grew by 0 records" in err
    assert "stopped the services" in err and "broker was not started by this run" in err
    assert all(port_is_free(base + i) for i in range(-1, 4))
    # The run imported nothing new: the only records it wrote are the first admin account's (made once, and the
    # ledger's checkpoint of them), and it printed how to sign in with its one-time password.
    after = stack.log_size()
    assert {where[0] for where, end in after.items() if end != before.get(where)} <= {ACCOUNTS, CHECKPOINTS}
    assert "sign in as admin with the one-time password" in printed, printed
    demo = tmp_path / "var" / "demo-tokens.json"
    assert demo.stat().st_mode & 0o777 == 0o600
    assert "bt_" not in printed + err  # no token is ever printed
