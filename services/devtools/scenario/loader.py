"""Import a scenario file through the public HTTP APIs of the services (DESIGN §10, §11).

Each record becomes exactly one API call (so a record is either wholly imported or not at
all), sent with an ``Idempotency-Key`` derived from the record's own content. A second
import of the same file therefore changes nothing: every call returns its first result,
and a distribution is never declared twice. The loader uses only HTTP, like any other
client: it never reads a service's database or the topics.

A member plan (``member_plans``) is the one record of several calls: it is proposed, then
approved with its vote, then each household's allocation is paid, every call with a key
derived from the record (and the household), so a repeat changes nothing either.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from services.contracts.codec import content_hash
from services.contracts.money import parse_mu, parse_yuan, valuation_fen
from services.devtools.scenario.schemas import Scenario
from services.devtools.scenario.table import PayoutView, PlanView

DEFAULT_URLS = {"ledger": "http://127.0.0.1:8001", "rentals": "http://127.0.0.1:8002",
                "dividends": "http://127.0.0.1:8003", "members": "http://127.0.0.1:8004"}

#: Statuses worth retrying with the same Idempotency-Key: the service or its broker is
#: momentarily unavailable, and a repeat cannot apply a record twice.
RETRYABLE = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the services."""

    ledger: str = DEFAULT_URLS["ledger"]
    rentals: str = DEFAULT_URLS["rentals"]
    dividends: str = DEFAULT_URLS["dividends"]
    members: str = DEFAULT_URLS["members"]

    @classmethod
    def from_env(cls) -> Endpoints:
        """``BAOTUAN_LEDGER_URL``, ``BAOTUAN_RENTALS_URL``, ``BAOTUAN_DIVIDENDS_URL``, ``BAOTUAN_MEMBERS_URL``
        (defaults: 8001-8004)."""
        return cls(**{svc: os.environ.get(f"BAOTUAN_{svc.upper()}_URL", url) for svc, url in DEFAULT_URLS.items()})

    def url(self, service: str, path: str) -> str:
        base: str = getattr(self, service)
        return base.rstrip("/") + path

    def as_dict(self) -> dict[str, str]:
        return {"ledger": self.ledger, "rentals": self.rentals, "dividends": self.dividends, "members": self.members}


@dataclass(frozen=True)
class Call:
    """One record of the file as one API request."""

    record: str  # where it is in the file: "investments[3]"
    service: str
    method: str
    path: str
    body: dict[str, Any]
    idempotency_key: str


class LoadError(RuntimeError):
    """A service refused a record (or could not be reached); nothing of that record was written."""

    def __init__(self, record: str, message: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None) -> None:
        where = f"{record}.{field}" if field else record
        super().__init__(f"{where}: {message}")
        self.record = record
        self.status = status
        self.code = code
        self.field = field
        self.message = message


def record_key(section: str, record: Mapping[str, Any], occurrence: int = 0) -> str:
    """The Idempotency-Key of a record: a hash of what it says, not of where it sits in a file.

    ``occurrence`` tells apart records that are identical in every field (the second such
    rent payment is a second payment, not a repeat).
    """
    return "scenario:" + content_hash({"kind": section, "record": record, "occurrence": occurrence}, floats=True)


def _without(record: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in names}


