"""A valid log written without the services: for the audit's tests, tamper drills and benchmarks.

:class:`LogWriter` seals envelopes exactly as the runtime does (one hash chain per topic and
subject, keys partitioned like Kafka's default partitioner), numbers the offsets of each
partition, and posts the entries the ledger posts by itself (same derived ids and lines,
from ``services.ledger.domain``). Distributions are computed by the dividends service's
own ``compute_from_log`` and written with its payload builders. So an untouched log from
here passes ``baotuan audit``, and every change to it is a tamper to be found.

Records go to ``sink`` as archive rows (DESIGN §4); by default they are kept in ``rows``.
``archive_line`` writes a row as the export does: the event's canonical bytes verbatim.

With ``checkpoint_every`` and ``signing_keys`` (one Ed25519 key per service, e.g.
``synthetic_keys()``), each writer also signs a ``ChainCheckpoint`` of a topic after every that many
records of it (``checkpoint`` forces one), exactly as the services do (DESIGN §4, "Anchoring";
``rotate`` announces a new key in the writer's next checkpoint); with ``keep_receipts`` it
keeps the signed receipt of every record in ``receipts``. ``write_public_keys`` pins the
public keys in a directory as ``baotuan keys export`` does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from kafka.partitioner.default import murmur2

from services.audit.checks.input_rows import KIND_CODE, InputLog
from services.audit.sources.archive import archive_head
from services.contracts import anchoring
from services.contracts import envelope as env
from services.contracts.codec import canonical
from services.contracts.events import WRITERS, latest_version
from services.contracts.money import format_yuan, parse_mu, parse_yuan, valuation_fen
from services.contracts.topics import (
    LEDGER_INVESTMENTS,
    RECORD_TOPICS,
    RENTALS,
    TOPICS,
    owner_of,
    topic_of,
)
from services.dividends.domain import Policy
from services.dividends.inputs import (
    EarlierDistribution,
    allocation_event_data,
    compute_from_log,
    declared_event_data,
)
from services.ledger.domain import (
    automatic_entry_lines,
    derived_entry_id,
    local_date,
    posting_date,
)

Row = dict[str, Any]
ENTRY_QUALIFIER = "entry"


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, positive, modulo)."""
    return int(murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def archive_line(row: Mapping[str, Any]) -> str:
    """One archive line as ``baotuan export --format jsonl`` writes it: the event's canonical bytes verbatim."""
    return (archive_head(row) + canonical(row["event"]) + b"}\n").decode("utf-8")


def synthetic_keys(seed: str = "baotuan-synthetic") -> dict[str, Ed25519PrivateKey]:
    """One Ed25519 key per service, the same for the same seed (tests and benchmarks only)."""
    return {service: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"{seed}:{service}".encode()).digest())
            for service in WRITERS}


