"""Composition root of the rentals service: the projection store, the event service, the Flask app."""

from __future__ import annotations

from flask import Flask

from services.contracts.topics import inputs_of, owned_by
from services.rentals.api import blp
from services.rentals.projection import SCHEMA, fold
from services.runtime.accounts import with_accounts
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.http import create_service_app
from services.runtime.service import EventService
from services.runtime.store import ProjectionStore

DESCRIPTION = (
    "Buildings, leases, rent invoices, rent received and expenses of the projects registered on the "
    "ledger. Writes publish to baotuan.rentals.v1 and answer once the event is in Kafka and applied; "
    "the projection is rebuilt only from baotuan.rentals.v1, baotuan.ledger.investments.v1 and "
    "baotuan.dividends.v1 (the declared distributions: a payment or expense dated inside one and recorded "
    "after it is late, and its answer says so)."
)


def build_service(settings: Settings, log: EventLog | None = None) -> EventService:
    """The rentals event service: writes baotuan.rentals.v1, reads it, the ledger's projects and the
    declared distributions."""
    schema, folded = with_accounts(SCHEMA, fold)  # who a session or an account's token is
    store = ProjectionStore(settings.data_dir / "rentals.sqlite", schema)
    return EventService(name="rentals", settings=settings, store=store, fold=folded,
                        inputs=inputs_of("rentals"), owned=owned_by("rentals"), log=log)


def create_app(settings: Settings | None = None, log: EventLog | None = None) -> Flask:
    """Build and start the rentals service, and return its Flask app."""
    settings = settings or Settings.from_env()
    svc = build_service(settings, log)
    svc.start()
    return create_service_app(title="baotuan rentals", service=svc, settings=settings, blueprints=[blp],
                              description=DESCRIPTION)
