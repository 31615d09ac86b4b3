"""Where an audit reads the log from: the Kafka topics themselves, or an exported archive.

Both sources yield :class:`Record` objects in log order within each partition, and can stop
early: at given offsets (``topic:partition:offset``, the next offset *not* read, like a
DistributionDeclared's ``input_positions``) or at the end of a day (the first record whose
timestamp is on a later day, UTC, and everything after it in that partition).

The Kafka source is its own consumer: no consumer group (nothing is committed, no service is
disturbed), ``read_committed``, every partition of the four record topics read from the
beginning up to the end offsets taken when it starts — records arriving meanwhile are left
for the next audit. Records stream through; nothing is kept here.

Both check that each record value is exactly the canonical encoding of its envelope (DESIGN
§4): from Kafka the value itself, from an archive the bytes after ``"event":`` on its line
(the export writes them verbatim). ``checkpoint_records`` gives the signed checkpoints
(``baotuan.checkpoints.v1``) first: the Kafka topic read on its own, or the archive's lines
found by a pre-scan.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.contracts.envelope import canonical_or_none, hash_of_canonical, noncanonical_reason
from services.contracts.topics import CHECKPOINTS, DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS
from services.contracts.validation import decode_line, decode_value, hash_matches, inspect_value

#: The topics of record an audit replays (the dead-letter topic is not a record of anything).
RECORD_TOPICS = (LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS, DIVIDENDS)

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


def _instant_ms(instant: object) -> int | None:
    if not isinstance(instant, str):
        return None
    try:
        return int(dt.datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


# -- archive ---------------------------------------------------------------------------------------


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

    def _parse(self, line: bytes, number: int, *, checkpoints: bool = False) -> Record | None:
        """One line as a Record (None: not to be audited here). ``checkpoints``: the pre-scan, which takes
        only well-formed lines of the checkpoints topic (the main pass reports the others)."""
        problem = None
        try:
            row = decode_line(line)
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


# -- Kafka -----------------------------------------------------------------------------------------

#: A record as ``_read`` hands it over: topic, partition, offset, timestamp, key, value.
RawRecord = tuple[str, int, int, int | None, bytes | None, bytes | None]
#: What to read: (topic, partition, first offset, end offset) for every partition.
Plan = list[tuple[str, int, int, int]]

#: From this many records on, a separate process reads Kafka while this one checks (2+ cores).
PIPELINE_MIN_RECORDS = 20_000


class KafkaSource:
    """The topics on the broker, from the beginning up to the end offsets taken at start.

    ``starts`` (next offset to read, per partition) begins there instead of at the beginning:
    a reader that kept the fold of the records below them reads only what came after. Once
    ``records`` has begun, ``planned`` holds each partition's (first, end) offsets it reads.

    Reading Kafka with kafka-python is CPU-bound (it parses every record in Python), so for a
    long log a reader process fetches the records (and decodes them and checks each envelope's
    own hash) while this process checks the rest: the two overlap on two cores. ``pipeline``
    forces it on or off; by default it is on from ``PIPELINE_MIN_RECORDS`` records.
    """

    def __init__(self, bootstrap: str, *, topics: Sequence[str] = RECORD_TOPICS, until: dt.date | None = None,
                 offsets: Mapping[Position, int] | None = None, idle_timeout_s: float = 30.0,
                 kafka_config: Mapping[str, Any] | None = None, pipeline: bool | None = None,
                 starts: Mapping[Position, int] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.until = until
        self.requested = dict(offsets or {})
        self.idle_timeout_s = idle_timeout_s
        self.kafka_config = dict(kafka_config or {})
        self.pipeline = pipeline
        self.description = f"Kafka {bootstrap}"
        self._done = 0
        self._total: int | None = None
        self._next: dict[Position, int] = {}
        self.starts = dict(starts or {})
        self.planned: dict[Position, tuple[int, int]] = {}

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    def stopped_at(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in sorted(self._next.items()):
            out.setdefault(topic, {})[partition] = offset
        return out

    def limited(self, topic: str, partition: int) -> bool:
        """Whether the replay of this partition was told to stop early (--until, --offsets)."""
        return self.until is not None or (topic, partition) in self.requested

    def checkpoint_records(self) -> Iterator[Record]:
        """Every signed checkpoint on the broker, read before the records (the topic is small). Read first,
        each covers end offsets at or below those the records are then read to."""
        if CHECKPOINTS in self.topics:
            return
        config = {**self.kafka_config, "allow_auto_create_topics": False}  # a broker without it: no checkpoints
        yield from KafkaSource(self.bootstrap, topics=[CHECKPOINTS], idle_timeout_s=self.idle_timeout_s,
                               kafka_config=config, pipeline=False).records()

    def _probe(self) -> None:
        """Fail fast with a plain socket when no bootstrap server listens (kafka-python would retry and leak
        the refused sockets)."""
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
                    return
            except (OSError, ValueError):
                continue
        raise ReplayError(f"Kafka at {self.bootstrap} is unreachable")

    def config(self) -> dict[str, Any]:
        """The consumer's settings: no group, nothing committed, committed records only."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "group_id": None,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "auto_offset_reset": "earliest",
            "client_id": "baotuan-audit",
            # kafka-python's default fetch sizes: larger ones were no faster and held hundreds of MB.
            "max_poll_records": 2000,
            "request_timeout_ms": 30_000,
        }
        config.update(self.kafka_config)
        return config

    def records(self) -> Iterator[Record]:
        self._probe()
        consumer = _consumer(self.config(), self.bootstrap)
        try:
            plan = _plan(consumer, self.topics, self.until, self.requested)
            if self.starts:  # within [first, end]: a start past the end reads nothing (the caller sees it)
                plan = [(topic, partition, min(max(begin, self.starts.get((topic, partition), begin)), end), end)
                        for topic, partition, begin, end in plan]
            self.planned = {(topic, partition): (begin, end) for topic, partition, begin, end in plan}
            self._total = sum(end - begin for _, _, begin, end in plan)
            for topic, partition, begin, _ in plan:
                self._next[(topic, partition)] = begin
            pipeline = self.pipeline if self.pipeline is not None else self._total >= PIPELINE_MIN_RECORDS
            if pipeline:
                consumer.close()
                from services.audit.reader import read_in_another_process

                for prepared in read_in_another_process(self.config(), plan, self.idle_timeout_s):
                    for topic, partition, offset, timestamp, key, value, envelope, problem, intact, noncanonical \
                            in prepared:
                        self._done += 1
                        self._next[(topic, partition)] = offset + 1
                        yield Record(topic, partition, offset, timestamp, _key(key), envelope, problem, raw=value,
                                     intact=intact, noncanonical=noncanonical)
                return
            for batch in _read(consumer, plan, self.idle_timeout_s):
                for topic, partition, offset, timestamp, key, value in batch:
                    self._done += 1
                    self._next[(topic, partition)] = offset + 1
                    yield _kafka_record(topic, partition, offset, timestamp, key, value)
        finally:
            consumer.close()


