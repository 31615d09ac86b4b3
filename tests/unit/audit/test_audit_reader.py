"""The Kafka reader process reports its failures to the audit instead of dying silently."""

from __future__ import annotations

import pytest
from conftest import child_processes

from services.audit.sources.kafka import KafkaSource
from services.audit.sources.reader import read_in_another_process, read_in_other_processes, split_plan
from services.audit.sources.records import ReplayError
from services.devtools.broker import free_port


def test_a_reader_that_cannot_reach_the_broker_fails_the_replay_with_the_reason() -> None:
    config = KafkaSource(f"127.0.0.1:{free_port()}").config()
    config["api_version_auto_timeout_ms"] = 1000
    with pytest.raises(ReplayError, match=r"reading from Kafka failed: ReplayError: Kafka at .* is unreachable"):
        list(read_in_another_process(config, [("baotuan.rentals.v1", 0, 0, 5)], 5.0))


def test_readers_sharing_a_plan_fail_the_replay_with_the_first_reason_and_leave_no_process() -> None:
    config = KafkaSource(f"127.0.0.1:{free_port()}").config()
    config["api_version_auto_timeout_ms"] = 1000
    plan = [("baotuan.rentals.v1", 0, 0, 5), ("baotuan.rentals.v1", 1, 0, 7)]
    before = child_processes()
    with pytest.raises(ReplayError, match=r"reading from Kafka failed: ReplayError: Kafka at .* is unreachable"):
        list(read_in_other_processes(config, plan, 5.0, readers=2))
    assert child_processes() <= before, "a reader process was left running"


def test_a_plan_is_shared_by_record_count_and_each_partition_goes_to_one_reader() -> None:
    plan = [("a", 0, 0, 100), ("a", 1, 0, 10), ("b", 0, 50, 90), ("b", 1, 0, 60), ("c", 0, 0, 0)]
    shares = split_plan(plan, 2)
    assert sorted(item for share in shares for item in share) == sorted(plan)
    loads = sorted(sum(end - begin for _, _, begin, end in share) for share in shares)
    assert loads == [100, 110]
    assert split_plan(plan, 1) == [sorted(plan, key=lambda item: item[3] - item[2], reverse=True)]
    assert len(split_plan(plan[:1], 4)) == 1  # no reader without a partition
    assert split_plan([], 2) == [[]]


def test_an_audit_of_a_broker_that_does_not_listen_fails_before_any_reading() -> None:
    with pytest.raises(ReplayError, match="unreachable"):
        list(KafkaSource(f"127.0.0.1:{free_port()}").records())


def test_the_reader_judges_each_value_and_the_audit_takes_its_verdict() -> None:
    import copy
    import marshal

    from services.audit.checks.auditor import Auditor
    from services.audit.sources.kafka import _judged_record, _kafka_record
    from services.audit.sources.reader import Judged, judge
    from services.contracts.codec import canonical
    from services.devtools.synthetic import small_scenario

    rows = small_scenario(villages=2, months=2).rows
    good = [canonical(row["event"]) for row in rows]
    tampered_event = copy.deepcopy(rows[0]["event"])
    tampered_event["data"]["name"] = "改过的名字"
    tampered = canonical(tampered_event)
    unschematic_event = copy.deepcopy(rows[0]["event"])
    unschematic_event["seq"] = "one"
    unschematic = canonical(unschematic_event)

    def judged(value: bytes | None, offset: int = 0) -> Judged:
        got = judge((rows[0]["topic"], 0, offset, 17, b"k", value))
        assert marshal.loads(marshal.dumps(got)) == got  # what the pipe carries
        return got

    def in_process(value: bytes | None) -> tuple[object, ...]:
        """What the audit process makes of a value it reads itself (no reader process)."""
        record = _kafka_record(rows[0]["topic"], 0, 0, 17, b"k", value)
        return record.envelope, record.problem, record.intact, record.noncanonical

    def through_reader(value: bytes | None) -> tuple[object, ...]:
        record = _judged_record(judged(value))
        return record.envelope, record.problem, record.intact, record.noncanonical

    # The same verdict, whether the reader process judged the value or the audit process read it itself: good
    # envelopes, an altered one, one off its schema, one not in its canonical bytes, no envelope at all.
    spaced = good[0].replace(b'","', b'", "', 1)
    big = good[0].replace(b'"seq":1', b'"seq":18446744073709551616', 1)  # past 64 bits: orjson gives a float
    assert big != good[0]
    for value in [*good, tampered, unschematic, spaced, big, None, b"[1]", b"\xff", b'{"amount": 1.5}',
                  b'{"a":1,"a":2}', b'{"hash": 5}', b"NaN", b'"\\ud800"']:
        assert through_reader(value) == in_process(value), value
    assert [judged(value)[6:] for value in good] == [(None, True, None, None, True)] * len(good)
    assert judged(tampered)[6:] == (None, False, None, None, True)
    assert "whitespace" in str(judged(spaced)[8]) and judged(spaced)[7] is True
    assert judged(unschematic)[6] is None and "seq" in str(judged(unschematic)[9])
    # past 64 bits orjson gives a float: decoded the slow way, to the integer
    assert judged(big)[10] is False and judged(big)[9] is None
    assert _judged_record(judged(big)).envelope["seq"] == 18446744073709551616
    assert judged(b'{"amount": 1.5}')[6] == in_process(b'{"amount": 1.5}')[1] is not None
    assert judged(None)[6:] == ("the record has no value", None, None, None, False)

    def audit(first: bytes, schema: str | None) -> list[str]:
        """Audit the scenario with its first record as judged by a reader that found ``schema``."""
        auditor = Auditor()
        for offset, (row, value) in enumerate(zip(rows, [first, *good[1:]], strict=True)):
            record = _judged_record((row["topic"], row["partition"], row["offset"], None,
                                     row["event"]["subject"].encode(), value, None, True, None,
                                     schema if offset == 0 else None, True))
            auditor.feed(record)
        return [finding.message for finding in auditor.findings.of("schema")]

    assert not audit(good[0], None)
    # The audit takes the reader's word (the reader is a process the audit started itself).
    assert any("seq" in message for message in audit(good[0], "seq must be an integer"))

    def chain_findings(first: bytes, intact: bool) -> list[str]:
        auditor = Auditor()
        for offset, (row, value) in enumerate(zip(rows, [first, *good[1:]], strict=True)):
            auditor.feed(_judged_record((row["topic"], row["partition"], row["offset"], None,
                                         row["event"]["subject"].encode(), value, None,
                                         intact if offset == 0 else True, None, None, True)))
        return [finding.message for finding in auditor.findings.of("chain")]

    assert not chain_findings(good[0], True)
    assert any("altered" in message for message in chain_findings(tampered, judged(tampered)[7]))
    assert any("altered" in message for message in chain_findings(good[0], False))  # its word again
