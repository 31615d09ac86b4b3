"""Benchmark 7 — the codec: the per-envelope cost of the contract's checks, compiled and not.

Every envelope a service folds, the audit replays or a writer produces goes through the
contract's codec and envelope check (``services.contracts.codec`` and ``.validation``). The
check is a compiled JSON Schema validator (``jsonschema-rs``) fed with the JSON Schemas
generated from the marshmallow contract; its baseline, measured in the same process on the
same envelopes, is the contract's own marshmallow check alone (what the compiled one must
agree with, and what names a problem). The batch endpoint's entry loader is measured the same
way against marshmallow's ``load``.

The envelopes are a synthetic log of every event type (``services.devtools.synthetic``, with
signed checkpoints); CPU time of this process, best of several rounds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.harness import Context, Figure, Outcome, say
from services.contracts import envelope as env
from services.contracts import validation
from services.contracts.codec import canonical, decode_envelope, inspect_value
from services.devtools.synthetic import LogWriter, small_scenario, synthetic_keys
from services.ledger.schemas import BatchEntryRequest


def rate(fn: Callable[[Any], Any], items: Sequence[Any], *, rounds: int = 5, min_seconds: float = 0.3) -> float:
    """Items per CPU second of ``fn`` over ``items`` (the best round: the least disturbed by other load)."""
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        passes = 0
        while True:
            for item in items:
                fn(item)
            passes += 1
            spent = time.process_time() - began
            if spent >= min_seconds / rounds:
                break
        best = min(best, spent / passes)
    return len(items) / best


def envelopes(villages: int, months: int) -> list[dict[str, Any]]:
    log = LogWriter(checkpoint_every=25, signing_keys=synthetic_keys())
    return [row["event"] for row in small_scenario(log, villages=villages, months=months).rows]


def batch_entries(count: int) -> list[dict[str, Any]]:
    """Entries of a batch request as a client sends them (canonical amounts, as most are)."""
    rng = random.Random(11)
    out = []
    for i in range(count):
        fen = rng.randrange(100, 10**9)
        out.append({"collective_id": f"village-{i % 40:02d}", "date": f"2026-{rng.randrange(1, 13):02d}-15",
                    "memo": "收到租金", "lines": [{"account": "102", "debit": f"{fen // 100}.{fen % 100:02d}"},
                                                {"account": "501", "credit": f"{fen // 100}.{fen % 100:02d}"}]})
    return out


def contract_alone(strict: bool) -> Callable[[dict[str, Any]], Any]:
    """The marshmallow check without the compiled one in front (what names a problem)."""
    def check(envelope: dict[str, Any]) -> None:
        validation._explain(envelope, strict)
    return check


def run(ctx: Context) -> Outcome:
    outcome = Outcome("codec", "7. Codec: per-envelope checks, compiled and by the contract alone")
    events = envelopes(villages=3 if ctx.quick else 6, months=6 if ctx.quick else 12)
    values = [canonical(event) for event in events]
    decoded = [decode_envelope(value) for value in values]
    kinds = sorted({event["type"] for event in events})
    say(f"  {len(events):,} envelopes of {len(kinds)} event types, {sum(map(len, values)) / len(values):.0f} "
        "bytes each on average")
    assert all(validation.envelope_problem(e) is None and validation.schema_valid(e, strict=True) for e in decoded)

    rows = []

    def compare(label: str, new: Callable[[Any], Any], old: Callable[[Any], Any], items: Sequence[Any],
                unit: str = "envelopes/s", old_label: str = "marshmallow alone") -> None:
        fast, slow = rate(new, items), rate(old, items)
        outcome.add(Figure(label, fast, unit, baseline=slow, baseline_label=old_label, ratio=fast / slow,
                           ratio_label="× faster"))
        rows.append(f"| {label} | {fast:,.0f} | {slow:,.0f} | {fast / slow:.1f} |")

    compare("Envelope check, readers (tolerant)", lambda e: validation.envelope_problem(e), contract_alone(False),
            decoded)
    compare("Envelope check, writers (strict)", lambda e: validation.envelope_problem(e, strict=True),
            contract_alone(True), decoded)

    def consume(value: bytes) -> None:  # a projection's path for a record it did not write
        validation.read_envelope(decode_envelope(value), value)

    def consume_alone(value: bytes) -> None:
        envelope = decode_envelope(value)
        validation._explain(envelope, False)
        validation.read_envelope(envelope, value)  # canonical bytes, hash, upcast (its check passes at once)

    compare("Read a record value (decode, canonical bytes, check, hash)", consume, consume_alone, values,
            unit="records/s", old_label="with the marshmallow check too")
    loader = validation.FastLoader(BatchEntryRequest)
    schema = BatchEntryRequest()
    compare("Batch entry loader (POST /v1/entries/batch)", loader.load, schema.load, batch_entries(1_000),
            unit="entries/s", old_label="marshmallow load")
    audit_rate = rate(inspect_value, values)
    heads: dict[tuple[str, str], env.ChainHead] = {}

    def seal(event: dict[str, Any]) -> None:
        key = (event["type"], event["subject"])
        head = heads.get(key, env.GENESIS)
        sealed, _ = env.seal_encoded(event, head)
        heads[key] = env.ChainHead(sealed["seq"], sealed["hash"])

    seal_rate = rate(seal, events)
    outcome.add(Figure("Audit read of a record value (decode, canonical bytes, own hash)", audit_rate, "records/s"))
    outcome.add(Figure("Seal an envelope (hash and record value)", seal_rate, "envelopes/s"))
    outcome.details += [
        "CPU time of this process, best of five rounds, on the same envelopes in the same process. *compiled*: "
        "the envelope check the services and the audit run (`services.contracts.validation`): a compiled JSON "
        "Schema validator (jsonschema-rs) fed with the JSON Schemas generated from the marshmallow schemas; "
        "*marshmallow alone*: the contract's own check, which decides (and names the problem) whenever the "
        "compiled one does not pass an envelope.",
        "",
        "| check | compiled (per s) | baseline (per s) | × |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Envelopes: a synthetic log of {len(events):,} events ({', '.join(kinds)}).",
    ]
    return outcome
