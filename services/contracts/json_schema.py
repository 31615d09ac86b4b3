"""JSON Schemas (draft 2020-12) of the event contract, generated from its marshmallow schemas.

The marshmallow schemas of ``services.contracts.events`` stay the one source; this module
translates them field by field. Two users:

- the published catalogue (``services.audit.catalogue`` writes ``docs/catalogue/``):
  :func:`event_schema` and :func:`envelope_schema`;
- the compiled envelope check (``services.contracts.validation``): :func:`validator_schema`,
  the whole envelope exactly as ``validate_envelope`` checks it, strict (writers: unknown
  fields refused) or tolerant (readers).

The translation is exact: what a JSON Schema validator accepts here, the contract accepts,
and the reverse. What JSON Schema cannot say is named by a ``format`` whose check is the
contract's own Python (:data:`FORMATS`): a real calendar date, the check character of a
credit code, text without lone UTF-16 surrogates (and not blank). A field or rule it does
not know raises TypeError, so a new kind of field cannot slip through unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Literal

from marshmallow import EXCLUDE, RAISE, Schema, fields, missing, validate

from services.contracts import fields as wire
from services.contracts import money
from services.contracts.envelope import ENVELOPE_FIELDS
from services.contracts.events import SCHEMAS, WRITERS
from services.contracts.topics import CHECKPOINTS, TOPICS, topic_of

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

#: What each event type says, in one sentence (shown in the schemas and the AsyncAPI document).
EVENT_DESCRIPTIONS: dict[str, str] = {
    "CollectiveRegistered": "A village collective (村集体经济组织) is registered and keeps books in the ledger.",
    "InvestorRegistered": "An investor that is not a village collective (a company or a government body) is "
                          "registered; it keeps no books here.",
    "EntryPosted": "A journal entry is posted in a collective's books: balanced lines on the statutory chart. "
                   "Automatic entries (origin investment, withdrawal, dividend, payment) carry an id derived "
                   "from their cause.",
    "EntryReversed": "A posted entry is reversed by a new entry whose lines mirror the original's.",
    "PeriodClosed": "A month of a collective's books is closed: no entry may be dated inside it afterwards.",
    "ProjectRegistered": "A pooled project (抱团项目) is registered: an industrial park, a market, or other.",
    "LandShareInvested": "An investor puts land into a project as shares; valuation = ROUND_HALF_UP(area_mu × "
                         "price_per_mu) is the capital it adds.",
    "CashInvested": "An investor puts cash into a project; the amount is the capital it adds.",
    "InvestmentWithdrawn": "An investor takes capital out of a project from a date on.",
    "BuildingRegistered": "A building of a project is registered for leasing.",
    "LeaseSigned": "A tenant signs a lease of a building.",
    "RentInvoiced": "Rent of a lease period is invoiced.",
    "RentReceived": "Rent is received; it is the project's gross rent on its received_on date.",
    "ExpenseRecorded": "A project expense is recorded on its incurred_on date.",
    "LeaseTerminated": "A lease ends early.",
    "PolicySet": "A project's distribution policy is set: management fee, tax and payout rates, and the "
                 "guaranteed return of village collectives, paid by the guarantor.",
    "DistributionDeclared": "A distribution of a project's net rent over an inclusive period is declared, with "
                            "its totals and the input_positions it was computed from.",
    "DividendAllocated": "One investor's share of a declared distribution (pro rata by capital-days, topped up "
                         "to the guaranteed floor for collectives).",
    "DistributionApproved": "A declared distribution is approved by the board: the villages' books show the "
                            "income.",
    "DividendPaid": "An approved allocation is paid to the investor, once and in full.",
    "DistributionCancelled": "A declared distribution is cancelled before approval.",
    "CharterSet": "A collective's charter (章程) as far as distribution goes: the share kinds and their weights, "
                  "the reserve minimum, the date shares were fixed (股权固化), the quorum and majority of its "
                  "meetings; a later CharterSet replaces it whole.",
    "HouseholdRegistered": "A member household (户) of a collective is registered, with its head's name.",
    "MemberRegistered": "A member (成员) of a household is registered.",
    "HoldingsSet": "A household's holdings of every share kind from effective_on (only before the shares were "
                   "fixed; after that holdings change only by transfers).",
    "SharesTransferred": "Shares of one kind pass from one household to another of the same collective from "
                         "effective_on, with the reason (inheritance, gift, court decision, other).",
    "CertificateIssued": "A share certificate (股权证) with its number and the household's holdings; it replaces "
                         "the household's previous certificate, if any.",
    "PlanProposed": "A year's distribution plan (收益分配方案): the distributable amount from the books, the "
                    "appropriations in order and the record date of the household split.",
    "HouseholdAllocated": "One household's share of a proposed plan: its holdings on the record date, its "
                          "weight and its amount (largest remainder, exact to the fen).",
    "PlanApproved": "The members' (representatives') meeting approved the plan with the recorded vote; the "
                    "books post its appropriations dated the meeting.",
    "HouseholdDividendPaid": "A household's amount of an approved plan is paid, once and in full.",
    "PlanCancelled": "A proposed plan is cancelled before approval.",
    "ChainCheckpoint": "A writer's signed checkpoint of one of its topics (DESIGN §4, Anchoring): for every "
                       "partition, the end offset and the heads (subject, seq, hash) of the streams that moved "
                       "since the previous checkpoint, chained into heads_digest; signed with Ed25519 by the key "
                       "key_id; next_key announces the key that signs from then on.",
    "AccountCreated": "An account is made for a person (by an admin): name, display name, role and scope; the "
                      "password only as its argon2id hash sealed with the ledger's accounts key.",
    "AccountChanged": "An account's display name, role or scope is changed (by an admin).",
    "AccountDisabled": "An account is disabled: its sessions and API tokens are refused by every service.",
    "AccountEnabled": "A disabled account may sign in again (its old sessions stay ended).",
    "PasswordSet": "An account's password is set (the sealed hash): chosen by the person, or a one-time password "
                   "from an admin that must be changed at the next sign-in.",
    "SessionStarted": "A person signed in: the session is known by the SHA-256 of its secret, with the address it "
                      "came from and its absolute end.",
    "SessionEnded": "A session ends: signed out, idle too long, or its account disabled or its password reset "
                    "or changed.",
    "SignInFailed": "A sign-in of an existing account was refused (never with the password): failures are slowed, "
                    "then locked.",
    "ApiTokenIssued": "An account issued itself an API token (for a script; known by its SHA-256) with an expiry.",
    "ApiTokenRevoked": "An account's API token is revoked.",
    "DeadLetter": "A record a consumer could not process, parked with the reason (a plain JSON object, "
                  "not an envelope).",
}

def schema_hooks(schema_cls: type[Schema]) -> list[tuple[str, str]]:
    """``(tag, method name)`` of every hook of a schema (``validates_schema``, ``pre_load`` …)."""
    return [(tag, name) for tag, entries in schema_cls._hooks.items() for name, _, _ in entries]

#: Control characters no text of the contract may hold (tab, newline and return are allowed).
_CONTROL_FREE = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"


def _calendar_date(value: str) -> bool:
    if not wire.DATE_RE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _text(value: str) -> bool:
    return wire.BAD_TEXT_RE.search(value) is None


def _nonblank_text(value: str) -> bool:
    return wire.BAD_TEXT_RE.search(value) is None and bool(value.strip())


#: The ``format`` values of the contract's schemas and their checks (the contract's own rules, for what a
#: pattern cannot say). ``date`` is JSON Schema's own: RFC 3339 full-date, a real calendar date.
FORMATS: dict[str, Callable[[str], bool]] = {
    "date": _calendar_date,
    "baotuan-uscc": wire.uscc_is_valid,
    "baotuan-text": _text,
    "baotuan-nonblank-text": _nonblank_text,
}


def _ecma(pattern: str) -> str:
    """A Python regex of the contract as an ECMA-262 pattern (``\\Z`` is ``$`` there)."""
    return pattern.replace("\\Z", "$")


def _yuan(field: wire.Yuan, canonical_amounts: bool) -> dict[str, Any]:
    if not field.canonical_only and not canonical_amounts:
        raise TypeError(f"no JSON Schema for {type(field).__name__} (it rewrites what it reads)")
    pattern = _ecma(money._YUAN_RE.pattern)
    if not field.allow_negative:
        pattern = pattern.replace("-?", "", 1)
    out: dict[str, Any] = {"type": "string", "pattern": pattern,
                           "description": "yuan with exactly two decimals, as a string (integer fen inside)",
                           "examples": ["1234.50"]}
    if field.positive:
        out["not"] = {"pattern": "^-?0+\\.00$"}
        out["description"] += "; greater than 0.00"
    elif field.allow_negative:
        out["not"] = {"pattern": "^-0\\.00$"}  # zero is written "0.00"
    return out


#: A rate of at most 1: the integer part is 0, or 1 with only zeros after the point (``money._RATE_RE``).
_RATE_AT_MOST_ONE = "^(0{1,6}(\\.[0-9]{1,10})?|0{0,5}1(\\.0{1,10})?)$"


def field_schema(field: fields.Field[Any], *, canonical_amounts: bool = False) -> dict[str, Any]:
    """The JSON Schema of one marshmallow field of the contract.

    ``canonical_amounts``: a request's :class:`~services.contracts.fields.Amount` (which also reads "0001.00"
    and hands on "1.00") is given as the canonical form only, what it hands on unchanged (else TypeError).
    """
    out: dict[str, Any]
    if isinstance(field, wire.Yuan):
        out = _yuan(field, canonical_amounts)
    elif isinstance(field, wire.Rate):
        out = {"type": "string", "pattern": _RATE_AT_MOST_ONE if field.at_most_one else _ecma(money._RATE_RE.pattern),
               "examples": ["0.10"],
               "description": "a decimal rate" + (" between 0 and 1" if field.at_most_one else "")}
    elif isinstance(field, wire.Mu):
        out = {"type": "string", "pattern": _ecma(money._MU_RE.pattern), "not": {"pattern": "^0+(\\.0+)?$"},
               "examples": ["14.2000"], "description": "land area in mu (亩), at most 4 decimals, greater than 0"}
    elif isinstance(field, wire.Slug):
        out = {"type": "string", "pattern": _ecma(wire.SLUG_RE.pattern)}
    elif isinstance(field, wire.IsoDate):
        out = {"type": "string", "format": "date", "pattern": wire.DATE_RE.pattern}
    elif isinstance(field, wire.Period):
        out = {"type": "string", "pattern": _ecma(wire.PERIOD_RE.pattern), "description": "a month YYYY-MM"}
    elif isinstance(field, wire.Uscc):
        out = {"type": "string", "pattern": _ecma(wire.USCC_RE.pattern), "format": "baotuan-uscc",
               "description": "unified social credit code (GB 32100-2015), with a valid check character"}
    elif isinstance(field, wire.Text):
        # Control characters but tab, newline and return: the pattern. Lone surrogates (not Unicode text,
        # which JSON Schema cannot say) and blank text: the format.
        out = {"type": "string", "maxLength": field.max_length, "pattern": _CONTROL_FREE,
               "format": "baotuan-text" if field.allow_empty else "baotuan-nonblank-text",
               "description": "text without control characters (tab, newline and return allowed)"
                              + ("" if field.allow_empty else ", not blank")}
        if not field.allow_empty:
            out["minLength"] = 1
    elif isinstance(field, fields.List):
        out = {"type": "array", "items": field_schema(field.inner, canonical_amounts=canonical_amounts)}
    elif isinstance(field, fields.Nested):
        nested = field.nested
        if not (isinstance(nested, type) and issubclass(nested, Schema)) or field.many or field.only \
                or field.exclude or field.unknown is not None:
            raise TypeError(f"no JSON Schema for this Nested field ({nested!r})")
        out = object_schema(nested, canonical_amounts=canonical_amounts)
    elif isinstance(field, fields.Dict):
        out = {"type": "object"}
        if field.key_field is not None:
            out["propertyNames"] = field_schema(field.key_field, canonical_amounts=canonical_amounts)
        if field.value_field is not None:
            out["additionalProperties"] = field_schema(field.value_field, canonical_amounts=canonical_amounts)
    elif type(field) is fields.Integer and field.strict:
        out = {"type": "integer"}
    elif isinstance(field, wire.Flag):
        out = {"type": "boolean"}
    elif type(field) is fields.String:
        out = {"type": "string"}
    else:
        raise TypeError(f"no JSON Schema for {type(field).__name__}")
    if field.pre_load or field.post_load:
        raise TypeError(f"no JSON Schema for a {type(field).__name__} with pre_load or post_load")
    for check in field.validators:
        _apply_validator(out, check)
    if any(type(check) is validate.Regexp and str(check.regex.pattern).endswith("$") for check in field.validators) \
            and not out.get("minLength") == out.get("maxLength") is not None:
        # ``match`` takes "…\n" for "^…$", JSON Schema does not: only a fixed length makes them agree.
        raise TypeError("a Regexp ending in $ needs a fixed Length (or use FullMatch)")
    if field.allow_none:
        if "type" in out and isinstance(out["type"], str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    if field.load_default is not missing and not callable(field.load_default):
        out["default"] = field.load_default
    return out


def _apply_validator(out: dict[str, Any], check: Any) -> None:
    array = out.get("type") == "array"
    if isinstance(check, validate.OneOf):
        out["enum"] = list(check.choices)
    elif isinstance(check, validate.Length):
        low, high = ("minItems", "maxItems") if array else ("minLength", "maxLength")
        if check.equal is not None:
            out[low] = out[high] = check.equal
        if check.min is not None:
            out[low] = check.min
        if check.max is not None:
            out[high] = check.max
    elif isinstance(check, wire.FullMatch):
        out["pattern"] = _ecma(str(check.regex.pattern))
    elif isinstance(check, validate.Regexp):
        # ``match`` (not ``fullmatch``): the pattern as written, so it must be anchored at its start.
        pattern = str(check.regex.pattern)
        if not pattern.startswith("^"):
            raise TypeError(f"no JSON Schema for an unanchored Regexp {pattern!r}")
        out["pattern"] = _ecma(pattern)
    elif isinstance(check, validate.Range) and check.min_inclusive and check.max_inclusive:
        if check.min is not None:
            out["minimum"] = check.min
        if check.max is not None:
            out["maximum"] = check.max
    else:
        raise TypeError(f"no JSON Schema for validator {type(check).__name__}")


Unknown = Literal["raise", "exclude"] | None


def object_schema(schema_cls: type[Schema], unknown: Unknown = None, *,
                  canonical_amounts: bool = False) -> dict[str, Any]:
    """The JSON Schema of a payload (or nested) schema: properties, required, schema-level rules.

    ``unknown``: what the object does with fields it does not know, ``raise`` (``additionalProperties``
    false) or ``exclude``; None: as the schema's own ``Meta.unknown`` says (a nested schema is always
    loaded so). ``canonical_amounts``: see :func:`field_schema`.
    """
    properties = {}
    required = []
    for name, field in schema_cls().fields.items():
        if field.dump_only:
            raise TypeError(f"no JSON Schema for the dump_only field {schema_cls.__name__}.{name}")
        key = field.data_key or name
        properties[key] = field_schema(field, canonical_amounts=canonical_amounts)
        if field.required:
            required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    for tag, hook_name in schema_hooks(schema_cls):
        rule = getattr(getattr(schema_cls, hook_name), "json_schema_rule", None)
        if rule is None or tag != "validates_schema":
            raise TypeError(f"no JSON Schema for {schema_cls.__name__}.{hook_name}")
        out.update(rule)
    mode = unknown or schema_cls.opts.unknown
    if mode == RAISE:
        out["additionalProperties"] = False
    elif mode != EXCLUDE:
        raise TypeError(f"no JSON Schema for unknown={mode!r} ({schema_cls.__name__})")
    return out


def _envelope_properties(data: dict[str, Any]) -> dict[str, Any]:
    properties = {
        "event_id": {"type": "string", "pattern": _ecma(wire.UUID_RE.pattern),
                     "description": "uuid; derived events have a deterministic uuid5 of their cause"},
        "type": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "source": {"type": "string", "description": "the service that wrote the event"},
        "subject": {"type": "string", "description": "the record key"},
        "seq": {"type": "integer", "minimum": 1, "description": "1, 2, 3 … within (topic, subject)"},
        "occurred_at": {"type": "string", "pattern": _ecma(wire.INSTANT_RE.pattern),
                        "description": "UTC instant, ISO-8601 with Z"},
        "actor": {"type": "string", "description": "who caused it: <role>:<token name> for a bearer token (e.g. "
                                                   "accountant:lianmeng), account:<name> for a person signed in to "
                                                   "their account, system:<service> for a service itself"},
        "causation_id": {"type": ["string", "null"], "description": "event_id of the event that caused this one"},
        "prev_hash": {"type": "string", "pattern": _ecma(wire.HEX64_RE.pattern),
                      "description": "hash of the previous envelope of the stream; 64 zeros for seq 1"},
        "hash": {"type": "string", "pattern": _ecma(wire.HEX64_RE.pattern),
                 "description": "SHA-256 hex of the canonical JSON of the envelope without hash: keys sorted, "
                                "separators ',' and ':', no ASCII escaping, UTF-8"},
        "data": data,
    }
    assert tuple(properties) == ENVELOPE_FIELDS
    return properties


def envelope_schema(event_type: str | None = None, version: int | None = None) -> dict[str, Any]:
    """The published envelope (DESIGN §4); with a type and version, the ``data`` of that event's schema and
    what the log's placement rules say of it (its type, version, and the only service that writes it)."""
    data: dict[str, Any] = {"type": "object", "description": "the event's payload"}
    properties = _envelope_properties(data)
    if event_type is not None and version is not None:
        topic = TOPICS[topic_of(event_type)]
        properties["data"] = {**object_schema(SCHEMAS[(event_type, version)], EXCLUDE),
                              "description": EVENT_DESCRIPTIONS[event_type]}
        properties["type"] = {"const": event_type}
        properties["version"] = {"const": version}
        properties["source"] = {"const": topic.owner, "description": f"the only writer of {topic.name}"}
        if topic.name == CHECKPOINTS:
            properties["source"] = {"enum": list(WRITERS), "description": "the writer of the topic the checkpoint "
                                                                          "covers (= data.writer)"}
        properties["subject"] = {"type": "string", "description": f"the record key: {topic.key}"}
    title = f"{event_type} v{version}" if event_type else "baotuan event envelope"
    return {"$schema": JSON_SCHEMA,
            "$id": f"urn:baotuan:event:{event_type}:v{version}" if event_type else "urn:baotuan:envelope",
            "title": title, "type": "object", "properties": properties, "required": list(ENVELOPE_FIELDS),
            "description": "Readers ignore fields they do not know and accept every version ever published."}


