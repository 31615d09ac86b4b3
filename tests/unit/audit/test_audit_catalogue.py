"""The published event catalogue: regenerated from the contract, it equals the shipped files, and its
JSON Schemas accept every event the contract accepts."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from services.audit import catalogue
from services.audit.cli import catalogue_command
from services.contracts import envelope as env
from services.contracts.events import SCHEMAS, validate_data
from services.contracts.json_schema import EVENT_DESCRIPTIONS
from services.contracts.topics import TOPICS
from services.devtools.synthetic import LogWriter, small_scenario, synthetic_keys
from services.runtime.config import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "docs" / "catalogue"


def errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """A small JSON Schema checker for the keywords the catalogue uses."""
    out: list[str] = []
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: not one of {schema['enum']}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        names = {"string": str, "integer": int, "object": dict, "array": list, "null": type(None), "boolean": bool}
        if not any(isinstance(value, names[k]) and not (k == "integer" and isinstance(value, bool)) for k in kinds):
            return [f"{path}: not {kinds}"]
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{path}: does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
            out.append(f"{path}: length")
    if isinstance(value, int) and not isinstance(value, bool) and value < schema.get("minimum", -(10**18)):
        out.append(f"{path}: below minimum")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 10**9):
            out.append(f"{path}: item count")
        for i, item in enumerate(value):
            out += errors(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        out += [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in schema.get("properties", {}):
                out += errors(item, schema["properties"][key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(item, schema["additionalProperties"], f"{path}.{key}")
            if "propertyNames" in schema:
                out += errors(key, schema["propertyNames"], f"{path}.<{key}>")
    if "oneOf" in schema and sum(not errors(value, s, path) for s in schema["oneOf"]) != 1:
        out.append(f"{path}: not exactly one of oneOf")
    if "anyOf" in schema and all(errors(value, s, path) for s in schema["anyOf"]):
        out.append(f"{path}: none of anyOf")
    if "not" in schema and not errors(value, schema["not"], path):
        out.append(f"{path}: matches not")
    return out


def test_the_shipped_catalogue_is_what_the_contract_generates() -> None:
    assert catalogue.differences(SHIPPED) == [], "run `baotuan catalogue` and commit docs/catalogue/"


def test_the_command_writes_and_checks_the_catalogue(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(catalogue_command, ["--output", str(tmp_path), "--check"]).exit_code == 1
    written = runner.invoke(catalogue_command, ["--output", str(tmp_path)])
    assert written.exit_code == 0 and f"wrote {len(catalogue.generate())} files" in written.output
    assert runner.invoke(catalogue_command, ["--output", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / "events" / "Stale.v9.schema.json").write_text("{}")
    assert catalogue.differences(tmp_path) == ["events/Stale.v9.schema.json"]


def test_there_is_a_schema_and_a_description_for_every_event_type_and_version() -> None:
    files = catalogue.generate()
    for kind, version in SCHEMAS:
        schema = json.loads(files[f"events/{kind}.v{version}.schema.json"])
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert EVENT_DESCRIPTIONS[kind]
    assert set(EVENT_DESCRIPTIONS) == {kind for kind, _ in SCHEMAS}


def signed_log() -> list[dict[str, Any]]:
    """A log with the writers' signed checkpoints in it (some listing no heads: too many streams moved)."""
    log = LogWriter(checkpoint_every=7, signing_keys=synthetic_keys(), checkpoint_max_heads=1)
    rows: list[dict[str, Any]] = small_scenario(log, villages=2, months=7).rows
    assert {row["event"]["type"] for row in rows} >= {"ChainCheckpoint", "RentReceived"}
    assert any(p["heads"] is None for row in rows if row["event"]["type"] == "ChainCheckpoint"
               for p in row["event"]["data"]["partitions"])
    return rows


def test_every_event_of_a_log_conforms_to_its_published_schema() -> None:
    files = catalogue.generate()
    envelope = json.loads(files["envelope.schema.json"])
    for row in signed_log():
        event = row["event"]
        schema = json.loads(files[f"events/{event['type']}.v{event['version']}.schema.json"])
        assert errors(event, schema) == [], event["type"]
        assert errors(event, envelope) == []


