"""The runtime's own guarantee that a publish is all-or-nothing (a regression test), per partition
and, with Kafka transactions, across partitions: a writer killed in the middle of a transaction
leaves nothing any baotuan reader ever sees.

The events of one publish reach each partition as ONE record batch, which the broker appends
atomically, so a crash cannot leave half of a declaration in the log. (With linger_ms=2 the
producer often shipped the first record alone.) The broker's own DumpLogSegments tool shows
the batches. The outage behaviour (503 in time, recovery after a restart) is covered with
real processes in test_broker_crash.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import no_fold
from fault_harness import own_broker

from services.contracts.topics import LEDGER_ENTRIES
from services.devtools.broker import LOG_CONFIG, LocalBroker, _java, ensure_jars
from services.runtime.config import Settings
from services.runtime.service import EventService, NewEvent
from services.runtime.store import ProjectionStore

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with own_broker(tmp_path_factory.mktemp("runtime-faults") / "kafka") as started:
        yield started


def writer(broker: LocalBroker, folder: Path) -> EventService:
    settings = Settings(bootstrap_servers=broker.bootstrap, data_dir=folder, tokens_file=None,
                        request_timeout_s=TIMEOUT_S)
    svc = EventService(name="ledger", settings=settings, store=ProjectionStore(folder / "w.sqlite", ""),
                       fold=no_fold, inputs=[], owned=[LEDGER_ENTRIES])
    svc.start()
    return svc


def collectives(subject: str, n: int) -> list[NewEvent]:
    return [NewEvent("CollectiveRegistered", subject, {"collective_id": f"c{i:03d}", "name": "村" * 40,
                                                       "town": "金清镇", "alliances": []}) for i in range(n)]


def test_the_events_of_one_publish_land_in_one_record_batch(broker: LocalBroker, tmp_path: Path) -> None:
    svc = writer(broker, tmp_path)
    try:
        for round_no in range(12):
            with svc.writing():
                svc.publish(collectives(f"atomic-{round_no}", 31), actor="system:test")
    finally:
        svc.stop()
    sizes: list[int] = []
    for segment in sorted((broker.data_dir / "logs").glob(f"{LEDGER_ENTRIES}-*/*.log")):
        dump = subprocess.run([_java(), "-cp", f"{ensure_jars()}/*", f"-Dlog4j2.configurationFile={LOG_CONFIG}",
                               "kafka.tools.DumpLogSegments", "--files", str(segment)],
                              capture_output=True, text=True, check=True, timeout=60).stdout
        sizes += [int(line.split("count: ")[1].split()[0]) for line in dump.splitlines()
                  if "count: " in line and "isControl: true" not in line]  # not the transactions' markers
    assert sizes.count(31) == 12 and sum(sizes) == 12 * 31, sizes


ZOMBIE = """
import sys, time
from services.contracts import envelope as env
from services.contracts.topics import LEDGER_ENTRIES
from services.runtime.kafka_io import EventProducer, record_key
bootstrap, tid, prefix = sys.argv[1:4]
producer = EventProducer(bootstrap, "zombie", timeout_s=10, transactional_id=tid)
producer._producer.begin_transaction()
for n in range(40):  # forty streams: the records spread over every partition
    sealed, value = env.seal_encoded(env.new_envelope(
        event_type="PeriodClosed", version=1, source="ledger", subject=f"{prefix}-{n}",
        data={"collective_id": f"{prefix}-{n}", "period": "2025-01"}, actor="system:zombie"), env.ChainHead())
    producer._producer.send(LEDGER_ENTRIES, key=record_key(sealed), value=value,
                            headers=env.cloudevents_headers(sealed))
producer._producer.flush(timeout=10)
print("sent", flush=True)
time.sleep(120)
"""


def test_a_writer_killed_mid_transaction_leaves_nothing_visible(broker: LocalBroker, tmp_path: Path) -> None:
    import os
    import signal
    import sys

    from kafka import KafkaConsumer, TopicPartition
    from kafka_helpers import read_records

    from services.devtools.broker import PROJECT_ROOT

    settings = Settings(bootstrap_servers=broker.bootstrap, data_dir=tmp_path, tokens_file=None,
                        request_timeout_s=TIMEOUT_S)
    tid = settings.transactional_id("ledger")
    prefix = f"zombie-{os.getpid()}"
    zombie = subprocess.Popen([sys.executable, "-c", ZOMBIE, broker.bootstrap, tid, prefix], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert zombie.stdout is not None and zombie.stdout.readline().strip() == "sent"
        # The records are on the broker, in an open transaction (a read_uncommitted reader sees them) …
        raw = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                            isolation_level="read_uncommitted")
        try:
            parts = [TopicPartition(LEDGER_ENTRIES, p) for p in sorted(raw.partitions_for_topic(LEDGER_ENTRIES))]
            raw.assign(parts)
            raw.seek_to_beginning(*parts)
            seen: list[bytes] = []
            for _ in range(20):
                for records in raw.poll(timeout_ms=500).values():
                    seen += [r.key for r in records if r.key and r.key.startswith(prefix.encode())]
                if len(seen) == 40:
                    break
        finally:
            raw.close()
        assert len(seen) == 40
    finally:
        zombie.send_signal(signal.SIGKILL)  # … and the writer dies before it commits
        zombie.wait(30)
        if zombie.stdout is not None:
            zombie.stdout.close()
    # The service restarts with the same transactional id: it fences the dead writer, its open transaction
    # is aborted, and the service writes on.
    svc = writer(broker, tmp_path)
    try:
        with svc.writing():
            svc.publish(collectives(f"{prefix}-after", 1), actor="system:test")
    finally:
        svc.stop()
    committed = read_records(broker.bootstrap, LEDGER_ENTRIES)
    keys = [r.key for r in committed if r.key is not None]
    assert not [k for k in keys if k.startswith(prefix.encode()) and not k.startswith(f"{prefix}-after".encode())]
    assert f"{prefix}-after".encode() in keys
