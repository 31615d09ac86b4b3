"""An answered write is readable to every reader of the log at once (issue 16, folding at commit): the ledger
folds what it committed itself, but Kafka answers a commit before its markers make the records readable
(``read_committed``), so the answer waits until the service's follower has read past them. Right after each
answer, the last stable offset of the entry's partition — what any other service's reader sees — is past it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import bearer, running
from kafka import KafkaConsumer, TopicPartition

from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.app import create_app
from services.runtime.config import Settings

pytestmark = pytest.mark.kafka


def test_each_answered_post_is_past_the_last_stable_offset_when_answered(
        settings: Settings, token: Callable[..., str], unique: str) -> None:
    village = f"ra-{unique}-village"
    admin = token("admin")
    reader = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, isolation_level="read_committed",
                           enable_auto_commit=False, group_id=None)
    try:
        with running(create_app, settings) as client:
            registered = client.post("/v1/collectives", headers=bearer(admin), json={
                "collective_id": village, "name": "联盟村", "town": "金清镇", "alliances": []})
            assert registered.status_code == 201, registered.get_json()
            service = client.application.extensions["baotuan_service"]
            folded_at_commit = 0
            original = service.projector.fold_committed

            def counting(records, acks):  # type: ignore[no-untyped-def]
                nonlocal folded_at_commit
                done = original(records, acks)
                folded_at_commit += bool(done)
                return done

            service.projector.fold_committed = counting
            for n in range(30):
                answered = client.post(f"/v1/collectives/{village}/entries", headers=bearer(admin), json={
                    "date": "2026-03-15", "memo": f"第{n}笔",
                    "lines": [{"account": "102", "debit": "1.00"}, {"account": "503", "credit": "1.00"}]})
                assert answered.status_code == 201, answered.get_json()
                [receipt] = [r for r in answered.get_json()["receipts"] if r["topic"] == LEDGER_ENTRIES]
                place = TopicPartition(LEDGER_ENTRIES, receipt["partition"])
                stable = reader.end_offsets([place])[place]  # read_committed: the last stable offset
                assert stable > receipt["offset"], f"post {n} answered before its record was readable"
            assert folded_at_commit >= 25  # the ledger did fold them itself (the premise of this test)
    finally:
        reader.close()
