"""The OpenAPI documents of the services describe the error body the services answer, and
on each operation the error statuses it can give (services.runtime.openapi). No broker: the
apps are built without their event service; only authentication and parsing run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs  # schemathesis' JSON Schema validator (the dev extra)
import pytest
from flask import Flask

import services.dividends.api as dividends_api
import services.ledger.api as ledger_api
import services.members.api as members_api
import services.rentals.api as rentals_api
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.http import ApiError, create_service_app

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Flask], str]]:
    root = tmp_path_factory.mktemp("openapi")
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=root, tokens_file=root / "tokens.json")
    admin = add_token(Path(root / "tokens.json"), name="admin", role="admin")
    blueprints = {"ledger": ledger_api.blueprints(), "rentals": [rentals_api.blp],
                  "dividends": [dividends_api.blp], "members": [members_api.blp]}
    yield {name: create_service_app(title=f"baotuan {name}", service=None, settings=settings, blueprints=blps)
           for name, blps in blueprints.items()}, admin


def spec_of(app: Flask) -> dict[str, Any]:
    spec: dict[str, Any] = app.test_client().get("/openapi.json").get_json()
    return spec


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def json_schema(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 schema as a JSON Schema: references inlined, ``nullable`` as a null type."""
    if "$ref" in schema:
        return json_schema(spec, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: json_schema(spec, inner) for name, inner in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = json_schema(spec, value)
        elif key != "nullable":
            out[key] = value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def documented_error(spec: dict[str, Any], operation: dict[str, Any], status: int) -> dict[str, Any]:
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return json_schema(spec, response["content"]["application/json"]["schema"])


@pytest.mark.parametrize("name", ["ledger", "rentals", "dividends", "members"])
def test_every_operation_lists_its_error_statuses_with_the_real_body_and_no_catch_all(
        apps: tuple[dict[str, Flask], str], name: str) -> None:
    spec = spec_of(apps[0][name])
    assert "Error" not in spec["components"]["schemas"]  # flask-smorest's {code, status, message}
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        statuses = {int(status) for status in responses if status != "default"}
        assert "default" not in responses, (method, path)
        query = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
        expected = {401, 403, 500, 503}
        if "{" in path or any(q.endswith("_id") for q in query):
            expected.add(404)
        if "requestBody" in operation:
            expected |= {400, 413, 422}
        if query:
            expected.add(422)
        if method != "get":
            expected |= {400, 409}
        assert {s for s in statuses if s >= 400} == expected, (method, path)
        for status in expected:
            schema = documented_error(spec, operation, status)
            assert schema["required"] == ["error"] and schema["properties"]["error"]["required"] == [
                "code", "field", "message", "status"], (method, path, status)


def test_the_documented_error_body_is_the_one_the_services_answer(apps: tuple[dict[str, Flask], str]) -> None:
    services, admin = apps
    spec = spec_of(services["ledger"])
    post = spec["paths"]["/v1/collectives"]["post"]
    http = services["ledger"].test_client()
    unauthenticated = http.post("/v1/collectives", json={})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"] == "Bearer"
    assert "WWW-Authenticate" in spec["components"]["responses"]["Error401"]["headers"]
    jsonschema_rs.validate(documented_error(spec, post, 401), unauthenticated.get_json())
    refused = http.post("/v1/collectives", json={"collective_id": 1}, headers={"Authorization": f"Bearer {admin}"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["errors"]  # webargs' messages by field, documented too
    jsonschema_rs.validate(documented_error(spec, post, 422), refused.get_json())
    not_json = http.post("/v1/collectives", data="{", content_type="application/json",
                         headers={"Authorization": f"Bearer {admin}"})
    assert not_json.status_code == 400
    jsonschema_rs.validate(documented_error(spec, post, 400), not_json.get_json())
    for error in (ApiError(503, "broker_unavailable", "down"), ApiError(404, "not_found", "no x", "x_id")):
        jsonschema_rs.validate(documented_error(spec, post, 422), error.to_dict())


def test_wire_strings_are_documented_as_strings(apps: tuple[dict[str, Flask], str]) -> None:
    schemas = spec_of(apps[0]["ledger"])["components"]["schemas"]
    assert schemas["CollectiveRequest"]["properties"]["collective_id"]["type"] == "string"
    assert schemas["LineRequest"]["properties"]["debit"]["type"] == "string"
    assert schemas["EntryRequest"]["properties"]["date"] == {"type": "string", "format": "date"}
