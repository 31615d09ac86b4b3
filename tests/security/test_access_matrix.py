"""Access (DESIGN §8, §11): every endpoint of every service × the principals that must be refused.

No token or a bad one: 401. A valid token outside its role or scope: 403 — the accountant of
another village, the operator of another project, the board of another project, and the
auditor whenever it writes. The auditor reads everything. The same for people's sessions
(issue 19): a session of another village's accountant is refused as its token would be, and a
session that was signed out, whose account was disabled, or that never existed, is a 401. The
table of endpoints is checked against each app's routes, so an endpoint added later fails this
test until it is listed. Refused requests publish nothing (the services' topic end offsets do
not move).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import bearer, running
from flask.testing import FlaskClient
from kafka_helpers import read_records

from services.accounts.policy import AddressThrottle, Backoff, SignInPolicy
from services.contracts.topics import ACCOUNTS, DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, MEMBERS, RENTALS
from services.dividends.app import create_app as dividends_app
from services.ledger.app import create_app as ledger_app
from services.members.app import create_app as members_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import end_offsets
from services.runtime.service import NewEvent

pytestmark = pytest.mark.kafka

OUTSIDERS = ("accountant_other", "operator_other", "board_other", "session_other")
#: Sessions that are not (any more): signed out, of a disabled account, never started.
DEAD_SESSIONS = ("session_signed_out", "session_disabled", "session_bad")
PRINCIPALS = ("none", "bad", *OUTSIDERS, "auditor", *DEAD_SESSIONS)
TOPICS = [LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS, DIVIDENDS, MEMBERS]
PASSWORD = "acl-password-1"


@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    rule: str  # as Flask spells it, to match the app's url_map
    path: str  # with our village's / project's ids filled in
    body: dict[str, Any] | None = None
    #: outsiders answered 200 instead of 403: "filtered" (a list cut to their scope: none of our ids in
    #: it) or "directory" (shared registry facts every authenticated caller may read; docs/security.md)
    #: or "self" (what the caller is: every authenticated caller)
    open_to: tuple[tuple[str, str], ...] = ()
    #: no token needed (sign-in): a wrong password is a 401 for everyone
    public: bool = False
    #: acts on the caller's own account (sign out, password, own API tokens): a live session of another
    #: village is allowed it, so it is tried here only by the other principals (tests/unit/accounts)
    own: bool = False

    def outsider_view(self, who: str) -> str | None:
        return dict(self.open_to).get(who)

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "DELETE", "PATCH") and not self.rule.endswith("/preview")


@dataclass
class World:
    clients: dict[str, FlaskClient]
    #: the Authorization header of each principal
    tokens: dict[str, str | None]
    ids: dict[str, str]
    bootstrap: str


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), (response.status_code, response.get_json())
    body: dict[str, Any] = response.get_json()
    return body


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("access")
    tokens_file = root / "tokens.json"
    u = uuid.uuid4().hex[:6]
    ids = {"v": f"acl-v-{u}", "o": f"acl-o-{u}", "p": f"acl-p-{u}", "q": f"acl-q-{u}"}
    admin = add_token(tokens_file, name="admin", role="admin")
    tokens: dict[str, str | None] = {
        "none": None,
        "bad": "Bearer bt_" + "x" * 43,
        "accountant_other": "Bearer " + add_token(tokens_file, name="acc-o", role="accountant", scope=[ids["o"]]),
        "operator_other": "Bearer " + add_token(tokens_file, name="op-q", role="operator", scope=[ids["q"]]),
        "board_other": "Bearer " + add_token(tokens_file, name="board-q", role="board", scope=[ids["q"]]),
        "auditor": "Bearer " + add_token(tokens_file, name="auditor", role="auditor"),
        "session_bad": "Session " + "y" * 43,
        "admin": "Bearer " + admin,
    }

    def settings(name: str) -> Settings:
        return Settings(bootstrap_servers=kafka_bootstrap, data_dir=root / name, tokens_file=tokens_file,
                        request_timeout_s=15)

    with ExitStack() as stack:
        ledger = stack.enter_context(running(ledger_app, settings("ledger")))
        rentals = stack.enter_context(running(rentals_app, settings("rentals")))
        dividends = stack.enter_context(running(dividends_app, settings("dividends")))
        members = stack.enter_context(running(members_app, settings("members")))
        auth = bearer(admin)
        for village in (ids["v"], ids["o"]):
            _ok(ledger.post("/v1/collectives", headers=auth, json={"collective_id": village, "name": "村",
                                                                    "town": "金清镇"}))
        for project in (ids["p"], ids["q"]):
            _ok(ledger.post("/v1/projects", headers=auth, json={"project_id": project, "name": "园",
                                                                 "kind": "industrial_park", "town": "金清镇",
                                                                 "operator": "运营"}))
        _ok(ledger.post(f"/v1/projects/{ids['p']}/investments", headers=auth, json={
            "kind": "land", "investor_id": ids["v"], "area_mu": "10", "price_per_mu": "100000.00",
            "effective_on": "2026-01-01"}))
        ids["entry"] = _ok(ledger.post(f"/v1/collectives/{ids['v']}/entries", headers=auth, json={
            "date": "2026-01-10", "lines": [{"account": "102", "debit": "5.00"},
                                            {"account": "504", "credit": "5.00"}]}))["entry_id"]
        ids["building"] = _ok(rentals.post(f"/v1/projects/{ids['p']}/buildings", headers=auth,
                                           json={"name": "1号", "floor_area_m2": "100.00"}))["building_id"]
        ids["lease"] = _ok(rentals.post(f"/v1/projects/{ids['p']}/leases", headers=auth, json={
            "building_id": ids["building"], "tenant": {"name": "租户"}, "start_on": "2026-01-01",
            "end_on": "2027-01-01", "monthly_rent": "1000.00", "deposit": "0.00", "billing": "monthly"}))["lease_id"]
        _ok(rentals.post(f"/v1/leases/{ids['lease']}/payments", headers=auth,
                         json={"amount": "1000.00", "received_on": "2026-01-05"}))
        _ok(dividends.put(f"/v1/projects/{ids['p']}/policy", headers=auth, json={
            "management_fee_rate": "0.05", "tax_rate": "0.06", "payout_ratio": "0.90", "guaranteed_rate": "0"}))
        ids["distribution"] = _ok(dividends.post(f"/v1/projects/{ids['p']}/distributions", headers=auth, json={
            "period_start": "2026-01-01", "period_end": "2026-01-31"}))["distribution_id"]
        seed_members(ledger, members, auth, ids["v"])
        # People: the accountant of the other village signed in, and sessions that ended.
        # Every principal here signs in from 127.0.0.1: the address is not what is under test.
        policy = SignInPolicy(address=Backoff(slow_after=10_000, lock_after=20_000))
        ledger.application.extensions.update(baotuan_sign_in_policy=policy,
                                             baotuan_address_throttle=AddressThrottle(policy))
        for who, scope in [("session_other", ids["o"]), ("session_signed_out", ids["v"]),
                           ("session_disabled", ids["v"]), ("session_own", ids["v"])]:
            name = f"{who.replace('_', '-')}-{u}"
            ids[who] = name
            _ok(ledger.post("/v1/users", headers=auth, json={
                "name": name, "display_name": who, "role": "accountant", "scope": [scope], "password": PASSWORD,
                "must_change_password": False}))
            signed = _ok(ledger.post("/v1/sessions", json={"name": name, "password": PASSWORD}))
            tokens[who] = f"Session {signed['session']}"
        assert ledger.delete("/v1/sessions/current", headers={"Authorization": tokens["session_signed_out"]}) \
            .status_code == 204
        _ok(ledger.post(f"/v1/users/{ids['session_disabled']}/disable", headers=auth, json={}))
        wait_for_accounts(ledger, rentals, dividends, members)
        yield World({"ledger": ledger, "rentals": rentals, "dividends": dividends, "members": members}, tokens, ids,
                    kafka_bootstrap)


def seed_members(ledger: FlaskClient, members: FlaskClient, auth: dict[str, str], village: str) -> None:
    """The village's register and an approved plan of 2025. The year-end close of 2025 is written by the ledger's
    own runtime, as its close will post it (DESIGN §11: origin year_end_close, 321 into 322/undistributed)."""
    svc = ledger.application.extensions["baotuan_service"]
    with svc.writing():
        svc.publish([NewEvent("EntryPosted", village, {
            "entry_id": str(uuid.uuid4()), "collective_id": village, "date": "2025-12-31", "memo": "年终结转",
            "lines": [{"account": "321", "debit": "1000.00"}, {"account": "322/undistributed", "credit": "1000.00"}],
            "origin": {"kind": "year_end_close", "ref": "2025"}, "idempotency_key": None})], actor="system:test")
    _ok(members.put(f"/v1/collectives/{village}/charter", headers=auth, json={
        "share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"}], "shares_fixed_on": "2025-06-30",
        "adopted_on": "2025-01-01"}))
    for household in ("hu-1", "hu-2"):
        _ok(members.post(f"/v1/collectives/{village}/households", headers=auth, json={
            "household_id": household, "head_name": "张小明", "registered_on": "2025-01-01",
            "holdings": {"population": "2"}}))
    _ok(members.post(f"/v1/collectives/{village}/plans", headers=auth, json={
        "year": 2025, "reserve_rate": "0.10", "members_total": "800.00", "record_date": "2026-03-31"}))
    _ok(members.post(f"/v1/collectives/{village}/plans/plan-2025/approve", headers=auth, json={"vote": {
        "body": "members", "meeting_on": "2026-04-10", "entitled": 3, "present": 3, "for": 2, "against": 1,
        "abstain": 0}}))


def wait_for_accounts(*clients: FlaskClient) -> None:
    """Every service has folded the accounts topic as far as the ledger wrote it."""
    for client in clients:
        client.application.extensions["baotuan_service"].sync([ACCOUNTS])


EVERYONE_DIRECTORY = tuple((who, "directory") for who in OUTSIDERS)
EVERYONE_SELF = tuple((who, "self") for who in OUTSIDERS)


def endpoints(ids: dict[str, str]) -> list[Endpoint]:
    v, p, e, lease, d = ids["v"], ids["p"], ids["entry"], ids["lease"], ids["distribution"]
    entry = {"date": "2026-02-01", "lines": [{"account": "102", "debit": "1.00"}, {"account": "504", "credit": "1.00"}]}
    period = {"period_start": "2026-02-01", "period_end": "2026-02-28"}
    return [
        # ledger: the registry (admin registers; accountants record their own village's investments)
        Endpoint("ledger", "POST", "/v1/collectives", "/v1/collectives",
                 {"collective_id": f"{v}-new", "name": "新村", "town": "金清镇"}),
        Endpoint("ledger", "GET", "/v1/collectives", "/v1/collectives", open_to=EVERYONE_DIRECTORY),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>", f"/v1/collectives/{v}",
                 open_to=EVERYONE_DIRECTORY),
        Endpoint("ledger", "POST", "/v1/investors", "/v1/investors",
                 {"investor_id": f"{v}-inv", "name": "国资公司", "investor_type": "company"}),
        Endpoint("ledger", "GET", "/v1/investors", "/v1/investors", open_to=EVERYONE_DIRECTORY),
        Endpoint("ledger", "POST", "/v1/projects", "/v1/projects",
                 {"project_id": f"{p}-new", "name": "园", "kind": "market", "town": "金清镇", "operator": "运营"}),
        Endpoint("ledger", "GET", "/v1/projects", "/v1/projects", open_to=EVERYONE_DIRECTORY),
        Endpoint("ledger", "GET", "/v1/projects/<project_id>", f"/v1/projects/{p}", open_to=EVERYONE_DIRECTORY),
        Endpoint("ledger", "POST", "/v1/projects/<project_id>/investments", f"/v1/projects/{p}/investments",
                 {"kind": "cash", "investor_id": v, "amount": "100.00", "effective_on": "2026-01-02"}),
        Endpoint("ledger", "POST", "/v1/projects/<project_id>/withdrawals", f"/v1/projects/{p}/withdrawals",
                 {"investor_id": v, "amount": "1.00", "effective_on": "2026-06-01", "reason": "测试"}),
        Endpoint("ledger", "GET", "/v1/projects/<project_id>/register", f"/v1/projects/{p}/register",
                 open_to=EVERYONE_DIRECTORY),
        # ledger: the books
        Endpoint("ledger", "POST", "/v1/collectives/<collective_id>/entries", f"/v1/collectives/{v}/entries", entry),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/entries", f"/v1/collectives/{v}/entries"),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/entries/<entry_id>",
                 f"/v1/collectives/{v}/entries/{e}"),
        Endpoint("ledger", "POST", "/v1/collectives/<collective_id>/entries/<entry_id>/reverse",
                 f"/v1/collectives/{v}/entries/{e}/reverse", {"date": "2026-02-02", "reason": "错账"}),
        Endpoint("ledger", "POST", "/v1/entries/batch", "/v1/entries/batch",
                 {"entries": [{**entry, "collective_id": v}]}),
        Endpoint("ledger", "POST", "/v1/collectives/<collective_id>/periods", f"/v1/collectives/{v}/periods",
                 {"period": "2025-12"}),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/periods", f"/v1/collectives/{v}/periods"),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/trial-balance",
                 f"/v1/collectives/{v}/trial-balance"),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/balance-sheet",
                 f"/v1/collectives/{v}/balance-sheet?year=2026"),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/income-statement",
                 f"/v1/collectives/{v}/income-statement?year=2026"),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/account-balances",
                 f"/v1/collectives/{v}/account-balances?from=2026-01&to=2026-02"),
        Endpoint("ledger", "POST", "/v1/collectives/<collective_id>/year-end-close",
                 f"/v1/collectives/{v}/year-end-close", {"year": 2024}),
        Endpoint("ledger", "GET", "/v1/collectives/<collective_id>/year-end-close/<int:year>",
                 f"/v1/collectives/{v}/year-end-close/2025"),
        Endpoint("ledger", "GET", "/v1/reports/village-income", "/v1/reports/village-income?year=2026",
                 open_to=EVERYONE_DIRECTORY),
        Endpoint("ledger", "GET", "/v1/accounts", "/v1/accounts", open_to=EVERYONE_DIRECTORY),
        # ledger: people's accounts (issue 19)
        Endpoint("ledger", "POST", "/v1/sessions", "/v1/sessions",
                 {"name": "nobody-signs-in-here", "password": "not-a-password"}, public=True),
        Endpoint("ledger", "DELETE", "/v1/sessions/current", "/v1/sessions/current", own=True),
        Endpoint("ledger", "GET", "/v1/users/me", "/v1/users/me", open_to=EVERYONE_SELF),
        Endpoint("ledger", "PUT", "/v1/users/me/password", "/v1/users/me/password",
                 {"current_password": "not-the-password", "new_password": "another-password-1"}, own=True),
        Endpoint("ledger", "GET", "/v1/users/me/tokens", "/v1/users/me/tokens", open_to=EVERYONE_SELF),
        Endpoint("ledger", "POST", "/v1/users/me/tokens", "/v1/users/me/tokens",
                 {"label": "x", "expires_on": "2099-01-01"}, own=True),
        Endpoint("ledger", "DELETE", "/v1/users/me/tokens/<token_id>", "/v1/users/me/tokens/tok-000000000000",
                 own=True),
        Endpoint("ledger", "GET", "/v1/users", "/v1/users"),
        Endpoint("ledger", "POST", "/v1/users", "/v1/users",
                 {"name": f"{v}-new-user", "display_name": "新", "role": "accountant", "scope": [v]}),
        Endpoint("ledger", "GET", "/v1/users/<name>", f"/v1/users/{ids['session_own']}"),
        Endpoint("ledger", "PATCH", "/v1/users/<name>", f"/v1/users/{ids['session_own']}", {"display_name": "改"}),
        Endpoint("ledger", "POST", "/v1/users/<name>/password-reset", f"/v1/users/{ids['session_own']}/password-reset"),
        Endpoint("ledger", "POST", "/v1/users/<name>/disable", f"/v1/users/{ids['session_own']}/disable", {}),
        Endpoint("ledger", "POST", "/v1/users/<name>/enable", f"/v1/users/{ids['session_disabled']}/enable", {}),
        Endpoint("ledger", "GET", "/v1/sign-ins", "/v1/sign-ins"),
        # rentals (operators of the project write; boards and auditors read)
        Endpoint("rentals", "POST", "/v1/projects/<project_id>/buildings", f"/v1/projects/{p}/buildings",
                 {"name": "2号", "floor_area_m2": "100.00"}),
        Endpoint("rentals", "GET", "/v1/projects/<project_id>/buildings", f"/v1/projects/{p}/buildings"),
        Endpoint("rentals", "POST", "/v1/projects/<project_id>/leases", f"/v1/projects/{p}/leases",
                 {"building_id": ids["building"], "tenant": {"name": "租户"}, "start_on": "2027-01-01",
                  "end_on": "2028-01-01", "monthly_rent": "1000.00", "deposit": "0.00", "billing": "monthly"}),
        Endpoint("rentals", "GET", "/v1/projects/<project_id>/leases", f"/v1/projects/{p}/leases"),
        Endpoint("rentals", "GET", "/v1/leases/<lease_id>", f"/v1/leases/{lease}"),
        Endpoint("rentals", "POST", "/v1/leases/<lease_id>/terminate", f"/v1/leases/{lease}/terminate",
                 {"end_on": "2026-12-01", "reason": "退租"}),
        Endpoint("rentals", "POST", "/v1/leases/<lease_id>/invoices", f"/v1/leases/{lease}/invoices",
                 {"up_to": "2026-02-01"}),
        Endpoint("rentals", "POST", "/v1/leases/<lease_id>/payments", f"/v1/leases/{lease}/payments",
                 {"amount": "1.00", "received_on": "2026-01-06"}),
        Endpoint("rentals", "POST", "/v1/projects/<project_id>/expenses", f"/v1/projects/{p}/expenses",
                 {"category": "repairs", "amount": "1.00", "incurred_on": "2026-01-05", "memo": "修"}),
        Endpoint("rentals", "GET", "/v1/projects/<project_id>/expenses", f"/v1/projects/{p}/expenses"),
        Endpoint("rentals", "GET", "/v1/projects/<project_id>/rent-roll", f"/v1/projects/{p}/rent-roll"),
        Endpoint("rentals", "GET", "/v1/projects/<project_id>/occupancy", f"/v1/projects/{p}/occupancy"),
        Endpoint("rentals", "GET", "/v1/projects/<project_id>/arrears", f"/v1/projects/{p}/arrears"),
        Endpoint("rentals", "GET", "/v1/projects/<project_id>/income", f"/v1/projects/{p}/income"),
        # dividends (boards of the project declare, approve, pay; auditors read)
        Endpoint("dividends", "PUT", "/v1/projects/<project_id>/policy", f"/v1/projects/{p}/policy",
                 {"management_fee_rate": "0.05", "tax_rate": "0.06", "payout_ratio": "0.80", "guaranteed_rate": "0"}),
        Endpoint("dividends", "GET", "/v1/projects/<project_id>/policy", f"/v1/projects/{p}/policy"),
        Endpoint("dividends", "POST", "/v1/projects/<project_id>/distributions/preview",
                 f"/v1/projects/{p}/distributions/preview", period),
        Endpoint("dividends", "POST", "/v1/projects/<project_id>/distributions", f"/v1/projects/{p}/distributions",
                 period),
        Endpoint("dividends", "GET", "/v1/projects/<project_id>/distributions", f"/v1/projects/{p}/distributions"),
        Endpoint("dividends", "GET", "/v1/distributions/<distribution_id>", f"/v1/distributions/{d}"),
        Endpoint("dividends", "POST", "/v1/distributions/<distribution_id>/approve",
                 f"/v1/distributions/{d}/approve", {}),
        Endpoint("dividends", "POST", "/v1/distributions/<distribution_id>/cancel",
                 f"/v1/distributions/{d}/cancel", {"reason": "重算"}),
        Endpoint("dividends", "POST", "/v1/distributions/<distribution_id>/payments",
                 f"/v1/distributions/{d}/payments",
                 {"investor_id": v, "amount": "1.00", "paid_on": "2026-02-05", "bank_reference": "TX1"}),
        Endpoint("dividends", "GET", "/v1/investors/<investor_id>/dividends", f"/v1/investors/{v}/dividends",
                 open_to=(("board_other", "filtered"),)),
        Endpoint("dividends", "GET", "/v1/allocations/unpaid", "/v1/allocations/unpaid",
                 open_to=(("board_other", "filtered"),)),
        # members (the village's accountants write, its boards approve; auditors read)
        *members_endpoints(v),
    ]


def members_endpoints(v: str) -> list[Endpoint]:
    c, h, plan = "/v1/collectives/<collective_id>", "/households/<household_id>", "/plans/<plan_id>"
    at = f"/v1/collectives/{v}"
    kinds = [{"kind": "population", "name": "人口股", "weight": "1"}]
    figures = {"year": 2025, "reserve_rate": "0.10", "members_total": "1.00", "record_date": "2026-03-31"}
    return [
        Endpoint("members", "PUT", f"{c}/charter", f"{at}/charter",
                 {"share_kinds": kinds, "shares_fixed_on": "2025-06-30", "adopted_on": "2025-02-01"}),
        Endpoint("members", "GET", f"{c}/charter", f"{at}/charter"),
        Endpoint("members", "POST", f"{c}/households", f"{at}/households",
                 {"household_id": "hu-9", "head_name": "王五", "registered_on": "2025-01-01"}),
        Endpoint("members", "GET", f"{c}/households", f"{at}/households"),
        Endpoint("members", "GET", f"{c}{h}", f"{at}/households/hu-1"),
        Endpoint("members", "POST", f"{c}{h}/members", f"{at}/households/hu-1/members", {"name": "李红"}),
        Endpoint("members", "PUT", f"{c}{h}/holdings", f"{at}/households/hu-1/holdings",
                 {"holdings": {"population": "3"}, "effective_on": "2025-02-01"}),
        Endpoint("members", "POST", f"{c}/share-transfers", f"{at}/share-transfers",
                 {"from_household": "hu-1", "to_household": "hu-2", "kind": "population", "shares": "1",
                  "effective_on": "2026-05-01", "reason": "gift"}),
        Endpoint("members", "POST", f"{c}{h}/certificates", f"{at}/households/hu-1/certificates",
                 {"issued_on": "2025-07-01"}),
        Endpoint("members", "POST", f"{c}/plans/preview", f"{at}/plans/preview", figures),
        Endpoint("members", "POST", f"{c}/plans", f"{at}/plans", {**figures, "year": 2026,
                                                                  "record_date": "2027-03-31"}),
        Endpoint("members", "GET", f"{c}/plans", f"{at}/plans"),
        Endpoint("members", "GET", f"{c}{plan}", f"{at}/plans/plan-2025"),
        Endpoint("members", "POST", f"{c}{plan}/approve", f"{at}/plans/plan-2025/approve", {"vote": {
            "body": "members", "meeting_on": "2026-04-10", "entitled": 3, "present": 3, "for": 3, "against": 0,
            "abstain": 0}}),
        Endpoint("members", "POST", f"{c}{plan}/cancel", f"{at}/plans/plan-2025/cancel", {"reason": "重算"}),
        Endpoint("members", "POST", f"{c}{plan}/payments", f"{at}/plans/plan-2025/payments",
                 {"household_id": "hu-1", "amount": "400.00", "paid_on": "2026-04-20", "bank_reference": "TX1"}),
        Endpoint("members", "GET", f"{c}{plan}/notice", f"{at}/plans/plan-2025/notice"),
    ]


def expected(endpoint: Endpoint, who: str) -> int:
    if endpoint.public or who in ("none", "bad", *DEAD_SESSIONS):
        return 401
    if who == "auditor":
        return 403 if endpoint.writes else 200
    return 200 if endpoint.outsider_view(who) and not endpoint.writes else 403


def _call(client: FlaskClient, endpoint: Endpoint, authorization: str | None) -> tuple[int, Any]:
    headers = {"Authorization": authorization} if authorization else {}
    if endpoint.writes:
        headers["Idempotency-Key"] = f"acl-{uuid.uuid4().hex}"
    response = client.open(endpoint.path, method=endpoint.method, headers=headers,
                            data=None if endpoint.body is None else json.dumps(endpoint.body),
                            content_type="application/json" if endpoint.body is not None else None)
    return response.status_code, response.get_json(silent=True)


def test_the_matrix_lists_every_endpoint_of_every_service(world: World) -> None:
    listed = {(e.service, e.method, e.rule) for e in endpoints(world.ids)}
    served = set()
    for name, client in world.clients.items():
        for rule in client.application.url_map.iter_rules():
            if rule.rule.startswith("/v1/"):
                served |= {(name, m, rule.rule) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert served - listed == set(), "endpoints missing from the access matrix"
    assert listed - served == set(), "the matrix lists endpoints no service serves"


@pytest.mark.parametrize("who", PRINCIPALS)
def test_every_endpoint_refuses_what_this_principal_may_not_do(world: World, who: str) -> None:
    wrong = []
    for endpoint in endpoints(world.ids):
        if endpoint.own and who == "session_other":
            continue  # its own account: allowed (tests/unit/accounts/test_accounts_api.py)
        status, body = _call(world.clients[endpoint.service], endpoint, world.tokens[who])
        if endpoint.rule == "/v1/entries/batch" and status == 200 and who in OUTSIDERS:
            # a batch answers per entry: every entry refused, none posted
            status = 403 if {r["status"] for r in body["results"]} == {403} else 200
        want = expected(endpoint, who)
        if status == want == 200 and endpoint.outsider_view(who) == "filtered":
            text = json.dumps(body, ensure_ascii=False)
            leaked = [i for i in (world.ids["v"], world.ids["p"]) if i in text.replace(endpoint.path, "")]
            if leaked:
                wrong.append(f"{endpoint.method} {endpoint.path} as {who}: shows {leaked} outside its scope")
        if status != want:
            wrong.append(f"{endpoint.method} {endpoint.path} as {who}: {status} (expected {want}) "
                         f"{json.dumps(body, ensure_ascii=False)[:200]}")
        elif want in (401, 403) and endpoint.rule != "/v1/entries/batch":
            error = (body or {}).get("error", {})
            if (error.get("status"), error.get("code")) != (want, {401: "unauthenticated", 403: "forbidden"}[want]):
                wrong.append(f"{endpoint.method} {endpoint.path} as {who}: not the standard error body: {body}")
    assert wrong == [], "\n".join(wrong)


def test_a_refused_request_publishes_nothing(world: World) -> None:
    # The session broker is shared, so compare only this module's subjects: nothing new for them.
    for client in world.clients.values():  # derived entries of the seeding are out of the way
        svc = client.application.extensions["baotuan_service"]
        deadline = time.monotonic() + 15
        while svc.pending_derived() and time.monotonic() < deadline:
            time.sleep(0.05)
    before = end_offsets(world.bootstrap, TOPICS)
    for who in PRINCIPALS:
        for endpoint in endpoints(world.ids):
            if endpoint.writes and not (endpoint.own and who == "session_other"):
                _call(world.clients[endpoint.service], endpoint, world.tokens[who])
    ours = {world.ids["v"], world.ids["o"], world.ids["p"], world.ids["q"]}
    for record in read_records(world.bootstrap, TOPICS, since=before):
        assert (record.key or b"").decode() not in ours, (record.topic, record.value[:200])


def test_tokens_are_stored_only_as_hashes(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    secret = add_token(tokens_file, name="village-accountant", role="accountant", scope=["lianmeng"])
    stored = tokens_file.read_text(encoding="utf-8")
    assert secret not in stored
    [entry] = json.loads(stored)["tokens"]
    assert set(entry) == {"name", "sha256", "role", "scope"}
    assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
    assert tokens_file.stat().st_mode & 0o077 == 0  # readable by its owner only


@pytest.mark.parametrize("service", [
    "ledger",
    "rentals",
    "dividends",
    "members",
])
def test_a_caller_without_a_token_is_refused_before_its_body_is_even_read(world: World, service: str) -> None:
    answers = {}
    for endpoint in endpoints(world.ids):
        if endpoint.service == service and endpoint.writes and not endpoint.public:
            status, _body = _call(world.clients[service], Endpoint(**{**endpoint.__dict__, "body": {"bogus": 1}}),
                                  None)
            answers[f"{endpoint.method} {endpoint.rule}"] = status
    assert set(answers.values()) == {401}, answers


def test_a_session_reads_and_writes_its_own_village_as_its_account(world: World) -> None:
    """The control of the sessions' rows above: the same requests in the session's own scope pass."""
    own = {"Authorization": world.tokens["session_own"], "Idempotency-Key": f"acl-{uuid.uuid4().hex}"}
    ledger, rentals = world.clients["ledger"], world.clients["rentals"]
    v, p = world.ids["v"], world.ids["p"]
    assert ledger.get(f"/v1/collectives/{v}/trial-balance", headers=own).status_code == 200
    posted = ledger.post(f"/v1/collectives/{v}/entries", headers=own, json={
        "date": "2026-02-03", "lines": [{"account": "102", "debit": "2.00"}, {"account": "504", "credit": "2.00"}]})
    assert posted.status_code == 201, posted.get_json()
    [record] = [r for r in read_records(world.bootstrap, LEDGER_ENTRIES, key=v)
                if json.loads(r.value)["data"].get("entry_id") == posted.get_json()["entry_id"]]
    assert json.loads(record.value)["actor"] == f"account:{world.ids['session_own']}"
    # ... and nothing of a project: an accountant's session has the accountant's rights, no more.
    assert rentals.get(f"/v1/projects/{p}/buildings", headers=own).status_code == 403
    other = ledger.get(f"/v1/collectives/{world.ids['o']}/entries", headers=own)
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "forbidden"
