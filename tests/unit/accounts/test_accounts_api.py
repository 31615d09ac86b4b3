"""The accounts API (served by the ledger) and sessions in every service, on the in-memory log.

The ledger and the rentals service share one log: what the ledger writes on the accounts topic,
the rentals service folds, and refuses or accepts the same sessions and tokens at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from conftest import bearer, running
from flask.testing import FlaskClient

from services.accounts.passwords import Passwords, key_file, load_or_create_key
from services.accounts.policy import AddressThrottle, Backoff, SignInPolicy
from services.contracts.topics import ACCOUNTS, LEDGER_ENTRIES
from services.ledger.app import create_app as ledger_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

VILLAGE, OTHER, PARK = "jinqing-lianmeng", "jinqing-xinqiao", "binhai-park"
ENTRY = {"date": "2026-03-01", "memo": "村委会办公用品",
         "lines": [{"account": "513", "debit": "86.00"}, {"account": "102", "credit": "86.00"}]}


@dataclass
class World:
    ledger: FlaskClient
    rentals: FlaskClient
    log: InMemoryLog
    admin: dict[str, str]
    settings: Settings

    def create(self, name: str, role: str = "accountant", scope: tuple[str, ...] = (VILLAGE,),
               password: str | None = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "display_name": f"{name} 会计", "role": role, "scope": list(scope),
                                **extra}
        if password is not None:
            body.update(password=password, must_change_password=False)
        made = self.ledger.post("/v1/users", headers=self.admin, json=body)
        assert made.status_code == 201, made.get_json()
        result: dict[str, Any] = made.get_json()
        return result

    def sign_in(self, name: str, password: str) -> dict[str, str]:
        answer = self.ledger.post("/v1/sessions", json={"name": name, "password": password})
        assert answer.status_code == 201, answer.get_json()
        return {"Authorization": f"Session {answer.get_json()['session']}"}

    def records(self, topic: str = ACCOUNTS) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.log.records(topic) if r.value is not None]


@pytest.fixture
def world(memory_log: InMemoryLog, memory_settings: Settings) -> Iterator[World]:
    assert memory_settings.tokens_file is not None
    admin = bearer(add_token(memory_settings.tokens_file, name="admin", role="admin"))
    with running(ledger_app, memory_settings, memory_log) as ledger, \
            running(rentals_app, memory_settings, memory_log) as rentals:
        app = ledger.application
        app.extensions["baotuan_passwords"] = Passwords(load_or_create_key(key_file(memory_settings.data_dir)),
                                                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        policy = SignInPolicy(account=Backoff(slow_after=3, lock_after=5, lock_s=600, base_delay_s=30),
                              address=Backoff(slow_after=50, lock_after=100))
        app.extensions.update(baotuan_sign_in_policy=policy, baotuan_address_throttle=AddressThrottle(policy))
        for collective in (VILLAGE, OTHER):
            assert ledger.post("/v1/collectives", headers=admin,
                               json={"collective_id": collective, "name": "村", "town": "金清镇"}).status_code == 201
        assert ledger.post("/v1/projects", headers=admin, json={
            "project_id": PARK, "name": "园", "kind": "industrial_park", "town": "金清镇",
            "operator": "运营"}).status_code == 201
        yield World(ledger, rentals, memory_log, admin, memory_settings)


# -- creating accounts --------------------------------------------------------------------------------------


def test_an_admin_creates_an_account_with_a_one_time_password_that_must_be_changed(world: World) -> None:
    made = world.create("lianmeng-kuaiji")
    assert made["must_change_password"] is True and made["status"] == "active"
    assert made["created_by"] == "admin:admin" and made["scope"] == [VILLAGE]
    code = made["one_time_password"]
    session = world.sign_in("lianmeng-kuaiji", code)
    # Until the password is changed, nothing but who-am-I, the change and signing out.
    refused = world.ledger.get(f"/v1/collectives/{VILLAGE}/entries", headers=session)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "password_change_required"
    assert world.rentals.get(f"/v1/projects/{PARK}/buildings", headers=session).status_code == 403
    assert world.ledger.get("/v1/users/me", headers=session).get_json()["must_change_password"] is True
    changed = world.ledger.put("/v1/users/me/password", headers=session,
                               json={"current_password": code, "new_password": "lianmeng-2026"})
    assert changed.status_code == 200 and changed.get_json()["must_change_password"] is False
    assert world.ledger.get(f"/v1/collectives/{VILLAGE}/entries", headers=session).status_code == 200
    # The account is listed without any password; the one-time password was shown once only.
    listed = world.ledger.get("/v1/users", headers=world.admin).get_json()["items"]
    assert [a["name"] for a in listed] == ["lianmeng-kuaiji"]
    assert "one_time_password" not in listed[0] and "password" not in listed[0]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"role": "accountant", "scope": ["nowhere"]}, 422, "scope.0"),
    ({"role": "accountant", "scope": [PARK]}, 422, "scope.0"),
    ({"role": "operator", "scope": [VILLAGE]}, 422, "scope.0"),
    ({"role": "accountant", "scope": []}, 422, "scope"),
    ({"role": "auditor", "scope": [VILLAGE]}, 422, "scope"),
    ({"role": "chief", "scope": []}, 422, "role"),
    ({"role": "accountant", "scope": [VILLAGE], "name": "Not A Name"}, 422, "name"),
    ({"role": "accountant", "scope": [VILLAGE], "password": "short"}, 422, "password"),
    ({"role": "accountant", "scope": [VILLAGE], "colour": "red"}, 422, "colour"),
])
def test_a_bad_account_is_refused_naming_the_field_and_nothing_is_written(world: World, body: dict[str, Any],
                                                                         status: int, field: str) -> None:
    before = len(world.records())
    answer = world.ledger.post("/v1/users", headers=world.admin,
                               json={"name": "someone", "display_name": "某人", **body})
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["field"] == field
    assert len(world.records()) == before


def test_a_name_is_taken_once_and_only_an_admin_creates_accounts(world: World) -> None:
    world.create("lianmeng-kuaiji")
    again = world.ledger.post("/v1/users", headers=world.admin, json={
        "name": "lianmeng-kuaiji", "display_name": "x", "role": "auditor"})
    assert again.status_code == 409 and again.get_json()["error"]["field"] == "name"
    assert world.settings.tokens_file is not None
    accountant = bearer(add_token(world.settings.tokens_file, name="acc", role="accountant", scope=[VILLAGE]))
    refused = world.ledger.post("/v1/users", headers=accountant, json={
        "name": "mine", "display_name": "x", "role": "admin"})
    assert refused.status_code == 403
    assert world.ledger.get("/v1/users", headers=accountant).status_code == 403
    auditor = bearer(add_token(world.settings.tokens_file, name="aud", role="auditor"))
    assert world.ledger.get("/v1/users", headers=auditor).status_code == 200  # the auditor reads
    assert world.ledger.get("/v1/sign-ins", headers=auditor).status_code == 200


# -- sessions -------------------------------------------------------------------------------------------------


def test_a_session_acts_as_the_account_in_every_service_and_events_carry_the_account_as_actor(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    posted = world.ledger.post(f"/v1/collectives/{VILLAGE}/entries", headers=session, json=ENTRY)
    assert posted.status_code == 201
    [entry] = [e for e in world.records(LEDGER_ENTRIES) if e["type"] == "EntryPosted"]
    assert entry["actor"] == "account:lianmeng-kuaiji"
    # The scope is the account's: another village is refused, in the ledger and in the rentals service.
    other = world.ledger.post(f"/v1/collectives/{OTHER}/entries", headers=session, json=ENTRY)
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "forbidden"
    assert world.ledger.get(f"/v1/collectives/{OTHER}/trial-balance", headers=session).status_code == 403
    assert world.rentals.get(f"/v1/projects/{PARK}/buildings", headers=session).status_code == 403
    me = world.rentals.get("/v1/projects", headers=session)
    assert me.status_code == 404  # served by the ledger only; the rentals service knew the session all the same


def test_a_change_of_role_or_scope_is_carried_by_open_sessions_at_once(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    assert world.ledger.get(f"/v1/collectives/{OTHER}/entries", headers=session).status_code == 403
    moved = world.ledger.patch("/v1/users/lianmeng-kuaiji", headers=world.admin, json={"scope": [OTHER]})
    assert moved.status_code == 200 and moved.get_json()["scope"] == [OTHER]
    assert world.ledger.get(f"/v1/collectives/{OTHER}/entries", headers=session).status_code == 200
    assert world.ledger.get(f"/v1/collectives/{VILLAGE}/entries", headers=session).status_code == 403
    board = world.ledger.patch("/v1/users/lianmeng-kuaiji", headers=world.admin,
                               json={"role": "board", "scope": [PARK]})
    assert board.status_code == 200
    assert world.rentals.get(f"/v1/projects/{PARK}/rent-roll", headers=session).status_code == 200


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    wrong = world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji", "password": "lianmeng-2025"})
    unknown = world.ledger.post("/v1/sessions", json={"name": "nobody-here", "password": "lianmeng-2025"})
    odd = world.ledger.post("/v1/sessions", json={"name": "Not A Name!", "password": "lianmeng-2025"})
    assert wrong.status_code == unknown.status_code == odd.status_code == 401
    assert wrong.get_json() == unknown.get_json() == odd.get_json()
    # Only the existing account's failure is in the log (with the address, never the password).
    [failed] = [e for e in world.records() if e["type"] == "SignInFailed"]
    assert failed["data"] == {"name": "lianmeng-kuaiji", "address": "127.0.0.1", "reason": "wrong_password"}


def test_failed_sign_ins_of_an_account_are_counted_from_the_log_and_lock_it(world: World,
                                                                           memory_log: InMemoryLog) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    for _ in range(3):
        assert world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji",
                                                       "password": "wrong-one"}).status_code == 401
    slowed = world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji", "password": "lianmeng-2026"})
    assert slowed.status_code == 429
    assert slowed.get_json()["error"] == {"status": 429, "code": "too_many_attempts", "field": "name",
                                          "message": "too many failed sign-ins: try again in 30 seconds"}
    assert slowed.headers["Retry-After"] == "30"
    # Another instance of the ledger on the same log counts the same failures.
    with running(ledger_app, world.settings, memory_log) as second:
        again = second.post("/v1/sessions", json={"name": "lianmeng-kuaiji", "password": "lianmeng-2026"})
        assert again.status_code == 429
    # An admin's reset clears the count (and asks for a new password at the next sign-in).
    code = world.ledger.post("/v1/users/lianmeng-kuaiji/password-reset", headers=world.admin).get_json()
    assert world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji",
                                                   "password": code["one_time_password"]}).status_code == 201


def test_a_disabled_account_is_refused_at_once_by_every_service_and_its_sessions_end(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    assert world.rentals.get("/v1/projects/binhai-park/buildings", headers=session).status_code == 403
    disabled = world.ledger.post("/v1/users/lianmeng-kuaiji/disable", headers=world.admin, json={"reason": "调岗"})
    assert disabled.status_code == 200 and disabled.get_json()["status"] == "disabled"
    for client in (world.ledger, world.rentals):
        refused = client.get(f"/v1/collectives/{VILLAGE}/entries", headers=session)
        assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthenticated"
    answer = world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji", "password": "lianmeng-2026"})
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "account_disabled"
    ended = [e for e in world.records() if e["type"] == "SessionEnded"]
    assert [e["data"]["reason"] for e in ended] == ["disabled"] and ended[0]["actor"] == "admin:admin"
    # Enabled again, the account signs in anew; the old session stays ended.
    assert world.ledger.post("/v1/users/lianmeng-kuaiji/enable", headers=world.admin, json={}).status_code == 200
    assert world.ledger.get("/v1/users/me", headers=session).status_code == 401
    world.sign_in("lianmeng-kuaiji", "lianmeng-2026")


def test_sign_out_ends_the_session_in_every_service(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    other = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    assert world.ledger.delete("/v1/sessions/current", headers=session).status_code == 204
    for client, path in ((world.ledger, f"/v1/collectives/{VILLAGE}/entries"),
                         (world.rentals, f"/v1/projects/{PARK}/buildings")):
        assert client.get(path, headers=session).status_code == 401
        assert client.get(path, headers=other).status_code != 401  # another session goes on (its scope rules)
    assert world.ledger.delete("/v1/sessions/current", headers=session).status_code == 401


def test_a_password_change_ends_the_other_sessions_and_a_reset_ends_all(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    here, there = world.sign_in("lianmeng-kuaiji", "lianmeng-2026"), world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    wrong = world.ledger.put("/v1/users/me/password", headers=here,
                             json={"current_password": "not-it-at-all", "new_password": "lianmeng-2027"})
    assert wrong.status_code == 422 and wrong.get_json()["error"]["field"] == "current_password"
    weak = world.ledger.put("/v1/users/me/password", headers=here,
                            json={"current_password": "lianmeng-2026", "new_password": "short"})
    assert weak.status_code == 422 and weak.get_json()["error"]["field"] == "new_password"
    assert world.ledger.put("/v1/users/me/password", headers=here, json={
        "current_password": "lianmeng-2026", "new_password": "lianmeng-2027"}).status_code == 200
    assert world.ledger.get("/v1/projects", headers=here).status_code == 200
    assert world.ledger.get("/v1/projects", headers=there).status_code == 401
    reset = world.ledger.post("/v1/users/lianmeng-kuaiji/password-reset", headers=world.admin)
    assert reset.status_code == 200
    assert world.ledger.get("/v1/projects", headers=here).status_code == 401
    assert world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji",
                                                   "password": "lianmeng-2027"}).status_code == 401


def test_an_admin_may_neither_disable_nor_demote_their_own_account(world: World) -> None:
    world.create("zhen-admin", role="admin", scope=(), password="jinqing-admin-1")
    me = world.sign_in("zhen-admin", "jinqing-admin-1")
    mine = world.ledger.post("/v1/users/zhen-admin/disable", headers=me, json={})
    assert mine.status_code == 409 and mine.get_json()["error"]["field"] == "name"
    demoted = world.ledger.patch("/v1/users/zhen-admin", headers=me, json={"role": "auditor", "scope": []})
    assert demoted.status_code == 409 and demoted.get_json()["error"]["field"] == "role"


# -- API tokens of accounts ------------------------------------------------------------------------------------


def test_an_account_issues_an_expiring_api_token_that_acts_as_it_until_revoked(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    too_far = world.ledger.post("/v1/users/me/tokens", headers=session,
                                json={"label": "导入脚本", "expires_on": "2099-01-01"})
    assert too_far.status_code == 422 and too_far.get_json()["error"]["field"] == "expires_on"
    import datetime as dt

    soon = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    issued = world.ledger.post("/v1/users/me/tokens", headers=session, json={"label": "导入脚本", "expires_on": soon})
    assert issued.status_code == 201
    token = bearer(issued.get_json()["token"])
    token_id = issued.get_json()["token_id"]
    assert world.ledger.post(f"/v1/collectives/{VILLAGE}/entries", headers=token, json=ENTRY).status_code == 201
    assert world.rentals.get(f"/v1/projects/{PARK}/buildings", headers=token).status_code == 403  # its scope
    assert [e["actor"] for e in world.records(LEDGER_ENTRIES) if e["type"] == "EntryPosted"] == \
        ["account:lianmeng-kuaiji"]
    # A token may not mint more tokens, nor change the password.
    assert world.ledger.post("/v1/users/me/tokens", headers=token,
                             json={"label": "x", "expires_on": soon}).status_code == 403
    listed = world.ledger.get("/v1/users/me/tokens", headers=session).get_json()["items"]
    assert [t["token_id"] for t in listed] == [token_id] and "token" not in listed[0]
    revoked = world.ledger.delete(f"/v1/users/me/tokens/{token_id}", headers=session)
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    for client in (world.ledger, world.rentals):
        assert client.get("/v1/projects", headers=token).status_code == 401


def test_a_disabled_accounts_api_token_is_refused(world: World) -> None:
    import datetime as dt

    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    soon = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    token = bearer(world.ledger.post("/v1/users/me/tokens", headers=session,
                                     json={"label": "脚本", "expires_on": soon}).get_json()["token"])
    assert world.ledger.get("/v1/projects", headers=token).status_code == 200
    world.ledger.post("/v1/users/lianmeng-kuaiji/disable", headers=world.admin, json={})
    assert world.rentals.get("/v1/projects/binhai-park/buildings", headers=token).status_code == 401


# -- what the log holds ---------------------------------------------------------------------------------------


def test_no_secret_ever_reaches_the_log(world: World) -> None:
    import datetime as dt

    made = world.create("lianmeng-kuaiji")
    code = made["one_time_password"]
    answer = world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji", "password": code})
    secret = answer.get_json()["session"]
    session = {"Authorization": f"Session {secret}"}
    world.ledger.put("/v1/users/me/password", headers=session,
                     json={"current_password": code, "new_password": "lianmeng-2026"})
    world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji", "password": "a-wrong-guess"})
    token = world.ledger.post("/v1/users/me/tokens", headers=session, json={
        "label": "x", "expires_on": (dt.date.today() + dt.timedelta(days=2)).isoformat()}).get_json()["token"]
    raw = b"".join((r.value or b"") + b"".join(v for _, v in r.headers) for r in world.log.records(ACCOUNTS))
    for secret_text in (code, "lianmeng-2026", "a-wrong-guess", secret, token, "$argon2"):
        assert secret_text.encode() not in raw, secret_text
    kinds = [e["type"] for e in world.records()]
    assert kinds == ["AccountCreated", "SessionStarted", "PasswordSet", "SignInFailed", "ApiTokenIssued"]
    # ... nor the projection of a service that is not the owner: no sealed hashes there at all.
    store = world.rentals.application.extensions["baotuan_service"].store
    tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "_account_passwords" not in tables and "_sign_in_failures" not in tables


def test_who_signed_in_when_is_listed_for_the_admin(world: World) -> None:
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    world.ledger.post("/v1/sessions", json={"name": "lianmeng-kuaiji", "password": "a-wrong-guess"})
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    world.ledger.delete("/v1/sessions/current", headers=session)
    items = world.ledger.get("/v1/sign-ins?name=lianmeng-kuaiji", headers=world.admin).get_json()["items"]
    assert [(i["outcome"], i["end_reason"]) for i in items] == [("signed_in", "signed_out"), ("wrong_password", None)]
    listed = world.ledger.get("/v1/users", headers=world.admin).get_json()["items"]
    assert listed[0]["last_sign_in"] == items[0]["at"]


def test_an_idempotency_key_of_an_account_and_a_token_of_the_same_name_are_different_requests(
        world: World) -> None:
    assert world.settings.tokens_file is not None
    twin = bearer(add_token(world.settings.tokens_file, name="lianmeng-kuaiji", role="accountant", scope=[VILLAGE]))
    world.create("lianmeng-kuaiji", password="lianmeng-2026")
    session = world.sign_in("lianmeng-kuaiji", "lianmeng-2026")
    key = {"Idempotency-Key": "entry-1"}
    first = world.ledger.post(f"/v1/collectives/{VILLAGE}/entries", headers={**twin, **key}, json=ENTRY)
    second = world.ledger.post(f"/v1/collectives/{VILLAGE}/entries", headers={**session, **key}, json=ENTRY)
    assert first.status_code == second.status_code == 201
    assert first.get_json()["entry_id"] != second.get_json()["entry_id"]
    assert sorted(e["actor"] for e in world.records(LEDGER_ENTRIES) if e["type"] == "EntryPosted") == \
        ["account:lianmeng-kuaiji", "accountant:lianmeng-kuaiji"]


def test_the_accounts_key_is_kept_in_the_data_dir(world: World, tmp_path: Path) -> None:
    path = key_file(world.settings.data_dir)
    assert path == world.settings.data_dir / "keys" / "accounts.key"
    assert path.stat().st_mode & 0o077 == 0
