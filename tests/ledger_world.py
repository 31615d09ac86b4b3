"""The ledger's HTTP API as tests drive it: a World of one running ledger service (on the in-memory log
or on a broker), and the table of bad input it must refuse naming the field, publishing nothing.

Not a test module (pytest does not collect it); test modules import it by name, as they do
``conftest``. tests/unit/ledger/test_ledger_http.py runs everything on the in-memory log;
tests/integration/ledger/test_ledger_api.py runs what is about the broker on Kafka.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from conftest import bearer, kept_token, without_receipts
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from services.contracts.topics import LEDGER_ENTRIES, LEDGER_INVESTMENTS
from services.runtime.config import Settings
from services.runtime.service import EventService

OWN_TOPICS = [LEDGER_ENTRIES, LEDGER_INVESTMENTS]


@dataclass
class World:
    settings: Settings
    client: FlaskClient
    service: EventService
    u: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def village(self) -> str:
        return f"lg-{self.u}-lianmeng"

    @property
    def neighbour(self) -> str:
        return f"lg-{self.u}-shangtang"

    @property
    def park(self) -> str:
        return f"lg-{self.u}-park"

    @property
    def company(self) -> str:
        return f"lg-{self.u}-soe"

    @property
    def town(self) -> str:
        return f"测试镇{self.u}"

    @property
    def alliance(self) -> str:
        return f"共富联盟{self.u}"

    def token(self, role: str, *scope: str) -> str:
        return kept_token(self.settings, self.tokens, role, *scope)

    def headers(self, role: str = "admin", **extra: str) -> dict[str, str]:
        """Headers of a caller: admin, the village's accountant, another village's, auditor, operator, none."""
        tokens = {"admin": lambda: self.token("admin"),
                  "accountant": lambda: self.token("accountant", self.village),
                  "other-accountant": lambda: self.token("accountant", self.neighbour),
                  "auditor": lambda: self.token("auditor"),
                  "operator": lambda: self.token("operator", self.park),
                  "operator-of-village": lambda: self.token("operator", self.village),
                  "board-of-village": lambda: self.token("board", self.village)}
        if role == "none":
            return dict(extra)
        return dict(bearer(tokens[role](), **extra))

    def post(self, path: str, body: Any, role: str = "admin", **headers: str) -> TestResponse:
        return self.client.post(path, json=body, headers=self.headers(role, **headers))

    def get(self, path: str, role: str = "admin") -> TestResponse:
        return self.client.get(path, headers=self.headers(role))

    def created(self, path: str, body: Any, role: str = "admin", **headers: str) -> dict[str, Any]:
        response = self.post(path, body, role, **headers)
        assert response.status_code == 201, response.get_json()
        return dict(without_receipts(response.get_json()))

    def ok(self, path: str, role: str = "admin") -> dict[str, Any]:
        response = self.get(path, role)
        assert response.status_code == 200, response.get_json()
        return dict(response.get_json())

    def post_entry(self, collective_id: str, day: str, *lines: tuple[str, str, str], memo: str = "",
                   role: str = "admin") -> dict[str, Any]:
        body = {"date": day, "memo": memo, "lines": [{"account": a, side: amount} for a, side, amount in lines]}
        return self.created(f"/v1/collectives/{collective_id}/entries", body, role)

    def balances(self, collective_id: str, as_of: str) -> dict[str, str]:
        tb = self.ok(f"/v1/collectives/{collective_id}/trial-balance?as_of={as_of}")
        return {row["code"]: row["balance"] for row in tb["accounts"]}

    def offsets(self) -> dict[tuple[str, int], int]:
        """End offsets of the ledger's topics as the log (the broker, or the in-memory log) has them,
        once the reactor owes nothing."""
        deadline = time.monotonic() + 10
        while self.service.pending_derived() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.service.log.end_offsets(OWN_TOPICS, 10)


def collective_body(collective_id: str, town: str, *alliances: str, **extra: Any) -> dict[str, Any]:
    return {"collective_id": collective_id, "name": "联盟村股份经济合作社", "town": town,
            "alliances": list(alliances), **extra}


def open_world(settings: Settings, client: FlaskClient) -> World:
    """The World of a running ledger app: two villages of one town and alliance, a company, a park, and
    the village's January 2020 closed. Every id carries a suffix of this run (a broker may be shared)."""
    w = World(settings, client, client.application.extensions["baotuan_service"], uuid.uuid4().hex[:8])
    w.created("/v1/collectives", collective_body(w.village, w.town, w.alliance))
    w.created("/v1/collectives", collective_body(w.neighbour, w.town, w.alliance) | {"name": "上塘村"})
    w.created("/v1/investors", {"investor_id": w.company, "name": "路桥区国有资产投资集团",
                                "investor_type": "company"})
    w.created("/v1/projects", {"project_id": w.park, "name": "路桥滨海产业园", "kind": "industrial_park",
                               "town": w.town, "operator": "路桥滨海产业园运营有限公司"})
    w.created(f"/v1/collectives/{w.village}/periods", {"period": "2020-01"})
    return w


