"""The scenario file (data/binhai_scenario.json): one marshmallow schema per record kind.

A scenario is checked as a whole before anything is sent: each record against its schema,
then the references between records (an investment names a project and an investor of the
same file, a lease a building of its project, ...). Every problem is reported with its
path in the file, ``investments[3].area_mu``, so the person fixing it finds it at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.contracts.events import SHARES_RE, TRANSFER_REASONS, ShareKind, Vote
from services.contracts.fields import Amount, FullMatch, IsoDate, Mu, Rate, Slug, Text, Uscc
from services.contracts.money import parse_yuan

#: The record kinds of a scenario file, in the order they are imported (a record only names
#: records of an earlier kind, or of its own kind above it).
SECTIONS = ("collectives", "investors", "projects", "investments", "withdrawals", "development_funds",
            "policies", "buildings", "leases", "rent_payments", "expenses", "distributions",
            # A village's own books and its members (DESIGN §11).
            "entries", "year_end_closes", "charters", "households", "share_transfers", "member_plans")


class ScenarioError(ValueError):
    """The scenario file is unusable; ``path`` says where (``investments[3].area_mu``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class Record(Schema):
    class Meta:
        unknown = RAISE


class CollectiveRecord(Record):
    collective_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    town = Text(required=True, max_length=50)
    uscc = Uscc(allow_none=True)
    alliances = fields.List(Text(max_length=100))


class InvestorRecord(Record):
    investor_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    investor_type = fields.String(required=True, validate=validate.OneOf(("company", "government")))


class ProjectRecord(Record):
    project_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    kind = fields.String(required=True, validate=validate.OneOf(("industrial_park", "market", "other")))
    town = Text(required=True, max_length=50)
    operator = Text(required=True, max_length=100)


class InvestmentRecord(Record):
    investment_id = Slug()
    project_id = Slug(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("land", "cash")))
    investor_id = Slug(required=True)
    investor_type = fields.String(validate=validate.OneOf(("collective", "company", "government")))
    area_mu = Mu()
    price_per_mu = Amount(positive=True)
    amount = Amount(positive=True)
    effective_on = IsoDate(required=True)
    parcel = Text(max_length=100, allow_none=True)

    @validates_schema
    def _fields_of_its_kind(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        wanted, unwanted = (("area_mu", "price_per_mu"), ("amount",)) if data.get("kind") == "land" else (
            ("amount",), ("area_mu", "price_per_mu", "parcel"))
        for name in wanted:
            if name not in data:
                raise ValidationError(f"a {data.get('kind')} investment needs {name}", field_name=name)
        for name in unwanted:
            if name in data:
                raise ValidationError(f"a {data.get('kind')} investment has no {name}", field_name=name)


class WithdrawalRecord(Record):
    withdrawal_id = Slug()
    project_id = Slug(required=True)
    investor_id = Slug(required=True)
    amount = Amount(required=True, positive=True)
    effective_on = IsoDate(required=True)
    reason = Text(required=True, max_length=500)


class DevelopmentFundRecord(Record):
    collective_id = Slug(required=True)
    amount = Amount(required=True, positive=True)
    date = IsoDate(required=True)
    memo = Text(max_length=500)


class PolicyRecord(Record):
    project_id = Slug(required=True)
    management_fee_rate = Rate(required=True)
    tax_rate = Rate(required=True)
    payout_ratio = Rate(required=True)
    guaranteed_rate = Rate(required=True)
    guarantee_until = IsoDate(allow_none=True)
    guarantor_id = Slug(allow_none=True)


class BuildingRecord(Record):
    building_id = Slug(required=True)
    project_id = Slug(required=True)
    name = Text(required=True, max_length=100)
    floor_area_m2 = Amount(required=True, positive=True)


class TenantRecord(Record):
    name = Text(required=True, max_length=100)
    uscc = Uscc(allow_none=True)


class LeaseRecord(Record):
    lease_id = Slug(required=True)
    project_id = Slug(required=True)
    building_id = Slug(required=True)
    tenant = fields.Nested(TenantRecord, required=True)
    start_on = IsoDate(required=True)
    end_on = IsoDate(required=True)
    monthly_rent = Amount(required=True, positive=True)
    deposit = Amount(required=True)
    billing = fields.String(required=True, validate=validate.OneOf(("monthly", "quarterly", "annual")))

    @validates_schema
    def _ends_after_it_starts(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if "start_on" in data and "end_on" in data and data["end_on"] <= data["start_on"]:
            raise ValidationError("a lease must end after it starts", field_name="end_on")


class RentPaymentRecord(Record):
    payment_id = Slug()
    lease_id = Slug(required=True)
    project_id = Slug()
    invoice_id = fields.String(validate=validate.Length(min=1, max=120))
    amount = Amount(required=True, positive=True)
    received_on = IsoDate(required=True)
    period = fields.String(validate=validate.Length(max=20))  # for people reading the file; not imported


class ExpenseRecord(Record):
    expense_id = Slug()
    project_id = Slug(required=True)
    category = Slug(required=True)
    amount = Amount(required=True, positive=True)
    incurred_on = IsoDate(required=True)
    memo = fields.String(validate=validate.Length(max=500))


class DistributionRecord(Record):
    distribution_id = Slug()
    project_id = Slug(required=True)
    period_start = IsoDate(required=True)
    period_end = IsoDate(required=True)

    @validates_schema
    def _period_in_order(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if "period_start" in data and "period_end" in data and data["period_end"] < data["period_start"]:
            raise ValidationError("period_end is before period_start", field_name="period_end")


def _shares(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(SHARES_RE.pattern, error="must be a decimal ≥ 0 with at most 4 places, "
                                                                     "such as 1.5"), **kwargs)


class LineRecord(Record):
    account = fields.String(required=True, validate=validate.Length(min=3, max=80))
    debit = Amount(positive=True)
    credit = Amount(positive=True)

    @validates_schema
    def _one_side(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if ("debit" in data) == ("credit" in data):
            raise ValidationError("a line has a debit or a credit, not both", field_name="debit")


class EntryRecord(Record):
    """A journal entry of a collective's own books (income, expenses: what is not a project's)."""

    collective_id = Slug(required=True)
    date = IsoDate(required=True)
    memo = Text(required=True, max_length=500)
    attachments = fields.Integer(strict=True, validate=validate.Range(min=0, max=999))
    lines = fields.List(fields.Nested(LineRecord), required=True, validate=validate.Length(min=2, max=50))


class YearEndCloseRecord(Record):
    collective_id = Slug(required=True)
    year = fields.Integer(strict=True, required=True, validate=validate.Range(min=1990, max=2100))


class CharterRecord(Record):
    collective_id = Slug(required=True)
    share_kinds = fields.List(fields.Nested(ShareKind), required=True, validate=validate.Length(min=1, max=10))
    reserve_rate_min = Rate(required=True)
    shares_fixed_on = IsoDate(allow_none=True)
    quorum = fields.String(validate=validate.Regexp(r"^[1-9][0-9]{0,2}/[1-9][0-9]{0,2}$"))
    majority = fields.String(validate=validate.Regexp(r"^[1-9][0-9]{0,2}/[1-9][0-9]{0,2}$"))
    adopted_on = IsoDate(required=True)


class MemberRecord(Record):
    member_id = Slug(required=True)
    name = Text(required=True, max_length=50)
    relation = Text(max_length=20)
    born_on = IsoDate(allow_none=True)
    joined_on = IsoDate(required=True)


class HouseholdRecord(Record):
    collective_id = Slug(required=True)
    household_id = Slug(required=True)
    head_name = Text(required=True, max_length=50)
    address = Text(max_length=200)
    registered_on = IsoDate(required=True)
    members = fields.List(fields.Nested(MemberRecord), validate=validate.Length(max=50))
    holdings = fields.Dict(keys=Slug(), values=_shares())
    #: When the holdings apply from (default: registered_on); before the charter's shares_fixed_on.
    effective_on = IsoDate()


class ShareTransferRecord(Record):
    collective_id = Slug(required=True)
    transfer_id = Slug(required=True)
    from_household = Slug(required=True)
    to_household = Slug(required=True)
    kind = Slug(required=True)
    shares = _shares(required=True)
    effective_on = IsoDate(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(TRANSFER_REASONS))
    note = Text(max_length=500)

    @validates_schema
    def _two_households(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("from_household") is not None and data.get("from_household") == data.get("to_household"):
            raise ValidationError("shares move between two households", field_name="to_household")


class PlanPaymentsRecord(Record):
    """Every allocation of the plan paid in full on ``paid_on``, but for the ``unpaid`` households."""

    paid_on = IsoDate(required=True)
    bank_reference = Text(required=True, max_length=80)
    unpaid = fields.List(Slug(), validate=validate.Length(max=10_000))


class MemberPlanRecord(Record):
    collective_id = Slug(required=True)
    plan_id = Slug()
    year = fields.Integer(strict=True, required=True, validate=validate.Range(min=1990, max=2100))
    reserve_rate = Rate(required=True)
    welfare = Amount(required=True)
    members_total = Amount(required=True)
    record_date = IsoDate(required=True)
    vote = fields.Nested(Vote)
    payments = fields.Nested(PlanPaymentsRecord)

    @validates_schema
    def _vote_adds_up(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("year") and data.get("record_date") and data["record_date"] <= f"{data['year']}-12-31":
            raise ValidationError("the record date comes after the year the plan distributes",
                                  field_name="record_date")
        vote = data.get("vote")
        if vote is None:
            if "payments" in data:
                raise ValidationError("only an approved plan is paid: payments need a vote", field_name="payments")
            return
        if vote["for"] + vote["against"] + vote["abstain"] > vote["present"]:
            raise ValidationError("for + against + abstain is more than present", field_name="vote.present")
        if vote["present"] > vote["entitled"]:
            raise ValidationError("present is more than entitled", field_name="vote.present")
        if data.get("record_date") and vote["meeting_on"] < data["record_date"]:
            raise ValidationError("the record date is after the meeting", field_name="record_date")


SCHEMAS: dict[str, type[Record]] = {
    "collectives": CollectiveRecord, "investors": InvestorRecord, "projects": ProjectRecord,
    "investments": InvestmentRecord, "withdrawals": WithdrawalRecord, "development_funds": DevelopmentFundRecord,
    "policies": PolicyRecord, "buildings": BuildingRecord, "leases": LeaseRecord,
    "rent_payments": RentPaymentRecord, "expenses": ExpenseRecord, "distributions": DistributionRecord,
    "entries": EntryRecord, "year_end_closes": YearEndCloseRecord, "charters": CharterRecord,
    "households": HouseholdRecord, "share_transfers": ShareTransferRecord, "member_plans": MemberPlanRecord,
}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the records of each kind, exactly as the file has them."""

    sections: dict[str, list[dict[str, Any]]]
    description: str = ""
    source: str = field(default="", compare=False)

    def records(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """(section, index, record) in import order."""
        for section in SECTIONS:
            for index, record in enumerate(self.sections[section]):
                yield section, index, record

    def names(self) -> dict[str, str]:
        """Display name of every collective and investor, by id."""
        found = {c["collective_id"]: c["name"] for c in self.sections["collectives"]}
        found.update({i["investor_id"]: i["name"] for i in self.sections["investors"]})
        return found

    def __len__(self) -> int:
        return sum(len(records) for records in self.sections.values())


def read_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError naming the record and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError("", f"cannot read {path}: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError("", f"{path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    scenario = validate_scenario(raw)
    return Scenario(scenario.sections, scenario.description, source=str(path))


def validate_scenario(raw: Any) -> Scenario:
    """Check every record and every reference between records; the first problem raises ScenarioError."""
    if not isinstance(raw, dict):
        raise ScenarioError("", "a scenario is a JSON object with one list per record kind")
    unknown = sorted(set(raw) - {*SECTIONS, "description"})
    if unknown:
        raise ScenarioError(unknown[0], f"unknown section (expected some of: {', '.join(SECTIONS)})")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError("description", "must be a string")
    sections: dict[str, list[dict[str, Any]]] = {}
    for section in SECTIONS:
        records = raw.get(section, [])
        if not isinstance(records, list):
            raise ScenarioError(section, "must be a list of records")
        for index, record in enumerate(records):
            _check_record(section, index, record)
        sections[section] = records
    _check_references(sections)
    return Scenario(sections, description)


def _check_record(section: str, index: int, record: Any) -> None:
    where = f"{section}[{index}]"
    if not isinstance(record, dict):
        raise ScenarioError(where, "must be a JSON object")
    try:
        SCHEMAS[section]().load(record)
    except ValidationError as exc:
        path, message = _first_message(exc.messages)
        raise ScenarioError(f"{where}.{path}" if path else where, message) from exc


def _first_message(messages: Any, prefix: str = "") -> tuple[str, str]:
    if isinstance(messages, Mapping) and messages:
        key = sorted(messages, key=str)[0]
        path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
        return _first_message(messages[key], path)
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return prefix, "; ".join(messages)
        return _first_message(messages[0], prefix)
    return prefix, str(messages)


def _check_references(sections: dict[str, list[dict[str, Any]]]) -> None:
    """Ids are unique per kind and every reference names a record of the file."""
    collectives = _unique(sections, "collectives", "collective_id")
    investors = _unique(sections, "investors", "investor_id")
    projects = _unique(sections, "projects", "project_id")
    for investor_id in sorted(set(collectives) & set(investors)):
        raise ScenarioError(f"investors[{investors[investor_id]}].investor_id",
                            f"{investor_id!r} is already a collective")
    buildings = _unique(sections, "buildings", "building_id")
    leases = _unique(sections, "leases", "lease_id")
    for section, id_field in (("investments", "investment_id"), ("withdrawals", "withdrawal_id"),
                              ("rent_payments", "payment_id"), ("expenses", "expense_id"),
                              ("distributions", "distribution_id")):
        _unique(sections, section, id_field)
    _unique(sections, "policies", "project_id")

    def known(section: str, index: int, name: str, value: Any, ids: Mapping[str, int], kind: str) -> None:
        if value is not None and value not in ids:
            raise ScenarioError(f"{section}[{index}].{name}", f"{value!r} is not one of the file's {kind}")

    every_investor = {**collectives, **investors}
    for section in ("investments", "withdrawals", "policies", "buildings", "leases", "expenses", "distributions"):
        for index, record in enumerate(sections[section]):
            known(section, index, "project_id", record["project_id"], projects, "projects")
    for index, record in enumerate(sections["investments"]):
        known("investments", index, "investor_id", record["investor_id"], every_investor, "collectives or investors")
        actual = "collective" if record["investor_id"] in collectives else next(
            i["investor_type"] for i in sections["investors"] if i["investor_id"] == record["investor_id"])
        if record.get("investor_type", actual) != actual:
            raise ScenarioError(f"investments[{index}].investor_type",
                                f"{record['investor_id']!r} is a {actual}, not a {record['investor_type']}")
    for index, record in enumerate(sections["withdrawals"]):
        known("withdrawals", index, "investor_id", record["investor_id"], every_investor, "collectives or investors")
    for index, record in enumerate(sections["development_funds"]):
        known("development_funds", index, "collective_id", record["collective_id"], collectives, "collectives")
    for index, record in enumerate(sections["policies"]):
        known("policies", index, "guarantor_id", record.get("guarantor_id"), every_investor,
              "collectives or investors")
    for index, record in enumerate(sections["leases"]):
        known("leases", index, "building_id", record["building_id"], buildings, "buildings")
        building = sections["buildings"][buildings[record["building_id"]]]
        if building["project_id"] != record["project_id"]:
            raise ScenarioError(f"leases[{index}].building_id",
                                f"building {record['building_id']!r} belongs to {building['project_id']!r}")
    _check_members(sections, collectives)
    for index, record in enumerate(sections["rent_payments"]):
        known("rent_payments", index, "lease_id", record["lease_id"], leases, "leases")
        lease = sections["leases"][leases[record["lease_id"]]]
        if record.get("project_id", lease["project_id"]) != lease["project_id"]:
            raise ScenarioError(f"rent_payments[{index}].project_id",
                                f"lease {record['lease_id']!r} belongs to {lease['project_id']!r}")


def _check_members(sections: dict[str, list[dict[str, Any]]], collectives: Mapping[str, int]) -> None:
    """The village sections name collectives of the file; households, transfers and plans fit together."""
    for section in ("entries", "year_end_closes", "charters", "households", "share_transfers", "member_plans"):
        for index, record in enumerate(sections[section]):
            if record["collective_id"] not in collectives:
                raise ScenarioError(f"{section}[{index}].collective_id",
                                    f"{record['collective_id']!r} is not one of the file's collectives")
    for index, record in enumerate(sections["entries"]):
        debit = sum(parse_yuan(line["debit"]) for line in record["lines"] if "debit" in line)
        credit = sum(parse_yuan(line["credit"]) for line in record["lines"] if "credit" in line)
        if debit != credit:
            raise ScenarioError(f"entries[{index}].lines", "debits and credits differ")
    closes = [(r["collective_id"], r["year"]) for r in sections["year_end_closes"]]
    for index, key in enumerate(closes):
        if key in closes[:index]:
            raise ScenarioError(f"year_end_closes[{index}].year", f"{key[1]} is closed once")
    charters = _unique(sections, "charters", "collective_id")
    kinds = {r["collective_id"]: {k["kind"] for k in r["share_kinds"]} for r in sections["charters"]}
    for index, record in enumerate(sections["charters"]):
        listed = [k["kind"] for k in record["share_kinds"]]
        if len(set(listed)) != len(listed):
            raise ScenarioError(f"charters[{index}].share_kinds", "a share kind is listed twice")
    households = _unique(sections, "households", "household_id")
    members = [m["member_id"] for h in sections["households"] for m in h.get("members", [])]
    if len(set(members)) != len(members):
        seen: set[str] = set()
        for index, record in enumerate(sections["households"]):
            for number, member in enumerate(record.get("members", [])):
                if member["member_id"] in seen:
                    raise ScenarioError(f"households[{index}].members[{number}].member_id",
                                        f"{member['member_id']!r} is registered twice")
                seen.add(member["member_id"])
    fixed_on = {r["collective_id"]: r.get("shares_fixed_on") for r in sections["charters"]}
    for index, record in enumerate(sections["households"]):
        if record["collective_id"] not in charters and record.get("holdings"):
            raise ScenarioError(f"households[{index}].holdings", "the collective has no charter in the file")
        fixed = fixed_on.get(record["collective_id"])
        since = record.get("effective_on", record["registered_on"])
        if record.get("holdings") and fixed is not None and since >= fixed:
            raise ScenarioError(f"households[{index}].effective_on", f"holdings are set before the shares were fixed "
                                f"({fixed}); after that they change only by share_transfers")
        for kind in sorted(record.get("holdings", {})):
            if kind not in kinds.get(record["collective_id"], set()):
                raise ScenarioError(f"households[{index}].holdings.{kind}", "not a share kind of the charter")
    _unique(sections, "share_transfers", "transfer_id")
    for index, record in enumerate(sections["share_transfers"]):
        for name in ("from_household", "to_household"):
            found = households.get(record[name])
            if found is None or sections["households"][found]["collective_id"] != record["collective_id"]:
                raise ScenarioError(f"share_transfers[{index}].{name}",
                                    f"{record[name]!r} is not a household of {record['collective_id']!r} in the file")
        if record["kind"] not in kinds.get(record["collective_id"], set()):
            raise ScenarioError(f"share_transfers[{index}].kind", "not a share kind of the charter")
    _unique(sections, "member_plans", "plan_id")
    for index, record in enumerate(sections["member_plans"]):
        if record["collective_id"] not in charters:
            raise ScenarioError(f"member_plans[{index}].collective_id", "the collective has no charter in the file")
        if (record["collective_id"], record["year"]) not in closes:
            raise ScenarioError(f"member_plans[{index}].year",
                                f"the file does not close {record['year']} (year_end_closes) before its plan")
        for number, hid in enumerate(record.get("payments", {}).get("unpaid", [])):
            found = households.get(hid)
            if found is None or sections["households"][found]["collective_id"] != record["collective_id"]:
                raise ScenarioError(f"member_plans[{index}].payments.unpaid[{number}]",
                                    f"{hid!r} is not a household of {record['collective_id']!r} in the file")


def _unique(sections: Mapping[str, list[dict[str, Any]]], section: str, id_field: str) -> dict[str, int]:
    """Index of each record by its id; a repeated id is an error."""
    seen: dict[str, int] = {}
    for index, record in enumerate(sections[section]):
        value = record.get(id_field)
        if value is None:
            continue
        if value in seen:
            raise ScenarioError(f"{section}[{index}].{id_field}", f"{value!r} is already {section}[{seen[value]}]")
        seen[value] = index
    return seen
