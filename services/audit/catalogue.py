"""The published event catalogue, generated from the contract's code so it cannot drift.

From ``services.contracts.events.SCHEMAS`` (one marshmallow schema per event type and
version) and ``services.contracts.topics.TOPICS``:

- ``events/<Type>.v<N>.schema.json``: a JSON Schema (draft 2020-12) of the whole envelope of
  that event type and version, its ``data`` translated field by field from the payload schema
  (``services.contracts.json_schema``, which also feeds the services' compiled envelope check);
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

from services.contracts.envelope import SPEC_VERSION
from services.contracts.events import SCHEMAS, WRITERS
from services.contracts.json_schema import EVENT_DESCRIPTIONS, envelope_schema, event_schema
from services.contracts.topics import CHECKPOINTS, DEADLETTER, TOPIC_CONFIG, TOPICS

KAFKA_BINDING = "0.5.0"

#: Channel ids of the AsyncAPI document.
CHANNEL_IDS = {
    "baotuan.ledger.entries.v1": "ledgerEntries",
    "baotuan.ledger.investments.v1": "ledgerInvestments",
    "baotuan.rentals.v1": "rentals",
    "baotuan.dividends.v1": "dividends",
    "baotuan.accounts.v1": "accounts",
    "baotuan.members.v1": "members",
    "baotuan.deadletter.v1": "deadLetters",
    "baotuan.checkpoints.v1": "checkpoints",
}

def _schema_file(event_type: str, version: int) -> str:
    return f"events/{event_type}.v{version}.schema.json"


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


__all__ = ["asyncapi", "differences", "generate", "write"]
