"""The one envelope check (DESIGN §4 and §5), fast enough for a replay of a million events.

Used by the audit (every record of a replay), by the services' projections (every record they
fold that they did not write themselves) and by the writers (strict, every event before it is
produced).

The marshmallow schemas of ``services.contracts.events`` are the contract. Checking an envelope
with them builds a schema's error store for every call (30–300 µs an event); so every envelope
is first checked by a compiled JSON Schema validator (``jsonschema-rs``, in Rust) fed with the
JSON Schemas ``services.contracts.json_schema`` generates from those same marshmallow schemas:
exactly the contract's rules, with the contract's own Python for what JSON Schema cannot say
(``json_schema.FORMATS``). An envelope it does not pass (or cannot read: a lone surrogate, a key
that is not a string, a float) goes to marshmallow, which gives the verdict and names the
problem; so the compiled check can never let through an event the contract refuses, and the
unit tests hold both to the same answer on mutated payloads of every event type.

:class:`FastLoader` does the same for request bodies read in a hot loop (the ledger's batch of
up to 1,000 entries): the compiled schema says "valid", or marshmallow loads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

import jsonschema_rs
from marshmallow import EXCLUDE, RAISE, Schema, fields, missing

from services.contracts.codec import EnvelopeError, check_canonical, envelope_hash, has_float, hash_of_canonical
from services.contracts.envelope import ENVELOPE_FIELDS
from services.contracts.events import SCHEMAS, upcast_envelope, validate_data
from services.contracts.fields import HEX64_RE, INSTANT_RE, UUID_RE
from services.contracts.json_schema import FORMATS, object_schema, schema_hooks, validator_schema
from services.contracts.topics import TOPICS

_KNOWN_TYPES = frozenset(t for topic in TOPICS.values() for t in topic.event_types)


Compiled = jsonschema_rs.Draft202012Validator


def _compile(schema: dict[str, Any]) -> Compiled:
    return jsonschema_rs.Draft202012Validator(schema, formats=FORMATS, validate_formats=True)


class _Compiled:
    """The compiled validators of every (type, version, strictness), built on first use. A schema that is
    no longer (or not yet) the one in ``SCHEMAS`` (a test may swap one in) is compiled again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._validators: dict[tuple[str, int, bool], tuple[type[Schema], Compiled | None]] = {}

    def get(self, event_type: Any, version: Any, strict: bool) -> Compiled | None:
        if type(event_type) is not str or type(version) is not int:
            return None
        schema_cls = SCHEMAS.get((event_type, version))
        if schema_cls is None:
            return None
        found = self._validators.get((event_type, version, strict))
        if found is not None and found[0] is schema_cls:
            return found[1]
        with self._lock:
            validator: Compiled | None
            try:
                validator = _compile(validator_schema(event_type, version, strict=strict))
            except TypeError:  # a field JSON Schema cannot say: marshmallow checks that schema alone
                validator = None
            self._validators[(event_type, version, strict)] = (schema_cls, validator)
        return validator


_COMPILED = _Compiled()


def compiled_schemas(*, strict: bool) -> dict[tuple[str, int], bool]:
    """Which (type, version) of ``SCHEMAS`` have a compiled check (else marshmallow checks them alone)."""
    return {key: _COMPILED.get(*key, strict) is not None for key in SCHEMAS}


def schema_valid(envelope: Any, *, strict: bool = False, float_free: bool = False) -> bool:
    """The compiled check alone: True when the envelope is valid against its type's schema version (its hash
    aside), False when it is not or the check cannot tell (marshmallow then decides).

    ``float_free``: the caller knows no float hides in the envelope (``codec.decode`` made it, which refuses
    floats), so the walk that looks for one is skipped."""
    if type(envelope) is not dict:
        return False
    validator = _COMPILED.get(envelope.get("type"), envelope.get("version"), strict)
    # JSON Schema takes 1.0 for an integer; the contract does not.
    if validator is None or (not float_free and has_float(envelope)):
        return False
    try:
        return bool(validator.is_valid(envelope))
    except Exception:  # what it cannot read (a lone surrogate, a key that is not a str): marshmallow decides
        return False


