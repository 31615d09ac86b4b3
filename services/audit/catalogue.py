"""The published event catalogue, generated from the contract's code so it cannot drift.

From ``services.contracts.events.SCHEMAS`` (one marshmallow schema per event type and
version) and ``services.contracts.topics.TOPICS``:

- ``events/<Type>.v<N>.schema.json``: a JSON Schema (draft 2020-12) of the whole envelope of
  that event type and version, its ``data`` translated field by field from the payload schema;
- ``envelope.schema.json``: the envelope every record value is;
- ``asyncapi.json``: an AsyncAPI 3.0 document of the topics, who writes them, their keys,
  CloudEvents headers and messages;
- ``README.md``: the index.

``baotuan catalogue`` writes them into ``docs/catalogue/``; ``--check`` fails when the
shipped files differ from what the code generates (a unit test does the same).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, missing, validate

from services.contracts import fields as wire
from services.contracts import money
from services.contracts.envelope import ENVELOPE_FIELDS, SPEC_VERSION
from services.contracts.events import SCHEMAS, WRITERS
from services.contracts.topics import CHECKPOINTS, DEADLETTER, TOPIC_CONFIG, TOPICS, Topic

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING = "0.5.0"

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
    "ChainCheckpoint": "A writer's signed checkpoint of one of its topics (DESIGN §4, Anchoring): for every "
                       "partition, the end offset and the heads (subject, seq, hash) of the streams that moved "
                       "since the previous checkpoint, chained into heads_digest; signed with Ed25519 by the key "
                       "key_id; next_key announces the key that signs from then on.",
    "DeadLetter": "A record a consumer could not process, parked with the reason (a plain JSON object, "
                  "not an envelope).",
}

#: Channel ids of the AsyncAPI document.
CHANNEL_IDS = {
    "baotuan.ledger.entries.v1": "ledgerEntries",
    "baotuan.ledger.investments.v1": "ledgerInvestments",
    "baotuan.rentals.v1": "rentals",
    "baotuan.dividends.v1": "dividends",
    "baotuan.deadletter.v1": "deadLetters",
    "baotuan.checkpoints.v1": "checkpoints",
}

#: Schema-level rules of the contract that JSON Schema can say, keyed by (schema, validator method).
SCHEMA_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("JournalLine", "_one_side"): {"oneOf": [{"required": ["debit"]}, {"required": ["credit"]}]},
}


def _ecma(pattern: str) -> str:
    """A Python regex of the contract as an ECMA-262 pattern (``\\Z`` is ``$`` there)."""
    return pattern.replace("\\Z", "$")


def _yuan(field: wire.Yuan) -> dict[str, Any]:
    pattern = _ecma(money._YUAN_RE.pattern)
    if not field.allow_negative:
        pattern = pattern.replace("-?", "", 1)
    out: dict[str, Any] = {"type": "string", "pattern": pattern,
                           "description": "yuan with exactly two decimals, as a string (integer fen inside)",
                           "examples": ["1234.50"]}
    if field.positive:
        out["not"] = {"pattern": "^-?0+\\.00$"}
        out["description"] += "; greater than 0.00"
    return out


def field_schema(field: fields.Field[Any]) -> dict[str, Any]:
    """The JSON Schema of one marshmallow field of the contract."""
    out: dict[str, Any]
    if isinstance(field, wire.Yuan):
        out = _yuan(field)
    elif isinstance(field, wire.Rate):
        out = {"type": "string", "pattern": _ecma(money._RATE_RE.pattern), "examples": ["0.10"],
               "description": "a decimal rate" + (" between 0 and 1" if field.at_most_one else "")}
    elif isinstance(field, wire.Mu):
        out = {"type": "string", "pattern": _ecma(money._MU_RE.pattern), "examples": ["14.2000"],
               "description": "land area in mu (亩), at most 4 decimals, greater than 0"}
    elif isinstance(field, wire.Slug):
        out = {"type": "string", "pattern": _ecma(wire.SLUG_RE.pattern)}
    elif isinstance(field, wire.IsoDate):
        out = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    elif isinstance(field, wire.Period):
        out = {"type": "string", "pattern": _ecma(wire.PERIOD_RE.pattern), "description": "a month YYYY-MM"}
    elif isinstance(field, wire.Uscc):
        out = {"type": "string", "pattern": _ecma(wire.USCC_RE.pattern),
               "description": "unified social credit code (GB 32100-2015), with a valid check character"}
    elif isinstance(field, wire.Text):
        # No lone surrogates (JSON Schema cannot say so; they are not Unicode text) and no control
        # characters but tab, newline and return.
        out = {"type": "string", "maxLength": field.max_length,
               "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$",
               "description": "text without control characters (tab, newline and return allowed)"
                              + ("" if field.allow_empty else ", not blank")}
        if not field.allow_empty:
            out["minLength"] = 1
    elif isinstance(field, fields.List):
        out = {"type": "array", "items": field_schema(field.inner)}
    elif isinstance(field, fields.Nested):
        nested = field.nested
        assert isinstance(nested, type) and issubclass(nested, Schema)
        out = object_schema(nested)
    elif isinstance(field, fields.Dict):
        out = {"type": "object"}
        if field.key_field is not None:
            out["propertyNames"] = field_schema(field.key_field)
        if field.value_field is not None:
            out["additionalProperties"] = field_schema(field.value_field)
    elif isinstance(field, fields.Integer):
        out = {"type": "integer"}
    elif isinstance(field, fields.String):
        out = {"type": "string"}
    else:
        raise TypeError(f"no JSON Schema for {type(field).__name__}")
    for check in field.validators:
        _apply_validator(out, check)
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
    elif isinstance(check, validate.Regexp):
        out["pattern"] = _ecma(str(check.regex.pattern))
    elif isinstance(check, validate.Range) and check.max is None and check.min_inclusive:
        out["minimum"] = check.min
    else:
        raise TypeError(f"no JSON Schema for validator {type(check).__name__}")


def object_schema(schema_cls: type[Schema]) -> dict[str, Any]:
    """The JSON Schema of a payload (or nested) schema: properties, required, schema-level rules."""
    properties = {}
    required = []
    for name, field in schema_cls._declared_fields.items():
        key = field.data_key or name
        properties[key] = field_schema(field)
        if field.required:
            required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    for entries in schema_cls._hooks.values():
        for hook_name, _, _ in entries:
            rule = SCHEMA_RULES.get((schema_cls.__name__, hook_name))
            if rule is None:
                raise TypeError(f"no JSON Schema for {schema_cls.__name__}.{hook_name}")
            out.update(rule)
    return out


def topic_of_type(event_type: str) -> Topic:
    for topic in TOPICS.values():
        if event_type in topic.event_types:
            return topic
    raise KeyError(event_type)


def envelope_schema(event_type: str | None = None, version: int | None = None) -> dict[str, Any]:
    """The envelope (DESIGN §4); with a type and version, the ``data`` of that event's schema."""
    data: dict[str, Any] = {"type": "object", "description": "the event's payload"}
    type_schema: dict[str, Any] = {"type": "string"}
    version_schema: dict[str, Any] = {"type": "integer", "minimum": 1}
    source_schema: dict[str, Any] = {"type": "string", "description": "the service that wrote the event"}
    subject_schema: dict[str, Any] = {"type": "string", "description": "the record key"}
    if event_type is not None and version is not None:
        topic = topic_of_type(event_type)
        data = {**object_schema(SCHEMAS[(event_type, version)]), "description": EVENT_DESCRIPTIONS[event_type]}
        type_schema = {"const": event_type}
        version_schema = {"const": version}
        source_schema = {"const": topic.owner, "description": f"the only writer of {topic.name}"}
        if topic.name == CHECKPOINTS:
            source_schema = {"enum": list(WRITERS), "description": "the writer of the topic the checkpoint "
                                                                   "covers (= data.writer)"}
        subject_schema = {"type": "string", "description": f"the record key: {topic.key}"}
    properties = {
        "event_id": {"type": "string", "pattern": _ecma(wire.UUID_RE.pattern),
                     "description": "uuid; derived events have a deterministic uuid5 of their cause"},
        "type": type_schema,
        "version": version_schema,
        "source": source_schema,
        "subject": subject_schema,
        "seq": {"type": "integer", "minimum": 1, "description": "1, 2, 3 … within (topic, subject)"},
        "occurred_at": {"type": "string", "pattern": _ecma(wire.INSTANT_RE.pattern),
                        "description": "UTC instant, ISO-8601 with Z"},
        "actor": {"type": "string", "description": "who caused it, e.g. accountant:<name> or system:ledger"},
        "causation_id": {"type": ["string", "null"], "description": "event_id of the event that caused this one"},
        "prev_hash": {"type": "string", "pattern": _ecma(wire.HEX64_RE.pattern),
                      "description": "hash of the previous envelope of the stream; 64 zeros for seq 1"},
        "hash": {"type": "string", "pattern": _ecma(wire.HEX64_RE.pattern),
                 "description": "SHA-256 hex of the canonical JSON of the envelope without hash: keys sorted, "
                                "separators ',' and ':', no ASCII escaping, UTF-8"},
        "data": data,
    }
    assert tuple(properties) == ENVELOPE_FIELDS
    title = f"{event_type} v{version}" if event_type else "baotuan event envelope"
    return {"$schema": JSON_SCHEMA,
            "$id": f"urn:baotuan:event:{event_type}:v{version}" if event_type else "urn:baotuan:envelope",
            "title": title, "type": "object", "properties": properties, "required": list(ENVELOPE_FIELDS),
            "description": "Readers ignore fields they do not know and accept every version ever published."}


