"""The rentals service over HTTP, on the in-memory event log: every rule of buildings, leases, invoices,
rent received, expenses and the reports, the roles, idempotency, and a table of refused inputs that
each name the field and publish nothing.

One rentals service runs for the whole module; each test works in projects of its own (unique ids),
registered on the ledger's topic by a stand-in ledger that only publishes ProjectRegistered. What only
Kafka can show (a project registered a moment ago on another topic, the records the broker holds) is
in tests/integration/rentals/test_rentals_api_kafka.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import bearer, running
from rentals_world import Park, World, new_park, stand_in_ledger

from services.contracts.topics import RENTALS
from services.rentals.app import create_app
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("rentals-api")
    settings = Settings(bootstrap_servers="in-memory", data_dir=tmp / "data", tokens_file=tmp / "tokens.json",
                        request_timeout_s=5)
    log = InMemoryLog()
    ledger = stand_in_ledger(settings, tmp / "ledger.sqlite", log)
    try:
        with running(create_app, settings, log=log) as client:
            yield World(settings, client, ledger, lambda: len(log.records(RENTALS)))
    finally:
        ledger.stop()


@pytest.fixture
def park(world: World, unique: str) -> Park:
    return new_park(world, unique)


def periods(invoices: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(inv["period_start"], inv["period_end"], inv["amount"]) for inv in invoices]


def applied(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["invoice_id"], a["amount"]) for a in result["applied"]]


# -- buildings and leases --------------------------------------------------------------------------------


def test_a_lease_is_refused_when_it_overlaps_a_live_lease_ends_before_it_starts_or_has_no_rent(park: Park) -> None:
    b1 = park.building("b1")
    first = park.lease(b1, "2025-01-01", "2026-01-01", "109200.00", tenant="台州卫浴制造有限公司01",
                       lease_id=f"lease-b1-{park.project_id}")
    assert (first["lease_id"], first["status"], first["tenant"], first["credit"], first["invoices"]) == (
        f"lease-b1-{park.project_id}", "live", {"name": "台州卫浴制造有限公司01", "uscc": None}, "0.00", [])

    overlap = park.lease(b1, "2025-06-01", "2027-01-01", "99000.00", status=422)
    assert (overlap["error"]["code"], overlap["error"]["field"]) == ("lease_overlap", "building_id")
    assert first["lease_id"] in overlap["error"]["message"]
    backwards = park.lease(b1, "2027-01-01", "2026-06-01", "99000.00", status=422)
    assert backwards["error"]["field"] == "end_on"
    for rent in ("0.00", "-1.00"):
        assert park.lease(b1, "2026-01-01", "2027-01-01", rent, status=422)["error"]["field"] == "monthly_rent"

    # end_on is exclusive: a lease starting the day the first one ends only touches it.
    touching = {"building_id": b1, "tenant": {"name": "台州模具制造有限公司", "uscc": "91331004MA2AXW0T82"},
                "start_on": "2026-01-01", "end_on": "2027-01-01", "monthly_rent": "99000.00",
                "deposit": "198000.00", "billing": "annual"}
    signed = park.post(f"/v1/projects/{park.project_id}/leases", touching)
    assert (signed["tenant"], signed["deposit"]) == (
        {"name": "台州模具制造有限公司", "uscc": "91331004MA2AXW0T82"}, "198000.00")
    listed = park.get(f"/v1/projects/{park.project_id}/leases")["items"]
    assert [(lease["start_on"], lease["end_on"], lease["billing"]) for lease in listed] == [
        ("2025-01-01", "2026-01-01", "monthly"), ("2026-01-01", "2027-01-01", "annual")]


# -- invoices ---------------------------------------------------------------------------------------------


def test_invoices_are_pro_rated_by_days_at_both_ends_and_issued_only_once(park: Park) -> None:
    lease_id = park.lease(park.building("b1"), "2025-03-15", "2026-03-15", "109200.00")["lease_id"]

    first = park.invoices(lease_id, "2025-05-31")
    # March: 17 of 31 days × 109200.00 = 59883.870… → 59883.87
    assert periods(first["created"]) == [("2025-03-15", "2025-03-31", "59883.87"),
                                         ("2025-04-01", "2025-04-30", "109200.00"),
                                         ("2025-05-01", "2025-05-31", "109200.00")]
    assert first["existing"] == 0
    assert [inv["due_on"] for inv in first["created"]] == ["2025-03-15", "2025-04-01", "2025-05-01"]

    published = park.world.rentals_end()
    again = park.invoices(lease_id, "2025-05-31")
    assert (again["created"], again["existing"]) == ([], 3)
    assert park.world.rentals_end() == published  # running it twice publishes nothing new

    rest = park.invoices(lease_id, "2026-12-31")
    assert (len(rest["created"]), rest["existing"]) == (10, 3)
    # March 2026: 14 of 31 days × 109200.00 = 49316.129… → 49316.13; the year adds up to 12 months exactly.
    assert periods(rest["created"])[-1] == ("2026-03-01", "2026-03-14", "49316.13")
    lease = park.get(f"/v1/leases/{lease_id}")
    assert lease["invoiced"] == "1310400.00"  # 12 × 109200.00
    assert len(lease["invoices"]) == 13 and all(inv["status"] == "open" for inv in lease["invoices"])


def test_a_quarterly_lease_is_billed_by_calendar_quarter_and_half_a_fen_rounds_up(park: Park) -> None:
    hall = park.lease(park.building("h1", "2125.00"), "2025-02-01", "2030-01-01", "64583.33", billing="quarterly")
    run = park.invoices(hall["lease_id"], "2025-04-01")
    # Q1 2025 has 90 days, the lease covers 59: 3 × 64583.33 × 59/90 = 127013.882… → 127013.88
    assert periods(run["created"]) == [("2025-02-01", "2025-03-31", "127013.88"),
                                       ("2025-04-01", "2025-06-30", "193749.99")]

    # One day of a 30-day April at 1000.35 a month is 33.345 exactly: half a fen rounds up to 33.35.
    short = park.lease(park.building("b2"), "2025-04-30", "2025-06-01", "1000.35")
    assert periods(park.invoices(short["lease_id"], "2025-12-31")["created"]) == [
        ("2025-04-30", "2025-04-30", "33.35"), ("2025-05-01", "2025-05-31", "1000.35")]


# -- rent received ----------------------------------------------------------------------------------------


def test_payments_go_to_the_oldest_open_invoice_first_and_an_overpayment_is_kept_as_credit(park: Park) -> None:
    lease_id = park.lease(park.building("b1"), "2025-03-15", "2026-03-15", "109200.00")["lease_id"]
    march, april, may = (inv["invoice_id"] for inv in park.invoices(lease_id, "2025-05-31")["created"])

    partial = park.pay(lease_id, "100000.00", "2025-04-10")
    assert applied(partial) == [(march, "59883.87"), (april, "40116.13")]  # 59883.87 + 40116.13 = 100000.00
    assert (partial["credit"], partial["payment"]["invoice_id"]) == ("0.00", march)

    over = park.pay(lease_id, "200000.00", "2025-05-10")
    # 69083.87 finishes April, 109200.00 pays May; 200000.00 − 178283.87 = 21716.13 is the tenant's credit
    assert applied(over) == [(april, "69083.87"), (may, "109200.00")]
    assert (over["credit"], over["payment"]["invoice_id"]) == ("21716.13", april)
    assert park.get(f"/v1/leases/{lease_id}")["credit"] == "21716.13"

    # The credit is not lost: the next invoice issued uses it up.
    june = park.invoices(lease_id, "2025-06-01")["created"]
    assert [(inv["amount"], inv["paid"], inv["outstanding"], inv["status"]) for inv in june] == [
        ("109200.00", "21716.13", "87483.87", "open")]
    lease = park.get(f"/v1/leases/{lease_id}")
    # invoiced 59883.87 + 3 × 109200.00 = 387483.87; received 300000.00; owed 87483.87
    assert (lease["invoiced"], lease["received"], lease["outstanding"], lease["credit"]) == (
        "387483.87", "300000.00", "87483.87", "0.00")
    assert [(inv["status"], inv["outstanding"]) for inv in lease["invoices"]] == [
        ("paid", "0.00"), ("paid", "0.00"), ("paid", "0.00"), ("open", "87483.87")]
    assert [applied(p) for p in lease["payments"]] == [applied(partial), applied(over)]


def test_a_payment_with_no_open_invoice_is_all_credit(park: Park) -> None:
    lease_id = park.lease(park.building("b1"), "2025-03-01", "2026-03-01", "1000.00")["lease_id"]
    paid = park.pay(lease_id, "5000.00", "2025-02-20")
    assert (paid["applied"], paid["credit"], paid["payment"]["invoice_id"]) == ([], "5000.00", None)
    # Five months issued later are paid from the credit, nothing more.
    park.invoices(lease_id, "2025-07-31")
    lease = park.get(f"/v1/leases/{lease_id}")
    assert (lease["outstanding"], lease["credit"]) == ("0.00", "0.00")
    assert [inv["status"] for inv in lease["invoices"]] == ["paid"] * 5


def test_a_payment_naming_an_invoice_pays_that_one_first(park: Park) -> None:
    lease_id = park.lease(park.building("b1"), "2025-04-01", "2026-04-01", "1000.00")["lease_id"]
    april, may = (inv["invoice_id"] for inv in park.invoices(lease_id, "2025-05-31")["created"])
    paid = park.pay(lease_id, "1500.00", "2025-05-05", invoice_id=may)
    assert applied(paid) == [(may, "1000.00"), (april, "500.00")]
    assert paid["payment"]["invoice_id"] == may
    # May is settled now: naming it again is refused.
    again = park.post(f"/v1/leases/{lease_id}/payments", {"amount": "1.00", "received_on": "2025-05-07",
                                                          "invoice_id": may}, status=422)
    assert (again["error"]["code"], again["error"]["field"]) == ("invoice_not_open", "invoice_id")


# -- termination ------------------------------------------------------------------------------------------


def test_terminating_a_lease_early_stops_the_rent_keeps_the_money_and_frees_the_building(park: Park) -> None:
    b3 = park.building("b3", "6000.00")
    lease_id = park.lease(b3, "2025-01-01", "2030-01-01", "50000.00", tenant="台州机电制造有限公司03")["lease_id"]
    park.invoices(lease_id, "2025-06-30")
    assert park.pay(lease_id, "350000.00", "2025-01-05")["credit"] == "50000.00"  # 6 × 50000.00 paid, 50000.00 over

    ended = park.post(f"/v1/leases/{lease_id}/terminate", {"end_on": "2025-05-15", "reason": "租户搬迁"}, 200)
    assert (ended["status"], ended["end_on"], ended["terminated_on"], ended["termination_reason"]) == (
        "terminated", "2030-01-01", "2025-05-15", "租户搬迁")
    # May is cut to 14 of 31 days (50000.00 × 14/31 = 22580.645… → 22580.65), June is void; what had been
    # paid on them beyond that (27419.35 + 50000.00) goes back to the tenant's credit.
    assert [(inv["period_start"], inv["period_end"], inv["amount"], inv["issued_amount"], inv["status"])
            for inv in ended["invoices"]][-3:] == [
        ("2025-04-01", "2025-04-30", "50000.00", "50000.00", "paid"),
        ("2025-05-01", "2025-05-14", "22580.65", "50000.00", "paid"),
        ("2025-06-01", "2025-06-30", "50000.00", "50000.00", "void")]
    assert (ended["invoiced"], ended["received"], ended["outstanding"], ended["credit"]) == (
        "222580.65", "350000.00", "0.00", "127419.35")  # 222580.65 + 127419.35 = 350000.00
    assert park.invoices(lease_id, "2025-12-31") == {"lease_id": lease_id, "created": [], "existing": 5}

    roll = {on: park.get(f"/v1/projects/{park.project_id}/rent-roll?on={on}")["items"][0]
            for on in ("2025-05-14", "2025-05-15")}
    assert (roll["2025-05-14"]["status"], roll["2025-05-14"]["monthly_rent"]) == ("leased", "50000.00")
    assert (roll["2025-05-15"]["status"], roll["2025-05-15"]["monthly_rent"], roll["2025-05-15"]["tenant"]) == (
        "terminated", "0.00", "台州机电制造有限公司03")
    assert park.get(f"/v1/projects/{park.project_id}/occupancy?on=2025-05-15")["leased_area_m2"] == "0.00"

    again = park.post(f"/v1/leases/{lease_id}/terminate", {"end_on": "2025-04-01", "reason": "再次"}, 409)
    assert (again["error"]["code"], again["error"]["field"]) == ("already_terminated", "lease_id")
    # The building is let again from the day the old lease ended, not a day earlier.
    assert park.lease(b3, "2025-05-14", "2026-05-14", "52000.00", status=422)["error"]["field"] == "building_id"
    relet = park.lease(b3, "2025-05-15", "2026-05-15", "52000.00", tenant="台州汽配制造有限公司")
    assert relet["status"] == "live"
    late = park.post(f"/v1/leases/{relet['lease_id']}/terminate", {"end_on": "2026-06-01", "reason": "x"}, 422)
    assert late["error"]["field"] == "end_on"  # after the lease's own end


def test_a_termination_cutting_an_unpaid_invoice_leaves_only_the_days_let_owing(park: Park) -> None:
    lease_id = park.lease(park.building("b1"), "2025-01-01", "2026-01-01", "31000.00")["lease_id"]
    park.invoices(lease_id, "2025-03-31")
    park.pay(lease_id, "40000.00", "2025-02-10")  # January, and 9000.00 of February
    ended = park.post(f"/v1/leases/{lease_id}/terminate", {"end_on": "2025-02-11", "reason": "违约"}, 200)
    # February is cut to 10 of 28 days: 31000.00 × 10/28 = 11071.428… → 11071.43, of which 9000.00 is paid.
    assert [(inv["amount"], inv["paid"], inv["outstanding"], inv["status"]) for inv in ended["invoices"]] == [
        ("31000.00", "31000.00", "0.00", "paid"), ("11071.43", "9000.00", "2071.43", "open"),
        ("31000.00", "0.00", "0.00", "void")]
    assert (ended["outstanding"], ended["credit"]) == ("2071.43", "0.00")
    arrears = park.get(f"/v1/projects/{park.project_id}/arrears?as_of=2025-03-31")
    assert arrears["buckets"] == {"0-30": "0.00", "31-60": "2071.43", "61-90": "0.00", "90+": "0.00"}


# -- expenses ---------------------------------------------------------------------------------------------


def test_expenses_of_a_project_are_listed_by_date_range_and_category(park: Park) -> None:
    base = f"/v1/projects/{park.project_id}/expenses"
    maintenance = park.post(base, {"category": "maintenance", "amount": "60000.00", "incurred_on": "2025-03-31",
                                   "memo": "厂房维修"})
    assert {k: maintenance[k] for k in ("project_id", "category", "amount", "incurred_on", "memo")} == {
        "project_id": park.project_id, "category": "maintenance", "amount": "60000.00",
        "incurred_on": "2025-03-31", "memo": "厂房维修"}
    park.post(base, {"category": "insurance", "amount": "120000.00", "incurred_on": "2025-01-20"})
    park.post(base, {"expense_id": f"tax-{park.project_id}", "category": "property-tax", "amount": "8000.00",
                     "incurred_on": "2026-01-15", "memo": "房产税"})

    year = park.get(f"{base}?from=2025-01-01&to=2025-12-31")
    assert [(e["category"], e["amount"]) for e in year["items"]] == [("insurance", "120000.00"),
                                                                    ("maintenance", "60000.00")]
    assert year["by_category"] == [{"category": "insurance", "amount": "120000.00"},
                                   {"category": "maintenance", "amount": "60000.00"}]
    assert (year["from"], year["to"], year["total"]) == ("2025-01-01", "2025-12-31", "180000.00")
    assert park.get(base)["total"] == "188000.00"


# -- reports ----------------------------------------------------------------------------------------------


def test_rent_roll_and_occupancy_on_a_date(park: Park) -> None:
    b1, b2 = park.building("b1", "8400.00"), park.building("b2", "8800.00")
    park.building("b3", "6000.00")
    first = park.lease(b1, "2025-03-01", "2030-03-01", "109200.00", tenant="台州卫浴制造有限公司01")
    park.lease(b2, "2025-06-01", "2030-06-01", "117600.00", tenant="台州卫浴制造有限公司02")

    roll = park.get(f"/v1/projects/{park.project_id}/rent-roll?on=2025-04-01")
    assert [(r["building_id"], r["status"], r["tenant"], r["monthly_rent"]) for r in roll["items"]] == [
        (b1, "leased", "台州卫浴制造有限公司01", "109200.00"), (b2, "vacant", None, "0.00"),
        (f"b3-{park.project_id}", "vacant", None, "0.00")]
    assert (roll["on"], roll["items"][0]["lease_id"], roll["total_monthly_rent"]) == (
        "2025-04-01", first["lease_id"], "109200.00")

    april = park.get(f"/v1/projects/{park.project_id}/occupancy?on=2025-04-01")
    # 8400.00 of 23200.00 m² let: 0.36206… → 0.3621
    assert (april["total_area_m2"], april["leased_area_m2"], april["vacant_area_m2"], april["rate"]) == (
        "23200.00", "8400.00", "14800.00", "0.3621")
    june = park.get(f"/v1/projects/{park.project_id}/occupancy?on=2025-06-01")
    assert (june["leased_area_m2"], june["vacant_area_m2"], june["rate"]) == ("17200.00", "6000.00", "0.7414")
    assert [(b["status"], b["lease_id"] is not None) for b in june["buildings"]] == [
        ("leased", True), ("leased", True), ("vacant", False)]


def test_arrears_are_aged_by_days_past_due_on_the_date_asked(park: Park) -> None:
    lease_id = park.lease(park.building("b1"), "2025-03-15", "2026-03-15", "109200.00", tenant="欠租户")["lease_id"]
    invoices = park.invoices(lease_id, "2025-07-01")["created"]  # due 03-15, 04-01, 05-01, 06-01, 07-01
    park.pay(lease_id, "59883.87", "2025-03-20")  # March
    park.pay(lease_id, "10000.00", "2025-07-20")  # after the first date asked about
    base = f"/v1/projects/{park.project_id}/arrears"

    on_10th = park.get(f"{base}?as_of=2025-07-10")
    # April 100 days past due, May 70, June 39, July 9; the payment of 07-20 had not come yet.
    assert on_10th["buckets"] == {"0-30": "109200.00", "31-60": "109200.00", "61-90": "109200.00",
                                  "90+": "109200.00"}
    assert (on_10th["as_of"], on_10th["total"]) == ("2025-07-10", "436800.00")
    assert [(i["lease_id"], i["tenant"], i["total"]) for i in on_10th["items"]] == [
        (lease_id, "欠租户", "436800.00")]

    on_31st = park.get(f"{base}?as_of=2025-07-31")
    # April 121 and May 91 days: 90+ (April less the 10000.00 paid on 07-20); June 60; July 30.
    assert on_31st["buckets"] == {"0-30": "109200.00", "31-60": "109200.00", "61-90": "0.00", "90+": "208400.00"}
    assert on_31st["total"] == "426800.00"
    assert park.get(f"{base}?as_of=2025-03-14")["total"] == "0.00"  # nothing due yet
    assert invoices[0]["due_on"] == "2025-03-15"


def test_income_is_the_rent_received_per_month_quarter_and_year(park: Park) -> None:
    lease_id = park.lease(park.building("b1"), "2025-01-01", "2030-01-01", "1000.00")["lease_id"]
    for amount, day in [("100.00", "2025-03-10"), ("50.00", "2025-03-31"), ("200.00", "2025-04-01"),
                        ("300.00", "2025-12-31"), ("400.00", "2026-01-01")]:
        park.pay(lease_id, amount, day)
    base = f"/v1/projects/{park.project_id}/income"

    def table(query: str) -> tuple[list[tuple[str, str]], str]:
        result = park.get(f"{base}?{query}")
        return [(i["period"], i["amount"]) for i in result["items"]], result["total"]

    assert table("granularity=month") == ([("2025-03", "150.00"), ("2025-04", "200.00"), ("2025-12", "300.00"),
                                           ("2026-01", "400.00")], "1050.00")
    assert table("granularity=quarter") == ([("2025-Q1", "150.00"), ("2025-Q2", "200.00"), ("2025-Q4", "300.00"),
                                             ("2026-Q1", "400.00")], "1050.00")
    assert table("granularity=year") == ([("2025", "650.00"), ("2026", "400.00")], "1050.00")
    assert table("from=2025-04-01&to=2025-12-31") == ([("2025-04", "200.00"), ("2025-12", "300.00")], "500.00")


# -- access and idempotency -------------------------------------------------------------------------------


def test_operators_write_their_projects_auditors_and_boards_only_read(park: Park, unique: str) -> None:
    world = park.world
    b1 = park.building("b1")
    lease_id = park.lease(b1, "2025-01-01", "2026-01-01", "1000.00")["lease_id"]
    reads = [f"/v1/projects/{park.project_id}/buildings", f"/v1/projects/{park.project_id}/leases",
             f"/v1/leases/{lease_id}", f"/v1/projects/{park.project_id}/rent-roll",
             f"/v1/projects/{park.project_id}/occupancy", f"/v1/projects/{park.project_id}/arrears",
             f"/v1/projects/{park.project_id}/income", f"/v1/projects/{park.project_id}/expenses"]
    write = (f"/v1/projects/{park.project_id}/expenses",
             {"category": "maintenance", "amount": "1.00", "incurred_on": "2025-01-01"})
    may_read = {"auditor": world.token("auditor"), "board": world.token("board", [park.project_id]),
                "admin": world.token("admin"), "operator": park.operator}
    may_not_read = {"accountant": world.token("accountant", ["jinqing-lianmeng"]),
                    "board elsewhere": world.token("board", [f"other-{unique}"]),
                    "operator elsewhere": world.token("operator", [f"other-{unique}"])}
    for role, tok in may_read.items():
        assert [world.client.get(url, headers=bearer(tok)).status_code for url in reads] == [200] * 8, role
    for role, tok in may_not_read.items():
        assert [world.client.get(url, headers=bearer(tok)).status_code for url in reads] == [403] * 8, role
    for role, tok in [*may_not_read.items(), ("auditor", may_read["auditor"]), ("board", may_read["board"])]:
        refused = world.client.post(write[0], json=write[1], headers=bearer(tok))
        assert (refused.status_code, refused.get_json()["error"]["field"]) == (403, "Authorization"), role
    assert world.client.post(write[0], json=write[1], headers=bearer(may_read["admin"])).status_code == 201
    assert world.client.get(reads[0]).status_code == 401


def test_a_repeated_request_with_the_same_idempotency_key_is_applied_once(park: Park) -> None:
    world = park.world
    lease_id = park.lease(park.building("b1"), "2025-01-01", "2026-01-01", "1000.00")["lease_id"]
    expense = {"category": "maintenance", "amount": "60000.00", "incurred_on": "2025-03-31"}
    url = f"/v1/projects/{park.project_id}/expenses"
    before = world.rentals_end()
    first = park.post(url, expense, **{"Idempotency-Key": "expense-march"})
    repeat = park.post(url, expense, **{"Idempotency-Key": "expense-march"})
    assert first == repeat and world.rentals_end() == before + 1
    conflict = park.post(url, {**expense, "amount": "1.00"}, 409, **{"Idempotency-Key": "expense-march"})
    assert conflict["error"]["field"] == "Idempotency-Key"

    payment = {"amount": "1000.00", "received_on": "2025-01-05"}
    paid = park.post(f"/v1/leases/{lease_id}/payments", payment, **{"Idempotency-Key": "rent-jan"})
    again = park.post(f"/v1/leases/{lease_id}/payments", payment, **{"Idempotency-Key": "rent-jan"})
    assert paid == again
    assert park.get(f"/v1/projects/{park.project_id}/income")["total"] == "1000.00"

    run = park.post(f"/v1/leases/{lease_id}/invoices", {"up_to": "2025-02-01"}, 200, **{"Idempotency-Key": "inv"})
    assert park.post(f"/v1/leases/{lease_id}/invoices", {"up_to": "2025-02-01"}, 200,
                     **{"Idempotency-Key": "inv"}) == run
    assert len(run["created"]) == 2


def test_the_openapi_document_lists_every_route(world: World) -> None:
    paths = world.client.get("/openapi.json").get_json()["paths"]
    assert {path: sorted(ops) for path, ops in paths.items() if path.startswith("/v1/")} == {
        "/v1/projects/{project_id}/buildings": ["get", "parameters", "post"],
        "/v1/projects/{project_id}/leases": ["get", "parameters", "post"],
        "/v1/leases/{lease_id}": ["get", "parameters"],
        "/v1/leases/{lease_id}/terminate": ["parameters", "post"],
        "/v1/leases/{lease_id}/invoices": ["parameters", "post"],
        "/v1/leases/{lease_id}/payments": ["parameters", "post"],
        "/v1/projects/{project_id}/expenses": ["get", "parameters", "post"],
        "/v1/projects/{project_id}/rent-roll": ["get", "parameters"],
        "/v1/projects/{project_id}/occupancy": ["get", "parameters"],
        "/v1/projects/{project_id}/arrears": ["get", "parameters"],
        "/v1/projects/{project_id}/income": ["get", "parameters"],
    }


# -- refused inputs ---------------------------------------------------------------------------------------


@dataclass
class Fixture:
    """What the bad-input table refers to: a project P with buildings and a lease, another project Q."""

    p: str
    q: str
    b1: str
    b2: str
    qb: str
    lease: str
    paid_invoice: str
    payment: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def refs(world: World) -> Fixture:
    u = uuid.uuid4().hex[:8]
    p, q = f"bad-p-{u}", f"bad-q-{u}"
    world.register_project(p)
    world.register_project(q)
    operator = world.token("operator", [p])
    park = Park(world, p, operator)
    b1, b2 = park.building("b1"), park.building("b2")
    qb = Park(world, q, world.token("operator", [q])).building("qb")
    lease = park.lease(b1, "2025-01-01", "2030-01-01", "109200.00", lease_id=f"lease-{u}")["lease_id"]
    paid_invoice = park.invoices(lease, "2025-02-01")["created"][0]["invoice_id"]
    park.pay(lease, "109200.00", "2025-01-10", payment_id=f"pay-{u}")
    park.post(f"/v1/projects/{p}/expenses", {"category": "maintenance", "amount": "1.00", "incurred_on": "2025-01-01"},
              **{"Idempotency-Key": f"used-{u}"})
    tokens = {"operator": operator, "accountant": world.token("accountant", ["jinqing-lianmeng"]),
              "auditor": world.token("auditor"), "board": world.token("board", [p]),
              "other": world.token("operator", [q]), "idem": f"used-{u}"}
    return Fixture(p, q, b1, b2, qb, lease, paid_invoice, f"pay-{u}", tokens)


def lease_body(**changes: Any) -> dict[str, Any]:
    body = {"building_id": "{b2}", "tenant": {"name": "台州卫浴制造有限公司"}, "start_on": "2025-01-01",
            "end_on": "2030-01-01", "monthly_rent": "109200.00", "deposit": "218400.00", "billing": "monthly"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


BUILDING = {"name": "9号厂房", "floor_area_m2": "8400.00"}
PAYMENT = {"amount": "109200.00", "received_on": "2025-02-10"}
EXPENSE = {"category": "maintenance", "amount": "60000.00", "incurred_on": "2025-03-31"}
TERMINATION = {"end_on": "2026-01-01", "reason": "租户搬迁"}

# (case, method, url, body (dict, or raw bytes), token, status, field)
REFUSED: list[tuple[str, str, str, Any, str, int, str | None]] = [
    ("malformed JSON", "POST", "/v1/projects/{p}/buildings", b'{"name": "1', "operator", 400, "body"),
    ("body not an object", "POST", "/v1/projects/{p}/buildings", b'["8400.00"]', "operator", 422, "body"),
    ("unknown field", "POST", "/v1/projects/{p}/buildings", {**BUILDING, "height": "12.00"}, "operator", 422,
     "height"),
    ("float area", "POST", "/v1/projects/{p}/buildings", {**BUILDING, "floor_area_m2": 8400.0}, "operator", 422,
     "floor_area_m2"),
    ("zero area", "POST", "/v1/projects/{p}/buildings", {**BUILDING, "floor_area_m2": "0.00"}, "operator", 422,
     "floor_area_m2"),
    ("missing name", "POST", "/v1/projects/{p}/buildings", {"floor_area_m2": "1.00"}, "operator", 422, "name"),
    ("id not a slug", "POST", "/v1/projects/{p}/buildings", {**BUILDING, "building_id": "B 9"}, "operator", 422,
     "building_id"),
    ("duplicate building id", "POST", "/v1/projects/{p}/buildings", {**BUILDING, "building_id": "{b1}"},
     "operator", 409, "building_id"),
    ("unregistered project", "POST", "/v1/projects/nowhere-{p}/buildings", BUILDING, "admin", 404, "project_id"),
    ("float rent", "POST", "/v1/projects/{p}/leases", lease_body(monthly_rent=109200.0), "operator", 422,
     "monthly_rent"),
    ("three decimals", "POST", "/v1/projects/{p}/leases", lease_body(monthly_rent="109200.000"), "operator", 422,
     "monthly_rent"),
    ("zero rent", "POST", "/v1/projects/{p}/leases", lease_body(monthly_rent="0.00"), "operator", 422,
     "monthly_rent"),
    ("negative deposit", "POST", "/v1/projects/{p}/leases", lease_body(deposit="-1.00"), "operator", 422,
     "deposit"),
    ("missing tenant", "POST", "/v1/projects/{p}/leases", lease_body(tenant=...), "operator", 422, "tenant"),
    ("tenant without name", "POST", "/v1/projects/{p}/leases", lease_body(tenant={"uscc": None}), "operator", 422,
     "tenant.name"),
    ("bad USCC", "POST", "/v1/projects/{p}/leases", lease_body(tenant={"name": "x", "uscc": "123"}), "operator",
     422, "tenant.uscc"),
    ("not a calendar date", "POST", "/v1/projects/{p}/leases", lease_body(start_on="2025-02-30"), "operator", 422,
     "start_on"),
    ("ends before it starts", "POST", "/v1/projects/{p}/leases", lease_body(end_on="2024-12-31"), "operator", 422,
     "end_on"),
    ("ends the day it starts", "POST", "/v1/projects/{p}/leases", lease_body(end_on="2025-01-01"), "operator", 422,
     "end_on"),
    ("unknown billing", "POST", "/v1/projects/{p}/leases", lease_body(billing="weekly"), "operator", 422, "billing"),
    # Bounds (issue 13.2, 13.6): at most 20 years (end_on exclusive), and amounts that fit 999999999999.99.
    ("lease one day longer than 20 years", "POST", "/v1/projects/{p}/leases", lease_body(end_on="2045-01-02"),
     "operator", 422, "end_on"),
    ("lease from 2400 to 9999", "POST", "/v1/projects/{p}/leases",
     lease_body(start_on="2400-01-01", end_on="9999-01-01"), "operator", 422, "end_on"),
    ("annual invoice beyond the largest amount", "POST", "/v1/projects/{p}/leases",
     lease_body(monthly_rent="100000000000.00", billing="annual"), "operator", 422, "monthly_rent"),
    ("rent beyond the largest amount", "POST", "/v1/projects/{p}/leases", lease_body(monthly_rent="1000000000000.00"),
     "operator", 422, "monthly_rent"),
    ("payment beyond the largest amount", "POST", "/v1/leases/{lease}/payments",
     {**PAYMENT, "amount": "999999999999999.99"}, "operator", 422, "amount"),
    ("expense beyond the largest amount", "POST", "/v1/projects/{p}/expenses",
     {**EXPENSE, "amount": "1000000000000.00"}, "operator", 422, "amount"),
    ("overlapping lease", "POST", "/v1/projects/{p}/leases", lease_body(building_id="{b1}", start_on="2029-12-31"),
     "operator", 422, "building_id"),
    ("unknown building", "POST", "/v1/projects/{p}/leases", lease_body(building_id="nope-{p}"), "operator", 422,
     "building_id"),
    ("another project's building", "POST", "/v1/projects/{p}/leases", lease_body(building_id="{qb}"), "operator",
     422, "building_id"),
    ("duplicate lease id", "POST", "/v1/projects/{p}/leases", lease_body(lease_id="{lease}"), "operator", 409,
     "lease_id"),
    ("termination after the end", "POST", "/v1/leases/{lease}/terminate", {**TERMINATION, "end_on": "2030-01-02"},
     "operator", 422, "end_on"),
    ("termination on the first day", "POST", "/v1/leases/{lease}/terminate",
     {**TERMINATION, "end_on": "2025-01-01"}, "operator", 422, "end_on"),
    ("termination without reason", "POST", "/v1/leases/{lease}/terminate", {"end_on": "2026-01-01"}, "operator",
     422, "reason"),
    ("unknown lease", "POST", "/v1/leases/nope-{lease}/terminate", TERMINATION, "admin", 404, "lease_id"),
    ("invoices up to no date", "POST", "/v1/leases/{lease}/invoices", {"up_to": "2025-13-01"}, "operator", 422,
     "up_to"),
    ("invoices without up_to", "POST", "/v1/leases/{lease}/invoices", {}, "operator", 422, "up_to"),
    ("float payment", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "amount": 109200}, "operator", 422,
     "amount"),
    ("one decimal", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "amount": "109200.0"}, "operator", 422,
     "amount"),
    ("zero payment", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "amount": "0.00"}, "operator", 422,
     "amount"),
    ("the scenario's period field", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "period": "2025-02"},
     "operator", 422, "period"),
    ("payment without date", "POST", "/v1/leases/{lease}/payments", {"amount": "1.00"}, "operator", 422,
     "received_on"),
    ("unknown invoice", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "invoice_id": "{lease}:2031-01-01"},
     "operator", 422, "invoice_id"),
    ("invoice already paid", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "invoice_id": "{paid_invoice}"},
     "operator", 422, "invoice_id"),
    ("duplicate payment id", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "payment_id": "{payment}"},
     "operator", 409, "payment_id"),
    ("payment on unknown lease", "POST", "/v1/leases/nope-{lease}/payments", PAYMENT, "operator", 404, "lease_id"),
    ("category not a slug", "POST", "/v1/projects/{p}/expenses", {**EXPENSE, "category": "Property Tax"},
     "operator", 422, "category"),
    ("expense without date", "POST", "/v1/projects/{p}/expenses", {"category": "insurance", "amount": "1.00"},
     "operator", 422, "incurred_on"),
    ("negative expense", "POST", "/v1/projects/{p}/expenses", {**EXPENSE, "amount": "-60000.00"}, "operator", 422,
     "amount"),
    ("no token", "POST", "/v1/projects/{p}/expenses", EXPENSE, "", 401, "Authorization"),
    ("unknown token", "POST", "/v1/projects/{p}/expenses", EXPENSE, "bt_not-a-token", 401, "Authorization"),
    ("accountant", "POST", "/v1/projects/{p}/expenses", EXPENSE, "accountant", 403, "Authorization"),
    ("auditor writes", "POST", "/v1/leases/{lease}/payments", PAYMENT, "auditor", 403, "Authorization"),
    ("board writes", "POST", "/v1/leases/{lease}/invoices", {"up_to": "2026-01-01"}, "board", 403, "Authorization"),
    ("operator of another project", "POST", "/v1/projects/{p}/leases", lease_body(), "other", 403,
     "Authorization"),
    ("operator of another project's lease", "POST", "/v1/leases/{lease}/payments", PAYMENT, "other", 403,
     "Authorization"),
    ("oversized body", "POST", "/v1/projects/{p}/expenses", {**EXPENSE, "memo": "修" * 600_000}, "operator", 413,
     "body"),
    ("idempotency key reused with another body", "POST", "/v1/projects/{p}/expenses", EXPENSE, "operator+idem",
     409, "Idempotency-Key"),
    ("idempotency key too long", "POST", "/v1/projects/{p}/expenses", EXPENSE, "operator+longkey", 400,
     "Idempotency-Key"),
    ("unknown granularity", "GET", "/v1/projects/{p}/income?granularity=week", None, "operator", 422,
     "granularity"),
    ("income to before from", "GET", "/v1/projects/{p}/income?from=2025-02-01&to=2025-01-31", None, "operator", 422,
     "to"),
    ("arrears on no date", "GET", "/v1/projects/{p}/arrears?as_of=yesterday", None, "operator", 422, "as_of"),
    ("unknown query parameter", "GET", "/v1/projects/{p}/rent-roll?date=2025-01-01", None, "operator", 422, "date"),
    ("report of an unregistered project", "GET", "/v1/projects/nowhere-{p}/occupancy", None, "auditor", 404,
     "project_id"),
    ("unknown lease read", "GET", "/v1/leases/nope-{lease}", None, "auditor", 404, "lease_id"),
    # Ids match their pattern over the whole string; text holds no lone surrogate (issue 13.3, 13.4).
    ("building id with a trailing newline", "POST", "/v1/projects/{p}/buildings",
     {**BUILDING, "building_id": "b-new\n"}, "operator", 422, "building_id"),
    ("payment id with a trailing newline", "POST", "/v1/leases/{lease}/payments",
     {**PAYMENT, "payment_id": "pay-new\n"}, "operator", 422, "payment_id"),
    ("category with a trailing newline", "POST", "/v1/projects/{p}/expenses", {**EXPENSE, "category": "insurance\n"},
     "operator", 422, "category"),
    ("date with a trailing newline", "POST", "/v1/projects/{p}/expenses", {**EXPENSE, "incurred_on": "2025-03-31\n"},
     "operator", 422, "incurred_on"),
    ("lease id in the URL with a trailing newline", "POST", "/v1/leases/{lease}%0A/payments", PAYMENT, "operator",
     404, "lease_id"),
    ("lone surrogate in a tenant's name", "POST", "/v1/projects/{p}/leases",
     lease_body(tenant={"name": "台州\ud800"}), "operator", 422, "tenant.name"),
    ("lone surrogate in a memo", "POST", "/v1/projects/{p}/expenses", {**EXPENSE, "memo": "修\udc00"}, "operator",
     422, "memo"),
    ("lone surrogate in a termination's reason", "POST", "/v1/leases/{lease}/terminate",
     {**TERMINATION, "reason": "\ud83d搬迁"}, "operator", 422, "reason"),
    ("lone surrogate in a building's name", "POST", "/v1/projects/{p}/buildings", {**BUILDING, "name": "\udfff"},
     "operator", 422, "name"),
    ("lone surrogate in an invoice id", "POST", "/v1/leases/{lease}/payments", {**PAYMENT, "invoice_id": "\ud800"},
     "operator", 422, "invoice_id"),
]


def fill(value: Any, refs: Fixture) -> Any:
    """Put the fixture's ids into a table entry ("{lease}" → the real lease id)."""
    names = {k: v for k, v in vars(refs).items() if isinstance(v, str)}
    if isinstance(value, str):
        return value.format(**names) if "{" in value else value
    if isinstance(value, dict):
        return {k: fill(v, refs) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("case", "method", "url", "body", "who", "status", "field"), REFUSED,
                         ids=[row[0] for row in REFUSED])
