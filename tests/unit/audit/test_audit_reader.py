"""The Kafka reader process reports its failures to the audit instead of dying silently."""

from __future__ import annotations

import pytest

from services.audit.sources.kafka import KafkaSource
from services.audit.sources.reader import read_in_another_process
from services.audit.sources.records import ReplayError
from services.devtools.broker import free_port


def test_a_reader_that_cannot_reach_the_broker_fails_the_replay_with_the_reason() -> None:
    config = KafkaSource(f"127.0.0.1:{free_port()}").config()
    config["api_version_auto_timeout_ms"] = 1000
    with pytest.raises(ReplayError, match=r"reading from Kafka failed: ReplayError: Kafka at .* is unreachable"):
        list(read_in_another_process(config, [("baotuan.rentals.v1", 0, 0, 5)], 5.0))


def test_an_audit_of_a_broker_that_does_not_listen_fails_before_any_reading() -> None:
    with pytest.raises(ReplayError, match="unreachable"):
        list(KafkaSource(f"127.0.0.1:{free_port()}").records())


def test_the_reader_decodes_and_checks_each_envelope_hash_and_the_audit_uses_its_verdict() -> None:
    import copy
    import marshal

    from services.audit.checks.auditor import Auditor
    from services.audit.sources.kafka import _kafka_record
    from services.audit.sources.reader import Prepared, prepare
    from services.audit.sources.records import Record
    from services.contracts.codec import canonical
    from services.devtools.synthetic import small_scenario

    rows = small_scenario(villages=2, months=2).rows
    good = [canonical(row["event"]) for row in rows]
    tampered_event = copy.deepcopy(rows[0]["event"])
    tampered_event["data"]["name"] = "改过的名字"
    tampered = canonical(tampered_event)

    def prepared(value: bytes | None, offset: int = 0) -> Prepared:
        got = prepare(("baotuan.ledger.entries.v1", 0, offset, 17, b"k", value))
        assert marshal.loads(marshal.dumps(got)) == got  # what the pipe carries
        return got

    assert [prepared(value)[8] for value in good] == [True] * len(good)
    assert [prepared(value)[6] for value in good] == [row["event"] for row in rows]
    assert prepared(tampered)[6:] == (tampered_event, None, False, None)
    assert prepared(None)[6:] == (None, "the record has no value", None, None)
    spaced = prepared(good[0].replace(b'","', b'", "', 1))  # the same envelope, not its canonical bytes
    assert spaced[6] == rows[0]["event"] and spaced[8] is True and "whitespace" in str(spaced[9])
    for bad in (b"[1]", b"\xff", b'{"amount": 1.5}'):
        envelope, problem, intact, _ = prepared(bad)[6:]
        in_process = _kafka_record("t", 0, 0, None, None, bad)
        assert envelope is None and intact is None and problem == in_process.problem
    assert prepared(b'{"hash": 5}')[8] is False

    def audit(first: bytes, verdict: bool | None) -> list[str]:
        auditor = Auditor()
        for offset, (row, value) in enumerate(zip(rows, [first, *good[1:]], strict=True)):
            record: Record = _kafka_record(row["topic"], row["partition"], row["offset"], None,
                                           row["event"]["subject"].encode(), value)
            record.intact = verdict if offset == 0 else None
            auditor.feed(record)
        return [finding.message for finding in auditor.findings.of("chain")]

    assert not audit(good[0], True)
    assert any("altered" in message for message in audit(tampered, None))  # worked out by the audit itself
    assert any("altered" in message for message in audit(tampered, False))  # as the reader found it
    # The audit takes the reader's word (the reader is a process the audit started itself).
    assert any("altered" in message for message in audit(good[0], False))
