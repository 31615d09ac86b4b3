"""Writing sealed envelopes straight to Kafka, fast: the plumbing of bench/generate.py.

:class:`LogWriter` seals each event exactly as ``services.contracts.envelope.seal`` does (the
same canonical JSON, the same SHA-256 chain per (topic, subject)) but builds the canonical
JSON by hand around one ``json.dumps`` of the payload, and it knows the offset every record
will get: it picks the partition as Kafka's default partitioner does (murmur2 of the key)
and counts records per partition from the end offsets it started at. That is what lets a
generated ``DistributionDeclared`` carry correct ``input_positions``.

Two sinks put the records on the broker: the Java client (``ConsoleProducer`` from the
broker's own jars, one process per topic fed through a pipe; ~10× faster than kafka-python
on this machine) and kafka-python (for a machine without the jars).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from kafka.partitioner.default import murmur2

from services.contracts import envelope as env
from services.contracts.codec import canonical, decode_envelope
from services.contracts.validation import validate_envelope
from services.devtools.broker import LIB_DIR, LOG_CONFIG, _java

# The C encoder json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) uses, made once
# (json.dumps builds it anew for every call) and without the circular-reference check.
_encoder = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, None, json.encoder.encode_basestring, None, ":", ",", True, False, True)


def _dumps(value: Any) -> str:
    return "".join(_encoder(value, 0))

_sha256 = hashlib.sha256
SPEC = env.SPEC_VERSION


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java and kafka-python alike) gives a keyed record."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class Sink(Protocol):
    """Where sealed records go."""

    name: str

    def send(self, topic: str, partition: int, key: bytes, value: bytes, headers: bytes) -> None:
        """``headers`` is the ConsoleProducer header field: ``k1:v1,k2:v2``."""

    def close(self) -> None:
        """Flush everything and wait until the broker acknowledged it."""


class JavaSink:
    """One ``org.apache.kafka.tools.ConsoleProducer`` per topic (acks=all, idempotent), fed by a pipe.

    The Java client partitions keyed records with murmur2 like :func:`partition_for`, and its
    idempotent producer keeps each partition in order, so the offsets are the predicted ones.
    """

    name = "Java client (ConsoleProducer)"

    def __init__(self, bootstrap: str, log_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.log_dir = log_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pipes: dict[str, Any] = {}

    @staticmethod
    def available() -> bool:
        return any(LIB_DIR.glob("kafka-tools-*.jar"))

    def _pipe(self, topic: str) -> Any:
        pipe = self._pipes.get(topic)
        if pipe is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = (self.log_dir / f"producer-{topic}.log").open("wb")
            # C1 only and the serial collector: the producer runs for a minute, warm-up matters more.
            cmd = [_java(), "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", f"{LIB_DIR}/*",
                   f"-Dlog4j2.configurationFile={LOG_CONFIG}", "org.apache.kafka.tools.ConsoleProducer",
                   "--bootstrap-server", self.bootstrap, "--topic", topic,
                   "--property", "parse.key=true", "--property", "parse.headers=true",
                   "--request-timeout-ms", "30000",
                   "--producer-property", "acks=all", "--producer-property", "enable.idempotence=true",
                   "--producer-property", "linger.ms=20", "--producer-property", "batch.size=524288",
                   "--producer-property", "buffer.memory=134217728",
                   "--producer-property", "max.request.size=4194304"]
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                    bufsize=1 << 20)
            log.close()
            self._procs[topic] = proc
            pipe = self._pipes[topic] = proc.stdin
        return pipe

    def send(self, topic: str, partition: int, key: bytes, value: bytes, headers: bytes) -> None:
        self._pipe(topic).write(b"%s\t%s\t%s\n" % (headers, key, value))

    def close(self) -> None:
        for pipe in self._pipes.values():
            pipe.close()
        failed = []
        for topic, proc in self._procs.items():
            if proc.wait(timeout=600) != 0:
                failed.append(f"{topic} (exit {proc.returncode}, see {self.log_dir}/producer-{topic}.log)")
        if failed:
            raise RuntimeError("ConsoleProducer failed for " + ", ".join(failed))


class PythonSink:
    """kafka-python's producer, tuned for throughput (acks=all, idempotent, 512 KB batches)."""

    name = "kafka-python"

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                       linger_ms=20, batch_size=524288, max_request_size=4194304,
                                       request_timeout_ms=30000)
        self._error: Exception | None = None

    def _failed(self, exc: Exception) -> None:
        self._error = exc

    def send(self, topic: str, partition: int, key: bytes, value: bytes, headers: bytes) -> None:
        pairs = [(k.decode(), v) for k, _, v in (h.partition(b":") for h in headers.split(b","))]
        self._producer.send(topic, key=key, value=value, headers=pairs, partition=partition).add_errback(
            self._failed)

    def close(self) -> None:
        self._producer.flush(timeout=600)
        self._producer.close(timeout=30)
        if self._error is not None:
            raise RuntimeError(f"kafka-python producer failed: {self._error}")


