"""What every service's command handlers share (the "one shape" of DESIGN §2).

A service is the same five files:

| file | role |
|---|---|
| ``schemas.py`` | marshmallow request/response schemas (parsing only) |
| ``handlers.py`` | pure functions ``handle_x(command, reads) -> Decision``: every decision and refusal |
| ``reads.py`` | every query of the projection (the handlers' and the API's reads) |
| ``projection.py`` | ``SCHEMA`` and ``fold``: every write to the projection |
| ``api.py`` | HTTP only: parse, authorize, call a handler inside the writer lock, render |

Handlers import neither Flask nor Kafka nor SQL: they take a command (a frozen dataclass, ids
already chosen by the caller) and a reads object, and return the events to publish plus a small
result (a few ids) to render and to store with the idempotency key; or they raise ``Refused``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.runtime.service import NewEvent


class Refused(Exception):
    """A command the service refuses: nothing is published. The HTTP layer answers it as JSON
    ``{"error": {"status", "code", "message", "field"}}`` with ``status`` (404 unknown thing,
    409 conflict with the state, 422 invalid, 403 not allowed)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.errors = errors

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message,
                                "field": self.field}
        if self.errors:
            body["errors"] = self.errors
        return {"error": body}


def not_found(what: str, field_name: str, value: str) -> Refused:
    """404 for an unknown thing named in the path or the body."""
    return Refused(404, "not_found", f"unknown {what} {value!r}", field_name)


@dataclass(frozen=True)
class Decision:
    """What a handler decided: the events to publish (in order) and the result to render and store."""

    events: Sequence[NewEvent]
    result: dict[str, Any] = field(default_factory=dict)
