"""Talking to the ledger the way its users do (HTTP), and to Kafka the way the baselines do."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.generate import ENTRY_TEMPLATES
from services.contracts.money import format_yuan
from services.contracts.topics import LEDGER_ENTRIES
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import EventProducer, end_offsets, ensure_topics, producer_settings

RAW_TOPIC = "bench.raw-produce.v1"
#: The baseline: the client's best configuration for this durability (issue 16), not the services' own settings:
#: acks=all and idempotent like the services, 256 KB batches, linger 5 ms (the services linger 200 ms and flush
#: each publish explicitly, in one transaction).
BEST_PRODUCER = {**producer_settings(), "linger_ms": 5}


def register_collectives(session: requests.Session, url: str, ids: Sequence[str]) -> None:
    for i, collective_id in enumerate(ids):
        response = session.post(f"{url}/v1/collectives", json={
            "collective_id": collective_id, "name": f"压测{i}村", "town": "金清镇", "alliances": ["滨海飞地抱团"]},
            timeout=30)
        if response.status_code not in (201, 409):
            raise RuntimeError(f"registering {collective_id}: {response.status_code} {response.text[:300]}")


_WEIGHTS = [t[5] for t in ENTRY_TEMPLATES]


def entry_body(rng: random.Random) -> tuple[dict[str, Any], int]:
    """A realistic journal entry (2-4 lines) dated in 2025, and its debit total in fen."""
    memo, debits, credits, low, high, _ = rng.choices(ENTRY_TEMPLATES, _WEIGHTS)[0]
    total = rng.randrange(low * 100, high * 100)
    lines = _split(rng, debits, "debit", total) + _split(rng, credits, "credit", total)
    day = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(365))
    return {"date": day.isoformat(), "memo": memo, "lines": lines}, total


def _split(rng: random.Random, accounts: tuple[str, ...], side: str, total: int) -> list[dict[str, str]]:
    parts, left = [], total
    for account in accounts[:-1]:
        share = max(1, left * rng.randrange(30, 70) // 100)
        parts.append({"account": account, side: format_yuan(share)})
        left -= share
    parts.append({"account": accounts[-1], side: format_yuan(left)})
    return parts


def check_visible(session: requests.Session, url: str, expected: dict[str, int]) -> list[str]:
    """Compare each collective's trial-balance debit total with what was acknowledged; the mismatches."""
    wrong = []
    for collective_id, fen in sorted(expected.items()):
        response = session.get(f"{url}/v1/collectives/{collective_id}/trial-balance", timeout=60)
        got = response.json().get("totals", {}).get("debit") if response.ok else f"HTTP {response.status_code}"
        if got != format_yuan(fen):
            wrong.append(f"{collective_id}: trial balance {got}, acknowledged {format_yuan(fen)}")
    return wrong


# -- Kafka baselines --------------------------------------------------------------------------------------


@dataclass
class RawRecord:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def read_records(bootstrap: str, start: dict[tuple[str, int], int], end: dict[tuple[str, int], int],
                 limit: int | None = None, timeout_s: float = 300.0) -> list[RawRecord]:
    """The committed records of the entries topic between two sets of end offsets (what a phase published).

    Since the services write in transactions, the end offsets count the transactions' markers too, which a
    consumer never returns as records: it is done when its *position* reaches each end offset, not when it
    has seen ``end - start`` records (that count is never reached, and it waited out its whole deadline).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed", max_poll_records=5000,
                             fetch_max_bytes=64 * 1024 * 1024)
    try:
        wanted = {TopicPartition(t, p): (start.get((t, p), 0), off) for (t, p), off in end.items()
                  if t == LEDGER_ENTRIES and off > start.get((t, p), 0)}
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        out: list[RawRecord] = []
        deadline = time.monotonic() + timeout_s
        while limit is None or len(out) < limit:
            if all(consumer.position(tp) >= last for tp, (_, last) in wanted.items()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read the entries topic up to {end} within {timeout_s:.0f} s")
            for tp, records in consumer.poll(timeout_ms=1000).items():
                last = wanted[tp][1]
                out += [RawRecord(r.key, r.value, list(r.headers or [])) for r in records if r.offset < last]
        return out[:limit] if limit else out
    finally:
        consumer.close()


def raw_produce(bootstrap: str, records: Sequence[RawRecord], *, flush_every: int | None = None) -> float:
    """Produce ``records`` to a scratch topic with the client's best settings; records/s acknowledged."""
    ensure_topics(bootstrap, [RAW_TOPIC])
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="bench-raw", **BEST_PRODUCER)
    try:
        warm_up = producer.send(RAW_TOPIC, key=b"warm-up", value=b"{}")
        producer.flush(timeout=30)
        warm_up.get(timeout=30)
        began = time.perf_counter()
        futures = []
        for i, record in enumerate(records, 1):
            futures.append(producer.send(RAW_TOPIC, key=record.key, value=record.value, headers=record.headers))
            if flush_every and i % flush_every == 0:
                producer.flush(timeout=60)
        producer.flush(timeout=120)
        for future in futures:
            future.get(timeout=60)
        return len(records) / (time.perf_counter() - began)
    finally:
        producer.close(timeout=10)


