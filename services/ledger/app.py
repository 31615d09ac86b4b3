"""The ledger service's composition root: projection store, event runtime and HTTP app."""

from __future__ import annotations

from flask import Flask

from services.accounts.api import blueprints as accounts_blueprints
from services.accounts.api import install as install_accounts
from services.ledger.api import blueprints
from services.ledger.projection import SCHEMA, fold
from services.runtime.composition import event_service, service_app
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.service import EventService

DESCRIPTION = """Each village collective's double-entry books on the statutory chart of accounts
(财会〔2023〕14号): the registry of collectives, other investors and projects, land shares and cash
invested and withdrawn (the register of who holds what), balanced journal entries, reversals and
closed periods, the entries the ledger posts by itself (investments, dividends approved and paid),
and the reports: trial balance, 资产负债表, 收益及收益分配表 and the village income report (村村百万).
People's accounts, sign-in and sessions (`/v1/sessions`, `/v1/users`, `/v1/sign-ins`) are served here too.
Writes `baotuan.ledger.entries.v1`, `baotuan.ledger.investments.v1` and `baotuan.accounts.v1`; reads
`baotuan.dividends.v1`."""


def build_service(settings: Settings, log: EventLog | None = None) -> EventService:
    """The ledger runtime: its projection file, the topics it owns and the dividends topic it reads."""
    # It also owns people's accounts (docs/security.md): it keeps the registry their scopes name.
    return event_service("ledger", settings, SCHEMA, fold, log, owns_accounts=True)


def create_app(settings: Settings | None = None, log: EventLog | None = None) -> Flask:
    """Build and start the service, and return its Flask app."""
    settings = settings or Settings.from_env()
    svc = build_service(settings, log)
    app = service_app(svc, settings, blueprints=[*blueprints(), *accounts_blueprints()], description=DESCRIPTION)
    install_accounts(app, settings)
    return app
