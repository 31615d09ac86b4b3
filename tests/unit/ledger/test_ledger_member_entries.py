"""The ledger's entries of a village's own distribution (DESIGN §11): a plan approved on baotuan.members.v1
posts its appropriations, a household's dividend paid its payment, as derived entries under ids from their
cause; the trial balance and the 收益及收益分配表 after a plan; a replay of the log yields the same entries once.

On the in-memory log: the members events are published as the members service writes them (sealed, chained).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import running
from ledger_world import World, open_world

from services.contracts import envelope as env
from services.contracts.topics import LEDGER_ENTRIES, MEMBERS
from services.ledger.app import create_app
from services.ledger.domain import automatic_entry_ids, member_entry_lines
from services.ledger.reads import LedgerReads
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog, OutRecord


class MembersWriter:
    """Publishes baotuan.members.v1 events as the members service would: sealed, chained per collective."""

    def __init__(self, log: InMemoryLog) -> None:
        self.log = log
        self.heads: dict[str, env.ChainHead] = {}
        self.values: dict[str, bytes] = {}

    def publish(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        subject = data["collective_id"]
        sealed, value = env.seal_encoded(env.new_envelope(
            event_type=event_type, version=1, source="members", subject=subject, data=data,
            actor="accountant:test"), self.heads.get(subject, env.ChainHead()))
        self.heads[subject] = env.ChainHead(sealed["seq"], sealed["hash"])
        self.log.publish([OutRecord(MEMBERS, sealed, value, [])])
        self.values[sealed["event_id"]] = value
        return sealed

    def again(self, sealed: dict[str, Any]) -> None:
        """The same record once more (a producer's retry): same event id, same bytes."""
        self.log.publish([OutRecord(MEMBERS, sealed, self.values[sealed["event_id"]], [])])


@pytest.fixture(scope="module")
def log() -> InMemoryLog:
    return InMemoryLog()


def settings_in(folder: Path) -> Settings:
    return Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                    request_timeout_s=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, log: InMemoryLog) -> Iterator[World]:
    with running(create_app, settings_in(tmp_path_factory.mktemp("ledger-members")), log=log) as client:
        yield open_world(client.application.extensions["baotuan_service"].settings, client)


def vote(meeting_on: str) -> dict[str, Any]:
    return {"body": "representatives", "meeting_on": meeting_on, "entitled": 45, "present": 40, "for": 36,
            "against": 2, "abstain": 2}


def approved(collective_id: str, plan_id: str, meeting_on: str, reserve: str, welfare: str,
             members_total: str) -> dict[str, Any]:
    return {"collective_id": collective_id, "plan_id": plan_id, "year": 2025, "vote": vote(meeting_on),
            "reserve": reserve, "welfare": welfare, "members_total": members_total, "approved_by": "accountant:test"}


def paid(collective_id: str, payment_id: str, household_id: str, amount: str) -> dict[str, Any]:
    return {"collective_id": collective_id, "plan_id": "plan-2025", "payment_id": payment_id,
            "household_id": household_id, "amount": amount, "paid_on": "2026-01-10", "bank_reference": "农商行-1"}


