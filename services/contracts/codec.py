"""The contract's codec (DESIGN §4): how JSON is read, the one canonical encoding, the one hash.

- :func:`decode` reads JSON as the log holds it: UTF-8 only, no float anywhere (amounts are
  strings), no NaN or Infinity, no key twice in an object. :func:`decode_envelope` reads a
  record value (a JSON object).
- :func:`canonical` is the canonical encoding: keys sorted, separators ``,`` and ``:``, no ASCII
  escaping, UTF-8 (the bytes ``json.dumps(value, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False).encode()`` gives; orjson writes them, ten times faster, and the standard
  encoder writes what orjson will not: integers past 64 bits, keys that are not strings).
- :func:`content_hash` is SHA-256 (hex) of that encoding; :func:`envelope_hash` the hash of an
  envelope: of its canonical encoding without its ``hash`` member.
- A record value must be exactly the canonical encoding of its envelope: :func:`check_canonical`
  refuses any other, :func:`noncanonical_reason` names what differs (a duplicate key, whitespace,
  an escape, key order), :func:`inspect_value` reads a value as the audit does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import Any

import orjson


class EnvelopeError(ValueError):
    """JSON or an envelope that breaks the contract; ``field`` names what is wrong."""

    def __init__(self, message: str, field: str = "envelope") -> None:
        super().__init__(message)
        self.field = field


class DuplicateKeys(EnvelopeError):
    """A JSON object with the same key twice: parsers disagree on which one counts."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(", ".join(f"duplicate key {_text(k)}" for k in keys), field="canonical")
        self.keys = keys


# -- decoding ----------------------------------------------------------------------------------------------


def _reject_float(text: str) -> Any:
    raise EnvelopeError(f"floats are not allowed in events (got {text}); amounts are strings like \"12.30\"",
                        field="data")


def _reject_constant(text: str) -> Any:
    raise EnvelopeError(f"{text} is not allowed in events", field="data")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = [key for key, _ in pairs if key in seen or seen.add(key)]  # type: ignore[func-returns-value]
        raise DuplicateKeys(list(dict.fromkeys(twice)))
    return obj


#: The decoders, made once (``json.loads`` builds a new one per call when given hooks). Refusing duplicate
#: keys costs a Python call per object, so a record value is read without that hook: the canonical check
#: that follows it refuses a duplicate key and names it (the canonical encoding of what was read cannot
#: hold the key twice).
_DECODER = json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant,
                            object_pairs_hook=_refuse_duplicates)
_LAST_KEY_COUNTS = json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant)


def decode(raw: bytes | str, *, duplicates: bool = False) -> Any:
    """Parse JSON as the log holds it (UTF-8 bytes, or text).

    A float, NaN or Infinity anywhere raises EnvelopeError (field ``data``); an object with a key twice
    DuplicateKeys (an EnvelopeError), unless ``duplicates`` (the last one counts, as in most parsers: for a
    caller that names duplicates itself, by the canonical check). Text that is not UTF-8 or not JSON raises
    the decoder's own UnicodeDecodeError or JSONDecodeError (ValueErrors, as EnvelopeError is).
    """
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    return (_LAST_KEY_COUNTS if duplicates else _DECODER).decode(text)


