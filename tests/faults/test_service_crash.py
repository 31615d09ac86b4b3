"""A service is killed (SIGKILL) while it declares a distribution, and while it consumes.

After a restart there is exactly one set of allocations, no entry is applied twice, a poison
record is dead-lettered with its reason while the consumer goes on, and a projection deleted
while its service was stopped is rebuilt identically. The three services run as real
processes on a broker of this module's own.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fault_harness import (
    Stack,
    call,
    duplicates,
    events,
    ok,
    own_broker,
    post_until_ok,
    report,
    seed_lease,
    seed_villages,
    settled,
    stack_on,
    verify_chains,
    wait_for,
)
from kafka import KafkaProducer
from kafka_helpers import read_records

from services.contracts import envelope as env
from services.contracts.codec import canonical
from services.contracts.money import parse_yuan
from services.contracts.topics import DEADLETTER, DIVIDENDS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS
from services.runtime.kafka_io import OffsetsClient

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

PROJECT = "kill-park"
VILLAGES = [f"kill-v{i:02d}" for i in range(30)]
POLICY = {"management_fee_rate": "0.05", "tax_rate": "0.06", "payout_ratio": "0.90", "guaranteed_rate": "0.00"}
#: Months with rent received; each round of the declaration test declares one of them.
MONTHS = [("2026-01-01", "2026-01-31"), ("2026-02-01", "2026-02-28"), ("2026-03-01", "2026-03-31")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Ledger, rentals and dividends as processes; 30 villages with land in one park, a lease, rent paid."""
    root = tmp_path_factory.mktemp("service-crash")
    with own_broker(root / "kafka") as broker, stack_on(broker, root, timeout_s=5, name="service-crash") as world:
        for name in ("ledger", "rentals", "dividends"):
            world.service(name).start()
        seed_villages(world, VILLAGES, PROJECT)
        lease_id = seed_lease(world, PROJECT)
        admin = world.token("admin")
        for month, (start, _end) in enumerate(MONTHS, 1):
            post_until_ok(f"{world.services['rentals'].url}/v1/leases/{lease_id}/payments", admin,
                          {"amount": "100000.00", "received_on": start[:8] + "10"},
                          key=f"rent-{month}")
        ok(call("PUT", f"{world.services['dividends'].url}/v1/projects/{PROJECT}/policy", admin, POLICY,
                key="policy"))
        yield world


def dividends_log(stack: Stack) -> list[dict[str, Any]]:
    return events(read_records(stack.broker.bootstrap, DIVIDENDS))


def _declare_and_kill(stack: Stack, token: str, body: dict[str, Any], key: str, when: str) -> tuple[Any, int]:
    """POST the declaration and SIGKILL the service ``when``; returns (the answer the client saw,
    the allocations that reached the log)."""
    dividends = stack.services["dividends"]
    url = f"{dividends.url}/v1/projects/{PROJECT}/distributions"
    answer: dict[str, Any] = {}

    def declare() -> None:
        try:
            answer["status"] = call("POST", url, token, body, key=key, timeout=30).status_code
        except requests.RequestException as exc:
            answer["status"] = type(exc).__name__

    def allocations() -> int:
        return len([e for e in dividends_log(stack) if e["type"] == "DividendAllocated"])

    before = allocations()
    offsets = OffsetsClient(stack.broker.bootstrap)
    end_before = sum(offsets.end_offsets([DIVIDENDS]).values())
    client = threading.Thread(target=declare)
    client.start()
    if when == "on the log":
        wait_for("the declaration in the log", lambda: sum(offsets.end_offsets([DIVIDENDS]).values()) > end_before
                 or "status" in answer, timeout_s=20, every_s=0.002)
    elif when == "after 50 ms":
        time.sleep(0.05)
    dividends.kill()
    offsets.close()
    client.join(timeout=30)
    return answer.get("status"), allocations() - before


