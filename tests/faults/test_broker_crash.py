"""The broker is killed (SIGKILL) and restarted while clients post journal entries and rent payments.

Every request that got a 2xx must be in the log and in the projections exactly once; every
other one got a clear 503 (``broker_unavailable``) and, retried with the same
Idempotency-Key, is applied once and only once. The services are real processes
(``baotuan serve``) on loopback; the broker is this test's own.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fault_harness import (
    call,
    duplicates,
    entry_body,
    events,
    ok,
    post_until_ok,
    report,
    secrets_in_logs,
    seed_lease,
    seed_villages,
    stack_on,
    verify_chains,
)
from kafka_helpers import read_records

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_ENTRIES, RENTALS
from services.devtools.broker import LocalBroker

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]

TIMEOUT_S = 5.0
VILLAGES = ["crash-dongfeng", "crash-lianmeng", "crash-xinqiao"]
PROJECT = "crash-park"


@dataclass
class Attempt:
    kind: str  # "entry" | "rent"
    url: str
    key: str
    body: dict[str, Any]
    fen: int
    village: str | None
    status: int | None = None
    code: str | None = None
    seconds: float = 0.0
    result_id: str | None = None
    retried: bool = False

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def test_a_broker_crash_under_load_loses_no_acknowledged_write_and_a_retry_never_duplicates(
        fresh_broker: LocalBroker, tmp_path: Path) -> None:
    with stack_on(fresh_broker, tmp_path, timeout_s=TIMEOUT_S, name="broker-crash") as stack:
        ledger, rentals = stack.service("ledger"), stack.service("rentals")
        ledger.start()
        rentals.start()
        seed_villages(stack, VILLAGES, PROJECT)
        lease_id = seed_lease(stack, PROJECT)
        accountants = {v: stack.token("accountant", v) for v in VILLAGES}
        operator = stack.token("operator", PROJECT)

        attempts: list[Attempt] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(worker: int, kind: str) -> None:
            rng = random.Random(worker)
            n = 0
            while not stop.is_set():
                n += 1
                fen = rng.randint(1, 99_999_99)
                if kind == "entry":
                    village = VILLAGES[(worker + n) % len(VILLAGES)]
                    attempt = Attempt("entry", f"{ledger.url}/v1/collectives/{village}/entries", f"e{worker}-{n}",
                                      entry_body(format_yuan(fen), f"worker {worker} #{n}"), fen, village)
                    token = accountants[village]
                else:
                    attempt = Attempt("rent", f"{rentals.url}/v1/leases/{lease_id}/payments", f"r{worker}-{n}",
                                      {"amount": format_yuan(fen), "received_on": "2026-03-20"}, fen, None)
                    token = operator
                began = time.monotonic()
                try:
                    response = call("POST", attempt.url, token, attempt.body, key=attempt.key, timeout=60)
                    attempt.status = response.status_code
                    body = response.json()
                    if attempt.acknowledged:
                        attempt.result_id = body["entry_id"] if kind == "entry" else body["payment"]["payment_id"]
                    else:
                        attempt.code = body.get("error", {}).get("code")
                except (requests.RequestException, ValueError) as exc:
                    attempt.code = type(exc).__name__
                attempt.seconds = time.monotonic() - began
                with lock:
                    attempts.append(attempt)
                if not attempt.acknowledged:
                    time.sleep(0.2)

        workers = [threading.Thread(target=client, args=(i, "entry" if i < 4 else "rent"), daemon=True)
                   for i in range(6)]
        for worker in workers:
            worker.start()
        time.sleep(4)
        fresh_broker.stop(kill=True)
        killed_at = time.monotonic()
        time.sleep(3)
        fresh_broker.start()
        restarted_after = time.monotonic() - killed_at
        time.sleep(6)
        stop.set()
        for worker in workers:
            worker.join(timeout=90)
        assert not any(w.is_alive() for w in workers), "a client hung"

        refused = [a for a in attempts if not a.acknowledged]
        # Refusals are the clear, retryable kind: a 503 naming the broker, never a 500 or a hang.
        odd = [(a.kind, a.status, a.code, round(a.seconds, 1)) for a in refused
               if (a.status, a.code) != (503, "broker_unavailable")]
        assert not odd, f"{odd}\n{ledger.log_tail(60)}\n{rentals.log_tail(60)}"
        # ... and it comes fast: within the request timeout (plus slack for a loaded machine), never
        # queued behind the other writers' timeouts.
        slowest_refusal = max((a.seconds for a in refused), default=0.0)
        slowest_ack = max(a.seconds for a in attempts if a.acknowledged)
        assert slowest_refusal < 2 * TIMEOUT_S, slowest_refusal
        assert slowest_ack < 2 * TIMEOUT_S, slowest_ack

        # The client's retry: the same Idempotency-Key and body, until acknowledged.
        for attempt in refused:
            token = accountants[attempt.village] if attempt.village else operator
            body = post_until_ok(attempt.url, token, attempt.body, attempt.key, deadline_s=60)
            attempt.result_id = body["entry_id"] if attempt.kind == "entry" else body["payment"]["payment_id"]
            attempt.retried = True

        # The log: each request's event exactly once, nothing else, chains unbroken.
        entry_records = read_records(fresh_broker.bootstrap, LEDGER_ENTRIES)
        rent_records = read_records(fresh_broker.bootstrap, RENTALS)
        posted = [e for e in events(entry_records, "EntryPosted") if e["data"]["collective_id"] in VILLAGES
                  and e["data"]["origin"]["kind"] == "manual"]
        received = [e for e in events(rent_records, "RentReceived") if e["data"]["lease_id"] == lease_id]
        logged_ids = [e["data"]["entry_id"] for e in posted] + [e["data"]["payment_id"] for e in received]
        keyed = [r.idempotency_key for r in entry_records + rent_records if r.idempotency_key]
        wanted_ids = [a.result_id for a in attempts]
        assert duplicates(logged_ids) == {}
        assert duplicates(keyed) == {}  # no request's events were written twice
        assert duplicates([i for i in wanted_ids if i]) == {}
        assert sorted(logged_ids) == sorted(i for i in wanted_ids if i)
        chained = verify_chains(LEDGER_ENTRIES, entry_records) + verify_chains(RENTALS, rent_records)

        # The projections: the books and the lease hold each acknowledged amount exactly once, to the fen.
        for village in VILLAGES:
            expected = sum(a.fen for a in attempts if a.village == village)
            books = ok(call("GET", f"{ledger.url}/v1/collectives/{village}/entries", accountants[village]))
            manual = [e for e in books["items"] if e["origin"]["kind"] == "manual"]
            assert len(manual) == sum(1 for a in attempts if a.village == village)
            assert sum(parse_yuan(e["lines"][0]["debit"]) for e in manual) == expected
        lease = ok(call("GET", f"{rentals.url}/v1/leases/{lease_id}", operator))
        rents = [a for a in attempts if a.kind == "rent"]
        assert sorted(p["payment_id"] for p in lease["payments"]) == sorted(str(a.result_id) for a in rents)
        assert sum(parse_yuan(p["amount"]) for p in lease["payments"]) == sum(a.fen for a in rents)

        assert secrets_in_logs(stack) == []  # no bearer token in the services' or the broker's logs

        report("broker-crash", {
            "requests_sent": len(attempts), "acknowledged_first_time": len(attempts) - len(refused),
            "refused_503": len(refused), "acknowledged_after_retry": sum(a.retried for a in attempts),
            "found_in_log": len(logged_ids), "duplicates": len(duplicates(logged_ids)),
            "chain_links_verified": chained, "broker_down_s": round(restarted_after, 1),
            "slowest_503_s": round(slowest_refusal, 1), "slowest_2xx_s": round(slowest_ack, 1)})
