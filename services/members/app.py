"""The members service's composition root: projection store, event runtime and HTTP app."""

from __future__ import annotations

from flask import Flask

from services.members.api import blp
from services.members.projection import SCHEMA, fold
from services.runtime.composition import event_service, service_app
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.service import EventService

DESCRIPTION = """A village's own distribution (DESIGN §11): its charter (章程: share kinds and weights, the
reserve minimum, the date shares were fixed, the quorum and majority of its meetings), its member households
and their shares, share transfers and certificates (股权证), and its yearly distribution plans (收益分配方案):
the distributable amount from the books, the appropriations, the household split exact to the fen, the
meeting's vote, the household payments and the public notice (公示). Reads `baotuan.ledger.entries.v1`;
writes `baotuan.members.v1`."""


def build_service(settings: Settings, log: EventLog | None = None) -> EventService:
    """The members runtime: its projection file, the topics it reads and the one it writes."""
    return event_service("members", settings, SCHEMA, fold, log)


def create_app(settings: Settings | None = None, log: EventLog | None = None) -> Flask:
    """Build and start the service, and return its Flask app."""
    settings = settings or Settings.from_env()
    svc = build_service(settings, log)
    return service_app(svc, settings, blueprints=[blp], description=DESCRIPTION)
