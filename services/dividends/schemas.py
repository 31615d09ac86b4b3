"""Request and response schemas of the dividends API (values stay wire strings: yuan, rates, dates)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.contracts.fields import Amount, IsoDate, Rate, Slug, Text, Yuan
from services.contracts.money import parse_rate

# -- requests ------------------------------------------------------------------------------------------


class PolicyRequest(Schema):
    """PUT /v1/projects/{project_id}/policy."""

    management_fee_rate = Rate(required=True)
    tax_rate = Rate(required=True)
    payout_ratio = Rate(required=True)
    guaranteed_rate = Rate(required=True)
    guarantee_until = IsoDate(load_default=None, allow_none=True)
    guarantor_id = Slug(load_default=None, allow_none=True)

    @validates_schema
    def _guarantor_pays_the_guarantee(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if parse_rate(data["guaranteed_rate"]) > 0 and not data.get("guarantor_id"):
            raise ValidationError("a guaranteed_rate above 0 needs the guarantor_id who tops it up",
                                  field_name="guarantor_id")


class PeriodRequest(Schema):
    """An inclusive period [period_start, period_end]."""

    period_start = IsoDate(required=True)
    period_end = IsoDate(required=True)

    @validates_schema
    def _ordered(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if date.fromisoformat(data["period_end"]) < date.fromisoformat(data["period_start"]):
            raise ValidationError("period_end must not be before period_start", field_name="period_end")


class DeclareRequest(PeriodRequest):
    """POST /v1/projects/{project_id}/distributions."""

    distribution_id = Slug(load_default=None)


class ApproveRequest(Schema):
    """POST /v1/distributions/{distribution_id}/approve (an empty object)."""


class PaymentRequest(Schema):
    """POST /v1/distributions/{distribution_id}/payments: one allocation, paid in full."""

    payment_id = Slug(load_default=None)
    investor_id = Slug(required=True)
    amount = Amount(required=True, positive=True)
    paid_on = IsoDate(required=True)
    bank_reference = Text(required=True, max_length=100)


class CancelRequest(Schema):
    """POST /v1/distributions/{distribution_id}/cancel."""

    reason = Text(required=True, max_length=500)


class DividendsQuery(Schema):
    year = fields.Integer(load_default=None, validate=validate.Range(min=1900, max=9999))


class UnpaidQuery(Schema):
    project_id = Slug(load_default=None)


# -- responses -----------------------------------------------------------------------------------------


class PolicyBody(Schema):
    project_id = Slug()
    management_fee_rate = Rate()
    tax_rate = Rate()
    payout_ratio = Rate()
    guaranteed_rate = Rate()
    guarantee_until = IsoDate(allow_none=True)
    guarantor_id = Slug(allow_none=True)


class PolicyResponse(Schema):
    policy = fields.Nested(PolicyBody)
    version = fields.Integer()


class PaymentBody(Schema):
    payment_id = Slug()
    amount = Yuan()
    paid_on = IsoDate()
    bank_reference = fields.String()


class AllocationBody(Schema):
    investor_id = Slug()
    investor_type = fields.String()
    capital_days = Yuan(metadata={"description": "yuan·days: Σ capital × days in the period"})
    pro_rata = Yuan()
    guaranteed_floor = Yuan()
    top_up = Yuan()
    payout = Yuan()
    paid = fields.Boolean()
    payment = fields.Nested(PaymentBody, allow_none=True)


class LateItemBody(Schema):
    """A rent or expense recorded after an earlier distribution was declared, dated in its period (DESIGN §6
    step 1): it counts in this distribution's gross_rent or expenses."""

    event_id = fields.String(metadata={"description": "the RentReceived / ExpenseRecorded event"})
    kind = fields.String(metadata={"description": "rent | expense"})
    amount = Yuan()
    date = IsoDate(metadata={"description": "its received_on / incurred_on, inside the earlier distribution's period"})


class _Totals(Schema):
    project_id = Slug()
    period_start = IsoDate()
    period_end = IsoDate()
    status = fields.String()
    policy = fields.Nested(PolicyBody)
    gross_rent = Yuan()
    expenses = Yuan()
    management_fee = Yuan()
    tax = Yuan()
    net_profit = Yuan(allow_negative=True)
    pool = Yuan()
    retained = Yuan()
    total_top_up = Yuan()
    total_payout = Yuan()
    total_capital_days = Yuan()
    input_positions = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(),
                                                                           values=fields.Integer()))
    late_items = fields.List(fields.Nested(LateItemBody), metadata={
        "description": "late items taken up (DESIGN §6 step 1), already in gross_rent / expenses"})
    allocations = fields.List(fields.Nested(AllocationBody))


class PreviewBody(_Totals):
    """What a declaration would publish now (``status`` is ``preview``)."""


class DistributionBody(_Totals):
    distribution_id = Slug()
    declared_by = fields.String()
    declared_at = fields.String()
    approved_by = fields.String(allow_none=True)
    approved_at = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    total_paid = Yuan()
    fully_paid = fields.Boolean()


class DistributionList(Schema):
    items = fields.List(fields.Nested(DistributionBody))


class PaymentResponse(Schema):
    payment_id = Slug()
    distribution_id = Slug()
    project_id = Slug()
    investor_id = Slug()
    amount = Yuan()
    paid_on = IsoDate()
    bank_reference = fields.String()


class DividendItem(AllocationBody):
    distribution_id = Slug()
    project_id = Slug()
    period_start = IsoDate()
    period_end = IsoDate()
    status = fields.String()


class DividendList(Schema):
    items = fields.List(fields.Nested(DividendItem))
    total_payout = Yuan()
    total_paid = Yuan()


class UnpaidList(Schema):
    items = fields.List(fields.Nested(DividendItem))
    total_unpaid = Yuan()
