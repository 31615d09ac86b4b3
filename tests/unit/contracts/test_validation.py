"""The compiled envelope check (audit, projections, writers) agrees with the contract's marshmallow schemas,
case by case."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from services.contracts import envelope as env
from services.contracts import validation
from services.contracts.codec import EnvelopeError, canonical, decode_envelope, envelope_hash, inspect_value
from services.contracts.events import SCHEMAS, validate_data
from services.contracts.validation import (
    compiled_schemas,
    envelope_problem,
    read_envelope,
    schema_valid,
    validate_envelope,
)
from services.devtools.synthetic import LogWriter, small_scenario, synthetic_keys

EXTRA_SAMPLES: dict[str, dict[str, Any]] = {
    "CollectiveRegistered": {"collective_id": "jinqing-lianmeng", "name": "联盟村", "town": "金清镇",
                             "uscc": "91331004MA2AH8K1XP", "alliances": ["滨海抱团"]},
    "PeriodClosed": {"collective_id": "jinqing-lianmeng", "period": "2025-03"},
    "InvestmentWithdrawn": {"withdrawal_id": "wd-1", "project_id": "binhai-park", "investor_id": "state-co",
                            "amount": "100.00", "effective_on": "2025-05-01", "reason": "退出"},
    "BuildingRegistered": {"building_id": "b-1", "project_id": "binhai-park", "name": "1号厂房",
                           "floor_area_m2": "5000.00"},
    "LeaseSigned": {"lease_id": "l-1", "project_id": "binhai-park", "building_id": "b-1",
                    "tenant": {"name": "台州某机电", "uscc": None}, "start_on": "2025-01-01", "end_on": "2027-12-31",
                    "monthly_rent": "80000.00", "deposit": "160000.00", "billing": "quarterly"},
    "RentInvoiced": {"invoice_id": "inv-1", "lease_id": "l-1", "project_id": "binhai-park",
                     "period_start": "2025-01-01", "period_end": "2025-03-31", "amount": "240000.00",
                     "due_on": "2025-01-15"},
    "LeaseTerminated": {"lease_id": "l-1", "project_id": "binhai-park", "end_on": "2026-06-30", "reason": "搬迁"},
    "DistributionCancelled": {"distribution_id": "d-1", "project_id": "binhai-park", "reason": "重算"},
    "DeadLetter": {"topic": "baotuan.rentals.v1", "partition": 0, "offset": 3, "consumer": "dividends",
                   "reason": "EnvelopeError", "value": "{}"},
    "AccountCreated": {"name": "lianmeng-kuaiji", "display_name": "联盟村 王会计", "role": "accountant",
                       "scope": ["jinqing-lianmeng"], "password": "sealed-v1:0123456789abcdef:" + "A" * 160,
                       "must_change_password": True},
    "AccountChanged": {"name": "lianmeng-kuaiji", "display_name": "王会计", "role": "board", "scope": ["binhai-park"]},
    "AccountDisabled": {"name": "lianmeng-kuaiji", "reason": "调岗"},
    "AccountEnabled": {"name": "lianmeng-kuaiji", "reason": "复岗"},
    "PasswordSet": {"name": "lianmeng-kuaiji", "password": "sealed-v1:0123456789abcdef:" + "b_-" * 60,
                    "must_change_password": False},
    "SessionStarted": {"name": "lianmeng-kuaiji", "session": "ab" * 32, "address": "10.0.0.7",
                       "expires_at": "2026-03-31T20:00:00.000Z", "idle_timeout_s": 1800},
    "SessionEnded": {"name": "lianmeng-kuaiji", "session": "ab" * 32, "reason": "signed_out"},
    "SignInFailed": {"name": "lianmeng-kuaiji", "address": "10.0.0.7", "reason": "wrong_password"},
    "ApiTokenIssued": {"name": "lianmeng-kuaiji", "token_id": "tok-0a1b2c3d4e5f", "sha256": "cd" * 32,
                       "label": "导入脚本", "expires_at": "2026-12-31T00:00:00.000Z"},
    "ApiTokenRevoked": {"name": "lianmeng-kuaiji", "token_id": "tok-0a1b2c3d4e5f"},
    "SharesTransferred": {"collective_id": "jinqing-lianmeng", "transfer_id": "tr-1", "from_household": "hu-001",
                          "to_household": "hu-002", "kind": "population", "shares": "1.5",
                          "effective_on": "2026-02-01", "reason": "inheritance", "note": "继承"},
    "PlanProposed": {"collective_id": "jinqing-lianmeng", "plan_id": "plan-2025", "year": 2025,
                     "net_income": "120000.00", "brought_forward": "-500.00", "distributable": "119500.00",
                     "reserve_rate": "0.10", "reserve": "11950.00", "welfare": "5000.00", "members_total": "100000.00",
                     "undistributed": "2550.00", "record_date": "2026-03-31", "total_weight": "45.5", "households": 3,
                     "proposed_by": "account:lianmeng-kuaiji"},
    "HouseholdAllocated": {"collective_id": "jinqing-lianmeng", "plan_id": "plan-2025", "household_id": "hu-001",
                           "holdings": {"population": "3", "farm-age": "12.5"}, "weight": "15.5",
                           "amount": "34065.93"},
    "PlanApproved": {"collective_id": "jinqing-lianmeng", "plan_id": "plan-2025", "year": 2025,
                     "vote": {"body": "representatives", "meeting_on": "2026-04-10", "entitled": 45, "present": 38,
                              "for": 35, "against": 2, "abstain": 1},
                     "reserve": "11950.00", "welfare": "5000.00", "members_total": "100000.00",
                     "approved_by": "account:lianmeng-board"},
    "HouseholdDividendPaid": {"collective_id": "jinqing-lianmeng", "plan_id": "plan-2025", "payment_id": "hpay-1",
                              "household_id": "hu-001", "amount": "34065.93", "paid_on": "2026-04-20",
                              "bank_reference": "RCC20260420001"},
    "PlanCancelled": {"collective_id": "jinqing-lianmeng", "plan_id": "plan-2025", "reason": "重新测算"},
}
BAD_VALUES: list[Any] = [None, 1, 1.5, True, "", "   ", "x" * 600, "1234.5", "-1.00", "0.00", "2025-02-30",
                         "ABC", [], {}, "1.5", "12.3456789"]


def samples() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    signed = LogWriter(checkpoint_every=7, signing_keys=synthetic_keys())  # with ChainCheckpoint events
    for row in small_scenario(signed, villages=2, months=7).rows:
        found.setdefault(row["event"]["type"], row["event"]["data"])
    return {**found, **EXTRA_SAMPLES}


SAMPLES = samples()


def mutations(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key, value in data.items():
        yield {k: v for k, v in data.items() if k != key}
        for bad in BAD_VALUES:
            yield {**data, key: bad}
        if isinstance(value, dict):
            for inner in mutations(value):
                yield {**data, key: inner}
        if isinstance(value, list):
            yield {**data, key: []}
            yield {**data, key: value * 150}
            if value and isinstance(value[0], dict):
                for inner in mutations(value[0]):
                    yield {**data, key: [inner, *value[1:]]}
                yield {**data, key: [{**value[0], "debit": "1.00", "credit": "1.00"}, *value[1:]]}
    yield {**data, "a_field_from_a_later_version": "ignored by readers"}


def envelope_of(event_type: str, data: Any) -> dict[str, Any]:
    sealed = env.seal(env.new_envelope(event_type=event_type, version=1, source="x", subject="s",
                                       data={}, actor="a"), env.ChainHead())
    sealed["data"] = data
    return sealed


def test_every_payload_schema_of_the_contract_has_a_compiled_check() -> None:
    assert compiled_schemas(strict=False) == compiled_schemas(strict=True) == {key: True for key in SCHEMAS}
    assert {kind for kind, _ in SCHEMAS} == set(SAMPLES)


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_the_compiled_check_agrees_with_the_contract_on_every_mutation(event_type: str) -> None:
    assert schema_valid(envelope_of(event_type, SAMPLES[event_type]))
    checked = 0
    for data in mutations(copy.deepcopy(SAMPLES[event_type])):
        contract_ok = not validate_data(event_type, 1, data, strict=False)
        assert schema_valid(envelope_of(event_type, data)) == contract_ok, (event_type, data)
        problem = envelope_problem(envelope_of(event_type, data))
        assert (problem is None) == contract_ok
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_the_strict_compiled_check_of_writers_agrees_with_the_contract_on_every_mutation(event_type: str) -> None:
    assert schema_valid(envelope_of(event_type, SAMPLES[event_type]), strict=True)
    for data in mutations(copy.deepcopy(SAMPLES[event_type])):
        contract_ok = not validate_data(event_type, 1, data, strict=True)
        assert schema_valid(envelope_of(event_type, data), strict=True) == contract_ok, (event_type, data)
        assert (envelope_problem(envelope_of(event_type, data), strict=True) is None) == contract_ok
    extra = {**envelope_of(event_type, SAMPLES[event_type]), "an_unknown_envelope_field": 1}
    assert envelope_problem(extra) is None  # readers tolerate it
    problem = envelope_problem(extra, strict=True)
    assert problem is not None and problem.field == "an_unknown_envelope_field"


def test_read_envelope_answers_as_the_contract_alone_does(monkeypatch: pytest.MonkeyPatch) -> None:
    good = [decode_envelope(canonical(row["event"])) for row in small_scenario(villages=2, months=2).rows]
    altered = copy.deepcopy(good[3])
    altered["data"]["name"] = "改过的名字" if "name" in altered["data"] else altered["data"]
    cases = [*good, altered, {**good[0], "hash": "f" * 64}, {**good[1], "seq": 0}, {**good[2], "data": {}}]

    def answers() -> list[Any]:
        out: list[Any] = []
        for envelope in cases:
            try:
                out.append(read_envelope(copy.deepcopy(envelope)))
            except EnvelopeError as exc:
                out.append((exc.field, str(exc)))
        return out

    fast = answers()
    # marshmallow alone
    monkeypatch.setattr(validation, "schema_valid", lambda envelope, strict=False, float_free=False: False)
    assert answers() == fast
    assert sum(isinstance(answer, tuple) for answer in fast) == 4


def test_envelope_fields_are_checked_like_the_contract_does() -> None:
    good = envelope_of("PeriodClosed", SAMPLES["PeriodClosed"])
    broken = [{**good, "event_id": "not-a-uuid"}, {**good, "seq": 0}, {**good, "seq": True}, {**good, "version": 2},
              {**good, "type": "Unknown"}, {**good, "occurred_at": "2025-01-01 00:00"}, {**good, "prev_hash": "x"},
              {**good, "causation_id": 5}, {k: v for k, v in good.items() if k != "actor"}, {**good, "data": []}]
    for envelope in broken:
        assert not schema_valid(envelope)
        problem = envelope_problem(envelope)
        assert isinstance(problem, EnvelopeError)
        with pytest.raises(EnvelopeError) as raised:
            validate_envelope(envelope, check_hash=False)
        assert str(raised.value) == str(problem)


def test_the_audit_hashes_exactly_as_the_writers_do() -> None:
    for row in small_scenario(villages=2, months=3).rows:
        raw = canonical(row["event"])
        event = decode_envelope(raw)
        assert envelope_hash(event) == event["hash"]
        assert inspect_value(raw) == (event, None, True, None)  # the hash taken from the bytes themselves


@pytest.mark.parametrize("raw", [b'{"amount": 1.5}', b'{"x": NaN}', b"[1, 2]", b"\xff\xfe"])
def test_record_values_with_floats_or_that_are_no_objects_are_refused(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope(raw)
