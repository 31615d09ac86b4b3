"""The audit on a real log: the Binhai scenario through the three services, then `baotuan audit` from Kafka,
the exported archive and its tampers, and the books checked by hledger and bean-check against the ledger.

One broker of the module's own (an empty log: the audit reads everything on it) and the services in-process,
served over real HTTP so the audit can compare balances with the ledger service; the scenario's village with
members (its register and 2025 plan) puts baotuan.members.v1 on the log too, so every topic of record is there.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from forgery import renumber, reseal
from kafka_helpers import read_records
from werkzeug.serving import BaseWSGIServer, make_server

from services.audit.cli import audit_command, export_command
from services.contracts import envelope as env
from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import DIVIDENDS, RECORD_TOPICS, RENTALS
from services.devtools.broker import LocalBroker, free_port
from services.devtools.scenario.loader import ApiClient, Endpoints, import_scenario
from services.devtools.scenario.schemas import read_scenario
from services.devtools.synthetic import archive_line
from services.dividends.app import create_app as dividends_app
from services.ledger.app import create_app as ledger_app
from services.members.app import create_app as members_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import PROJECT_ROOT, Settings
from services.runtime.kafka_io import end_offsets
from services.runtime.service import EventService

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HLEDGER = shutil.which("hledger")
BEAN_CHECK = Path(sys.executable).parent / "bean-check"


@dataclass
class World:
    bootstrap: str
    ledger_url: str
    auditor_token: str
    root: Path
    villages: list[str]
    unpaid: str

    def ledger_trial_balance(self, collective_id: str) -> dict[str, int]:
        response = requests.get(f"{self.ledger_url}/v1/collectives/{collective_id}/trial-balance", timeout=30,
                                headers={"Authorization": f"Bearer {self.auditor_token}"})
        assert response.status_code == 200, response.text
        return {row["code"]: parse_yuan(row["balance"], allow_negative=True) for row in response.json()["accounts"]}


def serve(app: Flask) -> tuple[str, BaseWSGIServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def settle(ledger: EventService, timeout: float = 60.0) -> None:
    """Wait until the ledger has published every entry it owes (derived entries come a moment later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ledger.sync()
        if ledger.pending_derived() == 0:
            ledger.sync()
            if ledger.pending_derived() == 0:
                return
        time.sleep(0.2)
    raise AssertionError("the ledger still owes derived entries")


def members_covered(members: EventService) -> None:
    """Wait for the members service's checkpoint of what the scenario wrote on baotuan.members.v1 (the
    village's register and plan; its timer writes one once no write came for a while)."""
    deadline = time.monotonic() + 60
    while members.health()["checkpoints"]["uncovered_events"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert members.health()["checkpoints"]["uncovered_events"] == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("audits the whole log: needs a broker of its own, with an empty log")
    root = tmp_path_factory.mktemp("audit")
    broker = LocalBroker(root / "kafka", free_port(), free_port())
    broker.start()
    settings = Settings(bootstrap_servers=broker.bootstrap, data_dir=root / "data", tokens_file=root / "tokens.json",
                        request_timeout_s=20)
    apps: list[Flask] = []
    servers: list[BaseWSGIServer] = []
    try:
        urls = {}
        for name, factory in (("ledger", ledger_app), ("rentals", rentals_app), ("dividends", dividends_app),
                              ("members", members_app)):  # the scenario's village members and plan too
            app = factory(settings)
            apps.append(app)
            urls[name], server = serve(app)
            servers.append(server)
        assert settings.tokens_file is not None
        admin = add_token(settings.tokens_file, name="admin", role="admin")
        auditor = add_token(settings.tokens_file, name="auditor", role="auditor")
        scenario = read_scenario(PROJECT_ROOT / "data" / "binhai_scenario.json")
        client = ApiClient(Endpoints(**urls), admin)
        result = import_scenario(scenario, client)
        client.close()
        headers = {"Authorization": f"Bearer {admin}"}
        unpaid = ""
        for item in result.distributions:
            distribution_id = item.declared["distribution_id"]
            approved = requests.post(f"{urls['dividends']}/v1/distributions/{distribution_id}/approve", json={},
                                     headers=headers, timeout=30)
            assert approved.status_code == 200, approved.text
            for n, allocation in enumerate(approved.json()["allocations"]):
                if parse_yuan(allocation["payout"]) == 0:
                    continue
                if not unpaid and allocation["investor_type"] == "collective":
                    unpaid = f"{distribution_id}:{allocation['investor_id']}"  # one village still waits
                    continue
                paid = requests.post(f"{urls['dividends']}/v1/distributions/{distribution_id}/payments",
                                     json={"investor_id": allocation["investor_id"], "amount": allocation["payout"],
                                           "paid_on": "2026-02-10", "bank_reference": f"ICBC-{n:04d}"},
                                     headers=headers, timeout=30)
                assert paid.status_code == 201, paid.text
        villages = [c["collective_id"] for c in scenario.sections["collectives"]]
        members_covered(apps[3].extensions["baotuan_service"])
        settle(apps[0].extensions["baotuan_service"])
        yield World(broker.bootstrap, urls["ledger"], auditor, root, villages, unpaid)
    finally:
        for server in servers:
            server.shutdown()
        for app in apps:
            app.extensions["baotuan_service"].stop()
        broker.stop()


def test_the_audit_of_the_topics_finds_nothing_and_agrees_with_the_ledger_service(world: World) -> None:
    began = time.monotonic()
    done = CliRunner().invoke(audit_command, ["--bootstrap", world.bootstrap, "--json", "--ledger-url",
                                              world.ledger_url, "--token", world.auditor_token])
    seconds = time.monotonic() - began
    report = json.loads(done.output)
    assert done.exit_code == 0, [f["message"] for f in report["findings"]]
    on_broker = end_offsets(world.bootstrap, RECORD_TOPICS)  # the replay reads to them, past the last markers
    # Offsets count the transactions' markers too: the records are those a read_committed reader gets.
    assert report["records"] == len(read_records(world.bootstrap, RECORD_TOPICS)) > 400
    assert report["replayed_to"] == {t: {str(p): off for (tt, p), off in sorted(on_broker.items()) if tt == t}
                                     for t in RECORD_TOPICS}
    assert sorted(report["balances_compared"]) == sorted(world.villages) and report["notes"] == []
    assert report["distributions"] == 3 and report["collectives"] == 19
    assert report["member_plans"] == 1  # 联盟村's 2025 plan, recomputed
    assert report["events"]["DividendPaid"] > 30
    print(f"\naudit of {report['records']} records from Kafka: {seconds:.2f}s "
          f"(replay and checks {report['seconds']:.2f}s)")


@pytest.fixture(scope="module")
def archive(world: World) -> Path:
    path = world.root / "archive.jsonl"
    done = CliRunner().invoke(export_command, ["--format", "jsonl", "--bootstrap", world.bootstrap, "-o", str(path)])
    assert done.exit_code == 0, done.output
    return path


def audit_archive(path: Path) -> tuple[int, dict[str, Any]]:
    done = CliRunner().invoke(audit_command, ["--archive", str(path), "--json"])
    return done.exit_code, json.loads(done.output)


def places(report: dict[str, Any], check: str) -> list[tuple[str, int, int, str]]:
    return [(f["topic"], f["partition"], f["offset"], f["subject"]) for f in report["findings"] if f["check"] == check]


def test_the_exported_archive_audits_clean_and_every_tamper_is_named(world: World, archive: Path) -> None:
    rows = [json.loads(line) for line in archive.read_text(encoding="utf-8").splitlines()]
    status, report = audit_archive(archive)
    assert status == 0, [f["message"] for f in report["findings"]][:5]

    def where(row: dict[str, Any]) -> tuple[str, int, int, str]:
        return row["topic"], row["partition"], row["offset"], row["event"]["subject"]

    def tampered(change: Any, name: str) -> dict[str, Any]:
        copy = [json.loads(json.dumps(row)) for row in rows]
        change(copy)
        path = world.root / f"{name}.jsonl"
        # As the export writes them: records, and the skip lines of the offsets without one (transaction markers).
        path.write_text("".join(archive_line(r) if "event" in r else
                                json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in copy),
                        encoding="utf-8")
        status, report = audit_archive(path)
        assert status == 1
        return report

    assert any("skip" in row for row in rows), "every write is a transaction: its marker is a skip line"
    rents = [i for i, row in enumerate(rows) if row.get("event", {}).get("type") == "RentReceived"]
    first_rent, next_rent = rents[10], rents[11]
    assert rows[next_rent]["partition"] == rows[first_rent]["partition"]
    assert all("skip" in row for row in rows[first_rent + 1:next_rent]
               if (row["topic"], row["partition"]) == (RENTALS, rows[first_rent]["partition"]))

    def change_amount(copy: list[dict[str, Any]]) -> None:
        data = copy[first_rent]["event"]["data"]
        data["amount"] = format_yuan(parse_yuan(data["amount"]) + 1)

    assert places(tampered(change_amount, "amount"), "chain") == [where(rows[first_rent])]

    def drop(copy: list[dict[str, Any]]) -> None:
        del copy[first_rent]

    report = tampered(drop, "drop")
    assert places(report, "chain") == [where(rows[next_rent])]
    assert "1 record(s) missing" in next(f["message"] for f in report["findings"] if f["check"] == "chain")

    def swap(copy: list[dict[str, Any]]) -> None:
        copy[first_rent]["event"], copy[next_rent]["event"] = copy[next_rent]["event"], copy[first_rent]["event"]

    report = tampered(swap, "swap")
    assert [p[:3] for p in places(report, "chain")] == [where(rows[first_rent])[:3], where(rows[next_rent])[:3]]

    allocation = next(i for i, row in enumerate(rows) if row.get("event", {}).get("type") == "DividendAllocated"
                      and row["event"]["data"]["investor_id"] == "jinqing-lianmeng")

    def change_payout(copy: list[dict[str, Any]]) -> None:
        data = copy[allocation]["event"]["data"]
        data["payout"] = format_yuan(parse_yuan(data["payout"]) + 100_00)
        head = env.ChainHead()  # a forger who re-hashes the project's whole stream
        for row in copy:
            if row["topic"] == DIVIDENDS and "event" in row and row["event"]["subject"] == data["project_id"]:
                body = {k: v for k, v in row["event"].items() if k not in ("seq", "prev_hash", "hash")}
                row["event"] = env.seal(body, head)
                head = env.ChainHead(row["event"]["seq"], row["event"]["hash"])

    report = tampered(change_payout, "payout")
    assert places(report, "chain") == []
    assert where(rows[allocation]) in places(report, "distribution")
    assert any("payout of jinqing-lianmeng" in f["message"] for f in report["findings"])


def test_hledger_and_bean_check_accept_the_books_and_agree_with_the_ledger_service(world: World) -> None:
    if HLEDGER is None:
        pytest.skip("hledger is not installed (apt-get install hledger)")
    runner = CliRunner()
    books = world.root / "hledger"
    done = runner.invoke(export_command, ["--format", "hledger", "--bootstrap", world.bootstrap, "-o", str(books)])
    assert done.exit_code == 0, done.output
    beans = world.root / "beancount"
    done = runner.invoke(export_command, ["--format", "beancount", "--bootstrap", world.bootstrap, "-o", str(beans)])
    assert done.exit_code == 0, done.output
    from services.audit.exports.journals import hledger_account

    for village in world.villages:
        balance = subprocess.run([HLEDGER, "-f", str(books / f"{village}.journal"), "balance", "--flat", "-E",
                                  "--no-total", "-O", "csv"], capture_output=True, text=True, check=False)
        assert balance.returncode == 0, balance.stderr
        hledger = {account: 0 if amount == "0" else parse_yuan(amount.removesuffix(" CNY"), allow_negative=True)
                   for account, amount in list(csv.reader(balance.stdout.splitlines()))[1:]}
        service = world.ledger_trial_balance(village)
        # The service's balances are on each account's normal side; hledger's are debit-positive.
        from services.ledger.chart import lookup

        expected = {hledger_account(code): amount if lookup(code).normal_side == "debit" else -amount
                    for code, amount in service.items()}
        assert hledger == expected, village
        if BEAN_CHECK.exists():
            checked = subprocess.run([str(BEAN_CHECK), str(beans / f"{village}.beancount")], capture_output=True,
                                     text=True, check=False)
            assert checked.returncode == 0, checked.stdout + checked.stderr
    village = world.unpaid.split(":")[1]
    assert world.ledger_trial_balance(village)["112/binhai-park"] > 0  # the unpaid allocation is still owed


def test_the_workbook_and_csv_export_from_kafka_hold_every_village(world: World) -> None:
    runner = CliRunner()
    out = world.root / "csv"
    done = runner.invoke(export_command, ["--format", "csv", "--bootstrap", world.bootstrap, "-o", str(out)])
    assert done.exit_code == 0, done.output
    with (out / "trial_balance.csv").open(encoding="utf-8-sig") as handle:
        villages = {row["村集体编号"] for row in csv.DictReader(handle)}
    assert villages == set(world.villages)
    book = world.root / "lianmeng.xlsx"
    done = runner.invoke(export_command, ["--format", "xlsx", "--bootstrap", world.bootstrap, "--collective",
                                          "jinqing-lianmeng", "-o", str(book)])
    assert done.exit_code == 0 and book.stat().st_size > 4000


def test_a_reader_process_gives_the_same_replay_as_reading_in_process(world: World) -> None:
    from services.audit.checks.auditor import run_audit
    from services.audit.sources.kafka import KafkaSource

    alone = run_audit(KafkaSource(world.bootstrap, pipeline=False))
    piped = run_audit(KafkaSource(world.bootstrap, pipeline=True))
    assert alone.ok and piped.ok
    assert piped.stopped_at == alone.stopped_at
    assert piped.auditor.records == alone.auditor.records
    assert piped.auditor.by_type == alone.auditor.by_type
    for village in world.villages:
        assert piped.auditor.books.trial_balance(village) == alone.auditor.books.trial_balance(village)


def test_an_audit_cannot_read_a_broker_that_is_not_there_or_a_topic_that_does_not_exist(world: World) -> None:
    runner = CliRunner()
    gone = runner.invoke(audit_command, ["--bootstrap", f"127.0.0.1:{free_port()}", "--json"])
    assert gone.exit_code == 2
    unknown = runner.invoke(audit_command, ["--bootstrap", world.bootstrap, "--offsets", "baotuan.nothing.v1:0:5"])
    assert unknown.exit_code == 2 and "not on the broker" in unknown.output


def test_the_signed_archive_verifies_with_the_pinned_keys_and_every_resealed_forgery_names_its_stream(
        world: World, archive: Path) -> None:
    """Issue 14, done when: `baotuan keys export`, `baotuan export --format jsonl`, `baotuan audit --archive
    --trusted-keys` passes on the services' own log, and each re-sealed forgery of it names the stream."""
    from services.cli import main as baotuan
    from services.contracts.topics import CHECKPOINTS, LEDGER_ENTRIES
    from services.devtools.synthetic import archive_line

    runner = CliRunner()
    keys = world.root / "pinned"
    exported = runner.invoke(baotuan, ["keys", "export", "--output", str(keys), "--data-dir", str(world.root / "data")])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in archive.read_text(encoding="utf-8").splitlines()]
    checkpoints = [row for row in rows if row["topic"] == CHECKPOINTS and "event" in row]
    assert {row["event"]["data"]["topic"] for row in checkpoints} == set(RECORD_TOPICS)

    def line_of(row: dict[str, Any]) -> str:
        """A row as the export writes it: a record, or a skip line (offsets that hold only transaction markers)."""
        return archive_line(row) if "event" in row else json.dumps(row, separators=(",", ":")) + "\n"

    def audited(path: Path) -> tuple[int, dict[str, Any]]:
        done = runner.invoke(audit_command, ["--archive", str(path), "--trusted-keys", str(keys), "--json"])
        return done.exit_code, json.loads(done.output)

    status, clean = audited(archive)
    assert status == 0, clean["findings"][:5]
    assert clean["anchoring"]["authenticity_checked"] is True
    assert all(c["verified"] == c["count"] > 0 for c in clean["anchoring"]["checkpoints"].values())

    def last_checkpoint_end(topic: str, partition: int) -> int:
        return int(max(p["end_offset"] for row in checkpoints if row["event"]["data"]["topic"] == topic
                       for p in row["event"]["data"]["partitions"] if p["partition"] == partition))

    def forged(name: str, copy: list[dict[str, Any]], lines: list[str] | None = None) -> dict[str, Any]:
        path = world.root / f"forged-{name}.jsonl"
        path.write_text("".join(lines or [line_of(r) for r in copy]), encoding="utf-8")
        status, report = audited(path)
        assert status == 1, name
        for check in ("chain", "order", "schema"):  # re-sealed: the old checks pass
            assert report["checks"][check] == 0, (name, check, report["findings"][:3])
        return report

    def named(report: dict[str, Any], check: str) -> set[tuple[str, str]]:
        return {(f["topic"], f["subject"]) for f in report["findings"] if f["check"] == check and f["subject"]}

    rents = [i for i, row in enumerate(rows) if row.get("event", {}).get("type") == "RentReceived"
             and row["offset"] < last_checkpoint_end(RENTALS, row["partition"])]
    first = rows[rents[2]]
    project = first["event"]["subject"]

    copy = json.loads(json.dumps(rows))  # (a) an amount changed, the stream re-sealed
    copy[rents[2]]["event"]["data"]["amount"] = format_yuan(parse_yuan(first["event"]["data"]["amount"]) + 100_00)
    reseal(copy, RENTALS, project)
    assert (RENTALS, project) in named(forged("amount", copy), "anchored")

    copy = json.loads(json.dumps(rows))  # (b) a record dropped, the stream re-sealed, offsets renumbered
    del copy[rents[2]]
    reseal(copy, RENTALS, project)
    renumber(copy, RENTALS, first["partition"])
    assert (RENTALS, project) in named(forged("drop", copy), "anchored")

    # (c) the last records of two streams cut off, from a record before the last checkpoint on; offsets renumbered
    streams: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["topic"] == LEDGER_ENTRIES and "event" in row:
            streams.setdefault(row["event"]["subject"], []).append(row)
    tails = {}
    for subject, stream in streams.items():
        covered = [n for n, row in enumerate(stream) if row["offset"] < last_checkpoint_end(LEDGER_ENTRIES,
                                                                                            row["partition"])]
        if covered and covered[-1] > 0:
            tails[subject] = stream[covered[-1]:]
    two = sorted(tails)[:2]
    assert len(two) == 2
    gone = [row for subject in two for row in tails[subject]]
    copy = [json.loads(json.dumps(row)) for row in rows if not any(row is cut for cut in gone)]
    for partition in {row["partition"] for row in gone}:
        renumber(copy, LEDGER_ENTRIES, partition)
    assert {(LEDGER_ENTRIES, subject) for subject in two} <= named(forged("cut", copy), "anchored")

    lines = [line_of(row) for row in rows]  # (d) a line with a duplicate "amount" key
    amount = first["event"]["data"]["amount"]
    lines[rents[2]] = lines[rents[2]].replace(f'"amount":"{amount}"', f'"amount":"1.00","amount":"{amount}"', 1)
    report = forged("duplicate", rows, lines)
    [dup] = [f for f in report["findings"] if f["check"] == "canonical"]
    assert (dup["topic"], dup["partition"], dup["offset"], dup["subject"]) == \
        (RENTALS, first["partition"], first["offset"], project) and 'duplicate key "amount"' in dup["message"]
