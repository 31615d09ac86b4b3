"""One marshmallow schema per event type and version (the ``data`` payloads of DESIGN §5).

Writers validate strictly (unknown fields raise); readers are tolerant (unknown fields are
ignored) and accept every version ever published: older versions are upcast, one step at a
time, by the functions registered in ``UPCASTERS``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.contracts.codec import EnvelopeError
from services.contracts.fields import (
    HEX64_RE,
    INSTANT_RE,
    ONE_SIDE_RULE,
    UUID_RE,
    Flag,
    FullMatch,
    IsoDate,
    Mu,
    Period,
    Rate,
    Slug,
    Text,
    Uscc,
    Yuan,
    json_schema_rule,
)
from services.contracts.topics import RECORD_TOPICS
from services.contracts.topics import WRITERS as WRITERS  # the topics table's; re-exported for older imports

INVESTOR_TYPES = ("collective", "company", "government")
ORIGIN_KINDS = ("manual", "investment", "dividend", "payment", "withdrawal", "development_fund",
                "year_end_close", "member_plan", "member_dividend")
ACCOUNT_PATTERN = r"^[0-9]{3}(/[a-z0-9][a-z0-9-]{0,62})?$"
KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
ED25519_PUBLIC_RE = re.compile(r"^[A-Za-z0-9+/]{43}=$")
ED25519_SIGNATURE_RE = re.compile(r"^[A-Za-z0-9+/]{86}==$")
#: The roles of DESIGN §8, for accounts as for bearer tokens.
ACCOUNT_ROLES = ("accountant", "operator", "board", "auditor", "admin")
#: A password hash (argon2id, PHC string) sealed with the accounts key: ``sealed-v1:<key id>:<base64url>``.
SEALED_RE = re.compile(r"^sealed-v1:[0-9a-f]{16}:[A-Za-z0-9_-]{40,1000}$")
SESSION_END_REASONS = ("signed_out", "idle", "disabled", "password_reset", "password_changed")
SIGN_IN_FAILURES = ("wrong_password", "disabled")


class EventData(Schema):
    """Base of every payload schema."""

    class Meta:
        unknown = RAISE


# -- ledger.entries --------------------------------------------------------------------------------------


class CollectiveRegistered(EventData):
    collective_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    town = Text(required=True, max_length=50)
    uscc = Uscc(load_default=None, allow_none=True)
    alliances = fields.List(Text(max_length=100), load_default=list)


class InvestorRegistered(EventData):
    investor_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    investor_type = fields.String(required=True, validate=validate.OneOf(("company", "government")))


class JournalLine(Schema):
    class Meta:
        unknown = RAISE

    account = fields.String(required=True, validate=FullMatch(
        ACCOUNT_PATTERN, error="must be an account code like 102 or 141/binhai-park"))
    debit = Yuan(positive=True)
    credit = Yuan(positive=True)

    @validates_schema
    @json_schema_rule(ONE_SIDE_RULE)
    def _one_side(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if ("debit" in data) == ("credit" in data):
            raise ValidationError("a line has exactly one of debit or credit", field_name="debit")


class Origin(Schema):
    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(ORIGIN_KINDS))
    ref = Text(load_default=None, allow_none=True, allow_empty=True, max_length=200)


class EntryPosted(EventData):
    entry_id = fields.String(required=True, validate=FullMatch(UUID_RE))
    collective_id = Slug(required=True)
    date = IsoDate(required=True)
    memo = Text(load_default="", allow_empty=True, max_length=500)
    lines = fields.List(fields.Nested(JournalLine), required=True, validate=validate.Length(min=2, max=200))
    origin = fields.Nested(Origin, required=True)
    idempotency_key = Text(load_default=None, allow_none=True, allow_empty=True, max_length=200)
    # Added with vouchers (DESIGN §11): 附件张数, the papers attached to a manual entry's voucher.
    attachments = fields.Integer(strict=True, load_default=None, allow_none=True,
                                 validate=validate.Range(min=0, max=999))


class EntryReversed(EventData):
    entry_id = fields.String(required=True, validate=FullMatch(UUID_RE))
    reverses = fields.String(required=True, validate=FullMatch(UUID_RE))
    collective_id = Slug(required=True)
    date = IsoDate(required=True)
    reason = Text(required=True, max_length=500)


class PeriodClosed(EventData):
    collective_id = Slug(required=True)
    period = Period(required=True)


# -- ledger.investments -------------------------------------------------------------------------------


class ProjectRegistered(EventData):
    project_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    kind = fields.String(required=True, validate=validate.OneOf(("industrial_park", "market", "other")))
    town = Text(required=True, max_length=50)
    operator = Text(required=True, max_length=100)


class LandShareInvested(EventData):
    investment_id = Slug(required=True)
    project_id = Slug(required=True)
    investor_id = Slug(required=True)
    investor_type = fields.String(required=True, validate=validate.OneOf(INVESTOR_TYPES))
    area_mu = Mu(required=True)
    price_per_mu = Yuan(required=True, positive=True)
    valuation = Yuan(required=True, positive=True)
    effective_on = IsoDate(required=True)
    parcel = Text(load_default=None, allow_none=True, allow_empty=True, max_length=100)


class CashInvested(EventData):
    investment_id = Slug(required=True)
    project_id = Slug(required=True)
    investor_id = Slug(required=True)
    investor_type = fields.String(required=True, validate=validate.OneOf(INVESTOR_TYPES))
    amount = Yuan(required=True, positive=True)
    effective_on = IsoDate(required=True)


class InvestmentWithdrawn(EventData):
    withdrawal_id = Slug(required=True)
    project_id = Slug(required=True)
    investor_id = Slug(required=True)
    amount = Yuan(required=True, positive=True)
    effective_on = IsoDate(required=True)
    reason = Text(required=True, max_length=500)


# -- rentals -------------------------------------------------------------------------------------------


class BuildingRegistered(EventData):
    building_id = Slug(required=True)
    project_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    floor_area_m2 = Yuan(required=True, positive=True)


class Tenant(Schema):
    class Meta:
        unknown = RAISE

    name = Text(required=True, max_length=100)
    uscc = Uscc(load_default=None, allow_none=True)


class LeaseSigned(EventData):
    lease_id = Slug(required=True)
    project_id = Slug(required=True)
    building_id = Slug(required=True)
    tenant = fields.Nested(Tenant, required=True)
    start_on = IsoDate(required=True)
    end_on = IsoDate(required=True)
    monthly_rent = Yuan(required=True, positive=True)
    deposit = Yuan(required=True)
    billing = fields.String(required=True, validate=validate.OneOf(("monthly", "quarterly", "annual")))


class RentInvoiced(EventData):
    invoice_id = Text(required=True, max_length=120)
    lease_id = Slug(required=True)
    project_id = Slug(required=True)
    period_start = IsoDate(required=True)
    period_end = IsoDate(required=True)
    amount = Yuan(required=True, positive=True)
    due_on = IsoDate(required=True)


class RentReceived(EventData):
    payment_id = Slug(required=True)
    lease_id = Slug(required=True)
    project_id = Slug(required=True)
    invoice_id = Text(load_default=None, allow_none=True, allow_empty=True, max_length=120)
    amount = Yuan(required=True, positive=True)
    received_on = IsoDate(required=True)


class ExpenseRecorded(EventData):
    expense_id = Slug(required=True)
    project_id = Slug(required=True)
    category = Slug(required=True)
    amount = Yuan(required=True, positive=True)
    incurred_on = IsoDate(required=True)
    memo = Text(load_default="", allow_empty=True, max_length=500)


class LeaseTerminated(EventData):
    lease_id = Slug(required=True)
    project_id = Slug(required=True)
    end_on = IsoDate(required=True)
    reason = Text(required=True, max_length=500)


# -- dividends -----------------------------------------------------------------------------------------


class PolicySet(EventData):
    project_id = Slug(required=True)
    management_fee_rate = Rate(required=True)
    tax_rate = Rate(required=True)
    payout_ratio = Rate(required=True)
    guaranteed_rate = Rate(required=True)
    guarantee_until = IsoDate(load_default=None, allow_none=True)
    guarantor_id = Slug(load_default=None, allow_none=True)


class AppliedPolicy(PolicySet):
    class Meta:
        unknown = EXCLUDE


class LateItem(Schema):
    """A rent or expense a distribution takes up late (DESIGN §6 step 1)."""

    class Meta:
        unknown = RAISE

    event_id = fields.String(required=True, validate=[validate.Regexp(UUID_RE), validate.Length(equal=36)])
    kind = fields.String(required=True, validate=validate.OneOf(("rent", "expense")))
    amount = Yuan(required=True, positive=True)
    date = IsoDate(required=True)


class DistributionDeclared(EventData):
    distribution_id = Slug(required=True)
    project_id = Slug(required=True)
    period_start = IsoDate(required=True)
    period_end = IsoDate(required=True)
    policy = fields.Nested(AppliedPolicy, required=True)
    gross_rent = Yuan(required=True)
    expenses = Yuan(required=True)
    management_fee = Yuan(required=True)
    tax = Yuan(required=True)
    net_profit = Yuan(required=True, allow_negative=True)
    pool = Yuan(required=True)
    retained = Yuan(required=True)
    total_top_up = Yuan(required=True)
    total_payout = Yuan(required=True)
    total_capital_days = Yuan(required=True)
    input_positions = fields.Dict(keys=fields.String(),
                                  values=fields.Dict(keys=fields.String(), values=fields.Integer(strict=True)),
                                  required=True)
    # Added later: a DistributionDeclared without it took up no late item.
    late_items = fields.List(fields.Nested(LateItem), load_default=list)


class DividendAllocated(EventData):
    distribution_id = Slug(required=True)
    project_id = Slug(required=True)
    investor_id = Slug(required=True)
    investor_type = fields.String(required=True, validate=validate.OneOf(INVESTOR_TYPES))
    capital_days = Yuan(required=True)
    pro_rata = Yuan(required=True)
    guaranteed_floor = Yuan(required=True)
    top_up = Yuan(required=True)
    payout = Yuan(required=True)


class DistributionApproved(EventData):
    distribution_id = Slug(required=True)
    project_id = Slug(required=True)
    approved_by = Text(required=True, max_length=100)


class DividendPaid(EventData):
    payment_id = Slug(required=True)
    distribution_id = Slug(required=True)
    project_id = Slug(required=True)
    investor_id = Slug(required=True)
    amount = Yuan(required=True, positive=True)
    paid_on = IsoDate(required=True)
    bank_reference = Text(required=True, max_length=100)


class DistributionCancelled(EventData):
    distribution_id = Slug(required=True)
    project_id = Slug(required=True)
    reason = Text(required=True, max_length=500)


# -- members (DESIGN §11) ------------------------------------------------------------------------------

#: A number of shares, or a share kind's weight: a decimal ≥ 0 with at most 4 places ("12", "0.5", "1.2500").
SHARES_RE = re.compile(r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,4})?$")
#: A household's weight, or the sum of the weights (Σ shares × kind weight): a product of two 4-place decimals has
#: up to 8 places, and a village's sum of them up to 20 integer digits.
WEIGHT_RE = re.compile(r"^(0|[1-9][0-9]{0,19})(\.[0-9]{1,8})?$")
#: A fraction of a vote rule, "2/3": the charter's quorum (present/entitled) or majority (for/present).
FRACTION_RE = re.compile(r"^[1-9][0-9]{0,2}/[1-9][0-9]{0,2}$")
TRANSFER_REASONS = ("inheritance", "gift", "court", "other")
VOTE_BODIES = ("members", "representatives")
#: A share certificate's number (股权证号), e.g. "JQLM-2025-0001".
CERTIFICATE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,39}$")


def _shares(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(SHARES_RE.pattern,
                                            error="must be a decimal ≥ 0 with at most 4 places, such as 1.5"),
                         **kwargs)


def _weight(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(WEIGHT_RE.pattern,
                                            error="must be a decimal ≥ 0 with at most 8 places, such as 2.25"),
                         **kwargs)


def _fraction(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(FRACTION_RE.pattern, error='must be a fraction such as "2/3"'), **kwargs)


class ShareKind(Schema):
    class Meta:
        unknown = RAISE

    kind = Slug(required=True)
    name = Text(required=True, max_length=50)
    weight = _shares(required=True)


class CharterSet(EventData):
    """The collective's charter (章程) as far as distribution goes; a later CharterSet replaces it whole."""

    collective_id = Slug(required=True)
    share_kinds = fields.List(fields.Nested(ShareKind), required=True, validate=validate.Length(min=1, max=10))
    reserve_rate_min = Rate(required=True)
    shares_fixed_on = IsoDate(load_default=None, allow_none=True)
    #: present/entitled must reach it (DESIGN §11: at least 2/3).
    quorum = _fraction(required=True)
    #: for/present must pass it, strictly (DESIGN §11: more than 1/2).
    majority = _fraction(required=True)
    adopted_on = IsoDate(required=True)


