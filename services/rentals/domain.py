"""Pure rules of the rentals service: leases, invoices, payments, occupancy and reports.

No I/O here: no Flask, no Kafka, no database. Every function takes plain values and
returns plain values, so the service, its projection and the auditor can all call the
same code and get the same answers.

Conventions
-----------
* **Money** is an ``int`` of fen (1 yuan = 100 fen), never a float. Pro-rating is done
  on an exact ``Fraction`` and rounded once, ROUND_HALF_UP to the fen (DESIGN §3).
* **Dates** are ``datetime.date``.
* **Lease dates are half-open**: ``start_on`` is the first day the tenant pays for and
  ``end_on`` is the first day **not** covered (exclusive). A lease from ``2025-03-01`` to
  ``2030-03-01`` is exactly five whole years; its last day is ``2030-02-28``. Two leases of
  the same building touch without overlapping when one's ``end_on`` is the other's
  ``start_on``.
* **Termination** (``LeaseTerminated.end_on``) follows the same convention: the lease no
  longer covers ``terminated_on`` and later days. ``effective_end`` is ``terminated_on``
  when the lease was terminated, else ``end_on``; a lease is *in force* on day ``d`` when
  ``start_on <= d < effective_end``.
* **Billing periods** are calendar months, calendar quarters or calendar years, clipped to
  ``[start_on, effective_end)``. A period's ``period_end`` is inclusive (its last day).
  A full period costs ``monthly_rent × months`` (1, 3 or 12); a clipped first or last
  period costs ``round_half_up(monthly_rent × months × days_covered / days_in_period)``.
  The invoice is due on its ``period_start``. Invoice ids are deterministic
  (``"{lease_id}:{period_start}"``), so generating a schedule twice yields the same ids and
  the service issues only the ones it has not issued yet.
* **Payments** go to the oldest open invoice first (by ``due_on``, then ``invoice_id``);
  whatever is left over stays with the lease as the tenant's credit, and credit is used
  up, oldest invoice first, against newly issued invoices. Nothing is ever lost:
  Σ applied + new credit = amount + old credit. A payment may name the invoice it pays
  (``first``): that invoice is served first, the rest goes oldest first as usual.
* **Termination stops the rent** on the termination date, whenever the invoices were
  issued: invoices of periods that start on or after it are void, the invoice of the period
  the lease ends in is cut to the days covered and re-priced like any clipped period
  (:func:`invoices_after_termination`); money applied beyond the new amounts goes back to
  the tenant's credit.
* **Arrears on a date** are recomputed from what was due and what was received by then
  (:func:`arrears_on`), so a report for a past date is not changed by later payments.
* **Bounds** (DESIGN §3, §9): a lease lasts at most :data:`MAX_LEASE_YEARS` (20) years, the
  longest term the Civil Code (民法典 art. 705) allows: ``end_on`` (exclusive) is at most the
  same calendar day 20 years after ``start_on`` (1 March when that day is a 29 February the
  year does not have), so the last day let is at latest the day before the 20th anniversary
  (:func:`latest_end_on`). One invoice — ``monthly_rent × months`` of the billing period, 12
  for annual billing — must fit the wire format (at most 999999999999.99 yuan). Both are
  refused when the lease is signed (:class:`LeaseTooLong`, :class:`InvoiceTooLarge`).
* **Errors** are :class:`RentalsError` (a ``ValueError``); ``error.field`` names the input
  field that is wrong, so the HTTP layer can answer a 4xx naming it (DESIGN §9).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from fractions import Fraction
from typing import ClassVar, Literal

from services.contracts.money import MAX_YUAN, fits_wire, format_yuan, round_half_up

__all__ = [
    "ARREARS_BUCKETS",
    "BILLING_MONTHS",
    "GRANULARITIES",
    "MAX_LEASE_YEARS",
    "AlreadyTerminated",
    "Arrears",
    "Building",
    "BuildingStatus",
    "DuplicateInvoice",
    "DuplicateLease",
    "InvalidAmount",
    "InvalidBilling",
    "InvalidCredit",
    "InvalidDeposit",
    "InvalidGranularity",
    "InvalidLeaseDates",
    "InvalidOutstanding",
    "InvalidTermination",
    "InvoiceDue",
    "InvoiceNotOpen",
    "InvoiceTooLarge",
    "Lease",
    "LeaseOverlap",
    "LeaseTooLong",
    "NonPositiveRent",
    "Occupancy",
    "OpenInvoice",
    "PaymentApplication",
    "ReceivedPayment",
    "RentRollRow",
    "RentalsError",
    "TerminationEffect",
    "UnknownInvoice",
    "apply_credit",
    "apply_payment",
    "arrears",
    "arrears_on",
    "check_new_lease",
    "check_termination",
    "credit_after_payment",
    "income_by_period",
    "invoice_count",
    "invoice_schedule",
    "invoices_after_termination",
    "latest_end_on",
    "occupancy",
    "period_label",
    "rent_roll",
]

#: Months in one billing period, per billing frequency.
BILLING_MONTHS: Mapping[str, int] = {"monthly": 1, "quarterly": 3, "annual": 12}
#: The longest lease term, in years: the Civil Code (民法典 art. 705) caps a lease at 20 years.
MAX_LEASE_YEARS = 20
#: Granularities accepted by :func:`income_by_period`.
GRANULARITIES: tuple[str, ...] = ("month", "quarter", "year")
#: Arrears buckets, by whole days past ``due_on``: 0–30, 31–60, 61–90, more than 90.
ARREARS_BUCKETS: tuple[str, ...] = ("0-30", "31-60", "61-90", "90+")

OccupancyStatus = Literal["leased", "vacant"]
RentRollStatus = Literal["leased", "vacant", "terminated", "ended"]


# --------------------------------------------------------------------------- errors


class RentalsError(ValueError):
    """A request the rentals rules refuse. ``field`` names the offending input field."""

    default_field: ClassVar[str | None] = None

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field if field is not None else self.default_field


class InvalidLeaseDates(RentalsError):
    """``end_on`` is not after ``start_on``."""

    default_field = "end_on"


class LeaseTooLong(RentalsError):
    """The term is longer than the 20 years the Civil Code allows (``end_on`` past :func:`latest_end_on`)."""

    default_field = "end_on"


class InvoiceTooLarge(RentalsError):
    """One billing period's rent (``monthly_rent × months``) would not fit the wire format."""

    default_field = "monthly_rent"


