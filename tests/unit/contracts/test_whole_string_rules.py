"""The contract's string rules hold for every field of every event, in the contract's own check and in
the fast path the writers, projections and the audit use (issue 13, points 3, 4 and 11):

- ids, dates, periods, account codes, uuids match over the whole string: a trailing newline is refused;
- no text holds a lone UTF-16 surrogate or a control character (free text may hold newlines);
- every amount is written canonically ("1.00", never "0001.00").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from marshmallow import Schema, fields
from test_validation import SAMPLES, envelope_of

from services.contracts.events import SCHEMAS, validate_data
from services.contracts.fields import Amount, Text, Yuan
from services.contracts.validation import envelope_problem, schema_valid

#: The dead-letter record carries a consumer's words about a record it could not read, not a fact.
TYPES = sorted(t for t in SAMPLES if t != "DeadLetter")


def leaves(schema: type[Schema], data: dict[str, Any], path: tuple[Any, ...] = ()) -> Iterator[
        tuple[tuple[Any, ...], fields.Field[Any], str]]:
    """(path, field, value) of every string in a payload, with the contract field that reads it."""
    for key, value in data.items():
        if value is None:  # an absent nested object (a checkpoint's next_key): no string in it
            continue
        field = schema._declared_fields[key]
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            nested = inner.nested
            assert isinstance(nested, type)
            items = value if isinstance(field, fields.List) else [value]
            for i, item in enumerate(items):
                where = (*path, key, i) if isinstance(field, fields.List) else (*path, key)
                yield from leaves(nested, item, where)
        elif isinstance(field, fields.List):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    yield (*path, key, i), inner, item
        elif isinstance(value, str):
            yield (*path, key), field, value


def replaced(data: Any, path: tuple[Any, ...], value: str) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(data, list):
        return [replaced(item, tuple(rest), value) if i == head else item for i, item in enumerate(data)]
    return {**data, head: replaced(data[head], tuple(rest), value)}


def refused_everywhere(event_type: str, data: dict[str, Any]) -> bool:
    """Refused by the contract (strict and tolerant), by the compiled checks, and so by the envelope check."""
    envelope = envelope_of(event_type, data)
    return (bool(validate_data(event_type, 1, data, strict=True)) and bool(validate_data(event_type, 1, data,
                                                                                        strict=False))
            and not schema_valid(envelope, strict=True) and not schema_valid(envelope)
            and envelope_problem(envelope, strict=True) is not None and envelope_problem(envelope) is not None)


@pytest.mark.parametrize("event_type", TYPES)
def test_every_id_date_period_and_code_of_an_event_matches_over_the_whole_string(event_type: str) -> None:
    data = SAMPLES[event_type]
    checked = 0
    for path, field, value in leaves(SCHEMAS[(event_type, 1)], data):
        if isinstance(field, Text):
            continue  # free text may end in a newline
        for tail in ("\n", "\r\n", " ", "\t"):
            assert refused_everywhere(event_type, replaced(data, path, value + tail)), (path, tail)
        checked += 1
    assert checked or event_type in ("DistributionApproved",)


@pytest.mark.parametrize("event_type", TYPES)
def test_no_text_of_an_event_holds_a_lone_surrogate_or_a_control_character(event_type: str) -> None:
    data = SAMPLES[event_type]
    for path, _field, value in leaves(SCHEMAS[(event_type, 1)], data):
        for bad in ("\ud800", "\udfff", "\x00", "\x1b", "\x7f"):
            assert refused_everywhere(event_type, replaced(data, path, value + bad)), (path, repr(bad))


@pytest.mark.parametrize("event_type", TYPES)
def test_every_amount_of_an_event_is_written_canonically(event_type: str) -> None:
    data = SAMPLES[event_type]
    amounts = [(path, value) for path, field, value in leaves(SCHEMAS[(event_type, 1)], data)
               if isinstance(field, Yuan)]
    for path, value in amounts:
        assert not refused_everywhere(event_type, data)
        for written in ("0" + value, "00" + value, "+" + value, value.replace(".", ",")):
            assert refused_everywhere(event_type, replaced(data, path, written)), (path, written)


def test_a_request_amount_takes_leading_zeros_and_hands_on_the_canonical_form() -> None:
    class Body(Schema):
        amount = Amount(required=True, positive=True)

    assert Body().load({"amount": "0001.00"}) == {"amount": "1.00"}
    assert Body().load({"amount": "000000000000999999999999.99"}) == {"amount": "999999999999.99"}
    for bad in ("1000000000000.00", "0001.0", "1.00\n", "１.00", "-0001.00", "0000.00"):
        assert Body().validate({"amount": bad}), bad
