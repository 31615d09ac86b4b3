"""Without a broker: the tools that read Kafka take its security settings (SASL) from the settings.

``tests/security/test_cli_sasl.py`` runs the same tools against a secured broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import load_example_subscriber

from services.audit.sources.kafka import KafkaSource
from services.audit.sources.records import Record, ReplayError
from services.runtime.auth import add_token
from services.runtime.config import Settings

SASL = {"BAOTUAN_KAFKA_SASL_USERNAME": "auditor", "BAOTUAN_KAFKA_SASL_PASSWORD": "pw-of-the-auditor",
        "BAOTUAN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "BAOTUAN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
EXPECTED = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "auditor", "sasl_plain_password": "pw-of-the-auditor"}


@pytest.fixture
def sasl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL.items():
        monkeypatch.setenv(name, value)


def test_the_audit_and_export_commands_read_kafka_with_the_sasl_variables(
        sasl_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.audit.cli import _source

    source = _source(None, "broker:9092", None, None)
    assert isinstance(source, KafkaSource)
    assert source.kafka_config == EXPECTED
    config = source.config()  # what the consumer (and the reader process) is given
    assert {k: config[k] for k in EXPECTED} == EXPECTED and config["bootstrap_servers"] == "broker:9092"

    monkeypatch.delenv("BAOTUAN_KAFKA_SASL_USERNAME")  # no user: PLAINTEXT, as before
    plain = _source(None, "broker:9092", None, None)
    assert isinstance(plain, KafkaSource) and plain.kafka_config == {}


def test_the_web_pages_excel_export_replays_kafka_with_the_settings_kafka_user(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import services.audit.sources.kafka
    from services.web.app import create_app
    from services.web.proxy import Upstreams

    built: list[dict[str, Any]] = []

    class RecordingSource(KafkaSource):
        def __init__(self, bootstrap: str, **kwargs: Any) -> None:
            super().__init__(bootstrap, **kwargs)
            built.append(self.config())

        def records(self) -> Iterator[Record]:
            raise ReplayError("no broker in a unit test")

    monkeypatch.setattr(services.audit.sources.kafka, "KafkaSource", RecordingSource)
    settings = Settings(bootstrap_servers="broker:9092", data_dir=tmp_path / "data", tokens_file=tmp_path / "t.json",
                        kafka_username="auditor", kafka_password="pw-of-the-auditor",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_security_protocol="SASL_SSL")
    assert settings.tokens_file is not None
    token = add_token(settings.tokens_file, name="auditor-1", role="auditor", scope=[])
    down = "http://127.0.0.1:9"
    client = create_app(settings, Upstreams(ledger=down, rentals=down, dividends=down)).test_client()
    response = client.get("/api/export.xlsx?collective_id=lianmeng", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503  # the stand-in source could not read the log
    [config] = built
    assert {k: config[k] for k in EXPECTED} == EXPECTED and config["bootstrap_servers"] == "broker:9092"


def test_the_example_subscriber_takes_the_same_sasl_variables() -> None:
    subscriber = load_example_subscriber("baotuan_example_subscriber_unit")
    assert subscriber.security_config(SASL) == EXPECTED
    assert subscriber.security_config({"BAOTUAN_KAFKA_SASL_USERNAME": "town-finance",
                                       "BAOTUAN_KAFKA_SASL_PASSWORD": "pw"}) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "town-finance", "sasl_plain_password": "pw"}
    assert subscriber.security_config({}) == {}