def to_call(section: str, index: int, record: Mapping[str, Any], key: str) -> Call:
    """The API request that imports one record (DESIGN §10; the services' public contract)."""
    where = f"{section}[{index}]"
    if section == "collectives":
        return Call(where, "ledger", "POST", "/v1/collectives", dict(record), key)
    if section == "investors":
        return Call(where, "ledger", "POST", "/v1/investors", dict(record), key)
    if section == "projects":
        return Call(where, "ledger", "POST", "/v1/projects", dict(record), key)
    if section == "investments":
        # The ledger knows each investor's type from its registration.
        return Call(where, "ledger", "POST", f"/v1/projects/{record['project_id']}/investments",
                    _without(record, "project_id", "investor_type"), key)
    if section == "withdrawals":
        return Call(where, "ledger", "POST", f"/v1/projects/{record['project_id']}/withdrawals",
                    _without(record, "project_id"), key)
    if section == "development_funds":
        # A one-time development fund received: Dr 102 银行存款 / Cr 503 补助收入.
        amount = record["amount"]
        body = {"date": record["date"], "memo": record.get("memo") or "发展资金",
                "lines": [{"account": "102", "debit": amount}, {"account": "503", "credit": amount}]}
        return Call(where, "ledger", "POST", f"/v1/collectives/{record['collective_id']}/entries", body, key)
    if section == "policies":
        return Call(where, "dividends", "PUT", f"/v1/projects/{record['project_id']}/policy",
                    _without(record, "project_id"), key)
    if section == "buildings":
        return Call(where, "rentals", "POST", f"/v1/projects/{record['project_id']}/buildings",
                    _without(record, "project_id"), key)
    if section == "leases":
        return Call(where, "rentals", "POST", f"/v1/projects/{record['project_id']}/leases",
                    _without(record, "project_id"), key)
    if section == "rent_payments":
        return Call(where, "rentals", "POST", f"/v1/leases/{record['lease_id']}/payments",
                    _without(record, "lease_id", "project_id", "period"), key)
    if section == "expenses":
        return Call(where, "rentals", "POST", f"/v1/projects/{record['project_id']}/expenses",
                    _without(record, "project_id"), key)
    if section == "distributions":
        return Call(where, "dividends", "POST", f"/v1/projects/{record['project_id']}/distributions",
                    _without(record, "project_id"), key)
    village = f"/v1/collectives/{record.get('collective_id')}"
    if section == "entries":
        return Call(where, "ledger", "POST", f"{village}/entries", _without(record, "collective_id"), key)
    if section == "year_end_closes":
        return Call(where, "ledger", "POST", f"{village}/year-end-close", _without(record, "collective_id"), key)
    if section == "charters":
        return Call(where, "members", "PUT", f"{village}/charter", _without(record, "collective_id"), key)
    if section == "households":
        return Call(where, "members", "POST", f"{village}/households", _without(record, "collective_id"), key)
    if section == "share_transfers":
        return Call(where, "members", "POST", f"{village}/share-transfers", _without(record, "collective_id"), key)
    if section == "member_plans":
        # The proposal; its approval and payments follow once its allocations are known (plan_followups).
        return Call(where, "members", "POST", f"{village}/plans", _without(record, "collective_id", "vote", "payments"),
                    key)
    raise ValueError(f"unknown section {section!r}")


def plan(scenario: Scenario) -> list[Call]:
    """Every API call of an import, in order."""
    calls = []
    seen: dict[str, int] = {}
    for section, index, record in scenario.records():
        first = record_key(section, record)
        occurrence = seen.get(first, 0)
        seen[first] = occurrence + 1
        calls.append(to_call(section, index, record, record_key(section, record, occurrence)))
    return calls


def approval_call(call: Call, record: Mapping[str, Any], plan_id: str) -> Call | None:
    """The vote that approves a proposed plan (none if the record has no vote)."""
    if "vote" not in record:
        return None
    return Call(f"{call.record}.vote", "members", "POST", f"/v1/collectives/{record['collective_id']}/plans/"
                f"{plan_id}/approve", {"vote": dict(record["vote"])}, f"{call.idempotency_key}:approve")


def payment_calls(call: Call, record: Mapping[str, Any], plan: Mapping[str, Any]) -> list[Call]:
    """One payment of each allocation of an approved plan, in full, but for the ``unpaid`` households."""
    payments = record.get("payments")
    if payments is None:
        return []
    unpaid = set(payments.get("unpaid", []))
    path = f"/v1/collectives/{record['collective_id']}/plans/{plan['plan_id']}/payments"
    calls = []
    for allocation in plan.get("allocations", []):
        hid = allocation["household_id"]
        if hid in unpaid or parse_yuan(allocation["amount"]) == 0:
            continue
        body = {"household_id": hid, "amount": allocation["amount"], "paid_on": payments["paid_on"],
                "bank_reference": payments["bank_reference"]}
        calls.append(Call(f"{call.record}.payments[{hid}]", "members", "POST", path, body,
                          f"{call.idempotency_key}:pay:{hid}"))
    return calls


