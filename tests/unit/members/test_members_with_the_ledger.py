"""The members service beside the real ledger on one in-memory log: it knows the collectives the ledger
registers, and the ledger folds baotuan.members.v1 without a dead letter (DESIGN §11: the ledger reads it)."""

from __future__ import annotations

from conftest import bearer, running

from services.contracts.topics import MEMBERS
from services.ledger.app import create_app as ledger_app
from services.members.app import create_app as members_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog


def test_the_ledger_and_the_members_service_share_a_log(memory_log: InMemoryLog, memory_settings: Settings) -> None:
    assert memory_settings.tokens_file is not None
    admin = bearer(add_token(memory_settings.tokens_file, name="admin", role="admin"))
    with running(ledger_app, memory_settings, log=memory_log) as ledger, \
            running(members_app, memory_settings, log=memory_log) as members:
        made = ledger.post("/v1/collectives", headers=admin, json={"collective_id": "jinqing-lianmeng",
                                                                   "name": "联盟村", "town": "金清镇"})
        assert made.status_code == 201, made.get_json()
        charter = members.put("/v1/collectives/jinqing-lianmeng/charter", headers=admin, json={
            "share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"}], "adopted_on": "2025-01-01"})
        assert charter.status_code == 200, charter.get_json()
        household = members.post("/v1/collectives/jinqing-lianmeng/households", headers=admin, json={
            "household_id": "hu-1", "head_name": "张小明", "registered_on": "2025-01-01",
            "holdings": {"population": "3"}})
        assert household.status_code == 201, household.get_json()
        # a plan needs the year closed in the ledger's books
        plan = members.post("/v1/collectives/jinqing-lianmeng/plans", headers=admin, json={
            "year": 2025, "reserve_rate": "0.10", "members_total": "0.00", "record_date": "2026-03-31"})
        assert plan.status_code == 409 and plan.get_json()["error"]["code"] == "year_not_closed"

        service = ledger.application.extensions["baotuan_service"]
        positions = service.sync([MEMBERS])
        assert len(memory_log.records(MEMBERS)) == 3  # CharterSet, HouseholdRegistered, HoldingsSet
        assert {(MEMBERS, p): n for p, n in positions[MEMBERS].items()} == memory_log.end_offsets([MEMBERS])
        assert service.health()["dead_letters"] == 0
        unknown = members.put("/v1/collectives/jinqing-nowhere/charter", headers=admin, json={
            "share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"}], "adopted_on": "2025-01-01"})
        assert unknown.status_code == 404
