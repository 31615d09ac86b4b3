"""The archive of DESIGN §4: one Kafka record per line (JSON Lines); ``baotuan audit --archive`` reads it back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO

from services.audit.sources.records import Record, Source
from services.contracts.codec import canonical


def archive_line(record: Record) -> bytes:
    """One archive line (DESIGN §4) for a record; the envelope's bytes as the broker holds them."""
    head = json.dumps({"topic": record.topic, "partition": record.partition, "offset": record.offset,
                       "timestamp": record.timestamp, "key": record.key}, ensure_ascii=False,
                      separators=(",", ":"))[:-1]
    if record.raw is not None and record.envelope is not None:
        event = record.raw
    elif record.envelope is not None:
        event = canonical(record.envelope)
    else:  # not an envelope: keep the value as text so the archive still says what the log held
        value = (record.raw or b"").decode("utf-8", errors="replace")
        return (head + ',"event":null,"raw":' + json.dumps(value, ensure_ascii=False) + "}\n").encode()
    return head.encode() + b',"event":' + event + b"}\n"


def skip_line(topic: str, partition: int, first: int, end: int) -> bytes:
    """An archive line saying offsets ``first`` .. ``end - 1`` of a partition hold no record: only transaction
    markers or aborted records (read_committed readers never see them), so the gap is not a record missing."""
    return (json.dumps({"topic": topic, "partition": partition, "skip": [first, end]}, ensure_ascii=False,
                       separators=(",", ":")) + "\n").encode()


def write_archive(source: Source, out: IO[bytes]) -> int:
    """Write every record of ``source`` as an archive line, and a ``skip`` line for each run of offsets that
    holds no record (between records, and up to where the source stopped); returns how many records."""
    count = 0
    planned: Mapping[tuple[str, int], tuple[int, int]] = getattr(source, "planned", None) or {}
    following: dict[tuple[str, int], int] = {position: begin for position, (begin, _) in planned.items()}
    for record in source.records():
        if record.partition < 0:
            continue  # an unreadable line of an input archive: nothing to place
        position = (record.topic, record.partition)
        first = record.offset if record.skip_to is None else record.skip_to
        expected = following.get(position)
        if expected is not None and record.offset > expected:
            out.write(skip_line(record.topic, record.partition, expected, record.offset))
        following[position] = max(expected or 0, first if record.skip_to is not None else record.offset + 1)
        if record.skip_to is not None:
            continue  # written again, merged with its neighbours, by the lines above and below
        out.write(archive_line(record))
        count += 1
    for topic, ends in source.stopped_at().items():
        for partition, end in ends.items():
            expected = following.get((topic, partition))
            if expected is not None and end > expected:
                out.write(skip_line(topic, partition, expected, end))
    return count
