"""The command-line tools on a secured broker: they log in with the BAOTUAN_KAFKA_SASL_* variables.

One broker for the module that requires SASL/SCRAM and enforces the standard ACLs (as in
``test_kafka_acls.py``), holding one valid event. ``baotuan audit``, ``export``, ``status``
and ``topics`` run through click's CliRunner with the auditor's credentials in the
environment; the launcher's broker checks, the web page's Excel export and the example
subscriber are driven directly. Without the variables the audit stops with exit status 2 and
says which variables to set.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import load_example_subscriber
from kafka import KafkaProducer
from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType
from kafka_helpers import secured_broker

from services.cli import main
from services.contracts import envelope as env
from services.contracts.codec import canonical
from services.contracts.topics import LEDGER_ENTRIES
from services.devtools.broker import LocalBroker, create_acls, free_port
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import EventProducer, OutRecord, ensure_topics
from services.web.app import create_app
from services.web.proxy import Upstreams

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USERS = {"ledger": "ledger-cli-pw", "rentals": "rentals-cli-pw", "dividends": "dividends-cli-pw",
         "auditor": "auditor-cli-pw", "town-finance": "town-finance-cli-pw"}
SASL_VARIABLES = ("BAOTUAN_KAFKA_SASL_USERNAME", "BAOTUAN_KAFKA_SASL_PASSWORD", "BAOTUAN_KAFKA_SASL_MECHANISM",
                  "BAOTUAN_KAFKA_SECURITY_PROTOCOL")
VILLAGE = "sasl-cli-village"
#: A topic of this test for the example subscriber (its payouts would be findings on baotuan's own topics).
SUBSCRIBER_TOPIC = "test.subscriber.payouts"
SUBSCRIBER_GROUP = "town-finance-test"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker that requires SCRAM and enforces the standard ACLs, with one valid event on the books topic."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("needs a secured broker the test starts itself")
    with secured_broker(tmp_path_factory.mktemp("kafka-sasl-cli"), USERS) as broker:
        sealed = env.seal(env.new_envelope(event_type="CollectiveRegistered", version=1, source="ledger",
                                           subject=VILLAGE, actor="admin:test",
                                           data={"collective_id": VILLAGE, "name": "联盟村", "town": "金清镇",
                                                 "alliances": []}), env.ChainHead())
        producer = EventProducer(broker.bootstrap, "baotuan-ledger", timeout_s=15, **broker.client_config("ledger"))
        try:
            producer.publish([OutRecord(LEDGER_ENTRIES, sealed, canonical(sealed), [])])
        finally:
            producer.close()
        yield broker


def use_kafka_user(monkeypatch: pytest.MonkeyPatch, user: str | None, password: str | None = None) -> None:
    """Set (or, with None, clear) the Kafka user of the tools' environment."""
    for name in SASL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    if user is not None:
        monkeypatch.setenv("BAOTUAN_KAFKA_SASL_USERNAME", user)
        monkeypatch.setenv("BAOTUAN_KAFKA_SASL_PASSWORD", password if password is not None else USERS[user])


