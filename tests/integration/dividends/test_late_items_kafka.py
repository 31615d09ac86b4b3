"""Late rent no longer vanishes from the dividends (DESIGN §6 step 1), through the three services on a real broker,
and ``baotuan audit`` of the whole log finds nothing: it recomputes exactly the declared numbers.

The story (tests/dividends_late_items.py) is told on the in-memory log too, in
tests/unit/dividends/test_late_items_api.py; here it is told on a broker of the module's own (an empty
log: the audit reads everything on it), then audited.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from dividends_late_items import Services, late_rent_and_expense_join_the_next_distribution
from flask import Flask

from services.audit.cli import audit_command
from services.devtools.broker import LocalBroker, free_port
from services.dividends.app import create_app as dividends_app
from services.ledger.app import create_app as ledger_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.service import EventService

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@dataclass
class World(Services):
    bootstrap: str
    ledger_service: EventService


def settle(ledger: EventService, timeout: float = 60.0) -> None:
    """Wait until the ledger has published every entry it owes (the villages' investment entries)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ledger.sync()
        if ledger.pending_derived() == 0:
            return
        time.sleep(0.2)
    raise AssertionError("the ledger still owes derived entries")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("audits the whole log: needs a broker of its own, with an empty log")
    root: Path = tmp_path_factory.mktemp("late-items")
    broker = LocalBroker(root / "kafka", free_port(), free_port())
    broker.start()
    settings = Settings(bootstrap_servers=broker.bootstrap, data_dir=root / "data", tokens_file=root / "tokens.json",
                        request_timeout_s=20)
    apps: list[Flask] = []
    try:
        for factory in (ledger_app, rentals_app, dividends_app):
            apps.append(factory(settings))
        assert settings.tokens_file is not None
        admin = add_token(settings.tokens_file, name="admin", role="admin")
        ledger, rentals, dividends = (app.test_client() for app in apps)
        yield World(ledger, rentals, dividends, admin, broker.bootstrap, apps[0].extensions["baotuan_service"])
    finally:
        for app in apps:
            app.extensions["baotuan_service"].stop()
        broker.stop()


def test_late_rent_and_expense_join_the_next_distribution_and_the_audit_agrees(world: World) -> None:
    late_rent_and_expense_join_the_next_distribution(world)

    # -- the auditor replays the whole log and gets exactly the declared numbers ------------------------
    settle(world.ledger_service)
    done = CliRunner().invoke(audit_command, ["--bootstrap", world.bootstrap, "--json"])
    report = json.loads(done.output)
    assert done.exit_code == 0, [f["message"] for f in report["findings"]]
    assert report["findings"] == [] and report["distributions"] == 3
