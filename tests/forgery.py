"""What a forger who holds an archive and knows the hash rule does to it: the shared tools of the tamper tests.

Not a test module; test modules import it by name (tests/ is on ``sys.path``, as for ``conftest``).
Rows are archive lines as dicts: ``{"topic", "partition", "offset", "event": {envelope}, …}``.
"""

from __future__ import annotations

from typing import Any

from services.contracts import envelope as env

Row = dict[str, Any]


def reseal(rows: list[Row], topic: str, subject: str) -> None:
    """Re-hash a whole stream (seq renumbered too) after a change, so the chain checks pass again."""
    head = env.ChainHead()
    for row in rows:
        event = row.get("event")  # None: an archive's skip line (offsets without a record)
        if row["topic"] == topic and event is not None and event["subject"] == subject:
            resealed = env.seal({k: v for k, v in event.items() if k not in ("seq", "prev_hash", "hash")}, head)
            row["event"] = resealed
            head = env.ChainHead(resealed["seq"], resealed["hash"])


def renumber(rows: list[Row], topic: str, partition: int) -> None:
    """Offsets 0, 1, 2 … again in a partition, so no offset is missing (and no skip line says otherwise)."""
    rows[:] = [r for r in rows if not ("skip" in r and (r["topic"], r["partition"]) == (topic, partition))]
    for offset, row in enumerate(r for r in rows if (r["topic"], r["partition"]) == (topic, partition)):
        row["offset"] = offset
