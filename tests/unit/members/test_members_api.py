"""The members API on the in-memory event log (DESIGN §11): the register, the plan's lifecycle, the refusals,
the roles.

The villages' books reach the service as in production: a stand-in ledger writer publishes CollectiveRegistered
and the year-end close (tests/members_world.py). What only a broker shows is in tests/integration/members.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import bearer, without_receipts
from members_world import VOTE, World, world_on

from services.contracts.topics import MEMBERS
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("members")
    settings = Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                        request_timeout_s=5)
    with world_on(settings, folder, InMemoryLog()) as world:
        yield world


def members_events(world: World, cid: str) -> list[dict[str, Any]]:
    """The envelopes of baotuan.members.v1 with subject ``cid``, in log order (one subject: one partition)."""
    log = world.ledger.log
    assert isinstance(log, InMemoryLog)
    envelopes = [json.loads(r.value) for r in log.records(MEMBERS) if r.value is not None]
    return [e for e in envelopes if e["subject"] == cid]


# -- the whole way ---------------------------------------------------------------------------------------------


def test_register_propose_approve_pay_and_notice(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    acc = world.accountant(cid)
    # A = 10,000.00 (the close of 2025 only); reserve 10% = 1,000.00; welfare 500.00; M = 8,000.00
    plan = world.propose(cid, welfare="500.00", members_total="8000.00")
    assert plan["plan_id"] == "plan-2025" and plan["status"] == "proposed"
    assert [plan[k] for k in ("net_income", "brought_forward", "distributable", "reserve", "welfare",
                              "members_total", "undistributed", "total_weight", "households")] == [
        "10000.00", "0.00", "10000.00", "1000.00", "500.00", "8000.00", "500.00", "20", 3]
    # weights 8, 2, 10 of 20: 3,200.00, 800.00, 4,000.00
    assert [(a["household_id"], a["weight"], a["amount"], a["holdings"]) for a in plan["allocations"]] == [
        ("hu-1", "8", "3200.00", {"farm-age": "10", "population": "3"}),
        ("hu-2", "2", "800.00", {"population": "2"}),
        ("hu-3", "10", "4000.00", {"farm-age": "20"}),
    ]
    # the notice is for approved plans only
    notice = world.client.get(f"/v1/collectives/{cid}/plans/plan-2025/notice", headers=acc)
    assert notice.status_code == 409 and notice.get_json()["error"]["code"] == "not_approved"

    approved = world.approve(cid, "plan-2025")
    assert approved["status"] == "approved" and approved["vote"] == VOTE
    world.pay(cid, "plan-2025", "hu-1", "3200.00")
    world.pay(cid, "plan-2025", "hu-2", "800.00")
    assert world.client.get(f"/v1/collectives/{cid}/plans/plan-2025", headers=acc).get_json()["status"] == "approved"
    world.pay(cid, "plan-2025", "hu-3", "4000.00")
    final = world.client.get(f"/v1/collectives/{cid}/plans/plan-2025", headers=world.board(cid)).get_json()
    assert final["status"] == "paid" and final["total_paid"] == "8000.00" and final["unpaid_households"] == 0

    notice = world.client.get(f"/v1/collectives/{cid}/plans/plan-2025/notice", headers=acc).get_json()
    assert notice["collective_name"] == "联盟村" and notice["year"] == 2025 and notice["status"] == "paid"
    assert notice["figures"]["members_total"] == "8000.00" and notice["vote"]["for"] == 16
    assert [(h["household_id"], h["head_name_masked"], h["amount"]) for h in notice["households"]] == [
        ("hu-1", "张*明", "3200.00"), ("hu-2", "王*", "800.00"), ("hu-3", "欧**明", "4000.00")]
    assert [k["name"] for k in notice["share_kinds"]] == ["人口股", "农龄股"]

    types = [e["type"] for e in members_events(world, cid)]
    assert types.count("HouseholdAllocated") == 3 and types.count("HouseholdDividendPaid") == 3
    assert types.index("PlanProposed") < types.index("PlanApproved")
    listed = world.client.get(f"/v1/collectives/{cid}/plans", headers=acc).get_json()["items"]
    assert [(p["plan_id"], p["status"]) for p in listed] == [("plan-2025", "paid")]


def test_the_preview_writes_nothing_and_shows_the_split(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    before = len(members_events(world, cid))
    resp = world.client.post(f"/v1/collectives/{cid}/plans/preview", headers=world.board(cid),
                             json={"year": 2025, "reserve_rate": "0.15", "members_total": "0.01",
                                   "record_date": "2026-03-31"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "preview" and body["reserve"] == "1500.00" and body["undistributed"] == "8499.99"
    # 0.01 over weights 8, 2, 10: the fen goes to the largest remainder, hu-3 (10/20)
    assert [(a["household_id"], a["amount"]) for a in body["allocations"]] == [
        ("hu-1", "0.00"), ("hu-2", "0.00"), ("hu-3", "0.01")]
    assert len(members_events(world, cid)) == before


def test_the_distributable_amount_takes_the_balance_brought_forward(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    # 2,000.00 left undistributed from earlier years, and an entry dated after 2025 that does not count
    world.entry(cid, "2024-12-31", [("321", "debit", "2000.00"), ("322/undistributed", "credit", "2000.00")])
    world.entry(cid, "2026-01-05", [("322/undistributed", "debit", "700.00"), ("102", "credit", "700.00")])
    body = world.propose(cid, members_total="10800.00")
    assert (body["net_income"], body["brought_forward"], body["distributable"], body["reserve"],
            body["undistributed"]) == ("10000.00", "2000.00", "12000.00", "1200.00", "0.00")


def test_a_transfer_after_the_fixing_moves_the_split_from_its_date(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    # hu-3's 农龄股 pass to hu-2 (inheritance) the day before the record date: hu-2 is paid for them
    world.transfer(cid, "hu-3", "hu-2", "farm-age", "20", "2026-03-30")
    body = world.propose(cid, members_total="2000.00")
    assert [(a["household_id"], a["weight"], a["amount"]) for a in body["allocations"]] == [
        ("hu-1", "8", "800.00"), ("hu-2", "12", "1200.00")]
    household = world.client.get(f"/v1/collectives/{cid}/households/hu-3?on=2026-03-29",
                                 headers=world.accountant(cid)).get_json()
    assert household["holdings"] == {"farm-age": "20"}
    assert [h["change"] for h in household["history"]] == ["set", "transfer_out"]


def test_a_transfer_the_day_after_the_record_date_is_refused_once_the_split_is_fixed(world: World,
                                                                                      unique: str) -> None:
    cid = world.village(f"v-{unique}")
    world.transfer(cid, "hu-3", "hu-2", "farm-age", "5", "2026-04-01")  # after the record date: not counted
    body = world.propose(cid, members_total="2000.00")
    assert [a["weight"] for a in body["allocations"]] == ["8", "2", "10"]
    for day in ("2026-03-31", "2026-01-01"):
        resp = world.client.post(f"/v1/collectives/{cid}/share-transfers", headers=world.accountant(cid),
                                 json={"from_household": "hu-1", "to_household": "hu-2", "kind": "population",
                                       "shares": "1", "effective_on": day, "reason": "gift"})
        assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "split_fixed", day
    world.transfer(cid, "hu-1", "hu-2", "population", "1", "2026-04-01", reason="gift")


def test_certificates_are_numbered_per_collective_and_reissued_only_on_a_change(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    acc = world.accountant(cid)
    first = world.ok("POST", f"/v1/collectives/{cid}/households/hu-1/certificates", 201, acc,
                     issued_on="2025-07-01", prefix="JQLM")
    assert (first["certificate_no"], first["replaces"], first["holdings"]) == (
        "JQLM-2025-0001", None, {"farm-age": "10", "population": "3"})
    second = world.ok("POST", f"/v1/collectives/{cid}/households/hu-2/certificates", 201, acc,
                      issued_on="2025-07-01", prefix="JQLM")
    assert second["certificate_no"] == "JQLM-2025-0002"
    again = world.client.post(f"/v1/collectives/{cid}/households/hu-1/certificates", headers=acc,
                              json={"issued_on": "2025-08-01", "prefix": "JQLM"})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "unchanged"
    world.transfer(cid, "hu-1", "hu-2", "population", "1", "2025-09-01")
    third = world.ok("POST", f"/v1/collectives/{cid}/households/hu-1/certificates", 201, acc, issued_on="2025-09-02",
                     prefix="JQLM")
    assert (third["certificate_no"], third["replaces"], third["holdings"]) == (
        "JQLM-2025-0003", "JQLM-2025-0001", {"farm-age": "10", "population": "2"})
    default = world.ok("POST", f"/v1/collectives/{cid}/households/hu-3/certificates", 201, acc, issued_on="2026-01-02")
    assert default["certificate_no"] == f"{cid.upper()}-2026-0004"
    household = world.client.get(f"/v1/collectives/{cid}/households/hu-1", headers=acc).get_json()
    assert [(c["certificate_no"], c["current"]) for c in household["certificates"]] == [
        ("JQLM-2025-0001", False), ("JQLM-2025-0003", True)]


def test_households_members_and_holdings_as_of_a_date(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    acc = world.accountant(cid)
    made = world.household(cid, "hu-4", "𠮷野 家", {"population": "1.5"}, effective_on="2025-03-01",
                           members=[{"member_id": "m-4a", "name": "𠮷野 家", "relation": "户主"},
                                    {"name": "阿依古丽·买买提", "relation": "妻", "born_on": "1990-02-28"}])
    assert [m["name"] for m in made["members"]] == ["𠮷野 家", "阿依古丽·买买提"]
    world.ok("POST", f"/v1/collectives/{cid}/households/hu-4/members", 201, acc, member_id="m-4c", name="小宝",
             joined_on="2026-01-01")
    world.ok("PUT", f"/v1/collectives/{cid}/households/hu-4/holdings", 200, acc,
             holdings={"population": "2", "farm-age": "3.25"}, effective_on="2025-05-01")
    listing = world.client.get(f"/v1/collectives/{cid}/households?on=2025-04-01", headers=acc).get_json()
    assert listing["on"] == "2025-04-01"
    assert {i["household_id"]: i["holdings"] for i in listing["items"]}["hu-4"] == {"population": "1.5"}
    later = world.client.get(f"/v1/collectives/{cid}/households?on=2025-05-01", headers=acc).get_json()
    hu4 = next(i for i in later["items"] if i["household_id"] == "hu-4")
    assert hu4["holdings"] == {"farm-age": "3.25", "population": "2"} and hu4["members"] == 3


def test_the_charter_is_read_back_and_the_same_charter_again_writes_nothing(world: World, unique: str) -> None:
    cid = world.collective(f"v-{unique}")
    first = world.charter(cid)
    assert first["version"] == 1 and first["quorum"] == "2/3"
    resp = world.client.put(f"/v1/collectives/{cid}/charter", headers=world.accountant(cid),
                            json={"share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"},
                                                  {"kind": "farm-age", "name": "农龄股", "weight": "0.5"}],
                                  "shares_fixed_on": "2025-06-30", "adopted_on": "2025-01-10"})
    body = resp.get_json()
    assert resp.status_code == 200 and body["receipts"] == [] and body["version"] == 1  # defaults fill the rest
    stricter = world.charter(cid, quorum="3/4", majority="2/3")
    assert stricter["version"] == 2
    got = world.client.get(f"/v1/collectives/{cid}/charter", headers=world.board(cid)).get_json()
    assert (got["quorum"], got["majority"], got["version"]) == ("3/4", "2/3", 2)


def test_a_cancelled_plan_frees_its_year_and_the_split(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    world.propose(cid)
    again = world.client.post(f"/v1/collectives/{cid}/plans", headers=world.accountant(cid),
                              json={"year": 2025, "reserve_rate": "0.10", "members_total": "1.00",
                                    "record_date": "2026-03-31"})
    assert again.status_code == 409 and again.get_json()["error"] == {
        "status": 409, "code": "plan_exists", "field": "year",
        "message": "plan 'plan-2025' of 2025 is not cancelled: one plan per year"}
    cancelled = world.ok("POST", f"/v1/collectives/{cid}/plans/plan-2025/cancel", 200, world.accountant(cid),
                         reason="重新测算")
    assert cancelled["status"] == "cancelled"
    world.transfer(cid, "hu-1", "hu-2", "population", "1", "2026-01-01")  # the split is free again
    second = world.propose(cid)
    assert second["plan_id"] == "plan-2025-2"
    late = world.client.post(f"/v1/collectives/{cid}/plans/plan-2025/approve", headers=world.board(cid),
                             json={"vote": VOTE})
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "invalid_status"


def test_a_year_with_a_loss_pays_nothing(world: World, unique: str) -> None:
    cid = world.collective(f"v-{unique}")
    world.charter(cid)
    world.household(cid, "hu-1", "张三", {"population": "1"})
    world.close_year(cid, 2025, "-3000.00")
    refused = world.client.post(f"/v1/collectives/{cid}/plans", headers=world.accountant(cid),
                                json={"year": 2025, "reserve_rate": "0.10", "members_total": "0.01",
                                      "record_date": "2026-03-31"})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "members_total"
    body = world.propose(cid, members_total="0.00")
    assert (body["distributable"], body["reserve"], body["undistributed"]) == ("-3000.00", "0.00", "-3000.00")
    assert [(a["household_id"], a["amount"]) for a in body["allocations"]] == [("hu-1", "0.00")]
    approved = world.approve(cid, body["plan_id"])
    assert approved["status"] == "paid"  # nothing to pay
    resp = world.client.post(f"/v1/collectives/{cid}/plans/{body['plan_id']}/payments",
                             headers=world.accountant(cid), json={"household_id": "hu-1", "amount": "0.01",
                                                                  "paid_on": "2026-04-20", "bank_reference": "x"})
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "nothing_to_pay"


# -- refusals --------------------------------------------------------------------------------------------------


@pytest.fixture
def proposed(world: World, unique: str) -> str:
    cid = world.village(f"v-{unique}")
    world.propose(cid, members_total="8000.00")
    return cid


@pytest.mark.parametrize(("vote", "status", "code", "field"), [
    ({"present": 29, "for": 16, "against": 9, "abstain": 4}, 422, "no_quorum", "vote.present"),  # 29/45 < 2/3
    ({"present": 30, "for": 15, "against": 11, "abstain": 4}, 422, "no_majority", "vote.for"),  # 15 = half
    ({"present": 46}, 422, "invalid_vote", "vote.present"),
    ({"for": 20, "against": 10, "abstain": 4}, 422, "invalid_vote", "vote.for"),
    ({"meeting_on": "2026-03-30"}, 422, "invalid_vote", "vote.meeting_on"),  # before the record date
    ({"meeting_on": "2025-12-31"}, 422, "invalid_vote", "vote.meeting_on"),
    ({"entitled": 0}, 422, "validation_error", "vote.entitled"),
    ({"for": -1}, 422, "validation_error", "vote.for"),
    ({"for": 16.0}, 422, "validation_error", "vote.for"),
    ({"body": "villagers"}, 422, "validation_error", "vote.body"),
    ({"meeting_on": "2026-02-30"}, 422, "validation_error", "vote.meeting_on"),
])
def test_a_vote_that_does_not_carry_the_plan_is_refused(world: World, proposed: str, vote: dict[str, Any],
                                                        status: int, code: str, field: str) -> None:
    cid = proposed
    resp = world.client.post(f"/v1/collectives/{cid}/plans/plan-2025/approve", headers=world.board(cid),
                             json={"vote": {**VOTE, **vote}})
    error = resp.get_json()["error"]
    assert (resp.status_code, error["code"], error["field"]) == (status, code, field), error
    assert world.client.get(f"/v1/collectives/{cid}/plans/plan-2025",
                            headers=world.board(cid)).get_json()["status"] == "proposed"


def test_a_stricter_charter_quorum_is_applied(world: World, proposed: str) -> None:
    cid = proposed
    world.charter(cid, quorum="3/4")
    resp = world.client.post(f"/v1/collectives/{cid}/plans/plan-2025/approve", headers=world.board(cid),
                             json={"vote": VOTE})  # 30/45 = 2/3 < 3/4
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "no_quorum"
    world.approve(cid, "plan-2025", present=34, **{"for": 20})


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"members_total": "9000.01"}, 422, "exceeds_distributable", "members_total"),  # 10,000 − 1,000 reserve
    ({"welfare": "500.00", "members_total": "8500.01"}, 422, "exceeds_distributable", "members_total"),
    ({"welfare": "9000.01"}, 422, "exceeds_distributable", "welfare"),
    ({"year": 2024}, 409, "year_not_closed", "year"),
    ({"reserve_rate": "0.09"}, 422, "below_charter_minimum", "reserve_rate"),
    ({"reserve_rate": "1.01"}, 422, "validation_error", "reserve_rate"),
    ({"members_total": "1000"}, 422, "validation_error", "members_total"),
    ({"members_total": 1000.0}, 422, "validation_error", "members_total"),
    ({"members_total": "-1.00"}, 422, "validation_error", "members_total"),
    ({"members_total": "1000000000000.00"}, 422, "validation_error", "members_total"),
    ({"record_date": "2025-12-31"}, 422, "validation_error", "record_date"),
    ({"record_date": "2026-3-31"}, 422, "validation_error", "record_date"),
    ({"year": 99999}, 422, "validation_error", "year"),
    ({"year": "2025"}, 422, "validation_error", "year"),
    ({"plan_id": "Plan 2025"}, 422, "validation_error", "plan_id"),
    ({"plan_id": "plan-x\n"}, 422, "validation_error", "plan_id"),
    ({"surprise": 1}, 422, "validation_error", "surprise"),
])
def test_plans_that_do_not_fit_are_refused_and_write_nothing(world: World, unique: str, body: dict[str, Any],
                                                             status: int, code: str, field: str) -> None:
    cid = world.village(f"v-{unique}")
    before = len(members_events(world, cid))
    request = {"year": 2025, "reserve_rate": "0.10", "welfare": "0.00", "members_total": "1000.00",
               "record_date": "2026-03-31", **body}
    resp = world.client.post(f"/v1/collectives/{cid}/plans", headers=world.accountant(cid), json=request)
    error = resp.get_json()["error"]
    assert (resp.status_code, error["code"], error["field"]) == (status, code, field), error
    assert len(members_events(world, cid)) == before


def test_books_past_the_wire_format_are_refused_not_published(world: World, unique: str) -> None:
    cid = world.collective(f"v-{unique}")
    world.charter(cid)
    world.household(cid, "hu-1", "张三", {"population": "1"})
    world.entry(cid, "2024-12-31", [("321", "debit", "999999999999.99"),
                                    ("322/undistributed", "credit", "999999999999.99")])
    world.close_year(cid, 2025, "999999999999.99")
    resp = world.client.post(f"/v1/collectives/{cid}/plans", headers=world.accountant(cid),
                             json={"year": 2025, "reserve_rate": "0.10", "members_total": "999999999999.99",
                                   "record_date": "2026-03-31"})
    error = resp.get_json()["error"]
    assert (resp.status_code, error["code"], error["field"]) == (422, "amount_out_of_range", "year")
    assert [e["type"] for e in members_events(world, cid)] == ["CharterSet", "HouseholdRegistered", "HoldingsSet"]


def test_a_reversed_close_leaves_the_year_open(world: World, unique: str) -> None:
    cid = world.collective(f"v-{unique}")
    world.charter(cid)
    world.household(cid, "hu-1", "张三", {"population": "1"})
    close = world.close_year(cid, 2025, "5000.00")
    world.reverse(cid, close, "2025-12-31")
    resp = world.client.post(f"/v1/collectives/{cid}/plans", headers=world.accountant(cid),
                             json={"year": 2025, "reserve_rate": "0.10", "members_total": "1.00",
                                   "record_date": "2026-03-31"})
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "year_not_closed"


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"amount": "3199.99"}, 422, "wrong_amount", "amount"),
    ({"amount": "3200.01"}, 422, "wrong_amount", "amount"),
    ({"amount": "0.00"}, 422, "validation_error", "amount"),
    ({"household_id": "hu-9"}, 422, "unknown_reference", "household_id"),
    ({"paid_on": "2026-04-09"}, 422, "validation_error", "paid_on"),
    ({"bank_reference": ""}, 422, "validation_error", "bank_reference"),
    ({"bank_reference": "a\u0000b"}, 422, "validation_error", "bank_reference"),
])
def test_payments_that_are_not_exactly_the_household_amount_are_refused(
        world: World, proposed: str, body: dict[str, Any], status: int, code: str, field: str) -> None:
    cid = proposed
    world.approve(cid, "plan-2025")
    request = {"household_id": "hu-1", "amount": "3200.00", "paid_on": "2026-04-20", "bank_reference": "RCC1",
               **body}
    resp = world.client.post(f"/v1/collectives/{cid}/plans/plan-2025/payments", headers=world.accountant(cid),
                             json=request)
    error = resp.get_json()["error"]
    assert (resp.status_code, error["code"], error["field"]) == (status, code, field), error


def test_paying_twice_or_before_approval_is_refused(world: World, proposed: str) -> None:
    cid = proposed
    acc = world.accountant(cid)
    path = f"/v1/collectives/{cid}/plans/plan-2025/payments"
    body = {"household_id": "hu-1", "amount": "3200.00", "paid_on": "2026-04-20", "bank_reference": "RCC1"}
    early = world.client.post(path, headers=acc, json=body)
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "invalid_status"
    world.approve(cid, "plan-2025")
    assert world.client.post(path, headers=acc, json=body).status_code == 201
    twice = world.client.post(path, headers=acc, json={**body, "bank_reference": "RCC2"})
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "already_paid"
    cancel = world.client.post(f"/v1/collectives/{cid}/plans/plan-2025/cancel", headers=acc, json={"reason": "x"})
    assert cancel.status_code == 409 and cancel.get_json()["error"]["code"] == "invalid_status"


def test_the_same_request_with_the_same_idempotency_key_pays_once(world: World, proposed: str) -> None:
    cid = proposed
    world.approve(cid, "plan-2025")
    path = f"/v1/collectives/{cid}/plans/plan-2025/payments"
    body = {"household_id": "hu-2", "amount": "800.00", "paid_on": "2026-04-20", "bank_reference": "RCC1"}
    headers = {**world.accountant(cid), "Idempotency-Key": "pay-hu-2-once"}
    first = world.client.post(path, headers=headers, json=body)
    again = world.client.post(path, headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert without_receipts(first.get_json()) == without_receipts(again.get_json())
    other = world.client.post(path, headers=headers, json={**body, "bank_reference": "RCC2"})
    assert other.status_code == 409
    types = [e["type"] for e in members_events(world, cid)]
    assert types.count("HouseholdDividendPaid") == 1


def test_register_refusals(world: World, unique: str) -> None:
    cid = world.village(f"v-{unique}")
    acc = world.accountant(cid)

    def post(path: str, body: dict[str, Any], method: str = "POST") -> tuple[int, str, str | None]:
        resp = world.client.open(f"/v1/collectives/{cid}{path}", method=method, headers=acc, json=body)
        error = resp.get_json().get("error") or {"code": None, "field": None}
        return resp.status_code, error["code"], error["field"]

    transfer = {"from_household": "hu-2", "to_household": "hu-1", "kind": "population", "shares": "1",
                "effective_on": "2025-08-01", "reason": "gift"}
    assert post("/share-transfers", {**transfer, "shares": "2.0001"}) == (409, "insufficient_shares", "shares")
    assert post("/share-transfers", {**transfer, "to_household": "hu-2"}) == (422, "validation_error",
                                                                              "to_household")
    assert post("/share-transfers", {**transfer, "to_household": "hu-9"}) == (404, "not_found", "to_household")
    assert post("/share-transfers", {**transfer, "kind": "land"}) == (422, "unknown_kind", "kind")
    assert post("/share-transfers", {**transfer, "shares": "0"}) == (422, "validation_error", "shares")
    assert post("/share-transfers", {**transfer, "shares": "1.5e0"}) == (422, "validation_error", "shares")
    assert post("/share-transfers", {**transfer, "reason": "sale"}) == (422, "validation_error", "reason")
    assert post("/share-transfers", {**transfer, "from_household": "hu-2\n"}) == (422, "validation_error",
                                                                                  "from_household")
    assert post("/share-transfers", {**transfer, "kind": " population"}) == (422, "validation_error", "kind")
    assert post("/share-transfers", {**transfer, "effective_on": "2025-07-31"})[0] == 201
    # enough on its own date, but hu-2's later transfer then leaves too little
    assert post("/share-transfers", {**transfer, "shares": "1.5", "effective_on": "2025-07-01"}) == (
        409, "insufficient_shares", "shares")
    # holdings after the shares were fixed (2025-06-30), or of a kind the charter does not have
    assert post("/households/hu-1/holdings", {"holdings": {"population": "4"}, "effective_on": "2025-06-30"},
                "PUT") == (409, "shares_fixed", "effective_on")
    assert post("/households/hu-1/holdings", {"holdings": {"land": "4"}, "effective_on": "2025-02-01"},
                "PUT") == (422, "unknown_kind", "holdings.land")
    assert post("/households/hu-1/holdings", {"holdings": {"population": "-1"}, "effective_on": "2025-02-01"},
                "PUT")[0] == 422
    assert post("/households", {"household_id": "hu-5", "head_name": "新户", "registered_on": "2025-08-01",
                                "holdings": {"population": "1"}}) == (409, "shares_fixed", "effective_on")
    assert post("/households", {"household_id": "hu-1", "head_name": "重复", "registered_on": "2025-01-01"}) == (
        409, "already_exists", "household_id")
    assert post("/households", {"household_id": "hu-6", "head_name": "  ", "registered_on": "2025-01-01"})[0] == 422
    lone = world.client.post(f"/v1/collectives/{cid}/households", headers=acc, content_type="application/json",
                             data='{"household_id": "hu-7", "head_name": "\\ud800", "registered_on": "2025-01-01"}')
    assert lone.status_code == 422 and lone.get_json()["error"]["field"] == "head_name"
    assert post("/households", {"household_id": "hu-8", "head_name": "张", "registered_on": "2025-01-01",
                                "members": [{"member_id": "m1", "name": "a"}, {"member_id": "m1", "name": "b"}]}) \
        == (409, "already_exists", "members.1.member_id")
    assert post("/households/hu-9/members", {"name": "某人"}) == (404, "not_found", "household_id")
    assert post("/households", {"household_id": "hu-1\n", "head_name": "张", "registered_on": "2025-01-01"}) == (
        422, "validation_error", "household_id")
    assert post("/households", {"household_id": "HU-10", "head_name": "张", "registered_on": "2025-01-01"})[:1] == (
        422,)
    assert post("/households", {"household_id": "hu-11", "head_name": "张", "registered_on": "99999-01-01"}) == (
        422, "validation_error", "registered_on")
    assert post("/households/hu-1/holdings", {"holdings": {"population": "1000000000"}, "effective_on": "2025-02-01"},
                "PUT") == (422, "validation_error", "holdings.population.value")
    # un-fixing the shares, or leaving out a kind households hold
    assert post("/charter", {"share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"},
                                             {"kind": "farm-age", "name": "农龄股", "weight": "0.5"}],
                             "shares_fixed_on": None, "adopted_on": "2025-01-10"}, "PUT") == (
        409, "shares_fixed", "shares_fixed_on")
    assert post("/charter", {"share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"}],
                             "shares_fixed_on": "2025-06-30", "adopted_on": "2025-01-10"}, "PUT") == (
        409, "kind_in_use", "share_kinds")
    for charter, field in ((({"quorum": "1/2"}), "quorum"), ({"majority": "1/3"}, "majority"),
                           ({"majority": "1/1"}, "majority"), ({"reserve_rate_min": "0.05"}, "reserve_rate_min"),
                           ({"quorum": "2/3 "}, "quorum")):
        body = {"share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"},
                                {"kind": "farm-age", "name": "农龄股", "weight": "0.5"}],
                "shares_fixed_on": "2025-06-30", "adopted_on": "2025-01-10", **charter}
        assert post("/charter", body, "PUT")[::2] == (422, field), charter


def test_share_kinds_are_fixed_once_a_plan_was_proposed(world: World, proposed: str) -> None:
    cid = proposed
    resp = world.client.put(f"/v1/collectives/{cid}/charter", headers=world.accountant(cid),
                            json={"share_kinds": [{"kind": "population", "name": "人口股", "weight": "2"},
                                                  {"kind": "farm-age", "name": "农龄股", "weight": "0.5"}],
                                  "shares_fixed_on": "2025-06-30", "adopted_on": "2025-01-10"})
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "share_kinds_fixed"


# -- who may do what -------------------------------------------------------------------------------------------


def test_roles_and_scopes(world: World, proposed: str, unique: str) -> None:
    cid = proposed
    other = world.village(f"w-{unique}")
    acc, board = world.accountant(cid), world.board(cid)
    vote = {"vote": VOTE}
    auditor, admin = bearer(world.token("auditor")), bearer(world.token("admin"))
    plan = f"/v1/collectives/{cid}/plans/plan-2025"
    # reads: accountant, board, auditor, admin; not an operator, not another village's accountant or board
    for headers in (acc, board, auditor, admin):
        assert world.client.get(plan, headers=headers).status_code == 200
        assert world.client.get(f"/v1/collectives/{cid}/households", headers=headers).status_code == 200
    for headers in (bearer(world.token("operator", cid)), world.accountant(other), world.board(other)):
        for path in (plan, f"/v1/collectives/{cid}/households", f"/v1/collectives/{cid}/households/hu-1",
                     f"/v1/collectives/{cid}/charter", f"{plan}/notice"):
            resp = world.client.get(path, headers=headers)
            assert resp.status_code == 403 and "hu-1" not in resp.get_data(as_text=True), path
    assert world.client.get(plan).status_code == 401
    # no token and a bad body: 401, before the body is read
    nobody = world.client.post(f"/v1/collectives/{cid}/plans", json={"year": "x"})
    assert nobody.status_code == 401 and nobody.get_json()["error"]["field"] == "Authorization"
    assert world.client.get(plan, headers=bearer("bt_not-a-token")).status_code == 401
    # another village's plan or household under one's own collective: not found, and nothing of it shown
    world.propose(other, members_total="5.00", plan_id=f"w-plan-{unique}")
    assert world.client.get(f"/v1/collectives/{other}/plans/w-plan-{unique}", headers=world.accountant(other)
                            ).status_code == 200
    # named under one's own collective, another village's plan is not found, and shows nothing of it
    foreign = world.client.get(f"/v1/collectives/{cid}/plans/w-plan-{unique}", headers=acc)
    assert foreign.status_code == 404 and "5.00" not in foreign.get_data(as_text=True)
    foreign = world.client.post(f"/v1/collectives/{cid}/plans/w-plan-{unique}/approve", headers=board, json=vote)
    assert foreign.status_code == 404
    assert world.client.get(f"/v1/collectives/{cid}/plans/plan-2025", headers=world.accountant(other)
                            ).status_code == 403
    assert world.client.get(f"/v1/collectives/{other}/households/hu-404", headers=world.accountant(other)
                            ).status_code == 404
    # writes: the board approves, the accountant does not; the board does not pay or register; the auditor writes
    # nothing
    assert world.client.post(f"{plan}/approve", headers=acc, json=vote).status_code == 403
    assert world.client.post(f"{plan}/approve", headers=world.board(other), json=vote).status_code == 403
    assert world.client.post(f"{plan}/approve", headers=auditor, json=vote).status_code == 403
    for headers in (board, auditor, world.accountant(other)):
        assert world.client.post(f"{plan}/cancel", headers=headers, json={"reason": "x"}).status_code == 403
        assert world.client.post(f"/v1/collectives/{cid}/households", headers=headers,
                                 json={"household_id": "hu-x", "head_name": "x", "registered_on": "2025-01-01"}
                                 ).status_code == 403
    assert world.client.get(plan, headers=acc).get_json()["status"] == "proposed"


@pytest.mark.parametrize("path", [
    "/v1/collectives/{cid}%0A/charter", "/v1/collectives/{cid}/plans/plan-2025%0A",
    "/v1/collectives/{cid}/households/hu-1%20", "/v1/collectives/%20{cid}/households",
])
def test_ids_with_whitespace_in_the_path_are_not_found(world: World, proposed: str, path: str) -> None:
    resp = world.client.get(path.format(cid=proposed), headers=bearer(world.token("admin")))
    assert resp.status_code == 404


def test_far_dates_and_unknown_collectives(world: World, unique: str) -> None:
    admin = bearer(world.token("admin"))
    resp = world.client.put(f"/v1/collectives/nowhere-{unique}/charter", headers=admin,
                            json={"share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"}],
                                  "adopted_on": "2025-01-01"})
    assert resp.status_code == 404 and resp.get_json()["error"]["field"] == "collective_id"
    cid = world.village(f"v-{unique}")
    far = world.client.post(f"/v1/collectives/{cid}/plans", headers=world.accountant(cid),
                            json={"year": 9998, "reserve_rate": "0.10", "members_total": "1.00",
                                  "record_date": "9999-12-31"})
    assert far.status_code == 409 and far.get_json()["error"]["code"] == "year_not_closed"
    for day in ("0000-01-01", "10000-01-01", "2025-13-01"):
        resp = world.client.get(f"/v1/collectives/{cid}/households?on={day}", headers=world.accountant(cid))
        assert resp.status_code == 422, day
    ok = world.client.get(f"/v1/collectives/{cid}/households?on=9999-12-31", headers=world.accountant(cid))
    assert ok.status_code == 200 and len(ok.get_json()["items"]) == 3
