"""Benchmark 4 — latency of a single entry post at a steady 50 requests/s.

An open-loop schedule: request i is due at start + i/50 s and is sent then by a pool of client
threads whether or not earlier requests have answered, and its latency counts from that due
time, so a slow answer cannot hide the requests queued behind it (no coordinated omission).
Both sides are warmed up first (2 s of posts; 2 s of raw produce, not counted): the first
seconds of a fresh broker and a fresh client are slower, and a p99 must not be theirs.
Baseline, in the same run at the same rate: one envelope produced and acknowledged (acks=all)
with kafka-python's best settings for it — the floor a post cannot go below. Then where the
time of one post goes, phase by phase (bench/phases.py), so the figure explains itself.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench.clients import (
    acked_latencies,
    back_to_back_transactions,
    entries_end,
    entry_body,
    in_process_ledger,
    paced_transactions,
    read_records,
    register_collectives,
)
from bench.harness import Context, Figure, LedgerServer, Outcome, percentile, profile_call, say
from bench.phases import cpu_table, post_phases
from bench.phases import table as phase_table
from bench.sampler import Sampler

#: The functions of a request worth seeing in its cumulative profile.
REQUEST_PATH = "services/|kafka/producer/kafka.py|uuid.py|flask_smorest/response.py"

RATE = 50.0
TARGET_P99_MS = 50.0
POOL = 16
WARM_UP_S = 2.0
#: Posts timed phase by phase (one at a time, at RATE).
PHASE_POSTS = 500


def paced_posts(server: LedgerServer, collectives: list[str], seconds: float, rate: float = RATE
                ) -> tuple[list[float], list[float], int]:
    """(latencies from the due time, service times from the actual send, failures), in ms."""
    local = threading.local()
    lock = threading.Lock()
    latencies: list[float] = []
    service: list[float] = []
    failures = 0
    rng = random.Random(50)
    bodies = [entry_body(rng)[0] for _ in range(int(rate * seconds))]

    def post(i: int, due: float) -> None:
        nonlocal failures
        session: requests.Session | None = getattr(local, "session", None)
        if session is None:
            session = local.session = server.session()
        sent = time.perf_counter()
        try:
            ok = session.post(f"{server.url}/v1/collectives/{collectives[i % len(collectives)]}/entries",
                              json=bodies[i], timeout=30).status_code == 201
        except requests.RequestException:
            ok = False
        done = time.perf_counter()
        with lock:
            if ok:
                latencies.append((done - due) * 1000)
                service.append((done - sent) * 1000)
            else:
                failures += 1

    with ThreadPoolExecutor(max_workers=POOL, thread_name_prefix="bench-latency") as pool:
        began = time.perf_counter() + 0.05
        for i in range(len(bodies)):
            due = began + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(post, i, due)
    return sorted(latencies), sorted(service), failures


def run(ctx: Context, server: LedgerServer, bootstrap: str) -> Outcome:
    outcome = Outcome("latency", "4. Latency of a single entry post at a steady 50 requests/s")
    session = server.session()
    collectives = [f"bench-latency-{i}" for i in range(10)]
    register_collectives(session, server.url, collectives)
    before = entries_end(bootstrap)
    paced_posts(server, collectives, WARM_UP_S)  # warm-up: connections, the broker's first appends, caches
    sample = read_records(bootstrap, before, entries_end(bootstrap), limit=1)[0]
    # The baseline first (warmed up the same way), then the posts: the same broker, minutes apart at most.
    floor = sorted(acked_latencies(bootstrap, sample, rate=RATE, seconds=max(5.0, ctx.seconds / 2),
                                   warm_up_s=WARM_UP_S))
    f50, f99 = percentile(floor, 50), percentile(floor, 99)
    say(f"  raw produce + ack at {RATE:.0f}/s (after a {WARM_UP_S:.0f} s warm-up): p50 {f50:.1f} ms, "
        f"p99 {f99:.1f} ms")
    # What the broker alone makes a group of one post pay: one record per transaction, at the same rate.
    txn = sorted(paced_transactions(bootstrap, sample, rate=RATE, seconds=max(5.0, ctx.seconds / 2),
                                    warm_up_s=WARM_UP_S))
    x50, x99 = percentile(txn, 50), percentile(txn, 99)
    say(f"  one-record transactions at {RATE:.0f}/s: p50 {x50:.1f} ms, p99 {x99:.1f} ms, max {txn[-1]:.1f} ms")
    seconds = ctx.seconds * 1.5
    cpu0 = server.cpu_seconds()
    latencies, service, failures = paced_posts(server, collectives, seconds)
    cpu = (server.cpu_seconds() - cpu0) / seconds
    p50, p99, worst = percentile(latencies, 50), percentile(latencies, 99), latencies[-1] if latencies else 0.0
    say(f"  {len(latencies):,} posts at {RATE:.0f}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms, "
        f"{failures} failed")

    # The transactions alone: what a writer under load pays per commit, with the services' sender setting and
    # with kafka-python's own (100 ms before resending an AddPartitionsToTxn refused as CONCURRENT_TRANSACTIONS).
    ours = sorted(back_to_back_transactions(bootstrap, sample, count=200))
    library = sorted(back_to_back_transactions(bootstrap, sample, count=60, sender_backoff_ms=100))
    t50, t99, l50 = percentile(ours, 50), percentile(ours, 99), percentile(library, 50)
    say(f"  back-to-back one-record transactions: p50 {t50:.1f} ms, p99 {t99:.1f} ms "
        f"(kafka-python's sender backoff: p50 {l50:.1f} ms)")

    phases = post_phases(bootstrap, ctx.work / "ledger-phases", count=PHASE_POSTS if not ctx.quick else 150,
                         rate=RATE)
    rows = phase_table(phases)
    say("  one post, phase by phase (in process, one at a time):\n" + "\n".join(f"    {row}" for row in rows))
    cpu_rows = cpu_table(phases)
    say("  the CPU of one post, thread by thread (the same posts):\n" + "\n".join(f"    {row}" for row in cpu_rows))

    outcome.add(Figure("p99 of a single entry post", p99, "ms", baseline=f99,
                       baseline_label="p99 raw produce + ack (acks=all)", ratio=p99 / f99 if f99 else None,
                       ratio_label="× raw", target=f"≤ {TARGET_P99_MS:.0f} ms", met=p99 <= TARGET_P99_MS, digits=1))
    outcome.add(Figure("p99 of a single entry post against a one-record transaction", p99, "ms", baseline=x99,
                       baseline_label="p99 one-record transaction at the same rate", ratio=p99 / x99 if x99 else None,
                       ratio_label="× transaction", digits=1))
    outcome.add(Figure("p50 of a single entry post", p50, "ms", baseline=f50, baseline_label="p50 raw produce + ack",
                       ratio=p50 / f50 if f50 else None, ratio_label="× raw", digits=1))
    outcome.add(Figure("p50 of a one-record transaction right after another", t50, "ms", baseline=l50,
                       baseline_label="p50 with kafka-python's sender backoff (100 ms)",
                       ratio=t50 / l50 if l50 else None, ratio_label="× library default", digits=1))
    outcome.details += [
        f"{len(latencies):,} posts over {seconds:.0f} s (after a {WARM_UP_S:.0f} s warm-up), {POOL} client threads, "
        f"each post to one of {len(collectives)} collectives; the server used {cpu:.2f} cores on average. The raw "
        f"baseline ran just before, at the same rate, after a {WARM_UP_S:.0f} s warm-up of its own, and so did one "
        "record per Kafka transaction (begin, produce, commit: three round trips to a broker that fsyncs each "
        "append), the floor a post's group of one cannot go below.",
        "",
        "| | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|",
        f"| entry post, from its due time | {p50:.1f} | {percentile(latencies, 90):.1f} | {p99:.1f} | {worst:.1f} |",
        f"| entry post, from its actual send | {percentile(service, 50):.1f} | {percentile(service, 90):.1f} | "
        f"{percentile(service, 99):.1f} | {service[-1] if service else 0:.1f} |",
        f"| raw produce + ack (baseline) | {f50:.1f} | {percentile(floor, 90):.1f} | {f99:.1f} | {floor[-1]:.1f} |",
        f"| one-record transaction at {RATE:.0f}/s (EventProducer: what a group of one post pays the broker) | "
        f"{x50:.1f} | {percentile(txn, 90):.1f} | {x99:.1f} | {txn[-1]:.1f} |",
        f"| one-record transaction right after another (EventProducer) | {t50:.1f} | {percentile(ours, 90):.1f} | "
        f"{t99:.1f} | {ours[-1]:.1f} |",
        f"| the same with kafka-python's sender backoff | {l50:.1f} | {percentile(library, 90):.1f} | "
        f"{percentile(library, 99):.1f} | {library[-1]:.1f} |",
        "",
        f"Where one post's time goes: {len(phases.totals)} posts to the ledger in this process (Flask test client, "
        f"no HTTP server), one at a time at {RATE:.0f}/s, each phase timed by probes on the functions that begin "
        "and end it (bench/phases.py):",
        "",
        *rows,
        "",
        "The CPU those posts cost, per post and thread of the process (`/proc/self/task/*/stat`; the broker's is "
        "not counted). The threads share one GIL, so the process runs about one core's worth of Python at a time: "
        "the sum bounds one process's posts per second, and at 50 posts/s it is the share of that core the "
        "queue of requests sees busy:",
        "",
        *cpu_rows,
        "",
    ]
    if failures:
        outcome.note(f"{failures} posts failed")
    if ctx.should_profile(outcome.missed):
        outcome.profile = profile_single_posts(ctx, bootstrap, collectives)
    return outcome


def profile_single_posts(ctx: Context, bootstrap: str, collectives: list[str], count: int = 300) -> str:
    """Where a single post's time goes, in this process (Flask test client, no HTTP server).

    First one post at a time under cProfile: the critical path of one post. Then the same rate
    from 16 threads, open loop, sampled: what concurrent posts wait for.
    """
    rng = random.Random(9)
    with in_process_ledger(bootstrap, ctx.work) as (client, token, caught_up):
        app = client.application
        headers = {"Authorization": f"Bearer {token}"}
        alone: list[float] = []
        bodies: list[dict[str, Any]] = [entry_body(rng)[0] for _ in range(count)]
        for collective in collectives:
            client.post("/v1/collectives", headers=headers,
                        json={"collective_id": collective, "name": "压测村", "town": "金清镇"})

        def post(i: int) -> float:
            began = time.perf_counter()
            response = app.test_client().post(f"/v1/collectives/{collectives[i % len(collectives)]}/entries",
                                              json=bodies[i], headers=headers)
            assert response.status_code == 201, response.get_data(as_text=True)[:300]
            return (time.perf_counter() - began) * 1000

        def one_at_a_time() -> None:
            for i in range(len(bodies)):
                began = time.perf_counter()
                alone.append(post(i))
                time.sleep(max(0.0, 1 / RATE - (time.perf_counter() - began)))

        request_thread = profile_call(one_at_a_time, limit=30, restrict=REQUEST_PATH)
        together: list[float] = []
        lock = threading.Lock()

        def timed_post(i: int, due: float) -> None:
            post(i)
            with lock:
                together.append((time.perf_counter() - due) * 1000)

        with Sampler() as sampler, ThreadPoolExecutor(max_workers=POOL, thread_name_prefix="request") as pool:
            began = time.perf_counter()
            for i in range(len(bodies)):
                due = began + i / RATE
                time.sleep(max(0.0, due - time.perf_counter()))
                pool.submit(timed_post, i, due)
    alone.sort()
    together.sort()
    return "\n".join([
        f"in-process ledger (Flask test client, no HTTP server), caught up in {caught_up:.1f} s",
        f"{count} posts one at a time: p50 {percentile(alone, 50):.1f} ms, p99 {percentile(alone, 99):.1f} ms; "
        f"{count} posts at {RATE:.0f}/s from {POOL} threads: p50 {percentile(together, 50):.1f} ms, "
        f"p99 {percentile(together, 99):.1f} ms",
        "", "== one post at a time: cProfile of the request thread (time.sleep keeps the 50/s pace) ==",
        request_thread, "",
        f"== {POOL} threads at {RATE:.0f}/s, sampled (service.py(writing) on top of the stack = waiting for the "
        "single-writer lock) ==",
        sampler.report()])