def write_public_keys(directory: Path, current: Mapping[str, Ed25519PublicKey],
                      others: Iterable[tuple[str, Ed25519PublicKey, str]] = ()) -> Path:
    """Pin public keys as ``baotuan keys export --output DIR`` writes them: ``<service>.pem`` for the current
    key, ``<service>-<key id>.pem`` for the others (``(service, key, "retired"|"next")``), and ``keys.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    listing = []
    named = [(service, key, "current", f"{service}.pem") for service, key in current.items()]
    named += [(service, key, status, f"{service}-{anchoring.key_id(key)}.pem") for service, key, status in others]
    for service, key, status, name in named:
        (directory / name).write_bytes(anchoring.public_key_pem(key))
        listing.append({"service": service, "key_id": anchoring.key_id(key), "file": name, "status": status})
    (directory / "keys.json").write_text(json.dumps({"keys": listing}, indent=2) + "\n", encoding="utf-8")
    return directory


@dataclass
class LogWriter:
    """Publishes events into an archive the way the three services would."""

    partitions: int = 3
    clock: dt.datetime = dt.datetime(2025, 1, 1, 1, 0, tzinfo=dt.UTC)
    sink: Callable[[Row], None] | None = None
    rows: list[Row] = field(default_factory=list)
    count: int = 0
    _heads: dict[tuple[str, str], env.ChainHead] = field(default_factory=dict)
    _next: dict[tuple[str, int], int] = field(default_factory=dict)
    _collectives: set[str] = field(default_factory=set)
    _closed: dict[str, set[str]] = field(default_factory=dict)
    _inputs: InputLog = field(default_factory=InputLog)
    _allocations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _first_type: dict[tuple[str, str], str] = field(default_factory=dict)
    _policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Sign a checkpoint of a topic after every this many of its records (0: never by itself).
    checkpoint_every: int = 0
    #: The services' signing keys (service -> key); checkpoints and receipts need them.
    signing_keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    keep_receipts: bool = False
    #: List no heads in a checkpoint's partition (null) when more streams than this moved (0: always list them).
    checkpoint_max_heads: int = 0
    receipts: list[dict[str, Any]] = field(default_factory=list)
    _checkpoints: dict[str, int] = field(default_factory=dict)  # topic -> number of its last checkpoint
    _digests: dict[tuple[str, int], str] = field(default_factory=dict)
    _moved: dict[tuple[str, int], dict[str, tuple[int, str]]] = field(default_factory=dict)
    _since: dict[str, int] = field(default_factory=dict)
    _rotations: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    _charters: dict[str, dict[str, Fraction]] = field(default_factory=dict)
    #: collective -> [(effective_on, household, holdings or changes, "set" | "add")]
    _register: dict[str, list[tuple[str, str, dict[str, Fraction], str]]] = field(default_factory=dict)
    _plans: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- the runtime's part ------------------------------------------------------------------------------

    def publish(self, event_type: str, subject: str, data: dict[str, Any], *, event_id: str | None = None,
                causation_id: str | None = None, actor: str = "system:synthetic",
                source: str | None = None) -> dict[str, Any]:
        """Seal and append one event; returns its envelope."""
        topic = topic_of(event_type)
        self.clock += dt.timedelta(seconds=1)
        instant = self.clock.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        head = self._heads.get((topic, subject), env.ChainHead())
        sealed = env.seal(env.new_envelope(event_type=event_type, version=latest_version(event_type),
                                           source=source or TOPICS[topic].owner, subject=subject, data=data,
                                           actor=actor, causation_id=causation_id, event_id=event_id,
                                           occurred_at=instant),
                          head)
        self._heads[(topic, subject)] = env.ChainHead(sealed["seq"], sealed["hash"])
        partition = partition_of(subject, self.partitions)
        offset = self._next.get((topic, partition), 0)
        self._next[(topic, partition)] = offset + 1
        row = {"topic": topic, "partition": partition, "offset": offset,
               "timestamp": int(self.clock.timestamp() * 1000), "key": subject, "event": sealed}
        if event_type in KIND_CODE:
            self._inputs.add(topic, partition, offset, sealed)
        self.count += 1
        if self.sink is not None:
            self.sink(row)
        else:
            self.rows.append(row)
        if topic in RECORD_TOPICS and self.signing_keys:
            self._anchor(topic, partition, offset, sealed)
        return sealed

    # -- the anchoring (DESIGN §4) ---------------------------------------------------------------------

    def _anchor(self, topic: str, partition: int, offset: int, sealed: Mapping[str, Any]) -> None:
        self._moved.setdefault((topic, partition), {})[sealed["subject"]] = (sealed["seq"], sealed["hash"])
        if self.keep_receipts:
            self.receipts.append(anchoring.receipt(topic=topic, partition=partition, offset=offset, envelope=sealed,
                                                   private=self.signing_keys[owner_of(topic)]))
        self._since[topic] = self._since.get(topic, 0) + 1
        if self.checkpoint_every and self._since[topic] >= self.checkpoint_every:
            self.checkpoint(topic)

    def rotate(self, service: str, new: Ed25519PrivateKey) -> None:
        """Announce ``new`` in ``service``'s next checkpoint (signed with its current key), then sign with it."""
        self._rotations[service] = new

    def checkpoint(self, *topics: str) -> None:
        """Sign a checkpoint of each of ``topics`` (default: every record topic that has records) now."""
        for topic in topics or [t for t in RECORD_TOPICS if any(self._next.get((t, p)) for p in
                                                                 range(self.partitions))]:
            writer = owner_of(topic)
            partitions = []
            for partition in range(self.partitions):
                heads = [(s, q, h) for s, (q, h) in self._moved.pop((topic, partition), {}).items()]
                digest = anchoring.heads_digest(self._digests.get((topic, partition), anchoring.GENESIS_DIGEST), heads)
                self._digests[(topic, partition)] = digest
                listed = None if 0 < self.checkpoint_max_heads < len(heads) else anchoring.head_rows(heads)
                partitions.append({"partition": partition, "end_offset": self._next.get((topic, partition), 0),
                                   "heads": listed, "heads_digest": digest})
            upcoming = self._rotations.pop(writer, None)
            number = self._checkpoints.get(topic, 0) + 1
            data = anchoring.checkpoint_data(topic=topic, number=number, writer=writer, partitions=partitions,
                                             private=self.signing_keys[writer],
                                             next_key=upcoming.public_key() if upcoming is not None else None)
            self._checkpoints[topic] = number
            self._since[topic] = 0
            self.publish("ChainCheckpoint", topic, data, source=writer, actor=f"system:{writer}")
            if upcoming is not None:
                self.signing_keys[writer] = upcoming

    def at(self, day: str) -> None:
        """Move the clock to 01:00 UTC of ``day`` (never backwards): events that follow occur then."""
        moment = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(1, 0), tzinfo=dt.UTC)
        self.clock = max(self.clock, moment)

    def positions(self, topics: Sequence[str]) -> dict[str, dict[str, int]]:
        """Next offset of every partition of ``topics`` (what a service had consumed: everything)."""
        return {topic: {str(p): self._next.get((topic, p), 0) for p in range(self.partitions)} for topic in topics}

    def lines(self) -> Iterator[str]:
        for row in self.rows:
            yield archive_line(row)

    def write_receipts(self, path: Path) -> Path:
        """The receipts kept (``keep_receipts``), as a village keeps them: JSON Lines."""
        Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.receipts),
                              encoding="utf-8")
        return Path(path)

    def write(self, path: Path) -> Path:
        with Path(path).open("w", encoding="utf-8") as handle:
            handle.writelines(self.lines())
        return Path(path)

    # -- people's accounts (the ledger's too; docs/security.md) -------------------------------------------

    def create_account(self, name: str, role: str, scope: Sequence[str] = (), display_name: str | None = None,
                       *, by: str = "admin:admin") -> None:
        """An AccountCreated (its sealed password hash stands in: no key here opens it)."""
        sealed = "sealed-v1:" + hashlib.sha256(name.encode()).hexdigest()[:16] + ":" + "A" * 160
        self.publish("AccountCreated", name, {"name": name, "display_name": display_name or name, "role": role,
                                              "scope": sorted(scope), "password": sealed,
                                              "must_change_password": True}, actor=by)

    def sign_in(self, name: str, address: str = "10.0.0.8", hours: int = 12) -> str:
        """A SessionStarted; returns the session (the SHA-256 of a secret nobody has)."""
        session = hashlib.sha256(f"{name}:{self.count}".encode()).hexdigest()
        expires = (self.clock + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.publish("SessionStarted", name, {"name": name, "session": session, "address": address,
                                              "expires_at": expires, "idle_timeout_s": 1800}, actor=f"account:{name}")
        return session

    # -- the ledger's part ----------------------------------------------------------------------------

    def register_collective(self, collective_id: str, name: str, town: str = "金清镇",
                            alliances: Sequence[str] = ()) -> None:
        self.publish("CollectiveRegistered", collective_id, {"collective_id": collective_id, "name": name,
                                                             "town": town, "uscc": None,
                                                             "alliances": list(alliances)})
        self._collectives.add(collective_id)

    # -- the members' part (DESIGN §11) -----------------------------------------------------------------------

    def register_members(self, collective_id: str, households: Sequence[tuple[str, str, Mapping[str, str]]], *,
                         fixed_on: str = "2025-06-30", adopted_on: str = "2025-03-01",
                         by: str = "accountant:synthetic") -> None:
        """A charter (人口股 and 农龄股, weight 1 each; shares fixed on ``fixed_on``), then each household
        (id, head's name, holdings) registered with its head as a member, its holdings from ``adopted_on`` and
        a certificate: what the members service publishes for a register."""
        self.publish("CharterSet", collective_id, {
            "collective_id": collective_id, "reserve_rate_min": "0.10", "shares_fixed_on": fixed_on,
            "quorum": "2/3", "majority": "1/2", "adopted_on": adopted_on,
            "share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"},
                            {"kind": "farm-age", "name": "农龄股", "weight": "1"}]}, actor=by)
        prefix = "".join(part[:2] for part in collective_id.split("-")).upper()[:8]
        for n, (household_id, head_name, holdings) in enumerate(households, start=1):
            self.publish("HouseholdRegistered", collective_id, {
                "collective_id": collective_id, "household_id": household_id, "head_name": head_name,
                "address": "", "registered_on": adopted_on}, actor=by)
            self.publish("MemberRegistered", collective_id, {
                "collective_id": collective_id, "member_id": f"{household_id}-1", "household_id": household_id,
                "name": head_name, "relation": "户主", "born_on": None, "joined_on": adopted_on}, actor=by)
            self.publish("HoldingsSet", collective_id, {
                "collective_id": collective_id, "household_id": household_id, "holdings": dict(holdings),
                "effective_on": adopted_on}, actor=by)
            self.publish("CertificateIssued", collective_id, {
                "collective_id": collective_id, "certificate_no": f"{prefix}-{adopted_on[:4]}-{n:04d}",
                "household_id": household_id, "holdings": dict(holdings), "issued_on": adopted_on,
                "replaces": None}, actor=by)

    def register_investor(self, investor_id: str, name: str, investor_type: str = "government") -> None:
        self.publish("InvestorRegistered", investor_id, {"investor_id": investor_id, "name": name,
                                                         "investor_type": investor_type})

    def register_project(self, project_id: str, name: str, kind: str = "industrial_park") -> None:
        self.publish("ProjectRegistered", project_id, {"project_id": project_id, "name": name, "kind": kind,
                                                       "town": "金清镇", "operator": "滨海园区运营公司"})

    def post_entry(self, collective_id: str, day: str, lines: Sequence[tuple[str, str, str]], memo: str,
                   *, origin: str = "manual", ref: str | None = None, entry_id: str | None = None,
                   event_id: str | None = None, causation_id: str | None = None) -> dict[str, Any]:
        """An EntryPosted; ``lines`` are (account, "debit"|"credit", yuan)."""
        data = {"entry_id": entry_id or str(uuid.uuid4()), "collective_id": collective_id, "date": day,
                "memo": memo, "lines": [{"account": account, side: amount} for account, side, amount in lines],
                "origin": {"kind": origin, "ref": ref}}
        return self.publish("EntryPosted", collective_id, data, event_id=event_id, causation_id=causation_id,
                            actor="system:ledger" if origin in ("investment", "withdrawal", "dividend", "payment",
                                                                "year_end_close", "member_plan", "member_dividend")
                            else f"accountant:{collective_id}")

    def reverse_entry(self, collective_id: str, entry_id: str, day: str, reason: str) -> dict[str, Any]:
        return self.publish("EntryReversed", collective_id, {"entry_id": str(uuid.uuid4()), "reverses": entry_id,
                                                             "collective_id": collective_id, "date": day,
                                                             "reason": reason})

    def close_period(self, collective_id: str, period: str) -> None:
        self.publish("PeriodClosed", collective_id, {"collective_id": collective_id, "period": period})
        self._closed.setdefault(collective_id, set()).add(period)

    def _owe(self, cause: Mapping[str, Any], qualifier: str, collective_id: str, day: dt.date, event_type: str,
             data: Mapping[str, Any], origin: str, ref: str, memo: str) -> None:
        """The derived EntryPosted the ledger posts for ``cause`` (same ids, lines and date rule)."""
        if collective_id not in self._collectives:
            return
        lines = automatic_entry_lines(event_type, data)
        if not lines:
            return
        wire = [(line.account, "debit" if line.debit else "credit", format_yuan(line.debit or line.credit))
                for line in lines]
        self.post_entry(collective_id, posting_date(day, self._closed.get(collective_id, set())).isoformat(), wire,
                        memo, origin=origin, ref=ref, entry_id=derived_entry_id(cause["event_id"], qualifier),
                        event_id=env.derived_event_id(cause["event_id"], qualifier), causation_id=cause["event_id"])

    def invest_land(self, project_id: str, investor_id: str, investor_type: str, area_mu: str, price_per_mu: str,
                    effective_on: str, investment_id: str | None = None) -> dict[str, Any]:
        valuation = format_yuan(valuation_fen(parse_mu(area_mu), parse_yuan(price_per_mu)))
        data = {"investment_id": investment_id or f"land-{investor_id}-{self.count}", "project_id": project_id,
                "investor_id": investor_id, "investor_type": investor_type, "area_mu": area_mu,
                "price_per_mu": price_per_mu, "valuation": valuation, "effective_on": effective_on, "parcel": None}
        return self._invested("LandShareInvested", data, f"{area_mu} 亩土地入股 {project_id}")

    def invest_cash(self, project_id: str, investor_id: str, investor_type: str, amount: str, effective_on: str,
                    investment_id: str | None = None) -> dict[str, Any]:
        data = {"investment_id": investment_id or f"cash-{investor_id}-{self.count}", "project_id": project_id,
                "investor_id": investor_id, "investor_type": investor_type, "amount": amount,
                "effective_on": effective_on}
        return self._invested("CashInvested", data, f"现金投资 {project_id}")

    def _invested(self, event_type: str, data: dict[str, Any], memo: str) -> dict[str, Any]:
        cause = self.publish(event_type, data["project_id"], data)
        self._first_type.setdefault((data["project_id"], data["investor_id"]), data["investor_type"])
        if data["investor_type"] == "collective":
            self._owe(cause, ENTRY_QUALIFIER, data["investor_id"], dt.date.fromisoformat(data["effective_on"]),
                      event_type, data, "investment", data["investment_id"], memo)
        return cause

    def withdraw(self, project_id: str, investor_id: str, amount: str, effective_on: str,
                 reason: str = "部分退出") -> dict[str, Any]:
        data = {"withdrawal_id": f"wd-{investor_id}-{self.count}", "project_id": project_id,
                "investor_id": investor_id, "amount": amount, "effective_on": effective_on, "reason": reason}
        cause = self.publish("InvestmentWithdrawn", project_id, data)
        if self._first_type.get((project_id, investor_id)) == "collective":
            self._owe(cause, ENTRY_QUALIFIER, investor_id, dt.date.fromisoformat(effective_on),
                      "InvestmentWithdrawn", data, "withdrawal", data["withdrawal_id"], f"撤回投资 {project_id}")
        return cause

    # -- the rentals' part ---------------------------------------------------------------------------

    def rent(self, project_id: str, amount: str, received_on: str, lease_id: str = "lease-1") -> dict[str, Any]:
        return self.publish("RentReceived", project_id, {
            "payment_id": f"rent-{self.count}", "lease_id": lease_id, "project_id": project_id, "invoice_id": None,
            "amount": amount, "received_on": received_on})

    def expense(self, project_id: str, amount: str, incurred_on: str, category: str = "maintenance") -> None:
        self.publish("ExpenseRecorded", project_id, {
            "expense_id": f"exp-{self.count}", "project_id": project_id, "category": category, "amount": amount,
            "incurred_on": incurred_on, "memo": "维修"})

    # -- the dividends' part -------------------------------------------------------------------------

    def set_policy(self, project_id: str, *, management_fee_rate: str = "0.05", tax_rate: str = "0.05",
                   payout_ratio: str = "0.90", guaranteed_rate: str = "0.10", guarantee_until: str | None = None,
                   guarantor_id: str | None = None) -> None:
        data = {"project_id": project_id, "management_fee_rate": management_fee_rate, "tax_rate": tax_rate,
                "payout_ratio": payout_ratio, "guaranteed_rate": guaranteed_rate,
                "guarantee_until": guarantee_until, "guarantor_id": guarantor_id}
        self.publish("PolicySet", project_id, data)
        self._policies[project_id] = data

    def declare(self, project_id: str, period_start: str, period_end: str,
                distribution_id: str | None = None) -> str:
        """Declare a distribution over everything published so far, as the dividends service does
        (late items of the project's non-cancelled distributions included, DESIGN §6 step 1)."""
        policy = self._policies[project_id]
        positions = self.positions((LEDGER_INVESTMENTS, RENTALS))
        start, end = dt.date.fromisoformat(period_start), dt.date.fromisoformat(period_end)
        earlier = [EarlierDistribution.from_declared(d["declared"], taken_before=d["taken_before"])
                   for d in self._distributions.values() if d["project_id"] == project_id and not d["cancelled"]]
        result = compute_from_log(self._inputs.records_for(project_id, start, end, earlier), project_id=project_id,
                                  period_start=start, period_end=end, policy=Policy.from_wire(policy),
                                  input_positions=positions, earlier=earlier)
        distribution_id = distribution_id or f"{project_id}-{period_start}-{period_end}"
        declared = declared_event_data(distribution_id=distribution_id, project_id=project_id, policy=policy,
                                       result=result, input_positions=positions)
        self.publish("DistributionDeclared", project_id, declared)
        allocations = [allocation_event_data(distribution_id=distribution_id, project_id=project_id, allocation=a)
                       for a in result.allocations]
        for allocation in allocations:
            self.publish("DividendAllocated", project_id, allocation)
        self._allocations[distribution_id] = allocations
        self._distributions[distribution_id] = {
            "project_id": project_id, "declared": declared, "cancelled": False,
            "taken_before": frozenset().union(*(e.late_event_ids for e in earlier))}
        return distribution_id

    def cancel(self, distribution_id: str, reason: str = "重新核算") -> None:
        """Cancel a declared distribution (before its approval, as the service allows)."""
        project_id = self._distributions[distribution_id]["project_id"]
        self.publish("DistributionCancelled", project_id, {
            "distribution_id": distribution_id, "project_id": project_id, "reason": reason})
        self._distributions[distribution_id]["cancelled"] = True

    def approve(self, distribution_id: str, approved_by: str = "board:jinqing") -> None:
        project_id = self._distributions[distribution_id]["project_id"]
        cause = self.publish("DistributionApproved", project_id, {
            "distribution_id": distribution_id, "project_id": project_id, "approved_by": approved_by})
        day = local_date(cause["occurred_at"])
        for allocation in sorted(self._allocations[distribution_id], key=lambda a: a["investor_id"]):
            if allocation["investor_type"] != "collective":
                continue
            self._owe(cause, allocation["investor_id"], allocation["investor_id"], day, "DistributionApproved",
                      allocation, "dividend", distribution_id, f"投资收益 {project_id} {distribution_id}")

    def pay(self, distribution_id: str, paid_on: str, investor_id: str | None = None) -> None:
        """Pay every allocation with a payout (or one investor's) in full."""
        project_id = self._distributions[distribution_id]["project_id"]
        for allocation in self._allocations[distribution_id]:
            if investor_id is not None and allocation["investor_id"] != investor_id:
                continue
            if parse_yuan(allocation["payout"]) == 0:
                continue
            data = {"payment_id": f"pay-{allocation['investor_id']}-{self.count}", "distribution_id": distribution_id,
                    "project_id": project_id, "investor_id": allocation["investor_id"],
                    "amount": allocation["payout"], "paid_on": paid_on, "bank_reference": f"BANK{self.count:08d}"}
            cause = self.publish("DividendPaid", project_id, data)
            self._owe(cause, ENTRY_QUALIFIER, allocation["investor_id"], dt.date.fromisoformat(paid_on),
                      "DividendPaid", data, "payment", data["payment_id"], f"收到分红 {project_id} {distribution_id}")


    # -- a village's members and plans (DESIGN §11) -------------------------------------------------------

    def set_charter(self, collective_id: str, kinds: Mapping[str, str] | None = None, *,
                    reserve_rate_min: str = "0.10", shares_fixed_on: str | None = "2020-12-31") -> None:
        kinds = kinds or {"population": "1", "farm-age": "1"}
        names = {"population": "人口股", "farm-age": "农龄股"}
        data = {"collective_id": collective_id, "reserve_rate_min": reserve_rate_min,
                "share_kinds": [{"kind": k, "name": names.get(k, k), "weight": w} for k, w in kinds.items()],
                "shares_fixed_on": shares_fixed_on, "quorum": "2/3", "majority": "1/2", "adopted_on": "2020-11-20"}
        self.publish("CharterSet", collective_id, data, actor=f"accountant:{collective_id}")
        self._charters[collective_id] = {k: Fraction(w) for k, w in kinds.items()}

    def register_household(self, collective_id: str, household_id: str, head_name: str, holdings: Mapping[str, str],
                           effective_on: str = "2020-11-30") -> None:
        self.publish("HouseholdRegistered", collective_id, {
            "collective_id": collective_id, "household_id": household_id, "head_name": head_name, "address": "",
            "registered_on": "2020-11-30"}, actor=f"accountant:{collective_id}")
        self.publish("HoldingsSet", collective_id, {"collective_id": collective_id, "household_id": household_id,
                                                    "holdings": dict(holdings), "effective_on": effective_on},
                     actor=f"accountant:{collective_id}")
        self._register.setdefault(collective_id, []).append(
            (effective_on, household_id, {k: Fraction(v) for k, v in holdings.items()}, "set"))

    def transfer_shares(self, collective_id: str, from_household: str, to_household: str, kind: str, shares: str,
                        effective_on: str, reason: str = "inheritance") -> None:
        self.publish("SharesTransferred", collective_id, {
            "collective_id": collective_id, "transfer_id": f"t-{self.count}", "from_household": from_household,
            "to_household": to_household, "kind": kind, "shares": shares, "effective_on": effective_on,
            "reason": reason, "note": ""}, actor=f"accountant:{collective_id}")
        moved = Fraction(shares)
        register = self._register.setdefault(collective_id, [])
        register.append((effective_on, from_household, {kind: -moved}, "add"))
        register.append((effective_on, to_household, {kind: moved}, "add"))

    def close_year(self, collective_id: str, year: int, income: str, expenses: str = "0.00") -> str:
        """The year-end close of ``year`` as the ledger posts it: 501 and 513 into 321, 321 into 322/undistributed
        (here in one entry, whose id it returns)."""
        net = format_yuan(parse_yuan(income) - parse_yuan(expenses))
        lines = [("501", "debit", income), ("321", "credit", income)]
        if parse_yuan(expenses):
            lines += [("321", "debit", expenses), ("513", "credit", expenses)]
        lines += [("321", "debit", net), ("322/undistributed", "credit", net)]
        entry = self.post_entry(collective_id, f"{year}-12-31", lines, f"{year}年度结转本年收益",
                                origin="year_end_close", ref=str(year))
        entry_id: str = entry["data"]["entry_id"]
        return entry_id

    def holdings_on(self, collective_id: str, day: str) -> dict[str, dict[str, Fraction]]:
        """Each household's holdings on ``day`` (the writer's own bookkeeping of what it published)."""
        out: dict[str, dict[str, Fraction]] = {}
        for effective_on, hid, change, how in sorted(self._register.get(collective_id, []), key=lambda r: r[0]):
            if effective_on > day:
                continue
            if how == "set":
                out[hid] = dict(change)
            else:
                held = out.setdefault(hid, {})
                for kind, delta in change.items():
                    held[kind] = held.get(kind, Fraction(0)) + delta
        return out

    def propose_plan(self, collective_id: str, plan_id: str, year: int, *, distributable: str, net_income: str,
                     reserve_rate: str, welfare: str, members_total: str, record_date: str) -> dict[str, str]:
        """A plan with its allocations, as the members service computes it; returns household -> amount."""
        from services.members import split

        kinds = self._charters[collective_id]
        holdings = self.holdings_on(collective_id, record_date)
        weights = {hid: split.household_weight(held, kinds) for hid, held in holdings.items()}
        weights = {hid: w for hid, w in weights.items() if w > 0}
        a = parse_yuan(distributable, allow_negative=True)
        total = parse_yuan(members_total)
        reserve = split.appropriations(a, Fraction(reserve_rate), parse_yuan(welfare), total).reserve
        amounts = split.split_members_total(total, weights)
        data = {"collective_id": collective_id, "plan_id": plan_id, "year": year, "net_income": net_income,
                "brought_forward": format_yuan(a - parse_yuan(net_income, allow_negative=True)),
                "distributable": distributable, "reserve_rate": reserve_rate, "reserve": format_yuan(reserve),
                "welfare": welfare, "members_total": members_total,
                "undistributed": format_yuan(a - reserve - parse_yuan(welfare) - total),
                "record_date": record_date, "total_weight": _decimal(sum(weights.values(), Fraction(0))),
                "households": len(weights), "proposed_by": f"accountant:{collective_id}"}
        self.publish("PlanProposed", collective_id, data, actor=f"accountant:{collective_id}")
        for hid in sorted(weights):
            self.publish("HouseholdAllocated", collective_id, {
                "collective_id": collective_id, "plan_id": plan_id, "household_id": hid,
                "holdings": {k: _decimal(v) for k, v in holdings[hid].items()}, "weight": _decimal(weights[hid]),
                "amount": format_yuan(amounts[hid])}, actor=f"accountant:{collective_id}")
        self._plans[plan_id] = data
        return {hid: format_yuan(amount) for hid, amount in amounts.items()}

    def approve_plan(self, plan_id: str, meeting_on: str, *, entitled: int = 45, present: int = 38,
                     votes_for: int = 35) -> None:
        plan = self._plans[plan_id]
        cid = plan["collective_id"]
        vote = {"body": "representatives", "meeting_on": meeting_on, "entitled": entitled, "present": present,
                "for": votes_for, "against": 0, "abstain": present - votes_for}
        cause = self.publish("PlanApproved", cid, {
            "collective_id": cid, "plan_id": plan_id, "year": plan["year"], "vote": vote, "reserve": plan["reserve"],
            "welfare": plan["welfare"], "members_total": plan["members_total"], "approved_by": f"board:{cid}"},
            actor=f"accountant:{cid}")
        reserve, welfare, total = (parse_yuan(plan[k]) for k in ("reserve", "welfare", "members_total"))
        lines = [("322/undistributed", "debit", format_yuan(reserve + welfare + total)),
                 ("311", "credit", plan["reserve"]), ("211/welfare", "credit", plan["welfare"]),
                 ("211/member-dividends", "credit", plan["members_total"])]
        if not reserve + welfare + total:
            return
        self.post_entry(cid, meeting_on, [line for line in lines if parse_yuan(line[2])], f"{plan['year']}年度收益分配",
                        origin="member_plan", ref=plan_id, **self._derived(cause))

    def pay_household(self, plan_id: str, household_id: str, amount: str, paid_on: str) -> None:
        cid = self._plans[plan_id]["collective_id"]
        payment_id = f"mp-{household_id}-{self.count}"
        cause = self.publish("HouseholdDividendPaid", cid, {
            "collective_id": cid, "plan_id": plan_id, "payment_id": payment_id, "household_id": household_id,
            "amount": amount, "paid_on": paid_on, "bank_reference": f"BANK{self.count:08d}"},
            actor=f"accountant:{cid}")
        self.post_entry(cid, paid_on, [("211/member-dividends", "debit", amount), ("102", "credit", amount)],
                        f"发放股份分红 {household_id}", origin="member_dividend", ref=payment_id,
                        **self._derived(cause))

    @staticmethod
    def _derived(cause: Mapping[str, Any]) -> dict[str, str]:
        """The ids of the one entry the ledger derives from ``cause`` (qualifier "entry")."""
        return {"entry_id": derived_entry_id(cause["event_id"], ENTRY_QUALIFIER),
                "event_id": env.derived_event_id(cause["event_id"], ENTRY_QUALIFIER),
                "causation_id": cause["event_id"]}