class LogWriter:
    """Seals events into hash chains and sends them, predicting every record's offset.

    ``base`` is the end offset of every (topic, partition) when writing starts; the writer
    must be the only one writing to those topics until it is closed.
    """

    def __init__(self, sink: Sink, partitions: Mapping[str, int], base: Mapping[tuple[str, int], int],
                 *, check_every: int = 4999) -> None:
        self.sink = sink
        self.partitions = dict(partitions)
        self.next_offset: dict[tuple[str, int], int] = {
            (t, p): int(base.get((t, p), 0)) for t, n in partitions.items() for p in range(n)}
        self.heads: dict[tuple[str, str], tuple[int, str]] = {}
        self.count = 0
        self.bytes = 0
        self.by_type: dict[str, int] = {}
        self.check_every = check_every
        self._partition_of: dict[tuple[str, str], tuple[int, bytes]] = {}

    def positions(self, topic: str) -> dict[str, int]:
        """``{partition: next_offset}`` of a topic right now (what a declaration had consumed)."""
        return {str(p): self.next_offset[(topic, p)] for p in range(self.partitions[topic])}

    def emit(self, topic: str, event_type: str, subject: str, data: Mapping[str, Any], *, source: str, actor: str,
             occurred_at: str, event_id: str, causation_id: str | None = None) -> None:
        """Seal one event as the next link of its (topic, subject) chain and send it."""
        chain = (topic, subject)
        seq, prev = self.heads.get(chain, (0, env.GENESIS_HASH))
        seq += 1
        # Ids, actors and instants are plain ASCII without quotes or backslashes: no escaping needed
        # (every check_every-th envelope is compared with envelope.seal all the same).
        cause = "null" if causation_id is None else f'"{causation_id}"'
        head = f'{{"actor":"{actor}","causation_id":{cause},"data":{_dumps(data)},"event_id":"{event_id}"'
        tail = (f',"occurred_at":"{occurred_at}","prev_hash":"{prev}","seq":{seq},"source":"{source}",'
                f'"subject":"{subject}","type":"{event_type}","version":1}}')
        digest = _sha256((head + tail).encode()).hexdigest()
        value = (head + ',"hash":"' + digest + '"' + tail).encode()
        self.heads[chain] = (seq, digest)
        found = self._partition_of.get(chain)
        if found is None:
            key = subject.encode()
            found = self._partition_of[chain] = (partition_for(key, self.partitions[topic]), key)
        partition, key = found
        headers = (f"ce_id:{event_id},ce_type:{event_type},ce_source:{source},ce_specversion:{SPEC},"
                   f"ce_subject:{subject},ce_time:{occurred_at},content-type:application/json").encode()
        self.sink.send(topic, partition, key, value, headers)
        self.next_offset[(topic, partition)] += 1
        self.count += 1
        self.bytes += len(value)
        self.by_type[event_type] = self.by_type.get(event_type, 0) + 1
        if self.count % self.check_every == 1:
            self._check(value, prev, seq)

    @staticmethod
    def _check(value: bytes, prev: str, seq: int) -> None:
        """Now and then, check the hand-built envelope against the contract's own sealing."""
        envelope = decode_envelope(value)
        validate_envelope(envelope, strict=True)
        unsealed = {k: v for k, v in envelope.items() if k not in ("seq", "prev_hash", "hash")}
        resealed = env.seal({**unsealed, "seq": 0, "prev_hash": "", "hash": ""}, env.ChainHead(seq - 1, prev))
        if canonical(resealed) != value:
            raise AssertionError(f"hand-sealed envelope differs from envelope.seal: {value[:200]!r}")

    def close(self) -> float:
        """Flush the sink; returns the seconds the flush took."""
        began = time.perf_counter()
        self.sink.close()
        return time.perf_counter() - began
