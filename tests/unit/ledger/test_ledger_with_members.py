"""The ledger and the members service on one in-memory log (DESIGN §11), each as production runs it: the ledger
closes the year, the members service plans on the books it reads, approves and pays; the ledger posts the plan's
appropriations and the payments. The trial balance and the 收益及收益分配表 after the plan."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bearer, kept_token, running, without_receipts
from flask.testing import FlaskClient
from members_world import CHARTER, VOTE

from services.ledger.app import create_app as ledger_app
from services.ledger.domain import automatic_entry_ids
from services.members.app import create_app as members_app
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

CID = "lianmeng-plan"


class Both:
    def __init__(self, settings: Settings, ledger: FlaskClient, members: FlaskClient) -> None:
        self.settings, self.ledger, self.members = settings, ledger, members
        self.tokens: dict[str, str] = {}

    def headers(self, role: str) -> dict[str, str]:
        return dict(bearer(kept_token(self.settings, self.tokens, role, *(() if role == "admin" else (CID,)))))

    def call(self, client: FlaskClient, method: str, path: str, role: str, status: int, **body: Any) -> Any:
        response = client.open(path, method=method, json=body if method != "GET" else None,
                               headers=self.headers(role))
        assert response.status_code == status, response.get_json()
        body = response.get_json()
        return without_receipts(body) if isinstance(body, dict) and "receipts" in body else body


@pytest.fixture
def both(tmp_path: Path) -> Iterator[Both]:
    settings = Settings(bootstrap_servers="in-memory", data_dir=tmp_path / "data", tokens_file=tmp_path / "tokens.json",
                        request_timeout_s=10)
    log = InMemoryLog()
    with running(ledger_app, settings, log=log) as ledger, running(members_app, settings, log=log) as members:
        yield Both(settings, ledger, members)


def entry(both: Both, day: str, debit: str, credit: str, amount: str) -> None:
    both.call(both.ledger, "POST", f"/v1/collectives/{CID}/entries", "accountant", 201, date=day,
              lines=[{"account": debit, "debit": amount}, {"account": credit, "credit": amount}])


def test_a_plan_made_on_the_closed_books_comes_back_into_them(both: Both) -> None:
    L, M = both.ledger, both.members
    both.call(L, "POST", "/v1/collectives", "admin", 201, collective_id=CID, name="联盟村", town="金清镇")
    entry(both, "2025-03-01", "102", "501", "12000.00")
    entry(both, "2025-05-01", "513", "102", "2000.00")
    # The members service refuses a plan of a year not closed, then plans on the close's 10,000.00.
    both.call(M, "PUT", f"/v1/collectives/{CID}/charter", "accountant", 200, **CHARTER)
    for hid, head, holdings in (("hu-1", "张小明", {"population": "3", "farm-age": "10"}),
                                ("hu-2", "王五", {"population": "2"}), ("hu-3", "欧阳小明", {"farm-age": "20"})):
        both.call(M, "POST", f"/v1/collectives/{CID}/households", "accountant", 201, household_id=hid,
                  head_name=head, registered_on="2025-01-15", holdings=holdings)
    plan_body = {"year": 2025, "reserve_rate": "0.10", "welfare": "500.00", "members_total": "8000.00",
                 "record_date": "2026-03-31"}
    both.call(M, "POST", f"/v1/collectives/{CID}/plans", "accountant", 409, **plan_body)
    close = both.call(L, "POST", f"/v1/collectives/{CID}/year-end-close", "accountant", 201, year=2025)
    assert close["net_income"] == "10000.00"
    plan = both.call(M, "POST", f"/v1/collectives/{CID}/plans", "accountant", 201, **plan_body)
    assert (plan["net_income"], plan["distributable"], plan["reserve"]) == ("10000.00", "10000.00", "1000.00")
    both.call(M, "POST", f"/v1/collectives/{CID}/plans/{plan['plan_id']}/approve", "board", 200, vote=VOTE)
    for allocation in plan["allocations"]:
        both.call(M, "POST", f"/v1/collectives/{CID}/plans/{plan['plan_id']}/payments", "accountant", 201,
                  household_id=allocation["household_id"], amount=allocation["amount"], paid_on="2026-04-20",
                  bank_reference=f"RCC-{allocation['household_id']}")
    service = L.application.extensions["baotuan_service"]
    deadline = time.monotonic() + 10
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        entries = both.call(L, "GET", f"/v1/collectives/{CID}/entries", "accountant", 200)["items"]
        if sum(1 for e in entries if e["origin"]["kind"] == "member_dividend") == 3 and not service.pending_derived():
            break
        time.sleep(0.05)
    plan_entries = [e for e in entries if e["origin"]["kind"] == "member_plan"]
    assert len(plan_entries) == 1
    [appropriation] = plan_entries
    assert appropriation["date"] == VOTE["meeting_on"] and appropriation["origin"]["ref"] == plan["plan_id"]
    assert appropriation["lines"] == [{"account": "322/undistributed", "debit": "9500.00"},
                                      {"account": "311", "credit": "1000.00"},
                                      {"account": "211/welfare", "credit": "500.00"},
                                      {"account": "211/member-dividends", "credit": "8000.00"}]
    approvals = [r for r in service.log.records("baotuan.members.v1") if b'"PlanApproved"' in (r.value or b"")]
    assert len(approvals) == 1
    assert appropriation["entry_id"] == automatic_entry_ids(json.loads(approvals[0].value)["event_id"]).entry_id
    payments = sorted((e["lines"][0]["debit"], e["date"]) for e in entries if e["origin"]["kind"] == "member_dividend")
    assert payments == [("3200.00", "2026-04-20"), ("4000.00", "2026-04-20"), ("800.00", "2026-04-20")]
    tb = {row["code"]: row["balance"] for row in both.call(
        L, "GET", f"/v1/collectives/{CID}/trial-balance?as_of=2026-12-31", "accountant", 200)["accounts"]}
    assert (tb["102"], tb["311"], tb["211/welfare"], tb["211/member-dividends"], tb["322/undistributed"]) == (
        "2000.00", "1000.00", "500.00", "0.00", "500.00")
    assert (tb["501"], tb["513"], tb["321"]) == ("0.00", "0.00", "0.00")
    of_2025 = both.call(L, "GET", f"/v1/collectives/{CID}/income-statement?year=2025", "accountant", 200)
    assert of_2025["net_income"] == "10000.00"
    assert {i["item"]: i["amount"] for i in of_2025["distribution"]}["undistributed"] == "10000.00"
    of_2026 = both.call(L, "GET", f"/v1/collectives/{CID}/income-statement?year=2026", "accountant", 200)
    assert {i["item"]: i["amount"] for i in of_2026["distribution"]} == {
        "net_income": "0.00", "brought_forward": "10000.00", "distributable": "10000.00", "reserve": "1000.00",
        "welfare": "500.00", "member_dividends": "8000.00", "other": "0.00", "undistributed": "500.00"}
    # Every entry of the books has its voucher, the plan's in April 2026 after nothing else of that month.
    assert appropriation["voucher_no"] == "记-2026-04-0001"
    assert sorted(e["voucher_no"] for e in entries if e["date"] == "2026-04-20") == [
        "记-2026-04-0002", "记-2026-04-0003", "记-2026-04-0004"]
