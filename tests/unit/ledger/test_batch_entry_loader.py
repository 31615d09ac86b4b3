"""The batch endpoint reads its entries with a compiled loader: the same answers as marshmallow."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from marshmallow import ValidationError

from services.contracts.validation import FastLoader
from services.ledger.schemas import BatchEntryRequest

BAD: list[Any] = [None, 1, 1.5, True, "", " ", "x" * 600, "1234.5", "-1.00", "0.00", "2025-02-30", [], {},
                  "12.3456", "１２.００"]


def bodies() -> Iterator[dict[str, Any]]:
    rng = random.Random(5)
    for i in range(40):
        fen = rng.randrange(1, 10**10)
        part = rng.randrange(1, fen + 1) if fen > 1 else 1
        debits = [{"account": "102", "debit": f"{part // 100}.{part % 100:02d}"}]
        if fen > part:
            debits.append({"account": "141/binhai-park", "debit": f"{(fen - part) // 100}.{(fen - part) % 100:02d}"})
        body: dict[str, Any] = {"date": f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                                "lines": [*debits, {"account": "501", "credit": f"{fen // 100}.{fen % 100:02d}"}],
                                "collective_id": f"village-{i}"}
        if i % 3:
            body["memo"] = "收到租金" * (i % 4)
        yield body


def mutations(body: dict[str, Any]) -> Iterator[Any]:
    for key, value in body.items():
        yield {k: v for k, v in body.items() if k != key}
        for bad in BAD:
            yield {**body, key: bad}
        if isinstance(value, list):
            yield {**body, key: []}
            yield {**body, key: value * 80}
            for line_key in ("account", "debit", "credit"):
                for bad in BAD:
                    yield {**body, key: [{**value[0], line_key: bad}, *value[1:]]}
            yield {**body, key: [{**value[0], "debit": "1.00", "credit": "1.00"}, *value[1:]]}
            yield {**body, key: [{"account": "102"}, *value[1:]]}
            yield {**body, key: [{**value[0], "extra": 1}, *value[1:]]}
    yield {**body, "unknown_field": "x"}
    yield [body]
    yield None


def outcome(load: Any, body: Any) -> Any:
    try:
        return ("ok", load(copy.deepcopy(body)))
    except ValidationError as exc:
        return ("refused", exc.messages)


def test_the_compiled_loader_answers_exactly_as_marshmallow_on_valid_and_mutated_entries() -> None:
    fast = FastLoader(BatchEntryRequest)
    assert fast.compiled  # the schema compiles: the fast path is really taken
    schema = BatchEntryRequest()
    compared = refused = 0
    for body in bodies():
        assert fast.fast(copy.deepcopy(body)) == schema.load(copy.deepcopy(body))
        for mutated in mutations(body):
            expected = outcome(schema.load, mutated)
            assert outcome(fast.load, mutated) == expected, mutated
            compared += 1
            refused += expected[0] == "refused"
    assert compared > 2_000 and refused > 1_000
