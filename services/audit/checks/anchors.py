"""The anchoring of the log verified (DESIGN §4, "Anchoring"): signed checkpoints and signed receipts.

A hash chain alone does not stop a forger who re-seals it. Each writer signs checkpoints
(``ChainCheckpoint`` on ``baotuan.checkpoints.v1``, see ``services.contracts.anchoring``):
checkpoint ``k`` of a topic gives, for every partition, the end offset and the heads
``(subject, seq, hash)`` of the streams that moved since checkpoint ``k-1``, chained into a
digest. :class:`Anchors` checks:

- ``checkpoint``: each checkpoint is signed by a key trusted for its writer, the auditor's
  pinned keys (:func:`load_trusted_keys`) or a key announced by an earlier verified
  checkpoint of that writer (a rotation); after a rotation the old key signs no later
  checkpoint of that topic; numbers go 1, 2, 3 … per topic (a gap is a checkpoint missing);
  heads are sorted, end offsets never go back, each digest chains from the previous one.
- ``anchored``: the records give, at every checkpoint, the heads it signed. A stream whose
  head differs (records changed, dropped, reordered or re-sealed before the checkpoint) is
  named, with the checkpoint and its offsets; a partition that ends before a checkpoint's end
  offset was cut before it.
- ``receipt``: every receipt a village kept is signed by the writer of its topic, and the log
  holds its record, with the same subject, seq and hash.

Records after the last checkpoint of a partition are not covered: the report counts them.
Without pinned keys the same checks run, but anyone who can write the log can also write
checkpoints: the report says that authenticity was not checked.

Streaming and bounded: the checkpoints are read first (``add_checkpoint``; the checkpoints
topic is small), their payloads spooled to a temporary file; ``prepare`` verifies them and
plans, per partition, the ranges between checkpoints. While the records stream through
``feed``, only the heads of each partition's current range are kept, and compared with the
checkpoint's heads (read back from the spool) when the range ends.
"""

from __future__ import annotations

import re
import tempfile
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.checks.findings import Findings, Where
from services.audit.sources.records import Record
from services.contracts import anchoring
from services.contracts.codec import canonical, decode
from services.contracts.events import WRITERS
from services.contracts.topics import CHECKPOINTS, RECORD_TOPICS, owner_of

Head = tuple[int, str]  # (seq, hash)
_INFINITY = float("inf")
_KEY_ID_IN_NAME = re.compile(r"^[-.]([0-9a-f]{16})$")


class KeyDirError(ValueError):
    """The pinned keys cannot be read (exit 2)."""


# -- the pinned keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinnedKey:
    service: str
    key_id: str
    file: str
    status: str | None  # current, retired, next (from keys.json), None when not listed
    key: Ed25519PublicKey


@dataclass
class TrustedKeys:
    """The public keys an auditor pinned (``baotuan keys export --output DIR``)."""

    directory: Path
    keys: list[PinnedKey]

    def of(self, service: str) -> dict[str, Ed25519PublicKey]:
        return {pinned.key_id: pinned.key for pinned in self.keys if pinned.service == service}

    def describe(self) -> list[dict[str, Any]]:
        return [{"service": k.service, "key_id": k.key_id, "file": k.file, "status": k.status} for k in self.keys]


