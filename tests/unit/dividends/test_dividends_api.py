"""The dividends API on the in-memory event log: policies, declarations, the lifecycle, the refusals, the roles.

Test data reaches the service the way production data does (tests/dividends_world.py): stand-in
ledger and rentals writers publish ProjectRegistered, the investments, rent and expenses on the
log the service reads. The log is an ``InMemoryLog`` shared by the three (services.runtime.eventlog):
Kafka's offsets and partitioning, folded at once. What only a broker shows (a rent acknowledged
just before a declaration, a rebuild and an audit of the broker's topics) is in
tests/integration/dividends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import bearer, without_receipts
from dividends_world import World, two_villages_and_a_company, world_on

from services.contracts.money import MAX_WIRE_FEN, format_yuan
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("dividends")
    settings = Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                        request_timeout_s=5)
    with world_on(settings, folder, InMemoryLog()) as world:
        yield world


# --------------------------------------------------------------------------------------
# declaring


def test_a_declared_distribution_splits_the_pool_by_capital_days_and_tops_up_villages(
        world: World, unique: str) -> None:
    project = f"p-{unique}"
    a, b, c = two_villages_and_a_company(world, project, unique)
    world.policy(project)
    world.rent(project, "300000.00", "2025-03-10")
    world.expense(project, "20000.00", "2025-05-01")
    world.rent(project, "999999.00", "2026-01-05")  # after the period: not counted

    body = world.declare(project, "2025-01-01", "2025-12-31")

    # R = 300,000.00; F = 5% = 15,000.00; T = 10% = 30,000.00; E = 20,000.00
    # NP = 235,000.00; D = 90% = 211,500.00; retained 23,500.00
    assert body["distribution_id"] == f"{project}-2025-01-01-2025-12-31"
    assert body["status"] == "declared"
    assert [body[k] for k in ("gross_rent", "expenses", "management_fee", "tax", "net_profit", "pool",
                              "retained")] == ["300000.00", "20000.00", "15000.00", "30000.00", "235000.00",
                                               "211500.00", "23500.00"]
    # Capital-days in yuan·days: A 1,000,000 × 365; B 500,000 × 184 (Jul 1 – Dec 31);
    # C 2,000,000 × 273 (Jan 1 – Sep 30) + 1,000,000 × 92 (Oct 1 – Dec 31). Σ = 1,095,000,000.
    # Pro rata of 21,150,000 fen: A × 365/1095 = 7,050,000 exactly; B × 92/1095 = 1,776,986.30…;
    # C × 638/1095 = 12,323,013.69…. The floors hand out 21,149,999; the fen left goes to the
    # largest remainder, C's .69 (B's is .30): C 12,323,014.
    # Floors (collectives only, 10%/365 per yuan·day): A 100,000.00 → top-up 29,500.00;
    # B 92,000,000 × 0.1 / 365 = 25,205.479… → 25,205.48 → top-up 25,205.48 − 17,769.86 = 7,435.62.
    assert [(x["investor_id"], x["investor_type"], x["capital_days"], x["pro_rata"], x["guaranteed_floor"],
             x["top_up"], x["payout"], x["paid"]) for x in body["allocations"]] == [
        (a, "collective", "365000000.00", "70500.00", "100000.00", "29500.00", "100000.00", False),
        (b, "collective", "92000000.00", "17769.86", "25205.48", "7435.62", "25205.48", False),
        (c, "company", "638000000.00", "123230.14", "0.00", "0.00", "123230.14", False),
    ]
    assert (body["total_top_up"], body["total_payout"], body["total_capital_days"]) == (
        "36935.62", "248435.62", "1095000000.00")
    assert body["policy"]["guarantor_id"] == "state-co"
    assert set(body["input_positions"]) == {LEDGER_INVESTMENTS, RENTALS}
    assert world.client.get(f"/v1/distributions/{body['distribution_id']}",
                            headers=world.board(project)).get_json() == body


def test_a_preview_computes_without_publishing(world: World, unique: str) -> None:
    project = f"p-{unique}"
    two_villages_and_a_company(world, project, unique)
    world.policy(project)
    world.rent(project, "300000.00", "2025-03-10")
    before = world.dividends_end()
    resp = world.client.post(f"/v1/projects/{project}/distributions/preview", headers=world.board(project),
                             json={"period_start": "2025-01-01", "period_end": "2025-12-31"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert "distribution_id" not in body
    assert (body["status"], body["pool"], [x["payout"] for x in body["allocations"]]) == (
        "preview", "229500.00", ["100000.00", "25205.48", "133717.81"])
    assert world.dividends_end() == before


# --------------------------------------------------------------------------------------
# lifecycle


def test_approve_pay_once_in_full_and_cancel_only_before_approval(world: World, unique: str) -> None:
    project = f"p-{unique}"
    a, b, c = two_villages_and_a_company(world, project, unique)
    world.policy(project)
    world.rent(project, "300000.00", "2025-03-10")
    world.expense(project, "20000.00", "2025-05-01")
    board = world.board(project)
    dist = world.declare(project, "2025-01-01", "2025-12-31")
    did = dist["distribution_id"]

    paid_too_early = world.client.post(f"/v1/distributions/{did}/payments", headers=board, json={
        "investor_id": a, "amount": "100000.00", "paid_on": "2026-02-01", "bank_reference": "B-1"})
    assert (paid_too_early.status_code, paid_too_early.get_json()["error"]["field"]) == (409, "distribution_id")

    approved = world.client.post(f"/v1/distributions/{did}/approve", headers=board, json={})
    assert approved.status_code == 200
    assert approved.get_json()["status"] == "approved"
    assert approved.get_json()["approved_by"].startswith("board:")
    twice = world.client.post(f"/v1/distributions/{did}/approve", headers=board, json={})
    assert twice.status_code == 409

    unpaid = world.client.get(f"/v1/allocations/unpaid?project_id={project}", headers=board).get_json()
    assert [(i["investor_id"], i["payout"]) for i in unpaid["items"]] == [
        (a, "100000.00"), (b, "25205.48"), (c, "123230.14")]
    assert unpaid["total_unpaid"] == "248435.62"

    paid = world.client.post(f"/v1/distributions/{did}/payments", headers=board, json={
        "payment_id": f"pay-a-{unique}", "investor_id": a, "amount": "100000.00", "paid_on": "2026-02-01",
        "bank_reference": "ICBC-20260201-001"})
    assert paid.status_code == 201
    assert without_receipts(paid.get_json()) == {
        "payment_id": f"pay-a-{unique}", "distribution_id": did, "project_id": project, "investor_id": a,
        "amount": "100000.00", "paid_on": "2026-02-01", "bank_reference": "ICBC-20260201-001"}

    before = world.dividends_end()
    refused = [
        ({"investor_id": a, "amount": "100000.00"}, 409, "investor_id"),  # paid already
        ({"investor_id": b, "amount": "25205.49"}, 422, "amount"),  # more than allocated
        ({"investor_id": b, "amount": "25205.47"}, 422, "amount"),  # not in full
        ({"investor_id": f"x-{unique}", "amount": "1.00"}, 422, "investor_id"),  # no allocation
        ({"investor_id": b, "amount": "25205.48", "payment_id": f"pay-a-{unique}"}, 409, "payment_id"),
    ]
    for extra, status, field in refused:
        resp = world.client.post(f"/v1/distributions/{did}/payments", headers=board,
                                 json={"paid_on": "2026-02-01", "bank_reference": "B-2", **extra})
        assert (resp.status_code, resp.get_json()["error"]["field"]) == (status, field), extra
    cancel = world.client.post(f"/v1/distributions/{did}/cancel", headers=board, json={"reason": "算错了"})
    assert (cancel.status_code, cancel.get_json()["error"]["field"]) == (409, "distribution_id")
    overlap = world.client.post(f"/v1/projects/{project}/distributions", headers=board,
                                json={"period_start": "2025-12-31", "period_end": "2026-03-31"})
    assert (overlap.status_code, overlap.get_json()["error"]["field"]) == (409, "period_start")
    assert world.dividends_end() == before

    view = world.client.get(f"/v1/distributions/{did}", headers=board).get_json()
    assert [(x["investor_id"], x["paid"]) for x in view["allocations"]] == [(a, True), (b, False), (c, False)]
    assert view["allocations"][0]["payment"]["bank_reference"] == "ICBC-20260201-001"
    assert (view["total_paid"], view["fully_paid"]) == ("100000.00", False)
    for investor, amount in ((b, "25205.48"), (c, "123230.14")):
        resp = world.client.post(f"/v1/distributions/{did}/payments", headers=board, json={
            "investor_id": investor, "amount": amount, "paid_on": "2026-02-02", "bank_reference": "B-3"})
        assert resp.status_code == 201
    view = world.client.get(f"/v1/distributions/{did}", headers=board).get_json()
    assert (view["total_paid"], view["fully_paid"]) == ("248435.62", True)
    assert world.client.get(f"/v1/allocations/unpaid?project_id={project}", headers=board).get_json()["items"] == []


def test_a_cancelled_distribution_frees_its_period_for_a_new_declaration(world: World, unique: str) -> None:
    project = f"p-{unique}"
    two_villages_and_a_company(world, project, unique)
    world.policy(project)
    world.rent(project, "300000.00", "2026-02-10")
    board = world.board(project)
    first = world.declare(project, "2026-01-01", "2026-03-31")
    cancelled = world.client.post(f"/v1/distributions/{first['distribution_id']}/cancel", headers=board,
                                  json={"reason": "租金未到齐"})
    assert cancelled.status_code == 200
    assert (cancelled.get_json()["status"], cancelled.get_json()["cancel_reason"]) == ("cancelled", "租金未到齐")
    again = world.client.post(f"/v1/distributions/{first['distribution_id']}/cancel", headers=board,
                              json={"reason": "again"})
    assert again.status_code == 409
    second = world.declare(project, "2026-01-01", "2026-03-31")
    assert second["distribution_id"] == f"{first['distribution_id']}-2"
    listing = world.client.get(f"/v1/projects/{project}/distributions", headers=board).get_json()
    assert [(d["distribution_id"], d["status"]) for d in listing["items"]] == [
        (first["distribution_id"], "cancelled"), (second["distribution_id"], "declared")]


def test_an_investor_sees_its_dividends_across_projects_and_years(world: World, unique: str) -> None:
    village = f"v-{unique}"
    p1, p2 = f"p1-{unique}", f"p2-{unique}"
    for project in (p1, p2):
        world.project(project)
        world.cash(project, village, "collective", "1000000.00", "2024-01-01")
        world.policy(project, guaranteed_rate="0", guarantor_id=None, payout_ratio="1.00", tax_rate="0",
                     management_fee_rate="0")
        world.rent(project, "12000.00", "2024-06-01")
        world.rent(project, "24000.00", "2025-06-01")
    world.declare(p1, "2024-01-01", "2024-12-31")
    world.declare(p1, "2025-01-01", "2025-12-31")
    world.declare(p2, "2025-01-01", "2025-12-31")

    mine = bearer(world.token("accountant", village))
    every = world.client.get(f"/v1/investors/{village}/dividends", headers=mine).get_json()
    assert [(i["project_id"], i["period_end"], i["payout"]) for i in every["items"]] == [
        (p1, "2024-12-31", "12000.00"), (p1, "2025-12-31", "24000.00"), (p2, "2025-12-31", "24000.00")]
    assert every["total_payout"] == "60000.00"
    in_2025 = world.client.get(f"/v1/investors/{village}/dividends?year=2025", headers=mine).get_json()
    assert [i["project_id"] for i in in_2025["items"]] == [p1, p2]
    # A board sees only its projects' rows; another village's accountant sees nothing of it.
    board_view = world.client.get(f"/v1/investors/{village}/dividends", headers=world.board(p2)).get_json()
    assert [i["project_id"] for i in board_view["items"]] == [p2]
    other = world.client.get(f"/v1/investors/{village}/dividends",
                             headers=bearer(world.token("accountant", f"w-{unique}")))
    assert other.status_code == 403


def test_the_same_idempotency_key_returns_the_first_declaration_and_another_body_conflicts(
        world: World, unique: str) -> None:
    project = f"p-{unique}"
    two_villages_and_a_company(world, project, unique)
    world.policy(project)
    headers = {**world.board(project), "Idempotency-Key": f"declare-{unique}"}
    body = {"period_start": "2025-01-01", "period_end": "2025-06-30"}
    first = world.client.post(f"/v1/projects/{project}/distributions", headers=headers, json=body)
    before = world.dividends_end()
    repeat = world.client.post(f"/v1/projects/{project}/distributions", headers=headers, json=body)
    assert (first.status_code, repeat.status_code) == (201, 201)
    assert repeat.get_json() == first.get_json()
    other = world.client.post(f"/v1/projects/{project}/distributions", headers=headers,
                              json={**body, "period_end": "2025-05-31"})
    assert (other.status_code, other.get_json()["error"]["field"]) == (409, "Idempotency-Key")
    assert world.dividends_end() == before


def test_a_policy_is_versioned_and_setting_the_same_one_again_changes_nothing(world: World, unique: str) -> None:
    project = f"p-{unique}"
    world.project(project)
    first = world.policy(project)
    assert first["version"] == 1
    assert first["policy"] == {"project_id": project, "management_fee_rate": "0.05", "tax_rate": "0.10",
                               "payout_ratio": "0.90", "guaranteed_rate": "0.10", "guarantee_until": None,
                               "guarantor_id": "state-co"}
    before = world.dividends_end()
    assert world.policy(project)["version"] == 1
    assert world.dividends_end() == before
    second = world.policy(project, payout_ratio="0.80", guarantee_until="2028-12-31")
    assert (second["version"], second["policy"]["payout_ratio"]) == (2, "0.80")
    got = world.client.get(f"/v1/projects/{project}/policy", headers=bearer(world.token("auditor")))
    assert got.get_json() == second


# --------------------------------------------------------------------------------------
# refused input


@dataclass(frozen=True)
class Stage:
    """One project with an approved distribution (for payments) and one without a policy."""

    project: str
    bare: str
    distribution_id: str
    village: str


@pytest.fixture(scope="module")
def stage(world: World) -> Stage:
    u = f"{time.time_ns() % 10**8:08d}"
    project, bare = f"stage-{u}", f"bare-{u}"
    a, _, _ = two_villages_and_a_company(world, project, u)
    world.project(bare)
    world.policy(project)
    world.rent(project, "300000.00", "2025-03-10")
    did = world.declare(project, "2025-01-01", "2025-06-30")["distribution_id"]
    resp = world.client.post(f"/v1/distributions/{did}/approve", headers=world.board(project), json={})
    assert resp.status_code == 200
    return Stage(project, bare, did, a)


GOOD_POLICY = {"management_fee_rate": "0.05", "tax_rate": "0.10", "payout_ratio": "0.90", "guaranteed_rate": "0"}
GOOD_PERIOD = {"period_start": "2026-01-01", "period_end": "2026-03-31"}
GOOD_PAYMENT = {"amount": "1.00", "paid_on": "2026-02-01", "bank_reference": "B-9"}

# (case, method, path, body, who, expected status, expected error.field).
# Paths: {p} the staged project, {q} a project without a policy, {d} the approved distribution.
# who: "board" (of {p}), "board-other" (another project), "operator", "auditor", "none", "garbage".
BAD_INPUT: list[tuple[str, str, str, Any, str, int, str | None]] = [
    ("malformed json", "POST", "/v1/projects/{p}/distributions", b'{"period_start": ', "board", 400, "body"),
    ("unknown field", "POST", "/v1/projects/{p}/distributions", {**GOOD_PERIOD, "pool": "1.00"}, "board", 422,
     "pool"),
    ("missing period_end", "POST", "/v1/projects/{p}/distributions", {"period_start": "2026-01-01"}, "board", 422,
     "period_end"),
    ("impossible date", "POST", "/v1/projects/{p}/distributions", {**GOOD_PERIOD, "period_end": "2026-02-30"},
     "board", 422, "period_end"),
    ("period ends before it starts", "POST", "/v1/projects/{p}/distributions",
     {"period_start": "2026-03-01", "period_end": "2026-02-28"}, "board", 422, "period_end"),
    ("overlapping period", "POST", "/v1/projects/{p}/distributions",
     {"period_start": "2025-06-30", "period_end": "2025-12-31"}, "board", 409, "period_start"),
    ("distribution id taken", "POST", "/v1/projects/{p}/distributions", {**GOOD_PERIOD, "distribution_id": "{d}"},
     "board", 409, "distribution_id"),
    ("bad distribution id", "POST", "/v1/projects/{p}/distributions", {**GOOD_PERIOD, "distribution_id": "Q 1"},
     "board", 422, "distribution_id"),
    ("project without a policy", "POST", "/v1/projects/{q}/distributions", GOOD_PERIOD, "admin", 422,
     "project_id"),
    ("unknown project", "POST", "/v1/projects/nowhere-{p}/distributions", GOOD_PERIOD, "admin", 404, "project_id"),
    ("operator may not declare", "POST", "/v1/projects/{p}/distributions", GOOD_PERIOD, "operator", 403,
     "Authorization"),
    ("auditor may not declare", "POST", "/v1/projects/{p}/distributions", GOOD_PERIOD, "auditor", 403,
     "Authorization"),
    ("board of another project", "POST", "/v1/projects/{p}/distributions", GOOD_PERIOD, "board-other", 403,
     "Authorization"),
    ("no token", "POST", "/v1/projects/{p}/distributions", GOOD_PERIOD, "none", 401, "Authorization"),
    ("unknown token", "POST", "/v1/projects/{p}/distributions", GOOD_PERIOD, "garbage", 401, "Authorization"),
    ("oversized body", "POST", "/v1/projects/{p}/distributions", {**GOOD_PERIOD, "x": "y" * 1_100_000}, "board",
     413, "body"),
    ("float rate", "PUT", "/v1/projects/{p}/policy", {**GOOD_POLICY, "tax_rate": 0.1}, "board", 422, "tax_rate"),
    ("rate above one", "PUT", "/v1/projects/{p}/policy", {**GOOD_POLICY, "payout_ratio": "1.10"}, "board", 422,
     "payout_ratio"),
    ("negative rate", "PUT", "/v1/projects/{p}/policy", {**GOOD_POLICY, "tax_rate": "-0.10"}, "board", 422,
     "tax_rate"),
    ("guarantee without guarantor", "PUT", "/v1/projects/{p}/policy", {**GOOD_POLICY, "guaranteed_rate": "0.10"},
     "board", 422, "guarantor_id"),
    ("policy of an unknown project", "PUT", "/v1/projects/nowhere-{p}/policy", GOOD_POLICY, "admin", 404,
     "project_id"),
    ("float amount", "POST", "/v1/distributions/{d}/payments", {**GOOD_PAYMENT, "investor_id": "{v}", "amount": 1.0},
     "board", 422, "amount"),
    ("three decimals", "POST", "/v1/distributions/{d}/payments",
     {**GOOD_PAYMENT, "investor_id": "{v}", "amount": "1.000"}, "board", 422, "amount"),
    ("negative amount", "POST", "/v1/distributions/{d}/payments",
     {**GOOD_PAYMENT, "investor_id": "{v}", "amount": "-1.00"}, "board", 422, "amount"),
    ("more than allocated", "POST", "/v1/distributions/{d}/payments",
     {**GOOD_PAYMENT, "investor_id": "{v}", "amount": "99999999.00"}, "board", 422, "amount"),
    ("missing bank reference", "POST", "/v1/distributions/{d}/payments",
     {"investor_id": "{v}", "amount": "1.00", "paid_on": "2026-02-01"}, "board", 422, "bank_reference"),
    ("investor without allocation", "POST", "/v1/distributions/{d}/payments",
     {**GOOD_PAYMENT, "investor_id": "nobody-{p}"}, "board", 422, "investor_id"),
    ("unknown distribution", "POST", "/v1/distributions/nothing-{p}/payments",
     {**GOOD_PAYMENT, "investor_id": "{v}"}, "board", 404, "distribution_id"),
    ("cancel an approved distribution", "POST", "/v1/distributions/{d}/cancel", {"reason": "x"}, "board", 409,
     "distribution_id"),
    ("cancel without a reason", "POST", "/v1/distributions/{d}/cancel", {"reason": "  "}, "board", 422, "reason"),
    ("approve with a body", "POST", "/v1/distributions/{d}/approve", {"by": "me"}, "board", 422, "by"),
    ("operator may not read", "GET", "/v1/distributions/{d}", None, "operator", 403, "Authorization"),
    ("bad year", "GET", "/v1/investors/{v}/dividends?year=twenty", None, "auditor", 422, "year"),
    # Ids match their pattern over the whole string; text holds no lone surrogate (issue 13.3, 13.4).
    ("distribution id with a trailing newline", "POST", "/v1/projects/{p}/distributions",
     {**GOOD_PERIOD, "distribution_id": "d-new\n"}, "board", 422, "distribution_id"),
    ("guarantor id with a trailing newline", "PUT", "/v1/projects/{p}/policy",
     {**GOOD_POLICY, "guaranteed_rate": "0.10", "guarantor_id": "soe\n"}, "board", 422, "guarantor_id"),
    ("investor id with a trailing newline", "POST", "/v1/distributions/{d}/payments",
     {**GOOD_PAYMENT, "investor_id": "{v}\n"}, "board", 422, "investor_id"),
    ("distribution id in the URL with a trailing newline", "POST", "/v1/distributions/{d}%0A/payments",
     {**GOOD_PAYMENT, "investor_id": "{v}"}, "board", 404, "distribution_id"),
    ("lone surrogate in a bank reference", "POST", "/v1/distributions/{d}/payments",
     {**GOOD_PAYMENT, "investor_id": "{v}", "bank_reference": "B\ud800"}, "board", 422, "bank_reference"),
    ("lone surrogate in a cancellation's reason", "POST", "/v1/distributions/{d}/cancel", {"reason": "\udc00"},
     "board", 422, "reason"),
]


def _fill(value: Any, stage: Stage) -> Any:
    if isinstance(value, str):
        return (value.replace("{p}", stage.project).replace("{q}", stage.bare)
                .replace("{d}", stage.distribution_id).replace("{v}", stage.village))
    if isinstance(value, dict):
        return {k: _fill(v, stage) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body", "who", "status", "field"),
                         [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_refused_naming_the_field_and_publishes_nothing(
        world: World, stage: Stage, method: str, path: str, body: Any, who: str, status: int,
        field: str | None) -> None:
    tokens: dict[str, Callable[[], dict[str, str]]] = {
        "board": lambda: world.board(stage.project),
        "board-other": lambda: world.board(stage.bare),
        "operator": lambda: bearer(world.token("operator", stage.project)),
        "auditor": lambda: bearer(world.token("auditor")),
        "admin": lambda: bearer(world.token("admin")),
        "none": lambda: {},
        "garbage": lambda: bearer("bt_not-a-token"),
    }
    headers = tokens[who]()
    before = world.dividends_end()
    url = _fill(path, stage)
    if isinstance(body, bytes):
        resp = world.client.open(url, method=method, data=body, headers={**headers,
                                                                          "Content-Type": "application/json"})
    elif body is None:
        resp = world.client.open(url, method=method, headers=headers)
    else:
        # json.dumps escapes what is not ASCII, so a lone surrogate travels as a client's "\\ud800" would.
        resp = world.client.open(url, method=method, data=json.dumps(_fill(body, stage)),
                                 headers={**headers, "Content-Type": "application/json"})
    error = resp.get_json()["error"]
    assert (resp.status_code, error["field"]) == (status, field), error
    assert world.dividends_end() == before


def test_reads_follow_the_roles(world: World, stage: Stage) -> None:
    did = stage.distribution_id
    for headers, status in ((bearer(world.token("auditor")), 200), (bearer(world.token("admin")), 200),
                            (world.board(stage.project), 200), (world.board(stage.bare), 403),
                            (bearer(world.token("accountant", stage.village)), 403), ({}, 401)):
        assert world.client.get(f"/v1/distributions/{did}", headers=headers).status_code == status
    assert world.client.get(f"/v1/projects/{stage.project}/policy",
                            headers=bearer(world.token("operator", stage.project))).status_code == 403
    assert world.client.get("/v1/allocations/unpaid", headers=bearer(world.token("auditor"))).status_code == 200
    mine = world.client.get(f"/v1/investors/{stage.village}/dividends",
                            headers=bearer(world.token("accountant", stage.village)))
    assert [i["distribution_id"] for i in mine.get_json()["items"]] == [did]


def test_the_api_is_described_by_openapi(world: World) -> None:
    spec = world.client.get("/openapi.json").get_json()
    assert {"/v1/projects/{project_id}/policy", "/v1/projects/{project_id}/distributions",
            "/v1/projects/{project_id}/distributions/preview", "/v1/distributions/{distribution_id}",
            "/v1/distributions/{distribution_id}/approve", "/v1/distributions/{distribution_id}/payments",
            "/v1/distributions/{distribution_id}/cancel", "/v1/investors/{investor_id}/dividends",
            "/v1/allocations/unpaid"} <= set(spec["paths"])


# --------------------------------------------------------------------------------------
# amounts beyond the wire format (DESIGN §3, issue 13.2)


@pytest.fixture(scope="module")
def huge(world: World) -> str:
    """A project holding the largest capital (999999999999.99, as the ledger allows). Capital-days are
    Σ capital × days: they fit a one-day period and no longer one."""
    project = f"bounds-{time.time_ns() % 10**8:08d}"
    world.project(project)
    world.cash(project, f"{project}-village", "collective", format_yuan(MAX_WIRE_FEN), "2026-01-01")
    world.rent(project, "100000.00", "2026-01-01")
    world.policy(project, guaranteed_rate="0.00", guarantor_id=None)
    return project


def test_capital_days_beyond_the_largest_amount_are_refused_at_preview_and_declaration(
        world: World, huge: str) -> None:
    period = {"period_start": "2026-01-01", "period_end": "2026-01-02"}  # 2 days × 999999999999.99
    before = world.dividends_end()
    for path in (f"/v1/projects/{huge}/distributions/preview", f"/v1/projects/{huge}/distributions"):
        response = world.client.post(path, json=period, headers=world.board(huge))
        error = response.get_json()["error"]
        assert (response.status_code, error["code"], error["field"]) == (422, "amount_out_of_range", "period_end")
        assert list(error["errors"]) == ["total_capital_days"]
        assert "1999999999999.98 yuan·days" in error["message"]
    assert world.dividends_end() == before


def test_a_period_short_enough_is_declared(world: World, huge: str) -> None:
    body = world.declare(huge, "2026-02-01", "2026-02-01")
    assert body["total_capital_days"] == format_yuan(MAX_WIRE_FEN)