class NonPositiveRent(RentalsError):
    """``monthly_rent`` is zero, negative or not an int of fen."""

    default_field = "monthly_rent"


class InvalidDeposit(RentalsError):
    """``deposit`` is negative or not an int of fen."""

    default_field = "deposit"


class InvalidBilling(RentalsError):
    """``billing`` is not one of monthly, quarterly, annual."""

    default_field = "billing"


class DuplicateLease(RentalsError):
    """A lease with this ``lease_id`` already exists."""

    default_field = "lease_id"


class LeaseOverlap(RentalsError):
    """The building is already let (by ``conflicting_lease_id``) for part of the new term."""

    default_field = "building_id"

    def __init__(self, message: str, conflicting_lease_id: str, field: str | None = None) -> None:
        super().__init__(message, field)
        self.conflicting_lease_id = conflicting_lease_id


class AlreadyTerminated(RentalsError):
    """The lease was terminated before."""

    default_field = "lease_id"


class InvalidTermination(RentalsError):
    """The termination date is not within ``(start_on, end_on]`` of the lease."""

    default_field = "end_on"


class InvalidAmount(RentalsError):
    """A payment amount that is not a positive int of fen."""

    default_field = "amount"


class InvalidCredit(RentalsError):
    """A credit balance that is negative or not an int of fen."""

    default_field = "credit"


class InvalidOutstanding(RentalsError):
    """An open invoice whose outstanding amount is negative or not an int of fen."""

    default_field = "outstanding"


class DuplicateInvoice(RentalsError):
    """The same invoice appears twice among the open invoices."""

    default_field = "invoice_id"


class UnknownInvoice(RentalsError):
    """A payment names an invoice that is not one of the lease's invoices."""

    default_field = "invoice_id"


class InvoiceNotOpen(RentalsError):
    """A payment names an invoice that has nothing left to pay."""

    default_field = "invoice_id"


