"""The dividends service's composition root: projection store, event runtime and HTTP app."""

from __future__ import annotations

from flask import Flask

from services.dividends.api import blp
from services.dividends.projection import SCHEMA, fold
from services.runtime.composition import event_service, service_app
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.service import EventService

DESCRIPTION = """Distribution policies per project, distributions declared over an inclusive period
(DESIGN §6: rent − expenses − fee − tax, the pool, capital-days, the largest-remainder split, the
guarantor's top-ups), approval, payment per investor, and the queries on them. Reads
`baotuan.ledger.investments.v1` and `baotuan.rentals.v1`; writes `baotuan.dividends.v1`."""


def build_service(settings: Settings, log: EventLog | None = None) -> EventService:
    """The dividends runtime: its projection file, the topics it reads and the one it writes."""
    return event_service("dividends", settings, SCHEMA, fold, log)


def create_app(settings: Settings | None = None, log: EventLog | None = None) -> Flask:
    """Build and start the service, and return its Flask app."""
    settings = settings or Settings.from_env()
    svc = build_service(settings, log)
    return service_app(svc, settings, blueprints=[blp], description=DESCRIPTION)
