"""Benchmark 1 — posting throughput through the ledger's HTTP API, against raw kafka-python produce.

Single posts (``POST /v1/collectives/{id}/entries``) from 16 concurrent clients, and batches of
1,000 (``POST /v1/entries/batch``) from 2 clients, for a fixed time each. An entry counts when
its answer says posted: the service answers only once Kafka acknowledged it and the projection
applied it. The trial balances are read back at the end to check that every acknowledged
entry is visible. The baseline produces the very envelopes the batch phase published. The
server's ``/health`` ``writes`` (group commit's figures) give, per phase, the requests per
group (one Kafka transaction each) and where a group's time went.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import (
    check_visible,
    entries_end,
    entry_body,
    in_process_ledger,
    raw_produce,
    read_records,
    register_collectives,
)
from bench.harness import Context, Figure, LedgerServer, Outcome, profile_call, say
from bench.sampler import Sampler

#: The functions of a request worth seeing in its cumulative profile.
REQUEST_PATH = "services/|kafka/producer/kafka.py|uuid.py|flask_smorest/response.py"

SINGLE_CLIENTS = 16
BATCH_CLIENTS = 2
BATCH_SIZE = 1_000
#: Issue 16's targets.
TARGET_RATE = 8_000.0
TARGET_RATIO = 0.2
TARGET_SINGLE = 1_000.0


@dataclass
class Tally:
    """What a phase's clients got acknowledged."""

    posted: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    debit_by_collective: dict[str, int] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def credit(self, collective: str, fen: int) -> None:
        self.debit_by_collective[collective] = self.debit_by_collective.get(collective, 0) + fen

    @property
    def rate(self) -> float:
        return self.posted / (self.last - self.first) if self.last > self.first else 0.0


def _run_clients(count: int, client: Callable[[int, float], None], seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(i, deadline), name=f"bench-client-{i}") for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def single_posts(server: LedgerServer, collectives: list[str], seconds: float) -> Tally:
    tally = Tally(first=time.perf_counter())

    def client(i: int, deadline: float) -> None:
        session = server.session()
        rng = random.Random(100 + i)
        collective = collectives[i % len(collectives)]
        while time.perf_counter() < deadline:
            body, fen = entry_body(rng)
            try:
                response = session.post(f"{server.url}/v1/collectives/{collective}/entries", json=body, timeout=60)
            except Exception as exc:  # the benchmark reports failures instead of dying
                with tally.lock:
                    tally.errors.append(str(exc)[:200])
                continue
            with tally.lock:
                if response.status_code == 201:
                    tally.posted += 1
                    tally.credit(collective, fen)
                else:
                    tally.refused += 1
                    tally.errors.append(f"{response.status_code} {response.text[:200]}")
                tally.last = time.perf_counter()

    _run_clients(SINGLE_CLIENTS, client, seconds)
    return tally


def batch_posts(server: LedgerServer, collectives: list[str], seconds: float) -> Tally:
    tally = Tally(first=time.perf_counter())

    def client(i: int, deadline: float) -> None:
        session = server.session()
        rng = random.Random(200 + i)
        while time.perf_counter() < deadline:
            entries, fens = [], []
            for _ in range(BATCH_SIZE):
                body, fen = entry_body(rng)
                body["collective_id"] = rng.choice(collectives)
                entries.append(body)
                fens.append(fen)
            try:
                response = session.post(f"{server.url}/v1/entries/batch", json={"entries": entries}, timeout=120)
            except Exception as exc:
                with tally.lock:
                    tally.errors.append(str(exc)[:200])
                continue
            with tally.lock:
                tally.last = time.perf_counter()
                if response.status_code != 200:
                    tally.refused += len(entries)
                    tally.errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                for result, body, fen in zip(response.json()["results"], entries, fens, strict=True):
                    if result["status"] == 201:
                        tally.posted += 1
                        tally.credit(body["collective_id"], fen)
                    else:
                        tally.refused += 1
                        tally.errors.append(str(result.get("error"))[:200])

    _run_clients(BATCH_CLIENTS, client, seconds)
    return tally


