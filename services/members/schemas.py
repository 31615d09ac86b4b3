"""Request and response schemas of the members API (values stay wire strings: yuan, rates, shares, dates)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from services.contracts.events import FRACTION_RE, TRANSFER_REASONS, Vote
from services.contracts.fields import Amount, FullMatch, IsoDate, Rate, Slug, Text, Yuan
from services.members.split import SharesError, parse_shares


class Shares(fields.String):
    """A number of shares or a kind's weight: a decimal ≥ 0 with at most 4 places ("1.5")."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {"pattern": r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,4})?$", "example": "1.5", **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"must be a string such as \"1.5\", not {type(value).__name__}")
        try:
            parse_shares(value)
        except SharesError as exc:
            raise ValidationError(str(exc)) from exc
        return value


def _fraction(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(FRACTION_RE.pattern, error='must be a fraction such as "2/3"'),
                         metadata={"example": "2/3"}, **kwargs)


def _holdings(**kwargs: Any) -> fields.Dict:
    return fields.Dict(keys=Slug(), values=Shares(), validate=validate.Length(max=10), **kwargs)


# -- requests ------------------------------------------------------------------------------------------------


class ShareKindRequest(Schema):
    kind = Slug(required=True)
    name = Text(required=True, max_length=50)
    weight = Shares(required=True)


class CharterRequest(Schema):
    """PUT /v1/collectives/{collective_id}/charter."""

    share_kinds = fields.List(fields.Nested(ShareKindRequest), required=True, validate=validate.Length(min=1, max=10))
    reserve_rate_min = Rate(load_default="0.10")
    shares_fixed_on = IsoDate(load_default=None, allow_none=True)
    quorum = _fraction(load_default="2/3")
    majority = _fraction(load_default="1/2")
    adopted_on = IsoDate(required=True)


class MemberRequest(Schema):
    """A member of a household (``member_id`` chosen by the service if not given)."""

    member_id = Slug(load_default=None)
    name = Text(required=True, max_length=50)
    relation = Text(load_default="", allow_empty=True, max_length=20)
    born_on = IsoDate(load_default=None, allow_none=True)
    joined_on = IsoDate(load_default=None)


class HouseholdRequest(Schema):
    """POST /v1/collectives/{collective_id}/households."""

    household_id = Slug(required=True)
    head_name = Text(required=True, max_length=50)
    address = Text(load_default="", allow_empty=True, max_length=200)
    registered_on = IsoDate(required=True)
    members = fields.List(fields.Nested(MemberRequest), load_default=list, validate=validate.Length(max=50))
    holdings = _holdings(load_default=None)
    effective_on = IsoDate(load_default=None, metadata={"description": "when the holdings apply from (default: "
                                                                           "registered_on)"})


class HoldingsRequest(Schema):
    """PUT …/households/{household_id}/holdings: every kind the household holds (kinds not listed: 0)."""

    holdings = _holdings(required=True)
    effective_on = IsoDate(required=True)


class TransferRequest(Schema):
    """POST /v1/collectives/{collective_id}/share-transfers."""

    transfer_id = Slug(load_default=None)
    from_household = Slug(required=True)
    to_household = Slug(required=True)
    kind = Slug(required=True)
    shares = Shares(required=True)
    effective_on = IsoDate(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(TRANSFER_REASONS))
    note = Text(load_default="", allow_empty=True, max_length=500)


class CertificateRequest(Schema):
    """POST …/households/{household_id}/certificates."""

    issued_on = IsoDate(required=True)
    prefix = fields.String(load_default=None, metadata={"description": "the number's prefix, e.g. JQLM "
                                                                           "(default: the collective id in capitals)"})


class PlanRequest(Schema):
    """POST /v1/collectives/{collective_id}/plans/preview (and …/plans, with an optional plan_id)."""

    year = fields.Integer(strict=True, required=True, validate=validate.Range(min=1900, max=9998))
    reserve_rate = Rate(required=True)
    welfare = Amount(load_default="0.00")
    members_total = Amount(required=True)
    record_date = IsoDate(required=True)


class ProposeRequest(PlanRequest):
    plan_id = Slug(load_default=None)


class ApproveRequest(Schema):
    """POST …/plans/{plan_id}/approve: the vote of the members' (representatives') meeting."""

    vote = fields.Nested(Vote, required=True)


class PaymentRequest(Schema):
    """POST …/plans/{plan_id}/payments: one household, paid in full."""

    payment_id = Slug(load_default=None)
    household_id = Slug(required=True)
    amount = Amount(required=True, positive=True)
    paid_on = IsoDate(required=True)
    bank_reference = Text(required=True, max_length=100)


class CancelRequest(Schema):
    reason = Text(required=True, max_length=500)


class OnQuery(Schema):
    on = IsoDate(load_default=None, metadata={"description": "holdings as of this date (default: today, UTC)"})


# -- responses -----------------------------------------------------------------------------------------------


class ShareKindBody(Schema):
    kind = Slug()
    name = fields.String()
    weight = fields.String()


class CharterBody(Schema):
    collective_id = Slug()
    share_kinds = fields.List(fields.Nested(ShareKindBody))
    reserve_rate_min = Rate()
    shares_fixed_on = IsoDate(allow_none=True)
    quorum = fields.String()
    majority = fields.String()
    adopted_on = IsoDate()
    version = fields.Integer()


_HOLDINGS = fields.Dict(keys=fields.String(), values=fields.String(),
                        metadata={"description": "shares per kind (decimal strings); kinds held 0 left out"})