class HouseholdRegistered(EventData):
    collective_id = Slug(required=True)
    household_id = Slug(required=True)
    head_name = Text(required=True, max_length=50)
    address = Text(load_default="", allow_empty=True, max_length=200)
    registered_on = IsoDate(required=True)


class MemberRegistered(EventData):
    collective_id = Slug(required=True)
    member_id = Slug(required=True)
    household_id = Slug(required=True)
    name = Text(required=True, max_length=50)
    relation = Text(load_default="", allow_empty=True, max_length=20)
    born_on = IsoDate(load_default=None, allow_none=True)
    joined_on = IsoDate(required=True)


class HoldingsSet(EventData):
    """A household's holdings of every kind, from ``effective_on`` (only before the shares were fixed)."""

    collective_id = Slug(required=True)
    household_id = Slug(required=True)
    holdings = fields.Dict(keys=Slug(), values=_shares(), required=True)
    effective_on = IsoDate(required=True)


class SharesTransferred(EventData):
    collective_id = Slug(required=True)
    transfer_id = Slug(required=True)
    from_household = Slug(required=True)
    to_household = Slug(required=True)
    kind = Slug(required=True)
    shares = _shares(required=True)
    effective_on = IsoDate(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(TRANSFER_REASONS))
    note = Text(load_default="", allow_empty=True, max_length=500)


