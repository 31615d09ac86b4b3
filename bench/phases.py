"""Where one single entry post's time goes, phase by phase (bench/latency.py prints it).

The ledger runs in this process (Flask test client, no HTTP server) against the benchmark's broker, and posts
one entry at a time at the benchmark's rate. Probes wrap the functions that start and end each phase and note
the first time each is reached during a post (the request thread's and the consumer thread's alike; one post
at a time, so each mark belongs to the post in flight):

    request ─ decide/seal ─ AddPartitionsToTxn ─ produce ─ EndTxn ─ fold at commit ─ answer

(The writer folds what it committed itself, ``Projector.fold_committed``; a post whose records it leaves to the
follower, because something the projection had not applied came first, is counted apart.)

The probes are wrappers put on the classes for the run and taken off after; nothing of the services is changed.
A post that also carries a signed checkpoint (one falls due every ``checkpoint_every`` writes; it goes ahead of
the next group's records, in its transaction) is counted apart: it is the latency's tail.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka.producer.kafka import KafkaProducer
from kafka.producer.transaction_manager import AddPartitionsToTxnHandler, EndTxnHandler

from bench.clients import entry_body, in_process_ledger
from bench.harness import percentile, stat_cpu_seconds
from services.contracts.topics import LEDGER_ENTRIES
from services.runtime.kafka_io import EventProducer
from services.runtime.projector import Projector
from services.runtime.service import EventService
from services.runtime.store import ProjectionStore

#: The phases, each from one mark to the next: (label, start mark, end mark).
PHASES = [
    ("HTTP parse, auth, decide, seal", "request", "publish"),
    ("begin + AddPartitionsToTxn (broker: transaction log append)", "publish", "partitions_added"),
    ("produce, acks=all", "partitions_added", "produced"),
    ("EndTxn (commit)", "produced", "committed"),
    ("fold at commit: decode, fold, SQLite commit (the writer itself)", "committed", "folded"),
    ("wait until readable: the markers written, the follower's fetch past them (store.wait_until)", "folded",
     "applied"),
    ("response (render, receipts)", "applied", "answered"),
]


@dataclass
class Breakdown:
    """Per phase the durations (ms) over the posts that had every mark; the totals; the checkpoint posts."""

    phases: dict[str, list[float]] = field(default_factory=dict)
    totals: list[float] = field(default_factory=list)
    with_checkpoint: list[float] = field(default_factory=list)
    #: Posts whose records the writer left to the follower (something not applied came before them).
    by_follower: list[float] = field(default_factory=list)
    incomplete: int = 0
    #: Of those, per the first mark missing or out of order: how many.
    broken: dict[str, int] = field(default_factory=dict)
    #: Posts whose AddPartitionsToTxn was answered CONCURRENT_TRANSACTIONS (the previous commit still
    #: completing) and sent again.
    retried: int = 0
    #: CPU milliseconds per post of each thread of this process (by role), over the counted posts.
    cpu: dict[str, float] = field(default_factory=dict)

    def row(self, values: list[float]) -> str:
        v = sorted(values)
        return f"{percentile(v, 50):.1f} | {percentile(v, 90):.1f} | {percentile(v, 99):.1f}"


def table(result: Breakdown) -> list[str]:
    """The phases of one post, in markdown."""
    rows = ["| phase of one post | p50 (ms) | p90 (ms) | p99 (ms) |", "|---|---:|---:|---:|"]
    for label, _, _ in PHASES:
        rows.append(f"| {label} | {result.row(result.phases[label])} |")
    rows.append(f"| **whole post** ({len(result.totals)} posts without a checkpoint) | {result.row(result.totals)} |")
    if result.by_follower:
        rows.append(f"| whole post folded by the follower, not at commit ({len(result.by_follower)} posts) | "
                    f"{result.row(result.by_follower)} |")
    if result.with_checkpoint:
        rows.append(f"| whole post that also carried a signed checkpoint ({len(result.with_checkpoint)} posts) | "
                    f"{result.row(result.with_checkpoint)} |")
    broken = ", ".join(f"{n} at {mark}" for mark, n in sorted(result.broken.items())) or "none"
    rows += ["", f"{result.retried} of {len(result.totals)} posts had their AddPartitionsToTxn refused as "
             "CONCURRENT_TRANSACTIONS (the previous commit still completing) and resent; "
             f"{result.incomplete} posts missed a mark and are not counted ({broken})."]
    return rows


def cpu_table(result: Breakdown) -> list[str]:
    """The CPU one post costs, per thread of the process, in markdown."""
    rows = ["| thread (what it does for a post) | CPU ms per post |", "|---|---:|"]
    for role, ms in sorted(result.cpu.items(), key=lambda item: -item[1]):
        if ms >= 0.05:
            rows.append(f"| {role} | {ms:.2f} |")
    rows.append(f"| **the process** | **{sum(result.cpu.values()):.2f}** |")
    return rows


#: What each thread of the in-process ledger does for a post, by its name.
ROLES = [
    ("MainThread", "request: HTTP parse (test client), auth, decide, seal, fold at commit, answer"),
    ("-network-thread", "kafka-python producer: AddPartitionsToTxn, produce, EndTxn"),
    ("kafka-io-", "kafka-python consumer I/O: the projection's fetches"),
    ("-consumer", "projection follower: poll, skip what was folded at commit"),
    ("wal-", "the store's WAL copied into its database file"),
    ("-reactor", "reactor: what the folded events owe (derived events)"),
    ("-checkpoints", "checkpoint timer"),
]


def _role(name: str) -> str:
    for pattern, role in ROLES:
        if pattern in name:
            return role
    return name


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process so far, summed by role."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        role = _role(thread.name)
        out[role] = out.get(role, 0.0) + stat_cpu_seconds(Path(f"/proc/self/task/{thread.native_id}/stat"))
    return out


class _Marks:
    """The marks of the post in flight: the first time each probe fires, per mark."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.checkpoint = False
        self.by_follower = False
        self.add_partitions = 0  # AddPartitionsToTxn answers: more than one is a retry (CONCURRENT_TRANSACTIONS)
        self.lock = threading.Lock()

    def mark(self, name: str, *, last: bool = False) -> None:
        with self.lock:
            if last:
                self.marks[name] = time.perf_counter()
            else:
                self.marks.setdefault(name, time.perf_counter())


