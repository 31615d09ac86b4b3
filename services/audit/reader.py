"""The Kafka reader process of a long audit: ``python -m services.audit.reader`` (started by KafkaSource).

kafka-python spends most of a replay checking each batch's CRC32C in pure Python. In a
reader process of its own, that work overlaps with the checks the audit runs on two cores.
The parent writes the consumer settings and the plan (every partition with its first and
end offset) as one JSON object on stdin; the reader answers on stdout with frames — a
4-byte big-endian length, then a pickled list of ``(topic, partition, offset, timestamp,
key, value)`` tuples — and ends with a frame holding ``None``, or an error message (str).
The parent trusts these frames: it started the process itself.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from services.audit.replay import Plan, RawRecord, ReplayError, _consumer, _read

_FRAME = struct.Struct(">I")


def _send(out: IO[bytes], message: Any) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_FRAME.pack(len(body)))
    out.write(body)


def main() -> int:
    """Read the plan from stdin, send the batches to stdout."""
    out = sys.stdout.buffer
    try:
        request = json.loads(sys.stdin.buffer.read())
        plan: Plan = [tuple(item) for item in request["plan"]]
        consumer = _consumer(request["config"], request["config"]["bootstrap_servers"])
        try:
            for batch in _read(consumer, plan, float(request["idle_timeout_s"])):
                _send(out, batch)
        finally:
            consumer.close()
        _send(out, None)
    except BaseException as exc:  # the parent raises it as a ReplayError
        _send(out, f"{type(exc).__name__}: {exc}")
    out.flush()
    return 0


def read_in_another_process(config: dict[str, Any], plan: Plan, idle_timeout_s: float) -> Iterator[list[RawRecord]]:
    """The batches of ``plan``, fetched by a reader process."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    reader = subprocess.Popen([sys.executable, "-m", "services.audit.reader"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    assert reader.stdin is not None and reader.stdout is not None
    try:
        reader.stdin.write(json.dumps({"config": config, "plan": plan, "idle_timeout_s": idle_timeout_s}).encode())
        reader.stdin.close()
        while True:
            head = reader.stdout.read(_FRAME.size)
            if len(head) < _FRAME.size:
                raise ReplayError(f"the Kafka reader process stopped without finishing (exit {reader.wait()})")
            (size,) = _FRAME.unpack(head)
            message = pickle.loads(reader.stdout.read(size))
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