def _consumer(config: Mapping[str, Any], bootstrap: str) -> Any:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(**config)
    except (KafkaError, OSError, ValueError) as exc:
        raise ReplayError(f"Kafka at {bootstrap} is unreachable: {exc}") from exc


def _plan(consumer: Any, topics: Sequence[str], until: dt.date | None, requested: Mapping[Position, int]) -> Plan:
    """Every partition of ``topics`` with its first offset and the end offset to stop before."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    try:
        partitions = []
        for topic in topics:
            found = consumer.partitions_for_topic(topic)
            partitions += [TopicPartition(topic, p) for p in sorted(found or ())]
        for (topic, partition) in requested:
            if TopicPartition(topic, partition) not in partitions:
                raise ReplayError(f"--offsets names {topic}:{partition}, which is not on the broker")
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        if until is not None:
            cut = day_end_ms(until)
            found_at = consumer.offsets_for_times({tp: cut for tp in partitions})
            for tp, stamp in found_at.items():
                if stamp is not None:
                    end[tp] = min(end[tp], stamp.offset)
    except KafkaError as exc:
        raise ReplayError(f"Kafka did not answer: {exc}") from exc
    plan = []
    for tp in partitions:
        stop = end[tp]
        wanted = requested.get((tp.topic, tp.partition))
        if wanted is not None:
            stop = min(stop, wanted)
        plan.append((tp.topic, tp.partition, begin[tp], max(begin[tp], stop)))
    return plan


def _read(consumer: Any, plan: Plan, idle_timeout_s: float) -> Iterator[list[RawRecord]]:
    """Batches of records of ``plan``, each partition in offset order, until every end offset."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    ends = {TopicPartition(topic, partition): end for topic, partition, _, end in plan}
    firsts = {TopicPartition(topic, partition): begin for topic, partition, begin, _ in plan}
    todo = {tp for tp, end in ends.items() if end > firsts[tp]}
    try:
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, firsts[tp])
        consumer.pause(*[tp for tp in ends if tp not in todo])
        idle_since = time.monotonic()
        while todo:
            batches = consumer.poll(timeout_ms=500)
            if not batches:
                if time.monotonic() - idle_since > idle_timeout_s:
                    missing = ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(todo))
                    raise ReplayError(f"no records for {idle_timeout_s:.0f}s from {missing} "
                                      "before the end offsets taken at start")
                continue
            idle_since = time.monotonic()
            out: list[RawRecord] = []
            for tp, messages in batches.items():
                stop = ends[tp]
                for message in messages:
                    if message.offset >= stop:
                        break
                    out.append((tp.topic, tp.partition, message.offset, message.timestamp, message.key,
                                message.value))
            if out:
                yield out
            for tp in list(todo):
                # read_committed skips aborted records and markers: the position may pass the end
                # offset without a record at it.
                if consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
    except KafkaError as exc:
        raise ReplayError(f"reading from Kafka failed: {exc}") from exc


def decode_record_value(raw: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    """A record value as (envelope, None), or (None, why it is not an envelope)."""
    if raw is None:
        return None, "the record has no value"
    try:
        return decode_value(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the record value is not an envelope: {exc}"


def inspect_record_value(raw: bytes | None) -> tuple[dict[str, Any] | None, str | None, bool | None, str | None]:
    """A record value as ``(envelope, problem, intact, noncanonical)`` (``validation.inspect_value``)."""
    if raw is None:
        return None, "the record has no value", None, None
    return inspect_value(raw)


def _key(key_bytes: bytes | None) -> str | None:
    return key_bytes.decode("utf-8", errors="replace") if key_bytes is not None else None


def _kafka_record(topic: str, partition: int, offset: int, timestamp: int | None, key_bytes: bytes | None,
                  raw: bytes | None) -> Record:
    envelope, problem, intact, noncanonical = inspect_record_value(raw)
    return Record(topic, partition, offset, timestamp, _key(key_bytes), envelope, problem, raw=raw, intact=intact,
                  noncanonical=noncanonical)
