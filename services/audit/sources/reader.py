"""The Kafka reader process of a long audit: ``python -m services.audit.sources.reader`` (started by KafkaSource).

kafka-python parses every record in Python. In a reader process of its own, that work
overlaps with the checks the audit runs, on two cores. The reader also decodes each value
and checks the envelope's own hash, so that the two processes carry about the same load
(the audit process does the schema, chain, books and payout checks). The parent writes the
consumer settings and the plan (every partition with its first and end offset) as one JSON
object on stdin; the reader answers on stdout with frames — a 4-byte big-endian length,
then a ``marshal``-ed list of ``(topic, partition, offset, timestamp, key, value, envelope,
problem, intact, noncanonical)`` tuples (``envelope`` decoded, or None and ``problem`` saying
why; ``intact``: the envelope's hash matches its content; ``noncanonical``: None when the value
is the envelope's canonical encoding, else what differs) — and ends with a frame holding
``None``, or an error message (str). ``marshal`` carries decoded JSON (dicts, lists, str,
int, bool, None) in half the time it takes to decode it again. The parent trusts these
frames: it started the process itself.
"""

from __future__ import annotations

import json
import marshal
import os
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from services.audit.sources.fetch import Plan, RawRecord, inspect_record_value, open_consumer, read_batches
from services.audit.sources.records import ReplayError, fewer_collections

_FRAME = struct.Struct(">I")


#: What the reader sends for each record: the RawRecord, then envelope, problem, intact, noncanonical.
Prepared = tuple[str, int, int, int | None, bytes | None, bytes | None, dict[str, Any] | None, str | None,
                 bool | None, str | None]


def prepare(record: RawRecord) -> Prepared:
    """Decode the record's value, check that it is the envelope's canonical encoding and the envelope's own
    hash (None when it is no envelope)."""
    return (*record, *inspect_record_value(record[5]))


def _write_frames(out: IO[bytes], frames: queue.Queue[bytes | None], failed: list[BaseException]) -> None:
    """Write each frame body with its length, until None. A thread of its own: a pipe holds only
    64 KB, so the main thread prepares the next batches while the audit reads this one."""
    try:
        while (body := frames.get()) is not None:
            out.write(_FRAME.pack(len(body)))
            out.write(body)
        out.flush()
    except BaseException as exc:  # the audit went away: the main thread stops at its next frame
        failed.append(exc)


def _put(frames: queue.Queue[bytes | None], body: bytes | None, writer: threading.Thread) -> None:
    while writer.is_alive():
        try:
            frames.put(body, timeout=1.0)
            return
        except queue.Full:
            continue
    raise BrokenPipeError("the audit stopped reading")


def main() -> int:
    """Read the plan from stdin, send the batches to stdout."""
    frames: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
    failed: list[BaseException] = []
    writer = threading.Thread(target=_write_frames, args=(sys.stdout.buffer, frames, failed), name="frames",
                              daemon=True)
    writer.start()
    message: str | None = None
    try:
        request = json.loads(sys.stdin.buffer.read())
        plan: Plan = [tuple(item) for item in request["plan"]]
        inspect = bool(request.get("inspect", True))
        consumer = open_consumer(request["config"], request["config"]["bootstrap_servers"])
        try:
            with fewer_collections():
                for batch in read_batches(consumer, plan, float(request["idle_timeout_s"])):
                    _put(frames, marshal.dumps([prepare(record) for record in batch] if inspect else batch), writer)
        finally:
            consumer.close()
    except BaseException as exc:  # the parent raises it as a ReplayError
        message = f"{type(exc).__name__}: {exc}"
    try:  # the last frame: None when every batch was sent, else the error
        _put(frames, marshal.dumps(message), writer)
        _put(frames, None, writer)
    except BrokenPipeError:
        return 1
    writer.join()
    return 1 if failed else 0


def read_in_another_process(config: dict[str, Any], plan: Plan, idle_timeout_s: float, *,
                            inspect: bool = True) -> Iterator[list[Prepared] | list[RawRecord]]:
    """The batches of ``plan``, fetched by a reader process: prepared (:func:`prepare`) when ``inspect``, else
    as fetched."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    reader = subprocess.Popen([sys.executable, "-m", "services.audit.sources.reader"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    assert reader.stdin is not None and reader.stdout is not None
    try:
        reader.stdin.write(json.dumps({"config": config, "plan": plan, "idle_timeout_s": idle_timeout_s,
                                      "inspect": inspect}).encode())
        reader.stdin.close()
        while True:
            head = reader.stdout.read(_FRAME.size)
            if len(head) < _FRAME.size:
                raise ReplayError(f"the Kafka reader process stopped without finishing (exit {reader.wait()})")
            (size,) = _FRAME.unpack(head)
            message = marshal.loads(reader.stdout.read(size))
            if message is None:
                return
            if isinstance(message, str):
                raise ReplayError(f"reading from Kafka failed: {message}")
            yield message
    finally:
        reader.stdout.close()
        if reader.poll() is None:
            reader.kill()
        reader.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