def _decimal(value: Fraction) -> str:
    """An exact number of shares as a decimal string."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    digits = ""
    while rest and len(digits) < 8:
        digit, rest = divmod(rest * 10, value.denominator)
        digits += str(digit)
    return ("-" if value < 0 else "") + str(whole) + (f".{digits}" if digits else "")

VILLAGES = (("jinqing-lianmeng", "联盟村"), ("jinqing-xinqiao", "新桥村"), ("jinqing-huangjiao", "黄礁村"),
            ("jinqing-dongwan", "东湾村"), ("jinqing-xiachen", "下陈村"), ("jinqing-gangkou", "港口村"))


def small_scenario(writer: LogWriter | None = None, *, villages: int = 3, months: int = 12,
                   rents_per_month: int = 4, seed: int = 7) -> LogWriter:
    """A park of ``villages`` villages and a state co-investor over a year: investments, a development fund,
    monthly rent and expenses, two half-year distributions declared, approved and paid (the second
    unpaid for the last village), one manual entry reversed; and the first village's member register (a
    charter, three households with their shares and certificates)."""
    rng = random.Random(seed)
    log = writer or LogWriter()
    project = "binhai-park"
    log.register_investor("luqiao-state-co", "路桥国资公司", "government")
    chosen = VILLAGES[:villages]
    for collective_id, name in chosen:
        log.register_collective(collective_id, name, alliances=["滨海抱团"])
    log.register_project(project, "路桥滨海产业园")
    log.create_account(f"{chosen[0][0]}-kuaiji", "accountant", [chosen[0][0]], f"{chosen[0][1]} 会计")
    log.sign_in(f"{chosen[0][0]}-kuaiji")
    for i, (collective_id, _) in enumerate(chosen):
        log.invest_land(project, collective_id, "collective", f"{10 + i}.{2 + i:04d}", "50000.00", "2025-01-01")
        log.post_entry(collective_id, "2025-01-10", [("102", "debit", "200000.00"), ("503", "credit", "200000.00")],
                       "区财政发展资金", origin="development_fund")
    log.invest_cash(project, "luqiao-state-co", "government", "3000000.00", "2025-01-01")
    log.set_policy(project, guarantee_until="2028-12-31", guarantor_id="luqiao-state-co")
    first = chosen[0][0]
    wrong = log.post_entry(first, "2025-02-01", [("513", "debit", "1200.00"), ("102", "credit", "1200.00")], "办公用品")
    log.reverse_entry(first, wrong["data"]["entry_id"], "2025-02-03", "重复记账")
    for month in range(1, months + 1):
        log.at(f"2025-{month:02d}-01")
        for _ in range(rents_per_month):
            day = rng.randint(1, 28)
            log.rent(project, f"{rng.randint(20_000, 90_000)}.{rng.randint(0, 99):02d}",
                     f"2025-{month:02d}-{day:02d}", lease_id=f"lease-{rng.randint(1, 5)}")
        log.expense(project, f"{rng.randint(1_000, 9_000)}.00", f"2025-{month:02d}-15")
        if month == 6:
            log.at("2025-07-03")
            first_half = log.declare(project, "2025-01-01", "2025-06-30")
            log.at("2025-07-06")
            log.approve(first_half)
            log.pay(first_half, "2025-07-10")
        if month == 12:
            log.at("2026-01-04")
            second_half = log.declare(project, "2025-07-01", "2025-12-31")
            log.at("2026-01-06")
            log.approve(second_half)
            for collective_id, _ in chosen[:-1]:
                log.pay(second_half, "2026-01-10", investor_id=collective_id)
            log.pay(second_half, "2026-01-10", investor_id="luqiao-state-co")
    log.register_members(first, [("hu-001", "张小明", {"population": "3", "farm-age": "12.5"}),
                                 ("hu-002", "王五", {"population": "2", "farm-age": "8"}),
                                 ("hu-003", "欧阳小明", {"farm-age": "20"})])
    return log


def large_scenario(events: int, writer: LogWriter | None = None, *, projects: int = 4, villages: int = 6,
                   rents_per_month: int = 200, seed: int = 11) -> LogWriter:
    """At least ``events`` events: ``projects`` parks shared by ``villages`` villages each, monthly rent and
    expenses, a half-yearly distribution per park, approved and paid, until the log is long enough.

    For benchmarks: write it with ``sink`` into a file (``LogWriter(sink=...)``) rather than keep the rows.
    """
    rng = random.Random(seed)
    log = writer or LogWriter()
    log.register_investor("luqiao-state-co", "路桥国资公司", "government")
    collectives = [(f"town-v{n:03d}", f"村{n:03d}") for n in range(villages)]
    for collective_id, name in collectives:
        log.register_collective(collective_id, name)
    parks = [f"park-{p:02d}" for p in range(projects)]
    for park_id in parks:
        log.register_project(park_id, f"产业园 {park_id}")
        for i, (collective_id, _) in enumerate(collectives):
            log.invest_land(park_id, collective_id, "collective", f"{5 + i}.5000", "60000.00", "2020-01-01")
        log.invest_cash(park_id, "luqiao-state-co", "government", "5000000.00", "2020-01-01")
        log.set_policy(park_id, guarantee_until="2030-12-31", guarantor_id="luqiao-state-co")
    year, month = 2020, 1
    while log.count < events:
        log.at(f"{year}-{month:02d}-01")
        for park_id in parks:
            for _ in range(rents_per_month // projects):
                log.rent(park_id, f"{rng.randint(2_000, 9_000)}.{rng.randint(0, 99):02d}",
                         f"{year}-{month:02d}-{rng.randint(1, 28):02d}", lease_id=f"lease-{rng.randint(1, 40)}")
            log.expense(park_id, f"{rng.randint(1_000, 9_000)}.00", f"{year}-{month:02d}-15")
        for collective_id, _ in collectives:
            log.post_entry(collective_id, f"{year}-{month:02d}-20",
                           [("513", "debit", "800.00"), ("102", "credit", "800.00")], "办公费用")
        if month in (6, 12):
            start = f"{year}-{month - 5:02d}-01"
            end = f"{year}-{month:02d}-{30 if month == 6 else 31}"
            log.at(f"{year + (month == 12)}-{1 if month == 12 else 7:02d}-05")
            for park_id in parks:
                distribution = log.declare(park_id, start, end)
                log.approve(distribution)
                log.pay(distribution, f"{year + (month == 12)}-{1 if month == 12 else 7:02d}-10")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return log
