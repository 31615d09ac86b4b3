"""Late rent no longer vanishes from the dividends (DESIGN §6 step 1), through the ledger, rentals and dividends
apps on one in-memory event log (the story: tests/dividends_late_items.py; on a broker, with the audit of the
whole log, in tests/integration/dividends/test_late_items_kafka.py)."""

from __future__ import annotations

from conftest import running
from dividends_late_items import Services, late_rent_and_expense_join_the_next_distribution

from services.dividends.app import create_app as dividends_app
from services.ledger.app import create_app as ledger_app
from services.rentals.app import create_app as rentals_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog


def test_late_rent_and_expense_join_the_next_distribution(memory_settings: Settings, memory_log: InMemoryLog) -> None:
    assert memory_settings.tokens_file is not None
    admin = add_token(memory_settings.tokens_file, name="admin", role="admin")
    with running(ledger_app, memory_settings, memory_log) as ledger, \
            running(rentals_app, memory_settings, memory_log) as rentals, \
            running(dividends_app, memory_settings, memory_log) as dividends:
        late_rent_and_expense_join_the_next_distribution(Services(ledger, rentals, dividends, admin))
