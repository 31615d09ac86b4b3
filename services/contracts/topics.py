"""Topic names, owners and settings (DESIGN §4), in one place.

Every other module, the admin step and the AsyncAPI document read this table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    owner: str
    key: str
    event_types: tuple[str, ...]
    description: str


LEDGER_ENTRIES = "baotuan.ledger.entries.v1"
LEDGER_INVESTMENTS = "baotuan.ledger.investments.v1"
RENTALS = "baotuan.rentals.v1"
DIVIDENDS = "baotuan.dividends.v1"
DEADLETTER = "baotuan.deadletter.v1"
CHECKPOINTS = "baotuan.checkpoints.v1"
#: The topics whose streams are hash-chained and anchored by signed checkpoints.
RECORD_TOPICS = (LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS, DIVIDENDS)

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic(LEDGER_ENTRIES, "ledger", "collective_id (investor_id for InvestorRegistered)",
              ("CollectiveRegistered", "InvestorRegistered", "EntryPosted", "EntryReversed", "PeriodClosed"),
              "Each village's books: registrations, journal entries, reversals and closed periods."),
        Topic(LEDGER_INVESTMENTS, "ledger", "project_id",
              ("ProjectRegistered", "LandShareInvested", "CashInvested", "InvestmentWithdrawn"),
              "Projects and the capital each investor holds in them."),
        Topic(RENTALS, "rentals", "project_id",
              ("BuildingRegistered", "LeaseSigned", "RentInvoiced", "RentReceived", "ExpenseRecorded",
               "LeaseTerminated"),
              "Buildings, leases, invoices, rent received and project expenses."),
        Topic(DIVIDENDS, "dividends", "project_id",
              ("PolicySet", "DistributionDeclared", "DividendAllocated", "DistributionApproved",
               "DividendPaid", "DistributionCancelled"),
              "Distribution policies, declared distributions, per-investor allocations and payments."),
        Topic(DEADLETTER, "any consumer", "original key", ("DeadLetter",),
              "Records a consumer could not process, with the reason."),
        Topic(CHECKPOINTS, "the writer of the topic it covers", "the topic's name", ("ChainCheckpoint",),
              "Signed checkpoints (Ed25519) of each record topic: end offsets and the heads of its streams."),
    )
}

#: Record topics keep everything and are never compacted.
TOPIC_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}


def partitions() -> int:
    """Partitions per topic (``BAOTUAN_TOPIC_PARTITIONS``, default 3)."""
    return int(os.environ.get("BAOTUAN_TOPIC_PARTITIONS", "3"))


def replication_factor() -> int:
    """Replication factor (``BAOTUAN_TOPIC_REPLICATION``, default 1 on one machine; 3 in production)."""
    return int(os.environ.get("BAOTUAN_TOPIC_REPLICATION", "1"))


def owner_of(topic: str) -> str:
    """The service that writes ``topic``'s records (and signs its checkpoints)."""
    found = TOPICS.get(topic)
    if found is None or topic not in RECORD_TOPICS:
        raise KeyError(topic)
    return found.owner


def topic_of(event_type: str) -> str:
    """The topic an event type is published on."""
    for topic in TOPICS.values():
        if event_type in topic.event_types:
            return topic.name
    raise KeyError(event_type)
