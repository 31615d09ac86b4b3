"""What an audit reads: :class:`Record`, the :class:`Source` protocol, and where a replay stops.

Both sources (:mod:`services.audit.sources.kafka`, :mod:`services.audit.sources.archive`) yield
:class:`Record` objects in log order within each partition, and can stop early: at given offsets
(``topic:partition:offset``, the next offset *not* read, like a DistributionDeclared's
``input_positions``) or at the end of a day (the first record whose timestamp is on a later day,
UTC, and everything after it in that partition).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

Position = tuple[str, int]


class ReplayError(RuntimeError):
    """The log could not be read (broker unreachable, archive unreadable, bad stop offsets)."""


@dataclass(slots=True)
class Record:
    """One Kafka record: where it sits, and its value parsed as an envelope (or why it is not one)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: str | None
    envelope: dict[str, Any] | None
    problem: str | None = None  # why ``envelope`` is None
    raw: bytes | None = None  # the value as the broker holds it (Kafka source only)
    line: int | None = None  # line number in an archive
    #: Whether ``envelope``'s hash matches its content, when the reader process already worked it out
    #: (None: not computed; the audit computes it).
    intact: bool | None = None
    #: None when the value is exactly the canonical encoding of ``envelope``; else what differs.
    noncanonical: str | None = None
    #: Whether the reader process already checked ``envelope`` against its schema (then ``schema_problem`` is
    #: what it found, or None); else the audit checks it.
    schema_checked: bool = False
    schema_problem: str | None = None
    #: Not a record but a run of offsets without one: ``offset`` up to (not including) ``skip_to`` hold only
    #: transaction markers or aborted records (an archive says so in a ``skip`` line, DESIGN §4).
    skip_to: int | None = None


class Source(Protocol):
    """A log to replay."""

    description: str

    def records(self) -> Iterator[Record]:
        """The records, in offset order within each partition."""
        ...

    def progress(self) -> tuple[int, int | None]:
        """(done, total) in the source's own unit (records or bytes), for a progress bar."""
        ...

    def stopped_at(self) -> dict[str, dict[int, int]]:
        """The next offset not read, per topic and partition, once ``records`` is exhausted."""
        ...


#: The cyclic garbage collector's first threshold during a replay (Python's default is 700 allocations).
REPLAY_GC_THRESHOLD = 50_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a replay streams records through.

    Every record leaves a handful of dicts and lists behind (its envelope, then the checks' state), so with
    the default threshold the collector runs every few hundred records and walks a heap that only grows:
    in the profile of a 200,000-record audit it took about a third of the decode and check time. Records
    hold no reference cycles, so nothing waits longer to be freed; what was loaded before (modules, the
    schemas) is frozen out of the collections altogether.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(REPLAY_GC_THRESHOLD, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def parse_offsets(text: str | None) -> dict[Position, int]:
    """``"topic:partition:offset,..."`` -> {(topic, partition): next offset not to read}."""
    out: dict[Position, int] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        topic, _, rest = item.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        try:
            out[(topic, int(partition))] = int(rest)
        except ValueError:
            raise ReplayError(f"bad --offsets item {item!r}: expected topic:partition:offset") from None
        if not topic or int(rest) < 0 or int(partition) < 0:
            raise ReplayError(f"bad --offsets item {item!r}: expected topic:partition:offset")
    return out


def day_end_ms(day: dt.date) -> int:
    """Milliseconds since the epoch at the end of ``day`` (UTC): records at or after it are left out."""
    moment = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
