"""The runtime's own guarantee that a publish is all-or-nothing per partition (a regression test).

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
        sizes += [int(line.split("count: ")[1].split()[0]) for line in dump.splitlines() if "count: " in line]
    assert sizes.count(31) == 12 and sum(sizes) == 12 * 31, sizes