class InvalidGranularity(RentalsError):
    """A report granularity that is not month, quarter or year."""

    default_field = "granularity"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Building:
    """A lettable building of a project (BuildingRegistered)."""

    building_id: str
    project_id: str
    name: str
    floor_area_m2: Fraction


@dataclass(frozen=True)
class Lease:
    """A lease of one building (LeaseSigned, plus LeaseTerminated if any).

    ``end_on`` and ``terminated_on`` are exclusive: the first day not covered.
    ``tenant`` is the tenant's name (``tenant.name`` on the wire), used by the rent roll.
    """

    lease_id: str
    project_id: str
    building_id: str
    start_on: date
    end_on: date
    monthly_rent: int
    deposit: int
    billing: str
    terminated_on: date | None = None
    tenant: str = ""

    @property
    def effective_end(self) -> date:
        """First day not covered: ``terminated_on`` if terminated, else ``end_on``."""
        return self.terminated_on if self.terminated_on is not None else self.end_on

    def in_force_on(self, day: date) -> bool:
        """True when the lease covers ``day`` (``start_on <= day < effective_end``)."""
        return self.start_on <= day < self.effective_end


@dataclass(frozen=True)
class InvoiceDue:
    """One billing period a lease owes. ``period_end`` is inclusive; due on ``period_start``."""

    invoice_id: str
    period_start: date
    period_end: date
    amount: int
    due_on: date

    def as_open(self) -> OpenInvoice:
        """The invoice as an unpaid :class:`OpenInvoice` (outstanding = amount)."""
        return OpenInvoice(self.invoice_id, self.due_on, self.amount)


@dataclass(frozen=True)
class OpenInvoice:
    """An issued invoice with ``outstanding`` fen still unpaid."""

    invoice_id: str
    due_on: date
    outstanding: int


@dataclass(frozen=True)
class ReceivedPayment:
    """Rent received against a lease (RentReceived); ``invoice_id`` is the invoice it names, if any."""

    payment_id: str
    received_on: date
    amount: int
    invoice_id: str | None = None


@dataclass(frozen=True)
class TerminationEffect:
    """Invoices an early end voids (ids), and those it cuts to fewer days (with the new period and amount)."""

    voided: list[str]
    repriced: list[InvoiceDue]


@dataclass(frozen=True)
class PaymentApplication:
    """How money was spread: ``applied`` lists (invoice_id, fen) oldest first; the rest is credit."""

    applied: list[tuple[str, int]]
    new_credit: int

    @property
    def total_applied(self) -> int:
        return sum((fen for _, fen in self.applied), 0)


@dataclass(frozen=True)
class BuildingStatus:
    """A building's state on a date: leased (by ``lease_id``) or vacant."""

    building_id: str
    floor_area_m2: Fraction
    status: OccupancyStatus
    lease_id: str | None


@dataclass(frozen=True)
class Occupancy:
    """Leased and vacant floor area on ``on``, with the status of every building."""

    on: date
    total_area_m2: Fraction
    leased_area_m2: Fraction
    vacant_area_m2: Fraction
    buildings: list[BuildingStatus]

    @property
    def rate(self) -> Fraction:
        """Leased share of the floor area (0 when there is no floor area at all)."""
        if self.total_area_m2 == 0:
            return Fraction(0)
        return self.leased_area_m2 / self.total_area_m2


@dataclass(frozen=True)
class Arrears:
    """Outstanding fen per age bucket (keys in :data:`ARREARS_BUCKETS` order) and in total."""

    as_of: date
    buckets: dict[str, int]
    total: int


@dataclass(frozen=True)
class RentRollRow:
    """One building on the rent roll.

    ``status``: ``leased`` (a lease is in force), ``terminated`` / ``ended`` (no lease in
    force; the latest past lease was terminated early / ran to its end), ``vacant`` (never
    let up to that date). ``lease_id`` and ``tenant`` name the lease in force, or the latest
    past one; ``monthly_rent`` is the rent being earned, so 0 unless leased.
    """

    building_id: str
    building_name: str
    floor_area_m2: Fraction
    status: RentRollStatus
    lease_id: str | None
    tenant: str | None
    monthly_rent: int


