"""The event envelope of DESIGN §4: canonical JSON, per-(topic, subject) seq and SHA-256 chain.

An envelope is a plain ``dict`` exactly as it travels (UTF-8 JSON). ``seal`` fills in
``seq``, ``prev_hash`` and ``hash`` from the stream's previous envelope; ``check_link``
verifies one link; :class:`ChainVerifier` verifies whole streams and names the first break.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
SPEC_VERSION = "1.0"
#: Namespace for deterministic ids of derived events (uuid5 of the cause).
DERIVED_NAMESPACE = uuid.UUID("6f1c1f8e-3d2b-5a51-9a4e-62a07a0b7e55")

ENVELOPE_FIELDS = ("event_id", "type", "version", "source", "subject", "seq", "occurred_at", "actor",
                   "causation_id", "prev_hash", "hash", "data")


class EnvelopeError(ValueError):
    """An envelope that breaks the contract; ``field`` names what is wrong."""

    def __init__(self, message: str, field: str = "envelope") -> None:
        super().__init__(message)
        self.field = field


def _reject_float(text: str) -> Any:
    raise EnvelopeError(f"floats are not allowed in events (got {text}); amounts are strings like \"12.30\"",
                        field="data")


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """Keys sorted, separators ``,`` and ``:``, no ASCII escaping, UTF-8 (DESIGN §4)."""
    if _has_float(obj):
        _check_no_floats(obj, "envelope")
    return _dumps(obj)


#: One encoder for every canonical encoding (``json.dumps`` with options builds a new one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return _CANONICAL.encode(obj).encode("utf-8")


def _has_float(value: Any) -> bool:
    """Whether a float hides anywhere in ``value`` (the fast check; ``_check_no_floats`` names where)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif isinstance(item, float):
            return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _check_no_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise EnvelopeError(f"{path} is a float; amounts travel as strings like \"12.30\"", field=path)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_no_floats(item, f"{path}.{key}" if path != "envelope" else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_no_floats(item, f"{path}[{i}]")


def compute_hash(envelope: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of the envelope without its ``hash`` field."""
    body = {k: v for k, v in envelope.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _reject_constant(text: str) -> Any:
    raise EnvelopeError(f"{text} is not allowed in events", field="data")


#: One decoder for every record (json.loads builds a new one per call when given hooks).
_DECODER = json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant)


def parse_json(raw: bytes | str) -> Any:
    """Parse UTF-8 JSON as the log holds it; a float, NaN or Infinity anywhere raises EnvelopeError
    (a ValueError, as are the decoder's own errors)."""
    return _DECODER.decode(raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw)


def decode(raw: bytes | str) -> dict[str, Any]:
    """Parse a record value; floats (and NaN, Infinity) anywhere are rejected."""
    try:
        value = parse_json(raw)
    except EnvelopeError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"record value is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EnvelopeError("record value must be a JSON object")
    return value


def encode(envelope: Mapping[str, Any]) -> bytes:
    """The record value: the envelope's canonical JSON."""
    return canonical_json(envelope)


# -- canonical bytes (DESIGN §4): a value is exactly the canonical encoding of what it decodes to ----------


class DuplicateKeys(EnvelopeError):
    """A JSON object with the same key twice: parsers disagree on which one counts."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(", ".join(f"duplicate key {json.dumps(k, ensure_ascii=False)}" for k in keys),
                         field="canonical")
        self.keys = keys


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = [key for key, _ in pairs if key in seen or seen.add(key)]  # type: ignore[func-returns-value]
        raise DuplicateKeys(list(dict.fromkeys(twice)))
    return obj


#: The decoder that refuses duplicate keys (slower than ``_DECODER``: a Python call per object).
_STRICT_DECODER = json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant,
                                   object_pairs_hook=_refuse_duplicates)


def parse_json_strict(raw: bytes | str) -> Any:
    """``parse_json`` that also refuses an object with a key twice (DuplicateKeys, an EnvelopeError)."""
    return _STRICT_DECODER.decode(raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw)


def canonical_or_none(value: Any) -> bytes | None:
    """The canonical encoding of a decoded JSON value, or None if it has none (a lone surrogate)."""
    try:
        return _dumps(value)
    except (ValueError, TypeError):
        return None


_WHITESPACE = " \t\n\r"


def _scan(text: str) -> tuple[list[str], list[str], list[str]]:
    """Whitespace outside strings, escapes the canonical form would not use, and non-canonical numbers."""
    spaces: list[str] = []
    escapes: list[str] = []
    numbers: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    width = 6 if text[i + 1:i + 2] == "u" else 2
                    escape = text[i:i + width]
                    try:
                        meant = json.loads(f'"{escape}"')
                        canonical = json.dumps(meant, ensure_ascii=False)[1:-1]
                    except ValueError:  # half a surrogate pair: the canonical form has no such thing either
                        canonical = ""
                    if escape != canonical and len(escapes) < 3:
                        escapes.append(escape)
                    i += width
                else:
                    i += 1
            i += 1
        elif char in _WHITESPACE:
            if not spaces:
                spaces.append(f"byte {len(text[:i].encode('utf-8'))}")
            i += 1
        elif char == "-" or char.isdigit():
            start = i
            i += 1
            while i < n and (text[i].isdigit() or text[i] in "+-.eE"):
                i += 1
            number = text[start:i]
            if number in ("-0",) and len(numbers) < 3:
                numbers.append(number)
        else:
            i += 1
    return spaces, escapes, numbers


def _unsorted(value: Any, path: str = "") -> str | None:
    """Where an object's keys (in the order they were written) are first not sorted."""
    if isinstance(value, dict):
        keys = list(value)
        for before, after in itertools.pairwise(keys):
            if after < before:
                return f"{path or 'the top level'}: {json.dumps(before, ensure_ascii=False)} before " \
                       f"{json.dumps(after, ensure_ascii=False)}"
        for key, item in value.items():
            found = _unsorted(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unsorted(item, f"{path}[{index}]")
            if found:
                return found
    return None


def noncanonical_reason(raw: bytes | str, value: Any = None) -> str | None:
    """None when ``raw`` is exactly the canonical encoding of the JSON it holds; else what differs, named:
    duplicate keys, whitespace, escapes, number forms, key order (or the first byte that differs).

    The slow path of the canonical check (only for a value that is not canonical); ``value`` is what
    ``raw`` decodes to, if already known.
    """
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    data = text.encode("utf-8")
    problems: list[str] = []
    try:
        parse_json_strict(text)
    except DuplicateKeys as exc:
        problems.append(str(exc))
    except ValueError as exc:
        return f"not JSON: {exc}"
    if value is None:
        value = parse_json(text)
    canonical = canonical_or_none(value)
    if canonical is None:
        return "it has no canonical encoding (a lone surrogate cannot be written in UTF-8)"
    if canonical == data:
        return None
    spaces, escapes, numbers = _scan(text)
    if spaces:
        problems.append(f"whitespace outside strings (first at {spaces[0]})")
    if escapes:
        problems.append("escapes the canonical form does not use: " + ", ".join(escapes))
    if numbers:
        problems.append("numbers not in canonical form: " + ", ".join(numbers))
    unsorted = _unsorted(parse_json(text))
    if unsorted:
        problems.append(f"keys not in sorted order ({unsorted})")
    if not problems:
        at = next((i for i, (a, b) in enumerate(zip(data, canonical, strict=False)) if a != b),
                  min(len(data), len(canonical)))
        problems.append(f"differs from the canonical encoding at byte {at}")
    return "; ".join(problems)


def check_canonical(raw: bytes, value: Any) -> None:
    """Raise EnvelopeError (field ``canonical``) unless ``raw`` is exactly ``canonical_json(value)``
    (``value``: what ``raw`` decodes to). The fast path is one encoding and one comparison."""
    if canonical_or_none(value) != raw:
        reason = noncanonical_reason(raw, value) or "it differs from the canonical encoding"
        raise EnvelopeError(f"the record value is not the canonical encoding of its envelope: {reason}",
                            field="canonical")


def hash_of_canonical(raw: bytes, stated: object) -> bool:
    """Whether ``stated`` is the hash of the envelope whose canonical encoding is ``raw``, without encoding
    it again: the hashed bytes are ``raw`` without its top-level ``,"hash":"…"`` (keys sorted, so it is the
    last such member: only scalars sort after it in an envelope). False when not sure; the caller then
    computes the hash the ordinary way (a wrong member removed cannot give a false match: the bytes
    would contain their own hash)."""
    if type(stated) is not str or len(stated) != 64:
        return False
    at = raw.rfind(b',"hash":"')
    if at < 0 or raw[at + 9:at + 73] != stated.encode("ascii", "replace") or raw[at + 73:at + 74] != b'"':
        return False
    view = memoryview(raw)
    digest = hashlib.sha256(view[:at])
    digest.update(view[at + 74:])
    return digest.hexdigest() == stated


class _RandomIds:
    """Version-4 UUIDs from ``os.urandom``, read 4 KB (256 ids) at a time.

    ``uuid.uuid4()`` makes one system call per id, and in a busy threaded server each call gives
    up the GIL and then waits to win it back from the projection thread (about 30 µs an id in
    the batch-posting profile). The bytes are the same kind; only the reads are batched. A
    forked child starts with an empty buffer, so two processes never hand out the same ids.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._at = b"", 0

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._buffer):
                self._buffer, self._at = os.urandom(4096), 0
            raw = self._buffer[self._at:self._at + 16]
            self._at += 16
        return str(uuid.UUID(bytes=raw, version=4))


#: A new random (version 4) UUID as text, e.g. for an event_id.
new_uuid = _RandomIds()


def now_utc() -> str:
    """The current instant as UTC ISO-8601 with ``Z`` and milliseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def derived_event_id(cause: str, qualifier: str = "") -> str:
    """Deterministic id of an event derived from ``cause`` (uuid5), so a replay never makes two."""
    return str(uuid.uuid5(DERIVED_NAMESPACE, f"{cause}:{qualifier}"))


def new_envelope(*, event_type: str, version: int, source: str, subject: str, data: dict[str, Any],
                 actor: str, causation_id: str | None = None, event_id: str | None = None,
                 occurred_at: str | None = None) -> dict[str, Any]:
    """An unsealed envelope (no seq, prev_hash or hash yet)."""
    return {
        "event_id": event_id or new_uuid(),
        "type": event_type,
        "version": version,
        "source": source,
        "subject": subject,
        "seq": 0,
        "occurred_at": occurred_at or now_utc(),
        "actor": actor,
        "causation_id": causation_id,
        "prev_hash": GENESIS_HASH,
        "hash": "",
        "data": data,
    }


@dataclass(frozen=True)
class ChainHead:
    """The last link of one (topic, subject) stream."""

    seq: int = 0
    hash: str = GENESIS_HASH


def seal(envelope: dict[str, Any], head: ChainHead) -> dict[str, Any]:
    """Give ``envelope`` the next ``seq`` and ``prev_hash`` after ``head``, and its ``hash``."""
    return seal_encoded(envelope, head)[0]


def seal_encoded(envelope: dict[str, Any], head: ChainHead) -> tuple[dict[str, Any], bytes]:
    """``seal`` and the record value (``encode``) of the sealed envelope, checking for floats once."""
    sealed = dict(envelope)
    sealed["seq"] = head.seq + 1
    sealed["prev_hash"] = head.hash
    sealed["hash"] = compute_hash(sealed)  # rejects floats anywhere
    return sealed, _dumps(sealed)


def check_link(envelope: Mapping[str, Any], head: ChainHead) -> None:
    """Raise EnvelopeError unless ``envelope`` is the correct next link after ``head``."""
    if envelope.get("seq") != head.seq + 1:
        raise EnvelopeError(f"seq {envelope.get('seq')} does not follow {head.seq}", field="seq")
    if envelope.get("prev_hash") != head.hash:
        raise EnvelopeError("prev_hash does not match the previous envelope's hash", field="prev_hash")
    if envelope.get("hash") != compute_hash(envelope):
        raise EnvelopeError("hash does not match the envelope's content", field="hash")


@dataclass
class ChainVerifier:
    """Verifies streams as records arrive; remembers the head of every (topic, subject)."""

    heads: dict[tuple[str, str], ChainHead] = field(default_factory=dict)

    def check(self, topic: str, envelope: Mapping[str, Any]) -> None:
        key = (topic, str(envelope.get("subject")))
        head = self.heads.get(key, ChainHead())
        check_link(envelope, head)
        self.heads[key] = ChainHead(int(envelope["seq"]), str(envelope["hash"]))

    def head(self, topic: str, subject: str) -> ChainHead:
        return self.heads.get((topic, subject), ChainHead())


def cloudevents_headers(envelope: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka binary-mode headers repeating the envelope's identity (DESIGN §4)."""
    return [
        ("ce_id", str(envelope["event_id"]).encode()),
        ("ce_type", str(envelope["type"]).encode()),
        ("ce_source", str(envelope["source"]).encode()),
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_subject", str(envelope["subject"]).encode()),
        ("ce_time", str(envelope["occurred_at"]).encode()),
        ("content-type", b"application/json"),
    ]
