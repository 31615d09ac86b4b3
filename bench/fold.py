"""The fold of a projection, in-process: N EntryPosted records delivered in polls to the ledger's projector.

``python -m bench.fold [--records N] [--poll 500] [--rounds 3]`` seals a registered collective and N
entries of two lines each, then delivers them (in polls of ``--poll`` records of one partition, as a
consumer would) to a :class:`services.runtime.projector.Projector` over a fresh ledger projection
store: decode, envelope check, fold, bookkeeping, one transaction per poll. It prints the best
records/s of ``--rounds`` runs as JSON. No broker: this is the projection's own cost.

To compare two versions of the fold, run it with each tree first on ``PYTHONPATH``, alternately
(the machine is shared: judge by the ratio of runs made one after the other).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from services.contracts.envelope import GENESIS, ChainHead, new_envelope, seal_encoded
from services.contracts.topics import LEDGER_ENTRIES, TOPICS
from services.ledger.projection import SCHEMA, fold
from services.runtime.projector import Projector
from services.runtime.store import ProjectionStore

VILLAGE = "fold-bench-village"


@dataclass(frozen=True)
class Delivered:
    """A consumed record as the projector reads it (kafka-python's ConsumerRecord has these fields)."""

    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def sealed_log(records: int) -> list[Delivered]:
    """A CollectiveRegistered and ``records - 1`` EntryPosted of one collective, one chain."""
    source = TOPICS[LEDGER_ENTRIES].owner
    head: ChainHead = GENESIS
    out: list[Delivered] = []

    def add(event_type: str, data: dict[str, object], day: int) -> None:
        nonlocal head
        instant = f"2026-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}T08:00:00Z"
        envelope = new_envelope(event_type=event_type, version=1, source=source, subject=VILLAGE, data=data,
                                actor="bench", occurred_at=instant)
        sealed, value = seal_encoded(envelope, head)
        head = ChainHead(sealed["seq"], sealed["hash"])
        out.append(Delivered(len(out), VILLAGE.encode(), value, []))

    add("CollectiveRegistered", {"collective_id": VILLAGE, "name": "Fold bench", "town": "Bench town"}, 0)
    for n in range(records - 1):
        amount = f"{1 + n % 9999}.{n % 100:02d}"
        day = n // 50
        add("EntryPosted", {"entry_id": new_envelope(event_type="x", version=1, source="x", subject="x", data={},
                                                     actor="x")["event_id"],
                            "collective_id": VILLAGE, "date": f"2026-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}",
                            "memo": f"bench entry {n}", "origin": {"kind": "manual"},
                            "lines": [{"account": "102", "debit": amount},
                                      {"account": "501", "credit": amount}]}, day)
    return out


def fold_once(log: list[Delivered], poll: int) -> float:
    """Seconds to fold ``log`` into a fresh ledger projection, ``poll`` records per delivery."""
    with tempfile.TemporaryDirectory(prefix="baotuan-fold-") as scratch:
        store = ProjectionStore(Path(scratch) / "ledger.sqlite", SCHEMA)
        store.anchor("ledger", [LEDGER_ENTRIES])
        projector = Projector(name="ledger", store=store, fold=fold, chained=[LEDGER_ENTRIES],
                              deadletter=lambda value, key: None)
        began = time.perf_counter()
        for first in range(0, len(log), poll):
            projector(LEDGER_ENTRIES, 0, log[first:first + poll])
        seconds = time.perf_counter() - began
        folded = store.query_one("SELECT COUNT(*) FROM _events")
        assert folded is not None and folded[0] == len(log), "every record is folded"
        assert store.deadletter_count() == 0
        store.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fold")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--poll", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    log = sealed_log(args.records)
    best = min(fold_once(log, args.poll) for _ in range(args.rounds))
    print(json.dumps({"records": len(log), "poll": args.poll, "seconds": round(best, 3),
                      "records_per_s": round(len(log) / best)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