def envelope_problem(envelope: Any, *, strict: bool = False, float_free: bool = False) -> EnvelopeError | None:
    """None when the envelope is valid against its type's schema version (its hash is not checked here),
    else the EnvelopeError naming the first problem. ``strict`` (writers): unknown fields are refused; else
    (readers) ignored. ``float_free``: as for :func:`schema_valid`."""
    if schema_valid(envelope, strict=strict, float_free=float_free):
        return None
    try:
        _explain(envelope, strict)
    except EnvelopeError as exc:
        return exc
    return None


def _explain(envelope: Any, strict: bool) -> None:
    """The contract's check in the order it names problems: the envelope's fields, then marshmallow's
    verdict on ``data``."""
    if not isinstance(envelope, dict):
        raise EnvelopeError("an envelope must be a JSON object")
    for name in ENVELOPE_FIELDS:
        if name not in envelope:
            raise EnvelopeError(f"missing envelope field {name!r}", field=name)
    extra = set(envelope) - set(ENVELOPE_FIELDS)
    if extra and strict:
        raise EnvelopeError(f"unknown envelope fields {sorted(extra)}", field=sorted(extra)[0])
    _check_type(envelope, "event_id", str)
    if not UUID_RE.fullmatch(envelope["event_id"]):
        raise EnvelopeError("event_id must be a lowercase uuid", field="event_id")
    for name in ("type", "source", "subject", "occurred_at", "actor", "prev_hash", "hash"):
        _check_type(envelope, name, str)
    for name in ("version", "seq"):
        value = envelope[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EnvelopeError(f"{name} must be a positive integer", field=name)
    if envelope["causation_id"] is not None and not isinstance(envelope["causation_id"], str):
        raise EnvelopeError("causation_id must be a string or null", field="causation_id")
    if not INSTANT_RE.fullmatch(envelope["occurred_at"]):
        raise EnvelopeError("occurred_at must be UTC ISO-8601 ending in Z", field="occurred_at")
    for name in ("prev_hash", "hash"):
        if not HEX64_RE.fullmatch(envelope[name]):
            raise EnvelopeError(f"{name} must be 64 lowercase hex digits", field=name)
    if envelope["type"] not in _KNOWN_TYPES:
        raise EnvelopeError(f"unknown event type {envelope['type']!r}", field="type")
    if (envelope["type"], envelope["version"]) not in SCHEMAS:
        raise EnvelopeError(f"unknown version {envelope['version']} of {envelope['type']}", field="version")
    errors = validate_data(envelope["type"], envelope["version"], envelope["data"], strict=strict)
    if errors:
        field, messages = _first_error(errors)
        raise EnvelopeError(f"data.{field}: {messages}", field=f"data.{field}")


def _check_type(envelope: Mapping[str, Any], name: str, kind: type) -> None:
    if not isinstance(envelope[name], kind):
        raise EnvelopeError(f"{name} must be a {kind.__name__}", field=name)


def _first_error(errors: Mapping[str, Any], prefix: str = "") -> tuple[str, str]:
    """The dotted path and message of the first error in a marshmallow errors dict."""
    key = sorted(errors, key=str)[0]
    value = errors[key]
    path = f"{prefix}{key}" if not prefix else f"{prefix}.{key}"
    if isinstance(value, Mapping):
        return _first_error(value, path)
    if isinstance(value, list):
        return path, "; ".join(str(v) for v in value)
    return path, str(value)


def validate_envelope(envelope: Any, *, strict: bool = False, check_hash: bool = True) -> None:
    """Raise EnvelopeError naming the first problem of an envelope (structure, schema, own hash)."""
    problem = envelope_problem(envelope, strict=strict)
    if problem is not None:
        raise problem
    if check_hash and envelope["hash"] != envelope_hash(envelope):
        raise EnvelopeError("hash does not match the envelope's content", field="hash")


def read_envelope(envelope: dict[str, Any], value: bytes | None = None) -> dict[str, Any]:
    """An envelope as a reader takes it: valid (tolerantly: unknown fields are ignored), its own hash right,
    and ``data`` upcast to the latest version. Raises the contract's EnvelopeError.

    ``envelope`` must come from ``codec.decode_envelope`` (or ``codec.decode``: they refuse floats). With
    ``value``, the record value it was decoded from, the value must also be exactly the envelope's
    canonical encoding (DESIGN §4: duplicate keys, whitespace, escapes … are refused, naming the
    problem); the hash is then checked on those bytes, so the check costs no second encoding.
    """
    if value is not None:
        check_canonical(value, envelope)
    problem = envelope_problem(envelope, float_free=True)
    if problem is not None:
        raise problem
    if not ((value is not None and hash_of_canonical(value, envelope["hash"]))
            or envelope["hash"] == envelope_hash(envelope)):
        raise EnvelopeError("hash does not match the envelope's content", field="hash")
    return upcast_envelope(envelope)


# -- request bodies ---------------------------------------------------------------------------------------


class FastLoader:
    """``schema_cls().load(data)``, fast: when the compiled JSON Schema of ``schema_cls`` passes ``data``,
    marshmallow would hand it on as it is (with the defaults of absent fields), so that is the answer;
    otherwise marshmallow itself loads it, returns or raises its ValidationError naming the field.

    The compiled schema takes only what marshmallow hands on unchanged (an ``Amount`` in its canonical
    form: "0001.00" goes to marshmallow, which writes it "1.00"). A schema whose loading does more than
    that (renamed keys, nested defaults, fields JSON Schema cannot say) is always loaded by marshmallow
    (``compiled`` is False). On the fast path the top-level dict is new, the values in it are ``data``'s own.
    """

    def __init__(self, schema_cls: type[Schema], *, unknown: Literal["exclude", "raise"] = "raise") -> None:
        self._schema = schema_cls(unknown=unknown)
        self._known = tuple(self._schema.fields)
        self._defaults: dict[str, Any] = {}
        self._validator: Compiled | None = None
        self._exclude = unknown == EXCLUDE
        if _loads_as_is(schema_cls, top=True):
            try:
                self._validator = _compile(object_schema(schema_cls, RAISE if unknown == RAISE else EXCLUDE,
                                                         canonical_amounts=True))
            except TypeError:
                self._validator = None
            self._defaults = {name: field.load_default for name, field in self._schema.fields.items()
                              if field.load_default is not missing}

    @property
    def compiled(self) -> bool:
        """Whether the fast path is there (else every call is marshmallow's)."""
        return self._validator is not None

    def fast(self, data: Any) -> dict[str, Any] | None:
        """What marshmallow's load returns, when the compiled schema is sure; None when it is not."""
        if self._validator is None or type(data) is not dict or has_float(data):
            return None
        try:
            if not self._validator.is_valid(data):
                return None
        except Exception:  # what it cannot read (a lone surrogate, a key that is not a str): marshmallow loads
            return None
        out = {name: data[name] for name in self._known if name in data} if self._exclude else dict(data)
        for name, default in self._defaults.items():
            if name not in out:
                out[name] = default() if callable(default) else default
        return out

    def load(self, data: Any) -> dict[str, Any]:
        loaded = self.fast(data)
        if loaded is not None:
            return loaded
        out: dict[str, Any] = self._schema.load(data)
        return out


def _loads_as_is(schema_cls: type[Schema], *, top: bool) -> bool:
    """Whether marshmallow's load of ``schema_cls`` hands valid input on as it is, but for the defaults of
    absent top-level fields: no renamed key, no default inside a nested object, no schema-level hook but
    validators, nested objects that refuse unknown fields."""
    if any(tag != "validates_schema" for tag, _ in schema_hooks(schema_cls)):
        return False
    if not top and schema_cls.opts.unknown != RAISE:
        return False
    for name, field in schema_cls().fields.items():
        if (field.data_key or name) != name or (field.attribute or name) != name:
            return False
        if not top and field.load_default is not missing:
            return False
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            nested = inner.nested
            if not (isinstance(nested, type) and issubclass(nested, Schema)) or not _loads_as_is(nested, top=False):
                return False
    return True


__all__ = ["FastLoader", "compiled_schemas", "envelope_problem", "read_envelope", "schema_valid", "validate_envelope"]
