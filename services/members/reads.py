"""Every query of the members projection: what the handlers decide on and what the API renders."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.contracts.topics import LEDGER_ENTRIES
from services.runtime.handling import Refused
from services.runtime.store import ProjectionStore

#: ``sync(topics)``: wait until the projection has applied what the log holds now of ``topics``.
Sync = Callable[[Sequence[str]], Mapping[str, Mapping[int, int]]]


def unknown(what: str, field: str, value: str) -> Refused:
    """404 for an unknown thing named in the path, the body or the query."""
    return Refused(404, "not_found", f"no {what} {value!r}", field)


class MembersReads:
    """The reads of one request, over the service's projection store."""

    def __init__(self, store: ProjectionStore, sync: Sync) -> None:
        self.store = store
        self.sync = sync

    def require_collective(self, collective_id: str) -> str:
        """The collective's name; 404 unless the ledger registered it (catching up with the ledger once on a miss)."""
        sql = "SELECT name FROM collectives WHERE collective_id=?"
        row = self.store.query_one(sql, (collective_id,))
        if row is None:
            self.sync([LEDGER_ENTRIES])
            row = self.store.query_one(sql, (collective_id,))
        if row is None:
            raise unknown("collective", "collective_id", collective_id)
        return str(row[0])

    def charter(self, collective_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT data FROM charters WHERE collective_id=?", (collective_id,))
        return json.loads(row[0]) if row else None

    def require_charter(self, collective_id: str) -> dict[str, Any]:
        found = self.charter(collective_id)
        if found is None:
            raise Refused(404, "no_charter", f"collective {collective_id!r} has no charter yet "
                          "(PUT /v1/collectives/{collective_id}/charter)", "collective_id")
        return found
