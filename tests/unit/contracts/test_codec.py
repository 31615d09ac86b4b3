"""The contract's one codec (DESIGN §4): what decoding refuses, the canonical bytes, the hash, the envelope
check, and the chain verifier (gap, fork, reorder, altered record)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts import envelope as env
from services.contracts.codec import (
    DuplicateKeys,
    EnvelopeError,
    canonical,
    canonical_or_none,
    content_hash,
    decode,
    decode_envelope,
    envelope_hash,
    hash_matches,
)
from services.contracts.topics import RENTALS
from services.contracts.validation import envelope_problem, schema_valid, validate_envelope


def rent(head: env.ChainHead = env.GENESIS, amount: str = "109200.00", **data: Any) -> dict[str, Any]:
    payload = {"payment_id": "pay-1", "lease_id": "lease-binhai-b01", "project_id": "binhai-park",
               "amount": amount, "received_on": "2025-03-10", **data}
    return env.seal(env.new_envelope(event_type="RentReceived", version=1, source="rentals", subject="binhai-park",
                                     data=payload, actor="operator:binhai", occurred_at="2026-03-31T08:00:00Z"),
                    head)


def stream(length: int) -> list[dict[str, Any]]:
    out = [rent(amount="1.00")]
    for n in range(2, length + 1):
        out.append(rent(env.ChainHead(out[-1]["seq"], out[-1]["hash"]), amount=f"{n}.00"))
    return out


def dumps(value: Any) -> bytes:
    """The canonical encoding as DESIGN §4 writes it for a subscriber."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- decoding ----------------------------------------------------------------------------------------------


def test_decoding_reads_utf8_json_bytes_or_text() -> None:
    assert decode('{"b":[1,true,null],"a":"联盟村"}'.encode()) == {"a": "联盟村", "b": [1, True, None]}
    assert decode('{"a":"联盟村"}') == {"a": "联盟村"}
    assert decode(b'{"n":123456789012345678901234567890}') == {"n": 123456789012345678901234567890}
    with pytest.raises(UnicodeDecodeError):
        decode(b'{"a":"\xff"}')
    with pytest.raises(json.JSONDecodeError):
        decode(b"{not json")


@pytest.mark.parametrize("raw", [b'{"amount":1.5}', b'{"a":[1,{"b":1e3}]}', b'{"a":-0.0}'])
def test_a_float_anywhere_is_refused_when_decoding(raw: bytes) -> None:
    with pytest.raises(EnvelopeError, match="floats are not allowed in events") as refused:
        decode(raw)
    assert refused.value.field == "data"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_when_decoding(constant: str) -> None:
    with pytest.raises(EnvelopeError, match=rf"^{constant} is not allowed in events$"):
        decode(f'{{"amount":{constant}}}')


def test_a_key_twice_is_refused_at_any_depth_unless_the_caller_names_duplicates_itself() -> None:
    with pytest.raises(DuplicateKeys) as twice:
        decode('{"a":{"b":1,"b":2,"c":3,"c":4}}')
    assert twice.value.keys == ["b", "c"] and str(twice.value) == 'duplicate key "b", duplicate key "c"'
    assert twice.value.field == "canonical" and isinstance(twice.value, EnvelopeError)
    with pytest.raises(DuplicateKeys, match='duplicate key "金额"'):
        decode('[{"金额":"1.00","金额":"2.00"}]')
    assert decode('{"a":{"b":1,"b":2}}', duplicates=True) == {"a": {"b": 2}}  # the last one counts


def test_a_record_value_must_be_a_json_object_and_says_why_not() -> None:
    with pytest.raises(EnvelopeError, match=r"^record value is not valid UTF-8 JSON: Expecting") as bad:
        decode_envelope(b"{not json")
    assert isinstance(bad.value.__cause__, json.JSONDecodeError)  # the audit quotes the decoder's own words
    with pytest.raises(EnvelopeError, match=r"^record value is not valid UTF-8 JSON: 'utf-8' codec"):
        decode_envelope(b"\xff\xfe")
    with pytest.raises(EnvelopeError, match=r"^record value must be a JSON object$"):
        decode_envelope(b"[1, 2]")
    with pytest.raises(EnvelopeError, match="floats are not allowed"):
        decode_envelope(canonical(rent()).replace(b'"109200.00"', b"109200.0"))
    with pytest.raises(EnvelopeError, match="NaN is not allowed in events"):
        decode_envelope(canonical(rent()).replace(b'"109200.00"', b"NaN"))
    sealed = rent()
    assert decode_envelope(canonical(sealed)) == sealed


