"""The one table of topics (services/contracts/topics.py): who writes and who reads each topic.

The services' apps, the Kafka ACLs and docs/security.md must all say what the table says.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from services.contracts.topics import (
    ACCOUNTS,
    AUDITOR,
    CHECKPOINTS,
    DEADLETTER,
    DIVIDENDS,
    LEDGER_ENTRIES,
    LEDGER_INVESTMENTS,
    MEMBERS,
    RECORD_TOPICS,
    RENTALS,
    TOPICS,
    WRITERS,
    inputs_of,
    owned_by,
    owner_of,
    standard_grants,
)
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

PROJECT_ROOT = Path(__file__).resolve().parents[3]

#: DESIGN §2 (and §6 step 1: rentals reads the declared distributions to tell a late payment or expense; §11:
#: members reads the villages' books for the distributable amount, the ledger posts the plans' entries);
#: people's accounts are the ledger's, and every service reads them (docs/security.md).
EXPECTED = {
    "ledger": ([LEDGER_ENTRIES, LEDGER_INVESTMENTS, ACCOUNTS], [DIVIDENDS, MEMBERS]),
    "rentals": ([RENTALS], [LEDGER_INVESTMENTS, DIVIDENDS, ACCOUNTS]),
    "dividends": ([DIVIDENDS], [LEDGER_INVESTMENTS, RENTALS, ACCOUNTS]),
    "members": ([MEMBERS], [LEDGER_ENTRIES, ACCOUNTS]),
}


def test_each_topic_of_record_has_one_writer_its_owner_and_only_known_principals_appear() -> None:
    principals = {*WRITERS, AUDITOR}
    for name, topic in TOPICS.items():
        assert set(topic.writers) <= set(WRITERS), name
        assert set(topic.readers) <= principals, name
        assert AUDITOR in topic.readers and AUDITOR not in topic.writers, name
    for name in RECORD_TOPICS:
        assert TOPICS[name].writers == (owner_of(name),), name
        assert owner_of(name) in TOPICS[name].readers  # a service folds its own topics
    assert TOPICS[CHECKPOINTS].writers == WRITERS and set(WRITERS) <= set(TOPICS[CHECKPOINTS].readers)
    assert TOPICS[DEADLETTER].writers == WRITERS and TOPICS[DEADLETTER].readers == (AUDITOR,)


def test_what_each_service_writes_and_consumes() -> None:
    assert {service: (owned_by(service), inputs_of(service)) for service in WRITERS} == {
        service: (sorted(owned, key=RECORD_TOPICS.index), sorted(inputs, key=RECORD_TOPICS.index))
        for service, (owned, inputs) in EXPECTED.items()}


@pytest.mark.parametrize("service", WRITERS)
def test_each_app_consumes_exactly_what_its_kafka_user_may_read(service: str, tmp_path: Path) -> None:
    app = importlib.import_module(f"services.{service}.app")
    settings = Settings(bootstrap_servers="unused:9092", data_dir=tmp_path, tokens_file=None)
    svc = app.build_service(settings, InMemoryLog())
    grant = standard_grants()[service]
    owned, inputs = EXPECTED[service]
    assert set(svc.owned) == {*owned, CHECKPOINTS} == set(grant.write) - {DEADLETTER}
    assert set(svc.inputs) == {*owned, *inputs, CHECKPOINTS} == set(grant.read)


def test_the_auditor_reads_every_topic_and_writes_none() -> None:
    grants = standard_grants()
    assert set(grants) == {*WRITERS, AUDITOR}
    assert set(grants[AUDITOR].read) == set(TOPICS) and grants[AUDITOR].write == ()


def test_the_grants_table_in_security_md_is_the_table_of_topics() -> None:
    text = (PROJECT_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| every `baotuan\.` topic \|$", text, re.MULTILINE)
    assert {user for user, _, _ in rows} == {*WRITERS, AUDITOR}

    def topics(cell: str) -> set[str]:
        cell = re.sub(r"\([^)]*\)", "", cell).strip()
        if cell == "every baotuan topic":
            return set(TOPICS)
        if cell == "nothing":
            return set()
        return {f"baotuan.{short.strip()}.v1" for short in cell.split(",")}

    grants = standard_grants()
    for user, read, write in rows:
        assert topics(read) == set(grants[user].read), user
        assert topics(write) == set(grants[user].write), user