def test_the_json_schemas_are_never_stricter_than_the_contract() -> None:
    files = catalogue.generate()
    entry = next(row["event"] for row in small_scenario(villages=1, months=1).rows
                 if row["event"]["type"] == "EntryPosted")
    schema = json.loads(files["events/EntryPosted.v1.schema.json"])
    data_schema = schema["properties"]["data"]
    refused = {
        "both sides": {**entry["data"], "lines": [{"account": "102", "debit": "1.00", "credit": "1.00"},
                                                  entry["data"]["lines"][1]]},
        "float amount": {**entry["data"], "lines": [{"account": "102", "debit": 1.5}, entry["data"]["lines"][1]]},
        "three decimals": {**entry["data"], "lines": [{"account": "102", "debit": "1.005"},
                                                      entry["data"]["lines"][1]]},
        "zero": {**entry["data"], "lines": [{"account": "102", "debit": "0.00"}, entry["data"]["lines"][1]]},
        "bad account": {**entry["data"], "lines": [{"account": "10", "debit": "1.00"}, entry["data"]["lines"][1]]},
        "one line": {**entry["data"], "lines": entry["data"]["lines"][:1]},
        "unknown origin": {**entry["data"], "origin": {"kind": "gift", "ref": None}},
        "no date": {k: v for k, v in entry["data"].items() if k != "date"},
    }
    for reason, data in refused.items():
        assert validate_data("EntryPosted", 1, data, strict=False), reason
        assert errors(data, data_schema), reason
    accepted = copy.deepcopy(entry["data"])
    accepted["memo"] = ""
    accepted["a_later_field"] = 1
    assert not validate_data("EntryPosted", 1, accepted, strict=False)
    assert errors(accepted, data_schema) == []


def test_the_asyncapi_document_names_every_topic_writer_and_message() -> None:
    document = catalogue.asyncapi()
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(TOPICS)

    def resolve(ref: str) -> Any:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    for channel_id, channel in document["channels"].items():
        topic = TOPICS[channel["address"]]
        names = {resolve(ref["$ref"])["name"] for ref in channel["messages"].values()}
        assert names == set(topic.event_types)
        send = document["operations"][f"publish.{channel_id}"]
        assert send["action"] == "send" and resolve(send["channel"]["$ref"]) is channel
        assert topic.owner in send["summary"]
        for ref in send["messages"]:
            message = resolve(resolve(ref["$ref"])["$ref"])
            assert message["payload"]["$ref"].startswith("#/components/schemas/")
            resolve(message["payload"]["$ref"])
    entries = document["components"]["messages"]["EntryPosted.v1"]
    assert entries["bindings"]["kafka"]["key"]["description"].startswith("collective_id")
    assert resolve(entries["headers"]["$ref"])["properties"]["ce_specversion"] == {"const": "1.0"}


@pytest.mark.parametrize("name", ["asyncapi.json", "envelope.schema.json", "events/DividendPaid.v1.schema.json"])
def test_catalogue_files_are_json_with_chinese_kept_readable(name: str) -> None:
    text = catalogue.generate()[name]
    json.loads(text)
    assert "\\u" not in text
    assert env.GENESIS_HASH not in text


def _variants(data: dict[str, Any]) -> list[dict[str, Any]]:
    values: list[Any] = [None, 1, True, "", "x" * 600, "1234.5", "0.00", "-1.00", "2025-02-30", [], {}, "0.5"]
    out = [{k: v for k, v in data.items() if k != key} for key in data]
    out += [{**data, key: value} for key in data for value in values]
    return [*out, {**data, "from_a_later_version": 1}]


def test_whatever_the_contract_accepts_its_published_schema_accepts() -> None:
    files = catalogue.generate()
    seen: dict[str, dict[str, Any]] = {}
    for row in signed_log():
        seen.setdefault(row["event"]["type"], row["event"]["data"])
    accepted = 0
    for kind, data in seen.items():
        schema = json.loads(files[f"events/{kind}.v1.schema.json"])["properties"]["data"]
        for variant in _variants(data):
            if not validate_data(kind, 1, variant, strict=False):
                assert errors(variant, schema) == [], (kind, variant)
                accepted += 1
    assert accepted > 50
