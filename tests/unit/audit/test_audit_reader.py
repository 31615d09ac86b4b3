"""The Kafka reader process reports its failures to the audit instead of dying silently."""

from __future__ import annotations

import pytest

from services.audit.reader import read_in_another_process
from services.audit.replay import KafkaSource, ReplayError
from services.runtime.local_kafka import free_port


def test_a_reader_that_cannot_reach_the_broker_fails_the_replay_with_the_reason() -> None:
    config = KafkaSource(f"127.0.0.1:{free_port()}").config()
    config["api_version_auto_timeout_ms"] = 1000
    with pytest.raises(ReplayError, match=r"reading from Kafka failed: ReplayError: Kafka at .* is unreachable"):
        list(read_in_another_process(config, [("baotuan.rentals.v1", 0, 0, 5)], 5.0))


def test_an_audit_of_a_broker_that_does_not_listen_fails_before_any_reading() -> None:
    with pytest.raises(ReplayError, match="unreachable"):
        list(KafkaSource(f"127.0.0.1:{free_port()}").records())
