"""The topics (DESIGN §4), who writes each and who reads it (DESIGN §2, §8): one table.

Everything else is derived from :data:`TOPICS`: the topics each service writes and consumes
(``services/<svc>/app.py``: :func:`owned_by`, :func:`inputs_of`), the Kafka ACLs of each
principal (:func:`standard_grants`), the admin step that creates the topics, and the AsyncAPI
document of the event catalogue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: The services that write events (each the only writer of its own topics of record).
WRITERS = ("ledger", "rentals", "dividends", "members")
#: The principal that reads every topic and writes none (``baotuan audit``, ``export``, the web page's download).
AUDITOR = "auditor"
#: Every baotuan topic starts with this; every principal may DESCRIBE them all (to find they exist).
TOPIC_PREFIX = "baotuan."


@dataclass(frozen=True)
class Topic:
    name: str
    #: Who writes it, in words: a service for a topic of record (its only writer), else who may.
    owner: str
    key: str
    event_types: tuple[str, ...]
    description: str
    #: The principals allowed to write it.
    writers: tuple[str, ...]
    #: The principals that consume it (its writer folding its own topic included; the auditor reads all).
    readers: tuple[str, ...]


LEDGER_ENTRIES = "baotuan.ledger.entries.v1"
LEDGER_INVESTMENTS = "baotuan.ledger.investments.v1"
RENTALS = "baotuan.rentals.v1"
DIVIDENDS = "baotuan.dividends.v1"
DEADLETTER = "baotuan.deadletter.v1"
CHECKPOINTS = "baotuan.checkpoints.v1"
ACCOUNTS = "baotuan.accounts.v1"
MEMBERS = "baotuan.members.v1"
#: The topics whose streams are hash-chained and anchored by signed checkpoints.
RECORD_TOPICS = (LEDGER_ENTRIES, LEDGER_INVESTMENTS, RENTALS, DIVIDENDS, ACCOUNTS, MEMBERS)

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic(LEDGER_ENTRIES, "ledger", "collective_id (investor_id for InvestorRegistered)",
              ("CollectiveRegistered", "InvestorRegistered", "EntryPosted", "EntryReversed", "PeriodClosed"),
              "Each village's books: registrations, journal entries, reversals and closed periods.",
              # The members service reads a village's books for the distributable amount of a year (DESIGN §11).
              writers=("ledger",), readers=("ledger", "members", AUDITOR)),
        Topic(LEDGER_INVESTMENTS, "ledger", "project_id",
              ("ProjectRegistered", "LandShareInvested", "CashInvested", "InvestmentWithdrawn"),
              "Projects and the capital each investor holds in them.",
              writers=("ledger",), readers=("ledger", "rentals", "dividends", AUDITOR)),
        Topic(RENTALS, "rentals", "project_id",
              ("BuildingRegistered", "LeaseSigned", "RentInvoiced", "RentReceived", "ExpenseRecorded",
               "LeaseTerminated"),
              "Buildings, leases, invoices, rent received and project expenses.",
              writers=("rentals",), readers=("rentals", "dividends", AUDITOR)),
        # The ledger posts the dividends approved and paid; rentals reads the declared distributions to tell
        # a late payment or expense (DESIGN §6 step 1).
        Topic(DIVIDENDS, "dividends", "project_id",
              ("PolicySet", "DistributionDeclared", "DividendAllocated", "DistributionApproved",
               "DividendPaid", "DistributionCancelled"),
              "Distribution policies, declared distributions, per-investor allocations and payments.",
              writers=("dividends",), readers=("dividends", "ledger", "rentals", AUDITOR)),
        # People's accounts: the ledger keeps the registry their scopes name; every service folds them to
        # know who a session or an account's API token is (docs/security.md).
        Topic(ACCOUNTS, "ledger", "account name",
              ("AccountCreated", "AccountChanged", "AccountDisabled", "AccountEnabled", "PasswordSet",
               "SessionStarted", "SessionEnded", "SignInFailed", "ApiTokenIssued", "ApiTokenRevoked"),
              "People's accounts (role, scope, status; the password hash only sealed), their sign-ins, sessions and "
              "API tokens; every service folds it to know who a session or an account's token is "
              "(docs/security.md).",
              writers=("ledger",), readers=("ledger", "rentals", "dividends", "members", AUDITOR)),
        # A village's own side (DESIGN §11): its register of members and shares and its year-end plans; the
        # ledger posts the plan's appropriations and the households' payments.
        Topic(MEMBERS, "members", "collective_id",
              ("CharterSet", "HouseholdRegistered", "MemberRegistered", "HoldingsSet", "SharesTransferred",
               "CertificateIssued", "PlanProposed", "HouseholdAllocated", "PlanApproved", "HouseholdDividendPaid",
               "PlanCancelled"),
              "Each village's register of households, members and shares, and its year-end distribution plans "
              "(收益分配方案) with the household allocations and payments.",
              writers=("members",), readers=("members", "ledger", AUDITOR)),
        Topic(DEADLETTER, "any consumer", "original key", ("DeadLetter",),
              "Records a consumer could not process, with the reason.",
              writers=WRITERS, readers=(AUDITOR,)),
        # Every writer signs checkpoints of its own topics here (and reads it back for its own chain). ACLs are
        # per topic: the signature, checked by the audit with the writer's pinned key, is what keeps one service
        # from vouching for another's topic.
        Topic(CHECKPOINTS, "the writer of the topic it covers", "the topic's name", ("ChainCheckpoint",),
              "Signed checkpoints (Ed25519) of each record topic: end offsets and the heads of its streams.",
              writers=WRITERS, readers=(*WRITERS, AUDITOR)),
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


def owned_by(service: str) -> list[str]:
    """The topics of record ``service`` writes, alone (its ``EventService(owned=...)``)."""
    return [name for name in RECORD_TOPICS if TOPICS[name].writers == (service,)]


def inputs_of(service: str) -> list[str]:
    """The topics of record of other services that ``service`` consumes (its ``EventService(inputs=...)``)."""
    return [name for name in RECORD_TOPICS if service in TOPICS[name].readers and service not in TOPICS[name].writers]


@dataclass(frozen=True)
class TopicGrant:
    """What one Kafka principal may do with baotuan's topics; anything else is denied (DESCRIBE: every
    topic under :data:`TOPIC_PREFIX`)."""

    read: tuple[str, ...]
    write: tuple[str, ...]


def standard_grants() -> dict[str, TopicGrant]:
    """DESIGN §8 as ACLs, per principal (each service, the auditor): READ and WRITE as the table says."""
    return {principal: TopicGrant(read=tuple(name for name, t in TOPICS.items() if principal in t.readers),
                                  write=tuple(name for name, t in TOPICS.items() if principal in t.writers))
            for principal in (*WRITERS, AUDITOR)}
