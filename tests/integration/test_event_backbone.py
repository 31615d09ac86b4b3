"""The event backbone on a real broker: publish, read back in order, verify the chain, survive restarts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka_helpers import read_records

from services.contracts import envelope as env
from services.contracts.codec import canonical
from services.contracts.topics import DEADLETTER, LEDGER_ENTRIES, TOPICS
from services.contracts.validation import validate_envelope
from services.devtools.broker import LocalBroker
from services.runtime.config import Settings
from services.runtime.kafka_io import ensure_topics
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

pytestmark = pytest.mark.kafka

SCHEMA = "CREATE TABLE IF NOT EXISTS collectives (collective_id TEXT PRIMARY KEY, name TEXT, applied INTEGER);"


def fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    if envelope["type"] == "CollectiveRegistered":
        d = envelope["data"]
        conn.execute("INSERT INTO collectives VALUES (?,?,1) ON CONFLICT(collective_id) DO UPDATE "
                     "SET applied = applied + 1", (d["collective_id"], d["name"]))


def make_service(bootstrap: str, tmp_path: Path, name: str = "ledger") -> EventService:
    settings = Settings(bootstrap_servers=bootstrap, data_dir=tmp_path, tokens_file=None, request_timeout_s=15)
    store = ProjectionStore(tmp_path / f"{name}.sqlite", SCHEMA)
    return EventService(name=name, settings=settings, store=store, fold=fold, inputs=[], owned=[LEDGER_ENTRIES])


def register(svc: EventService, collective_id: str, name: str = "联盟村") -> dict[str, Any]:
    with svc.writing():
        [sealed] = svc.publish([NewEvent("CollectiveRegistered", collective_id,
                                         {"collective_id": collective_id, "name": name, "town": "金清镇",
                                          "alliances": []})], actor="admin:test")
    return sealed


def test_admin_creates_every_topic_once_with_infinite_retention(kafka_bootstrap: str) -> None:
    ensure_topics(kafka_bootstrap)
    assert ensure_topics(kafka_bootstrap) == []  # second run: nothing new, no error
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert set(TOPICS) <= set(admin.list_topics())
        [resp] = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, LEDGER_ENTRIES)])
        configs = {c[0]: c[1] for c in resp.to_object()["resources"][0]["configs"]} if hasattr(
            resp, "to_object") else {}
        if configs:
            assert configs["retention.ms"] == "-1"
    finally:
        admin.close()


def test_published_envelopes_read_back_in_order_with_an_unbroken_chain(kafka_bootstrap: str, tmp_path: Path,
                                                                      unique: str) -> None:
    svc = make_service(kafka_bootstrap, tmp_path)
    svc.start()
    try:
        subject = f"village-{unique}"
        sent = [register(svc, subject, f"村{i}") for i in range(5)]
    finally:
        svc.stop()
    assert [s["seq"] for s in sent] == [1, 2, 3, 4, 5]
    mine = read_records(kafka_bootstrap, LEDGER_ENTRIES, key=subject)
    assert [r.envelope["event_id"] for r in mine] == [s["event_id"] for s in sent]
    verifier = env.ChainVerifier()
    for r in mine:
        envelope = r.envelope
        validate_envelope(envelope, strict=True)
        verifier.check(LEDGER_ENTRIES, envelope)
        assert r.headers["ce_id"].decode() == envelope["event_id"]
        assert r.headers["ce_type"] == b"CollectiveRegistered"
        assert r.headers["ce_specversion"] == b"1.0"
        assert r.key == subject.encode()
    assert verifier.head(LEDGER_ENTRIES, subject).seq == 5


def test_a_rebuilt_projection_equals_the_original_and_restarts_never_double_apply(
        kafka_bootstrap: str, tmp_path: Path, unique: str) -> None:
    svc = make_service(kafka_bootstrap, tmp_path)
    svc.start()
    subject = f"rebuild-{unique}"
    register(svc, subject)
    svc.stop()
    # A restart resumes from the stored offsets: the record is not applied a second time.
    again = make_service(kafka_bootstrap, tmp_path)
    again.start()
    row = again.store.query_one("SELECT applied FROM collectives WHERE collective_id=?", (subject,))
    assert row is not None and row["applied"] == 1
    register(again, subject, "新名")  # continues the chain at seq 2
    assert again.store.chain_head(LEDGER_ENTRIES, subject).seq == 2
    again.stop()
    # Delete the projection: a replay from the topic rebuilds the same state.
    (tmp_path / "ledger.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(tmp_path / "ledger.sqlite") + suffix).unlink(missing_ok=True)
    rebuilt = make_service(kafka_bootstrap, tmp_path)
    rebuilt.start()
    try:
        row = rebuilt.store.query_one("SELECT name, applied FROM collectives WHERE collective_id=?", (subject,))
        assert row is not None and (row["name"], row["applied"]) == ("联盟村", 2)
        assert rebuilt.store.chain_head(LEDGER_ENTRIES, subject).seq == 2
    finally:
        rebuilt.stop()


def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_consumer_goes_on(
        kafka_bootstrap: str, tmp_path: Path, unique: str) -> None:
    svc = make_service(kafka_bootstrap, tmp_path)
    svc.start()
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        key = f"poison-{unique}".encode()
        producer.send(LEDGER_ENTRIES, key=key, value=b"{not json").get(timeout=10)
        bad_version = env.seal(env.new_envelope(event_type="CollectiveRegistered", version=99, source="ledger",
                                                subject=key.decode(), data={}, actor="x"), env.ChainHead())
        producer.send(LEDGER_ENTRIES, key=key, value=canonical(bad_version)).get(timeout=10)
        producer.close()
        svc.sync()
        good = register(svc, f"after-poison-{unique}")
        assert svc.store.query_one("SELECT 1 FROM collectives WHERE collective_id=?",
                                   (good["subject"],)) is not None
        assert svc.store.deadletter_count() >= 2
    finally:
        svc.stop()
    letters = [json.loads(r.value) for r in read_records(kafka_bootstrap, DEADLETTER, key=key)]
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "not valid UTF-8 JSON" in reasons
    assert "unknown version 99" in reasons
    assert all(letter["topic"] == LEDGER_ENTRIES and letter["consumer"] == "ledger" for letter in letters)


def test_every_acknowledged_record_survives_a_broker_crash_and_restart(fresh_broker: LocalBroker,
                                                                      tmp_path: Path) -> None:
    svc = make_service(fresh_broker.bootstrap, tmp_path / "svc")
    svc.start()
    acked = [register(svc, "crash-village", f"村{i}")["event_id"] for i in range(20)]
    svc.stop()
    fresh_broker.stop(kill=True)  # SIGKILL: no clean shutdown
    fresh_broker.start()
    found = [r.envelope["event_id"] for r in read_records(fresh_broker.bootstrap, LEDGER_ENTRIES, key="crash-village")]
    assert found == acked
    # And the writer carries on the same chain after the restart.
    again = make_service(fresh_broker.bootstrap, tmp_path / "svc")
    again.start()
    try:
        assert register(again, "crash-village")["seq"] == 21
    finally:
        again.stop()
