"""The latency benchmark's tools on a real broker: reading back what a phase published (transaction markers
in the offsets) and timing each phase of a post."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from eventlog_contract import records_of

from bench.clients import entries_end, read_records
from bench.phases import PHASES, ROLES, cpu_table, post_phases, table
from services.runtime.eventlog import KafkaLog

pytestmark = pytest.mark.kafka


def test_read_records_returns_the_committed_records_between_end_offsets_without_waiting_out_its_deadline(
        kafka_bootstrap: str) -> None:
    log = KafkaLog(kafka_bootstrap, client_id="baotuan-bench-test", timeout_s=15,
                   transactional_id=f"baotuan-bench-test-{uuid.uuid4().hex[:8]}")
    log.ensure_topics(60)
    try:
        before = entries_end(kafka_bootstrap)
        batches = [records_of(f"bench-{uuid.uuid4().hex[:8]}", n + 1) for n in range(3)]
        for batch in batches:
            log.publish(batch)
        published = [r.value for batch in batches for r in batch]
        deadline = time.monotonic() + 30
        while sum(entries_end(kafka_bootstrap).values()) < sum(before.values()) + len(published) + 3:
            assert time.monotonic() < deadline, "the markers were not written"  # 3 transactions: 3 markers
            time.sleep(0.05)
        after = entries_end(kafka_bootstrap)
    finally:
        log.close()
    began = time.monotonic()
    got = read_records(kafka_bootstrap, before, after, timeout_s=20)
    assert time.monotonic() - began < 10, "done when the positions reach the end offsets, markers included"
    assert sorted(r.value for r in got) == sorted(published)  # partition by partition
    assert len(read_records(kafka_bootstrap, before, after, limit=2, timeout_s=20)) == 2


def test_each_phase_of_a_post_is_timed_and_they_add_up_to_the_post(kafka_bootstrap: str, tmp_path: Path) -> None:
    result = post_phases(kafka_bootstrap, tmp_path / "ledger", count=20, rate=50, warm_up=5)
    assert len(result.totals) + len(result.with_checkpoint) + len(result.by_follower) + result.incomplete == 20
    assert len(result.totals) >= 15, result.broken
    for label, _, _ in PHASES:
        assert len(result.phases[label]) == len(result.totals)
        assert all(ms >= 0 for ms in result.phases[label])
    for i, total in enumerate(result.totals):
        parts = sum(result.phases[label][i] for label, _, _ in PHASES)
        assert parts == pytest.approx(total, abs=0.5), "the phases cover the post from request to answer"
    assert any("AddPartitionsToTxn" in row for row in table(result))
    # The CPU per post, by thread: the request's and the producer's threads are named, the request's is busy.
    request, producer = ROLES[0][1], ROLES[1][1]
    assert {request, producer} <= set(result.cpu), result.cpu
    assert result.cpu[request] > 0 and all(ms >= 0 for ms in result.cpu.values())
    assert cpu_table(result)[-1] == f"| **the process** | **{sum(result.cpu.values()):.2f}** |"
