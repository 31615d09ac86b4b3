"""The envelope contract of DESIGN §4: sealing, what is refused, versions and ids (the codec and the chain:
test_codec.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.contracts import envelope as env
from services.contracts.codec import canonical, decode_envelope
from services.contracts.events import SCHEMAS, UPCASTERS, upcast
from services.contracts.topics import TOPICS, topic_of
from services.contracts.validation import read_envelope, validate_envelope

GENESIS = env.ChainHead()


def rent(seq_head: env.ChainHead = GENESIS, amount: str = "109200.00", **data: Any) -> dict[str, Any]:
    payload = {"payment_id": "pay-1", "lease_id": "lease-binhai-b01", "project_id": "binhai-park",
               "amount": amount, "received_on": "2025-03-10", **data}
    return env.seal(env.new_envelope(event_type="RentReceived", version=1, source="rentals", subject="binhai-park",
                                     data=payload, actor="operator:binhai", occurred_at="2026-03-31T08:00:00Z"),
                    seq_head)


def test_a_valid_envelope_passes_strict_validation() -> None:
    validate_envelope(rent(), strict=True)


@pytest.mark.parametrize("mutate, field, message", [
    (lambda e: e.pop("event_id"), "event_id", "missing envelope field"),
    (lambda e: e.pop("data"), "data", "missing envelope field"),
    (lambda e: e.__setitem__("seq", "1"), "seq", "positive integer"),
    (lambda e: e.__setitem__("version", True), "version", "positive integer"),
    (lambda e: e.__setitem__("event_id", "not-a-uuid"), "event_id", "uuid"),
    (lambda e: e.__setitem__("occurred_at", "2026-03-31 08:00"), "occurred_at", "UTC"),
    (lambda e: e.__setitem__("type", "RentStolen"), "type", "unknown event type"),
    (lambda e: e.__setitem__("version", 7), "version", "unknown version"),
    (lambda e: e["data"].__setitem__("amount", "109200"), "data.amount", "two decimals"),
    (lambda e: e["data"].__setitem__("amount", "-5.00"), "data.amount", "negative"),
    (lambda e: e["data"].pop("lease_id"), "data.lease_id", "Missing"),
    (lambda e: e.__setitem__("hash", "0" * 64), "hash", "does not match"),
    (lambda e: e.__setitem__("causation_id", 5), "causation_id", "string or null"),
])
def test_bad_envelopes_are_refused_with_the_field_named(mutate: Any, field: str, message: str) -> None:
    bad = copy.deepcopy(rent())
    mutate(bad)
    with pytest.raises(env.EnvelopeError, match=message) as err:
        validate_envelope(bad)
    assert err.value.field == field


def test_seal_encoded_gives_the_sealed_envelope_and_exactly_its_record_value() -> None:
    unsealed = env.new_envelope(event_type="RentReceived", version=1, source="rentals", subject="binhai-park",
                                data={"amount": "1.00", "memo": "收租"}, actor="operator:binhai")
    sealed, value = env.seal_encoded(unsealed, env.ChainHead(4, "a" * 64))
    assert sealed == env.seal(unsealed, env.ChainHead(4, "a" * 64))
    assert value == canonical(sealed)
    assert decode_envelope(value) == sealed
    assert unsealed["hash"] == "" and sealed["seq"] == 5  # the unsealed envelope is left as it was


def test_readers_ignore_unknown_fields_but_writers_refuse_them() -> None:
    sealed = rent(note="from a newer writer")
    validate_envelope(sealed, strict=False)
    with pytest.raises(env.EnvelopeError, match="Unknown field") as err:
        validate_envelope(sealed, strict=True)
    assert err.value.field == "data.note"


def test_old_versions_are_upcast_step_by_step_to_the_latest(monkeypatch: pytest.MonkeyPatch) -> None:
    # Publish a hypothetical v2 of ExpenseRecorded that renamed memo -> note; v1 records must still read.
    from marshmallow import fields

    from services.contracts.events import ExpenseRecorded

    class ExpenseRecordedV2(ExpenseRecorded):
        memo = None  # type: ignore[assignment]
        note = fields.String(load_default="")

    monkeypatch.setitem(SCHEMAS, ("ExpenseRecorded", 2), ExpenseRecordedV2)
    monkeypatch.setitem(UPCASTERS, ("ExpenseRecorded", 1),
                        lambda d: {**{k: v for k, v in d.items() if k != "memo"}, "note": d.get("memo", "")})
    old = env.seal(env.new_envelope(event_type="ExpenseRecorded", version=1, source="rentals", subject="p1",
                                    data={"expense_id": "e1", "project_id": "p1", "category": "maintenance",
                                          "amount": "60000.00", "incurred_on": "2025-03-31", "memo": "厂房维修"},
                                    actor="operator:x"), env.ChainHead())
    read = read_envelope(old)
    assert read["version"] == 2
    assert read["data"]["note"] == "厂房维修" and "memo" not in read["data"]
    assert upcast("ExpenseRecorded", 2, {"x": 1}) == (2, {"x": 1})


def test_derived_event_ids_are_deterministic() -> None:
    assert env.derived_event_id("abc", "jinqing-lianmeng") == env.derived_event_id("abc", "jinqing-lianmeng")
    assert env.derived_event_id("abc", "a") != env.derived_event_id("abc", "b")


def test_cloudevents_headers_repeat_the_identity() -> None:
    headers = dict(env.cloudevents_headers(rent()))
    assert headers["ce_type"] == b"RentReceived"
    assert headers["ce_source"] == b"rentals"
    assert headers["ce_specversion"] == b"1.0"


def test_every_event_type_has_a_topic_and_a_schema() -> None:
    for topic in TOPICS.values():
        for event_type in topic.event_types:
            assert topic_of(event_type) == topic.name
            assert (event_type, 1) in SCHEMAS


def test_new_ids_are_version_4_uuids_unique_across_buffers_and_after_a_fork() -> None:
    import os
    import uuid

    ids = [env.new_uuid() for _ in range(1_000)]  # more than one 4 KB buffer
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not hand out what is left in the parent's buffer
        os.close(read)
        os.write(write, "\n".join(env.new_uuid() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as handle:
        child = handle.read().split("\n")
    os.waitpid(pid, 0)
    parent = [env.new_uuid() for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)