class ApiClient:
    """A bearer-token HTTP client for the services, retrying only what is safe to retry."""

    def __init__(self, endpoints: Endpoints, token: str, *, timeout_s: float = 30.0, retry_for_s: float = 60.0,
                 session: requests.Session | None = None) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self.retry_for_s = retry_for_s
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def close(self) -> None:
        self.session.close()

    def send(self, call: Call) -> dict[str, Any]:
        """Send one record's request; its JSON answer, or LoadError naming the record and field."""
        url = self.endpoints.url(call.service, call.path)
        headers = {"Idempotency-Key": call.idempotency_key}
        response = self._with_retries(call.record, url, lambda: self.session.request(
            call.method, url, json=call.body, headers=headers, timeout=self.timeout_s))
        if response.status_code >= 400:
            raise _refusal(call, response)
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    def get(self, service: str, path: str, params: Mapping[str, str] | None = None) -> requests.Response:
        url = self.endpoints.url(service, path)
        return self._with_retries(f"GET {path}", url,
                                  lambda: self.session.get(url, params=params, timeout=self.timeout_s))

    def _with_retries(self, what: str, url: str, attempt: Callable[[], requests.Response]) -> requests.Response:
        """Retry while the service answers 502/503/504 (its broker is away) for up to ``retry_for_s``;
        a service that does not answer at all gets a tenth of that (it is more likely not started)."""
        began = time.monotonic()
        pause = 0.25
        while True:
            try:
                response = attempt()
                if response.status_code not in RETRYABLE:
                    return response
                problem, patience = f"HTTP {response.status_code}: {_error_message(response)}", self.retry_for_s
            except requests.ConnectionError:
                base = url.split("/v1/")[0]
                problem, patience = f"{base} is not answering: is the service running? (baotuan status)", \
                    self.retry_for_s / 10
            except requests.RequestException as exc:
                problem, patience = f"{type(exc).__name__}: {exc}", self.retry_for_s
            waited = time.monotonic() - began
            if waited + pause > patience:
                raise LoadError(what, f"service unavailable after {waited:.0f}s ({problem})")
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _error_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return response.text[:200]
    return str(error.get("message") or response.reason)


def _refusal(call: Call, response: requests.Response) -> LoadError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    message = f"{call.method} {call.path} refused with {response.status_code}"
    message += f" {code}: {error.get('message') or response.reason}" if code else f": {response.text[:300]}"
    if code == "idempotency_conflict":
        message += " (this record was imported before with other content: the file changed since)"
    field = error.get("field")
    if response.status_code in (401, 403):
        field = None  # about the token, not the record
        message += " (the loader needs an admin token: --token or BAOTUAN_TOKEN)"
    return LoadError(call.record, message, status=response.status_code, code=code, field=field)


@dataclass
class DeclaredDistribution:
    """A distribution of the file, as the dividends service declared it."""

    record: dict[str, Any]
    declared: dict[str, Any]


@dataclass
class MemberPlan:
    """A member plan of the file, as the members service holds it once proposed, approved and paid."""

    record: dict[str, Any]
    plan: dict[str, Any]

    @property
    def households_paid(self) -> int:
        return sum(1 for a in self.plan.get("allocations", []) if a.get("paid"))

    @property
    def amount_paid(self) -> int:
        """Fen paid to households so far."""
        return sum(parse_yuan((a.get("payment") or {}).get("amount") or a["amount"])
                   for a in self.plan.get("allocations", []) if a.get("paid"))


@dataclass
class ImportResult:
    calls: int = 0
    seconds: float = 0.0
    distributions: list[DeclaredDistribution] = field(default_factory=list)
    member_plans: list[MemberPlan] = field(default_factory=list)


Progress = Callable[[int, int, Call], None]


def import_scenario(scenario: Scenario, client: ApiClient, progress: Progress | None = None) -> ImportResult:
    """Send every record, in order; stop at the first refusal (LoadError). Returns the declared distributions."""
    began = time.monotonic()
    calls = plan(scenario)
    result = ImportResult()
    distributions = iter(scenario.sections["distributions"])
    member_plans = iter(scenario.sections["member_plans"])
    for done, call in enumerate(calls, start=1):
        answer = client.send(call)
        if call.record.startswith("distributions["):
            result.distributions.append(DeclaredDistribution(dict(next(distributions)), answer))
        if call.record.startswith("member_plans["):
            record = dict(next(member_plans))
            result.member_plans.append(MemberPlan(record, follow_plan(client, call, record, answer)))
        result.calls = done
        if progress is not None:
            progress(done, len(calls), call)
    result.seconds = time.monotonic() - began
    return result