class CertificateIssued(EventData):
    collective_id = Slug(required=True)
    certificate_no = fields.String(required=True, validate=FullMatch(CERTIFICATE_RE.pattern,
                                                                     error="must be a certificate number such as "
                                                                           "JQLM-2025-0001"))
    household_id = Slug(required=True)
    holdings = fields.Dict(keys=Slug(), values=_shares(), required=True)
    issued_on = IsoDate(required=True)
    #: The certificate this one replaces (reissued on a change of holdings), if any.
    replaces = fields.String(load_default=None, allow_none=True, validate=FullMatch(CERTIFICATE_RE.pattern))


class PlanProposed(EventData):
    """A 收益分配方案 for ``year``: the appropriations of DESIGN §11 and the household split at ``record_date``
    (its HouseholdAllocated events follow it in the same transaction)."""

    collective_id = Slug(required=True)
    plan_id = Slug(required=True)
    year = fields.Integer(strict=True, required=True, validate=validate.Range(min=1900, max=9999))
    net_income = Yuan(required=True, allow_negative=True)
    brought_forward = Yuan(required=True, allow_negative=True)
    distributable = Yuan(required=True, allow_negative=True)
    reserve_rate = Rate(required=True)
    reserve = Yuan(required=True)
    welfare = Yuan(required=True)
    members_total = Yuan(required=True)
    undistributed = Yuan(required=True, allow_negative=True)
    record_date = IsoDate(required=True)
    total_weight = _weight(required=True)
    households = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    proposed_by = Text(required=True, max_length=100)


