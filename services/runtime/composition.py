"""What every service's composition root (``<service>/app.py``) does, written once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Flask

from services.contracts.topics import inputs_of, owned_by
from services.runtime.accounts import with_accounts
from services.runtime.config import Settings
from services.runtime.eventlog import EventLog
from services.runtime.http import create_service_app
from services.runtime.service import EventService
from services.runtime.store import Fold, ProjectionStore


def event_service(name: str, settings: Settings, schema: str, fold: Fold, log: EventLog | None = None, *,
                  owns_accounts: bool = False) -> EventService:
    """A service's runtime: its projection ``<data dir>/<name>.sqlite`` (with the people's accounts every
    service folds, to know who a session is), the topics the topics table says it writes and reads, and
    the log (Kafka unless ``log`` is given)."""
    schema, folded = with_accounts(schema, fold, owner=owns_accounts)
    store = ProjectionStore(settings.data_dir / f"{name}.sqlite", schema)
    return EventService(name=name, settings=settings, store=store, fold=folded, inputs=inputs_of(name),
                        owned=owned_by(name), log=log)


def service_app(service: EventService, settings: Settings, *, blueprints: Sequence[Any], description: str) -> Flask:
    """Start ``service`` (catch up with the log) and return its Flask app."""
    service.start()
    return create_service_app(title=f"baotuan {service.name}", service=service, settings=settings,
                              blueprints=blueprints, description=description)
