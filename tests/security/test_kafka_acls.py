"""Kafka access (DESIGN §8): SASL/SCRAM users and ACLs, so each service writes only its own topics.

One secured broker for the module (``LocalBroker(..., sasl_users=...)``) with the standard
grants: a service writes its own topics and dead letters, reads its inputs; the auditor only
reads. Refusals come from the broker itself, not from the client.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from kafka_helpers import read_records, secured_broker

from services.contracts import envelope as env
from services.contracts.codec import canonical, envelope_hash
from services.contracts.topics import (
    ACCOUNTS,
    CHECKPOINTS,
    DEADLETTER,
    DIVIDENDS,
    LEDGER_ENTRIES,
    LEDGER_INVESTMENTS,
    MEMBERS,
    RENTALS,
    TOPICS,
    standard_grants,
)
from services.devtools.broker import LocalBroker, broker_answers
from services.runtime.config import Settings
from services.runtime.kafka_io import BrokerUnavailable, EventProducer, OutRecord
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USERS = {"ledger": "ledger-test-pw", "rentals": "rentals-test-pw", "dividends": "dividends-test-pw",
         "members": "members-test-pw", "auditor": "auditor-test-pw"}
OWNED = {"ledger": (LEDGER_ENTRIES, LEDGER_INVESTMENTS, ACCOUNTS), "rentals": (RENTALS,), "dividends": (DIVIDENDS,),
         "members": (MEMBERS,)}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker that requires SCRAM and enforces the standard ACLs; topics made by the admin."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("needs a secured broker the test starts itself")
    with secured_broker(tmp_path_factory.mktemp("kafka-sasl"), USERS) as broker:
        yield broker


def producer_for(broker: LocalBroker, user: str | None = None, **config: Any) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_block_ms=10_000,
                         retries=0, **{**broker.client_config(user), **config})


def write(broker: LocalBroker, user: str, topic: str) -> None:
    producer = producer_for(broker, user)
    try:
        producer.send(topic, key=b"acl-probe", value=b'{"probe": true}').get(timeout=15)
    finally:
        producer.close(timeout=5)


def read_count(broker: LocalBroker, user: str, topic: str) -> int:
    return len(read_records(broker.bootstrap, topic, **broker.client_config(user)))


def test_the_secured_broker_refuses_a_client_without_valid_scram_credentials(secured: LocalBroker) -> None:
    assert broker_answers(secured.bootstrap, **secured.client_config("ledger"))
    assert not broker_answers(secured.bootstrap)  # no SASL at all
    assert not broker_answers(secured.bootstrap, **{**secured.client_config("ledger"),
                                                    "sasl_plain_password": "not-the-password"})
    assert not broker_answers(secured.bootstrap, **{**secured.client_config("ledger"),
                                                    "sasl_plain_username": "mallory"})


@pytest.mark.parametrize("service", sorted(OWNED))
def test_a_service_may_write_its_own_topics_and_the_dead_letter_topic(secured: LocalBroker, service: str) -> None:
    for topic in (*OWNED[service], DEADLETTER):
        write(secured, service, topic)


@pytest.mark.parametrize(("service", "foreign"), [
    ("ledger", RENTALS), ("ledger", DIVIDENDS),
    ("rentals", LEDGER_ENTRIES), ("rentals", LEDGER_INVESTMENTS), ("rentals", DIVIDENDS),
    ("dividends", LEDGER_ENTRIES), ("dividends", LEDGER_INVESTMENTS), ("dividends", RENTALS),
    ("members", LEDGER_ENTRIES), ("members", DIVIDENDS), ("ledger", MEMBERS), ("dividends", MEMBERS),
])
def test_a_service_is_refused_by_the_broker_when_it_writes_another_services_topic(
        secured: LocalBroker, service: str, foreign: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        write(secured, service, foreign)


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_the_auditor_may_read_every_topic_but_write_none(secured: LocalBroker, topic: str) -> None:
    write(secured, "ledger", DEADLETTER)  # something to read on every run
    if topic != DEADLETTER:
        # the checkpoints topic is shared: every writer signs checkpoints of its own topics there
        owner = "ledger" if topic == CHECKPOINTS else next(s for s, owned in OWNED.items() if topic in owned)
        write(secured, owner, topic)
    assert read_count(secured, "auditor", topic) >= 1
    with pytest.raises(TopicAuthorizationFailedError):
        write(secured, "auditor", topic)


def test_a_service_may_not_read_a_topic_outside_its_inputs(secured: LocalBroker) -> None:
    # rentals consumes ledger.investments and dividends only; the villages' books are none of its business.
    write(secured, "ledger", LEDGER_ENTRIES)
    with pytest.raises(KafkaError):
        read_count(secured, "rentals", LEDGER_ENTRIES)
    assert read_count(secured, "rentals", LEDGER_INVESTMENTS) >= 0


def test_the_grants_follow_the_topic_owners_of_the_contract() -> None:
    grants = standard_grants()
    for service, owned in OWNED.items():
        assert set(grants[service].write) == {*owned, CHECKPOINTS, DEADLETTER}
        assert {*owned, CHECKPOINTS} <= set(grants[service].read)
    assert grants["auditor"].write == ()
    assert set(grants["auditor"].read) == set(TOPICS)


# -- the service runtime on a secured broker ---------------------------------------------------------------

SCHEMA = "CREATE TABLE IF NOT EXISTS collectives (collective_id TEXT PRIMARY KEY, name TEXT);"


def fold(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
    if envelope["type"] == "CollectiveRegistered":
        conn.execute("INSERT OR REPLACE INTO collectives VALUES (?, ?)",
                     (envelope["data"]["collective_id"], envelope["data"]["name"]))


def runtime_as(broker: LocalBroker, user: str, password: str, data_dir: Path, *, owned: list[str],
               inputs: list[str] | None = None) -> EventService:
    settings = Settings(bootstrap_servers=broker.bootstrap, data_dir=data_dir, tokens_file=None,
                        request_timeout_s=8, kafka_username=user, kafka_password=password)
    store = ProjectionStore(data_dir / f"{user}.sqlite", SCHEMA)
    return EventService(name=user, settings=settings, store=store, fold=fold, inputs=inputs or [], owned=owned)


def collective(cid: str) -> NewEvent:
    return NewEvent("CollectiveRegistered", cid, {"collective_id": cid, "name": "联盟村", "town": "金清镇",
                                                  "alliances": []})


def test_the_service_runtime_publishes_and_consumes_with_its_own_scram_user(secured: LocalBroker,
                                                                          tmp_path: Path) -> None:
    svc = runtime_as(secured, "ledger", USERS["ledger"], tmp_path, owned=[LEDGER_ENTRIES, LEDGER_INVESTMENTS],
                     inputs=[DIVIDENDS])
    svc.start(wait_s=30)
    try:
        with svc.writing():
            [sealed] = svc.publish([collective("sasl-village")], actor="admin:test")
        assert svc.store.query_one("SELECT name FROM collectives WHERE collective_id='sasl-village'") is not None
        assert envelope_hash(sealed) == sealed["hash"]
    finally:
        svc.stop()


def test_settings_from_the_environment_carry_the_kafka_user_and_never_print_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAOTUAN_KAFKA_SASL_USERNAME", "ledger")
    monkeypatch.setenv("BAOTUAN_KAFKA_SASL_PASSWORD", "s3cret-value")
    settings = Settings.from_env()
    assert settings.kafka_client_config() == {"security_protocol": "SASL_PLAINTEXT",
                                              "sasl_mechanism": "SCRAM-SHA-256",
                                              "sasl_plain_username": "ledger",
                                              "sasl_plain_password": "s3cret-value"}
    assert "s3cret-value" not in repr(settings)
    monkeypatch.delenv("BAOTUAN_KAFKA_SASL_USERNAME")
    assert Settings.from_env().kafka_client_config() == {}


def test_the_runtime_producer_of_a_service_is_refused_on_another_services_topic_and_nothing_lands(
        secured: LocalBroker) -> None:
    # A rentals process that (by a bug or an intruder) tries to append to a village's books.
    forged = env.seal(env.new_envelope(event_type="CollectiveRegistered", version=1, source="rentals",
                                       subject="rogue-village", data=collective("rogue-village").data,
                                       actor="operator:rogue"), env.ChainHead())
    admin = KafkaConsumer(bootstrap_servers=secured.bootstrap, group_id=None, **secured.client_config())
    parts = [TopicPartition(LEDGER_ENTRIES, p) for p in sorted(admin.partitions_for_topic(LEDGER_ENTRIES) or [])]
    before = admin.end_offsets(parts)
    rogue = EventProducer(secured.bootstrap, "baotuan-rentals", timeout_s=8, **secured.client_config("rentals"))
    began = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailable) as refused:
            rogue.publish([OutRecord(LEDGER_ENTRIES, forged, canonical(forged), [])])
    finally:
        rogue.close()
    assert time.monotonic() - began < 8  # refused at once, not timed out
    assert isinstance(refused.value.__cause__, TopicAuthorizationFailedError)
    assert admin.end_offsets(parts) == before
    admin.close()