def decode_envelope(raw: bytes | str) -> dict[str, Any]:
    """A record value as the JSON object it must be; EnvelopeError otherwise (not UTF-8 JSON, not an object,
    a float, NaN or Infinity). A duplicate key is left to the canonical check (:func:`check_canonical`),
    which refuses it naming the key; the last one counts until then.
    """
    try:
        value = decode(raw, duplicates=True)
    except EnvelopeError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: the decoder's words are the reason
        raise EnvelopeError(f"record value is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EnvelopeError("record value must be a JSON object")
    return value


# -- the canonical encoding and the hash ---------------------------------------------------------------------


#: The standard encoder writes what orjson refuses (integers past 64 bits, keys that are not strings).
_STANDARD = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_SORTED = orjson.OPT_SORT_KEYS


def _encode(value: Any) -> bytes:
    """The canonical bytes of a value without floats (orjson writes floats its own way)."""
    try:
        return orjson.dumps(value, option=_SORTED)
    except TypeError:  # orjson.JSONEncodeError: past 64 bits, a key not a str, a lone surrogate ...
        return _STANDARD.encode(value).encode("utf-8")


def has_float(value: Any) -> bool:
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


def canonical(value: Any, *, floats: bool = False) -> bytes:
    """The canonical encoding of a JSON value (DESIGN §4): keys sorted, separators ``,`` and ``:``, no ASCII
    escaping, UTF-8.

    A float anywhere raises EnvelopeError naming where (``field``: ``data.amount``, ``a[1].b``); with
    ``floats``, it is written as ``json.dumps`` writes it (a request body, which may hold anything JSON, is
    hashed so). A lone surrogate raises UnicodeEncodeError (a ValueError): it cannot be written as UTF-8.
    """
    if has_float(value):
        if floats:
            return _STANDARD.encode(value).encode("utf-8")
        _check_no_floats(value, "envelope")
    return _encode(value)


def content_hash(value: Any, *, floats: bool = False) -> str:
    """SHA-256 (hex) of the canonical encoding of ``value`` (see :func:`canonical`)."""
    return hashlib.sha256(canonical(value, floats=floats)).hexdigest()


def envelope_hash(envelope: Mapping[str, Any]) -> str:
    """An envelope's hash: SHA-256 of the canonical encoding of the envelope without its ``hash`` field."""
    return content_hash({k: v for k, v in envelope.items() if k != "hash"})


def hash_matches(envelope: Mapping[str, Any]) -> bool:
    """Whether an envelope's stated ``hash`` is the hash of its content (False if it cannot be hashed)."""
    try:
        return envelope_hash(envelope) == envelope.get("hash")
    except (TypeError, ValueError):
        return False


def canonical_or_none(value: Any) -> bytes | None:
    """The canonical encoding of a decoded JSON value (no floats in it), or None if it has none (a lone
    surrogate)."""
    try:
        return _encode(value)
    except (ValueError, TypeError):
        return None


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


# -- canonical bytes: a value is exactly the canonical encoding of what it decodes to ---------------------


def _text(value: str) -> str:
    """A str as JSON text, as the canonical encoding writes it."""
    return _STANDARD.encode(value)


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
                        canonical_escape = _text(json.loads(f'"{escape}"'))[1:-1]
                    except ValueError:  # half a surrogate pair: the canonical form has no such thing either
                        canonical_escape = ""
                    if escape != canonical_escape and len(escapes) < 3:
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
        for before, after in itertools.pairwise(value):
            if after < before:
                return f"{path or 'the top level'}: {_text(before)} before {_text(after)}"
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
        decode(text)
    except DuplicateKeys as exc:
        problems.append(str(exc))
    except ValueError as exc:
        return f"not JSON: {exc}"
    if value is None:
        value = decode(text, duplicates=True)
    encoded = canonical_or_none(value)
    if encoded is None:
        return "it has no canonical encoding (a lone surrogate cannot be written in UTF-8)"
    if encoded == data:
        return None
    spaces, escapes, numbers = _scan(text)
    if spaces:
        problems.append(f"whitespace outside strings (first at {spaces[0]})")
    if escapes:
        problems.append("escapes the canonical form does not use: " + ", ".join(escapes))
    if numbers:
        problems.append("numbers not in canonical form: " + ", ".join(numbers))
    unsorted = _unsorted(decode(text, duplicates=True))
    if unsorted:
        problems.append(f"keys not in sorted order ({unsorted})")
    if not problems:
        at = next((i for i, (a, b) in enumerate(zip(data, encoded, strict=False)) if a != b),
                  min(len(data), len(encoded)))
        problems.append(f"differs from the canonical encoding at byte {at}")
    return "; ".join(problems)


def check_canonical(raw: bytes, value: Any) -> None:
    """Raise EnvelopeError (field ``canonical``) unless ``raw`` is exactly the canonical encoding of
    ``value`` (what ``raw`` decodes to). The fast path is one encoding and one comparison."""
    if canonical_or_none(value) != raw:
        reason = noncanonical_reason(raw, value) or "it differs from the canonical encoding"
        raise EnvelopeError(f"the record value is not the canonical encoding of its envelope: {reason}",
                            field="canonical")


def inspect_value(raw: bytes) -> tuple[dict[str, Any] | None, str | None, bool | None, str | None]:
    """A record value as the audit reads it: ``(envelope, problem, intact, noncanonical)``.

    ``envelope`` is None when the value is not a JSON object (``problem`` says why); ``intact``: its hash
    matches its content; ``noncanonical``: None when the value is exactly the canonical encoding of the
    envelope (DESIGN §4), else what differs (duplicate key "amount", whitespace, escapes, key order …).
    One encoding per record: the hash is taken from the canonical bytes themselves.
    """
    try:
        envelope = decode_envelope(raw)
    except EnvelopeError as exc:  # the decoder's own words when it was not JSON at all
        return None, f"the record value is not an envelope: {exc.__cause__ or exc}", None, None
    return envelope, None, *inspect_decoded(raw, envelope)


def inspect_decoded(raw: bytes, envelope: dict[str, Any]) -> tuple[bool, str | None]:
    """``(intact, noncanonical)`` of :func:`inspect_value`, for the envelope ``raw`` decodes to (decoded already)."""
    if canonical_or_none(envelope) == raw:
        return hash_of_canonical(raw, envelope.get("hash")) or hash_matches(envelope), None
    reason = noncanonical_reason(raw, envelope) or "it differs from the canonical encoding"
    return hash_matches(envelope), f"not the canonical encoding of its envelope: {reason}"


__all__ = ["DuplicateKeys", "EnvelopeError", "canonical", "canonical_or_none", "check_canonical", "content_hash",
           "decode", "decode_envelope", "envelope_hash", "has_float", "hash_matches",
           "hash_of_canonical", "inspect_decoded", "inspect_value", "noncanonical_reason"]