def run(ctx: Context, server: LedgerServer, bootstrap: str) -> Outcome:
    outcome = Outcome("posting", "1. Posting throughput: journal entries per second through the HTTP API")
    session = server.session()
    singles = [f"bench-single-{i}" for i in range(SINGLE_CLIENTS)]
    batched = [f"bench-batch-{i:02d}" for i in range(50)]
    register_collectives(session, server.url, singles + batched)
    warm = random.Random(1)
    expected: dict[str, int] = {}
    for i in range(20):
        body, fen = entry_body(warm)
        collective = singles[i % len(singles)]
        session.post(f"{server.url}/v1/collectives/{collective}/entries", json=body, timeout=60).raise_for_status()
        expected[collective] = expected.get(collective, 0) + fen
    seconds = ctx.seconds

    cpu0, writes0 = server.cpu_seconds(), writes(server)
    single = single_posts(server, singles, seconds)
    single_cpu_s = server.cpu_seconds() - cpu0
    single_cpu = single_cpu_s / max(single.last - single.first, 1e-9)
    single_writes = WritesDelta.between(writes0, writes(server))
    say(f"  single posts: {single.posted:,} in {single.last - single.first:.1f} s, {single.refused} refused; "
        f"{single_writes.summary()}")

    before = entries_end(bootstrap)
    cpu0, writes0 = server.cpu_seconds(), writes(server)
    batch = batch_posts(server, batched, seconds)
    batch_cpu_s = server.cpu_seconds() - cpu0
    batch_cpu = batch_cpu_s / max(batch.last - batch.first, 1e-9)
    batch_writes = WritesDelta.between(writes0, writes(server))
    after = entries_end(bootstrap)
    say(f"  batches: {batch.posted:,} in {batch.last - batch.first:.1f} s, {batch.refused} refused; "
        f"{batch_writes.summary()}")

    for tally in (single, batch):
        for collective, fen in tally.debit_by_collective.items():
            expected[collective] = expected.get(collective, 0) + fen
    wrong = check_visible(session, server.url, expected)
    records = read_records(bootstrap, before, after)
    raw_rate = raw_produce(bootstrap, records)
    raw_chunked = raw_produce(bootstrap, records, flush_every=BATCH_SIZE)
    say(f"  raw kafka-python produce of the same {len(records):,} envelopes: {raw_rate:,.0f}/s "
        f"({raw_chunked:,.0f}/s flushing every {BATCH_SIZE:,})")

    floor = service_floor(ctx.work)
    cores = len(os.sched_getaffinity(0))
    say(f"  the ledger's own CPU, in process without broker or HTTP: {floor.single_ms:.2f} ms a single post, "
        f"{floor.batch_entry_ms:.3f} ms an entry of a batch")

    ratio = batch.rate / raw_rate if raw_rate else 0.0
    outcome.add(Figure(f"Batch posting ({BATCH_CLIENTS} clients × {BATCH_SIZE:,}-entry batches)", batch.rate,
                       "entries/s", baseline=raw_rate, baseline_label="raw kafka-python produce, same envelopes",
                       ratio=ratio, ratio_label="of raw",
                       target=f"≥ {TARGET_RATE:,.0f} entries/s and ≥ {TARGET_RATIO} of raw",
                       met=batch.rate >= TARGET_RATE and ratio >= TARGET_RATIO))
    outcome.add(Figure(f"Single posts ({SINGLE_CLIENTS} concurrent clients)", single.rate, "entries/s",
                       baseline=raw_rate, baseline_label="raw kafka-python produce", ratio=single.rate / raw_rate,
                       ratio_label="of raw", target=f"≥ {TARGET_SINGLE:,.0f} entries/s",
                       met=single.rate >= TARGET_SINGLE))
    single_cores = TARGET_SINGLE * floor.single_ms / 1000
    batch_cores = TARGET_RATE * floor.batch_entry_ms / 1000
    outcome.add(Figure(f"Cores {TARGET_SINGLE:,.0f} single posts/s take at the ledger's own CPU per post "
                       f"({floor.single_ms:.2f} ms, in process: no broker, no HTTP)", single_cores, "cores",
                       baseline=cores, baseline_label="cores of this machine (shared with the broker and the clients)",
                       ratio=single_cores / cores, ratio_label="× the machine", digits=2))
    outcome.add(Figure(f"Cores {TARGET_RATE:,.0f} batch entries/s take at the ledger's own CPU per entry "
                       f"({floor.batch_entry_ms:.3f} ms, in process: no broker, no HTTP)", batch_cores, "cores",
                       baseline=cores, baseline_label="cores of this machine (shared with the broker and the clients)",
                       ratio=batch_cores / cores, ratio_label="× the machine", digits=2))
    outcome.details += [
        f"The floor under both targets, in the same run: the ledger app in this process on the in-memory log (no "
        f"broker, no Kafka client, no HTTP server; Flask test client) spends {floor.single_ms:.2f} ms of CPU on a "
        f"single post ({floor.posts:,} posts, one at a time) and {floor.batch_entry_ms:.3f} ms on an entry of a "
        f"{BATCH_SIZE:,}-entry batch ({floor.batches} batches): {TARGET_SINGLE:,.0f} posts/s would take "
        f"{single_cores:.2f} cores and {TARGET_RATE:,.0f} entries/s {batch_cores:.2f} cores of this work alone, "
        f"before the Kafka clients, the HTTP server, the broker and the clients, on a machine of {cores}. "
        "One process runs one core's worth of Python at a time (one GIL); several instances (docs/scaling.md) "
        "share these cores with the broker.",
        "",
        "| phase | entries acknowledged | seconds | entries/s | refused | server CPU (cores busy) | "
        "server CPU per entry |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| single posts, {SINGLE_CLIENTS} clients | {single.posted:,} | {single.last - single.first:.1f} | "
        f"{single.rate:,.0f} | {single.refused} | {single_cpu:.2f} | "
        f"{single_cpu_s / max(single.posted, 1) * 1000:.2f} ms |",
        f"| batches of {BATCH_SIZE:,}, {BATCH_CLIENTS} clients | {batch.posted:,} | {batch.last - batch.first:.1f} | "
        f"{batch.rate:,.0f} | {batch.refused} | {batch_cpu:.2f} | {batch_cpu_s / max(batch.posted, 1) * 1000:.2f} ms |",
        f"| raw kafka-python produce (baseline) | {len(records):,} | | {raw_rate:,.0f} | | | |",
        f"| raw produce, flushed every {BATCH_SIZE:,} (as one batch request does) | {len(records):,} | | "
        f"{raw_chunked:,.0f} | | | |",
        "",
        "Group commit, from the server's `/health` `writes`: each group is one Kafka transaction; per group, "
        "the milliseconds of each phase (wall clock / CPU of the whole server process meanwhile). *stage*: "
        "decide, seal and fold speculatively; *checkpoint*: a signed checkpoint due before or after the group; "
        "*publish*: the transaction (produce, acks, commit); *fold*: until the projection applied the group "
        "(pipelined: outside the lock, while the next group is staged and published).",
        "",
        "| phase | groups | requests per group | largest group (since start) | stage | checkpoint | publish | fold |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        single_writes.row(f"single posts, {SINGLE_CLIENTS} clients"),
        batch_writes.row(f"batches of {BATCH_SIZE:,}, {BATCH_CLIENTS} clients"),
        "",
    ]
    if wrong:
        outcome.note(f"{len(wrong)} collectives' trial balances differ from what was acknowledged: {wrong[:3]}")
    else:
        outcome.note(f"every acknowledged entry is visible: the trial balances of {len(expected)} collectives, "
                     "read back after the run, equal the debits acknowledged to the clients")
    if single.errors or batch.errors:
        outcome.note(f"errors: {(single.errors + batch.errors)[:3]}")
    outcome.note(f"the server is one gunicorn worker process: {batch_cpu:.2f} cores busy during the batch phase "
                 f"(of {cores}; the broker and the clients share the rest)")
    if ctx.should_profile(outcome.missed):
        outcome.profile = profile_batches(ctx, bootstrap)
    return outcome