def test_a_refused_request_names_the_field_and_publishes_nothing(
        world: World, refs: Fixture, case: str, method: str, url: str, body: Any, who: str, status: int,
        field: str | None) -> None:
    role, _, extra = who.partition("+")
    headers: dict[str, str] = {}
    if role == "admin":
        headers = bearer(world.token("admin"))
    elif role in refs.tokens:
        headers = bearer(refs.tokens[role])
    elif role:
        headers = bearer(role)
    if extra == "idem":
        headers["Idempotency-Key"] = refs.tokens["idem"]
    elif extra == "longkey":
        headers["Idempotency-Key"] = "k" * 201
    before = world.rentals_end()
    if isinstance(body, bytes):
        response = world.client.open(fill(url, refs), method=method, data=body, headers=headers,
                                     content_type="application/json")
    else:
        # json.dumps escapes what is not ASCII, so a lone surrogate travels as the client's "\\ud800" would.
        response = world.client.open(fill(url, refs), method=method, headers=headers,
                                     data=None if body is None else json.dumps(fill(body, refs)),
                                     content_type=None if body is None else "application/json")
    error = response.get_json()["error"]
    assert (response.status_code, error["field"]) == (status, field), error
    assert error["status"] == status and error["message"]
    assert world.rentals_end() == before, f"{case}: something was published"
