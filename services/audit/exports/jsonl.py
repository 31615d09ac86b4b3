"""The archive of DESIGN §4: one Kafka record per line (JSON Lines); ``baotuan audit --archive`` reads it back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO

from services.audit.sources.records import Record
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


def write_archive(records: Iterable[Record], out: IO[bytes]) -> int:
    """Write every record as an archive line; returns how many."""
    count = 0
    for record in records:
        if record.partition < 0:
            continue  # an unreadable line of an input archive: nothing to place
        out.write(archive_line(record))
        count += 1
    return count