def batch_payloads(rng: random.Random, collectives: list[str], count: int) -> list[dict[str, Any]]:
    """``count`` bodies of ``POST /v1/entries/batch``, each of ``BATCH_SIZE`` entries to random ``collectives``."""
    payloads = []
    for _ in range(count):
        entries = []
        for _ in range(BATCH_SIZE):
            body, _fen = entry_body(rng)
            body["collective_id"] = rng.choice(collectives)
            entries.append(body)
        payloads.append({"entries": entries})
    return payloads


@dataclass
class Floor:
    """The ledger's own CPU per entry, in process on the in-memory log: no broker, no Kafka client, no HTTP."""

    single_ms: float
    batch_entry_ms: float
    posts: int
    batches: int


def service_floor(work: Path, *, posts: int = 2_000, batches: int = 5) -> Floor:
    """CPU milliseconds of one single post and of one entry of a 1,000-entry batch, the ledger app in this
    process on ``InMemoryLog`` (Flask test client, start-up objects frozen out of the collector as the server
    does): what the service's Python spends however fast the broker, the network and the clients are."""
    from services.runtime.eventlog import InMemoryLog

    with in_process_ledger("in-memory", work, log=InMemoryLog(), folder="ledger-floor") as (client, token, _):
        headers = {"Authorization": f"Bearer {token}"}
        collectives = [f"floor-{i:02d}" for i in range(20)]
        for collective in collectives:
            client.post("/v1/collectives", headers=headers,
                        json={"collective_id": collective, "name": "压测村", "town": "金清镇"})
        rng = random.Random(5)
        bodies = [entry_body(rng)[0] for _ in range(posts + 200)]
        payloads = batch_payloads(rng, collectives, batches + 1)
        gc.collect()
        gc.freeze()
        try:
            def post(i: int) -> None:
                response = client.post(f"/v1/collectives/{collectives[i % 20]}/entries", json=bodies[i],
                                       headers=headers)
                assert response.status_code == 201, response.get_data(as_text=True)[:300]

            def batch(payload: dict[str, Any]) -> None:
                response = client.post("/v1/entries/batch", json=payload, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)[:300]

            for i in range(200):  # warm-up
                post(i)
            cpu = time.process_time()
            for i in range(200, 200 + posts):
                post(i)
            single = (time.process_time() - cpu) * 1000 / posts
            batch(payloads[0])
            cpu = time.process_time()
            for payload in payloads[1:]:
                batch(payload)
            entry = (time.process_time() - cpu) * 1000 / (batches * BATCH_SIZE)
        finally:
            gc.unfreeze()
    return Floor(single, entry, posts, batches)