def _schema_file(event_type: str, version: int) -> str:
    return f"events/{event_type}.v{version}.schema.json"


def event_schema(event_type: str, version: int) -> dict[str, Any]:
    """The published JSON Schema of one event type and version."""
    if event_type == "DeadLetter":
        return {"$schema": JSON_SCHEMA, "$id": f"urn:baotuan:event:{event_type}:v{version}",
                "title": f"{event_type} v{version}", "description": EVENT_DESCRIPTIONS[event_type],
                **object_schema(SCHEMAS[(event_type, version)])}
    return envelope_schema(event_type, version)


CLOUDEVENTS_HEADERS = {
    "type": "object",
    "description": "CloudEvents Kafka binary-mode headers repeating the envelope's identity",
    "properties": {
        "ce_id": {"type": "string", "description": "= event_id"},
        "ce_type": {"type": "string", "description": "= type"},
        "ce_source": {"type": "string", "description": "= source"},
        "ce_specversion": {"const": SPEC_VERSION},
        "ce_subject": {"type": "string", "description": "= subject"},
        "ce_time": {"type": "string", "description": "= occurred_at"},
        "content-type": {"const": "application/json"},
    },
    "required": ["ce_id", "ce_type", "ce_source", "ce_specversion"],
}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of baotuan's topics."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEventsHeaders": CLOUDEVENTS_HEADERS}
    for topic in TOPICS.values():
        channel = CHANNEL_IDS[topic.name]
        names = []
        for event_type in topic.event_types:
            for (kind, version) in sorted(k for k in SCHEMAS if k[0] == event_type):
                name = f"{kind}.v{version}"
                names.append(name)
                body = event_schema(kind, version)
                schemas[name] = {key: value for key, value in body.items() if key not in ("$schema", "$id")}
                message: dict[str, Any] = {
                    "name": kind, "title": f"{kind} v{version}", "summary": EVENT_DESCRIPTIONS[kind],
                    "contentType": "application/json", "payload": {"$ref": f"#/components/schemas/{name}"},
                    "bindings": {"kafka": {"key": {"type": "string", "description": topic.key},
                                           "bindingVersion": KAFKA_BINDING}},
                    "externalDocs": {"url": f"./{_schema_file(kind, version)}",
                                     "description": "the JSON Schema of this event"},
                }
                if topic.name != DEADLETTER:
                    message["headers"] = {"$ref": "#/components/schemas/CloudEventsHeaders"}
                messages[name] = message
        config = {"cleanup.policy": [TOPIC_CONFIG["cleanup.policy"]],
                  "retention.ms": int(TOPIC_CONFIG["retention.ms"])}
        channels[channel] = {
            "address": topic.name, "title": topic.name, "description": topic.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {"kafka": {"topic": topic.name, "topicConfiguration": config,
                                   "bindingVersion": KAFKA_BINDING}},
        }
        refs = [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names]
        writer = "any consumer" if topic.name == DEADLETTER else f"the {topic.owner} service, its only writer"
        if topic.name == CHECKPOINTS:
            writer = f"{topic.owner} ({', '.join(WRITERS)}), each signing its own topics' checkpoints"
        operations[f"publish.{channel}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{channel}"}, "messages": refs,
            "summary": f"Written by {writer}; records keyed by {topic.key}."}
        operations[f"subscribe.{channel}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{channel}"}, "messages": refs,
            "summary": "Any subscriber: read from the beginning, verify each stream's hash chain, ignore "
                       "unknown fields, accept every published version."}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "baotuan events", "version": "1.0.0",
                 "description": "The event log of baotuan (抱团): village collectives' books, pooled projects, "
                                "rent and dividends. Kafka is the system of record; every record value is a "
                                "UTF-8 JSON envelope with a per-(topic, subject) SHA-256 hash chain. "
                                "Generated from services/contracts by `baotuan catalogue`."},
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:19092", "protocol": "kafka",
                              "description": "the local broker of `make run` (KAFKA_BOOTSTRAP_SERVERS)"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _index() -> str:
    lines = ["# baotuan event catalogue", "",
             "Generated from `services/contracts/events.py` (SCHEMAS) and `services/contracts/topics.py` "
             "(TOPICS) by `baotuan catalogue`; do not edit by hand. See [docs/events.md](../events.md).", "",
             "- [asyncapi.json](asyncapi.json): the topics, their writers, keys, headers and messages (AsyncAPI 3.0)",
             "- [envelope.schema.json](envelope.schema.json): the envelope every record value is", "",
             "| topic | writer | key | event | schema |", "|---|---|---|---|---|"]
    for topic in TOPICS.values():
        for event_type in topic.event_types:
            for (kind, version) in sorted(k for k in SCHEMAS if k[0] == event_type):
                path = _schema_file(kind, version)
                lines.append(f"| `{topic.name}` | {topic.owner} | {topic.key} | {kind} v{version} | [{path}]({path}) |")
    return "\n".join(lines) + "\n"


