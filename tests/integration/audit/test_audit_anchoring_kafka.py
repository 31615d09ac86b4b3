"""The anchoring read from Kafka: the checkpoints topic first, then the records (in-process and through the
reader process), the checkpoints exported into the archive, and a non-canonical value named.

A signed synthetic log (services.devtools.synthetic, a checkpoint every 8 records of a topic) is produced
onto a broker of the test's own, each record into the partition and at the offset the archive gives it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from services.audit.checks.anchors import load_trusted_keys
from services.audit.checks.auditor import run_audit
from services.audit.cli import export_command
from services.audit.sources.kafka import KafkaSource
from services.contracts import envelope as env
from services.contracts.codec import canonical
from services.contracts.topics import CHECKPOINTS, RECORD_TOPICS, RENTALS
from services.devtools.broker import LocalBroker
from services.devtools.synthetic import LogWriter, archive_line, small_scenario, synthetic_keys, write_public_keys
from services.runtime.kafka_io import ensure_topics

pytestmark = pytest.mark.kafka


def test_the_signed_log_audits_from_kafka_and_exports_with_its_checkpoints(fresh_broker: LocalBroker,
                                                                          tmp_path: Path) -> None:
    keys = synthetic_keys()
    log = small_scenario(LogWriter(checkpoint_every=8, signing_keys=dict(keys)), villages=3)
    log.checkpoint()
    bootstrap = fresh_broker.bootstrap
    ensure_topics(bootstrap, [*RECORD_TOPICS, CHECKPOINTS])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for row in log.rows:
            meta = producer.send(row["topic"], key=row["key"].encode(), value=canonical(row["event"]),
                                 partition=row["partition"], timestamp_ms=row["timestamp"]).get(timeout=15)
            assert meta.offset == row["offset"]
    finally:
        producer.close()
    pinned = load_trusted_keys(write_public_keys(tmp_path / "k", {s: k.public_key() for s, k in keys.items()}))

    results = [run_audit(KafkaSource(bootstrap, pipeline=pipeline), trusted_keys=pinned) for pipeline in (False, True)]
    for result in results:
        assert result.ok, result.findings.items
        report = result.auditor.anchors.report()
        assert set(report["checkpoints"]) == set(RECORD_TOPICS)
        assert all(c["verified"] == c["count"] > 0 for c in report["checkpoints"].values())
        assert report["uncovered"] == dict.fromkeys(RECORD_TOPICS, 0)
    assert results[0].auditor.records == results[1].auditor.records == sum(r["topic"] != CHECKPOINTS for r in log.rows)

    archive = tmp_path / "a.jsonl"
    done = CliRunner().invoke(export_command, ["--format", "jsonl", "--bootstrap", bootstrap, "-o", str(archive)])
    assert done.exit_code == 0, done.output
    exported = archive.read_text(encoding="utf-8").splitlines(keepends=True)
    assert sorted(exported) == sorted(archive_line(row) for row in log.rows)  # checkpoints too, byte for byte
    assert sum(json.loads(line)["topic"] == CHECKPOINTS for line in exported) > 10

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:  # the next rent of the park, its value written with a space: the same envelope, not its bytes
        head = log._heads[(RENTALS, "binhai-park")]
        sealed = env.seal(env.new_envelope(event_type="RentReceived", version=1, source="rentals",
                                           subject="binhai-park", actor="x", data={
                                               "payment_id": "r-x", "lease_id": "lease-1", "project_id": "binhai-park",
                                               "invoice_id": None, "amount": "1.00", "received_on": "2026-01-20"}),
                          head)
        value = canonical(sealed).replace(b'"seq":', b'"seq": ')
        meta = producer.send(RENTALS, key=b"binhai-park", value=value).get(timeout=15)
    finally:
        producer.close()
    spaced = run_audit(KafkaSource(bootstrap, pipeline=True), trusted_keys=pinned)
    [finding] = spaced.findings.of("canonical")
    assert (finding.topic, finding.partition, finding.offset) == (RENTALS, meta.partition, meta.offset)
    assert "whitespace outside strings" in finding.message
    assert spaced.auditor.anchors.report()["uncovered"][RENTALS] == 1
