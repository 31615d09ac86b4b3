"""The members service on a real broker (DESIGN §11): register, the year closed in the books, propose, approve,
pay; the records on baotuan.members.v1; a members service rebuilt from the broker's topics has the same state;
and the ledger reads the members topic without a dead letter.

The villages' books come from a stand-in ledger writer (tests/members_world.py: CollectiveRegistered and the
year-end close, as the ledger posts them); the real ledger runs beside it with a data directory of its own, as
a reader of baotuan.members.v1. The rules and refusals are tested on the in-memory log
(tests/unit/members/test_members_api.py). Ids are the test's own: the session broker is shared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import running
from kafka_helpers import read_records
from members_world import world_on

from services.contracts.topics import MEMBERS
from services.contracts.validation import read_envelope
from services.ledger.app import create_app as ledger_app
from services.members.app import create_app as members_app
from services.runtime.config import Settings

pytestmark = pytest.mark.kafka


def test_a_plan_from_register_to_payment_on_kafka_and_a_rebuild_gives_the_same_state(
        kafka_bootstrap: str, tmp_path: Path, unique: str) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=tmp_path / "data",
                        tokens_file=tmp_path / "tokens.json", request_timeout_s=20)
    ledger_settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=tmp_path / "ledger-data",
                               tokens_file=tmp_path / "tokens.json", request_timeout_s=20)
    cid = f"v-{unique}"
    with world_on(settings, tmp_path) as world, running(ledger_app, ledger_settings) as ledger:
        world.village(cid)
        world.transfer(cid, "hu-3", "hu-2", "farm-age", "4", "2025-12-01")  # weights 8, 4, 8 on the record date
        plan = world.propose(cid, welfare="1000.00", members_total="7000.01")
        assert [(a["household_id"], a["amount"]) for a in plan["allocations"]] == [
            ("hu-1", "2800.01"), ("hu-2", "1400.00"), ("hu-3", "2800.00")]  # the fen to the smaller id
        world.approve(cid, "plan-2025")
        for allocation in plan["allocations"]:
            world.pay(cid, "plan-2025", allocation["household_id"], allocation["amount"])
        acc = world.accountant(cid)
        paths = [f"/v1/collectives/{cid}/plans/plan-2025", f"/v1/collectives/{cid}/plans",
                 f"/v1/collectives/{cid}/households?on=2026-03-31", f"/v1/collectives/{cid}/households/hu-2",
                 f"/v1/collectives/{cid}/charter", f"/v1/collectives/{cid}/plans/plan-2025/notice"]
        before = {path: world.client.get(path, headers=acc).get_json() for path in paths}
        assert before[paths[0]]["status"] == "paid"

        # the records of the collective's stream on baotuan.members.v1, in order, one chain
        records = [read_envelope(r.envelope) for r in read_records(kafka_bootstrap, MEMBERS, key=cid)]
        assert [e["type"] for e in records] == [
            "CharterSet", *["HouseholdRegistered", "HoldingsSet"] * 3, "SharesTransferred", "PlanProposed",
            *["HouseholdAllocated"] * 3, "PlanApproved", *["HouseholdDividendPaid"] * 3]
        assert [e["seq"] for e in records] == list(range(1, len(records) + 1))
        assert all(e["source"] == "members" and e["subject"] == cid for e in records)
        approved = next(e for e in records if e["type"] == "PlanApproved")["data"]
        assert (approved["reserve"], approved["welfare"], approved["members_total"]) == ("1000.00", "1000.00",
                                                                                         "7000.01")

        # the ledger consumed the members topic, and nothing of it went to the dead letters
        ledger_service = ledger.application.extensions["baotuan_service"]
        ledger_service.sync([MEMBERS])
        assert ledger_service.health()["dead_letters"] == 0

    # a members service with its projection deleted rebuilds the same state from the broker's topics
    for leftover in settings.data_dir.glob("members.sqlite*"):
        leftover.unlink()
    with running(members_app, settings) as rebuilt:
        after = {path: rebuilt.get(path, headers=acc).get_json() for path in paths}
    assert after == before