def follow_plan(client: ApiClient, call: Call, record: Mapping[str, Any],
                proposed: Mapping[str, Any]) -> dict[str, Any]:
    """Approve a proposed plan with the file's vote and pay its households; the plan as it ends up."""
    plan_id = proposed["plan_id"]
    approval = approval_call(call, record, plan_id)
    if approval is None:
        return dict(proposed)
    client.send(approval)
    for payment in payment_calls(call, record, proposed):
        client.send(payment)
    response = client.get("members", f"/v1/collectives/{record['collective_id']}/plans/{plan_id}")
    if response.status_code != 200:
        raise LoadError(call.record, f"the plan {plan_id} cannot be read back: HTTP {response.status_code}")
    plan: dict[str, Any] = response.json()
    return plan


def as_json(result: ImportResult) -> dict[str, Any]:
    """The ``baotuan load --json`` document (DESIGN §10)."""
    out = []
    for item in result.distributions:
        d = item.declared
        out.append({
            "project_id": item.record["project_id"],
            "period_start": item.record["period_start"],
            "period_end": item.record["period_end"],
            "distribution_id": d["distribution_id"],
            "gross_rent": d["gross_rent"],
            "pool": d["pool"],
            "total_top_up": d["total_top_up"],
            "total_payout": d["total_payout"],
            "allocations": [{k: a[k] for k in ("investor_id", "capital_days", "pro_rata", "guaranteed_floor",
                                               "top_up", "payout")} for a in d["allocations"]],
        })
    plans = [{
        "collective_id": item.record["collective_id"],
        "year": item.record["year"],
        **{key: item.plan[key] for key in ("distributable", "reserve", "welfare", "members_total", "undistributed")},
        "allocations": [{k: a[k] for k in ("household_id", "weight", "amount")} for a in item.plan["allocations"]],
    } for item in result.member_plans]
    return {"distributions": out, "member_distributions": plans}


def capital_at(scenario: Scenario, project_id: str, day: str) -> dict[str, int]:
    """Each investor's capital (fen) in ``project_id`` at the end of ``day``, from the file's records."""
    capital: dict[str, int] = {}
    for inv in scenario.sections["investments"]:
        if inv["project_id"] == project_id and inv["effective_on"] <= day:
            added = (valuation_fen(parse_mu(inv["area_mu"]), parse_yuan(inv["price_per_mu"]))
                     if inv["kind"] == "land" else parse_yuan(inv["amount"]))
            capital[inv["investor_id"]] = capital.get(inv["investor_id"], 0) + added
    for out in scenario.sections["withdrawals"]:
        if out["project_id"] == project_id and out["effective_on"] <= day:
            capital[out["investor_id"]] = capital.get(out["investor_id"], 0) - parse_yuan(out["amount"])
    return capital


def ledger_capital(client: ApiClient, project_id: str, day: str) -> dict[str, int] | None:
    """Each investor's capital from the ledger's investment register, or None if it cannot tell."""
    try:
        response = client.get("ledger", f"/v1/projects/{project_id}/register", {"as_of": day})
    except LoadError:
        return None
    if response.status_code != 200:
        return None
    try:
        items = response.json().get("items", [])
        return {item["investor_id"]: parse_yuan(item["capital"]) for item in items}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def payout_views(scenario: Scenario, result: ImportResult, client: ApiClient | None = None) -> list[PayoutView]:
    """What the payout tables show: the ledger's register when it answers, else the file's own records."""
    projects = {p["project_id"]: p["name"] for p in scenario.sections["projects"]}
    names = scenario.names()
    views = []
    for item in result.distributions:
        pid, end = item.record["project_id"], item.record["period_end"]
        capital = (ledger_capital(client, pid, end) if client is not None else None) or capital_at(scenario, pid, end)
        views.append(PayoutView(declared=item.declared, project_id=pid, project_name=projects.get(pid, pid),
                                period_start=item.record["period_start"], period_end=end, names=names,
                                capital=capital))
    return views


def plan_views(scenario: Scenario, result: ImportResult) -> list[PlanView]:
    """What the member plans' tables show, after the payout tables."""
    names = scenario.names()
    return [PlanView(plan=item.plan, collective_name=names.get(item.record["collective_id"],
                                                                item.record["collective_id"]),
                     households_paid=item.households_paid, amount_paid=item.amount_paid)
            for item in result.member_plans]
