"""The log from an exported archive (JSON Lines, DESIGN §4): one Kafka record per line, in the file's order.

Each record value must be exactly the canonical encoding of its envelope (DESIGN §4): the
bytes after ``"event":`` on its line (the export writes them verbatim). ``checkpoint_records``
gives the signed checkpoints (``baotuan.checkpoints.v1``) first: the archive's lines found by
a pre-scan.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from services.audit.sources.records import Position, Record, ReplayError, day_end_ms
from services.contracts.codec import canonical_or_none, decode, hash_matches, hash_of_canonical, noncanonical_reason
from services.contracts.topics import CHECKPOINTS, RECORD_TOPICS


def _instant_ms(instant: object) -> int | None:
    if not isinstance(instant, str):
        return None
    try:
        return int(dt.datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


class ArchiveSource:
    """An export archive (JSON Lines, DESIGN §4): one Kafka record per line, in the file's order."""

    def __init__(self, path: Path, *, until: dt.date | None = None,
                 offsets: Mapping[Position, int] | None = None, topics: Sequence[str] = RECORD_TOPICS) -> None:
        self.path = Path(path)
        self.topics = frozenset(topics)
        self._prescanned: set[int] | None = None  # line numbers of the checkpoints found by the pre-scan
        if not self.path.is_file():
            raise ReplayError(f"archive {self.path} does not exist")
        self.description = f"archive {self.path}"
        self.until_ms = day_end_ms(until) if until else None
        self.stop = dict(offsets or {})
        self._bytes = 0
        self._size = self.path.stat().st_size
        self._next: dict[Position, int] = {}
        self._cut: set[Position] = set()

    def progress(self) -> tuple[int, int | None]:
        return self._bytes, self._size

    def stopped_at(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in sorted(self._next.items()):
            if topic != CHECKPOINTS:
                out.setdefault(topic, {})[partition] = offset
        return out

    def limited(self, topic: str, partition: int) -> bool:
        """Whether the replay of this partition was told to stop early (--until, --offsets)."""
        return self.until_ms is not None or (topic, partition) in self.stop

    def checkpoint_records(self) -> Iterator[Record]:
        """The archive's checkpoint lines (a pre-scan: only lines naming the checkpoints topic are parsed),
        all of them (--until and --offsets apply to the records)."""
        self._prescanned = set()
        marker = f'"{CHECKPOINTS}"'.encode()
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if marker not in line:
                    continue
                record = self._parse(line, number, checkpoints=True)
                if record is not None:
                    self._prescanned.add(number)
                    yield record

    def records(self) -> Iterator[Record]:
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                self._bytes += len(line)
                if not line.strip():
                    continue
                record = self._parse(line, number)
                if record is None:
                    continue
                yield record

    def _skip(self, row: dict[str, Any], number: int) -> Record | None:
        """A ``skip`` line: offsets without a record (transaction markers, aborted records)."""
        topic, partition, span = row.get("topic"), row.get("partition"), row.get("skip")
        if not (isinstance(topic, str) and type(partition) is int and isinstance(span, list) and len(span) == 2
                and all(type(n) is int for n in span) and 0 <= span[0] < span[1] and set(row) == {
                    "topic", "partition", "skip"}):
            return Record(str(topic or ""), -1, -1, None, None, None,
                          f"line {number} is not a valid skip line (topic, partition, skip: [first, end])", line=number)
        if topic not in self.topics and topic != CHECKPOINTS:
            return None
        position = (topic, partition)
        if position in self._cut or span[0] >= self.stop.get(position, span[0] + 1):
            return None
        end = min(span[1], self.stop.get(position, span[1]))
        self._next[position] = max(self._next.get(position, 0), end)
        return Record(topic, partition, span[0], None, None, None, line=number, skip_to=end)

    def _parse(self, line: bytes, number: int, *, checkpoints: bool = False) -> Record | None:
        """One line as a Record (None: not to be audited here). ``checkpoints``: the pre-scan, which takes
        only well-formed lines of the checkpoints topic (the main pass reports the others)."""
        problem = None
        try:
            row = decode(line, duplicates=True)  # a key twice on the line is named below
        except ValueError as exc:
            problem = f"line {number} is not a valid archive record: {exc}"
            try:  # still say where it was, if the line is JSON with floats in it
                row = json.loads(line)
            except ValueError:
                return None if checkpoints else Record("", -1, -1, None, None, None, problem, line=number)
        if not isinstance(row, dict):
            return None if checkpoints else Record("", -1, -1, None, None, None, f"line {number} is not a JSON object",
                                                   line=number)
        topic, partition, offset = row.get("topic"), row.get("partition"), row.get("offset")
        if "skip" in row:  # the checkpoints topic's skip lines go with its records, in the pre-scan
            if row.get("topic") == CHECKPOINTS:
                return self._skip(row, number) if checkpoints or self._prescanned is None else None
            return None if checkpoints else self._skip(row, number)
        if not isinstance(topic, str) or type(partition) is not int or type(offset) is not int:
            return None if checkpoints else Record(str(topic or ""), -1, -1, None, None, None,
                                                   f"line {number} lacks topic, partition or offset", line=number)
        if checkpoints:
            if topic != CHECKPOINTS:
                return None
        elif topic == CHECKPOINTS and self._prescanned is not None:  # read already, by the pre-scan
            if number in self._prescanned:
                return None
            return Record(topic, -1, -1, None, None, None, f"line {number} holds a checkpoint the pre-scan did not "
                          "find: its topic is not written as the export writes it", line=number)
        elif topic not in self.topics:
            return None  # not a topic of record (e.g. dead letters): nothing to audit
        position = (topic, partition)
        if not checkpoints and (position in self._cut or offset >= self.stop.get(position, offset + 1)):
            return None
        timestamp = row.get("timestamp") if type(row.get("timestamp")) is int else None
        event = row.get("event")
        if self.until_ms is not None and not checkpoints:
            moment = timestamp if timestamp is not None else _instant_ms(
                event.get("occurred_at") if isinstance(event, dict) else None)
            if moment is not None and moment >= self.until_ms:
                self._cut.add(position)
                return None
        key = row.get("key")
        self._next[position] = max(self._next.get(position, 0), offset + 1)
        if problem is None and not isinstance(event, dict):
            problem = f"line {number}: the record value is not a JSON object"
        if problem is not None:
            return Record(topic, partition, offset, timestamp, key if isinstance(key, str) else None, None,
                          problem, line=number)
        assert isinstance(event, dict)
        raw, noncanonical = _event_bytes(line, row, event)
        if noncanonical is None:
            intact = hash_of_canonical(raw, event.get("hash")) or hash_matches(event)
        else:
            intact = hash_matches(event)
        return Record(topic, partition, offset, timestamp, key if isinstance(key, str) else None, event,
                      raw=raw, line=number, intact=intact, noncanonical=noncanonical)


def archive_head(row: Mapping[str, Any]) -> bytes:
    """An archive line up to its event value, as the export writes it (DESIGN §4): the same bytes as
    ``json.dumps`` of the five fields (compact, ``ensure_ascii=False``), built without an encoder per line."""
    topic, partition, offset, timestamp, key = (row.get("topic"), row.get("partition"), row.get("offset"),
                                                row.get("timestamp"), row.get("key"))
    if type(topic) is str and type(partition) is int and type(offset) is int \
            and (timestamp is None or type(timestamp) is int) and (key is None or type(key) is str):
        head = (f'{{"topic":{_json_text(topic)},"partition":{partition},"offset":{offset},'
                f'"timestamp":{"null" if timestamp is None else timestamp},'
                f'"key":{"null" if key is None else _json_text(key)},"event":')
        return head.encode("utf-8")
    head = json.dumps({"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp,
                       "key": key}, ensure_ascii=False, separators=(",", ":"))
    return head[:-1].encode("utf-8") + b',"event":'


#: A str as JSON text without ASCII escaping (what ``json.dumps(..., ensure_ascii=False)`` writes).
_json_text: Callable[[str], str] = json.encoder.encode_basestring


_PLAIN = json.JSONDecoder()


def _event_bytes(line: bytes, row: Mapping[str, Any], event: Mapping[str, Any]) -> tuple[bytes, str | None]:
    """The bytes of a line's event value, and None if they are the canonical encoding of the event (with no
    duplicate key on the line), else what differs.

    Fast path: the line is exactly what the export writes. Otherwise the line's top-level members are
    walked to find the event's bytes, and the difference is named.
    """
    canonical = canonical_or_none(event)
    body = line.rstrip(b"\r\n")
    if canonical is not None:
        head = archive_head(row)
        if len(body) == len(head) + len(canonical) + 1 and body.startswith(head) \
                and body.startswith(canonical, len(head)) and body.endswith(b"}"):
            return canonical, None
    text = body.decode("utf-8")
    problems = []
    span, twice = _member_span(text, "event")
    if twice:
        problems.append("the line has " + ", ".join(f"duplicate key {json.dumps(k, ensure_ascii=False)}"
                                                     for k in twice))
    raw = text[span[0]:span[1]].encode("utf-8") if span is not None else canonical or b""
    reason = noncanonical_reason(raw, event) if span is not None else "its event value cannot be found on the line"
    if reason:
        problems.append(reason)
    if not problems:
        return raw, None
    return raw, "not the canonical encoding of its envelope: " + "; ".join(problems)


def _member_span(text: str, name: str) -> tuple[tuple[int, int] | None, list[str]]:
    """Where the value of the top-level member ``name`` is in a JSON object's text (the last one, as a
    parser keeps it), and the top-level keys written more than once."""
    seen: set[str] = set()
    twice: list[str] = []
    span = None
    at = _skip(text, 0)
    if text[at:at + 1] != "{":
        return None, twice
    at = _skip(text, at + 1)
    while at < len(text) and text[at] != "}":
        key, at = _PLAIN.raw_decode(text, at)
        at = _skip(text, _skip(text, at) + 1)  # the colon
        begin = at
        _, at = _PLAIN.raw_decode(text, at)
        if key in seen:
            twice.append(key)
        seen.add(key)
        if key == name:
            span = (begin, at)
        at = _skip(text, at)
        if text[at:at + 1] == ",":
            at = _skip(text, at + 1)
    return span, twice


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at