class HouseholdAllocated(EventData):
    collective_id = Slug(required=True)
    plan_id = Slug(required=True)
    household_id = Slug(required=True)
    holdings = fields.Dict(keys=Slug(), values=_shares(), required=True)
    weight = _weight(required=True)
    amount = Yuan(required=True)


_HEADS = validate.Range(min=0, max=10_000_000)
#: The vote of a 成员(代表)大会 (DESIGN §11); "for" is a Python keyword, hence the schema from a dict.
Vote = Schema.from_dict({
    "body": fields.String(required=True, validate=validate.OneOf(VOTE_BODIES)),
    "meeting_on": IsoDate(required=True),
    "entitled": fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=10_000_000)),
    "present": fields.Integer(strict=True, required=True, validate=_HEADS),
    "for": fields.Integer(strict=True, required=True, validate=_HEADS),
    "against": fields.Integer(strict=True, required=True, validate=_HEADS),
    "abstain": fields.Integer(strict=True, required=True, validate=_HEADS),
}, name="Vote")


class PlanApproved(EventData):
    """The meeting's vote carried the plan; the ledger posts its appropriations dated ``vote.meeting_on``."""

    collective_id = Slug(required=True)
    plan_id = Slug(required=True)
    year = fields.Integer(strict=True, required=True, validate=validate.Range(min=1900, max=9999))
    vote = fields.Nested(Vote, required=True)
    reserve = Yuan(required=True)
    welfare = Yuan(required=True)
    members_total = Yuan(required=True)
    approved_by = Text(required=True, max_length=100)