class MemberBody(Schema):
    member_id = Slug()
    name = fields.String()
    relation = fields.String()
    born_on = IsoDate(allow_none=True)
    joined_on = IsoDate()


class HouseholdItem(Schema):
    collective_id = Slug()
    household_id = Slug()
    head_name = fields.String()
    address = fields.String()
    registered_on = IsoDate()
    members = fields.Integer(metadata={"description": "how many members are registered"})
    holdings = fields.Dict(keys=fields.String(), values=fields.String())


class HouseholdList(Schema):
    on = IsoDate()
    items = fields.List(fields.Nested(HouseholdItem))


class TransferBody(Schema):
    transfer_id = Slug()
    from_household = Slug()
    to_household = Slug()
    kind = Slug()
    shares = fields.String()
    effective_on = IsoDate()
    reason = fields.String()
    note = fields.String()


class HistoryItem(TransferBody):
    change = fields.String(metadata={"description": "set | transfer_in | transfer_out"})
    holdings = fields.Dict(keys=fields.String(), values=fields.String())
    recorded_at = fields.String()


class CertificateItem(Schema):
    certificate_no = fields.String()
    holdings = fields.Dict(keys=fields.String(), values=fields.String())
    issued_on = IsoDate()
    replaces = fields.String(allow_none=True)
    current = fields.Boolean()


class HouseholdBody(Schema):
    collective_id = Slug()
    household_id = Slug()
    head_name = fields.String()
    address = fields.String()
    registered_on = IsoDate()
    on = IsoDate()
    holdings = fields.Dict(keys=fields.String(), values=fields.String())
    members = fields.List(fields.Nested(MemberBody))
    history = fields.List(fields.Nested(HistoryItem))
    transfers = fields.List(fields.Nested(TransferBody))
    certificates = fields.List(fields.Nested(CertificateItem))


class MemberResponse(Schema):
    collective_id = Slug()
    household_id = Slug()
    member = fields.Nested(MemberBody)


class TransferResponse(TransferBody):
    collective_id = Slug()


class CertificateResponse(Schema):
    collective_id = Slug()
    certificate_no = fields.String()
    household_id = Slug()
    holdings = fields.Dict(keys=fields.String(), values=fields.String())
    issued_on = IsoDate()
    replaces = fields.String(allow_none=True)


class PaymentBody(Schema):
    payment_id = Slug()
    amount = Yuan()
    paid_on = IsoDate()
    bank_reference = fields.String()


class AllocationBody(Schema):
    household_id = Slug()
    head_name = fields.String()
    holdings = fields.Dict(keys=fields.String(), values=fields.String())
    weight = fields.String(metadata={"description": "Σ shares × kind weight (exact decimal)"})
    amount = Yuan()
    paid = fields.Boolean()
    payment = fields.Nested(PaymentBody, allow_none=True)


class NoticeFigures(Schema):
    """A plan's money: what the year left, and how the plan appropriates it."""

    net_income = Yuan(allow_negative=True)
    brought_forward = Yuan(allow_negative=True)
    distributable = Yuan(allow_negative=True)
    reserve_rate = Rate()
    reserve = Yuan()
    welfare = Yuan()
    members_total = Yuan()
    undistributed = Yuan(allow_negative=True)


class _Totals(NoticeFigures):
    collective_id = Slug()
    year = fields.Integer()
    status = fields.String(metadata={"description": "preview | proposed | approved | paid | cancelled"})
    record_date = IsoDate()
    total_weight = fields.String()
    households = fields.Integer(metadata={"description": "households allocated (weight > 0)"})


class _Figures(_Totals):
    allocations = fields.List(fields.Nested(AllocationBody))


class PreviewBody(_Figures):
    """What a proposal would publish now (``status``: preview; nothing written)."""


class _Plan(Schema):
    plan_id = Slug()
    proposed_by = fields.String()
    proposed_at = fields.String()
    vote = fields.Nested(Vote, allow_none=True)
    approved_by = fields.String(allow_none=True)
    approved_at = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    total_paid = Yuan()
    unpaid_households = fields.Integer()


class PlanBody(_Figures, _Plan):
    """A plan with its allocations and their payments."""


class PlanItem(_Totals, _Plan):
    """A plan in a list: its figures, without the allocations."""


class PlanList(Schema):
    items = fields.List(fields.Nested(PlanItem))


class PaymentResponse(Schema):
    payment_id = Slug()
    collective_id = Slug()
    plan_id = Slug()
    household_id = Slug()
    amount = Yuan()
    paid_on = IsoDate()
    bank_reference = fields.String()


class NoticeHousehold(Schema):
    household_id = Slug()
    head_name_masked = fields.String(metadata={"description": "张小明 → 张*明, 王五 → 王*"})
    holdings = fields.Dict(keys=fields.String(), values=fields.String())
    weight = fields.String()
    amount = Yuan()


class NoticeBody(Schema):
    """The public notice (公示) of an approved plan: a stable JSON shape (docs/members.md)."""

    collective_id = Slug()
    collective_name = fields.String()
    plan_id = Slug()
    year = fields.Integer()
    status = fields.String()
    record_date = IsoDate()
    figures = fields.Nested(NoticeFigures)
    share_kinds = fields.List(fields.Nested(ShareKindBody))
    vote = fields.Nested(Vote)
    approved_at = fields.String()
    total_weight = fields.String()
    household_count = fields.Integer()
    households = fields.List(fields.Nested(NoticeHousehold))