def event_schema(event_type: str, version: int) -> dict[str, Any]:
    """The published JSON Schema of one event type and version."""
    if event_type == "DeadLetter":
        return {"$schema": JSON_SCHEMA, "$id": f"urn:baotuan:event:{event_type}:v{version}",
                "title": f"{event_type} v{version}", "description": EVENT_DESCRIPTIONS[event_type],
                **object_schema(SCHEMAS[(event_type, version)], EXCLUDE)}
    return envelope_schema(event_type, version)


def validator_schema(event_type: str, version: int, *, strict: bool) -> dict[str, Any]:
    """The whole envelope of one event type and version exactly as ``validate_envelope`` checks it (its hash
    aside): ``strict`` (writers) refuses unknown fields in the envelope and the payload, else readers ignore
    them (a nested object refuses them either way, as its marshmallow schema does)."""
    properties = _envelope_properties(object_schema(SCHEMAS[(event_type, version)], RAISE if strict else EXCLUDE))
    properties["type"] = {"type": "string", "const": event_type}
    properties["version"] = {"type": "integer", "const": version}
    out: dict[str, Any] = {"$schema": JSON_SCHEMA, "type": "object", "properties": properties,
                           "required": list(ENVELOPE_FIELDS)}
    if strict:
        out["additionalProperties"] = False
    return out


__all__ = ["EVENT_DESCRIPTIONS", "FORMATS", "JSON_SCHEMA", "envelope_schema", "event_schema", "field_schema",
           "object_schema", "schema_hooks", "validator_schema"]
