"""Anchoring in the services (issue 14, DESIGN §4), on a broker of the test's own: signed receipts in
every write answer, signed checkpoints at the configured cadence that agree with the log, keys on disk,
and a key rotation announced in a checkpoint signed by the old key.

The checkpoints are checked by ``kafka_helpers.verify_checkpoints``, which recomputes every head and
digest from the records themselves.
"""

from __future__ import annotations

import stat
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import bearer, running
from flask.testing import FlaskClient
from kafka_helpers import read_records, records_covered, verify_checkpoints

from services.cli import main as baotuan
from services.contracts import anchoring
from services.contracts.topics import CHECKPOINTS, LEDGER_ENTRIES, RECORD_TOPICS, owned_by
from services.devtools.broker import LocalBroker
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.service import EventService
from services.runtime.signing import default_key_path, next_key_path, retired_dir, rotate

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

LINES = [{"account": "101", "debit": "1.00"}, {"account": "504", "credit": "1.00"}]


def settings_for(broker: LocalBroker, root: Path, *, every: int = 10, seconds: float = 1.0) -> Settings:
    return Settings(bootstrap_servers=broker.bootstrap, data_dir=root / "data", tokens_file=root / "tokens.json",
                    request_timeout_s=15, checkpoint_every=every, checkpoint_seconds=seconds)


