"""The dividends service on a real broker: what only a broker shows.

A rent the broker acknowledged a moment before a declaration is in it (the service waits until its
consumer has caught up with the input topics), and a service rebuilt from the broker's topics, and an
auditor's recompute of them, give exactly the declaration. The API's rules and refusals are tested on
the in-memory log (tests/unit/dividends/test_dividends_api.py); the data reaches the service the same
way in both (tests/dividends_world.py). Every test uses project ids of its own: the session broker is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import running
from dividends_world import World, two_villages_and_a_company, world_on
from kafka_helpers import read_records

from services.contracts.envelope import EnvelopeError
from services.contracts.topics import DIVIDENDS, LEDGER_INVESTMENTS, RENTALS
from services.contracts.validation import read_envelope
from services.dividends.app import create_app
from services.dividends.inputs import LogRecord, allocation_event_data, declared_event_data, recompute_declared
from services.runtime.config import Settings

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("dividends")
    settings = Settings(bootstrap_servers=kafka_bootstrap, data_dir=folder / "data",
                        tokens_file=folder / "tokens.json", request_timeout_s=15)
    with world_on(settings, folder) as world:
        yield world


def read_log(bootstrap: str, topics: list[str]) -> list[LogRecord]:
    """Every valid record of ``topics`` from the beginning to their current end, as the auditor reads them."""
    out: list[LogRecord] = []
    for r in read_records(bootstrap, topics):
        try:
            envelope = read_envelope(r.envelope)
        except EnvelopeError:
            continue  # a poison record (other tests make some): consumers dead-letter it, so do we
        out.append(LogRecord(r.topic, r.partition, r.offset, envelope))
    return out


def test_a_rent_acknowledged_just_before_the_declaration_is_in_it(world: World, unique: str) -> None:
    project = f"p-{unique}"
    two_villages_and_a_company(world, project, unique)
    world.policy(project, guaranteed_rate="0", guarantor_id=None)
    world.rent(project, "100000.00", "2025-03-10")
    world.rent(project, "50000.00", "2025-11-30")  # acknowledged by the broker, then straight to the board
    body = world.declare(project, "2025-01-01", "2025-12-31")
    assert body["gross_rent"] == "150000.00"


def test_a_replay_of_the_topics_reproduces_the_declaration_even_after_late_rent(
        world: World, unique: str, tmp_path: Path) -> None:
    project = f"p-{unique}"
    two_villages_and_a_company(world, project, unique)
    world.policy(project)
    world.rent(project, "300000.00", "2025-03-10")
    world.expense(project, "20000.00", "2025-05-01")
    declared = world.declare(project, "2025-01-01", "2025-12-31")

    # Rent for the period arrives after the declaration: the declaration does not change …
    world.rent(project, "40000.00", "2025-12-20", n=2)
    again = world.client.get(f"/v1/distributions/{declared['distribution_id']}", headers=world.board(project))
    assert again.get_json() == declared
    # … while a preview of the same period now sees it.
    preview = world.client.post(f"/v1/projects/{project}/distributions/preview", headers=world.board(project),
                                json={"period_start": "2025-01-01", "period_end": "2025-12-31"}).get_json()
    assert (preview["status"], preview["gross_rent"]) == ("preview", "340000.00")

    # A fresh service rebuilt from the topics alone shows the same declaration.
    fresh = Settings(bootstrap_servers=world.settings.bootstrap_servers, data_dir=tmp_path / "rebuilt",
                     tokens_file=world.settings.tokens_file, request_timeout_s=15)
    with running(create_app, fresh) as rebuilt:
        replayed = rebuilt.get(f"/v1/distributions/{declared['distribution_id']}", headers=world.board(project))
        assert replayed.get_json() == declared

    # And recomputing from the log with the recorded input_positions gives exactly the published events.
    bootstrap = world.settings.bootstrap_servers
    inputs = read_log(bootstrap, [LEDGER_INVESTMENTS, RENTALS])
    mine = [r.envelope for r in read_log(bootstrap, [DIVIDENDS]) if r.envelope["subject"] == project]
    [declaration] = [e["data"] for e in mine if e["type"] == "DistributionDeclared"]
    allocated = [e["data"] for e in mine if e["type"] == "DividendAllocated"]
    result = recompute_declared(inputs, declaration)
    assert declared_event_data(distribution_id=declaration["distribution_id"], project_id=project,
                               policy=declaration["policy"], result=result,
                               input_positions=declaration["input_positions"]) == declaration
    assert [allocation_event_data(distribution_id=declaration["distribution_id"], project_id=project, allocation=a)
            for a in result.allocations] == allocated
    assert result.gross_rent == 30000000
    assert [e["type"] for e in mine] == ["PolicySet", "DistributionDeclared", *["DividendAllocated"] * 3]