# --------------------------------------------------------------------------- helpers


def _is_fen(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _add_months(year: int, month: int, months: int) -> date:
    """First day of the month ``months`` after (year, month)."""
    index = year * 12 + (month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def _calendar_period(day: date, months: int) -> tuple[date, date]:
    """The calendar period of ``months`` months (1, 3, 12) containing ``day``: [first, next)."""
    first_month = (day.month - 1) // months * months + 1
    first = date(day.year, first_month, 1)
    return first, _add_months(day.year, first_month, months)


def latest_end_on(start_on: date) -> date:
    """The latest ``end_on`` (exclusive) of a lease starting on ``start_on``: the same day 20 years on.

    When that day does not exist (a 29 February in a year that has none) it is 1 March, so the
    last day let is 28 February. ``start_on`` 2025-03-01 → 2045-03-01 (last day let 2045-02-28).
    """
    year = start_on.year + MAX_LEASE_YEARS
    try:
        return start_on.replace(year=year)
    except ValueError:  # 29 February
        return date(year, 3, 1)


def _billing_months(billing: str) -> int:
    months = BILLING_MONTHS.get(billing) if isinstance(billing, str) else None
    if months is None:
        raise InvalidBilling(f"billing must be one of {', '.join(BILLING_MONTHS)}, got {billing!r}")
    return months


# --------------------------------------------------------------------------- leases


def check_new_lease(lease: Lease, existing_leases: Iterable[Lease]) -> None:
    """Refuse a new lease that is malformed or overlaps a live lease of the same building.

    Raises (in this order of checks) InvalidLeaseDates, LeaseTooLong, NonPositiveRent,
    InvalidDeposit, InvalidBilling, InvoiceTooLarge, DuplicateLease, LeaseOverlap. A term of
    exactly 20 years (``end_on == latest_end_on(start_on)``) is accepted; one day more is not.
    An existing lease counts up to its
    ``effective_end``: a lease terminated on or before the new ``start_on`` frees the building,
    and a lease ending (exclusive) on the new ``start_on`` merely touches it.
    """
    if lease.end_on <= lease.start_on:
        raise InvalidLeaseDates(
            f"end_on {lease.end_on.isoformat()} must be after start_on {lease.start_on.isoformat()}"
        )
    latest = latest_end_on(lease.start_on)
    if lease.end_on > latest:
        raise LeaseTooLong(
            f"a lease may last at most {MAX_LEASE_YEARS} years (Civil Code art. 705): end_on (the first day "
            f"not let) must be on or before {latest.isoformat()}, got {lease.end_on.isoformat()}"
        )
    if not _is_fen(lease.monthly_rent) or lease.monthly_rent <= 0:
        raise NonPositiveRent("monthly_rent must be a positive amount")
    if not _is_fen(lease.deposit) or lease.deposit < 0:
        raise InvalidDeposit("deposit must not be negative")
    months = _billing_months(lease.billing)
    if not fits_wire(lease.monthly_rent * months):
        raise InvoiceTooLarge(
            f"one {lease.billing} invoice (monthly_rent × {months} = {format_yuan(lease.monthly_rent * months)}) "
            f"would exceed the largest amount, {MAX_YUAN}"
        )
    for other in existing_leases:
        if other.lease_id == lease.lease_id:
            raise DuplicateLease(f"lease {lease.lease_id!r} already exists")
        if other.building_id != lease.building_id:
            continue
        if other.start_on < lease.end_on and lease.start_on < other.effective_end:
            raise LeaseOverlap(
                f"building {lease.building_id!r} is let under lease {other.lease_id!r} from "
                f"{other.start_on.isoformat()} until {other.effective_end.isoformat()} (exclusive)",
                conflicting_lease_id=other.lease_id,
            )


def check_termination(lease: Lease, end_on: date) -> None:
    """Refuse a termination unless the lease is live and ``start_on < end_on <= lease.end_on``.

    ``end_on`` is exclusive (first day no longer covered), like the lease's own ``end_on``.
    """
    if lease.terminated_on is not None:
        raise AlreadyTerminated(
            f"lease {lease.lease_id!r} was already terminated on {lease.terminated_on.isoformat()}"
        )
    if not lease.start_on < end_on <= lease.end_on:
        raise InvalidTermination(
            f"end_on must be after {lease.start_on.isoformat()} and on or before "
            f"{lease.end_on.isoformat()}, got {end_on.isoformat()}"
        )


def invoice_count(lease: Lease, up_to: date) -> int:
    """How many invoices :func:`invoice_schedule` would list for ``(lease, up_to)``, without listing them.

    Counted from the calendar periods alone (O(1)), so a request can be refused before any work.
    """
    months = _billing_months(lease.billing)
    last = min(up_to, date.fromordinal(lease.effective_end.toordinal() - 1))
    if last < lease.start_on:
        return 0

    def index(day: date) -> int:
        return (day.year * 12 + day.month - 1) // months

    return index(last) - index(lease.start_on) + 1


def invoice_schedule(lease: Lease, up_to: date) -> list[InvoiceDue]:
    """Every billing period of ``lease`` whose (clipped) ``period_start`` is on or before ``up_to``.

    Periods are calendar months / quarters / years clipped to ``[start_on, effective_end)``.
    A period costs ``round_half_up(monthly_rent × months × days_covered / days_in_period)``,
    which is exactly ``monthly_rent × months`` for a whole period.
    """
    months = _billing_months(lease.billing)
    end = lease.effective_end
    schedule: list[InvoiceDue] = []
    cursor = lease.start_on
    while cursor < end and cursor <= up_to:
        calendar_start, calendar_next = _calendar_period(cursor, months)
        period_next = min(calendar_next, end)
        days_covered = (period_next - cursor).days
        days_in_period = (calendar_next - calendar_start).days
        amount = round_half_up(Fraction(lease.monthly_rent * months * days_covered, days_in_period))
        schedule.append(
            InvoiceDue(
                invoice_id=f"{lease.lease_id}:{cursor.isoformat()}",
                period_start=cursor,
                period_end=date.fromordinal(period_next.toordinal() - 1),
                amount=amount,
                due_on=cursor,
            )
        )
        cursor = calendar_next
    return schedule


# --------------------------------------------------------------------------- payments


def _allocate(open_invoices: Sequence[OpenInvoice], available: int, first: str | None = None) -> PaymentApplication:
    seen: dict[str, OpenInvoice] = {}
    for invoice in open_invoices:
        if invoice.invoice_id in seen:
            raise DuplicateInvoice(f"invoice {invoice.invoice_id!r} is listed twice")
        seen[invoice.invoice_id] = invoice
        if not _is_fen(invoice.outstanding) or invoice.outstanding < 0:
            raise InvalidOutstanding(f"invoice {invoice.invoice_id!r} has a negative outstanding amount")
    if first is not None:
        if first not in seen:
            raise UnknownInvoice(f"invoice {first!r} is not an invoice of this lease")
        if seen[first].outstanding == 0:
            raise InvoiceNotOpen(f"invoice {first!r} has nothing left to pay")
    applied: list[tuple[str, int]] = []
    # The named invoice (if any) first, then oldest first.
    for invoice in sorted(open_invoices, key=lambda inv: (inv.invoice_id != first, inv.due_on, inv.invoice_id)):
        if available == 0:
            break
        if invoice.outstanding == 0:
            continue
        share = min(available, invoice.outstanding)
        applied.append((invoice.invoice_id, share))
        available -= share
    return PaymentApplication(applied=applied, new_credit=available)


def apply_payment(open_invoices: Sequence[OpenInvoice], credit: int, amount: int, *,
                  first: str | None = None) -> PaymentApplication:
    """Spread a payment of ``amount`` fen plus the lease's ``credit`` over its open invoices.

    Oldest invoice first (by ``due_on``, then ``invoice_id``); the last one reached may be paid
    in part; whatever remains becomes ``new_credit``. Σ applied + new_credit = amount + credit.
    ``first`` names an invoice the payment is meant for: it is served before the others
    (UnknownInvoice if it is not among ``open_invoices``, InvoiceNotOpen if nothing is left on it).
    """
    if not _is_fen(amount) or amount <= 0:
        raise InvalidAmount("amount must be a positive amount")
    if not _is_fen(credit) or credit < 0:
        raise InvalidCredit("credit must not be negative")
    return _allocate(open_invoices, credit + amount, first)


def credit_after_payment(owed: int, credit: int, amount: int) -> int:
    """The credit :func:`apply_payment` leaves, from the totals alone: what is left of ``amount + credit``
    once everything ``owed`` on the lease's open invoices is paid (every open invoice is served before
    anything is kept). So a payment can be refused before the projection spreads it.
    """
    return max(0, credit + amount - owed)


def apply_credit(invoices: Sequence[OpenInvoice], credit: int) -> PaymentApplication:
    """Use a lease's ``credit`` against (newly issued) invoices, oldest first.

    Same rule as :func:`apply_payment` with no new money: Σ applied + new_credit = credit.
    Pass new invoices as ``[due.as_open() for due in new_invoices]``.
    """
    if not _is_fen(credit) or credit < 0:
        raise InvalidCredit("credit must not be negative")
    return _allocate(invoices, credit)


def arrears(open_invoices: Iterable[OpenInvoice], as_of: date) -> Arrears:
    """Outstanding fen aged by whole days past ``due_on`` on ``as_of``.

    Buckets: ``0-30`` (due 0..30 days ago, including due today), ``31-60``, ``61-90`` and
    ``90+`` (91 days or more). Invoices not yet due (``due_on > as_of``) are left out.
    """
    buckets = dict.fromkeys(ARREARS_BUCKETS, 0)
    for invoice in open_invoices:
        if not _is_fen(invoice.outstanding) or invoice.outstanding < 0:
            raise InvalidOutstanding(f"invoice {invoice.invoice_id!r} has a negative outstanding amount")
        days = (as_of - invoice.due_on).days
        if days < 0 or invoice.outstanding == 0:
            continue
        if days <= 30:
            bucket = "0-30"
        elif days <= 60:
            bucket = "31-60"
        elif days <= 90:
            bucket = "61-90"
        else:
            bucket = "90+"
        buckets[bucket] += invoice.outstanding
    return Arrears(as_of=as_of, buckets=buckets, total=sum(buckets.values(), 0))


def arrears_on(invoices: Iterable[InvoiceDue], payments: Iterable[ReceivedPayment], as_of: date) -> Arrears:
    """Arrears of one lease on ``as_of``, from what was due and what was received by then.

    The invoices due on or before ``as_of`` are settled by the payments received on or before
    ``as_of``, in the order received (same day: the order given), each by the rule of
    :func:`apply_payment`; what is left is aged by :func:`arrears`. Later payments, and
    invoices not yet due, do not change the answer. Pass only invoices that are not void.
    """
    open_by_id: dict[str, OpenInvoice] = {}
    for invoice in invoices:
        if invoice.due_on <= as_of:
            if invoice.invoice_id in open_by_id:
                raise DuplicateInvoice(f"invoice {invoice.invoice_id!r} is listed twice")
            open_by_id[invoice.invoice_id] = invoice.as_open()
    credit = 0
    received = [payment for payment in payments if payment.received_on <= as_of]
    for payment in sorted(received, key=lambda p: p.received_on):  # stable: same-day order kept
        named = open_by_id.get(payment.invoice_id) if payment.invoice_id is not None else None
        first = named.invoice_id if named is not None and named.outstanding > 0 else None
        result = apply_payment(list(open_by_id.values()), credit, payment.amount, first=first)
        for invoice_id, fen in result.applied:
            current = open_by_id[invoice_id]
            open_by_id[invoice_id] = replace(current, outstanding=current.outstanding - fen)
        credit = result.new_credit
    return arrears(open_by_id.values(), as_of)


def invoices_after_termination(lease: Lease, issued: Iterable[InvoiceDue]) -> TerminationEffect:
    """What an early end does to the invoices already issued for ``lease`` (``terminated_on`` set).

    The rent stops on the termination date, whenever the invoices were issued: a period that
    starts on or after it is voided; the period the lease now ends in is cut to its covered
    days and re-priced exactly as :func:`invoice_schedule` prices a clipped period. Invoices of
    earlier periods are unchanged (and not listed).
    """
    if lease.terminated_on is None:
        raise InvalidTermination(f"lease {lease.lease_id!r} is not terminated", field="end_on")
    owed = {due.invoice_id: due for due in invoice_schedule(lease, lease.terminated_on)}
    voided: list[str] = []
    repriced: list[InvoiceDue] = []
    for invoice in issued:
        now = owed.get(invoice.invoice_id)
        if now is None:
            voided.append(invoice.invoice_id)
        elif (now.amount, now.period_end) != (invoice.amount, invoice.period_end):
            repriced.append(now)
    return TerminationEffect(voided=voided, repriced=repriced)


# --------------------------------------------------------------------------- reports


def _lease_in_force(building_id: str, leases: Sequence[Lease], on: date) -> Lease | None:
    live = [lease for lease in leases if lease.building_id == building_id and lease.in_force_on(on)]
    return min(live, key=lambda lease: lease.lease_id) if live else None


def occupancy(buildings: Sequence[Building], leases: Iterable[Lease], on: date) -> Occupancy:
    """Leased vs vacant floor area on ``on``; a building is leased when a lease is in force that day.

    Buildings are reported in the order given; leases of other buildings are ignored.
    """
    lease_list = list(leases)
    statuses: list[BuildingStatus] = []
    total = Fraction(0)
    leased = Fraction(0)
    for building in buildings:
        area = Fraction(building.floor_area_m2)
        total += area
        current = _lease_in_force(building.building_id, lease_list, on)
        if current is not None:
            leased += area
            statuses.append(BuildingStatus(building.building_id, area, "leased", current.lease_id))
        else:
            statuses.append(BuildingStatus(building.building_id, area, "vacant", None))
    return Occupancy(
        on=on, total_area_m2=total, leased_area_m2=leased, vacant_area_m2=total - leased, buildings=statuses
    )


def rent_roll(buildings: Sequence[Building], leases: Iterable[Lease], on: date) -> list[RentRollRow]:
    """One row per building (in the order given) with its tenant, rent and status on ``on``.

    See :class:`RentRollRow` for the statuses. Leases that start after ``on`` are not shown.
    """
    lease_list = list(leases)
    rows: list[RentRollRow] = []
    for building in buildings:
        area = Fraction(building.floor_area_m2)
        current = _lease_in_force(building.building_id, lease_list, on)
        if current is not None:
            rows.append(
                RentRollRow(
                    building.building_id,
                    building.name,
                    area,
                    "leased",
                    current.lease_id,
                    current.tenant,
                    current.monthly_rent,
                )
            )
            continue
        past = [
            lease
            for lease in lease_list
            if lease.building_id == building.building_id
            and lease.effective_end <= on
            and lease.start_on < lease.effective_end
        ]
        if not past:
            rows.append(RentRollRow(building.building_id, building.name, area, "vacant", None, None, 0))
            continue
        latest = max(past, key=lambda lease: (lease.effective_end, lease.lease_id))
        status: RentRollStatus = "terminated" if latest.terminated_on is not None else "ended"
        rows.append(
            RentRollRow(building.building_id, building.name, area, status, latest.lease_id, latest.tenant, 0)
        )
    return rows


def period_label(day: date, granularity: str) -> str:
    """The report period of ``day``: ``"2026-03"`` (month), ``"2026-Q1"`` (quarter), ``"2026"`` (year)."""
    if granularity == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if granularity == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    if granularity == "year":
        return f"{day.year:04d}"
    raise InvalidGranularity(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")


def income_by_period(payments: Iterable[tuple[date, int]], granularity: str) -> dict[str, int]:
    """Rent received (``(received_on, fen)`` pairs) summed per period, in chronological order.

    Only periods with at least one payment appear. Labels as in :func:`period_label`.
    """
    if granularity not in GRANULARITIES:
        raise InvalidGranularity(
            f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}"
        )
    totals: dict[str, int] = {}
    for received_on, fen in payments:
        if not _is_fen(fen):
            raise InvalidAmount("payment amounts must be int fen")
        label = period_label(received_on, granularity)
        totals[label] = totals.get(label, 0) + fen
    return dict(sorted(totals.items()))
