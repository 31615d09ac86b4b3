"""Scale-out of every writer (DESIGN §12, issue 17): two instances each of the ledger (its accounts too),
rentals, dividends and members, on a broker of this module's own, the whole Binhai scenario through them.

test_scale_out.py checks the ledger alone (disjoint villages, failover under load, SIGSTOP fencing). Here the
cross-service flows: every call of the Binhai import goes to a random instance of its service (the other
instance's subjects are forwarded to their owner), and while it runs the owner of the park (rentals,
dividends) or of 联盟村 (ledger, members) is killed with SIGKILL, in turn, the client retrying with the same
Idempotency-Key on the survivor, which takes the partitions over; each killed instance comes back and gets
partitions again. Checked: the declared payouts and 联盟村's plan are the single-instance figures
(tests/binhai_figures.py, which the single-instance e2e test checks too); every call answered is in the log
once, and every derived event (the ledger's entries for investments, approvals, payments and the plan) once;
the chains are unbroken and ``baotuan audit`` with the pinned keys finds nothing; the same import again,
through the other instances, answers every key with its first answer and publishes nothing; the 2025
distribution approved and paid through the instance that does not own the park books each village its
payout once, on either ledger instance.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from binhai_figures import (
    BINHAI_2025,
    CALLS,
    DISTRIBUTIONS,
    LIANMENG_2025,
    PAYOUTS_2025,
    PLAN_2025,
    PLAN_HOUSEHOLDS,
    PLAN_PAID,
    VILLAGES,
)
from fault_harness import ServiceProcess, Stack, events, own_broker, stack_on, verify_chains, wait_for
from kafka_helpers import read_records
from scale_harness import audit, covered, instance, owned, settled_group, writes_everything

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import ACCOUNTS, CHECKPOINTS, RECORD_TOPICS, TOPICS, partitions
from services.devtools.scenario.loader import ApiClient, Call, Endpoints, ImportResult, as_json, import_scenario
from services.devtools.scenario.schemas import Scenario, read_scenario
from services.devtools.scenario.tokens import demo_principals, demo_token, ensure_demo_tokens
from services.runtime.config import PROJECT_ROOT
from services.runtime.kafka_io import end_offsets, ensure_topics
from services.runtime.ownership import partition_of

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

BINHAI = PROJECT_ROOT / "data" / "binhai_scenario.json"
SERVICES = ("ledger", "rentals", "dividends", "members")
#: Whose owner is killed, and once the import has answered how many calls: the ledger while the investments
#: (and their derived entries) go in, rentals among the rent payments, dividends as the distributions are
#: declared, members among the households (the plan, its approval and payments come after it is back).
KILLS = ((30, "ledger", "jinqing-lianmeng"), (150, "rentals", "binhai-park"), (317, "dividends", "binhai-park"),
         (450, "members", "jinqing-lianmeng"))


@dataclass
class Cluster:
    stack: Stack
    scenario: Scenario
    demo_file: Path
    #: The instances of each service ("a", "b").
    pairs: dict[str, list[ServiceProcess]]
    #: The URLs clients may send to now, per service (a killed instance is left out until it is back).
    live: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, name: str) -> str:
        found = demo_token(name, self.demo_file)
        assert found is not None, name
        return found

    def urls(self, service: str) -> list[str]:
        with self.lock:
            return list(self.live[service])

    def owner(self, service: str, subject: str) -> ServiceProcess:
        part = partition_of(subject, partitions())
        return next(svc for svc in self.pairs[service] if part in owned(svc))

    def other(self, svc: ServiceProcess) -> ServiceProcess:
        return next(s for s in self.pairs[svc.name] if s is not svc)


class SpreadClient(ApiClient):
    """The importer's client, each attempt of a request sent to a random live instance of its service (a
    client behind a load balancer: a retry, with the same Idempotency-Key, may reach the other instance).
    Keeps every answer by key."""

    def __init__(self, cluster: Cluster, token: str) -> None:
        first = {service: cluster.urls(service)[0] for service in SERVICES}
        super().__init__(Endpoints(**first), token, timeout_s=30, retry_for_s=240)
        self.cluster = cluster
        self.answers: dict[str, dict[str, Any]] = {}
        self.answered_by: Counter[str] = Counter()
        self.wrote_through: dict[str, str] = {}
        #: Requests sent more than once (the same Idempotency-Key, to whichever instance was live).
        self.retried = 0

    def _url(self, service: str, path: str) -> str:
        return random.choice(self.cluster.urls(service)) + path

    def send(self, call: Call) -> dict[str, Any]:
        headers = {"Idempotency-Key": call.idempotency_key}
        sent: list[str] = []

        def attempt() -> requests.Response:
            # A connection of its own each time: a kept-alive one to a killed instance would be tried again.
            sent.append(self._url(call.service, call.path))
            return requests.request(call.method, sent[-1], json=call.body,
                                    headers={**headers, **self.session.headers}, timeout=self.timeout_s)

        response = self._with_retries(call.record, call.service + call.path, attempt)
        assert response.status_code < 400, f"{call.record}: {response.status_code} {response.text[:300]}"
        self.answered_by[response.headers.get("X-Baotuan-Answered-By", "here")] += 1
        self.wrote_through[call.service] = sent[-1].removesuffix(call.path)
        self.retried += len(sent) > 1
        result: dict[str, Any] = response.json() if response.content else {}
        self.answers[call.idempotency_key] = result
        return result

    def get(self, service: str, path: str, params: Any = None) -> requests.Response:
        """A read goes to the instance the last write went through (docs/scaling.md: read-your-writes holds
        there; the other instance folds it too, milliseconds later), or any if that one is down."""
        def url() -> str:
            through = self.wrote_through.get(service)
            return through + path if through in self.cluster.urls(service) else self._url(service, path)

        return self._with_retries(f"GET {path}", service + path, lambda: requests.get(
            url(), params=params, headers=dict(self.session.headers), timeout=self.timeout_s))


@dataclass
class Failover:
    service: str
    killed: str
    after_calls: int
    #: Seconds from the kill until the survivor wrote every partition.
    took_s: float = 0.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("scale-out-services")
    scenario = read_scenario(BINHAI)
    with own_broker(root / "kafka") as broker, stack_on(broker, root, timeout_s=10, name="scale-out-services") as stack:
        ensure_topics(broker.bootstrap)
        demo_file = root / "demo-tokens.json"
        ensure_demo_tokens(demo_principals(scenario), tokens_file=stack.tokens_file, demo_file=demo_file)
        pairs = {service: [instance(stack, service, "a"), instance(stack, service, "b")] for service in SERVICES}
        everyone = [svc for pair in pairs.values() for svc in pair]
        for svc in everyone:
            svc.launch()
        for svc in everyone:
            wait_for(f"{svc.log_path.name} healthy", functools.partial(_healthy, svc), timeout_s=120)
        for pair in pairs.values():
            settled_group(*pair, timeout_s=90)
        yield Cluster(stack, scenario, demo_file, pairs, {s: [svc.url for svc in pair] for s, pair in pairs.items()})


def _healthy(svc: ServiceProcess) -> bool:
    if not svc.alive():
        raise AssertionError(f"{svc.log_path.name} exited:\n{svc.log_tail()}")
    try:
        return requests.get(f"{svc.url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Imported:
    result: ImportResult
    client: SpreadClient
    failovers: list[Failover]
    seconds: float


@pytest.fixture(scope="module")
def imported(cluster: Cluster) -> Imported:
    """The Binhai import through random instances, the owners killed in turn on the way (KILLS)."""
    client = SpreadClient(cluster, cluster.token("admin"))
    progress = {"done": 0}
    failovers: list[Failover] = []
    problems: list[str] = []
    finished = threading.Event()

    def chaos() -> None:
        try:
            for after, service, subject in KILLS:
                while progress["done"] < after and not finished.is_set():
                    time.sleep(0.05)
                if finished.is_set():
                    problems.append(f"the import ended before {service}'s kill")
                    return
                victim = cluster.owner(service, subject)
                survivor = cluster.other(victim)
                with cluster.lock:
                    cluster.live[service] = [survivor.url]
                began = time.monotonic()
                victim.kill()  # kill -9, a request to it possibly in flight
                wait_for(f"{survivor.log_path.name} to write every partition",
                         functools.partial(writes_everything, survivor), timeout_s=90)
                failovers.append(Failover(service, victim.log_path.name, progress["done"],
                                          time.monotonic() - began))
                victim.start(wait_s=120)
                settled_group(victim, survivor, timeout_s=90)
                with cluster.lock:
                    cluster.live[service] = [svc.url for svc in cluster.pairs[service]]
        except BaseException as exc:  # reported by the test, not lost in the thread
            problems.append(repr(exc))

    thread = threading.Thread(target=chaos, name="chaos")
    thread.start()
    began = time.monotonic()
    try:
        result = import_scenario(cluster.scenario, client,
                                 progress=lambda done, total, call: progress.__setitem__("done", done))
    finally:
        finished.set()
        thread.join(timeout=300)
    seconds = time.monotonic() - began
    assert not problems, problems
    assert [f.service for f in failovers] == [service for _, service, _ in KILLS]
    assert client.retried, "no request was retried after a kill"
    print(f"import through two instances each: {result.calls} calls in {seconds:.1f}s, {client.retried} retried; "
          f"answered by "
          f"{dict(client.answered_by)}; failovers: "
          + ", ".join(f"{f.killed} after {f.after_calls} calls: {f.took_s:.1f}s" for f in failovers))
    return Imported(result, client, failovers, seconds)


def _declared(result: ImportResult, distribution_id: str) -> dict[str, Any]:
    return next(d.declared for d in result.distributions if d.declared["distribution_id"] == distribution_id)


def test_the_import_through_both_instances_gives_the_single_instance_payouts_and_plan(imported: Imported) -> None:
    result = imported.result
    assert result.calls == CALLS
    summary = {(d.record["project_id"], d.record["period_start"]): (d.declared["gross_rent"], d.declared["pool"],
                                                                   d.declared["total_top_up"],
                                                                   d.declared["total_payout"])
               for d in result.distributions}
    assert summary == DISTRIBUTIONS
    year = _declared(result, BINHAI_2025)
    payouts = {a["investor_id"]: a for a in year["allocations"]}
    lianmeng = payouts["jinqing-lianmeng"]
    assert (lianmeng["pro_rata"], lianmeng["guaranteed_floor"], lianmeng["top_up"], lianmeng["payout"]) \
        == LIANMENG_2025
    assert {investor: payouts[investor]["payout"] for investor in PAYOUTS_2025} == PAYOUTS_2025
    assert format_yuan(sum(parse_yuan(a["payout"]) for a in payouts.values())) == summary[("binhai-park",
                                                                                           "2025-01-01")][3]
    [item] = result.member_plans
    assert {name: item.plan[name] for name in PLAN_2025} == PLAN_2025
    assert len(item.plan["allocations"]) == PLAN_HOUSEHOLDS
    assert item.households_paid == PLAN_PAID
    # Both instances answered (forwarding for the other's subjects), and every kill came back.
    assert len(imported.client.answered_by) > 1, imported.client.answered_by


def test_every_write_and_every_derived_event_is_in_the_log_once_and_the_audit_is_clean(
        cluster: Cluster, imported: Imported) -> None:
    bootstrap = cluster.stack.broker.bootstrap
    everyone = [svc for pair in cluster.pairs.values() for svc in pair]
    covered(*everyone)
    records = read_records(bootstrap, list(RECORD_TOPICS))
    ids = Counter(e["event_id"] for e in events(records))
    assert not {i: n for i, n in ids.items() if n > 1}, "a record twice in the log"
    for topic in RECORD_TOPICS:
        verify_chains(topic, [r for r in records if r.topic == topic])
    sections = cluster.scenario.sections
    kinds = Counter(e["type"] for e in events(records))
    # One event per record of the file, whichever instance answered it, after however many retries.
    expected = {"CollectiveRegistered": len(sections["collectives"]), "ProjectRegistered": len(sections["projects"]),
                "BuildingRegistered": len(sections["buildings"]), "LeaseSigned": len(sections["leases"]),
                "RentReceived": len(sections["rent_payments"]), "ExpenseRecorded": len(sections["expenses"]),
                "DistributionDeclared": len(sections["distributions"]),
                "HouseholdRegistered": len(sections["households"]),
                "SharesTransferred": len(sections["share_transfers"]),
                "PlanProposed": 1, "PlanApproved": 1, "HouseholdDividendPaid": PLAN_PAID}
    assert {kind: kinds[kind] for kind in expected} == expected
    # The derived entries (DESIGN §7): one per cause and qualifier, published by the owner of the village's
    # partition (no other instance may write it), never twice even though their owners were killed.
    entries = events(records, "EntryPosted")
    origins = Counter((e["data"]["origin"]["kind"], e["data"]["origin"]["ref"], e["subject"]) for e in entries
                      if e.get("causation_id"))
    assert origins and not {o: n for o, n in origins.items() if n > 1}, "a derived entry twice"
    derived = Counter(e["data"]["origin"]["kind"] for e in entries if e.get("causation_id"))
    collectives = {c["collective_id"] for c in sections["collectives"]}
    assert {kind: derived[kind] for kind in ("investment", "member_plan", "member_dividend")} == {
        "investment": sum(1 for i in sections["investments"] if i["investor_id"] in collectives),
        "member_plan": 1, "member_dividend": PLAN_PAID}
    status, output = audit(cluster.stack)
    assert status == 0, output[-3000:]


def test_the_same_import_again_through_the_other_instances_answers_the_first_answers_and_publishes_nothing(
        cluster: Cluster, imported: Imported) -> None:
    before = _log_ends(cluster)
    client = SpreadClient(cluster, cluster.token("admin"))
    again = import_scenario(cluster.scenario, client)
    assert as_json(again) == as_json(imported.result)
    # Every key answered with the first answer: the receipts of the first request's events (the same records,
    # signed alike) and the same ids (an answer's other fields show the state now, e.g. a plan since paid).
    assert set(client.answers) == set(imported.client.answers)
    differing = {key: (_identity(imported.client.answers[key]), _identity(answer))
                 for key, answer in client.answers.items() if _identity(imported.client.answers[key])
                 != _identity(answer)}
    assert not differing, list(differing.items())[:3]
    assert sum(1 for answer in client.answers.values() if answer.get("receipts")) >= CALLS - 10
    assert _log_ends(cluster) == before


def _identity(answer: dict[str, Any]) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """What a repeated request must answer again: where its events are, and the ids it made."""
    return ([(r["topic"], r["partition"], r["offset"], r["hash"], r["signature"]) for r in answer.get("receipts", [])],
            {name: value for name, value in answer.items() if name.endswith("_id")})


def test_accounts_are_written_by_the_owner_of_their_partition_and_a_session_works_on_either_instance(
        cluster: Cluster, imported: Imported) -> None:
    """The accounts topic is the ledger's: its writers' group covers it (an account is a stream, its name the
    subject); creating an account or signing in through the instance that does not own it is forwarded."""
    a, b = cluster.pairs["ledger"]
    admin = cluster.token("admin")
    name = next(f"clerk{i}" for i in range(100) if partition_of(f"clerk{i}", partitions()) in owned(a))
    made = requests.post(f"{b.url}/v1/users", timeout=30, headers={"Authorization": f"Bearer {admin}"},
                         json={"name": name, "display_name": "出纳", "role": "accountant",
                               "scope": ["jinqing-lianmeng"], "password": "a long enough passphrase 42",
                               "must_change_password": False})
    assert made.status_code == 201, made.text
    assert made.headers.get("X-Baotuan-Answered-By") == a.url
    session = requests.post(f"{b.url}/v1/sessions", timeout=30,
                            json={"name": name, "password": "a long enough passphrase 42"})
    assert session.status_code == 201, session.text
    assert session.headers.get("X-Baotuan-Answered-By") == a.url
    secret = session.json()["session"]
    for ledger in (a, b):
        me = requests.get(f"{ledger.url}/v1/users/me", timeout=30, headers={"Authorization": f"Session {secret}"})
        assert me.status_code == 200 and me.json()["name"] == name, me.text
    records = read_records(cluster.stack.broker.bootstrap, ACCOUNTS, key=name)
    assert Counter(e["type"] for e in events(records)) == Counter({"AccountCreated": 1, "SessionStarted": 1})


def test_a_distribution_approved_and_paid_across_instances_books_each_village_its_payout_once(
        cluster: Cluster, imported: Imported) -> None:
    board = cluster.token("board-binhai-park")
    year = _declared(imported.result, BINHAI_2025)
    owner = cluster.owner("dividends", "binhai-park")
    elsewhere = cluster.other(owner)
    approved = requests.post(f"{elsewhere.url}/v1/distributions/{BINHAI_2025}/approve", json={}, timeout=30,
                             headers={"Authorization": f"Bearer {board}", "Idempotency-Key": "scale-approve"})
    assert approved.status_code in (200, 201), approved.text
    assert approved.headers.get("X-Baotuan-Answered-By") == owner.url  # forwarded to the park's owner
    for n, allocation in enumerate(year["allocations"]):
        via = cluster.pairs["dividends"][n % 2]
        paid = requests.post(f"{via.url}/v1/distributions/{BINHAI_2025}/payments", timeout=30,
                             json={"investor_id": allocation["investor_id"], "amount": allocation["payout"],
                                   "paid_on": "2026-02-10", "bank_reference": f"ICBC-{allocation['investor_id']}"},
                             headers={"Authorization": f"Bearer {board}",
                                      "Idempotency-Key": f"scale-pay-{allocation['investor_id']}"})
        assert paid.status_code in (200, 201), paid.text
    owed = {a["investor_id"]: a["payout"] for a in year["allocations"] if a["investor_id"] in VILLAGES}
    assert len(owed) == len(VILLAGES)

    def booked(ledger: ServiceProcess) -> bool:
        for village in VILLAGES:
            books = _balances(ledger, cluster.token("auditor"), village)
            if books.get("502/binhai-park") != owed[village] or books.get("112/binhai-park", "0.00") != "0.00":
                return False
        return True

    for ledger in cluster.pairs["ledger"]:  # both instances fold every partition: the same books on either
        wait_for(f"{ledger.log_path.name}: every village's dividend booked and paid",
                 functools.partial(booked, ledger), timeout_s=90)
    covered(*[svc for pair in cluster.pairs.values() for svc in pair])
    records = read_records(cluster.stack.broker.bootstrap, list(RECORD_TOPICS))
    entries = [e for e in events(records, "EntryPosted") if e["data"].get("origin", {}).get("kind") in
               ("dividend", "payment")]
    per_village = Counter(e["subject"] for e in entries)
    assert per_village == Counter({v: 2 for v in VILLAGES}), per_village  # the receivable, then the cash
    status, output = audit(cluster.stack)
    assert status == 0, output[-3000:]


def _balances(ledger: ServiceProcess, token: str, village: str) -> dict[str, str]:
    response = requests.get(f"{ledger.url}/v1/collectives/{village}/trial-balance", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return {row["code"]: row["balance"] for row in response.json()["accounts"]}


def _log_ends(cluster: Cluster) -> dict[tuple[str, int], int]:
    """Where the topics of record end (the checkpoints left out: a service signs one whenever its timer says)."""
    return end_offsets(cluster.stack.broker.bootstrap, [t for t in TOPICS if t != CHECKPOINTS])
