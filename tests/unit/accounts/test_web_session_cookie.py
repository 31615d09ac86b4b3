"""The web page's side of sign-in: the session cookie, CSRF refusals, the idle clock and sign-out.

A real ledger and rentals service on the in-memory log, each behind an HTTP server on a loopback
port; the web app in front of them through Flask's test client (which keeps cookies as a browser does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from argon2 import PasswordHasher
from conftest import Server, bearer
from flask.testing import FlaskClient

from services.accounts.passwords import Passwords, key_file, load_or_create_key
from services.accounts.policy import AddressThrottle, SignInPolicy
from services.contracts.topics import ACCOUNTS, LEDGER_ENTRIES
from services.devtools.broker import free_port
from services.ledger.app import create_app as ledger_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog
from services.web.app import create_app as web_app
from services.web.proxy import Upstreams
from services.web.signin import COOKIE, CSRF_HEADER, SECURE_COOKIE, csrf_token

VILLAGE = "jinqing-lianmeng"
ENTRY = {"date": "2026-03-01", "lines": [{"account": "102", "debit": "5.00"}, {"account": "504", "credit": "5.00"}]}
PASSWORD = "lianmeng-2026"


@dataclass
class Stack:
    ledger: Server
    upstreams: Upstreams
    settings: Settings
    log: InMemoryLog

    def web(self) -> FlaskClient:
        return web_app(self.settings, self.upstreams).test_client()

    def entries(self) -> int:
        return sum(1 for r in self.log.records(LEDGER_ENTRIES) if r.value and b'"EntryPosted"' in r.value)


def stack_with(memory_log: InMemoryLog, memory_settings: Settings, idle_s: int) -> Iterator[Stack]:
    assert memory_settings.tokens_file is not None
    admin = bearer(add_token(memory_settings.tokens_file, name="admin", role="admin"))
    ledger = Server(ledger_app(memory_settings, log=memory_log))
    rentals = Server(rentals_app(memory_settings, log=memory_log))
    try:
        fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        policy = SignInPolicy(session_idle_s=idle_s)
        ledger.app.extensions.update(
            baotuan_passwords=Passwords(load_or_create_key(key_file(memory_settings.data_dir)), fast),
            baotuan_sign_in_policy=policy, baotuan_address_throttle=AddressThrottle(policy))
        for url, body in [("/v1/collectives", {"collective_id": VILLAGE, "name": "联盟村", "town": "金清镇"}),
                          ("/v1/users", {"name": "lianmeng-kuaiji", "display_name": "王会计", "role": "accountant",
                                         "scope": [VILLAGE], "password": PASSWORD,
                                         "must_change_password": False})]:
            assert requests.post(ledger.url + url, json=body, headers=admin, timeout=10).status_code == 201
        upstreams = Upstreams(ledger=ledger.url, rentals=rentals.url, dividends=f"http://127.0.0.1:{free_port()}")
        yield Stack(ledger, upstreams, memory_settings, memory_log)
    finally:
        rentals.stop()
        ledger.stop()


@pytest.fixture
def stack(memory_log: InMemoryLog, memory_settings: Settings) -> Iterator[Stack]:
    yield from stack_with(memory_log, memory_settings, idle_s=1800)


def sign_in(web: FlaskClient, password: str = PASSWORD) -> dict[str, str]:
    answer = web.post("/api/session", json={"name": "lianmeng-kuaiji", "password": password})
    assert answer.status_code == 201, answer.get_json()
    return {CSRF_HEADER: answer.get_json()["csrf_token"]}


def cookie_of(web: FlaskClient, name: str = COOKIE) -> str:
    found = web.get_cookie(name)
    assert found is not None, name
    return found.value


def test_sign_in_puts_the_session_in_an_httponly_samesite_strict_cookie_and_never_in_the_answer(stack: Stack) -> None:
    web = stack.web()
    answer = web.post("/api/session", json={"name": "lianmeng-kuaiji", "password": PASSWORD})
    assert answer.status_code == 201
    [header] = answer.headers.getlist("Set-Cookie")
    parts = {p.strip().split("=")[0].lower() for p in header.split(";")}
    assert {"httponly", "path", "samesite"} <= parts and "secure" not in parts  # plain HTTP here
    assert "SameSite=Strict" in header and "Path=/" in header
    secret = cookie_of(web)
    body = answer.get_json()
    assert secret not in answer.get_data(as_text=True) and "session" not in body
    assert body["csrf_token"] == csrf_token(secret) and body["name"] == "lianmeng-kuaiji"
    me = web.get("/api/whoami").get_json()
    assert (me["kind"], me["name"], me["role"], me["scope"]) == ("account", "lianmeng-kuaiji", "accountant", [VILLAGE])
    assert me["csrf_token"] == body["csrf_token"] and secret not in json.dumps(me)


def test_over_https_the_cookie_is_secure_and_host_bound(stack: Stack) -> None:
    web = stack.web()
    answer = web.post("/api/session", json={"name": "lianmeng-kuaiji", "password": PASSWORD},
                      headers={"Origin": "https://localhost"}, base_url="https://localhost")
    assert answer.status_code == 201, answer.get_json()
    header = answer.headers["Set-Cookie"]
    assert header.startswith(f"{SECURE_COOKIE}=") and "Secure" in header and "HttpOnly" in header
    assert web.get("/api/whoami", base_url="https://localhost").status_code == 200


def test_a_change_without_the_csrf_token_is_refused_and_writes_nothing(stack: Stack) -> None:
    web = stack.web()
    csrf = sign_in(web)
    before = stack.entries()
    url = f"/api/ledger/v1/collectives/{VILLAGE}/entries"
    for headers, field in [({}, CSRF_HEADER), ({CSRF_HEADER: "forged"}, CSRF_HEADER),
                           ({**csrf, "Origin": "https://evil.example"}, "Origin"),
                           ({**csrf, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site")]:
        refused = web.post(url, json=ENTRY, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.get_json()["error"] == {"status": 403, "code": "csrf_refused", "field": field,
                                               "message": refused.get_json()["error"]["message"]}
    assert stack.entries() == before
    # Reading needs no token; the right token (from this page) writes, as the account.
    assert web.get(url).status_code == 200
    posted = web.post(url, json=ENTRY, headers={**csrf, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert posted.status_code == 201, posted.get_json()
    assert stack.entries() == before + 1
    [last] = [json.loads(r.value) for r in stack.log.records(LEDGER_ENTRIES) if r.value][-1:]
    assert last["actor"] == "account:lianmeng-kuaiji"


def test_sign_in_itself_takes_only_json_from_this_page(stack: Stack) -> None:
    web = stack.web()
    form = web.post("/api/session", data={"name": "lianmeng-kuaiji", "password": PASSWORD})
    assert form.status_code == 415
    other_site = web.post("/api/session", json={"name": "lianmeng-kuaiji", "password": PASSWORD},
                          headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403 and other_site.get_json()["error"]["code"] == "csrf_refused"
    assert web.get_cookie(COOKIE) is None


def test_a_wrong_password_passes_on_the_ledgers_refusal_and_sets_no_cookie(stack: Stack) -> None:
    web = stack.web()
    answer = web.post("/api/session", json={"name": "lianmeng-kuaiji", "password": "not-it"})
    assert answer.status_code == 401
    assert answer.get_json()["error"]["field"] == "password"
    assert web.get_cookie(COOKIE) is None


def test_sign_out_needs_the_csrf_token_and_ends_the_session_in_every_service(stack: Stack) -> None:
    web = stack.web()
    csrf = sign_in(web)
    secret = cookie_of(web)
    assert web.delete("/api/session").status_code == 403  # a page of another site cannot sign you out either
    assert web.delete("/api/session", headers=csrf).status_code == 204
    assert web.get_cookie(COOKIE) is None
    for base, path in [(stack.upstreams.ledger, f"/v1/collectives/{VILLAGE}/entries"),
                       (stack.upstreams.rentals, "/v1/projects/binhai-park/buildings")]:
        assert requests.get(base + path, headers={"Authorization": f"Session {secret}"}, timeout=10).status_code == 401
    ended = [json.loads(r.value) for r in stack.log.records(ACCOUNTS) if r.value and b"SessionEnded" in r.value]
    assert [e["data"]["reason"] for e in ended] == ["signed_out"]


def test_a_script_with_its_own_authorization_is_passed_on_without_a_csrf_token(stack: Stack) -> None:
    assert stack.settings.tokens_file is not None
    token = add_token(stack.settings.tokens_file, name="import-script", role="accountant", scope=[VILLAGE])
    web = stack.web()
    posted = web.post(f"/api/ledger/v1/collectives/{VILLAGE}/entries", json=ENTRY, headers=bearer(token))
    assert posted.status_code == 201


@pytest.fixture
def idle_stack(memory_log: InMemoryLog, memory_settings: Settings) -> Iterator[Stack]:
    yield from stack_with(memory_log, memory_settings, idle_s=1)


def test_an_idle_session_is_ended_in_the_log_at_its_next_request(idle_stack: Stack) -> None:
    web = idle_stack.web()
    sign_in(web)
    secret = cookie_of(web)
    assert web.get(f"/api/ledger/v1/collectives/{VILLAGE}/entries").status_code == 200
    time.sleep(1.3)
    idle = web.get(f"/api/ledger/v1/collectives/{VILLAGE}/entries")
    assert idle.status_code == 401
    assert idle.get_json()["error"]["code"] == "session_idle"
    assert web.get_cookie(COOKIE) is None
    answer = requests.get(f"{idle_stack.upstreams.ledger}/v1/users/me", headers={"Authorization": f"Session {secret}"},
                          timeout=10)
    assert answer.status_code == 401
    ended = [json.loads(r.value) for r in idle_stack.log.records(ACCOUNTS) if r.value and b"SessionEnded" in r.value]
    assert [e["data"]["reason"] for e in ended] == ["idle"]