@contextlib.contextmanager
def _probes(marks: _Marks) -> Iterator[None]:
    """Wrap the phase boundaries for the run; restore the originals after."""
    patched: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        patched.append((owner, name, original))
        setattr(owner, name, make(original))

    def before(mark: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def probe(*args: Any, **kwargs: Any) -> Any:
                marks.mark(mark)
                return original(*args, **kwargs)
            return probe
        return make

    def after(mark: str, last: bool = False) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def probe(*args: Any, **kwargs: Any) -> Any:
                result = original(*args, **kwargs)
                marks.mark(mark, last=last)
                return result
            return probe
        return make

    def folded(original: Any) -> Any:
        def probe(self: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, records, *args, **kwargs)
            if any(r.topic == LEDGER_ENTRIES for r in records):
                marks.mark("folded")
                marks.by_follower = marks.by_follower or not result
            return result
        return probe

    def checkpoint(original: Any) -> Any:
        def probe(*args: Any, **kwargs: Any) -> Any:
            marks.checkpoint = True
            return original(*args, **kwargs)
        return probe

    wrap(EventProducer, "publish", before("publish"))
    def partitions_added(original: Any) -> Any:
        def probe(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            marks.mark("partitions_added", last=True)  # a retry counts in this phase
            marks.add_partitions += 1
            return result
        return probe

    wrap(AddPartitionsToTxnHandler, "handle_response", partitions_added)
    wrap(KafkaProducer, "flush", after("produced"))
    wrap(EndTxnHandler, "handle_response", after("committed"))
    wrap(Projector, "fold_committed", folded)
    wrap(ProjectionStore, "wait_until", after("applied"))
    wrap(EventService, "_prepare_checkpoint", checkpoint)  # with a group, or on its own (checkpoint())
    try:
        yield
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def post_phases(bootstrap: str, work: Path, *, count: int, rate: float, warm_up: int = 50) -> Breakdown:
    """Post ``count`` entries one at a time at ``rate``/s to an in-process ledger; the phases of each."""
    rng = random.Random(16)
    marks = _Marks()
    out = Breakdown(phases={label: [] for label, _, _ in PHASES})
    with in_process_ledger(bootstrap, work) as (client, token, _):
        headers = {"Authorization": f"Bearer {token}"}
        collectives = [f"bench-phases-{i}" for i in range(10)]
        for collective in collectives:
            client.post("/v1/collectives", headers=headers,
                        json={"collective_id": collective, "name": "压测村", "town": "金清镇"})
        bodies = [entry_body(rng)[0] for _ in range(warm_up + count)]
        with _probes(marks):
            began = time.perf_counter()
            cpu_before: dict[str, float] = {}
            for i, body in enumerate(bodies):
                if i == warm_up:
                    cpu_before = thread_cpu()
                time.sleep(max(0.0, began + i / rate - time.perf_counter()))
                with marks.lock:
                    marks.marks.clear()
                    marks.checkpoint = False
                    marks.by_follower = False
                    marks.add_partitions = 0
                marks.mark("request")
                response = client.post(f"/v1/collectives/{collectives[i % len(collectives)]}/entries",
                                       json=body, headers=headers)
                marks.mark("answered")
                if response.status_code != 201:
                    raise RuntimeError(f"post {i}: {response.status_code} {response.get_data(as_text=True)[:300]}")
                if i >= warm_up:
                    _count(out, marks)
            cpu_after = thread_cpu()
        out.cpu = {role: (spent - cpu_before.get(role, 0.0)) * 1000 / count for role, spent in cpu_after.items()}
    return out


def _count(out: Breakdown, marks: _Marks) -> None:
    with marks.lock:
        got, checkpointed, retried = dict(marks.marks), marks.checkpoint, marks.add_partitions > 1
        by_follower = marks.by_follower
    total = (got["answered"] - got["request"]) * 1000
    if checkpointed:
        out.with_checkpoint.append(total)
        return
    if by_follower:
        out.by_follower.append(total)
        return
    broken = [end for _, start, end in PHASES if start not in got or end not in got or got[end] < got[start]]
    if broken:
        out.incomplete += 1
        out.broken[broken[0]] = out.broken.get(broken[0], 0) + 1
        return
    out.totals.append(total)
    out.retried += retried
    for label, start, end in PHASES:
        out.phases[label].append((got[end] - got[start]) * 1000)