# -- the canonical encoding ----------------------------------------------------------------------------------


def test_the_canonical_encoding_sorts_keys_uses_tight_separators_and_keeps_chinese() -> None:
    assert canonical({"b": 1, "a": "联盟村"}) == '{"a":"联盟村","b":1}'.encode()
    assert canonical({"a": [True, False, None, 0, "0.5"], "b": {}}) == b'{"a":[true,false,null,0,"0.5"],"b":{}}'


SAMPLES: list[Any] = [
    {"escapes": "\x00\x01\x07\x08\t\n\x0b\x0c\r\x0e\x1f\x7f\x80\u2028\u2029\ufeff\"\\/é联盟村😀"},
    {"ints": [2**63 - 1, -2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**30, -0, 0]},
    {"k\x00": 1, "k": 2, "\ud7ff": 1, "\ue000": 2, "😀": 3, "\uffff": 4, "": {"": []}},
    {10: "int keys", 9: "sorted as numbers, written as strings"},
    {"nested": {"z": [{"b": 1, "a": [[], {}]}], "y": ("a", "tuple")}},
    [1, "two", None],
    "just text",
]


@pytest.mark.parametrize("value", SAMPLES)
def test_the_canonical_bytes_are_exactly_json_dumps_sorted_compact_unescaped(value: Any) -> None:
    assert canonical(value) == dumps(value)
    assert canonical_or_none(value) == dumps(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_canonical_bytes_of_any_json_value_are_json_dumps_bytes(value: Any) -> None:
    assert canonical(value) == dumps(value)


def test_a_float_is_refused_naming_where_unless_a_request_body_is_hashed() -> None:
    for value, field in (({"a": [1, {"b": ("x", 2.5)}]}, "a[1].b[1]"), ({"a": {"b": {"c": float("nan")}}}, "a.b.c"),
                         ({"a": [True, None, 1, "1.0", 0.0]}, "a[4]")):
        with pytest.raises(EnvelopeError) as refused:
            canonical(value)
        assert refused.value.field == field
    body = {"amount": 12.3, "big": 1e16, "nan": float("nan"), "n": [1.0]}
    assert canonical(body, floats=True) == dumps(body)
    assert content_hash(body, floats=True) == hashlib.sha256(dumps(body)).hexdigest()


def test_a_lone_surrogate_has_no_canonical_encoding() -> None:
    with pytest.raises(ValueError):
        canonical({"a": "\ud800"})
    assert canonical_or_none({"a": "\ud800"}) is None
    assert canonical_or_none(decode('{"a":"\\ud800"}')) is None


# -- the hash ------------------------------------------------------------------------------------------------


def test_the_hash_is_sha256_of_the_canonical_envelope_without_its_hash_field() -> None:
    sealed = rent()
    body = {k: v for k, v in sealed.items() if k != "hash"}
    assert sealed["hash"] == envelope_hash(sealed) == content_hash(body) == hashlib.sha256(dumps(body)).hexdigest()
    assert sealed["seq"] == 1 and sealed["prev_hash"] == "0" * 64
    assert hash_matches(sealed)
    assert not hash_matches({**sealed, "actor": "someone else"})
    assert not hash_matches({**sealed, "actor": "\ud800"})  # cannot be hashed: not intact


def test_a_float_can_never_be_hashed_into_an_envelope() -> None:
    with pytest.raises(EnvelopeError) as refused:
        rent(amount=109200.0)  # type: ignore[arg-type]
    assert refused.value.field == "data.amount"


# -- the envelope check --------------------------------------------------------------------------------------


def test_the_envelope_check_passes_a_sealed_envelope_and_names_the_first_problem_of_others() -> None:
    sealed = rent()
    assert schema_valid(sealed, strict=True) and envelope_problem(sealed, strict=True) is None
    validate_envelope(sealed, strict=True)
    for bad, field in (({**sealed, "seq": 1.0}, "seq"), ({**sealed, "version": True}, "version"),
                       ({**sealed, "data": {**sealed["data"], "amount": "0109200.00"}}, "data.amount"),
                       ({**sealed, "subject": ["not", "hashable", "as", "a", "key"]}, "subject"),
                       ({**sealed, "type": ["RentReceived"]}, "type")):
        assert not schema_valid(bad)
        problem = envelope_problem(bad)
        assert problem is not None and problem.field == field, (bad, problem)
    with pytest.raises(EnvelopeError, match="hash does not match the envelope's content") as refused:
        validate_envelope({**sealed, "actor": "someone else"})
    assert refused.value.field == "hash"


# -- the chain verifier ----------------------------------------------------------------------------------


def breaks(records: list[dict[str, Any]]) -> list[list[tuple[str, str]] | None]:
    verifier = env.ChainVerifier()
    out = []
    for record in records:
        found = verifier.follow(RENTALS, record)
        out.append(None if found is None else [(b.field, b.message) for b in found])
    return out


def test_a_chain_links_each_envelope_to_the_previous_hash() -> None:
    first, second = stream(2)
    verifier = env.ChainVerifier()
    verifier.check(RENTALS, first)
    verifier.check(RENTALS, second)
    assert second["prev_hash"] == first["hash"]
    assert verifier.head(RENTALS, "binhai-park") == env.ChainHead(2, second["hash"])
    assert verifier.head(RENTALS, "elsewhere") == env.GENESIS


def test_a_gap_names_how_many_records_are_missing_once() -> None:
    one, _, three, four = stream(4)
    assert breaks([one, three, four]) == [[], [("seq", "seq 3 after seq 1: 1 record(s) missing")], []]
    assert breaks([three, four]) == [[("seq", "the stream starts at seq 3, not 1: 2 record(s) missing")], []]


def test_a_fork_names_the_second_record_with_a_seq_already_taken() -> None:
    one, two = stream(2)
    other = rent(env.ChainHead(one["seq"], one["hash"]), amount="999.00")  # another seq 2 after the same seq 1
    assert breaks([one, two, other]) == [[], [], [("seq", "seq 2 after seq 2: a record repeated or out of order")]]


def test_two_swapped_records_are_both_named() -> None:
    one, two, three, four = stream(4)
    assert breaks([one, three, two, four]) == [
        [], [("seq", "seq 3 after seq 1: 1 record(s) missing")],
        [("seq", "seq 2 after seq 3: a record repeated or out of order")], []]


def test_an_altered_record_is_named_once_and_a_replaced_one_by_the_record_after_it() -> None:
    one, two, three = stream(3)
    altered = copy.deepcopy(two)
    altered["data"]["amount"] = "2000.00"
    assert breaks([one, altered, three]) == [
        [], [("hash", "the hash does not match the envelope's content: the record was altered")], []]
    replaced = rent(env.ChainHead(one["seq"], one["hash"]), amount="2000.00")  # re-sealed: its own hash is right
    assert breaks([one, replaced, three]) == [
        [], [], [("prev_hash", "prev_hash is not the hash of seq 2: the previous record was altered or replaced")]]


def test_check_raises_the_first_break_naming_the_field() -> None:
    one, two, three = stream(3)
    for tampered, field in ((dict(two, seq=3), "seq"), (dict(two, prev_hash="f" * 64), "prev_hash"),
                            ({**two, "data": {**two["data"], "amount": "2001.00"}}, "hash")):
        verifier = env.ChainVerifier()
        verifier.check(RENTALS, one)
        with pytest.raises(EnvelopeError) as refused:
            verifier.check(RENTALS, tampered)
        assert refused.value.field == field
    verifier = env.ChainVerifier()
    verifier.check(RENTALS, one)
    with pytest.raises(EnvelopeError, match=r"^seq 3 after seq 1: 1 record\(s\) missing$"):
        verifier.check(RENTALS, three)
    assert breaks([{**one, "seq": "1"}]) == [None]  # no link to follow: the envelope check reports it
    with pytest.raises(EnvelopeError, match="no seq, prev_hash, hash and subject"):
        env.ChainVerifier().check(RENTALS, {**one, "subject": None})