def load_trusted_keys(directory: Path) -> TrustedKeys:
    """The PEM public keys in ``directory``, each the key of the service its file name starts with
    (``ledger.pem``, ``ledger-<key id>.pem`` …). ``keys.json``, if there, must agree with them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise KeyDirError(f"--trusted-keys {directory} is not a directory")
    found: dict[str, PinnedKey] = {}
    for path in sorted(directory.glob("*.pem")):
        service = next((s for s in WRITERS if path.name.startswith(s)), None)
        if service is None:
            raise KeyDirError(f"cannot tell whose key {path.name} is: a pinned key's file is named "
                              f"<service>.pem or <service>-<key id>.pem, the service one of {', '.join(WRITERS)}")
        try:
            key = anchoring.load_public_key_pem(path.read_bytes())
        except (OSError, anchoring.AnchorError) as exc:
            raise KeyDirError(f"{path}: {exc}") from exc
        kid = anchoring.key_id(key)
        named = _KEY_ID_IN_NAME.match(path.name[len(service):-len(".pem")])
        if named and named.group(1) != kid:
            raise KeyDirError(f"{path.name} is named after key {named.group(1)} but holds key {kid}")
        other = found.get(kid)
        if other is not None and other.service != service:
            raise KeyDirError(f"key {kid} is pinned for both {other.service} ({other.file}) and {service} "
                              f"({path.name})")
        found.setdefault(kid, PinnedKey(service, kid, path.name, None, key))
    if not found:
        raise KeyDirError(f"no pinned keys (*.pem) in {directory}")
    listing = directory / "keys.json"
    if listing.exists():
        found = _with_listing(listing, found)
    return TrustedKeys(directory, sorted(found.values(), key=lambda k: (k.service, k.file)))


def _with_listing(listing: Path, found: dict[str, PinnedKey]) -> dict[str, PinnedKey]:
    try:
        entries = decode(listing.read_bytes())["keys"]
        assert isinstance(entries, list)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise KeyDirError(f"{listing} is not a key listing {{\"keys\": [...]}}: {exc}") from exc
    by_file = {pinned.file: pinned for pinned in found.values()}
    for entry in entries:
        if not isinstance(entry, dict):
            raise KeyDirError(f"{listing}: {entry!r} is not a key entry")
        pinned = by_file.get(str(entry.get("file")))
        if pinned is None:
            raise KeyDirError(f"{listing} lists {entry.get('file')!r}, which is not a PEM file beside it")
        if entry.get("key_id") != pinned.key_id or entry.get("service") != pinned.service:
            raise KeyDirError(f"{listing} says {pinned.file} is key {entry.get('key_id')} of {entry.get('service')}, "
                              f"but it holds key {pinned.key_id} of {pinned.service}")
        found[pinned.key_id] = PinnedKey(pinned.service, pinned.key_id, pinned.file, str(entry.get("status")),
                                         pinned.key)
    return found


# -- receipts --------------------------------------------------------------------------------------------


@dataclass
class Receipt:
    line: int
    data: dict[str, Any]
    found: bool = False

    def name(self) -> str:
        d = self.data
        return (f"receipt on line {self.line} ({d['topic']}[{d['partition']}]@{d['offset']}, {d['subject']} "
                f"seq {d['seq']}, hash {str(d['hash'])[:12]}…)")


_RECEIPT_TYPES: dict[str, type] = {"topic": str, "partition": int, "offset": int, "subject": str, "seq": int,
                                   "hash": str, "key_id": str, "signature": str}


def read_receipts(path: Path) -> tuple[list[Receipt], list[str]]:
    """The receipts of a JSON Lines file, and the lines that are not receipts (why)."""
    receipts: list[Receipt] = []
    bad: list[str] = []
    with Path(path).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = decode(line)
            except (ValueError, UnicodeDecodeError) as exc:
                bad.append(f"line {number} of {path} is not a JSON receipt: {exc}")
                continue
            if not isinstance(data, dict):
                bad.append(f"line {number} of {path} is not a JSON object")
                continue
            wrong = [name for name, kind in _RECEIPT_TYPES.items() if type(data.get(name)) is not kind]
            if wrong:
                bad.append(f"line {number} of {path} is not a receipt: {', '.join(wrong)} missing or of the wrong type")
                continue
            if data["topic"] not in RECORD_TOPICS:
                bad.append(f"line {number} of {path}: {data['topic']!r} is not a topic of record")
                continue
            receipts.append(Receipt(number, data))
    return receipts, bad


# -- checkpoints -----------------------------------------------------------------------------------------


@dataclass
class _Checkpoint:
    """What is kept in memory of one checkpoint (its payload is in the spool)."""

    where: Where
    topic: str
    number: int
    writer: str
    key_id: str
    spool: tuple[int, int]
    ends: dict[int, int] = field(default_factory=dict)  # partition -> end offset
    status: str = "pending"  # verified | rejected | unchecked (no keys pinned) | pending

    def name(self) -> str:
        return f"checkpoint {self.number} of {self.topic}"

    @property
    def usable(self) -> bool:
        return self.status in ("verified", "unchecked")


@dataclass
class _Range:
    """Offsets [start, end) of one partition, up to checkpoint ``number``."""

    number: int
    start: int
    end: int
    heads: tuple[int, int] | None  # where its heads are in the spool (None: the checkpoint lists none)
    one_sided: bool  # an earlier checkpoint is missing or unusable: only the heads it lists can be compared
    writer: str
    digest: str  # the heads_digest it signed
    prior: str | None  # the digest it chains on (None: not known, an earlier checkpoint is missing or unusable)


@dataclass
class _Part:
    """One partition of a record topic as the records stream through."""

    ranges: list[_Range]
    index: int = 0
    end: float = _INFINITY
    heads: dict[str, tuple[Any, Any, int]] | None = None  # subject -> (seq, hash, offset) in the current range

    def start(self) -> None:
        if self.index < len(self.ranges):
            self.end = self.ranges[self.index].end
            self.heads = {}
        else:
            self.end = _INFINITY
            self.heads = None


class Anchors:
    """Feed it the checkpoints (``add_checkpoint``), ``prepare``, then every record (``feed``), then
    ``finish``. ``keys``: the pinned keys (None: authenticity is not checked)."""

    def __init__(self, findings: Findings, keys: TrustedKeys | None = None) -> None:
        self.findings = findings
        self.keys = keys
        self._spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 (closed below)
        weakref.finalize(self, self._spool.close)  # also when the replay fails half-way
        self._checkpoints: list[_Checkpoint] = []
        self._parts: dict[tuple[str, int], _Part] = {}
        self._plans: dict[tuple[str, int], list[_Range]] = {}
        self._trusted: dict[str, dict[str, Ed25519PublicKey]] = {
            service: (keys.of(service) if keys is not None else {}) for service in WRITERS}
        self.followed: list[dict[str, Any]] = []  # keys announced by verified checkpoints
        #: writer -> announced key -> (the key it replaced, the topic and number of the announcing checkpoint)
        self._replaced: dict[str, dict[str, tuple[str, str, int]]] = {service: {} for service in WRITERS}
        self._receipts: dict[tuple[str, int, int], list[Receipt]] = {}
        self._receipt_list: list[Receipt] = []
        self.receipts_file: str | None = None
        self.summary: dict[str, Any] = {}
        self.notes: list[str] = []
        #: Whether ``feed`` has anything to do (a checkpoint covers some partition, or receipts name records).
        self.active = False

    # -- the checkpoints, before the records -----------------------------------------------------------

    def add_checkpoint(self, where: Where, envelope: Mapping[str, Any]) -> None:
        """One ChainCheckpoint record that passed the record checks (schema, placement, chain, canonical)."""
        data = envelope["data"]
        payload = canonical(data)
        self._spool.seek(0, 2)
        at = self._spool.tell()
        self._spool.write(payload)
        checkpoint = _Checkpoint(where, data["topic"], data["number"], data["writer"], data["key_id"],
                                 (at, len(payload)))
        for part in data["partitions"]:
            checkpoint.ends.setdefault(part["partition"], part["end_offset"])
        self._checkpoints.append(checkpoint)

    def _read(self, at: tuple[int, int]) -> Any:
        self._spool.seek(at[0])
        return decode(self._spool.read(at[1]))

    def _keep(self, value: Any) -> tuple[int, int]:
        raw = canonical({"v": value})
        self._spool.seek(0, 2)
        at = self._spool.tell()
        self._spool.write(raw)
        return at, len(raw)

    def _report(self, check: str, where: Where | None, subject: str | None, message: str) -> None:
        self.findings.add(check, where, subject, message)

    def prepare(self) -> None:
        """Verify the checkpoints (numbers, signatures and keys, structure) and plan the ranges."""
        by_topic: dict[str, list[_Checkpoint]] = {}
        for checkpoint in sorted(self._checkpoints, key=lambda c: (c.topic, c.number, c.where.offset)):
            sequence = by_topic.setdefault(checkpoint.topic, [])
            if sequence and sequence[-1].number == checkpoint.number:
                checkpoint.status = "rejected"
                self._report("checkpoint", checkpoint.where, checkpoint.topic,
                             f"{checkpoint.name()} appears twice (also at {CHECKPOINTS}[{sequence[-1].where.partition}]"
                             f"@{sequence[-1].where.offset}): only the first is used")
                continue
            expected = sequence[-1].number + 1 if sequence else 1
            if checkpoint.number > expected:
                missing = str(expected) if checkpoint.number - expected == 1 else f"{expected}..{checkpoint.number - 1}"
                after = f"checkpoint {sequence[-1].number} is followed by {checkpoint.number}" if sequence \
                    else f"the first checkpoint is number {checkpoint.number}"
                self._report("checkpoint", checkpoint.where, checkpoint.topic,
                             f"checkpoint missing: number {missing} of {checkpoint.topic} is not in the log "
                             f"({after})")
            sequence.append(checkpoint)
        if self.keys is None:
            for sequence in by_topic.values():
                for checkpoint in sequence:
                    checkpoint.status = "unchecked"
        else:
            self._verify_signatures(by_topic)
        for topic, sequence in by_topic.items():
            self._plan(topic, [c for c in sequence if c.usable])
        self._parts = {}
        self.active = bool(self._plans or self._receipts)
        self.summary["checkpoints"] = {
            topic: {"count": len(sequence), "first": sequence[0].number, "last": sequence[-1].number,
                    "verified": sum(c.status == "verified" for c in sequence),
                    "rejected": sum(c.status == "rejected" for c in sequence)}
            for topic, sequence in sorted(by_topic.items())}

    def _verify_signatures(self, by_topic: Mapping[str, list[_Checkpoint]]) -> None:
        """Walk each topic's checkpoints in order; a checkpoint waits while its key is not (yet) trusted, since
        a checkpoint of another topic of the same writer may announce it. When every topic waits, the first
        waiting checkpoint is signed by a key nobody vouches for: rejected, and the walk goes on."""
        position = dict.fromkeys(by_topic, 0)
        retired: dict[str, dict[str, tuple[int, str]]] = {topic: {} for topic in by_topic}
        while True:
            moved = False
            for topic, sequence in by_topic.items():
                while position[topic] < len(sequence):
                    checkpoint = sequence[position[topic]]
                    if checkpoint.status == "rejected":
                        position[topic] += 1
                        continue
                    key = self._trusted[checkpoint.writer].get(checkpoint.key_id)
                    if key is None:
                        break
                    self._verify(checkpoint, key, retired[topic])
                    position[topic] += 1
                    moved = True
            if moved:
                continue
            waiting = [(topic, sequence[position[topic]]) for topic, sequence in by_topic.items()
                       if position[topic] < len(sequence)]
            if not waiting:
                self._no_return_to_replaced_keys(by_topic)
                return
            topic, checkpoint = waiting[0]
            checkpoint.status = "rejected"
            owner = next((service for service, keys in self._trusted.items() if checkpoint.key_id in keys), None)
            if owner is not None:
                why = f"signed with a key of {owner} ({checkpoint.key_id}), not of {checkpoint.writer}, the writer " \
                      f"of {checkpoint.topic}"
            else:
                why = f"signed by key {checkpoint.key_id}, which is neither pinned for {checkpoint.writer} nor " \
                      f"announced by a verified checkpoint of {checkpoint.writer}: a forged checkpoint"
            self._report("checkpoint", checkpoint.where, checkpoint.topic, f"{checkpoint.name()} is {why}")
            position[topic] += 1

    def _no_return_to_replaced_keys(self, by_topic: Mapping[str, list[_Checkpoint]]) -> None:
        """Several instances share a writer's key (docs/scaling.md): the checkpoint announcing a rotation may be
        of another topic. Once a topic's checkpoints are signed with the successor, the replaced key signs none
        of its later checkpoints (an instance that went on with the old key, or a thief who has it)."""
        for topic, sequence in by_topic.items():
            latest: _Checkpoint | None = None
            for checkpoint in sequence:
                if checkpoint.status != "verified":
                    continue
                step = None if latest is None or latest.key_id == checkpoint.key_id else \
                    self._replaced_by(checkpoint.writer, latest.key_id, checkpoint.key_id)
                if step is None:
                    latest = checkpoint
                    continue
                assert latest is not None
                checkpoint.status = "rejected"
                self._report("checkpoint", checkpoint.where, topic,
                             f"{checkpoint.name()} is signed with key {checkpoint.key_id} of {checkpoint.writer}, "
                             f"which checkpoint {step[2]} of {step[1]} replaced, and checkpoint {latest.number} of "
                             f"{topic} was signed with its successor {latest.key_id} already: after a rotation only "
                             "the new key signs")

    def _replaced_by(self, writer: str, newer: str, older: str) -> tuple[str, str, int] | None:
        """The announcement through which ``older`` led (by one rotation or several) to ``newer``, if it did."""
        seen = {newer}
        while (step := self._replaced.get(writer, {}).get(newer)) is not None:
            if step[0] == older:
                return step
            if step[0] in seen:
                return None
            seen.add(newer := step[0])
        return None

    def _verify(self, checkpoint: _Checkpoint, key: Ed25519PublicKey, retired: dict[str, tuple[int, str]]) -> None:
        if checkpoint.key_id in retired:
            number, successor = retired[checkpoint.key_id]
            checkpoint.status = "rejected"
            self._report("checkpoint", checkpoint.where, checkpoint.topic,
                         f"{checkpoint.name()} is signed with key {checkpoint.key_id} of {checkpoint.writer}, which "
                         f"checkpoint {number} replaced with key {successor}: after a rotation only the new key "
                         "signs")
            return
        data = self._read(checkpoint.spool)
        if not anchoring.verify(key, anchoring.checkpoint_payload(data), data.get("signature")):
            checkpoint.status = "rejected"
            self._report("checkpoint", checkpoint.where, checkpoint.topic,
                         f"{checkpoint.name()}: its signature does not verify with key {checkpoint.key_id} of "
                         f"{checkpoint.writer}: the checkpoint was changed after it was signed, or forged")
            return
        checkpoint.status = "verified"
        announced = data.get("next_key")
        if announced is None:
            return
        try:
            public = anchoring.public_key_from_text(announced["public_key"])
        except anchoring.AnchorError as exc:
            self._report("checkpoint", checkpoint.where, checkpoint.topic,
                         f"{checkpoint.name()} announces key {announced['key_id']}: {exc}")
            return
        if anchoring.key_id(public) != announced["key_id"]:
            self._report("checkpoint", checkpoint.where, checkpoint.topic,
                         f"{checkpoint.name()} announces key {announced['key_id']}, but the public key it gives is "
                         f"key {anchoring.key_id(public)}")
            return
        self._trusted[checkpoint.writer][announced["key_id"]] = public
        retired[checkpoint.key_id] = (checkpoint.number, announced["key_id"])
        self._replaced[checkpoint.writer].setdefault(announced["key_id"],
                                                     (checkpoint.key_id, checkpoint.topic, checkpoint.number))
        self.followed.append({"service": checkpoint.writer, "key_id": announced["key_id"],
                              "announced_by": checkpoint.key_id, "topic": checkpoint.topic,
                              "checkpoint": checkpoint.number})

    def _plan(self, topic: str, usable: list[_Checkpoint]) -> None:
        """Structure of a topic's usable checkpoints (digests chain, offsets never go back, heads sorted), and
        the ranges each partition's records are compared in."""
        previous: dict[int, tuple[int, int, str]] = {}  # partition -> (number, end offset, digest)
        for checkpoint in usable:
            data = self._read(checkpoint.spool)
            seen: set[int] = set()
            for part in data["partitions"]:
                partition, end, digest = part["partition"], part["end_offset"], part["heads_digest"]
                if partition in seen:
                    self._report("checkpoint", checkpoint.where, topic,
                                 f"{checkpoint.name()} lists partition {partition} twice: the first is used")
                    continue
                seen.add(partition)
                number, start, prior = previous.get(partition, (0, 0, anchoring.GENESIS_DIGEST))
                contiguous = number == checkpoint.number - 1
                if end < start:
                    self._report("checkpoint", checkpoint.where, topic,
                                 f"{checkpoint.name()}: partition {partition} ends at offset {end}, before offset "
                                 f"{start} where checkpoint {number} ended it")
                    continue
                kept = None
                if part["heads"] is not None:  # null: too many streams moved to list them (the digest commits)
                    heads = [(h["subject"], h["seq"], h["hash"]) for h in part["heads"]]
                    subjects = [subject for subject, _, _ in heads]
                    if subjects != sorted(set(subjects)):
                        self._report("checkpoint", checkpoint.where, topic,
                                     f"{checkpoint.name()}: the heads of partition {partition} are not sorted by "
                                     "subject, each subject once")
                    if contiguous and anchoring.heads_digest(prior, heads) != digest:
                        self._report("checkpoint", checkpoint.where, topic,
                                     f"{checkpoint.name()}: the heads_digest of partition {partition} is not the "
                                     f"digest of its heads chained on checkpoint {number}'s")
                    if contiguous and len(heads) > end - start:
                        self._report("checkpoint", checkpoint.where, topic,
                                     f"{checkpoint.name()}: partition {partition} lists {len(heads)} heads for "
                                     f"{end - start} record(s) (offsets {start}..{end - 1})")
                    kept = self._keep(heads)
                self._plans.setdefault((topic, partition), []).append(
                    _Range(checkpoint.number, start, end, kept, not contiguous, checkpoint.writer, digest,
                           prior if contiguous else None))
                previous[partition] = (checkpoint.number, end, digest)

    # -- receipts ------------------------------------------------------------------------------------------

    def expect_receipts(self, receipts: Iterable[Receipt], source: str, unreadable: Iterable[str] = ()) -> None:
        self.receipts_file = source
        for message in unreadable:
            self._report("receipt", None, None, message)
        for receipt in receipts:
            d = receipt.data
            self._receipts.setdefault((d["topic"], d["partition"], d["offset"]), []).append(receipt)
            self._receipt_list.append(receipt)
        self.active = bool(self._plans or self._receipts)

    def _check_receipts(self, record: Record) -> None:
        for receipt in self._receipts.get((record.topic, record.partition, record.offset), ()):
            receipt.found = True
            envelope = record.envelope or {}
            d = receipt.data
            stated = (envelope.get("subject"), envelope.get("seq"), envelope.get("hash"))
            if stated != (d["subject"], d["seq"], d["hash"]):
                self._report("receipt", Where(record.topic, record.partition, record.offset), d["subject"],
                             f"the record of the {receipt.name()} is different: the log has "
                             f"{stated[0]} seq {stated[1]}, hash {str(stated[2])[:12]}… there: the record was "
                             "changed, removed or moved")

    # -- the records -----------------------------------------------------------------------------------------

    def feed(self, record: Record) -> None:
        """One record of a record topic, in offset order within its partition."""
        position = (record.topic, record.partition)
        part = self._parts.get(position)
        if part is None:
            part = self._parts[position] = _Part(self._plans.get(position, []))
            part.start()
        offset = record.offset
        if offset >= part.end:
            self._reach(part, record.topic, record.partition, offset)
        heads = part.heads
        if heads is not None:
            envelope = record.envelope
            if envelope is not None:
                subject = envelope.get("subject")
                if type(subject) is str:
                    heads[subject] = (envelope.get("seq"), envelope.get("hash"), offset)
        if self._receipts:
            self._check_receipts(record)

    def _reach(self, part: _Part, topic: str, partition: int, offset: int) -> None:
        """Close every range that ends at or before ``offset``."""
        while part.end <= offset:
            self._compare(part, topic, partition)
            part.index += 1
            part.start()

    def _compare(self, part: _Part, topic: str, partition: int) -> None:
        span = part.ranges[part.index]
        computed = part.heads or {}
        if span.heads is None:
            self._compare_digest(topic, partition, span, computed)
            return
        stated: dict[str, Head] = {s: (q, h) for s, q, h in self._read(span.heads)["v"]}
        subjects = sorted(stated.keys() | (set() if span.one_sided else computed.keys()))
        for subject in subjects:
            signed, got = stated.get(subject), computed.get(subject)
            if got is not None and signed == (got[0], got[1]):
                continue
            self._mismatch(topic, partition, span, subject, signed, got)

    def _compare_digest(self, topic: str, partition: int, span: _Range, computed: Mapping[str, tuple[Any, Any, int]]
                        ) -> None:
        """A checkpoint that lists no heads (too many moved): the heads of the records, chained on the previous
        digest, must give the digest it signed. A difference names every stream that moved there."""
        offsets = f"{topic}[{partition}] offsets {span.start}..{span.end - 1}"
        if span.prior is None:
            self.notes.append(f"checkpoint {span.number} of {topic} lists no heads of partition {partition} and an "
                              f"earlier checkpoint is missing or unusable: {offsets} not compared")
            return
        try:
            recomputed = anchoring.heads_digest(span.prior, [(s, q, h) for s, (q, h, _) in computed.items()])
        except (TypeError, ValueError):
            recomputed = None
        if recomputed == span.digest:
            return
        moved = sorted(computed)
        shown = ", ".join(moved[:20]) + (f" and {len(moved) - 20} more" if len(moved) > 20 else "")
        self._report("anchored", Where(topic, partition, max(span.end - 1, 0)), moved[0] if len(moved) == 1 else None,
                     f"streams {topic} / {shown or '(none)'}: the heads of {offsets} do not give the heads_digest "
                     f"that checkpoint {span.number} of {topic} (signed by {span.writer}) signed; it lists no "
                     "heads, so the stream cannot be told: records of one of these streams were changed, dropped, "
                     f"reordered or re-sealed before checkpoint {span.number}")

    def _mismatch(self, topic: str, partition: int, span: _Range, subject: str, signed: Head | None,
                  got: tuple[Any, Any, int] | None, cut: bool = False) -> None:
        offsets = f"offsets {span.start}..{span.end - 1}" if span.end > span.start else f"offset {span.start}"
        checkpoint = (f"checkpoint {span.number} of {topic} (signed by {span.writer}; {topic}[{partition}] "
                      f"{offsets})")
        stream = f"stream {topic} / {subject}"
        if signed is not None and got is not None and cut:
            message = (f"{stream}: {checkpoint} has its head at seq {signed[0]}, hash {signed[1][:12]}…; the log ends "
                       f"before it, the stream's last record there is seq {got[0]} (offset {got[2]}): records of the "
                       f"stream were cut before checkpoint {span.number}")
        elif signed is not None and got is not None:
            message = (f"{stream}: {checkpoint} has its head at seq {signed[0]}, hash {signed[1][:12]}…; the records "
                       f"give seq {got[0]}, hash {str(got[1])[:12]}… (offset {got[2]}): records of the stream were "
                       f"changed, dropped, reordered or re-sealed before checkpoint {span.number}")
        elif signed is not None:
            where = "the log ends before" if cut else "no record of the stream is in"
            message = (f"{stream}: {checkpoint} has its head at seq {signed[0]}, hash {signed[1][:12]}…; "
                       f"{where} {offsets}: records of the stream were dropped, moved or cut before checkpoint "
                       f"{span.number}")
        else:
            assert got is not None
            message = (f"{stream}: {checkpoint} does not list the stream, but the records there include its seq "
                       f"{got[0]} (offset {got[2]}): a record was added or moved before checkpoint {span.number}")
        offset = got[2] if got is not None else max(span.end - 1, 0)
        self._report("anchored", Where(topic, partition, offset), subject, message)

    # -- at the end ------------------------------------------------------------------------------------------

    def finish(self, replayed: Mapping[str, Mapping[int, int]],
               limited: Callable[[str, int], bool] | None = None) -> None:
        """Close the ranges the replay reached; the rest were cut (or, where the replay was told to stop
        early, not replayed). Count what no checkpoint covers yet; check the receipts."""
        for position in sorted(self._plans.keys() | self._parts.keys()):
            topic, partition = position
            part = self._parts.get(position)
            if part is None:
                part = self._parts[position] = _Part(self._plans.get(position, []))
                part.start()
            read_end = replayed.get(topic, {}).get(partition, 0)
            while part.end <= read_end:  # every record below the range's end was read
                self._compare(part, topic, partition)
                part.index += 1
                part.start()
            if part.index < len(part.ranges):
                self._unreached(part, topic, partition, read_end, limited is not None and limited(topic, partition))
        self._count_uncovered(replayed)
        self._finish_receipts(replayed, limited)
        self._spool.close()

    def _unreached(self, part: _Part, topic: str, partition: int, read_end: int, stopped: bool) -> None:
        span = part.ranges[part.index]
        if stopped:
            self.notes.append(f"{topic}[{partition}]: checkpoints {span.number}..{part.ranges[-1].number} cover "
                              f"offsets the replay was told to stop before (--until/--offsets): not compared")
            return
        self._report("anchored", Where(topic, partition, read_end), None,
                     f"{topic}[{partition}] ends at offset {read_end}, before offset {span.end} that checkpoint "
                     f"{span.number} of {topic} (signed by {span.writer}) covers: the stream was cut before "
                     f"checkpoint {span.number} ({span.end - read_end} record(s) missing)")
        computed = part.heads or {}
        latest: dict[str, tuple[Head, _Range]] = {}
        for later in part.ranges[part.index:]:
            if later.heads is not None:
                for subject, seq, digest in self._read(later.heads)["v"]:
                    latest[subject] = ((seq, digest), later)
        for subject in sorted(latest.keys() | (set() if span.one_sided else computed.keys())):
            signed, where = latest.get(subject, (None, span))
            got = computed.get(subject)
            if got is not None and signed == (got[0], got[1]):
                continue
            self._mismatch(topic, partition, where, subject, signed, got, cut=True)
        part.index = len(part.ranges)

    def _count_uncovered(self, replayed: Mapping[str, Mapping[int, int]]) -> None:
        uncovered: dict[str, int] = {}
        covered: dict[str, dict[str, int]] = {}
        for topic in RECORD_TOPICS:
            for partition, read_end in replayed.get(topic, {}).items():
                ranges = self._plans.get((topic, partition), [])
                end = ranges[-1].end if ranges else 0
                covered.setdefault(topic, {})[str(partition)] = min(end, read_end)
                uncovered[topic] = uncovered.get(topic, 0) + max(0, read_end - end)
        self.summary["covered_to"] = covered
        self.summary["uncovered"] = uncovered
        listed = self.summary.get("checkpoints", {})
        for topic in RECORD_TOPICS:
            count = uncovered.get(topic, 0)
            total = sum(replayed.get(topic, {}).values())
            if topic not in listed:
                if total:
                    self.notes.append(f"{topic}: no checkpoint, so none of its {total:,} record(s) is anchored")
            elif count:
                self.notes.append(f"{topic}: {count:,} record(s) after its last checkpoint "
                                  f"({listed[topic]['last']}) are not covered yet")

    def _finish_receipts(self, replayed: Mapping[str, Mapping[int, int]],
                         limited: Callable[[str, int], bool] | None) -> None:
        if self.receipts_file is None:
            return
        unchecked = 0
        signed = 0
        for receipt in self._receipt_list:
            d = receipt.data
            where = Where(d["topic"], d["partition"], d["offset"])
            if self.keys is not None:
                writer = owner_of(d["topic"])
                key = self._trusted[writer].get(d["key_id"])
                if key is None:
                    owner = next((s for s, keys in self._trusted.items() if d["key_id"] in keys), None)
                    why = f"a key of {owner}, not of {writer}" if owner else \
                        f"key {d['key_id']}, which is neither pinned for {writer} nor announced by its checkpoints"
                    self._report("receipt", where, d["subject"], f"the {receipt.name()} is signed with {why}")
                elif not anchoring.verify(key, anchoring.receipt_payload(d), d["signature"]):
                    self._report("receipt", where, d["subject"],
                                 f"the {receipt.name()}: its signature does not verify with key {d['key_id']} of "
                                 f"{writer}: the receipt was changed, or forged")
                else:
                    signed += 1
            if receipt.found:
                continue
            read_end = replayed.get(d["topic"], {}).get(d["partition"], 0)
            if d["offset"] >= read_end and limited is not None and limited(d["topic"], d["partition"]):
                unchecked += 1
                continue
            self._report("receipt", where, d["subject"],
                         f"the record of the {receipt.name()} is missing from the log: it was removed, or the "
                         "log was cut before it")
        self.summary["receipts"] = {"file": self.receipts_file, "count": len(self._receipt_list),
                                    "found": sum(r.found for r in self._receipt_list),
                                    "signatures_verified": signed if self.keys is not None else None}
        if unchecked:
            self.notes.append(f"{unchecked} receipt(s) name records beyond where the replay was told to stop: "
                              "not checked")
        if self.keys is None and self._receipt_list:
            self.notes.append("the receipts' signatures were NOT checked: no keys pinned (--trusted-keys)")

    def authenticity(self) -> str:
        """What the report says about authenticity, plainly."""
        if self.keys is None:
            return ("authenticity NOT checked: no keys pinned (--trusted-keys DIR). The checkpoints were checked "
                    "against the records and for their numbers and digests, but whoever can write the log can "
                    "write checkpoints too")
        followed = f", and {len(self.followed)} key(s) announced by verified checkpoints" if self.followed else ""
        return f"authenticity checked against {len(self.keys.keys)} pinned key(s) in {self.keys.directory}{followed}"

    def report(self) -> dict[str, Any]:
        """The ``anchoring`` part of the ``--json`` document."""
        return {
            "authenticity_checked": self.keys is not None,
            "authenticity": self.authenticity(),
            "notes": self.notes,
            "trusted_keys": None if self.keys is None else {"directory": str(self.keys.directory),
                                                           "keys": self.keys.describe()},
            "keys_followed": self.followed,
            "checkpoints": self.summary.get("checkpoints", {}),
            "covered_to": self.summary.get("covered_to", {}),
            "uncovered": self.summary.get("uncovered", {}),
            "receipts": self.summary.get("receipts"),
        }


def placement_problem(envelope: Mapping[str, Any]) -> str | None:
    """What is wrong with where a ChainCheckpoint sits: its topic is a topic of record, its writer that
    topic's owner, its source the writer (the subject = data.topic rule is the schema check's)."""
    data = envelope["data"]
    topic = data["topic"]
    try:
        owner = owner_of(topic)
    except KeyError:
        return f"{topic!r} is not a topic of record"
    if data["writer"] != owner:
        return f"writer {data['writer']!r} is not {owner!r}, the writer of {topic}"
    if envelope["source"] != owner:
        return f"source {envelope['source']!r} is not {owner!r}, the writer of {topic}"
    return None


__all__ = ["Anchors", "KeyDirError", "PinnedKey", "Receipt", "TrustedKeys", "load_trusted_keys", "placement_problem",
           "read_receipts"]
