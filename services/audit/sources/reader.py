"""The Kafka reader process of a long audit: ``python -m services.audit.sources.reader`` (started by KafkaSource).

kafka-python parses every record in Python. In a reader process of its own, that work
overlaps with the checks the audit runs, on two cores. The reader also judges each value — it
decodes it, checks that it is the canonical encoding, the envelope's own hash and its schema — so
that the reader processes and the audit process carry about the same load (the audit process
decodes the value again, with orjson, and runs the chain, books and payout checks). The parent
writes the consumer settings and the plan (every partition with its first and end offset) as one
JSON object on stdin; the reader answers on stdout with frames — a 4-byte big-endian length, then
a ``marshal``-ed list of :data:`Judged` tuples (the record as fetched, then the verdict) — and ends
with a frame holding ``None``, or an error message (str). Sending the decoded envelope instead was
slower: unmarshalling it costs about as much as decoding the value with orjson. The parent trusts
these frames: it started the process itself.
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
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

import orjson

from services.audit.sources.fetch import Plan, RawRecord, open_consumer, read_batches
from services.audit.sources.records import ReplayError, fewer_collections
from services.contracts.codec import EnvelopeError, decode_envelope, has_float, inspect_decoded
from services.contracts.validation import envelope_problem

_FRAME = struct.Struct(">I")


#: What the reader sends for each record: the RawRecord, then problem, intact, noncanonical, schema and fast.
Judged = tuple[str, int, int, int | None, bytes | None, bytes | None, str | None, bool | None, str | None,
               str | None, bool]


def judge(record: RawRecord) -> Judged:
    """The verdict on the record's value (``codec.inspect_value``'s, and the schema's): why it is no envelope
    (or None), whether the envelope's hash matches it, what differs from its canonical encoding (or None), the
    envelope's schema problem (or None), and whether orjson decodes it to the same envelope (``fast``)."""
    value = record[5]
    if value is None:
        return (*record, "the record has no value", None, None, None, False)
    try:  # orjson and a walk for floats: what decode_envelope accepts, in two thirds of its time
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError:
        envelope = None
    fast = type(envelope) is dict and not has_float(envelope)
    if not fast:  # decode_envelope words the problem, or accepts what orjson does not (an integer past 64 bits)
        try:
            envelope = decode_envelope(value)
        except EnvelopeError as exc:  # as inspect_value words it
            return (*record, f"the record value is not an envelope: {exc.__cause__ or exc}", None, None, None, False)
    intact, noncanonical = inspect_decoded(value, envelope)
    found = envelope_problem(envelope, float_free=True)  # no floats in it
    return (*record, None, intact, noncanonical, str(found) if found is not None else None, fast)


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
                    _put(frames, marshal.dumps([judge(record) for record in batch] if inspect else batch), writer)
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


def read_in_another_process(config: dict[str, Any], plan: Plan, idle_timeout_s: float, *, inspect: bool = True,
                            started: list[subprocess.Popen[bytes]] | None = None,
                            ) -> Generator[list[Judged] | list[RawRecord], None, None]:
    """The batches of ``plan``, fetched by a reader process: judged (:func:`judge`) when ``inspect``, else
    as fetched. ``started`` gets the reader process as soon as it runs (so that another thread can stop it)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    reader = subprocess.Popen([sys.executable, "-m", "services.audit.sources.reader"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    assert reader.stdin is not None and reader.stdout is not None
    if started is not None:
        started.append(reader)
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


def split_plan(plan: Plan, parts: int) -> list[Plan]:
    """``plan``'s partitions dealt to at most ``parts`` readers: the largest first, each to the reader with the
    fewest records so far (a partition is read by one reader, so its records keep their order)."""
    shares: list[Plan] = [[] for _ in range(max(1, parts))]
    loads = [0] * len(shares)
    for item in sorted(plan, key=lambda item: item[3] - item[2], reverse=True):
        least = loads.index(min(loads))
        shares[least].append(item)
        loads[least] += item[3] - item[2]
    return [share for share in shares if share] or [plan]


_DONE = object()


def read_in_other_processes(config: dict[str, Any], plan: Plan, idle_timeout_s: float, *, inspect: bool = True,
                            readers: int = 2) -> Generator[list[Judged] | list[RawRecord], None, None]:
    """:func:`read_in_another_process` with the partitions of ``plan`` shared by up to ``readers`` reader
    processes: their batches come in the order they arrive (each partition's records in offset order). The
    first reader to fail fails the whole read; every reader is stopped when the caller stops."""
    shares = split_plan(plan, readers)
    if len(shares) == 1:
        yield from read_in_another_process(config, shares[0], idle_timeout_s, inspect=inspect)
        return
    arrived: queue.Queue[Any] = queue.Queue(maxsize=4 * len(shares))
    stop = threading.Event()
    processes: list[subprocess.Popen[bytes]] = []

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                arrived.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def pump(share: Plan) -> None:
        batches = read_in_another_process(config, share, idle_timeout_s, inspect=inspect, started=processes)
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(_DONE)
        except BaseException as exc:  # raised in the caller's thread
            offer(exc)
        finally:
            batches.close()  # kills the reader process if it still runs

    pumps = [threading.Thread(target=pump, args=(share,), name=f"audit-reader-{n}", daemon=True)
             for n, share in enumerate(shares)]
    for thread in pumps:
        thread.start()
    try:
        finished = 0
        while finished < len(pumps):
            item = arrived.get()
            if item is _DONE:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for process in processes:  # a pump may be waiting for its reader's next frame: end it now
            if process.poll() is None:
                process.kill()
        for thread in pumps:
            if thread is not threading.current_thread():  # a collector run in a pump may close this generator
                thread.join(timeout=35)


if __name__ == "__main__":
    sys.exit(main())
