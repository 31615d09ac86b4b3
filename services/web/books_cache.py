"""The replay behind the web page's Excel download, kept between downloads and caught up by offsets.

A downloaded workbook is what ``baotuan export --format xlsx --collective ID`` writes: the audit
tool's fold of the record topics (:class:`services.audit.checks.Auditor`, the same checks decide
which records count) and its exporter, from the events, never from a service database. Replaying
the whole log for every click took as long as ``baotuan audit`` (about a minute on a
1,000,000-event log), so the web app keeps the fold instead:

- the first download replays the log from the beginning into one :class:`Auditor`;
- every download then takes the end offsets of the record topics (a ``read_committed`` consumer,
  like the audit's) and folds only the records between the offsets it had read and those. The
  fold is a pure left fold over each partition in offset order, so the kept state is the one a
  full replay up to the same offsets builds, and so is the workbook written from it;
- the bytes of a collective's workbook are kept with the end offsets they were written at and
  given again only while every end offset is still the same: any new record makes a new one.

Who may have which workbook is decided by the caller before anything here is asked, on every
request; a workbook holds the books of the one collective it is keyed by and nothing of any other
(``write_xlsx`` with ``collective_id``), so which principal asked first changes nothing.
When a catch-up fails, or the log went backwards (an end offset below what was read: a re-created
topic, another cluster), the kept state is dropped and the next download replays from the start.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.audit.checks.auditor import Auditor
from services.audit.checks.books import Books
from services.audit.exports.tables import write_xlsx

#: The end offset read up to, per (topic, partition), sorted: what a kept workbook is valid for.
Offsets = tuple[tuple[tuple[str, int], int], ...]


@dataclass
class CacheStats:
    """What the cache did so far (for the benchmark and the logs; never sent to a browser)."""

    full_replays: int = 0  # replays from the beginning of the log
    catch_ups: int = 0  # downloads that folded new records into the kept state
    records_folded: int = 0  # records read from Kafka, all downloads together
    renders: int = 0  # workbooks written
    hits: int = 0  # workbooks given again, unchanged log


class WorkbookCache:
    """One collective's workbook as of the log's end offsets now, from a fold kept between calls."""

    def __init__(self, bootstrap: str, kafka_config: Mapping[str, Any] | None = None, *, keep: int = 64) -> None:
        self.bootstrap = bootstrap
        self.kafka_config = dict(kafka_config or {})
        self.keep = keep
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._auditor: Auditor | None = None
        self._positions: dict[tuple[str, int], int] = {}
        self._workbooks: OrderedDict[str, tuple[Offsets, bytes]] = OrderedDict()

    def workbook(self, collective_id: str) -> bytes | None:
        """The xlsx of ``collective_id``'s books; None when the log holds no books of it.

        Raises :class:`services.audit.sources.records.ReplayError` when the log cannot be read.
        """
        with self._lock:
            auditor, offsets = self._caught_up()
            kept = self._workbooks.get(collective_id)
            if kept is not None and kept[0] == offsets:
                self._workbooks.move_to_end(collective_id)
                self.stats.hits += 1
                return kept[1]
            if not has_books(auditor.books, collective_id):
                return None
            out = io.BytesIO()
            write_xlsx(auditor.books, auditor.payouts, out, collective_id)
            data = out.getvalue()
            self._workbooks[collective_id] = (offsets, data)
            self._workbooks.move_to_end(collective_id)
            while len(self._workbooks) > self.keep:
                self._workbooks.popitem(last=False)
            self.stats.renders += 1
            return data

    def warm(self) -> None:
        """Replay the log now (e.g. at start-up, in a thread), so that the first download does not wait for it."""
        with self._lock:
            self._caught_up()

    def _caught_up(self) -> tuple[Auditor, Offsets]:
        """The kept fold, with every record up to the current end offsets folded in (the lock is held)."""
        for _ in range(2):
            caught_up = self._catch_up()
            if caught_up is not None:
                return caught_up
            self._drop()  # the log went backwards: start again from its beginning
        raise AssertionError("unreachable: a replay from the beginning always catches up")  # pragma: no cover

    def _catch_up(self) -> tuple[Auditor, Offsets] | None:
        from services.audit.sources import kafka as kafka_source  # looked up here: the tests replace KafkaSource

        fresh = self._auditor is None
        auditor = self._auditor if self._auditor is not None else Auditor(keep_memos=True)
        source = kafka_source.KafkaSource(self.bootstrap, kafka_config=self.kafka_config, starts=self._positions)
        folded = 0
        try:
            for record in source.records():
                auditor.feed(record)
                folded += 1
        except BaseException:
            self._drop()  # some records of the catch-up may be folded: the state is no longer at any offsets
            raise
        positions = {position: end for position, (_, end) in source.planned.items()}
        if any(positions.get(position, -1) < offset for position, offset in self._positions.items()):
            return None
        self._auditor, self._positions = auditor, positions
        self.stats.records_folded += folded
        if fresh:
            self.stats.full_replays += 1
        elif folded:
            self.stats.catch_ups += 1
        return auditor, tuple(sorted(positions.items()))

    def _drop(self) -> None:
        self._auditor = None
        self._positions = {}
        self._workbooks.clear()


def has_books(books: Books, collective_id: str) -> bool:
    """Whether the log registered ``collective_id`` or booked anything for it (``collective_ids`` walks every entry)."""
    return collective_id in books.collectives or collective_id in books.collective_ids()