def _dump(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def generate() -> dict[str, str]:
    """Every catalogue file: relative path -> content."""
    files = {"README.md": _index(), "asyncapi.json": _dump(asyncapi()),
             "envelope.schema.json": _dump(envelope_schema())}
    for (kind, version) in sorted(SCHEMAS):
        files[_schema_file(kind, version)] = _dump(event_schema(kind, version))
    return files


def write(folder: Path) -> list[Path]:
    """Write the catalogue into ``folder`` (stale event schemas are removed)."""
    files = generate()
    events = folder / "events"
    if events.is_dir():
        for stale in events.glob("*.schema.json"):
            if f"events/{stale.name}" not in files:
                stale.unlink()
    written = []
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def differences(folder: Path) -> list[str]:
    """Files of ``folder`` that differ from what the code generates (missing, changed or stale)."""
    files = generate()
    out = [relative for relative, content in files.items()
           if not (folder / relative).is_file() or (folder / relative).read_text(encoding="utf-8") != content]
    events = folder / "events"
    if events.is_dir():
        out += [f"events/{p.name}" for p in events.glob("*.schema.json") if f"events/{p.name}" not in files]
    return sorted(out)


__all__ = ["EVENT_DESCRIPTIONS", "asyncapi", "differences", "envelope_schema", "event_schema", "generate", "write"]