def post_entry(client: FlaskClient, token: str, village: str, **headers: str) -> dict[str, Any]:
    response = client.post(f"/v1/collectives/{village}/entries", json={"date": "2026-03-01", "lines": LINES},
                           headers=bearer(token, **headers))
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def wait_covered(svc: EventService, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while svc.health()["checkpoints"]["uncovered_events"]:
        assert time.monotonic() < deadline, "the last writes were never covered by a checkpoint"
        time.sleep(0.1)


def test_every_write_answer_carries_receipts_signed_by_the_services_key_that_match_the_log(
        fresh_broker: LocalBroker, tmp_path: Path) -> None:
    settings = settings_for(fresh_broker, tmp_path)
    admin = add_token(settings.tokens_file, name="admin", role="admin")  # type: ignore[arg-type]
    village = f"rc-{uuid.uuid4().hex[:6]}"
    with running(create_app, settings) as client:
        svc: EventService = client.application.extensions["baotuan_service"]
        key_file = default_key_path(settings.data_dir, "ledger")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # made on first start, for the service alone
        public = svc.key.public
        registered = client.post("/v1/collectives", json={"collective_id": village, "name": "村", "town": "镇"},
                                 headers=bearer(admin)).get_json()
        [receipt] = registered["receipts"]
        entry = post_entry(client, admin, village, **{"Idempotency-Key": "k-1"})
        again = post_entry(client, admin, village, **{"Idempotency-Key": "k-1"})
        assert again == entry  # a repeat gets the first answer, its receipts included (Ed25519 is deterministic)
        batch = client.post("/v1/entries/batch", headers=bearer(admin), json={"entries": [
            {"collective_id": village, "date": "2026-03-02", "lines": LINES}] * 3}).get_json()
        assert len(batch["receipts"]) == 3
        receipts = [receipt, *entry["receipts"], *batch["receipts"]]
        log = {(r.topic, r.partition, r.offset): r.envelope for r in read_records(fresh_broker.bootstrap,
                                                                                   LEDGER_ENTRIES)}
    for each in receipts:
        assert anchoring.verify(public, anchoring.receipt_payload(each), each["signature"])
        assert each["key_id"] == anchoring.key_id(public)
        record = log[(each["topic"], each["partition"], each["offset"])]
        assert (record["subject"], record["seq"], record["hash"]) == (each["subject"], each["seq"], each["hash"])
    forged = {**receipts[1], "offset": receipts[1]["offset"] + 1}
    assert not anchoring.verify(public, anchoring.receipt_payload(forged), forged["signature"])
    # A refused write answers no receipt.
    assert "receipts" not in client.post(f"/v1/collectives/{village}/entries", json={"date": "x"},
                                         headers=bearer(admin)).get_json()


def test_checkpoints_come_every_n_writes_and_soon_after_the_last_and_agree_with_the_log(
        fresh_broker: LocalBroker, tmp_path: Path) -> None:
    settings = settings_for(fresh_broker, tmp_path, every=10, seconds=1.0)
    admin = add_token(settings.tokens_file, name="admin", role="admin")  # type: ignore[arg-type]
    villages = [f"cp-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    with running(create_app, settings) as client:
        svc: EventService = client.application.extensions["baotuan_service"]
        for village in villages:
            client.post("/v1/collectives", json={"collective_id": village, "name": "村", "town": "镇"},
                        headers=bearer(admin))
        for i in range(32):
            post_entry(client, admin, villages[i % 3])
        wait_covered(svc)
        public = svc.key.public
        found = verify_checkpoints(fresh_broker.bootstrap, "ledger", public)
    checkpoints = found[LEDGER_ENTRIES]
    # 35 records: one checkpoint after every 10 writes, and one for the last 5 a second later.
    assert len(checkpoints) == 4
    records = read_records(fresh_broker.bootstrap, LEDGER_ENTRIES)
    totals = [records_covered(records, c) for c in checkpoints]
    assert totals == [10, 20, 30, 35]
    assert sum(len(p["heads"]) for p in checkpoints[-1]["partitions"]) == 3  # every village moved in the last 5


def test_a_rotation_is_announced_by_the_old_key_and_the_new_key_signs_from_then_on(
        fresh_broker: LocalBroker, tmp_path: Path) -> None:
    settings = settings_for(fresh_broker, tmp_path, every=5, seconds=0.5)
    admin = add_token(settings.tokens_file, name="admin", role="admin")  # type: ignore[arg-type]
    village = f"rot-{uuid.uuid4().hex[:6]}"
    with running(create_app, settings) as client:
        svc: EventService = client.application.extensions["baotuan_service"]
        client.post("/v1/collectives", json={"collective_id": village, "name": "村", "town": "镇"},
                    headers=bearer(admin))
        wait_covered(svc)
        old = svc.key.public
        key_file = default_key_path(settings.data_dir, "ledger")
        new = rotate(key_file)
        assert next_key_path(key_file).exists()
        post_entry(client, admin, village)
        wait_covered(svc)
        after = post_entry(client, admin, village)
        wait_covered(svc)
    announcing = [r.envelope["data"] for r in read_records(fresh_broker.bootstrap, CHECKPOINTS)
                  if r.envelope["data"]["next_key"] is not None]
    # One checkpoint per topic of record the ledger writes (entries, investments, accounts), each announcing the key.
    assert len(announcing) == len([t for t in owned_by("ledger") if t in RECORD_TOPICS]) == 3
    for data in announcing:
        assert data["key_id"] == anchoring.key_id(old)
        assert anchoring.verify(old, anchoring.checkpoint_payload(data), data["signature"])
        assert data["next_key"] == {"key_id": anchoring.key_id(new), "public_key": anchoring.public_key_text(new)}
    [receipt] = after["receipts"]
    assert receipt["key_id"] == anchoring.key_id(new)
    assert anchoring.verify(new, anchoring.receipt_payload(receipt), receipt["signature"])
    assert not next_key_path(key_file).exists()
    assert [p.name for p in retired_dir(key_file).iterdir()] == [f"ledger-{anchoring.key_id(old)}.pem"]
    # The export gives the auditor both keys, and says which signs now.
    out = tmp_path / "pinned"
    done = CliRunner().invoke(baotuan, ["keys", "export", "--output", str(out), "--data-dir", str(settings.data_dir)])
    assert done.exit_code == 0, done.output
    assert anchoring.key_id(anchoring.load_public_key_pem((out / "ledger.pem").read_bytes())) == anchoring.key_id(new)
    assert (out / f"ledger-{anchoring.key_id(old)}.pem").exists()


def test_a_service_stopped_between_announcing_a_key_and_switching_to_it_switches_when_it_starts(
        fresh_broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(fresh_broker, tmp_path, every=1, seconds=0.5)
    admin = add_token(settings.tokens_file, name="admin", role="admin")  # type: ignore[arg-type]
    village = f"crash-{uuid.uuid4().hex[:6]}"
    key_file = default_key_path(settings.data_dir, "ledger")
    with running(create_app, settings) as client:
        svc: EventService = client.application.extensions["baotuan_service"]
        client.post("/v1/collectives", json={"collective_id": village, "name": "村", "town": "镇"},
                    headers=bearer(admin))
        wait_covered(svc)
        old = svc.key.key_id
        new = anchoring.key_id(rotate(key_file))

        def crash(announced: str) -> None:  # the process dies right after the announcing checkpoint
            raise OSError("killed")

        monkeypatch.setattr(svc.key, "complete_rotation", crash)
        response = client.post(f"/v1/collectives/{village}/entries", json={"date": "2026-03-01", "lines": LINES},
                               headers=bearer(admin))
        # Written; its receipt is signed before the announcement is folded (201), or, after it, not at all: the
        # process that cannot switch keys never signs with the replaced one (503).
        assert response.status_code in (201, 503), response.get_json()
        wait_covered(svc)
        assert svc.key.key_id == old and next_key_path(key_file).exists()
        wait_for_fold = time.monotonic() + 20
        while svc.store.successor(old) is None:
            assert time.monotonic() < wait_for_fold, "the announcing checkpoint was never folded"
            time.sleep(0.1)
        again = client.post(f"/v1/collectives/{village}/entries", json={"date": "2026-03-01", "lines": LINES},
                            headers=bearer(admin))
        assert again.status_code == 503, again.get_json()  # the replaced key signs nothing, so nothing is written
    monkeypatch.undo()
    with running(create_app, settings) as client:
        svc = client.application.extensions["baotuan_service"]
        assert svc.key.key_id == new  # the announced key signs from the start: the old one never again
        [receipt] = post_entry(client, admin, village)["receipts"]
        assert receipt["key_id"] == new
        wait_covered(svc)
    signers = [r.envelope["data"]["key_id"] for r in read_records(fresh_broker.bootstrap, CHECKPOINTS)]
    announced_at = max(i for i, r in enumerate(read_records(fresh_broker.bootstrap, CHECKPOINTS))
                       if r.envelope["data"]["next_key"] is not None)
    assert set(signers[announced_at + 1:]) == {new}