def test_a_dividends_service_killed_while_declaring_ends_with_exactly_one_set_of_allocations(stack: Stack) -> None:
    dividends = stack.services["dividends"]
    board = stack.token("board", PROJECT)
    outcomes = []
    # Kill it before the request is served, the moment its events reach the log (written, not yet
    # answered), and a little later.
    for (start, end), when in zip(MONTHS, ("at once", "on the log", "after 50 ms"), strict=True):
        url = f"{dividends.url}/v1/projects/{PROJECT}/distributions"
        body = {"period_start": start, "period_end": end}
        key = f"declare-{start}"
        first_answer, landed = _declare_and_kill(stack, board, body, key, when)
        dividends.start()
        # The client saw its connection drop (or, if the answer beat the kill, a 201): it retries.
        declared = post_until_ok(url, board, body, key)
        outcomes.append(f"killed {when}: first answer {first_answer}, {landed} allocations in the log at the kill")

        records = dividends_log(stack)
        mine = [e for e in records if e["data"].get("project_id") == PROJECT
                and e["data"].get("distribution_id") == declared["distribution_id"]]
        assert [e["type"] for e in mine].count("DistributionDeclared") == 1
        allocations = [e["data"] for e in mine if e["type"] == "DividendAllocated"]
        assert duplicates([a["investor_id"] for a in allocations]) == {}
        assert sorted(a["investor_id"] for a in allocations) == sorted(VILLAGES)
        [head] = [e["data"] for e in mine if e["type"] == "DistributionDeclared"]
        assert sum(parse_yuan(a["payout"]) for a in allocations) == parse_yuan(head["total_payout"])
        # No other declaration of the period slipped in (a second id for the same months).
        periods = [(e["data"]["period_start"], e["data"]["period_end"]) for e in records
                   if e["type"] == "DistributionDeclared" and e["data"]["project_id"] == PROJECT]
        assert periods.count((start, end)) == 1
        # The projection agrees with the log.
        shown = ok(call("GET", f"{dividends.url}/v1/distributions/{declared['distribution_id']}", board))
        assert {a["investor_id"]: a["payout"] for a in shown["allocations"]} == \
            {a["investor_id"]: a["payout"] for a in allocations}
    chained = verify_chains(DIVIDENDS, read_records(stack.broker.bootstrap, DIVIDENDS))
    report("kill-while-declaring", {"rounds": len(outcomes), "outcomes": "; ".join(outcomes),
                                    "chain_links_verified": chained})


def _applied(projection: Path) -> int:
    """How many records a (possibly killed) service had folded: the sum of its stored next offsets."""
    if not projection.exists():
        return 0
    conn = sqlite3.connect(f"file:{projection}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COALESCE(SUM(next_offset), 0) FROM _offsets").fetchone()[0])
    except sqlite3.OperationalError:  # killed before it made its tables
        return 0
    finally:
        conn.close()


def _derived_entries(stack: Stack, distribution_id: str) -> list[dict[str, Any]]:
    return [e for e in events(read_records(stack.broker.bootstrap, LEDGER_ENTRIES), "EntryPosted")
            if e["data"]["origin"] == {"kind": "dividend", "ref": distribution_id}]


def test_a_ledger_killed_while_consuming_an_approval_posts_each_dividend_entry_exactly_once(stack: Stack) -> None:
    ledger, dividends = stack.services["ledger"], stack.services["dividends"]
    admin, board = stack.token("admin"), stack.token("board", PROJECT)
    listed = ok(call("GET", f"{dividends.url}/v1/projects/{PROJECT}/distributions", board))["items"]
    declared = [d for d in listed if d["status"] == "declared"]
    assert declared, "the declaration test leaves declared distributions to approve"
    target = declared[0]
    distribution_id = target["distribution_id"]
    payouts = {a["investor_id"]: parse_yuan(a["payout"]) for a in target["allocations"] if a["payout"] != "0.00"}

    ledger.kill()
    post_until_ok(f"{dividends.url}/v1/distributions/{distribution_id}/approve", board, {},
                  f"approve-{distribution_id}")
    # Restart the ledger and kill it again just as it has caught up and starts posting the entries
    # the approval owes; each time note how many had reached the log.
    progress = []
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        ledger.start()
        time.sleep(delay)
        ledger.kill()
        progress.append(len(_derived_entries(stack, distribution_id)))
        if progress[-1] >= len(payouts):
            break
    # Then kill it in the middle of a full replay (its projection deleted, the log folded again),
    # as soon as the first records are applied; then in the middle of resuming from what it stored.
    total = len(read_records(stack.broker.bootstrap, [LEDGER_ENTRIES, LEDGER_INVESTMENTS, DIVIDENDS]))
    applied_at_kill = []
    ledger.delete_projection()
    for _ in range(3):
        stored = _applied(ledger.projection)
        ledger.launch()
        wait_for("the replay under way", lambda stored=stored: _applied(ledger.projection) > stored,
                 timeout_s=60, every_s=0.005)
        ledger.kill()
        applied_at_kill.append(f"{_applied(ledger.projection)}/{total}")
    ledger.start()
    wait_for("every dividend entry posted",
             lambda: len(_derived_entries(stack, distribution_id)) >= len(payouts), timeout_s=60)
    # No entry is applied twice: the books hold each logged entry once, and nothing else.
    logged = Counter(e["data"]["collective_id"] for e in {
        e["event_id"]: e for e in events(read_records(stack.broker.bootstrap, LEDGER_ENTRIES), "EntryPosted")
    }.values())
    for village in VILLAGES:
        books = ok(call("GET", f"{ledger.url}/v1/collectives/{village}/entries", admin))["items"]
        assert len(books) == logged[village]
        assert duplicates([e["entry_id"] for e in books]) == {}

    posted = _derived_entries(stack, distribution_id)
    assert duplicates([e["event_id"] for e in posted]) == {}
    assert duplicates([e["data"]["collective_id"] for e in posted]) == {}
    assert {e["data"]["collective_id"] for e in posted} == set(payouts)
    for village, payout in payouts.items():
        books = ok(call("GET", f"{ledger.url}/v1/collectives/{village}/entries", admin))["items"]
        dividend = [e for e in books if e["origin"] == {"kind": "dividend", "ref": distribution_id}]
        assert len(dividend) == 1
        assert {line["account"]: parse_yuan(line.get("debit") or line.get("credit") or "0")
                for line in dividend[0]["lines"]} == {f"112/{PROJECT}": payout, f"502/{PROJECT}": payout}
    chained = verify_chains(LEDGER_ENTRIES, read_records(stack.broker.bootstrap, LEDGER_ENTRIES))
    report("kill-while-consuming", {"kills": len(progress) + len(applied_at_kill),
                                    "entries_in_log_at_each_kill": progress,
                                    "records_applied_at_replay_kills": applied_at_kill,
                                    "entries_owed": len(payouts), "entries_posted": len(posted),
                                    "duplicates": len(duplicates([e["event_id"] for e in posted])),
                                    "chain_links_verified": chained})