# -- bad input: a 4xx naming the field, and nothing published ------------------------------------------------

LINES = [{"account": "102", "debit": "100.00"}, {"account": "503", "credit": "100.00"}]


def entry(**overrides: Any) -> dict[str, Any]:
    return {"date": "2026-03-15", "memo": "测试", "lines": LINES, **overrides}


def lines(first: dict[str, Any], second: dict[str, Any] | None = None) -> dict[str, Any]:
    return entry(lines=[first, second or {"account": "503", "credit": "100.00"}])


ENTRIES = "/v1/collectives/{village}/entries"
INVEST = "/v1/projects/{park}/investments"
LAND = {"kind": "land", "investor_id": "{village}", "area_mu": "1.0000", "price_per_mu": "1000.00",
        "effective_on": "2026-03-01"}
CASH = {"kind": "cash", "investor_id": "{village}", "amount": "1000.00", "effective_on": "2026-03-01"}

BAD_INPUTS: list[tuple[str, str, str, Any, str, int, str]] = [
    # (case, method, path, body, role, status, field)
    ("malformed JSON", "POST", ENTRIES, b'{"date": "2026-03-15", "lines": [', "accountant", 400, "body"),
    ("unknown field", "POST", ENTRIES, entry(colour="red"), "accountant", 422, "colour"),
    ("unknown field in a line", "POST", ENTRIES, lines({"account": "102", "debit": "100.00", "note": "x"}),
     "accountant", 422, "lines.0.note"),
    ("float amount", "POST", ENTRIES, lines({"account": "102", "debit": 100.0}), "accountant", 422, "lines.0.debit"),
    ("integer amount", "POST", ENTRIES, lines({"account": "102", "debit": 100}), "accountant", 422, "lines.0.debit"),
    ("three decimals", "POST", ENTRIES, lines({"account": "102", "debit": "100.005"}), "accountant", 422,
     "lines.0.debit"),
    ("no decimals", "POST", ENTRIES, lines({"account": "102", "debit": "100"}), "accountant", 422, "lines.0.debit"),
    ("negative", "POST", ENTRIES, lines({"account": "102", "debit": "-100.00"}), "accountant", 422, "lines.0.debit"),
    ("zero", "POST", ENTRIES, lines({"account": "102", "debit": "0.00"}), "accountant", 422, "lines.0.debit"),
    # Bounds (issue 13.2): no amount beyond 999999999999.99, and nothing computed from one either.
    ("100 lines beyond the largest amount", "POST", ENTRIES,
     entry(lines=[{"account": "102", "debit": "999999999999999.99"}] * 50
           + [{"account": "503", "credit": "999999999999999.99"}] * 50), "accountant", 422, "lines.0.debit"),
    ("a line one fen beyond the largest amount", "POST", ENTRIES,
     lines({"account": "102", "debit": "1000000000000.00"}, {"account": "503", "credit": "1000000000000.00"}),
     "accountant", 422, "lines.0.debit"),
    ("land valued beyond the largest amount", "POST", INVEST, {**LAND, "area_mu": "1.0001",
                                                               "price_per_mu": "999999999999.99"}, "admin", 422,
     "area_mu"),
    ("price per mu beyond the largest amount", "POST", INVEST, {**LAND, "price_per_mu": "1000000000000.00"}, "admin",
     422, "price_per_mu"),
    ("cash beyond the largest amount", "POST", INVEST, {**CASH, "amount": "1000000000000.00"}, "admin", 422,
     "amount"),
    ("debit and credit on one line", "POST", ENTRIES, lines({"account": "102", "debit": "1.00", "credit": "1.00"}),
     "accountant", 422, "lines.0.debit"),
    ("missing lines", "POST", ENTRIES, {"date": "2026-03-15"}, "accountant", 422, "lines"),
    ("a single line", "POST", ENTRIES, entry(lines=LINES[:1]), "accountant", 422, "lines"),
    ("unbalanced", "POST", ENTRIES, lines({"account": "102", "debit": "100.01"}), "accountant", 422, "lines"),
    ("unknown account", "POST", ENTRIES, lines({"account": "102", "debit": "100.00"},
                                               {"account": "999", "credit": "100.00"}), "accountant", 422,
     "lines.1.account"),
    ("badly written sub-account", "POST", ENTRIES, lines({"account": "141/Binhai Park", "debit": "100.00"}),
     "accountant", 422, "lines.0.account"),
    ("impossible date", "POST", ENTRIES, entry(date="2026-02-30"), "accountant", 422, "date"),
    ("missing date", "POST", ENTRIES, {"lines": LINES}, "accountant", 422, "date"),
    ("closed period", "POST", ENTRIES, entry(date="2020-01-15"), "accountant", 422, "date"),
    ("memo too long", "POST", ENTRIES, entry(memo="记" * 501), "accountant", 422, "memo"),
    ("unknown collective", "POST", "/v1/collectives/lg-{u}-nowhere/entries", entry(), "admin", 404,
     "collective_id"),
    ("auditor writes", "POST", ENTRIES, entry(), "auditor", 403, "Authorization"),
    ("auditor sends malformed JSON", "POST", ENTRIES, b"{", "auditor", 403, "Authorization"),
    ("operator writes", "POST", ENTRIES, entry(), "operator", 403, "Authorization"),
    ("other village's token", "POST", ENTRIES, entry(), "other-accountant", 403, "Authorization"),
    ("no token", "POST", ENTRIES, entry(), "none", 401, "Authorization"),
    ("oversized body", "POST", ENTRIES, entry(memo="记" * 600_000), "accountant", 413, "body"),
    ("unknown entry reversed", "POST", ENTRIES + "/00000000-0000-4000-8000-000000000000/reverse",
     {"date": "2026-03-15", "reason": "x"}, "accountant", 404, "entry_id"),
    ("badly written period", "POST", "/v1/collectives/{village}/periods", {"period": "2026-13"}, "accountant", 422,
     "period"),
    ("batch that is not a list", "POST", "/v1/entries/batch", {"entries": {"0": entry()}}, "accountant", 422,
     "entries"),
    ("empty batch", "POST", "/v1/entries/batch", {"entries": []}, "accountant", 422, "entries"),
    ("unknown project", "POST", "/v1/projects/lg-{u}-nowhere/investments", LAND, "admin", 404, "project_id"),
    ("unknown investor", "POST", INVEST, {**LAND, "investor_id": "lg-{u}-stranger"}, "admin", 422, "investor_id"),
    ("land without a price", "POST", INVEST, {k: v for k, v in LAND.items() if k != "price_per_mu"}, "admin", 422,
     "price_per_mu"),
    ("area with five decimals", "POST", INVEST, {**LAND, "area_mu": "1.00001"}, "admin", 422, "area_mu"),
    ("float price", "POST", INVEST, {**LAND, "price_per_mu": 1000.0}, "admin", 422, "price_per_mu"),
    ("cash with an area", "POST", INVEST, {**CASH, "area_mu": "1.0000"}, "admin", 422, "area_mu"),
    ("cash without an amount", "POST", INVEST, {k: v for k, v in CASH.items() if k != "amount"}, "admin", 422,
     "amount"),
    ("unknown kind", "POST", INVEST, {**CASH, "kind": "bond"}, "admin", 422, "kind"),
    ("investor type contradicting the registry", "POST", INVEST, {**CASH, "investor_type": "company"}, "admin", 422,
     "investor_type"),
    ("investment dated in a closed period", "POST", INVEST, {**CASH, "effective_on": "2020-01-10"}, "admin", 422,
     "effective_on"),
    ("another village's investment", "POST", INVEST, CASH, "other-accountant", 403, "Authorization"),
    ("a company's investment by an accountant", "POST", INVEST, {**CASH, "investor_id": "{company}"}, "accountant",
     403, "Authorization"),
    ("withdrawal beyond the capital", "POST", "/v1/projects/{park}/withdrawals",
     {"investor_id": "{village}", "amount": "0.01", "effective_on": "2026-03-01", "reason": "x"}, "admin", 422,
     "amount"),
    ("bad unified social credit code", "POST", "/v1/collectives",
     collective_body("lg-{u}-bad-uscc", "镇", uscc="91350100M000100Y44"), "admin", 422, "uscc"),
    ("upper-case id", "POST", "/v1/collectives", collective_body("LG-{u}", "镇"), "admin", 422, "collective_id"),
    ("duplicate collective", "POST", "/v1/collectives", collective_body("{village}", "镇"), "admin", 409,
     "collective_id"),
    ("accountant registers a collective", "POST", "/v1/collectives", collective_body("lg-{u}-x", "镇"),
     "accountant", 403, "Authorization"),
    ("investor registered as a collective", "POST", "/v1/investors",
     {"investor_id": "lg-{u}-inv", "name": "某公司", "investor_type": "collective"}, "admin", 422, "investor_type"),
    ("duplicate project", "POST", "/v1/projects", {"project_id": "{park}", "name": "x", "kind": "other",
                                                   "town": "镇", "operator": "y"}, "admin", 409, "project_id"),
    ("trial balance on an impossible date", "GET", "/v1/collectives/{village}/trial-balance?as_of=2026-13-01",
     None, "accountant", 422, "as_of"),
    ("balance sheet without a year", "GET", "/v1/collectives/{village}/balance-sheet", None, "accountant", 422,
     "year"),
    # Ids, periods, dates and accounts match over the whole string: no trailing newline, no look-alike digits.
    ("collective id with a trailing newline", "POST", "/v1/collectives", collective_body("{village}\n", "镇"),
     "admin", 422, "collective_id"),
    ("project id with a trailing newline", "POST", "/v1/projects",
     {"project_id": "lg-{u}-nl\n", "name": "x", "kind": "other", "town": "镇", "operator": "y"}, "admin", 422,
     "project_id"),
    ("investor id with a trailing newline", "POST", INVEST, {**CASH, "investor_id": "{village}\n"}, "admin", 422,
     "investor_id"),
    ("period with a trailing newline", "POST", "/v1/collectives/{village}/periods", {"period": "2026-03\n"},
     "accountant", 422, "period"),
    ("period in full-width digits", "POST", "/v1/collectives/{village}/periods", {"period": "２０２６-03"},
     "accountant", 422, "period"),
    ("date with a trailing newline", "POST", ENTRIES, entry(date="2026-03-15\n"), "accountant", 422, "date"),
    ("date in Arabic-Indic digits", "POST", ENTRIES, entry(date="٢٠٢٦-03-15"), "accountant", 422, "date"),
    ("account with a trailing newline", "POST", ENTRIES, lines({"account": "102\n", "debit": "100.00"}),
     "accountant", 422, "lines.0.account"),
    ("sub-account with a trailing newline", "POST", ENTRIES, lines({"account": "141/{park}\n", "debit": "100.00"}),
     "accountant", 422, "lines.0.account"),
    ("collective id in the URL with a trailing newline", "POST", "/v1/collectives/{village}%0A/entries", entry(),
     "admin", 404, "collective_id"),
    ("collective id in the URL with a trailing space", "GET", "/v1/collectives/{village}%20/entries", None,
     "admin", 404, "collective_id"),
    # A lone UTF-16 surrogate is not text: 422 naming the field, wherever it is.
    ("lone surrogate in a memo", "POST", ENTRIES, entry(memo="备注\ud800"), "accountant", 422, "memo"),
    ("lone surrogate in a collective's name", "POST", "/v1/collectives",
     collective_body("lg-{u}-sur", "镇") | {"name": "\udfff村"}, "admin", 422, "name"),
    ("lone surrogate in an alliance", "POST", "/v1/collectives", collective_body("lg-{u}-sur", "镇", "联盟\ud83d"),
     "admin", 422, "alliances.0"),
    ("lone surrogate in a reversal's reason", "POST", ENTRIES + "/00000000-0000-4000-8000-000000000000/reverse",
     {"date": "2026-03-15", "reason": "错\udc00"}, "accountant", 422, "reason"),
    ("lone surrogate in a batch entry", "POST", "/v1/entries/batch",
     {"entries": [{**entry(), "collective_id": "{village}", "memo": "\ud800"}]}, "accountant", 422,
     "entries.0.memo"),
    ("lone surrogate in a field name", "POST", ENTRIES, {**entry(), "memo\ud800": "x"}, "accountant", 422, "body"),
    ("lone surrogate in a parcel", "POST", INVEST, {**LAND, "parcel": "\ud800"}, "admin", 422, "parcel"),
    ("control character in a name", "POST", "/v1/collectives",
     collective_body("lg-{u}-ctl", "镇") | {"name": "联盟\x00村"}, "admin", 422, "name"),
    ("control character in a memo", "POST", ENTRIES, entry(memo="a\x1bb"), "accountant", 422, "memo"),
    # Collectives, investors and projects share one id namespace (DESIGN §8).
    ("project with a collective's id", "POST", "/v1/projects",
     {"project_id": "{village}", "name": "x", "kind": "other", "town": "镇", "operator": "y"}, "admin", 409,
     "project_id"),
    ("collective with a project's id", "POST", "/v1/collectives", collective_body("{park}", "镇"), "admin", 409,
     "collective_id"),
    ("investor with a project's id", "POST", "/v1/investors",
     {"investor_id": "{park}", "name": "某公司", "investor_type": "company"}, "admin", 409, "investor_id"),
    ("investor with a collective's id", "POST", "/v1/investors",
     {"investor_id": "{village}", "name": "某公司", "investor_type": "company"}, "admin", 409, "investor_id"),
    # A collective's books are for its accountants, the auditor and the admin, whatever a token's scope names.
    ("operator whose scope names the village reads its entries", "GET", ENTRIES, None, "operator-of-village", 403,
     "Authorization"),
    ("board whose scope names the village reads its trial balance", "GET",
     "/v1/collectives/{village}/trial-balance", None, "board-of-village", 403, "Authorization"),
]


def fill(value: Any, world: World) -> Any:
    """A row of the table with the World's ids put in."""
    names = {"village": world.village, "park": world.park, "company": world.company, "u": world.u}
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    return value


def check_refused(world: World, method: str, path: str, body: Any, role: str, status: int, field: str) -> None:
    """One row of BAD_INPUTS: the status and the field named, a message, and nothing published."""
    url = fill(path, world)
    before = world.offsets()
    if method == "GET":
        response = world.client.get(url, headers=world.headers(role))
    elif isinstance(body, bytes):
        response = world.client.post(url, data=body, content_type="application/json", headers=world.headers(role))
    else:
        response = world.client.post(url, data=json.dumps(fill(body, world)), content_type="application/json",
                                     headers=world.headers(role))
    error = response.get_json()["error"]
    assert (response.status_code, error["field"]) == (status, field), error
    assert error["status"] == status and error["message"]
    assert world.offsets() == before