def wait_for_entry(world: World, collective_id: str, entry_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = world.get(f"/v1/collectives/{collective_id}/entries/{entry_id}")
        if response.status_code == 200:
            return dict(response.get_json())
        time.sleep(0.02)
    raise AssertionError(f"entry {entry_id} was never posted")


def member_entries(log: InMemoryLog, collective_id: str) -> list[dict[str, Any]]:
    """The EntryPosted events of a plan or a household's dividend in the log, for one collective."""
    out = []
    for record in log.records(LEDGER_ENTRIES):
        assert record.value is not None
        event = json.loads(record.value)
        data = event["data"]
        if (event["type"] == "EntryPosted" and data["collective_id"] == collective_id
                and data["origin"]["kind"] in ("member_plan", "member_dividend")):
            out.append(event)
    return out


def test_the_pure_lines_of_a_plan_and_of_a_payment() -> None:
    lines = member_entry_lines("PlanApproved", {"reserve": "830.00", "welfare": "0.00", "members_total": "6000.00"})
    assert [(line.account, line.debit, line.credit) for line in lines] == [
        ("322/undistributed", 6830_00, 0), ("311", 0, 830_00), ("211/member-dividends", 0, 6000_00)]
    assert member_entry_lines("PlanApproved", {"reserve": "0.00", "welfare": "0.00", "members_total": "0.00"}) == ()
    pay = member_entry_lines("HouseholdDividendPaid", {"amount": "12.34"})
    assert [(line.account, line.debit, line.credit) for line in pay] == [
        ("211/member-dividends", 1234, 0), ("102", 0, 1234)]


def test_a_plan_and_its_payments_post_their_entries_and_the_statement_shows_the_distribution(
        world: World, log: InMemoryLog, tmp_path: Path) -> None:
    village = f"lg-{world.u}-plan"
    world.created("/v1/collectives", {"collective_id": village, "name": "分配村", "town": world.town})
    world.post_entry(village, "2025-03-01", ("102", "debit", "10000.00"), ("501", "credit", "10000.00"))
    world.post_entry(village, "2025-04-01", ("513", "debit", "1700.00"), ("102", "credit", "1700.00"))
    assert world.post(f"/v1/collectives/{village}/year-end-close", {"year": 2025}).status_code == 201
    members = MembersWriter(log)
    approval = members.publish("PlanApproved", approved(village, "plan-2025", "2025-12-31", "830.00", "500.00",
                                                        "6000.00"))
    plan_entry = wait_for_entry(world, village, automatic_entry_ids(approval["event_id"]).entry_id)
    assert plan_entry["date"] == "2025-12-31"
    assert plan_entry["origin"] == {"kind": "member_plan", "ref": "plan-2025"}
    assert plan_entry["lines"] == [{"account": "322/undistributed", "debit": "7330.00"},
                                   {"account": "311", "credit": "830.00"},
                                   {"account": "211/welfare", "credit": "500.00"},
                                   {"account": "211/member-dividends", "credit": "6000.00"}]
    assert plan_entry["voucher_no"].startswith("记-2025-12-")
    payments = [members.publish("HouseholdDividendPaid", paid(village, f"pay-{n}", f"hh-{n}", amount))
                for n, amount in ((1, "3600.00"), (2, "2400.00"))]
    for payment in payments:
        entry = wait_for_entry(world, village, automatic_entry_ids(payment["event_id"]).entry_id)
        assert entry["date"] == "2026-01-10" and entry["origin"]["kind"] == "member_dividend"
        assert entry["origin"]["ref"] == payment["data"]["payment_id"]
        assert entry["lines"] == [{"account": "211/member-dividends", "debit": payment["data"]["amount"]},
                                  {"account": "102", "credit": payment["data"]["amount"]}]
    tb = world.balances(village, "2026-01-31")
    assert (tb["311"], tb["211/welfare"], tb["211/member-dividends"], tb["322/undistributed"]) == (
        "830.00", "500.00", "0.00", "970.00")
    assert tb["102"] == "2300.00"  # 10000 − 1700 − 6000 paid out
    statement = world.ok(f"/v1/collectives/{village}/income-statement?year=2025")
    assert {item["item"]: item["amount"] for item in statement["distribution"]} == {
        "net_income": "8300.00", "brought_forward": "0.00", "distributable": "8300.00", "reserve": "830.00",
        "welfare": "500.00", "member_dividends": "6000.00", "other": "0.00", "undistributed": "970.00"}
    nxt = {item["item"]: item["amount"]
           for item in world.ok(f"/v1/collectives/{village}/income-statement?year=2026")["distribution"]}
    assert (nxt["brought_forward"], nxt["member_dividends"], nxt["undistributed"]) == ("970.00", "0.00", "970.00")

    # The same records once more, then a ledger rebuilt from the whole log: the same entries, posted once.
    members.again(approval)
    world.offsets()
    assert len(member_entries(log, village)) == 3
    mine = {e["entry_id"]: e for e in world.ok(f"/v1/collectives/{village}/entries")["items"]}
    with running(create_app, settings_in(tmp_path), log=log) as rebuilt:
        service = rebuilt.application.extensions["baotuan_service"]
        reads = LedgerReads(service.store)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (service.pending_derived()
                                               or len(reads.entries(village, None, None)) < len(mine)):
            time.sleep(0.05)
        again = {e["entry_id"]: e for e in reads.entries(village, None, None)}
    assert again == mine
    assert len(member_entries(log, village)) == 3


def test_a_plan_of_a_collective_without_books_here_posts_nothing_and_zero_lines_are_left_out(
        world: World, log: InMemoryLog) -> None:
    members = MembersWriter(log)
    stranger = members.publish("PlanApproved", approved(f"lg-{world.u}-stranger", "plan-x", "2025-12-31",
                                                         "10.00", "0.00", "90.00"))
    village = f"lg-{world.u}-lean"
    world.created("/v1/collectives", {"collective_id": village, "name": "无福利村", "town": world.town})
    lean = members.publish("PlanApproved", approved(village, "plan-lean", "2026-02-01", "10.00", "0.00", "90.00"))
    entry = wait_for_entry(world, village, automatic_entry_ids(lean["event_id"]).entry_id)
    assert entry["lines"] == [{"account": "322/undistributed", "debit": "100.00"},
                              {"account": "311", "credit": "10.00"},
                              {"account": "211/member-dividends", "credit": "90.00"}]
    world.offsets()
    assert world.get(f"/v1/collectives/lg-{world.u}-stranger/entries").status_code == 404
    assert not [e for e in member_entries(log, f"lg-{world.u}-stranger")]
    assert stranger["data"]["plan_id"] == "plan-x"