def _send_and_ack(producer: KafkaProducer, record: RawRecord) -> None:
    """One record, sent at once and acknowledged, as ``EventProducer.publish`` sends a post's event."""
    future = producer.send(RAW_TOPIC, key=record.key, value=record.value, headers=record.headers)
    producer.flush(timeout=30)
    future.get(timeout=30)


def acked_latencies(bootstrap: str, record: RawRecord, *, rate: float, seconds: float,
                    warm_up_s: float = 0.0) -> list[float]:
    """Produce one envelope at a time at ``rate``/s and wait for each acknowledgement; latencies in ms (from each
    one's due time). The first ``warm_up_s`` seconds, at the same rate, are not counted."""
    ensure_topics(bootstrap, [RAW_TOPIC])
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="bench-raw-latency", **BEST_PRODUCER)
    try:
        _send_and_ack(producer, record)
        return _paced(lambda: _send_and_ack(producer, record), rate=rate, seconds=seconds, warm_up_s=warm_up_s)
    finally:
        producer.close(timeout=10)


def paced_transactions(bootstrap: str, record: RawRecord, *, rate: float, seconds: float,
                       warm_up_s: float = 0.0) -> list[float]:
    """One record per Kafka transaction at ``rate``/s, with the services' EventProducer (begin, produce, commit:
    what a group of one post pays the broker); latencies in ms from each one's due time, after ``warm_up_s``."""
    ensure_topics(bootstrap, [RAW_TOPIC])
    producer = EventProducer(bootstrap, "bench-paced-transactions",
                             transactional_id=f"bench-paced-transactions-{os.getpid()}")
    try:
        producer.send_raw(RAW_TOPIC, record.key, record.value, record.headers)
        return _paced(lambda: producer.send_raw(RAW_TOPIC, record.key, record.value, record.headers), rate=rate,
                      seconds=seconds, warm_up_s=warm_up_s)
    finally:
        producer.close()


def _paced(call: Callable[[], object], *, rate: float, seconds: float, warm_up_s: float) -> list[float]:
    """``call()`` at ``rate``/s, one at a time; ms from each one's due time to its end, after ``warm_up_s``."""
    latencies = []
    skip = int(rate * warm_up_s)
    began = time.perf_counter()
    for i in range(skip + int(rate * seconds)):
        scheduled = began + i / rate
        pause = scheduled - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        call()
        if i >= skip:
            latencies.append((time.perf_counter() - scheduled) * 1000)
    return latencies


def back_to_back_transactions(bootstrap: str, record: RawRecord, *, count: int,
                              sender_backoff_ms: int | None = None) -> list[float]:
    """One record per transaction, each begun as soon as the previous one committed (a writer under load),
    with the services' EventProducer; ms per transaction. ``sender_backoff_ms``: the sender's wait before it
    resends a transactional request (None: the services' setting; 100: kafka-python's own)."""
    ensure_topics(bootstrap, [RAW_TOPIC])
    extra = {} if sender_backoff_ms is None else {"sender_retry_backoff_ms": sender_backoff_ms}
    producer = EventProducer(bootstrap, "bench-transactions",
                             transactional_id=f"bench-transactions-{sender_backoff_ms}-{os.getpid()}", **extra)
    try:
        producer.send_raw(RAW_TOPIC, record.key, record.value, record.headers)
        took = []
        for _ in range(count):
            began = time.perf_counter()
            producer.send_raw(RAW_TOPIC, record.key, record.value, record.headers)
            took.append((time.perf_counter() - began) * 1000)
        return took
    finally:
        producer.close()


# -- the ledger in this process (for profiles) -------------------------------------------------------------


@contextlib.contextmanager
def in_process_ledger(bootstrap: str, work: Path, *, log: Any = None,
                      folder: str = "ledger-inprocess") -> Iterator[tuple[Any, str, float]]:
    """The ledger app in this process (Flask test client), caught up with the broker (or with ``log``, an
    ``InMemoryLog``), its data in ``work/folder``: (client, token, seconds to start)."""
    from services.ledger.app import create_app

    data = work / folder
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    token = add_token(data / "tokens.json", name="bench", role="admin")
    began = time.perf_counter()
    settings = Settings(bootstrap_servers=bootstrap, data_dir=data, tokens_file=data / "tokens.json")
    app = create_app(settings) if log is None else create_app(settings, log=log)
    caught_up = time.perf_counter() - began
    try:
        yield app.test_client(), token, caught_up
    finally:
        app.extensions["baotuan_service"].stop()


def entries_end(bootstrap: str) -> dict[tuple[str, int], int]:
    return end_offsets(bootstrap, [LEDGER_ENTRIES])