def test_audit_reads_a_secured_broker_as_the_auditor_named_in_the_environment(
        secured: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    use_kafka_user(monkeypatch, "auditor")
    result = CliRunner().invoke(main, ["audit", "--bootstrap", secured.bootstrap, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["records"] >= 1
    assert report["events"].get("CollectiveRegistered", 0) >= 1


def test_audit_without_the_sasl_variables_exits_2_and_says_which_variables_to_set(
        secured: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    use_kafka_user(monkeypatch, None)
    began = time.monotonic()
    result = CliRunner().invoke(main, ["audit", "--bootstrap", secured.bootstrap, "--json"])
    took = time.monotonic() - began
    assert result.exit_code == 2, result.output
    assert "BAOTUAN_KAFKA_SASL_USERNAME" in result.stderr and "BAOTUAN_KAFKA_SASL_PASSWORD" in result.stderr
    assert result.stdout == ""  # no report of a log it could not read
    assert took < 120  # kafka-python gives up bootstrapping after its request timeout (30 s): no hang


def test_export_writes_the_archive_of_a_secured_broker_as_the_auditor(
        secured: LocalBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_kafka_user(monkeypatch, "auditor")
    archive = tmp_path / "log.jsonl"
    result = CliRunner().invoke(main, ["export", "--format", "jsonl", "--bootstrap", secured.bootstrap,
                                       "--output", str(archive)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in archive.read_text().splitlines()]
    assert any(line["topic"] == LEDGER_ENTRIES and VILLAGE in json.dumps(line, ensure_ascii=False) for line in lines)


def test_status_asks_the_secured_broker_as_the_user_in_the_environment(
        secured: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # no service is running: status exits 1 either way
    args = ["status", "--json", "--ledger-url", down, "--rentals-url", down, "--dividends-url", down]

    def broker_reachable() -> bool:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        reachable: bool = json.loads(result.stdout)["broker"]["reachable"]
        return reachable

    use_kafka_user(monkeypatch, "auditor")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", secured.bootstrap)
    assert broker_reachable()
    monkeypatch.delenv("BAOTUAN_KAFKA_SASL_USERNAME")
    assert not broker_reachable()


def test_topics_checks_the_topics_of_a_secured_broker_as_the_user_in_the_environment(
        secured: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    use_kafka_user(monkeypatch, "auditor")  # DESCRIBE on every baotuan topic; nothing to create
    result = CliRunner().invoke(main, ["topics", "--bootstrap", secured.bootstrap])
    assert result.exit_code == 0, result.output
    assert "nothing (all topics exist)" in result.output


def test_the_launcher_uses_an_external_secured_broker_with_the_sasl_variables(
        secured: LocalBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from services.devtools.launcher.cli import _log_ends
    from services.devtools.launcher.stack import guard_projections, open_broker
    from services.runtime.kafka_io import count_records

    use_kafka_user(monkeypatch, "auditor")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", secured.bootstrap)
    broker = open_broker(tmp_path)
    assert broker.started is None and broker.bootstrap == secured.bootstrap
    assert broker.kafka_config == Settings.from_env().kafka_client_config()
    assert "auditor-cli-pw" not in repr(broker)
    assert guard_projections(tmp_path, broker.bootstrap, **broker.kafka_config) is None
    assert (tmp_path / "projections.cluster-id").read_text().strip()
    assert count_records(broker.bootstrap, {}, _log_ends(broker), **broker.kafka_config) >= 1


def test_the_web_pages_excel_export_replays_a_secured_broker_as_the_configured_user(
        secured: LocalBroker, tmp_path: Path) -> None:
    settings = Settings(bootstrap_servers=secured.bootstrap, data_dir=tmp_path / "data",
                        tokens_file=tmp_path / "tokens.json", kafka_username="auditor",
                        kafka_password=USERS["auditor"])
    assert settings.tokens_file is not None
    token = add_token(settings.tokens_file, name="auditor-1", role="auditor", scope=[])
    down = f"http://127.0.0.1:{free_port()}"
    client = create_app(settings, Upstreams(ledger=down, rentals=down, dividends=down)).test_client()
    response = client.get(f"/api/export.xlsx?collective_id={VILLAGE}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype.endswith("spreadsheetml.sheet")
    assert response.data[:2] == b"PK"  # an xlsx is a zip file


def test_the_example_subscriber_follows_a_secured_broker_with_the_sasl_variables(
        secured: LocalBroker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Another system's user: READ on its topic and on its own consumer group, nothing else.
    ensure_topics(secured.bootstrap, [SUBSCRIBER_TOPIC], **secured.client_config())
    acls = [ACL("User:town-finance", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                ResourcePattern(resource_type, name, ACLResourcePatternType.LITERAL))
            for resource_type, name in ((ResourceType.TOPIC, SUBSCRIBER_TOPIC), (ResourceType.GROUP, SUBSCRIBER_GROUP))]
    create_acls(secured.bootstrap, acls, **secured.client_config())  # returns once they are in force
    declared = {"type": "DistributionDeclared", "data": {"distribution_id": "d-1", "period_start": "2025-01-01",
                                                         "period_end": "2025-12-31"}}
    allocated = {"type": "DividendAllocated", "data": {"distribution_id": "d-1", "project_id": "binhai-park",
                                                       "investor_id": VILLAGE, "investor_type": "collective",
                                                       "payout": "100.00", "pro_rata": "80.00", "top_up": "20.00"}}
    producer = KafkaProducer(bootstrap_servers=secured.bootstrap, acks="all", **secured.client_config())
    try:
        for event in (declared, allocated):
            producer.send(SUBSCRIBER_TOPIC, key=b"binhai-park", value=json.dumps(event).encode()).get(timeout=15)
    finally:
        producer.close(timeout=5)

    subscriber = load_example_subscriber()
    monkeypatch.setattr(subscriber, "TOPIC", SUBSCRIBER_TOPIC)
    use_kafka_user(monkeypatch, "town-finance")
    assert subscriber.follow(secured.bootstrap, SUBSCRIBER_GROUP, max_seconds=30, max_payouts=1) == 1
    assert f"binhai-park 2025-01-01..2025-12-31  {VILLAGE} (collective)  payout 100.00" in capsys.readouterr().out
