"""The web app without a browser or a broker: who-am-I, the proxy to the services, the static page.

The services are stood in for by one small echo app on a loopback port, so these tests
check exactly what the proxy passes on and what it gives back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from services.devtools.broker import free_port
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.web.app import create_app
from services.web.proxy import Upstreams


def echo_app() -> Flask:
    app = Flask("echo")

    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
    def echo(path: str) -> Any:
        if path == "v1/teapot":
            refusal = {"status": 422, "code": "validation_error", "message": "no", "field": "date"}
            return jsonify({"error": refusal}), 422
        return jsonify({"path": path, "method": request.method, "args": request.args.to_dict(flat=False),
                        "headers": {k: v for k, v in request.headers.items()}, "body": request.get_data(as_text=True)})

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, echo_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    return Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path / "data", tokens_file=tmp_path / "tokens.json",
                    request_timeout_s=2, max_body_bytes=1024)


@pytest.fixture
def client(web_settings: Settings, upstream: str) -> FlaskClient:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    return create_app(web_settings, Upstreams(ledger=upstream, rentals=upstream, dividends=down)).test_client()


def test_whoami_names_the_role_and_scope_of_a_token_and_never_the_token(client: FlaskClient,
                                                                        web_settings: Settings) -> None:
    assert web_settings.tokens_file is not None
    token = add_token(web_settings.tokens_file, name="lianmeng-accountant", role="accountant", scope=["lianmeng"])
    response = client.get("/api/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json == {"name": "lianmeng-accountant", "role": "accountant", "scope": ["lianmeng"],
                             "features": {"export_xlsx": response.json["features"]["export_xlsx"]}}
    assert token not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("header", ["Bearer bt_unknown", "Basic dXNlcjpwdw=="])
def test_whoami_refuses_an_unknown_token_with_401_naming_the_token(client: FlaskClient, header: str) -> None:
    response = client.get("/api/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"]["field"] == "token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_whoami_without_a_token_or_a_session_is_401_naming_the_session(client: FlaskClient) -> None:
    response = client.get("/api/whoami")
    assert response.status_code == 401
    assert response.json["error"] == {"status": 401, "code": "unauthenticated", "message": "not signed in",
                                      "field": "session"}


def test_the_proxy_passes_method_path_query_body_token_and_idempotency_key_unchanged(client: FlaskClient) -> None:
    response = client.post("/api/ledger/v1/collectives/lianmeng/entries?x=1&x=2", data='{"date": "2026-03-01"}',
                           headers={"Authorization": "Bearer bt_abc", "Idempotency-Key": "k-1",
                                    "Content-Type": "application/json", "Cookie": "session=secret",
                                    "X-Forwarded-For": "10.0.0.1"})
    assert response.status_code == 200
    seen = response.json
    assert seen["path"] == "v1/collectives/lianmeng/entries"
    assert seen["method"] == "POST"
    assert seen["args"] == {"x": ["1", "2"]}
    assert seen["body"] == '{"date": "2026-03-01"}'
    assert seen["headers"]["Authorization"] == "Bearer bt_abc"
    assert seen["headers"]["Idempotency-Key"] == "k-1"
    # Nothing else of the browser's reaches a service.
    assert "Cookie" not in seen["headers"]
    assert "X-Forwarded-For" not in seen["headers"]


def test_a_services_error_comes_back_with_its_status_and_body(client: FlaskClient) -> None:
    response = client.get("/api/rentals/v1/teapot")
    assert response.status_code == 422
    assert response.json == {"error": {"status": 422, "code": "validation_error", "message": "no", "field": "date"}}


def test_a_service_that_does_not_answer_is_a_502_in_the_services_error_shape(client: FlaskClient) -> None:
    response = client.get("/api/dividends/v1/projects/binhai/distributions")
    assert response.status_code == 502
    assert response.json["error"]["code"] == "upstream_unavailable"
    assert "dividends" in response.json["error"]["message"]


@pytest.mark.parametrize("path", ["/api/ledger/docs", "/api/ledger/health", "/api/ledger/v1/../openapi.json",
                                  "/api/ledger/v1//accounts", "/api/audit/v1/anything"])
def test_only_v1_paths_of_the_three_services_are_forwarded(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_an_oversized_body_is_refused_before_it_reaches_a_service(client: FlaskClient) -> None:
    response = client.post("/api/ledger/v1/collectives", data="x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["field"] == "body"


def test_the_page_and_its_scripts_are_served_with_a_strict_content_security_policy(client: FlaskClient) -> None:
    with client.get("/") as page:
        assert page.status_code == 200
        assert '<script type="module" src="/static/js/main.js">' in page.get_data(as_text=True)
        policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    with client.get("/static/js/main.js") as script:
        assert script.status_code == 200
        assert "javascript" in script.headers["Content-Type"]


def test_upstream_urls_come_from_the_environment_with_the_documented_defaults() -> None:
    assert Upstreams.from_env({}) == Upstreams("http://127.0.0.1:8001", "http://127.0.0.1:8002",
                                               "http://127.0.0.1:8003")
    custom = Upstreams.from_env({"BAOTUAN_RENTALS_URL": "http://rentals:9000/"})
    assert custom.rentals == "http://rentals:9000"
    assert custom.ledger == "http://127.0.0.1:8001"


@pytest.mark.parametrize(("role", "scope", "query", "status", "field"), [
    (None, [], "collective_id=lianmeng", 401, "Authorization"),
    ("accountant", ["lianmeng"], "", 422, "collective_id"),
    ("accountant", ["lianmeng"], "collective_id=Not_A_Slug", 422, "collective_id"),
    ("accountant", ["lianmeng"], "collective_id=xinqiao", 403, "Authorization"),
    ("operator", ["binhai"], "collective_id=lianmeng", 403, "Authorization"),
    ("board", ["binhai"], "collective_id=lianmeng", 403, "Authorization"),
])
def test_the_excel_export_is_refused_before_any_replay_outside_the_accountants_scope(
        client: FlaskClient, web_settings: Settings, role: str | None, scope: list[str], query: str, status: int,
        field: str) -> None:
    assert web_settings.tokens_file is not None
    headers = {}
    if role is not None:
        headers["Authorization"] = "Bearer " + add_token(web_settings.tokens_file, name=f"{role}-1", role=role,
                                                         scope=scope)
    response = client.get(f"/api/export.xlsx?{query}", headers=headers)
    assert response.status_code == status
    assert response.json["error"]["field"] == field
