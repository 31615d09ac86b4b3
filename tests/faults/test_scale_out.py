"""Scale-out (DESIGN §12, issue 17): several ledger instances in one Kafka consumer group.

Each instance is a real process (``baotuan serve ledger --instance-id …``, gunicorn) on a broker of
this module's own. Checked: two instances write disjoint villages and forward each other's
requests; one killed under load, the other takes its partitions over and every acknowledged write
is in the log once, chains unbroken, ``baotuan audit`` clean; an instance stopped (SIGSTOP) past
its session timeout cannot publish when resumed (the broker refuses its transaction's group
offsets: KIP-447 fencing) and rejoins; and the broker-side fencing itself, deterministically, with
a stale group generation.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import scale_harness
from fault_harness import (
    ServiceProcess,
    Stack,
    call,
    entry_body,
    events,
    ok,
    own_broker,
    stack_on,
    verify_chains,
    wait_for,
)
from kafka_helpers import read_records
from scale_harness import SESSION_MS, audit, health, owned, post_any, settled_group, subjects_of

from services.contracts.topics import CHECKPOINTS, LEDGER_ENTRIES, partitions
from services.runtime.kafka_io import ensure_topics
from services.runtime.ownership import partition_of

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(400)]

def instance(stack: Stack, instance_id: str) -> ServiceProcess:
    """A ledger instance of the stack (data under <root>/cluster, its projection in instances/ledger-<id>)."""
    return scale_harness.instance(stack, "ledger", instance_id)


def villages_of(parts: set[int], count: int, prefix: str) -> list[str]:
    """``count`` village ids whose streams fall into ``parts``."""
    return subjects_of(parts, count, prefix)


def register(url: str, token: str, village: str) -> requests.Response:
    return call("POST", f"{url}/v1/collectives", token, {"collective_id": village, "name": f"{village}村",
                                                         "town": "金清镇"}, key=f"reg-{village}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("scale-out")
    with own_broker(root / "kafka") as broker, stack_on(broker, root, timeout_s=5, name="scale-out") as world:
        yield world


def test_two_instances_write_disjoint_villages_and_forward(stack: Stack) -> None:
    a, b = instance(stack, "a"), instance(stack, "b")
    a.start()
    b.start()
    held = settled_group(a, b)
    admin = stack.token("admin")
    va = villages_of(held[a.url], 2, "east-")
    vb = villages_of(held[b.url], 2, "west-")
    # Each village registered through the instance that does NOT own it: forwarded, answered once by the owner.
    for village, via, owner in [(va[0], b, a), (vb[0], a, b), (va[1], b, a), (vb[1], a, b)]:
        response = register(via.url, admin, village)
        assert response.status_code == 201, response.text
        assert response.headers.get("X-Baotuan-Answered-By") == owner.url
        again = register(owner.url, admin, village)  # the retry, straight to the owner: the first answer again
        assert again.status_code == 201 and again.json()["collective_id"] == village
    # Both instances write, concurrently, each its own villages (and the other's through forwarding).
    results: list[str] = []

    def write(url: str, villages: list[str], tag: str) -> None:
        for i in range(10):
            village = villages[i % len(villages)]
            ok(call("POST", f"{url}/v1/collectives/{village}/entries", admin, entry_body("10.00", f"{tag}-{i}"),
                    key=f"{tag}-{i}"))
            results.append(f"{tag}-{i}")

    threads = [threading.Thread(target=write, args=(a.url, va + vb, "via-a")),
               threading.Thread(target=write, args=(b.url, vb + va, "via-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 20
    records = read_records(stack.broker.bootstrap, LEDGER_ENTRIES)
    registered = Counter(e["subject"] for e in events(records, "CollectiveRegistered"))
    assert all(registered[v] == 1 for v in va + vb), registered
    memos = Counter(e["data"].get("memo") for e in events(records, "EntryPosted"))
    assert all(memos[m] == 1 for m in results), memos
    # Who wrote what: every record of a partition was written by that partition's owner (all sealed by "ledger"
    # instances; the chains are unbroken across both).
    assert verify_chains(LEDGER_ENTRIES, records) >= 24
    by_partition = Counter(r.partition for r in records)
    assert set(by_partition) >= {partition_of(v, partitions()) for v in va + vb}


def test_failover_under_load_loses_and_duplicates_nothing(stack: Stack) -> None:
    a, b = instance(stack, "a"), instance(stack, "b")
    for svc in (a, b):
        if not svc.alive():
            svc.start()
    held = settled_group(a, b)
    admin = stack.token("admin")
    villages = villages_of(held[a.url], 3, "fa-") + villages_of(held[b.url], 3, "fb-")
    urls = [a.url, b.url]
    for village in villages:
        post_any(urls, admin, "/v1/collectives", {"collective_id": village, "name": f"{village}村", "town": "金清镇"},
                 f"reg-{village}")
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"load-{n}-{i}"
            village = villages[(n + i) % len(villages)]
            try:
                post_any(urls, admin, f"/v1/collectives/{village}/entries", entry_body("1.00", key), key)
            except AssertionError as exc:
                failures.append(str(exc))
                return
            with lock:
                acknowledged.append(key)
            i += 1

    clients = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in clients:
        t.start()
    wait_for("writes under way", lambda: len(acknowledged) >= 30, timeout_s=60)
    a.kill()  # kill -9 of one instance: its partitions go to the other once its session times out
    urls[:] = [b.url]
    before = len(acknowledged)
    took = wait_for("the survivor to write every partition",
                    lambda: owned(b) == set(range(partitions())), timeout_s=60)
    wait_for("writes after the failover", lambda: len(acknowledged) >= before + 30, timeout_s=90)
    stop.set()
    for t in clients:
        t.join(timeout=120)
    assert not failures, failures[:3]
    print(f"failover: {took:.1f}s until the survivor wrote every partition; {len(acknowledged)} writes acknowledged")
    records = read_records(stack.broker.bootstrap, LEDGER_ENTRIES)
    memos = Counter(e["data"].get("memo") for e in events(records, "EntryPosted"))
    assert all(memos[key] == 1 for key in acknowledged), {k: memos[k] for k in acknowledged if memos[k] != 1}
    assert all(count == 1 for memo, count in memos.items() if str(memo).startswith("load-")), "a write twice"
    verify_chains(LEDGER_ENTRIES, records)
    # The survivor signs the checkpoints of everything (the dead one's writes too): the audit verifies it all.
    wait_for("every write covered by a checkpoint",
             lambda: health(b)["checkpoints"]["uncovered_events"] == 0, timeout_s=60)
    status, output = audit(stack)
    assert status == 0, output[-3000:]
    # The killed instance comes back and gets partitions again.
    a.start()
    settled_group(a, b)


def test_a_paused_instance_is_fenced_and_rejoins(stack: Stack) -> None:
    a, b = instance(stack, "a"), instance(stack, "b")
    for svc in (a, b):
        if not svc.alive():
            svc.start()
    held = settled_group(a, b)
    admin = stack.token("admin")
    village = villages_of(held[a.url], 1, "zombie-")[0]
    ok(register(a.url, admin, village))
    start = {(r.topic, r.partition): r.offset for r in read_records(stack.broker.bootstrap, LEDGER_ENTRIES)}
    assert a._proc is not None
    os.killpg(a._proc.pid, signal.SIGSTOP)  # a paused instance: no heartbeats, no requests served
    answer: dict[str, Any] = {}

    def in_flight() -> None:  # reaches the paused instance; it handles it only once resumed
        try:
            response = call("POST", f"{a.url}/v1/collectives/{village}/entries", admin,
                            entry_body("5.00", "from-the-zombie"), key="zombie-1", timeout=90)
            answer["status"], answer["by"] = response.status_code, response.headers.get("X-Baotuan-Answered-By")
        except requests.RequestException as exc:
            answer["error"] = repr(exc)

    thread = threading.Thread(target=in_flight)
    thread.start()
    try:
        wait_for("the other instance to take every partition over",
                 lambda: owned(b) == set(range(partitions())), timeout_s=60)
    finally:
        os.killpg(a._proc.pid, signal.SIGCONT)
    thread.join(timeout=120)
    records = read_records(stack.broker.bootstrap, LEDGER_ENTRIES)
    written = [e for e in events(records, "EntryPosted") if e["data"].get("memo") == "from-the-zombie"]
    # The zombie published nothing: either the broker refused its transaction (its generation is gone) or it
    # saw it had lost the partition and forwarded the request to the new owner; in both cases at most one record.
    if answer.get("status") == 201:
        assert answer["by"] == b.url, answer
        assert len(written) == 1
    else:
        assert answer.get("status") == 503 or "error" in answer, answer
        assert len(written) == 0
    fenced = "transaction refused and aborted" in a.log_text()
    print(f"zombie answer: {answer}; fenced by the broker: {fenced}")
    verify_chains(LEDGER_ENTRIES, records)
    # It rejoins cleanly: the group settles with both, and it writes its partitions again.
    held = settled_group(a, b, timeout_s=90)
    again = villages_of(held[a.url], 1, "rejoined-")[0]
    response = register(a.url, admin, again)
    assert response.status_code == 201 and response.headers.get("X-Baotuan-Answered-By") is None, response.text
    assert len([r for r in read_records(stack.broker.bootstrap, LEDGER_ENTRIES) if (r.topic, r.partition) in start
                and r.offset > start[(r.topic, r.partition)]]) >= 1


def test_the_broker_refuses_a_transaction_of_an_old_generation(stack: Stack, tmp_path: Path) -> None:
    """KIP-447 itself: a member that kept the group metadata of an assignment it lost (a zombie) has its
    transaction's offsets refused, and nothing of the transaction is visible read_committed."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from services.contracts import envelope as env
    from services.runtime.kafka_io import EventProducer, Fenced, OutRecord

    group = "baotuan-ledger-fencing-test"
    topics = [LEDGER_ENTRIES, CHECKPOINTS]
    ensure_topics(stack.broker.bootstrap)

    def member(name: str) -> KafkaConsumer:
        consumer = KafkaConsumer(bootstrap_servers=stack.broker.bootstrap, group_id=group, client_id=name,
                                 enable_auto_commit=False, session_timeout_ms=SESSION_MS,
                                 heartbeat_interval_ms=1000)
        # The topics' partitions known before the first join: a leader that assigns without them assigns nothing
        # ("No partition metadata for topic"), and a loaded machine then waited past this test's 30 s for a rejoin.
        for topic in topics:
            assert consumer.partitions_for_topic(topic), topic
        consumer.subscribe(topics)
        return consumer

    first = member("first")
    wait_for("the first member's assignment", lambda: bool(first.poll(timeout_ms=200) is not None
                                                           and first.assignment()), timeout_s=30)
    stale = first.group_metadata()
    second = member("second")
    wait_for("a rebalance to a new generation", lambda: (first.poll(timeout_ms=100) is not None
                                                         and second.poll(timeout_ms=100) is not None
                                                         and first.group_metadata().generation_id
                                                         > stale.generation_id
                                                         and bool(second.assignment())), timeout_s=60)
    envelope = env.new_envelope(event_type="CollectiveRegistered", version=1, source="ledger", subject="fenced-v",
                                data={"collective_id": "fenced-v", "name": "x", "town": "y"}, actor="test")
    sealed, value = env.seal_encoded(envelope, env.ChainHead())
    producer = EventProducer(stack.broker.bootstrap, "fencing-test", transactional_id="baotuan-ledger-fencing-test")
    try:
        offsets = {TopicPartition(LEDGER_ENTRIES, 0): OffsetAndMetadata(1, "", -1)}
        with pytest.raises(Fenced, match="transaction refused"):
            producer.publish([OutRecord(LEDGER_ENTRIES, sealed, value, [])], fence=lambda written: (offsets, stale))
        # The same producer, with the current generation, commits (the refusal was the generation's).
        current = first.group_metadata()
        acks = producer.publish([OutRecord(LEDGER_ENTRIES, sealed, value, [])], fence=lambda written: (offsets,
                                                                                                     current))
        assert len(acks) == 1
    finally:
        producer.abort()
        first.close()
        second.close()
    mine = [r for r in read_records(stack.broker.bootstrap, LEDGER_ENTRIES, key="fenced-v")]
    assert len(mine) == 1, "the refused transaction's record is visible, or the accepted one is not"
    assert json.loads(mine[0].value)["event_id"] == sealed["event_id"]
