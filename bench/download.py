"""Benchmark 6 — the web page's Excel download on the log of benchmark 2: a kept replay against a replay per click.

In this process, the web app (``services.web.app.create_app``, driven by Flask's test client: no
HTTP server; the three services are not needed for the download) reads the broker that holds the
generated log. A village accountant's token downloads that village's workbook:

- **replay per download** (the baseline): the request handler as it was before the cache,
  verbatim — ``run_audit`` over a fresh ``KafkaSource`` from the beginning of the log, then
  ``write_xlsx`` for the collective. Every click of every accountant paid this;
- **first download**: the web app replays the whole log once into the fold it keeps, then writes
  the workbook;
- **repeat download**: the log has not moved; the end offsets are taken and the kept workbook is
  given again (the median of several);
- **another village's first download**: the kept fold is caught up (nothing new) and that
  village's workbook is written;
- **after 1,000 new events** (another village's entries): only those records are read and folded,
  and the workbook is written again.

Each workbook the web app gives is checked against the baseline's (same cells in every sheet).
The memory the kept fold holds is this process's VmRSS after the first download minus before it.
"""

from __future__ import annotations

import gc
import io
import statistics
import time
from pathlib import Path
from typing import Any

from bench.harness import Context, Figure, Outcome, say
from services.audit.checks.auditor import run_audit
from services.audit.exports.tables import write_xlsx
from services.audit.sources.kafka import KafkaSource
from services.contracts.topics import LEDGER_ENTRIES, RECORD_TOPICS
from services.devtools.broker import free_port
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import end_offsets

NEW_EVENTS = 1_000
REPEATS = 5


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cells(data: bytes) -> dict[str, list[tuple[Any, ...]]]:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook.worksheets}
    finally:
        workbook.close()


def replay_per_download(bootstrap: str, collective_id: str) -> tuple[bytes, Any]:
    """The download before the cache: the whole log replayed, then the collective's workbook written."""
    result = run_audit(KafkaSource(bootstrap), keep_memos=True)
    books = result.auditor.books
    if collective_id not in books.collective_ids():
        raise RuntimeError(f"the log holds no books of {collective_id}")
    out = io.BytesIO()
    write_xlsx(books, result.auditor.payouts, out, collective_id)
    return out.getvalue(), books