def writes(server: LedgerServer) -> dict[str, Any]:
    """The server's group-commit figures so far (``/health`` ``writes``)."""
    found: dict[str, Any] = server.session().get(f"{server.url}/health", timeout=30).json().get("writes", {})
    return found


@dataclass
class WritesDelta:
    """What the write path did during one phase: groups, requests, and per group the ms of each phase."""

    groups: int
    requests: int
    largest: int
    wall_ms: dict[str, float]
    cpu_ms: dict[str, float]

    @classmethod
    def between(cls, before: dict[str, Any], after: dict[str, Any]) -> WritesDelta:
        groups = after.get("groups", 0) - before.get("groups", 0)
        per = max(groups, 1)

        def ms(key: str) -> dict[str, float]:
            return {phase: (value - before.get(key, {}).get(phase, 0.0)) * 1000 / per
                    for phase, value in after.get(key, {}).items()}

        return cls(groups, after.get("requests", 0) - before.get("requests", 0), after.get("largest_group", 0),
                   ms("seconds"), ms("cpu_seconds"))

    @property
    def per_group(self) -> float:
        return self.requests / self.groups if self.groups else 0.0

    def cell(self, phase: str) -> str:
        return f"{self.wall_ms.get(phase, 0.0):,.1f} / {self.cpu_ms.get(phase, 0.0):,.1f}"

    def row(self, label: str) -> str:
        return (f"| {label} | {self.groups:,} | {self.per_group:.1f} | {self.largest} | {self.cell('stage')} | "
                f"{self.cell('checkpoint')} | {self.cell('publish')} | {self.cell('fold')} |")

    def summary(self) -> str:
        phases = ", ".join(f"{phase} {self.cell(phase)}" for phase in ("stage", "checkpoint", "publish", "fold"))
        return (f"{self.groups:,} groups of {self.per_group:.1f} requests; ms per group (wall / CPU): {phases}")


def profile_batches(ctx: Context, bootstrap: str, batches: int = 8) -> str:
    """Where a batch request's time goes: the ledger app in this process, sampled across all its threads."""
    rng = random.Random(3)
    with in_process_ledger(bootstrap, ctx.work) as (client, token, caught_up):
        headers = {"Authorization": f"Bearer {token}"}
        collectives = [f"bench-batch-{i:02d}" for i in range(50)]
        for collective in collectives:
            client.post("/v1/collectives", headers=headers,
                        json={"collective_id": collective, "name": "压测村", "town": "金清镇"})
        payloads = batch_payloads(rng, collectives, batches)

        def post_all() -> None:
            for payload in payloads:
                response = client.post("/v1/entries/batch", json=payload, headers=headers)
                statuses = {r["status"] for r in response.get_json()["results"]}
                assert response.status_code == 200 and statuses == {201}, response.get_data(as_text=True)[:300]

        began = time.perf_counter()
        with Sampler() as sampler:
            request_thread = profile_call(post_all, limit=30, restrict=REQUEST_PATH)
        seconds = time.perf_counter() - began
    head = (f"in-process ledger (Flask test client, no HTTP server), caught up with the broker in {caught_up:.1f} s; "
            f"{batches} batches of {BATCH_SIZE:,} in {seconds:.1f} s = {batches * BATCH_SIZE / seconds:,.0f} "
            f"entries/s while sampled")
    return "\n".join([head, "", "== cProfile of the request thread ==", request_thread, "",
                      "== every thread, sampled ==", sampler.report()])