class HouseholdDividendPaid(EventData):
    collective_id = Slug(required=True)
    plan_id = Slug(required=True)
    payment_id = Slug(required=True)
    household_id = Slug(required=True)
    amount = Yuan(required=True, positive=True)
    paid_on = IsoDate(required=True)
    bank_reference = Text(required=True, max_length=100)


class PlanCancelled(EventData):
    collective_id = Slug(required=True)
    plan_id = Slug(required=True)
    reason = Text(required=True, max_length=500)



# -- checkpoints (DESIGN §4, "Anchoring"; services.contracts.anchoring) -------------------------------------


class CheckpointHead(Schema):
    class Meta:
        unknown = RAISE

    subject = Slug(required=True)
    seq = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    hash = fields.String(required=True, validate=FullMatch(HEX64_RE))


class CheckpointPartition(Schema):
    class Meta:
        unknown = RAISE

    partition = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    end_offset = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    #: null when too many streams moved to list them in one record (the digest still commits to them)
    heads = fields.List(fields.Nested(CheckpointHead), required=True, allow_none=True)
    heads_digest = fields.String(required=True, validate=FullMatch(HEX64_RE))


class AnnouncedKey(Schema):
    class Meta:
        unknown = RAISE

    key_id = fields.String(required=True, validate=FullMatch(KEY_ID_RE))
    public_key = fields.String(required=True, validate=FullMatch(ED25519_PUBLIC_RE))


class ChainCheckpoint(EventData):
    topic = fields.String(required=True, validate=validate.OneOf(RECORD_TOPICS))
    number = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    writer = fields.String(required=True, validate=validate.OneOf(WRITERS))
    partitions = fields.List(fields.Nested(CheckpointPartition), required=True, validate=validate.Length(min=1))
    key_id = fields.String(required=True, validate=FullMatch(KEY_ID_RE))
    next_key = fields.Nested(AnnouncedKey, load_default=None, allow_none=True)
    signature = fields.String(required=True, validate=FullMatch(ED25519_SIGNATURE_RE))


# -- accounts (people who sign in; docs/security.md) ------------------------------------------------------


def _instant(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(INSTANT_RE, error="must be a UTC instant like 2026-03-31T08:00:00Z"),
                         **kwargs)


class AccountCreated(EventData):
    name = Slug(required=True)
    display_name = Text(required=True, max_length=50)
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))
    scope = fields.List(Slug(), load_default=list, validate=validate.Length(max=200))
    password = fields.String(required=True, validate=FullMatch(SEALED_RE))
    must_change_password = Flag(required=True)


class AccountChanged(EventData):
    name = Slug(required=True)
    display_name = Text(required=True, max_length=50)
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))
    scope = fields.List(Slug(), load_default=list, validate=validate.Length(max=200))


class AccountDisabled(EventData):
    name = Slug(required=True)
    reason = Text(load_default="", allow_empty=True, max_length=200)


class AccountEnabled(EventData):
    name = Slug(required=True)
    reason = Text(load_default="", allow_empty=True, max_length=200)


class PasswordSet(EventData):
    name = Slug(required=True)
    password = fields.String(required=True, validate=FullMatch(SEALED_RE))
    must_change_password = Flag(required=True)