def first_village(bootstrap: str) -> str:
    """The collective of the first CollectiveRegistered on partition 0 of the entries topic."""
    from kafka import KafkaConsumer, TopicPartition

    from services.contracts.codec import decode_envelope

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partition = TopicPartition(LEDGER_ENTRIES, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    envelope = decode_envelope(record.value)
                    if envelope["type"] == "CollectiveRegistered":
                        return str(envelope["data"]["collective_id"])
    finally:
        consumer.close()
    raise RuntimeError("no CollectiveRegistered on the entries topic")


def write_new_events(bootstrap: str, count: int) -> str:
    """``count`` new events on the entries topic: a new village registered and its entries (a chain of its own)."""
    from kafka import KafkaProducer

    from services.contracts.codec import canonical
    from services.devtools.synthetic import LogWriter

    partitions = 1 + max(p for (t, p) in end_offsets(bootstrap, [LEDGER_ENTRIES]) if t == LEDGER_ENTRIES)
    village = f"bench-download-{time.time_ns() % 10**8:08d}"
    log = LogWriter(partitions=partitions)
    log.register_collective(village, "基准新村")
    for n in range(count - 1):
        log.post_entry(village, f"2026-{n % 12 + 1:02d}-15", [("513", "debit", f"{100 + n}.00"),
                                                                ("102", "credit", f"{100 + n}.00")], "办公费用")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    try:
        for row in log.rows:
            producer.send(row["topic"], value=canonical(row["event"]), key=row["key"].encode(),
                          partition=row["partition"])
        producer.flush()
    finally:
        producer.close()
    return village


def run(ctx: Context, bootstrap: str) -> Outcome:
    from services.web.app import create_app
    from services.web.proxy import Upstreams

    outcome = Outcome("download", "6. Download: the web page's Excel workbook, kept replay against replay per click")
    records = sum(end_offsets(bootstrap, list(RECORD_TOPICS)).values())
    village = first_village(bootstrap)
    data_dir = ctx.work / "web-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens_file = data_dir / "tokens.json"
    settings = Settings(bootstrap_servers=bootstrap, data_dir=data_dir, tokens_file=tokens_file, request_timeout_s=30)
    tokens: dict[str, str] = {}
    down = f"http://127.0.0.1:{free_port()}"
    gc.collect()
    rss_before = _rss_mb()
    app = create_app(settings, Upstreams(ledger=down, rentals=down, dividends=down))
    client = app.test_client()
    cache = app.extensions["baotuan_workbooks"]

    def download(collective_id: str) -> tuple[float, bytes]:
        """One accountant's download of its village's workbook (its token made and loaded beforehand)."""
        if collective_id not in tokens:
            tokens[collective_id] = add_token(tokens_file, name=f"accountant-{collective_id}", role="accountant",
                                              scope=[collective_id])
            client.get("/api/whoami", headers={"Authorization": f"Bearer {tokens[collective_id]}"})
        began = time.perf_counter()
        response = client.get(f"/api/export.xlsx?collective_id={collective_id}",
                              headers={"Authorization": f"Bearer {tokens[collective_id]}"})
        seconds = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"download of {collective_id}: {response.status_code} {response.get_data(as_text=True)}")
        return seconds, response.data

    first_s, first = download(village)
    rss_kept = _rss_mb() - rss_before
    say(f"  first download ({village}, replays {records:,} records): {first_s:.1f} s; the kept replay holds "
        f"{rss_kept:.0f} MB")
    repeats = [download(village) for _ in range(REPEATS)]
    repeat_s = statistics.median(s for s, _ in repeats)
    say(f"  repeat download (log unchanged): median {repeat_s * 1000:.0f} ms of {REPEATS}")

    old_s_began = time.perf_counter()
    old, books = replay_per_download(bootstrap, village)
    old_s = time.perf_counter() - old_s_began
    say(f"  replay per download (the handler before the cache): {old_s:.1f} s")
    if _cells(first) != _cells(old) or any(data != first for _, data in repeats):
        raise RuntimeError("the web app's workbook differs from the one a replay per download writes")
    entries = sum(1 for _ in books.entries_of(village))
    other = next(cid for cid in books.collective_ids() if cid != village)
    del books, old
    gc.collect()

    other_s, _ = download(other)
    say(f"  another village's first download ({other}): {other_s * 1000:.0f} ms")

    new_village = write_new_events(bootstrap, NEW_EVENTS)
    after_s, after = download(village)
    say(f"  download after {NEW_EVENTS:,} new events of {new_village}: {after_s * 1000:.0f} ms")
    if _cells(after)["凭证明细"] != _cells(first)["凭证明细"]:
        raise RuntimeError("another village's new entries changed this village's workbook")

    outcome.add(Figure(f"First download after the web app starts (replays {records:,} events once)", first_s, "s",
                       baseline=old_s, baseline_label="replay per download (before)", ratio=first_s / old_s,
                       ratio_label="× before", digits=1))
    outcome.add(Figure("Repeat download, log unchanged (median)", repeat_s * 1000, "ms", baseline=old_s * 1000,
                       baseline_label="replay per download (before)", ratio=old_s / repeat_s,
                       ratio_label="× faster", digits=0))
    outcome.add(Figure(f"Download after {NEW_EVENTS:,} new events (folds only them)", after_s * 1000, "ms",
                       baseline=old_s * 1000, baseline_label="replay per download (before)",
                       ratio=old_s / after_s, ratio_label="× faster", digits=0))
    outcome.add(Figure("Another village's first download (kept replay, workbook written)", other_s * 1000, "ms",
                       baseline=old_s * 1000, baseline_label="replay per download (before)",
                       ratio=old_s / other_s, ratio_label="× faster", digits=0))
    outcome.add(Figure("Memory the kept replay holds (VmRSS after − before the first download)", rss_kept, "MB"))
    stats = cache.stats
    outcome.details += [
        "| download | seconds | what it reads from Kafka |",
        "|---|---:|---|",
        f"| replay per download (the handler before the cache: `run_audit` + `write_xlsx`) | {old_s:.2f} | "
        f"the whole log, {records:,} records, every time |",
        f"| first download after the web app starts | {first_s:.2f} | the whole log, once |",
        f"| repeat download, log unchanged (median of {REPEATS}) | {repeat_s:.3f} | the end offsets only |",
        f"| another village's first download | {other_s:.3f} | the end offsets only |",
        f"| after {NEW_EVENTS:,} new events of another village | {after_s:.3f} | those {NEW_EVENTS:,} records |",
        "",
        f"The village ({village}) has {entries:,} journal entries in a log of {records:,} records. The web app "
        f"replayed from the beginning {stats.full_replays} time(s), caught up {stats.catch_ups} time(s) "
        f"({stats.records_folded:,} records folded in all), wrote {stats.renders} workbooks and gave a kept one "
        f"{stats.hits} times. Every workbook it gave has the same cells as the baseline's.",
        "",
    ]
    outcome.note(f"the kept replay holds about {rss_kept:.0f} MB in the web app's process for this log (the audit's "
                 "fold of every village's books, payouts and checks), for as long as the process runs")
    return outcome
