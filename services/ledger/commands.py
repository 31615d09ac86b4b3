"""What the ledger is asked to do: one frozen dataclass per command of ``handlers.py``.

Values are as the request schemas left them (ids, ``YYYY-MM-DD`` dates and yuan strings already
checked for their form); the handlers apply the rules. Every id the command creates is chosen by
the caller (``services.runtime.http.fresh_uuid``, so a retry with the same Idempotency-Key
chooses the same), never by a handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from services.runtime.handling import Refused

#: A journal line on the wire: ``{"account", "debit"}`` or ``{"account", "credit"}``.
WireLine = Mapping[str, str]


# -- registry ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterCollective:
    collective_id: str
    name: str
    town: str
    uscc: str | None
    alliances: tuple[str, ...]


@dataclass(frozen=True)
class RegisterInvestor:
    investor_id: str
    name: str
    investor_type: str


@dataclass(frozen=True)
class RegisterProject:
    project_id: str
    name: str
    kind: str
    town: str
    operator: str


# -- the investment register -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invest:
    """A land share (``area_mu`` × ``price_per_mu``) or cash (``amount``) put into a project."""

    project_id: str
    investment_id: str
    investor_id: str
    claimed_type: str | None  # the investor_type the caller sent, if any: it must match the registry
    kind: str  # "land" or "cash"
    effective_on: str
    area_mu: str | None = None
    price_per_mu: str | None = None
    parcel: str | None = None
    amount: str | None = None


@dataclass(frozen=True)
class Withdraw:
    project_id: str
    withdrawal_id: str
    investor_id: str
    amount: str
    effective_on: str
    reason: str


# -- the books ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostEntry:
    """A manual journal entry in one collective's books."""

    collective_id: str
    entry_id: str
    date: str
    memo: str
    lines: tuple[WireLine, ...]
    idempotency_key: str | None = None
    attachments: int | None = None  # 附件张数


@dataclass(frozen=True)
class PostBatch:
    """Up to 1000 entries, each posted or refused on its own. An item the HTTP layer already refused
    (it does not parse, or names a collective outside the caller's scope) is that refusal."""

    items: tuple[PostEntry | Refused, ...]


@dataclass(frozen=True)
class ReverseEntry:
    collective_id: str
    entry_id: str
    date: str
    reason: str


@dataclass(frozen=True)
class ClosePeriod:
    collective_id: str
    period: str


@dataclass(frozen=True)
class YearEndClose:
    """The year-end close (结转) of ``year``; ``today`` (China Standard Time) is the caller's."""

    collective_id: str
    year: int
    today: date
