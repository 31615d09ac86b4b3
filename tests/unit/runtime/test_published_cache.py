"""The writer's record of what it validated: the projection does not validate those bytes again."""

from __future__ import annotations

from services.contracts import envelope as env
from services.runtime.kafka_io import OutRecord
from services.runtime.projector import PublishedCache


def record(n: int) -> OutRecord:
    sealed, value = env.seal_encoded(env.new_envelope(
        event_type="PeriodClosed", version=1, source="ledger", subject="lianmeng",
        data={"collective_id": "lianmeng", "period": f"2025-{n:02d}"}, actor="accountant:x"), env.ChainHead(n - 1))
    return OutRecord("baotuan.ledger.entries", sealed, value, [])


def test_only_the_exact_bytes_produced_give_back_the_envelope_and_only_once() -> None:
    cache = PublishedCache()
    first, second = record(1), record(2)
    cache.add([first, second])
    tampered = first.value.replace(b"2025-01", b"2025-02")
    assert cache.take(tampered) is False  # other bytes: the consumer validates them
    assert cache.take(None) is False
    assert cache.take(bytes(first.value)) is True  # an equal copy, as the consumer receives it
    assert cache.take(first.value) is False  # a second copy in the log takes the full path
    assert len(cache) == 1


def test_the_cache_forgets_the_oldest_beyond_its_limit() -> None:
    cache = PublishedCache(limit=3)
    records = [record(n) for n in range(1, 6)]
    cache.add(records[:2])
    cache.add(records[2:])
    assert len(cache) == 3
    assert cache.take(records[0].value) is False and cache.take(records[1].value) is False
    assert [cache.take(r.value) for r in records[2:]] == [True, True, True]
