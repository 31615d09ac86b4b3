"""marshmallow schemas of the rentals HTTP API: request bodies and query strings (unknown
fields raise; amounts stay the wire strings the domain parses) and the responses.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from services.contracts.fields import Amount, IsoDate, Slug, Text, Uscc, Yuan
from services.rentals.domain import ARREARS_BUCKETS, BILLING_MONTHS, GRANULARITIES


class Body(Schema):
    """Base of every request schema: an unknown field is an error naming it."""

    class Meta:
        unknown = RAISE


# -- requests ---------------------------------------------------------------------------------------------


class BuildingIn(Body):
    building_id = Slug(metadata={"description": "optional; generated when absent"})
    name = Text(required=True, max_length=100)
    floor_area_m2 = Amount(required=True, positive=True, metadata={"example": "8400.00"})


class TenantIn(Body):
    name = Text(required=True, max_length=100)
    uscc = Uscc(allow_none=True, metadata={"description": "18-character unified social credit code (统一社会信用代码)"})


class LeaseIn(Body):
    lease_id = Slug(metadata={"description": "optional; generated when absent"})
    building_id = Slug(required=True)
    tenant = fields.Nested(TenantIn, required=True)
    start_on = IsoDate(required=True, metadata={"description": "first day let"})
    end_on = IsoDate(required=True, metadata={"description": "first day no longer let (exclusive)"})
    monthly_rent = Amount(required=True, positive=True)
    deposit = Amount(required=True)
    billing = fields.String(required=True, validate=validate.OneOf(tuple(BILLING_MONTHS)))


class TerminationIn(Body):
    end_on = IsoDate(required=True, metadata={"description": "first day no longer let (exclusive)"})
    reason = Text(required=True, max_length=500)


class InvoiceRunIn(Body):
    up_to = IsoDate(required=True, metadata={"description": "issue every period starting on or before this day"})


class PaymentIn(Body):
    payment_id = Slug(metadata={"description": "optional; generated when absent"})
    amount = Amount(required=True, positive=True)
    received_on = IsoDate(required=True)
    invoice_id = Text(max_length=120,
                      metadata={"description": "optional: the invoice this payment is meant for"})


class ExpenseIn(Body):
    expense_id = Slug(metadata={"description": "optional; generated when absent"})
    category = Slug(required=True, metadata={"example": "property-tax"})
    amount = Amount(required=True, positive=True)
    incurred_on = IsoDate(required=True)
    memo = Text(allow_empty=True, max_length=500)


class OnQuery(Body):
    on = IsoDate(metadata={"description": "the day to report on (default: today, UTC)"})


class AsOfQuery(Body):
    as_of = IsoDate(metadata={"description": "the day to age arrears on (default: today, UTC)"})


class IncomeQuery(Body):
    granularity = fields.String(load_default="month", validate=validate.OneOf(GRANULARITIES))
    from_ = IsoDate(data_key="from", metadata={"description": "first day (inclusive)"})
    to = IsoDate(metadata={"description": "last day (inclusive)"})


class RangeQuery(Body):
    from_ = IsoDate(data_key="from", metadata={"description": "first day (inclusive)"})
    to = IsoDate(metadata={"description": "last day (inclusive)"})


# -- responses --------------------------------------------------------------------------------------------


BUCKETS_DOC = {"description": "outstanding per age bucket: " + ", ".join(ARREARS_BUCKETS) + " days past due",
               "example": dict.fromkeys(ARREARS_BUCKETS, "0.00")}


class BuildingOut(Schema):
    building_id = fields.String()
    project_id = fields.String()
    name = fields.String()
    floor_area_m2 = Yuan()


class TenantOut(Schema):
    name = fields.String()
    uscc = fields.String(allow_none=True)


class InvoiceOut(Schema):
    invoice_id = fields.String()
    lease_id = fields.String()
    period_start = fields.String()
    period_end = fields.String(metadata={"description": "last day of the period (inclusive)"})
    amount = Yuan(metadata={"description": "what is owed for the period (cut by an early termination)"})
    issued_amount = Yuan(metadata={"description": "the amount the invoice was issued with (RentInvoiced)"})
    due_on = fields.String()
    paid = Yuan()
    outstanding = Yuan()
    status = fields.String(metadata={"description": "open | paid | void"})


class AppliedOut(Schema):
    invoice_id = fields.String()
    amount = Yuan()


class PaymentOut(Schema):
    payment_id = fields.String()
    lease_id = fields.String()
    project_id = fields.String()
    invoice_id = fields.String(allow_none=True)
    amount = Yuan()
    received_on = fields.String()
    applied = fields.List(fields.Nested(AppliedOut))
    credit_after = Yuan(allow_none=True)


class LeaseOut(Schema):
    lease_id = fields.String()
    project_id = fields.String()
    building_id = fields.String()
    tenant = fields.Nested(TenantOut)
    start_on = fields.String()
    end_on = fields.String()
    monthly_rent = Yuan()
    deposit = Yuan()
    billing = fields.String()
    status = fields.String(metadata={"description": "live | terminated"})
    terminated_on = fields.String(allow_none=True)
    termination_reason = fields.String(allow_none=True)
    invoiced = Yuan()
    received = Yuan()
    outstanding = Yuan()
    credit = Yuan()


class LeaseDetailOut(LeaseOut):
    invoices = fields.List(fields.Nested(InvoiceOut))
    payments = fields.List(fields.Nested(PaymentOut))


class BuildingsOut(Schema):
    items = fields.List(fields.Nested(BuildingOut))


class LeasesOut(Schema):
    items = fields.List(fields.Nested(LeaseOut))


class InvoiceRunOut(Schema):
    lease_id = fields.String()
    created = fields.List(fields.Nested(InvoiceOut))
    existing = fields.Integer()


class LateOut(Schema):
    """A payment or expense recorded after a distribution whose period holds its date was declared (DESIGN §6
    step 1): that distribution stays as declared, and the item counts in the next one."""

    distribution_id = fields.String(metadata={"description": "the declared distribution whose period holds its date"})
    period_start = fields.String()
    period_end = fields.String()
    counts_in = fields.String(metadata={"description": "where it counts instead, e.g. \"the next distribution of "
                                                       "binhai-park declared after it\""})


class PaymentResultOut(Schema):
    payment = fields.Nested(PaymentOut)
    applied = fields.List(fields.Nested(AppliedOut))
    credit = Yuan()
    late = fields.Nested(LateOut, allow_none=True, metadata={
        "description": "null, or the distribution this payment is late for (it counts in the next one)"})


class ExpenseOut(Schema):
    expense_id = fields.String()
    project_id = fields.String()
    category = fields.String()
    amount = Yuan()
    incurred_on = fields.String()
    memo = fields.String()


class ExpenseResultOut(ExpenseOut):
    late = fields.Nested(LateOut, allow_none=True, metadata={
        "description": "null, or the distribution this expense is late for (it counts in the next one)"})


class CategoryTotalOut(Schema):
    category = fields.String()
    amount = Yuan()


class ExpensesOut(Schema):
    project_id = fields.String()
    from_ = fields.String(data_key="from", allow_none=True)
    to = fields.String(allow_none=True)
    items = fields.List(fields.Nested(ExpenseOut))
    by_category = fields.List(fields.Nested(CategoryTotalOut))
    total = Yuan()


class RentRollRowOut(Schema):
    building_id = fields.String()
    building_name = fields.String()
    floor_area_m2 = Yuan()
    status = fields.String(metadata={"description": "leased | vacant | terminated | ended"})
    lease_id = fields.String(allow_none=True)
    tenant = fields.String(allow_none=True)
    monthly_rent = Yuan()


class RentRollOut(Schema):
    project_id = fields.String()
    on = fields.String()
    items = fields.List(fields.Nested(RentRollRowOut))
    total_monthly_rent = Yuan()


class BuildingStatusOut(Schema):
    building_id = fields.String()
    floor_area_m2 = Yuan()
    status = fields.String(metadata={"description": "leased | vacant"})
    lease_id = fields.String(allow_none=True)


class OccupancyOut(Schema):
    project_id = fields.String()
    on = fields.String()
    total_area_m2 = Yuan()
    leased_area_m2 = Yuan()
    vacant_area_m2 = Yuan()
    rate = fields.String(metadata={"description": "leased share of the floor area, 4 decimals", "example": "0.6563"})
    buildings = fields.List(fields.Nested(BuildingStatusOut))


class LeaseArrearsOut(Schema):
    lease_id = fields.String()
    building_id = fields.String()
    tenant = fields.String()
    buckets = fields.Dict(keys=fields.String(), values=Yuan(), metadata=BUCKETS_DOC)
    total = Yuan()


class ArrearsOut(Schema):
    project_id = fields.String()
    as_of = fields.String()
    buckets = fields.Dict(keys=fields.String(), values=Yuan(), metadata=BUCKETS_DOC)
    total = Yuan()
    items = fields.List(fields.Nested(LeaseArrearsOut))


class IncomePeriodOut(Schema):
    period = fields.String(metadata={"example": "2025-03"})
    amount = Yuan()


class IncomeOut(Schema):
    project_id = fields.String()
    granularity = fields.String()
    from_ = fields.String(data_key="from", allow_none=True)
    to = fields.String(allow_none=True)
    items = fields.List(fields.Nested(IncomePeriodOut))
    total = Yuan()