def test_a_poison_record_goes_to_the_dead_letter_topic_with_its_reason_and_the_service_goes_on(
        stack: Stack) -> None:
    rentals = stack.services["rentals"]
    operator = stack.token("operator", PROJECT)
    health_before = ok(call("GET", f"{rentals.url}/health", None))
    producer = KafkaProducer(bootstrap_servers=stack.broker.bootstrap, acks="all")
    key = PROJECT.encode()
    producer.send(RENTALS, key=key, value=b"{not json at all").get(timeout=10)
    unknown = env.seal(env.new_envelope(event_type="RentReceived", version=99, source="rentals", subject=PROJECT,
                                        data={"anything": "goes"}, actor="operator:intruder"), env.ChainHead())
    producer.send(RENTALS, key=key, value=canonical(unknown)).get(timeout=10)
    producer.close()

    wait_for("both records dead-lettered by rentals",
             lambda: ok(call("GET", f"{rentals.url}/health", None))["dead_letters"]
             >= health_before["dead_letters"] + 2, timeout_s=30)
    letters = read_records(stack.broker.bootstrap, DEADLETTER, key=key)
    by_consumer: dict[str, list[str]] = {}
    for record in letters:
        letter = record.envelope  # a dead letter is a JSON object too
        assert letter["topic"] == RENTALS
        by_consumer.setdefault(letter["consumer"], []).append(letter["reason"])
    reasons = " | ".join(by_consumer.get("rentals", []))
    assert "not valid UTF-8 JSON" in reasons
    assert "99" in reasons  # the unknown version is named
    # The consumer went on: a rent payment right after is applied and shown.
    lease_id = ok(call("GET", f"{rentals.url}/v1/projects/{PROJECT}/leases", operator))["items"][0]["lease_id"]
    paid = post_until_ok(f"{rentals.url}/v1/leases/{lease_id}/payments", operator,
                         {"amount": "1.23", "received_on": "2026-04-01"}, key="after-poison")
    assert paid["payment"]["amount"] == "1.23"
    # The dividends service reads the same topic: it parks the records too and keeps serving.
    wait_for("dividends parked the poison too",
             lambda: ok(call("GET", f"{stack.services['dividends'].url}/health", None))["dead_letters"] >= 2)
    report("poison-record", {"dead_letters_by_consumer": {k: len(v) for k, v in sorted(by_consumer.items())},
                             "reasons": reasons[:200]})


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a projection file, rows sorted (the state, the offsets, the bookkeeping)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["ledger", "rentals", "dividends"])
def test_a_projection_deleted_while_its_service_is_stopped_is_rebuilt_identically(stack: Stack, name: str) -> None:
    svc = stack.services[name]
    settled(stack)  # nobody writes meanwhile: the rebuilt projection must hold exactly what the first did
    svc.stop()
    before = _dump(svc.projection)
    svc.delete_projection()
    seconds = svc.start()
    svc.stop()
    after = _dump(svc.projection)
    svc.start()
    differing = [t for t in before if before[t] != after.get(t)]
    assert differing == [], {t: (len(before[t]), len(after.get(t, []))) for t in differing}
    rows = sum(len(v) for k, v in before.items() if not k.startswith("_"))
    report(f"rebuild-{name}", {"tables": len(before), "rows": rows, "events": len(before.get("_events", [])),
                               "rebuilt_and_caught_up_s": round(seconds, 1)})