class SessionStarted(EventData):
    name = Slug(required=True)
    session = fields.String(required=True, validate=FullMatch(HEX64_RE))  # SHA-256 of the session's secret
    address = Text(required=True, max_length=64)
    expires_at = _instant(required=True)
    idle_timeout_s = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class SessionEnded(EventData):
    name = Slug(required=True)
    session = fields.String(required=True, validate=FullMatch(HEX64_RE))
    reason = fields.String(required=True, validate=validate.OneOf(SESSION_END_REASONS))


class SignInFailed(EventData):
    name = Slug(required=True)
    address = Text(required=True, max_length=64)
    reason = fields.String(required=True, validate=validate.OneOf(SIGN_IN_FAILURES))


class ApiTokenIssued(EventData):
    name = Slug(required=True)
    token_id = Slug(required=True)
    sha256 = fields.String(required=True, validate=FullMatch(HEX64_RE))
    label = Text(required=True, max_length=100)
    expires_at = _instant(required=True)


class ApiTokenRevoked(EventData):
    name = Slug(required=True)
    token_id = Slug(required=True)


class DeadLetter(EventData):
    class Meta:
        unknown = EXCLUDE

    topic = fields.String(required=True)
    partition = fields.Integer(required=True, strict=True)
    offset = fields.Integer(required=True, strict=True)
    consumer = fields.String(required=True)
    reason = fields.String(required=True)
    value = fields.String(required=True)


#: (type, version) -> payload schema class. Every version ever published stays here.
SCHEMAS: dict[tuple[str, int], type[EventData]] = {
    (cls.__name__, 1): cls
    for cls in (
        CollectiveRegistered, InvestorRegistered, EntryPosted, EntryReversed, PeriodClosed,
        ProjectRegistered, LandShareInvested, CashInvested, InvestmentWithdrawn,
        BuildingRegistered, LeaseSigned, RentInvoiced, RentReceived, ExpenseRecorded, LeaseTerminated,
        PolicySet, DistributionDeclared, DividendAllocated, DistributionApproved, DividendPaid,
        DistributionCancelled, ChainCheckpoint, DeadLetter,
        AccountCreated, AccountChanged, AccountDisabled, AccountEnabled, PasswordSet, SessionStarted, SessionEnded,
        SignInFailed, ApiTokenIssued, ApiTokenRevoked,
        CharterSet, HouseholdRegistered, MemberRegistered, HoldingsSet, SharesTransferred, CertificateIssued,
        PlanProposed, HouseholdAllocated, PlanApproved, HouseholdDividendPaid, PlanCancelled,
    )
}

#: (type, from_version) -> function turning a from_version payload into a from_version+1 payload.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def latest_version(event_type: str) -> int:
    """The newest published version of ``event_type``."""
    versions = [v for (t, v) in SCHEMAS if t == event_type]
    if not versions:
        raise EnvelopeError(f"unknown event type {event_type!r}", field="type")
    return max(versions)


def validate_data(event_type: str, version: int, data: Any, *, strict: bool = True) -> dict[str, Any]:
    """Check ``data`` against its schema; return the errors dict (empty when valid).

    Writers pass ``strict=True`` (unknown fields are errors); readers ``strict=False``.
    """
    schema_cls = SCHEMAS.get((event_type, version))
    if schema_cls is None:
        raise EnvelopeError(f"unknown event type/version {event_type!r} v{version}", field="type")
    if not isinstance(data, dict):
        return {"data": ["must be an object"]}
    errors = _schema(schema_cls, strict).validate(data)
    return dict(errors)


@functools.cache
def _schema(schema_cls: type[EventData], strict: bool) -> EventData:
    """One schema instance per (class, strictness): building them is the costly part of validating."""
    return schema_cls(unknown=RAISE if strict else EXCLUDE)


def upcast(event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Bring an old payload up to the latest version, one registered step at a time."""
    target = latest_version(event_type)
    while version < target:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise EnvelopeError(f"no upcaster for {event_type} v{version}", field="version")
        data = step(data)
        version += 1
    return version, data


def upcast_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """A valid envelope with ``data`` at the latest version of its type (itself when it already is)."""
    version, data = upcast(envelope["type"], envelope["version"], envelope["data"])
    if version == envelope["version"]:
        return envelope
    return {**envelope, "version": version, "data": data}
