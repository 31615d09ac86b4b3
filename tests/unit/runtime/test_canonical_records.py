"""A service's projector dead-letters a record whose value is not its envelope's canonical
encoding (DESIGN §4), naming the problem, as it does an undecodable record."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from types import SimpleNamespace
from typing import Any

from services.contracts import envelope as env
from services.runtime.projector import Projector
from services.runtime.store import Pending


class Store:
    def __init__(self) -> None:
        self.batches: list[list[Pending]] = []

    def position(self, topic: str, partition: int) -> int:
        return 0  # nothing applied yet

    def seen(self, topic: str, partition: int, next_offset: int) -> None:
        pass

    def apply_batch(self, records: Sequence[Pending], fold: Any, *, chained: Collection[str],
                    on_failure: Callable[[Pending, Exception], None] | None = None) -> list[Any]:
        self.batches.append(list(records))
        return []


def test_a_non_canonical_value_goes_to_dead_letters_with_the_reason() -> None:
    sealed, value = env.seal_encoded(env.new_envelope(
        event_type="PeriodClosed", version=1, source="ledger", subject="lianmeng",
        data={"collective_id": "lianmeng", "period": "2025-03"}, actor="accountant:x"), env.ChainHead())
    duplicated = value.replace(b'"period":"2025-03"', b'"period":"2025-04","period":"2025-03"')
    spaced = value.replace(b'"seq":', b'"seq": ')
    letters: list[bytes] = []
    store = Store()
    project = Projector(name="ledger", store=store, fold=lambda *a: None,  # type: ignore[arg-type]
                        chained=["baotuan.ledger.entries.v1"], deadletter=lambda letter, key: letters.append(letter))
    records = [SimpleNamespace(offset=n, value=v, headers=[], key=b"lianmeng")
               for n, v in enumerate([value, duplicated, spaced])]
    project("baotuan.ledger.entries.v1", 0, records)
    [batch] = store.batches
    assert batch[0].envelope == sealed
    assert batch[1].envelope is None and 'duplicate key "period"' in str(batch[1].reason)
    assert batch[2].envelope is None and "whitespace" in str(batch[2].reason)
    assert len(letters) == 2 and b"not the canonical encoding" in letters[0]
