"""Composition root of the rentals service: the projection store, the event service, the Flask app."""

from __future__ import annotations

from flask import Flask

from services.rentals.api import blp
from services.rentals.projection import SCHEMA, fold
from services.runtime.composition import event_service, service_app
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.service import EventService

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
    return event_service("rentals", settings, SCHEMA, fold, log)


def create_app(settings: Settings | None = None, log: EventLog | None = None) -> Flask:
    """Build and start the rentals service, and return its Flask app."""
    settings = settings or Settings.from_env()
    svc = build_service(settings, log)
    return service_app(svc, settings, blueprints=[blp], description=DESCRIPTION)
