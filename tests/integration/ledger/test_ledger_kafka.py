"""The ledger and Kafka: events on the topics with an unbroken hash chain, entries posted from the
dividends topic, and a projection deleted and rebuilt from the topics with identical balances."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import bearer, no_fold, running
from flask.testing import FlaskClient
from kafka_helpers import read_records

from services.contracts import envelope as env
from services.contracts.topics import DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS
from services.contracts.validation import validate_envelope
from services.ledger.app import create_app
from services.ledger.domain import local_date
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import end_offsets
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

pytestmark = pytest.mark.kafka

Token = Callable[..., str]


def created(client: FlaskClient, tok: str, path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post(path, json=body, headers=bearer(tok, **headers))
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def ok(client: FlaskClient, tok: str, path: str) -> dict[str, Any]:
    response = client.get(path, headers=bearer(tok))
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def ledger_of(client: FlaskClient) -> EventService:
    svc: EventService = client.application.extensions["baotuan_service"]
    return svc


def wait_for_event(svc: EventService, event_id: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not svc.store.has_event(event_id):
        assert time.monotonic() < deadline, f"the ledger never posted {event_id}"
        time.sleep(0.05)


@contextmanager
def dividends_writer(settings: Settings, folder: Path) -> Iterator[EventService]:
    """A stand-in for the dividends service: the single writer of baotuan.dividends.v1 in these tests."""
    store = ProjectionStore(folder / "dividends-stand-in.sqlite", "")
    svc = EventService(name="dividends", settings=settings, store=store, fold=no_fold, inputs=[],
                       owned=[DIVIDENDS])
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def publish(svc: EventService, *events: NewEvent) -> list[dict[str, Any]]:
    with svc.writing():
        return svc.publish(list(events), actor="board:test")


def distribution(project_id: str, distribution_id: str,
                 payouts: dict[str, tuple[str, str]]) -> list[NewEvent]:
    """DistributionDeclared and one DividendAllocated per investor: {investor_id: (investor_type, payout)}."""
    declared = {
        "distribution_id": distribution_id, "project_id": project_id, "period_start": "2025-01-01",
        "period_end": "2025-12-31",
        "policy": {"project_id": project_id, "management_fee_rate": "0.05", "tax_rate": "0.12",
                   "payout_ratio": "1.00", "guaranteed_rate": "0", "guarantee_until": None, "guarantor_id": None},
        "gross_rent": "1000000.00", "expenses": "0.00", "management_fee": "50000.00", "tax": "120000.00",
        "net_profit": "830000.00", "pool": "830000.00", "retained": "0.00", "total_top_up": "0.00",
        "total_payout": "830000.00", "total_capital_days": "1.00", "input_positions": {}}
    events = [NewEvent("DistributionDeclared", project_id, declared)]
    for investor_id, (investor_type, payout) in payouts.items():
        events.append(NewEvent("DividendAllocated", project_id, {
            "distribution_id": distribution_id, "project_id": project_id, "investor_id": investor_id,
            "investor_type": investor_type, "capital_days": "1.00", "pro_rata": payout, "guaranteed_floor": "0.00",
            "top_up": "0.00", "payout": payout}))
    return events


def approval(project_id: str, distribution_id: str) -> NewEvent:
    return NewEvent("DistributionApproved", project_id, {"distribution_id": distribution_id,
                                                         "project_id": project_id, "approved_by": "board:jinqing"})


def payment(project_id: str, distribution_id: str, investor_id: str, amount: str, paid_on: str) -> NewEvent:
    return NewEvent("DividendPaid", project_id, {
        "payment_id": f"pay-{investor_id}", "distribution_id": distribution_id, "project_id": project_id,
        "investor_id": investor_id, "amount": amount, "paid_on": paid_on, "bank_reference": "农商银行 0001"})


def balances(client: FlaskClient, tok: str, collective_id: str, as_of: str) -> dict[str, str]:
    tb = ok(client, tok, f"/v1/collectives/{collective_id}/trial-balance?as_of={as_of}")
    return {row["code"]: row["balance"] for row in tb["accounts"]}


def register_village_and_park(client: FlaskClient, admin: str, village: str, park: str) -> None:
    created(client, admin, "/v1/collectives", {"collective_id": village, "name": "联盟村股份经济合作社",
                                               "town": "金清镇", "alliances": ["金清镇乡村共富党建联盟"]})
    created(client, admin, "/v1/projects", {"project_id": park, "name": "路桥滨海产业园", "kind": "industrial_park",
                                            "town": "金清镇", "operator": "路桥滨海产业园运营有限公司"})


# --------------------------------------------------------------------------------------


def test_posted_events_are_on_the_topics_with_an_unbroken_hash_chain(
        settings: Settings, token: Token, unique: str) -> None:
    village, park = f"lk-{unique}-lianmeng", f"lk-{unique}-park"
    admin = token("admin")
    with running(create_app, settings) as client:
        register_village_and_park(client, admin, village, park)
        accountant = token("accountant", [village])
        entry = created(client, accountant, f"/v1/collectives/{village}/entries", {
            "date": "2024-03-15", "memo": "飞地抱团项目一次性发展资金",
            "lines": [{"account": "102", "debit": "300000.00"}, {"account": "503", "credit": "300000.00"}]},
            **{"Idempotency-Key": f"dev-fund-{unique}"})
        land = created(client, admin, f"/v1/projects/{park}/investments", {
            "kind": "land", "investor_id": village, "area_mu": "14.2000", "price_per_mu": "250000.00",
            "effective_on": "2024-03-01"})

    books = read_records(settings.bootstrap_servers, LEDGER_ENTRIES, key=village)
    investments = read_records(settings.bootstrap_servers, LEDGER_INVESTMENTS, key=park)
    assert [r.envelope["type"] for r in books] == ["CollectiveRegistered", "EntryPosted", "EntryPosted"]
    assert [r.envelope["type"] for r in investments] == ["ProjectRegistered", "LandShareInvested"]
    for topic, stream in ((LEDGER_ENTRIES, books), (LEDGER_INVESTMENTS, investments)):
        verifier = env.ChainVerifier()
        for r in stream:
            envelope = r.envelope
            validate_envelope(envelope, strict=True)
            verifier.check(topic, envelope)
            assert r.headers["ce_id"].decode() == envelope["event_id"]
            assert r.headers["ce_type"].decode() == envelope["type"]
            assert r.headers["ce_source"] == b"ledger"
    assert [r.envelope["seq"] for r in books] == [1, 2, 3]
    manual, automatic = books[1].envelope, books[2].envelope
    assert manual["data"]["entry_id"] == entry["entry_id"]
    assert manual["data"]["idempotency_key"] == f"dev-fund-{unique}"
    assert manual["data"]["lines"] == entry["lines"]
    assert manual["actor"].startswith("accountant:")
    invested = investments[1].envelope
    assert invested["data"]["valuation"] == "3550000.00"
    assert automatic["event_id"] == env.derived_event_id(invested["event_id"], "entry")
    assert automatic["causation_id"] == invested["event_id"]
    assert automatic["actor"] == "system:ledger"
    assert automatic["data"]["entry_id"] == land["entry_id"]
    assert automatic["data"]["origin"] == {"kind": "investment", "ref": land["investment_id"]}


def test_dividends_approved_and_paid_post_112_then_102_in_the_village_books(
        settings: Settings, token: Token, unique: str, tmp_path: Path) -> None:
    village, park, company = f"lk-{unique}-lianmeng", f"lk-{unique}-park", f"lk-{unique}-soe"
    distribution_id = f"lk-{unique}-2025"
    admin = token("admin")
    with running(create_app, settings) as client, dividends_writer(settings, tmp_path) as dividends:
        ledger = ledger_of(client)
        register_village_and_park(client, admin, village, park)
        publish(dividends, *distribution(park, distribution_id, {village: ("collective", "520000.00"),
                                                                 company: ("company", "310000.00")}))
        [approved] = publish(dividends, approval(park, distribution_id))
        wait_for_event(ledger, env.derived_event_id(approved["event_id"], village))
        approved_on = local_date(approved["occurred_at"])
        paid_on = (approved_on + dt.timedelta(days=1)).isoformat()
        [paid] = publish(dividends, payment(park, distribution_id, village, "520000.00", paid_on))
        wait_for_event(ledger, env.derived_event_id(paid["event_id"], "entry"))

        before = balances(client, admin, village, (approved_on - dt.timedelta(days=1)).isoformat())
        on_approval = balances(client, admin, village, approved_on.isoformat())
        on_payment = balances(client, admin, village, paid_on)
        entries = ok(client, admin, f"/v1/collectives/{village}/entries")["items"]
        ledger.sync([DIVIDENDS])
        # Only the village keeps books here: the company's allocation posts nothing anywhere.
        assert ledger.store.query("SELECT 1 FROM entries WHERE collective_id=?", (company,)) == []

    assert before == {}
    assert on_approval == {f"112/{park}": "520000.00", f"502/{park}": "520000.00"}
    assert on_payment == {"102": "520000.00", f"112/{park}": "0.00", f"502/{park}": "520000.00"}
    assert [(e["origin"]["kind"], e["origin"]["ref"], e["date"]) for e in entries] == [
        ("dividend", distribution_id, approved_on.isoformat()), ("payment", f"pay-{village}", paid_on)]
    assert entries[0]["lines"] == [{"account": f"112/{park}", "debit": "520000.00"},
                                   {"account": f"502/{park}", "credit": "520000.00"}]
    assert entries[1]["lines"] == [{"account": "102", "debit": "520000.00"},
                                   {"account": f"112/{park}", "credit": "520000.00"}]


def snapshot(client: FlaskClient, tok: str, villages: list[str], projects: list[str],
             days: list[str]) -> dict[str, Any]:
    """Everything a caller can read about some villages and projects, at some dates."""
    out: dict[str, Any] = {"collectives": ok(client, tok, "/v1/collectives")["items"],
                           "income": ok(client, tok, "/v1/reports/village-income?year=2025&town=快照镇")}
    for village in villages:
        out[village] = {
            "entries": ok(client, tok, f"/v1/collectives/{village}/entries")["items"],
            "periods": ok(client, tok, f"/v1/collectives/{village}/periods")["items"],
            "sheet": ok(client, tok, f"/v1/collectives/{village}/balance-sheet?year=2025"),
            "statement": ok(client, tok, f"/v1/collectives/{village}/income-statement?year=2025"),
            **{day: ok(client, tok, f"/v1/collectives/{village}/trial-balance?as_of={day}") for day in days},
        }
    for project in projects:
        out[project] = {day: ok(client, tok, f"/v1/projects/{project}/register?as_of={day}") for day in days}
    return out


def test_a_deleted_projection_is_rebuilt_from_the_topics_with_identical_balances_and_nothing_posted_twice(
        settings: Settings, token: Token, unique: str, tmp_path: Path) -> None:
    villages = [f"lk-{unique}-v1", f"lk-{unique}-v2"]
    park, company, distribution_id = f"lk-{unique}-park", f"lk-{unique}-soe", f"lk-{unique}-2025"
    days = ["2024-02-29", "2024-12-31", "2025-06-30", "2025-12-31", "2099-12-31"]
    admin = token("admin")
    with running(create_app, settings) as client, dividends_writer(settings, tmp_path) as dividends:
        ledger = ledger_of(client)
        for village in villages:
            created(client, admin, "/v1/collectives", {"collective_id": village, "name": "村股份经济合作社",
                                                       "town": "快照镇", "alliances": [f"联盟{unique}"]})
        created(client, admin, "/v1/investors", {"investor_id": company, "name": "国资公司",
                                                 "investor_type": "company"})
        created(client, admin, "/v1/projects", {"project_id": park, "name": "产业园", "kind": "industrial_park",
                                                "town": "快照镇", "operator": "运营公司"})
        invest = f"/v1/projects/{park}/investments"
        created(client, admin, invest, {"kind": "land", "investor_id": villages[0], "area_mu": "14.2000",
                                        "price_per_mu": "250000.00", "effective_on": "2024-03-01"})
        created(client, admin, invest, {"kind": "cash", "investor_id": villages[1], "amount": "1000000.00",
                                        "effective_on": "2024-03-01"})
        created(client, admin, invest, {"kind": "cash", "investor_id": company, "amount": "50000000.00",
                                        "effective_on": "2024-03-01"})
        created(client, admin, f"/v1/projects/{park}/withdrawals", {
            "investor_id": villages[1], "amount": "250000.00", "effective_on": "2025-01-01", "reason": "部分退出"})
        for village in villages:
            fund = created(client, admin, f"/v1/collectives/{village}/entries", {
                "date": "2024-03-15", "lines": [{"account": "102", "debit": "300000.00"},
                                                {"account": "503", "credit": "300000.00"}]})
            created(client, admin, f"/v1/collectives/{village}/entries/{fund['entry_id']}/reverse",
                    {"date": "2024-03-16", "reason": "记错科目"})
            created(client, admin, f"/v1/collectives/{village}/entries", {
                "date": "2025-06-30", "lines": [{"account": "102", "debit": "123456.78"},
                                                {"account": "501", "credit": "123456.78"}]})
            created(client, admin, f"/v1/collectives/{village}/periods", {"period": "2024-03"})
        publish(dividends, *distribution(park, distribution_id, {villages[0]: ("collective", "400000.00"),
                                                                 villages[1]: ("collective", "30000.00"),
                                                                 company: ("company", "400000.00")}))
        [approved] = publish(dividends, approval(park, distribution_id))
        [paid] = publish(dividends, payment(park, distribution_id, villages[0], "400000.00", "2099-01-01"))
        for village in villages:
            wait_for_event(ledger, env.derived_event_id(approved["event_id"], village))
        wait_for_event(ledger, env.derived_event_id(paid["event_id"], "entry"))
        original = snapshot(client, admin, villages, [park], days)

    written = end_offsets(settings.bootstrap_servers, [LEDGER_ENTRIES, LEDGER_INVESTMENTS])
    projection = settings.data_dir / "ledger.sqlite"
    for path in (projection, Path(f"{projection}-wal"), Path(f"{projection}-shm")):
        path.unlink(missing_ok=True)
    assert not projection.exists()

    with running(create_app, settings) as client:
        ledger = ledger_of(client)
        rebuilt = snapshot(client, admin, villages, [park], days)
        time.sleep(0.5)  # give the reactor a chance to (wrongly) post anything a second time
        assert ledger.pending_derived() == 0

    assert rebuilt == original
    assert end_offsets(settings.bootstrap_servers, [LEDGER_ENTRIES, LEDGER_INVESTMENTS]) == written
    # And the books say what they should: 141 at the valuation, the reversed fund at zero, and the
    # dividend (approved today) received in 2099.
    assert {r["code"]: r["balance"] for r in original[villages[0]]["2025-12-31"]["accounts"]} == {
        "102": "123456.78", f"141/{park}": "3550000.00", "311": "3550000.00", "501": "123456.78", "503": "0.00"}
    assert {r["code"]: r["balance"] for r in original[villages[0]]["2099-12-31"]["accounts"]} == {
        "102": "523456.78", f"112/{park}": "0.00", f"141/{park}": "3550000.00", "311": "3550000.00",
        "501": "123456.78", "503": "0.00", f"502/{park}": "400000.00"}
    assert {r["code"]: r["balance"] for r in original[villages[1]]["2099-12-31"]["accounts"]} == {
        "102": "-626543.22", f"112/{park}": "30000.00", f"141/{park}": "750000.00", "501": "123456.78",
        "503": "0.00", f"502/{park}": "30000.00"}
    assert [i["capital"] for i in original[park]["2025-12-31"]["items"]] == ["50000000.00", "3550000.00",
                                                                           "750000.00"]


def test_closing_a_month_posts_the_automatic_entries_owed_in_it_first_never_after(
        kafka_bootstrap: str, tmp_path: Path, token: Token, unique: str) -> None:
    """Issue 13.8, the interleaving forced: a collective's investment is folded (its entry 141/102 owed,
    dated in March) while the reactor is held back; the accountant closes March before the reactor
    posts it. The owed entry must be posted at its own date before the month closes — never inside
    the closed month after it."""
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=tmp_path / "data",
                        tokens_file=tmp_path / "tokens.json", request_timeout_s=3)
    admin = add_token(settings.tokens_file, name="admin", role="admin")  # type: ignore[arg-type]
    village, park = f"close-{unique}-v", f"close-{unique}-p"
    with running(create_app, settings) as client:
        svc: EventService = client.application.extensions["baotuan_service"]
        created(client, admin, "/v1/collectives", {"collective_id": village, "name": "村", "town": "镇"})
        created(client, admin, "/v1/projects", {"project_id": park, "name": "园", "kind": "other", "town": "镇",
                                                "operator": "运营"})
        # Hold the reactor back: the investment's entry stays owed.
        svc._halt.set()
        with svc.store.applied:
            svc.store.applied.notify_all()
        svc._reactor.join(timeout=10)
        assert not svc._reactor.is_alive()
        svc._halt.clear()
        created(client, admin, f"/v1/projects/{park}/investments",
                {"kind": "cash", "investor_id": village, "amount": "1000.00", "effective_on": "2026-03-10"})
        assert svc.pending_derived() == 1
        created(client, admin, f"/v1/collectives/{village}/periods", {"period": "2026-03"})
        # Now let the reactor run again, as it would have in the real race.
        reactor = threading.Thread(target=svc._react, daemon=True)
        reactor.start()
        deadline = time.monotonic() + 15
        while svc.pending_derived() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.pending_derived() == 0
        stream = [r.envelope for r in read_records(kafka_bootstrap, LEDGER_ENTRIES, key=village)]
        svc._halt.set()
    kinds = [(e["type"], e["data"].get("date") or e["data"].get("period")) for e in stream]
    closed_at = kinds.index(("PeriodClosed", "2026-03"))
    posted = [i for i, (kind, day) in enumerate(kinds) if kind == "EntryPosted"]
    assert [kinds[i][1] for i in posted] == ["2026-03-10"]  # at its own date …
    assert posted[0] < closed_at  # … and in the books before March was closed
