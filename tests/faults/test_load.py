"""A bounded load test: many concurrent clients post journal entries for a fixed time, on loopback.

Afterwards every village's books hold exactly the sum of what was acknowledged, to the fen,
and so does the log. The ledger runs as a real process (gunicorn, as in production) on a
broker of this test's own. Clients retry a 503 with the same Idempotency-Key, as they should.
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import requests
from fault_harness import (
    call,
    duplicates,
    entry_body,
    events,
    ok,
    report,
    seed_villages,
    stack_on,
    verify_chains,
)
from kafka_helpers import read_records, records_covered, verify_checkpoints

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_ENTRIES
from services.devtools.broker import LocalBroker
from services.runtime.signing import default_key_path, read_private

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

CLIENTS = int(os.environ.get("BAOTUAN_LOAD_CLIENTS", "16"))
SECONDS = float(os.environ.get("BAOTUAN_LOAD_SECONDS", "20"))
VILLAGES = [f"load-v{i}" for i in range(8)]


def test_under_concurrent_load_every_village_holds_exactly_what_was_acknowledged(
        fresh_broker: LocalBroker, tmp_path: Path) -> None:
    with stack_on(fresh_broker, tmp_path, timeout_s=10, name="load") as stack:
        ledger = stack.service("ledger")
        ledger.start()
        seed_villages(stack, VILLAGES)
        tokens = {v: stack.token("accountant", v) for v in VILLAGES}

        acknowledged: dict[str, int] = defaultdict(int)
        entry_ids: list[str] = []
        latencies: list[float] = []
        counts = {"sent": 0, "acknowledged": 0, "retried_503": 0, "errors": 0}
        lock = threading.Lock()
        deadline = time.monotonic() + SECONDS

        def client(worker: int) -> None:
            rng = random.Random(worker)
            session = requests.Session()
            n = 0
            while time.monotonic() < deadline:
                n += 1
                village = rng.choice(VILLAGES)
                fen = rng.randint(1, 1_000_000_00)
                key = f"load-{worker}-{n}"
                url = f"{ledger.url}/v1/collectives/{village}/entries"
                headers = {"Authorization": f"Bearer {tokens[village]}", "Idempotency-Key": key}
                body = entry_body(format_yuan(fen), f"load {worker}/{n}")
                for attempt in range(20):  # a 503 is retried with the same key and body
                    began = time.monotonic()
                    try:
                        response = session.post(url, json=body, headers=headers, timeout=60)
                    except requests.RequestException:
                        with lock:
                            counts["errors"] += 1
                        time.sleep(0.2)
                        continue
                    with lock:
                        counts["sent"] += 1
                        latencies.append(time.monotonic() - began)
                        if response.status_code == 503:
                            counts["retried_503"] += 1
                    if response.status_code != 503:
                        break
                    time.sleep(0.2 * (attempt + 1))
                assert response.status_code == 201, f"{response.status_code} {response.text[:300]}"
                with lock:
                    counts["acknowledged"] += 1
                    acknowledged[village] += fen
                    entry_ids.append(response.json()["entry_id"])

        workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=SECONDS + 120)
        assert not any(w.is_alive() for w in workers), "a client hung"
        assert counts["errors"] == 0

        # The books, to the fen: Dr 102 and Cr 504 of each village equal what it was told was posted.
        for village in VILLAGES:
            balance = ok(call("GET", f"{ledger.url}/v1/collectives/{village}/trial-balance?as_of=2026-12-31",
                              tokens[village]))
            rows = {row["code"]: row for row in balance["accounts"]}
            assert parse_yuan(rows["102"]["debit"]) == acknowledged[village], village
            assert parse_yuan(rows["504"]["credit"]) == acknowledged[village], village
        # The log holds each acknowledged entry once, and no other.
        records = read_records(fresh_broker.bootstrap, LEDGER_ENTRIES)
        posted = [e for e in events(records, "EntryPosted") if e["data"]["origin"]["kind"] == "manual"]
        assert duplicates([e["data"]["entry_id"] for e in posted]) == {}
        assert sorted(e["data"]["entry_id"] for e in posted) == sorted(entry_ids)
        in_log: dict[str, int] = defaultdict(int)
        for e in posted:
            in_log[e["data"]["collective_id"]] += parse_yuan(e["data"]["lines"][0]["debit"])
        assert dict(in_log) == dict(acknowledged)
        chained = verify_chains(LEDGER_ENTRIES, records)
        # Anchoring under load (issue 14): a signed checkpoint at least every 100 writes (the default cadence),
        # each agreeing with the log, and the last writes covered within seconds of the end.
        deadline = time.monotonic() + 30
        while ok(call("GET", f"{ledger.url}/health", None))["checkpoints"]["uncovered_events"]:
            assert time.monotonic() < deadline, "the last writes under load were never covered by a checkpoint"
            time.sleep(0.2)
        public = read_private(default_key_path(ledger.data_dir, "ledger")).public_key()
        checkpoints = verify_checkpoints(fresh_broker.bootstrap, "ledger", public)
        covered = [0, *(records_covered(records, c) for c in checkpoints[LEDGER_ENTRIES])]
        gaps = [b - a for a, b in itertools.pairwise(covered)]
        assert covered[-1] == len(records)
        assert max(gaps) <= 100, gaps

        ordered = sorted(latencies)
        report("load", {
            "clients": CLIENTS, "seconds": SECONDS, "requests_sent": counts["sent"],
            "acknowledged": counts["acknowledged"], "retried_503": counts["retried_503"],
            "found_in_log": len(posted), "duplicates": len(duplicates([e["data"]["entry_id"] for e in posted])),
            "entries_per_s": round(counts["acknowledged"] / SECONDS, 1),
            "p50_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
            "acknowledged_total_yuan": format_yuan(sum(acknowledged.values())),
            "chain_links_verified": chained, "checkpoints": len(gaps), "largest_gap_between_checkpoints": max(gaps)})
