"""Request and response schemas of the ledger API. Values stay wire strings (yuan, mu, dates).

Request schemas reject unknown fields (marshmallow's default, RAISE); webargs turns their
errors into 422 answers naming the field (``lines.1.debit``). Response schemas document
the shapes in the OpenAPI document the service serves at ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.contracts.fields import ONE_SIDE_RULE, Amount, IsoDate, Mu, Period, Slug, Text, Uscc, json_schema_rule
from services.ledger.vouchers import VOUCHER_PATTERN
from services.runtime.openapi import ErrorDetailSchema

INVESTOR_TYPES = ("collective", "company", "government")

# -- registry ----------------------------------------------------------------------------------------------


class CollectiveRequest(Schema):
    """POST /v1/collectives: a village collective economic organisation (村股份经济合作社)."""

    collective_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    town = Text(required=True, max_length=50)
    uscc = Uscc(load_default=None, allow_none=True, metadata={"description": "统一社会信用代码, 18 characters"})
    alliances = fields.List(Text(max_length=100), load_default=list, validate=validate.Length(max=50))


class InvestorRequest(Schema):
    """POST /v1/investors: an investor that is not a collective and keeps no books here."""

    investor_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    investor_type = fields.String(required=True, validate=validate.OneOf(("company", "government")))


class ProjectRequest(Schema):
    """POST /v1/projects."""

    project_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    kind = fields.String(required=True, validate=validate.OneOf(("industrial_park", "market", "other")))
    town = Text(required=True, max_length=50)
    operator = Text(required=True, max_length=100)


class InvestmentRequest(Schema):
    """POST /v1/projects/{project_id}/investments: land (area_mu × price_per_mu) or cash (amount)."""

    investment_id = Slug(load_default=None)
    kind = fields.String(required=True, validate=validate.OneOf(("land", "cash")))
    investor_id = Slug(required=True)
    investor_type = fields.String(validate=validate.OneOf(INVESTOR_TYPES), metadata={
        "description": "optional; when given it must match the registry (which decides the type)"})
    area_mu = Mu()
    price_per_mu = Amount(positive=True)
    amount = Amount(positive=True)
    effective_on = IsoDate(required=True)
    parcel = Text(load_default=None, allow_none=True, allow_empty=True, max_length=100)

    @validates_schema
    def _land_or_cash(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("kind") == "land":
            for name in ("area_mu", "price_per_mu"):
                if name not in data:
                    raise ValidationError("a land share needs area_mu and price_per_mu", field_name=name)
            if "amount" in data:
                raise ValidationError("a land share is valued as area_mu × price_per_mu; do not send amount",
                                      field_name="amount")
        elif data.get("kind") == "cash":
            if "amount" not in data:
                raise ValidationError("a cash investment needs amount", field_name="amount")
            for name in ("area_mu", "price_per_mu", "parcel"):
                if data.get(name) is not None:
                    raise ValidationError(f"a cash investment has no {name}", field_name=name)


class WithdrawalRequest(Schema):
    """POST /v1/projects/{project_id}/withdrawals."""

    withdrawal_id = Slug(load_default=None)
    investor_id = Slug(required=True)
    amount = Amount(required=True, positive=True)
    effective_on = IsoDate(required=True)
    reason = Text(required=True, max_length=500)


class RegisterQuery(Schema):
    as_of = IsoDate(load_default=None, metadata={"description": "default: today (China Standard Time)"})


# -- the books ---------------------------------------------------------------------------------------------


class LineRequest(Schema):
    """One journal line: an account of the chart (``102`` or ``141/binhai-park``) and one side."""

    account = fields.String(required=True, validate=validate.Length(min=1, max=80),
                            metadata={"example": "141/binhai-park"})
    debit = Amount(positive=True)
    credit = Amount(positive=True)

    @validates_schema
    @json_schema_rule(ONE_SIDE_RULE)
    def _one_side(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if ("debit" in data) == ("credit" in data):
            raise ValidationError("a line has exactly one of debit or credit", field_name="debit")


class EntryRequest(Schema):
    """POST /v1/collectives/{collective_id}/entries."""

    date = IsoDate(required=True)
    memo = Text(load_default="", allow_empty=True, max_length=500)
    lines = fields.List(fields.Nested(LineRequest), required=True, validate=validate.Length(max=200))
    attachments = fields.Integer(strict=True, load_default=None, allow_none=True,
                                 validate=validate.Range(min=0, max=999),
                                 metadata={"description": "附件张数: how many papers are attached to the voucher"})


class BatchEntryRequest(EntryRequest):
    """One entry of POST /v1/entries/batch: an entry plus the collective whose books it goes in."""

    collective_id = Slug(required=True)


class BatchRequest(Schema):
    """POST /v1/entries/batch: up to 1000 entries, each posted or refused on its own."""

    entries = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=1000),
                          metadata={"description": "items shaped like BatchEntryRequest; each is validated "
                                                   "on its own and reported in results[index]"})


class ReverseRequest(Schema):
    """POST /v1/collectives/{collective_id}/entries/{entry_id}/reverse."""

    date = IsoDate(required=True)
    reason = Text(required=True, max_length=500)


class PeriodRequest(Schema):
    """POST /v1/collectives/{collective_id}/periods."""

    period = Period(required=True)


class EntryRangeQuery(Schema):
    date_from = IsoDate(data_key="from", load_default=None)
    date_to = IsoDate(data_key="to", load_default=None)
    voucher_no = fields.String(load_default=None, validate=validate.Regexp(f"^{VOUCHER_PATTERN}$", error=(
        'a voucher number is written 记-YYYY-MM-NNNN, e.g. "记-2026-03-0001"')), metadata={
        "description": "only the entry with this voucher number (an empty list when there is none)"})


class AsOfQuery(Schema):
    as_of = IsoDate(load_default=None, metadata={"description": "default: today (China Standard Time)"})


class YearEndCloseRequest(Schema):
    """POST /v1/collectives/{collective_id}/year-end-close."""

    year = fields.Integer(required=True, strict=True, validate=validate.Range(min=1900, max=9999))


class MonthRangeQuery(Schema):
    first = Period(data_key="from", required=True, metadata={"description": "the first month, YYYY-MM"})
    last = Period(data_key="to", required=True, metadata={"description": "the last month, YYYY-MM (at most "
                                                                          "120 months after from)"})


class YearQuery(Schema):
    year = fields.Integer(required=True, validate=validate.Range(min=1900, max=9999))


class VillageIncomeQuery(YearQuery):
    town = Text(load_default=None, allow_empty=True, max_length=50)
    alliance = Text(load_default=None, allow_empty=True, max_length=100)


# -- responses ---------------------------------------------------------------------------------------------


class CollectiveBody(Schema):
    collective_id = fields.String()
    name = fields.String()
    town = fields.String()
    uscc = fields.String(allow_none=True)
    alliances = fields.List(fields.String())


class CollectiveList(Schema):
    items = fields.List(fields.Nested(CollectiveBody))


class InvestorBody(Schema):
    investor_id = fields.String()
    name = fields.String()
    investor_type = fields.String()


class InvestorList(Schema):
    items = fields.List(fields.Nested(InvestorBody))


class ProjectBody(Schema):
    project_id = fields.String()
    name = fields.String()
    kind = fields.String()
    town = fields.String()
    operator = fields.String()


class ProjectList(Schema):
    items = fields.List(fields.Nested(ProjectBody))


class InvestmentBody(Schema):
    investment_id = fields.String()
    project_id = fields.String()
    investor_id = fields.String()
    investor_type = fields.String()
    kind = fields.String()
    area_mu = fields.String()
    price_per_mu = fields.String()
    valuation = fields.String(metadata={"description": "land: ROUND_HALF_UP(area_mu × price_per_mu)"})
    amount = fields.String(metadata={"description": "cash"})
    effective_on = fields.String()
    parcel = fields.String(allow_none=True)
    entry_id = fields.String(allow_none=True, metadata={
        "description": "the entry posted in the investing collective's books (null for other investors)"})


class WithdrawalBody(Schema):
    withdrawal_id = fields.String()
    project_id = fields.String()
    investor_id = fields.String()
    amount = fields.String()
    effective_on = fields.String()
    reason = fields.String()
    entry_id = fields.String(allow_none=True)


class Holding(Schema):
    investor_id = fields.String()
    investor_type = fields.String()
    capital = fields.String()


class RegisterBody(Schema):
    project_id = fields.String()
    as_of = fields.String()
    items = fields.List(fields.Nested(Holding))
    total_capital = fields.String()


class LineBody(Schema):
    account = fields.String()
    debit = fields.String()
    credit = fields.String()


class OriginBody(Schema):
    kind = fields.String(metadata={"description": "manual, investment, withdrawal, dividend, payment, "
                                                  "development_fund, year_end_close, member_plan, member_dividend "
                                                  "or reversal"})
    ref = fields.String(allow_none=True)


class EntryBody(Schema):
    entry_id = fields.String()
    collective_id = fields.String()
    date = fields.String()
    memo = fields.String()
    lines = fields.List(fields.Nested(LineBody))
    origin = fields.Nested(OriginBody)
    reversed_by = fields.String(allow_none=True)
    reverses = fields.String(allow_none=True)
    idempotency_key = fields.String()
    voucher_no = fields.String(metadata={"description": "记-YYYY-MM-NNNN: consecutive per collective within the "
                                                        "month of the entry's date, in log order, never reused"})
    attachments = fields.Integer(allow_none=True, metadata={"description": "附件张数 (manual entries; else null)"})


class EntryList(Schema):
    items = fields.List(fields.Nested(EntryBody))


class BatchResult(Schema):
    index = fields.Integer()
    status = fields.Integer()
    entry = fields.Nested(EntryBody)
    error = fields.Nested(ErrorDetailSchema, metadata={"description": "why this entry was refused"})


class BatchResponse(Schema):
    results = fields.List(fields.Nested(BatchResult))


class PeriodBody(Schema):
    collective_id = fields.String()
    period = fields.String()


class PeriodList(Schema):
    items = fields.List(fields.Nested(PeriodBody))


class TrialBalanceRow(Schema):
    code = fields.String()
    name = fields.String()
    debit = fields.String()
    credit = fields.String()
    balance = fields.String(metadata={"description": "on the account's normal side"})


class Totals(Schema):
    debit = fields.String()
    credit = fields.String()


class TrialBalanceBody(Schema):
    collective_id = fields.String()
    as_of = fields.String()
    accounts = fields.List(fields.Nested(TrialBalanceRow))
    totals = fields.Nested(Totals)


class AccountBalanceRowBody(Schema):
    code = fields.String(metadata={"description": "an account of the chart or a sub-account (141/binhai-park)"})
    name = fields.String(metadata={"description": "the chart's name of the (base) account"})
    normal_side = fields.String(metadata={"description": "debit or credit"})
    opening_balance = fields.String(metadata={"description": "期初余额, on the normal side (negative: the other)"})
    debit = fields.String(metadata={"description": "本期借方发生额"})
    credit = fields.String(metadata={"description": "本期贷方发生额"})
    closing_balance = fields.String(metadata={"description": "期末余额, on the normal side"})


class AccountBalanceTotals(Schema):
    opening_debit = fields.String(metadata={"description": "Σ opening balances standing on the debit side"})
    opening_credit = fields.String()
    debit = fields.String()
    credit = fields.String()
    closing_debit = fields.String()
    closing_credit = fields.String()


class AccountBalancesBody(Schema):
    collective_id = fields.String()
    first = fields.String(data_key="from")
    last = fields.String(data_key="to")
    accounts = fields.List(fields.Nested(AccountBalanceRowBody))
    totals = fields.Nested(AccountBalanceTotals)


class YearEndCloseBody(Schema):
    collective_id = fields.String()
    year = fields.Integer()
    closed = fields.Boolean(metadata={"description": "whether the close stands (not reversed)"})
    net_income = fields.String(metadata={"description": "what the standing close carried into 322/undistributed "
                                                        "(negative: a loss)"})
    entries = fields.List(fields.Nested(EntryBody), metadata={"description": "every close entry of the year, "
                                                                            "reversed ones too"})


class DistributionItem(Schema):
    item = fields.String(metadata={"description": "net_income, brought_forward, distributable, reserve, welfare, "
                                                  "member_dividends, other or undistributed"})
    name = fields.String(metadata={"description": "本年收益, 年初未分配收益, 可分配收益, 提取公积公益金, 应付福利费, "
                                                  "应付成员收益, 其他分配, 年末未分配收益"})
    amount = fields.String()


class StatementRow(Schema):
    code = fields.String()
    name = fields.String()
    amount = fields.String()


class StatementSection(Schema):
    title = fields.String()
    rows = fields.List(fields.Nested(StatementRow))
    total = fields.String()


class BalanceSheetBody(Schema):
    collective_id = fields.String()
    year = fields.Integer()
    as_of = fields.String()
    assets = fields.Nested(StatementSection)
    liabilities = fields.Nested(StatementSection)
    equity = fields.Nested(StatementSection)
    total_assets = fields.String()
    total_liabilities_and_equity = fields.String()


class IncomeStatementBody(Schema):
    collective_id = fields.String()
    year = fields.Integer()
    income = fields.Nested(StatementSection)
    expenses = fields.Nested(StatementSection)
    net_income = fields.String()
    distribution = fields.List(fields.Nested(DistributionItem), metadata={
        "description": "收益分配, in the statement's order, from the accounts' movements of the year"})


class VillageIncomeRow(Schema):
    collective_id = fields.String()
    name = fields.String()
    town = fields.String()
    alliances = fields.List(fields.String())
    income = fields.String()
    below_million = fields.Boolean()
    weak = fields.Boolean()


class IncomeSubtotalBody(Schema):
    group = fields.String()
    village_count = fields.Integer()
    income = fields.String()
    below_million_count = fields.Integer()
    weak_count = fields.Integer()


class VillageIncomeBody(Schema):
    year = fields.Integer()
    thresholds = fields.Dict(keys=fields.String(), values=fields.String())
    items = fields.List(fields.Nested(VillageIncomeRow))
    by_town = fields.List(fields.Nested(IncomeSubtotalBody))
    by_alliance = fields.List(fields.Nested(IncomeSubtotalBody))
    total_income = fields.String()
    below_million_count = fields.Integer()
    weak_count = fields.Integer()


class AccountBody(Schema):
    code = fields.String()
    name = fields.String()
    account_class = fields.String(data_key="class")
    normal_side = fields.String()


class AccountList(Schema):
    items = fields.List(fields.Nested(AccountBody))
