"""The ledger's HTTP API on the in-memory event log: registry, investments, the books, reports, roles
and bad input (what tests/integration/ledger/test_ledger_api.py checks on a real broker is about Kafka).

One ledger service runs for the whole module, on an InMemoryLog (services.runtime.eventlog); the World,
its ids and the bad-input table are in tests/ledger_world.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import bearer, kept_token, running
from ledger_world import BAD_INPUTS, World, check_refused, collective_body, open_world

from services.contracts.topics import CHECKPOINTS
from services.ledger.app import create_app
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("ledger-http")
    settings = Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                        request_timeout_s=5)
    with running(create_app, settings, log=InMemoryLog()) as client:
        yield open_world(settings, client)




def test_collectives_investors_and_projects_registered_by_admin_are_readable_by_every_role(world: World) -> None:
    for role in ("accountant", "other-accountant", "auditor", "operator"):
        listed = world.ok("/v1/collectives", role)["items"]
        assert world.village in [c["collective_id"] for c in listed]
    found = world.ok(f"/v1/collectives/{world.village}", "other-accountant")
    assert found == {"collective_id": world.village, "name": "联盟村股份经济合作社", "town": world.town,
                     "uscc": None, "alliances": [world.alliance]}
    assert {"investor_id": world.company, "name": "路桥区国有资产投资集团", "investor_type": "company"} in (
        world.ok("/v1/investors", "auditor")["items"])
    assert world.ok(f"/v1/projects/{world.park}", "operator")["kind"] == "industrial_park"
    assert world.park in [p["project_id"] for p in world.ok("/v1/projects")["items"]]


def test_a_collective_with_a_valid_unified_social_credit_code_is_registered_with_it(world: World) -> None:
    collective_id = f"lg-{world.u}-uscc"
    body = world.created("/v1/collectives", collective_body(collective_id, world.town, uscc="91350100M000100Y43"))
    assert body["uscc"] == "91350100M000100Y43"


# -- the books ----------------------------------------------------------------------------------------------


def test_an_accountant_posts_a_balanced_entry_and_reads_it_back(world: World) -> None:
    posted = world.post_entry(world.village, "2026-03-15", ("102", "debit", "300000.00"),
                              ("503", "credit", "300000.00"), memo="飞地抱团项目一次性发展资金", role="accountant")
    assert posted["collective_id"] == world.village
    assert posted["lines"] == [{"account": "102", "debit": "300000.00"}, {"account": "503", "credit": "300000.00"}]
    assert posted["origin"] == {"kind": "manual", "ref": None}
    assert posted["reversed_by"] is None
    path = f"/v1/collectives/{world.village}/entries"
    assert world.ok(f"{path}/{posted['entry_id']}", "accountant") == posted
    listed = world.ok(f"{path}?from=2026-03-15&to=2026-03-15", "auditor")["items"]
    assert posted in listed
    later = world.ok(f"{path}?from=2026-03-16", "accountant")["items"]
    assert posted["entry_id"] not in [e["entry_id"] for e in later]
    assert all(e["date"] >= "2026-03-16" for e in later)


def test_the_same_idempotency_key_returns_the_first_entry_and_another_body_is_a_conflict(world: World) -> None:
    path = f"/v1/collectives/{world.village}/entries"
    body = {"date": "2026-04-01",
            "lines": [{"account": "101", "debit": "12.30"}, {"account": "504", "credit": "12.30"}]}
    key = f"key-{uuid.uuid4().hex}"
    before = world.offsets()
    first = world.created(path, body, "accountant", **{"Idempotency-Key": key})
    again = world.created(path, body, "accountant", **{"Idempotency-Key": key})
    assert again == first
    assert first["idempotency_key"] == key
    after = world.offsets()
    assert sum(after.values()) - sum(before.values()) == 2  # one event (and its transaction marker) for two requests
    other = world.post(path, {**body, "memo": "另一笔"}, "accountant", **{"Idempotency-Key": key})
    assert other.status_code == 409
    assert other.get_json()["error"]["field"] == "Idempotency-Key"
    assert world.offsets() == after


def test_an_idempotency_key_is_bound_to_its_caller_and_never_hands_one_village_another_villages_result(
        world: World) -> None:
    """Village B reusing the key village A used (same route, even the same body) is a request of its own:
    no 409, never A's entries, and B's entries get ids of their own (DESIGN §8)."""
    key = f"shared-{uuid.uuid4().hex}"
    mine = {"collective_id": world.village, "date": "2028-04-02",
            "lines": [{"account": "101", "debit": "1.00"}, {"account": "504", "credit": "1.00"}]}
    theirs = {**mine, "collective_id": world.neighbour}
    a_batch = world.post("/v1/entries/batch", {"entries": [mine]}, "accountant", **{"Idempotency-Key": key})
    assert a_batch.status_code == 200, a_batch.get_json()
    a_entry = a_batch.get_json()["results"][0]["entry"]
    # B replays A's exact request with A's key: refused for A's village, and A's entry is not in the answer.
    replay = world.post("/v1/entries/batch", {"entries": [mine]}, "other-accountant", **{"Idempotency-Key": key})
    assert replay.status_code == 200, replay.get_json()
    assert replay.get_json()["results"][0]["status"] == 403
    assert a_entry["entry_id"] not in json.dumps(replay.get_json())
    # B's own batch under the same key is posted, under ids of its own.
    b_batch = world.post("/v1/entries/batch", {"entries": [theirs]}, "other-accountant", **{"Idempotency-Key": key})
    assert b_batch.status_code == 200, b_batch.get_json()
    b_entry = b_batch.get_json()["results"][0]["entry"]
    assert b_entry["collective_id"] == world.neighbour and b_entry["entry_id"] != a_entry["entry_id"]
    assert world.ok(f"/v1/collectives/{world.neighbour}/entries/{b_entry['entry_id']}", "other-accountant")
    # Single entries: B's key does not collide with A's either (no 409, both posted).
    body = {"date": "2028-04-03", "lines": mine["lines"]}
    a_single = world.created(f"/v1/collectives/{world.village}/entries", body, "accountant",
                             **{"Idempotency-Key": key})
    b_single = world.created(f"/v1/collectives/{world.neighbour}/entries", body, "other-accountant",
                             **{"Idempotency-Key": key})
    assert a_single["entry_id"] != b_single["entry_id"]
    # Each caller still gets its own first result back.
    again = world.post("/v1/entries/batch", {"entries": [mine]}, "accountant", **{"Idempotency-Key": key})
    assert again.get_json()["results"][0]["entry"] == a_entry
    admin_key = f"admin-{uuid.uuid4().hex}"
    project = {"project_id": f"lg-{world.u}-idem", "name": "x", "kind": "other", "town": "镇", "operator": "y"}
    world.created("/v1/projects", project, "admin", **{"Idempotency-Key": admin_key})
    other_admin = bearer(kept_token(world.settings, world.tokens, "admin", "second"), **{"Idempotency-Key": admin_key})
    clash = world.client.post("/v1/projects", json=project, headers=other_admin)
    assert clash.status_code == 409 and clash.get_json()["error"]["code"] == "already_exists", clash.get_json()


def test_an_entry_is_reversed_by_a_mirror_entry_once_and_a_second_reversal_is_a_conflict(world: World) -> None:
    entry = world.post_entry(world.neighbour, "2026-05-10", ("513", "debit", "1234.56"), ("102", "credit", "1234.56"))
    path = f"/v1/collectives/{world.neighbour}/entries/{entry['entry_id']}/reverse"
    reversal = world.created(path, {"date": "2026-05-11", "reason": "重复记账"})
    assert reversal["reverses"] == entry["entry_id"]
    assert reversal["lines"] == [{"account": "513", "credit": "1234.56"}, {"account": "102", "debit": "1234.56"}]
    assert reversal["origin"] == {"kind": "reversal", "ref": entry["entry_id"]}
    original = world.ok(f"/v1/collectives/{world.neighbour}/entries/{entry['entry_id']}")
    assert original["reversed_by"] == reversal["entry_id"]
    assert world.balances(world.neighbour, "2026-05-10")["513"] == "1234.56"
    assert world.balances(world.neighbour, "2026-05-11")["513"] == "0.00"
    before = world.offsets()
    twice = world.post(path, {"date": "2026-05-12", "reason": "再冲一次"})
    assert twice.status_code == 409
    assert twice.get_json()["error"] | {"message": ""} == {"status": 409, "code": "already_reversed",
                                                           "field": "entry_id", "message": ""}
    of_reversal = world.post(f"/v1/collectives/{world.neighbour}/entries/{reversal['entry_id']}/reverse",
                             {"date": "2026-05-12", "reason": "冲销冲销"})
    assert of_reversal.status_code == 409
    assert world.offsets() == before


def test_a_closed_period_refuses_entries_dated_inside_it_and_cannot_be_closed_twice(world: World) -> None:
    collective_id = f"lg-{world.u}-closing"
    world.created("/v1/collectives", collective_body(collective_id, world.town))
    world.post_entry(collective_id, "2026-01-31", ("102", "debit", "10.00"), ("504", "credit", "10.00"))
    closed = world.created(f"/v1/collectives/{collective_id}/periods", {"period": "2026-01"})
    assert closed == {"collective_id": collective_id, "period": "2026-01"}
    refused = world.post(f"/v1/collectives/{collective_id}/entries", {
        "date": "2026-01-15", "lines": [{"account": "102", "debit": "1.00"}, {"account": "504", "credit": "1.00"}]})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["field"] == "date"
    again = world.post(f"/v1/collectives/{collective_id}/periods", {"period": "2026-01"})
    assert again.status_code == 409
    assert again.get_json()["error"]["field"] == "period"
    world.post_entry(collective_id, "2026-02-01", ("102", "debit", "1.00"), ("504", "credit", "1.00"))
    assert world.ok(f"/v1/collectives/{collective_id}/periods", "auditor")["items"] == [closed]


def test_a_batch_posts_each_valid_entry_in_one_flush_and_reports_each_invalid_one(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    good = {"collective_id": world.village, "date": "2026-06-01",
            "lines": [{"account": "102", "debit": "100.00"}, {"account": "504", "credit": "100.00"}]}
    entries = [
        good,
        {**good, "lines": [{"account": "102", "debit": "100.00"}, {"account": "504", "credit": "99.99"}]},
        {**good, "collective_id": world.neighbour},  # outside the accountant's scope
        {**good, "date": "2026-06-02", "memo": "第二笔"},
        {**good, "colour": "red"},
        {**good, "collective_id": f"lg-{world.u}-nowhere"},
        {**good, "date": "2020-01-05"},  # closed
    ]
    flushes: list[int] = []
    publish = world.service.log.publish

    def counting(records: Any) -> Any:
        if any(r.topic != CHECKPOINTS for r in records):  # a checkpoint may follow, in its own publish
            flushes.append(len(records))
        return publish(records)

    monkeypatch.setattr(world.service.log, "publish", counting)
    response = world.post("/v1/entries/batch", {"entries": entries}, "accountant")
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 201), (1, 422), (2, 403), (3, 201), (4, 422),
                                                             (5, 403), (6, 422)]
    assert [r.get("error", {}).get("field") for r in results] == [
        None, "lines", "collective_id", None, "colour", "collective_id", "date"]
    assert flushes == [2]
    unknown = world.post("/v1/entries/batch", {"entries": [entries[5]]}, "admin").get_json()["results"]
    assert [(r["status"], r["error"]["field"]) for r in unknown] == [(422, "collective_id")]
    assert flushes == [2]
    assert results[3]["entry"]["memo"] == "第二笔"
    stored = world.ok(f"/v1/collectives/{world.village}/entries/{results[0]['entry']['entry_id']}")
    assert stored == results[0]["entry"]


def test_a_batch_holds_at_most_a_thousand_entries_and_posts_hundreds_at_once(world: World) -> None:
    good = {"collective_id": world.neighbour, "date": "2026-06-03",
            "lines": [{"account": "101", "debit": "0.01"}, {"account": "504", "credit": "0.01"}]}
    before = world.offsets()
    too_many = world.post("/v1/entries/batch", {"entries": [good] * 1001})
    assert too_many.status_code == 422
    assert too_many.get_json()["error"]["field"] == "entries"
    assert world.offsets() == before
    started = time.monotonic()
    response = world.post("/v1/entries/batch", {"entries": [good] * 200})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert {r["status"] for r in response.get_json()["results"]} == {201}
    print(f"\n200-entry batch posted and applied in {elapsed:.2f}s")
    assert world.balances(world.neighbour, "2026-06-03")["504"] == "2.00"


# -- investments and the register ---------------------------------------------------------------------------


def test_a_land_share_is_valued_half_up_and_posts_141_against_311_in_the_village_books(world: World) -> None:
    collective_id = f"lg-{world.u}-land"
    world.created("/v1/collectives", collective_body(collective_id, world.town))
    body = world.created(f"/v1/projects/{world.park}/investments", {
        "kind": "land", "investor_id": collective_id, "area_mu": "14.2005", "price_per_mu": "250000.01",
        "effective_on": "2024-03-01", "parcel": "村留地 A-03"}, "admin")
    # 14.2005 × 250,000.01 = 3,550,125.142005 yuan -> 3,550,125.14
    assert body["valuation"] == "3550125.14"
    assert body["investor_type"] == "collective"
    assert body["parcel"] == "村留地 A-03"
    entry = world.ok(f"/v1/collectives/{collective_id}/entries/{body['entry_id']}")
    assert entry["lines"] == [{"account": f"141/{world.park}", "debit": "3550125.14"},
                              {"account": "311", "credit": "3550125.14"}]
    assert entry["origin"] == {"kind": "investment", "ref": body["investment_id"]}
    assert entry["date"] == "2024-03-01"
    assert world.balances(collective_id, "2024-03-01") == {f"141/{world.park}": "3550125.14", "311": "3550125.14"}
    assert world.balances(collective_id, "2024-02-29") == {}


def test_a_cash_investment_posts_141_against_102_and_a_withdrawal_brings_it_back_to_the_bank(world: World) -> None:
    collective_id = f"lg-{world.u}-cash"
    project_id = f"lg-{world.u}-market"
    world.created("/v1/collectives", collective_body(collective_id, world.town))
    world.created("/v1/projects", {"project_id": project_id, "name": "金清镇综合市场", "kind": "market",
                                   "town": world.town, "operator": "上塘村股份经济合作社"})
    accountant = world.token("accountant", collective_id)
    response = world.client.post(f"/v1/projects/{project_id}/investments", headers=bearer(accountant), json={
        "kind": "cash", "investor_id": collective_id, "investor_type": "collective", "amount": "27875000.00",
        "effective_on": "2024-06-01", "investment_id": f"lg-{world.u}-cash-1"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["amount"] == "27875000.00"
    withdrawn = world.client.post(f"/v1/projects/{project_id}/withdrawals", headers=bearer(accountant), json={
        "investor_id": collective_id, "amount": "875000.00", "effective_on": "2025-01-01", "reason": "部分退出"})
    assert withdrawn.status_code == 201, withdrawn.get_json()
    entry = world.ok(f"/v1/collectives/{collective_id}/entries/{withdrawn.get_json()['entry_id']}")
    assert entry["lines"] == [{"account": "102", "debit": "875000.00"},
                              {"account": f"141/{project_id}", "credit": "875000.00"}]
    assert entry["origin"]["kind"] == "withdrawal"
    assert world.balances(collective_id, "2024-12-31") == {"102": "-27875000.00", f"141/{project_id}": "27875000.00"}
    assert world.balances(collective_id, "2025-01-01") == {"102": "-27000000.00", f"141/{project_id}": "27000000.00"}
    duplicate = world.client.post(f"/v1/projects/{project_id}/investments", headers=bearer(accountant), json={
        "kind": "cash", "investor_id": collective_id, "amount": "1.00", "effective_on": "2024-06-01",
        "investment_id": f"lg-{world.u}-cash-1"})
    assert duplicate.status_code == 409
    assert duplicate.get_json()["error"]["field"] == "investment_id"


def test_the_register_shows_who_holds_what_on_any_date_and_a_company_keeps_no_books(world: World) -> None:
    project_id = f"lg-{world.u}-register"
    world.created("/v1/projects", {"project_id": project_id, "name": "登记测试园", "kind": "other",
                                   "town": world.town, "operator": "镇政府"})
    company = world.created(f"/v1/projects/{project_id}/investments", {
        "kind": "cash", "investor_id": world.company, "amount": "50000000.00", "effective_on": "2024-03-01"})
    assert (company["investor_type"], company["entry_id"]) == ("company", None)
    world.created(f"/v1/projects/{project_id}/investments", {
        "kind": "land", "investor_id": world.neighbour, "area_mu": "8.5000", "price_per_mu": "250000.00",
        "effective_on": "2024-06-01"})
    world.created(f"/v1/projects/{project_id}/withdrawals", {
        "investor_id": world.company, "amount": "20000000.00", "effective_on": "2025-01-01", "reason": "回收"})
    register = f"/v1/projects/{project_id}/register"
    assert world.ok(f"{register}?as_of=2024-02-29", "operator") == {
        "project_id": project_id, "as_of": "2024-02-29", "items": [], "total_capital": "0.00"}
    assert world.ok(f"{register}?as_of=2024-06-01", "auditor")["items"] == [  # sorted by investor_id
        {"investor_id": world.neighbour, "investor_type": "collective", "capital": "2125000.00"},
        {"investor_id": world.company, "investor_type": "company", "capital": "50000000.00"},
    ]
    later = world.ok(f"{register}?as_of=2025-01-01")
    assert [i["capital"] for i in later["items"]] == ["2125000.00", "30000000.00"]
    assert later["total_capital"] == "32125000.00"
    # Withdrawing on 2024-12-01 more than will be left after the 2025-01-01 withdrawal breaks that later day.
    refused = world.post(f"/v1/projects/{project_id}/withdrawals", {
        "investor_id": world.company, "amount": "30000000.01", "effective_on": "2024-12-01", "reason": "超额"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["field"] == "amount"


# -- reports ------------------------------------------------------------------------------------------------


def test_trial_balance_balance_sheet_and_income_statement_of_a_village(world: World) -> None:
    collective_id = f"lg-{world.u}-reports"
    world.created("/v1/collectives", collective_body(collective_id, world.town))
    world.post_entry(collective_id, "2025-03-15", ("102", "debit", "300000.00"), ("503", "credit", "300000.00"))
    world.post_entry(collective_id, "2025-06-30", ("513", "debit", "12345.67"), ("102", "credit", "12345.67"))
    world.post_entry(collective_id, "2026-01-05", ("112/binhai-park", "debit", "500000.00"),
                     ("502/binhai-park", "credit", "500000.00"))
    tb = world.ok(f"/v1/collectives/{collective_id}/trial-balance?as_of=2025-12-31", "auditor")
    assert tb == {"collective_id": collective_id, "as_of": "2025-12-31", "accounts": [
        {"code": "102", "name": "银行存款", "debit": "300000.00", "credit": "12345.67", "balance": "287654.33"},
        {"code": "503", "name": "补助收入", "debit": "0.00", "credit": "300000.00", "balance": "300000.00"},
        {"code": "513", "name": "管理费用", "debit": "12345.67", "credit": "0.00", "balance": "12345.67"},
    ], "totals": {"debit": "312345.67", "credit": "312345.67"}}
    sheet = world.ok(f"/v1/collectives/{collective_id}/balance-sheet?year=2025")
    assert sheet["total_assets"] == sheet["total_liabilities_and_equity"] == "287654.33"
    assert {r["code"]: r["amount"] for r in sheet["equity"]["rows"]} == {"321": "287654.33"}
    statement = world.ok(f"/v1/collectives/{collective_id}/income-statement?year=2026")
    assert {r["code"]: r["amount"] for r in statement["income"]["rows"]} == {
        "501": "0.00", "502": "500000.00", "503": "0.00", "504": "0.00"}
    assert statement["net_income"] == "500000.00"


def test_the_village_income_report_flags_villages_under_a_million_and_under_200k_by_town_and_alliance(
        world: World) -> None:
    town = f"收入镇{world.u}"
    rich, middling, weak = (f"lg-{world.u}-{name}" for name in ("rich", "middling", "weak"))
    world.created("/v1/collectives", collective_body(rich, town, "甲联盟", "乙联盟"))
    world.created("/v1/collectives", collective_body(middling, town, "甲联盟"))
    world.created("/v1/collectives", collective_body(weak, town))
    world.post_entry(rich, "2025-12-31", ("102", "debit", "1000000.00"), ("501", "credit", "1000000.00"))
    world.post_entry(middling, "2025-04-01", ("102", "debit", "200000.00"), ("504", "credit", "200000.00"))
    world.post_entry(weak, "2025-04-01", ("102", "debit", "199999.99"), ("503", "credit", "199999.99"))
    world.post_entry(weak, "2026-01-01", ("102", "debit", "5000000.00"), ("501", "credit", "5000000.00"))
    report = world.ok(f"/v1/reports/village-income?year=2025&town={town}", "other-accountant")
    assert [(v["collective_id"], v["income"], v["below_million"], v["weak"]) for v in report["items"]] == [
        (middling, "200000.00", True, False), (rich, "1000000.00", False, False), (weak, "199999.99", True, True)]
    assert report["by_town"] == [{"group": town, "village_count": 3, "income": "1399999.99",
                                  "below_million_count": 2, "weak_count": 1}]
    assert report["by_alliance"] == [
        {"group": "乙联盟", "village_count": 1, "income": "1000000.00", "below_million_count": 0, "weak_count": 0},
        {"group": "甲联盟", "village_count": 2, "income": "1200000.00", "below_million_count": 1, "weak_count": 0},
    ]
    assert (report["below_million_count"], report["weak_count"]) == (2, 1)
    assert report["thresholds"] == {"million": "1000000.00", "weak": "200000.00"}


def test_the_chart_of_accounts_and_the_openapi_document_are_served(world: World) -> None:
    chart = world.ok("/v1/accounts", "operator")["items"]
    assert len(chart) == 42
    assert {"code": "141", "name": "长期投资", "class": "资产", "normal_side": "debit"} in chart
    assert {"code": "502", "name": "投资收益", "class": "损益", "normal_side": "credit"} in chart
    spec = world.client.get("/openapi.json").get_json()
    assert "/v1/collectives/{collective_id}/trial-balance" in spec["paths"]
    assert "/v1/entries/batch" in spec["paths"]
    assert spec["components"]["schemas"]["EntryRequest"]["required"] == ["date", "lines"]


# -- access -------------------------------------------------------------------------------------------------


def test_an_auditor_reads_every_village_and_an_accountant_only_its_own(world: World) -> None:
    tb = f"/v1/collectives/{world.neighbour}/trial-balance?as_of=2026-12-31"
    assert world.get(tb, "auditor").status_code == 200
    assert world.get(tb, "other-accountant").status_code == 200
    refused = world.get(tb, "accountant")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["field"] == "Authorization"
    assert world.get(f"/v1/collectives/{world.neighbour}/entries", "operator").status_code == 403
    assert world.get(tb, "none").status_code == 401


@pytest.mark.parametrize(("case", "method", "path", "body", "role", "status", "field"), BAD_INPUTS,
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_field_and_publishes_nothing(
        world: World, case: str, method: str, path: str, body: Any, role: str, status: int, field: str) -> None:
    check_refused(world, method, path, body, role, status, field)
