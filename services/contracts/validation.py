"""Envelope validation fast enough for a replay of a million events, and exactly the contract's.

Used by the audit (every record of a replay), by the services' projections (every record
they fold that they did not write themselves) and by the writers (strict, every event
before it is produced).

``services.contracts.events.validate_envelope`` is the authority, but it builds a marshmallow
schema and an error store for every call (30–300 µs an event). Here each payload schema of
``SCHEMAS`` is compiled once into a loader that runs the same marshmallow *fields*
(``field.deserialize``: their own type checks and validators) and the schema's own
``validates_schema`` hooks, without the per-call machinery.

The fast path only ever answers "valid" or "not sure". Every "not sure" (and every schema
the compiler does not understand) goes to ``validate_envelope`` itself, which gives the
verdict and names the problem; so the fast path can never let through an event the
contract refuses. The unit tests compare both on mutated payloads of every event type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing
from marshmallow.validate import Validator

from services.contracts.envelope import (
    ENVELOPE_FIELDS,
    EnvelopeError,
    canonical_or_none,
    check_canonical,
    hash_of_canonical,
    noncanonical_reason,
    parse_json,
)
from services.contracts.events import SCHEMAS, upcast_envelope, validate_envelope
from services.contracts.fields import HEX64_RE, INSTANT_RE, UUID_RE, WireString
from services.contracts.topics import TOPICS

Loader = Callable[[Any], Any]


class _Unsupported(Exception):
    """A schema construct the compiler does not mirror: such a schema always takes the slow path."""


class _Invalid(Exception):
    """The fast path is not sure the value is valid (the contract's own check decides)."""


def decode_value(raw: bytes | str) -> dict[str, Any]:
    """Parse a record value into an envelope dict; floats, NaN and non-objects raise ValueError."""
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise ValueError("record value must be a JSON object")
    return value


def inspect_value(raw: bytes) -> tuple[dict[str, Any] | None, str | None, bool | None, str | None]:
    """A record value as the audit reads it: ``(envelope, problem, intact, noncanonical)``.

    ``envelope`` is None when the value is not a JSON object (``problem`` says why); ``intact``: its hash
    matches its content; ``noncanonical``: None when the value is exactly the canonical encoding of the
    envelope (DESIGN §4), else what differs (duplicate key "amount", whitespace, escapes, key order …).
    One encoding per record: the hash is taken from the canonical bytes themselves.
    """
    try:
        envelope = decode_value(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the record value is not an envelope: {exc}", None, None
    if canonical_or_none(envelope) == raw:
        return envelope, None, hash_of_canonical(raw, envelope.get("hash")) or hash_matches(envelope), None
    reason = noncanonical_reason(raw, envelope) or "it differs from the canonical encoding"
    return envelope, None, hash_matches(envelope), f"not the canonical encoding of its envelope: {reason}"


def decode_line(line: bytes | str) -> Any:
    """Parse one archive line, refusing floats and NaN anywhere (as record values do)."""
    return parse_json(line)


def content_hash(envelope: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the envelope without ``hash`` (DESIGN §4).

    The same bytes as ``services.contracts.envelope.compute_hash`` for any decoded envelope
    (decoding already refused floats), without its float scan of every value.
    """
    body = {key: value for key, value in envelope.items() if key != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- compiling payload schemas ---------------------------------------------------------------------


def _compile_field(field: fields.Field[Any]) -> Loader:
    kind = type(field)
    if kind is fields.List:
        return _compile_list(field)  # type: ignore[arg-type]
    if kind is fields.Nested:
        return _compile_nested(field)  # type: ignore[arg-type]
    if kind is fields.Dict:
        return _compile_dict(field)  # type: ignore[arg-type]
    if isinstance(field, fields.List | fields.Nested | fields.Mapping | fields.Tuple | fields.Pluck
                  | fields.Method | fields.Function):
        raise _Unsupported(type(field).__name__)
    if field.pre_load or field.post_load:
        return field.deserialize  # marshmallow's whole per-field path
    return _leaf(field)


def _leaf(field: fields.Field[Any]) -> Loader:
    """``Field.deserialize`` minus its bookkeeping: None, the field's own ``_deserialize`` (type and
    format) and its validators, raising as they raise."""
    allow_none = field.allow_none
    deserialize = field._deserialize
    checks = [(check, isinstance(check, Validator)) for check in field.validators]
    kind = type(field)
    if kind._deserialize is WireString._deserialize and not checks and not allow_none:
        # The contract's wire strings (Yuan, Slug, IsoDate …): a str, then the field's own _check.
        check_text = field._check  # type: ignore[attr-defined]

        def load_wire(value: Any) -> Any:
            if type(value) is not str:
                raise _Invalid
            check_text(value)
            return value

        return load_wire
    if kind is fields.String and not allow_none and all(is_validator for _, is_validator in checks):
        validators = [check for check, _ in checks]

        def load_string(value: Any) -> Any:
            if type(value) is not str:
                raise _Invalid
            for check in validators:
                check(value)
            return value

        return load_string

    def load(value: Any) -> Any:
        if value is None:
            if allow_none:
                return None
            raise _Invalid
        out = deserialize(value, None, None)
        for check, is_validator in checks:
            if check(out) is False and not is_validator:
                raise _Invalid
        return out

    return load


def _container(field: fields.Field[Any], inner: Callable[[Any], Any]) -> Loader:
    """None handling and the field's own validators around a container's item loop."""
    allow_none = field.allow_none

    def load(value: Any) -> Any:
        if value is None:
            if allow_none:
                return None
            raise _Invalid
        out = inner(value)
        field._validate(out)
        return out

    return load


def _compile_list(field: fields.List[Any]) -> Loader:
    item = _compile_field(field.inner)

    def items(value: Any) -> Any:
        if type(value) is not list:
            raise _Invalid
        return [item(v) for v in value]

    return _container(field, items)


def _compile_dict(field: fields.Dict) -> Loader:
    key_load = _compile_field(field.key_field) if field.key_field is not None else None
    value_load = _compile_field(field.value_field) if field.value_field is not None else None

    def entries(value: Any) -> Any:
        if type(value) is not dict:
            raise _Invalid
        out = {}
        for key, item in value.items():
            loaded_key = key_load(key) if key_load is not None else key
            out[loaded_key] = value_load(item) if value_load is not None else item
        return out

    return _container(field, entries)


def _compile_nested(field: fields.Nested) -> Loader:
    nested = field.nested
    if not (isinstance(nested, type) and issubclass(nested, Schema)) or field.many or field.only or field.exclude:
        raise _Unsupported("Nested")
    unknown = field.unknown or nested.opts.unknown
    load = compile_schema(nested, unknown=unknown)
    return _container(field, load)


def compile_schema(schema_cls: type[Schema], *, unknown: str) -> Loader:
    """A loader of ``schema_cls`` payloads that raises on anything it is not sure is valid.

    Raises _Unsupported when the schema uses something this module does not mirror.
    """
    if unknown not in (RAISE, EXCLUDE):
        raise _Unsupported(f"unknown={unknown}")
    hooks: list[str] = []
    for tag, entries in schema_cls._hooks.items():
        if not entries:
            continue
        if tag != "validates_schema":
            raise _Unsupported(f"hook {tag}")
        for name, pass_collection, options in entries:
            if pass_collection or options.get("pass_original"):
                raise _Unsupported(f"hook {name}")
            hooks.append(name)
    instance = schema_cls(unknown=EXCLUDE if unknown == EXCLUDE else RAISE)
    specs = []
    for name, field in schema_cls._declared_fields.items():
        if field.dump_only:
            raise _Unsupported(f"dump_only field {name}")
        key = field.data_key if field.data_key is not None else name
        specs.append((key, name, _compile_field(field), field.required, field.load_default))
    known = frozenset(spec[0] for spec in specs)
    raise_unknown = unknown == RAISE
    bound_hooks = [getattr(instance, name) for name in hooks]

    def load(data: Any) -> dict[str, Any]:
        if type(data) is not dict:
            raise _Invalid
        if raise_unknown and not known.issuperset(data):
            raise _Invalid
        out: dict[str, Any] = {}
        for key, name, loader, required, default in specs:
            if key in data:
                out[name] = loader(data[key])
            elif required:
                raise _Invalid
            elif default is not missing:
                out[name] = default() if callable(default) else default
        for hook in bound_hooks:
            hook(out, partial=None, many=False, unknown=unknown)
        return out

    return load


class FastLoader:
    """``schema_cls().load(data)`` through the compiled loader when it is sure the data is valid;
    otherwise marshmallow itself decides, returns or raises its ValidationError naming the field.

    For request bodies read in a hot loop (the ledger's batch of up to 1,000 entries).
    """

    def __init__(self, schema_cls: type[Schema], *, unknown: Literal["exclude", "raise"] = "raise") -> None:
        self._schema = schema_cls(unknown=unknown)
        self._fast: Loader | None
        try:
            self._fast = compile_schema(schema_cls, unknown=unknown)
        except _Unsupported:
            self._fast = None

    def load(self, data: Any) -> dict[str, Any]:
        if self._fast is not None:
            try:
                loaded: dict[str, Any] = self._fast(data)
                return loaded
            except Exception:  # not sure: marshmallow decides, and names the field
                pass
        out: dict[str, Any] = self._schema.load(data)
        return out


def _payload_loaders(strict: bool) -> dict[tuple[str, int], Loader | None]:
    loaders: dict[tuple[str, int], Loader | None] = {}
    for key, schema_cls in SCHEMAS.items():
        try:  # readers are tolerant of fields they do not know, writers are not
            loaders[key] = compile_schema(schema_cls, unknown=RAISE if strict else EXCLUDE)
        except _Unsupported:
            loaders[key] = None
    return loaders


_KNOWN_TYPES = frozenset(t for topic in TOPICS.values() for t in topic.event_types)
_TEXT_FIELDS = ("type", "source", "subject", "occurred_at", "actor", "prev_hash", "hash")


class EnvelopeValidator:
    """``problem(envelope)``: None when the envelope is valid against its schema version
    (tolerant of unknown fields, hash not checked here), else the contract's EnvelopeError."""

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._loaders = _payload_loaders(strict)
        self.slow_calls = 0

    def _fast(self, envelope: Any) -> bool:
        if type(envelope) is not dict:
            return False
        for name in ENVELOPE_FIELDS:
            if name not in envelope:
                return False
        if self.strict and len(envelope) != len(ENVELOPE_FIELDS):
            return False
        event_id = envelope["event_id"]
        if type(event_id) is not str or not UUID_RE.fullmatch(event_id):
            return False
        for name in _TEXT_FIELDS:
            if type(envelope[name]) is not str:
                return False
        version, seq = envelope["version"], envelope["seq"]
        if type(version) is not int or version < 1 or type(seq) is not int or seq < 1:
            return False
        causation = envelope["causation_id"]
        if causation is not None and type(causation) is not str:
            return False
        if not INSTANT_RE.fullmatch(envelope["occurred_at"]) or not HEX64_RE.fullmatch(envelope["prev_hash"]) \
                or not HEX64_RE.fullmatch(envelope["hash"]):
            return False
        if envelope["type"] not in _KNOWN_TYPES:
            return False
        loader = self._loaders.get((envelope["type"], version))
        if loader is None:
            return False
        try:
            loader(envelope["data"])
        except (_Invalid, ValidationError):
            return False
        except Exception:  # a value a field did not expect: let the contract decide and name it
            return False
        return True

    def problem(self, envelope: Any) -> EnvelopeError | None:
        if self._fast(envelope):
            return None
        self.slow_calls += 1
        try:
            validate_envelope(envelope, strict=self.strict, check_hash=False)
        except EnvelopeError as exc:
            return exc
        return None

    def compiled(self) -> dict[tuple[str, int], bool]:
        """Which (type, version) payloads have a fast path (for the tests)."""
        return {key: loader is not None for key, loader in self._loaders.items()}


def hash_matches(envelope: Mapping[str, Any]) -> bool:
    """Whether a decoded envelope's stated ``hash`` is the hash of its content (False if it cannot be hashed)."""
    try:
        return content_hash(envelope) == envelope.get("hash")
    except (TypeError, ValueError):
        return False


#: The tolerant validator of ``read_envelope`` (its loaders are pure; threads may share it).
_READER = EnvelopeValidator()


def read_envelope(envelope: dict[str, Any], value: bytes | None = None) -> dict[str, Any]:
    """``services.contracts.events.read_event``, fast: validate tolerantly, check the envelope's own
    hash, upcast ``data`` to the latest version. Raises the contract's EnvelopeError.

    ``envelope`` must come from ``decode_value`` or ``envelope.decode`` (they refuse floats). With
    ``value``, the record value it was decoded from, the value must also be exactly the envelope's
    canonical encoding (DESIGN §4: duplicate keys, whitespace, escapes … are refused, naming the
    problem); the hash is then checked on those bytes, so the check costs no second encoding.
    """
    if value is not None:
        check_canonical(value, envelope)
    problem = _READER.problem(envelope)
    if problem is not None:
        raise problem
    if not ((value is not None and hash_of_canonical(value, envelope["hash"]))
            or envelope["hash"] == content_hash(envelope)):
        raise EnvelopeError("hash does not match the envelope's content", field="hash")
    return upcast_envelope(envelope)


__all__ = ["EnvelopeValidator", "FastLoader", "compile_schema", "content_hash", "decode_line", "decode_value",
           "hash_matches", "inspect_value", "read_envelope"]
