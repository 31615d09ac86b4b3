"""Every village's books, rebuilt from the entries topic alone (never from a service database).

EntryPosted and EntryReversed events are folded the way the ledger folds them (an entry id
is booked once; a reversal mirrors the original's lines), checking on the way what the
ledger checks before it publishes: balanced entries, accounts on the chart, registered
collectives, closed periods, reversals. The trial balances come from
``services.ledger.reports`` and account names from ``services.ledger.chart``: the same
pure code the ledger service uses, fed from the log.

A district's log holds hundreds of thousands of entries, and a reversal may name any of
them, so every entry is kept, packed: its 16-byte id as the key, and one ``bytes`` value
with the collective, date, place in the log, origin and lines (about 175 bytes an entry
in all). The few optional parts (origin ref, what a reversal reverses, memo for exports)
sit in side tables. :class:`BookEntry` objects are unpacked on demand.
"""

from __future__ import annotations

import datetime as dt
import struct
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from services.audit.checks.findings import Where
from services.contracts.events import ORIGIN_KINDS
from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import LEDGER_ENTRIES
from services.ledger.chart import UnknownAccount, lookup
from services.ledger.domain import LedgerError, check_reversal, period_of
from services.ledger.reports import CollectiveInfo, PostedLine, TrialBalance, trial_balance
from services.ledger.vouchers import number_vouchers

Report = Callable[[str, Where | None, str | None, str], None]
#: A journal line as kept here: (account, debit fen, credit fen).
BookLine = tuple[str, int, int]

_intern = sys.intern
#: collective index, date ordinal, partition, offset, origin kind index.
_HEAD = struct.Struct("<IiIqB")
#: account index, signed amount (debit > 0, credit < 0).
_LINE = struct.Struct("<Iq")
_ORIGINS = (*ORIGIN_KINDS, "reversal")
_ORIGIN_INDEX = {kind: i for i, kind in enumerate(_ORIGINS)}


#: Account codes already found on the chart (``lookup`` once per code, not once per line).
_ON_CHART: set[str] = set()


def _key(entry_id: str) -> bytes:
    """The 16 bytes of an entry id (the schema makes every entry id a lowercase uuid)."""
    return bytes.fromhex(entry_id.replace("-", ""))


def _entry_id(key: bytes) -> str:
    return str(uuid.UUID(bytes=key))


@dataclass(slots=True)
class BookEntry:
    """One entry of a village's books, as the log posted it (a reversal has mirrored lines)."""

    entry_id: str
    collective_id: str
    date: str  # ISO date
    lines: tuple[BookLine, ...]
    origin_kind: str  # manual | investment | withdrawal | dividend | payment | development_fund | reversal
    origin_ref: str | None
    memo: str
    where: Where
    reverses: str | None = None
    reversed_by: str | None = None
    attachments: int | None = None  # 附件张数 of a manual entry, when it said


@dataclass
class Collective:
    """A registered village collective."""

    collective_id: str
    name: str
    town: str
    alliances: tuple[str, ...] = ()
    uscc: str | None = None

    def info(self) -> CollectiveInfo:
        return CollectiveInfo(self.collective_id, self.name, self.town, self.alliances)


@dataclass
class Books:
    """The books of every collective, folded from ``baotuan.ledger.entries.v1``.

    ``as_of`` limits the trial balances to lines dated on or before it (all lines when None);
    ``keep_memos`` keeps each entry's memo (for exports).
    """

    report: Report
    as_of: dt.date | None = None
    keep_memos: bool = False
    collectives: dict[str, Collective] = field(default_factory=dict)
    investors: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, investor_type)
    closed: dict[str, set[str]] = field(default_factory=dict)
    last_date: str | None = None
    _packed: dict[bytes, bytes] = field(default_factory=dict)
    _refs: dict[bytes, str] = field(default_factory=dict)
    _reverses: dict[bytes, bytes] = field(default_factory=dict)
    _reversed_by: dict[bytes, bytes] = field(default_factory=dict)
    _memos: dict[bytes, str] = field(default_factory=dict)
    _attachments: dict[bytes, int] = field(default_factory=dict)
    _names: list[str] = field(default_factory=list)  # collectives and accounts, by index
    _index: dict[str, int] = field(default_factory=dict)
    _keys_of: dict[int, list[bytes]] = field(default_factory=dict)  # collective index -> its entries, in log order
    _totals: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    _as_of_text: str = "9999-12-31"

    def __post_init__(self) -> None:
        if self.as_of is not None:
            self._as_of_text = self.as_of.isoformat()

    # -- folding ---------------------------------------------------------------------------------------

    def apply(self, where: Where, envelope: dict[str, Any]) -> None:
        kind = envelope["type"]
        data = envelope["data"]
        if kind == "EntryPosted":
            self._posted(where, data)
        elif kind == "EntryReversed":
            self._reversed(where, data)
        elif kind == "PeriodClosed":
            self._closed(where, data)
        elif kind == "CollectiveRegistered":
            self.collectives[data["collective_id"]] = Collective(
                data["collective_id"], data["name"], data["town"], tuple(data.get("alliances") or ()),
                data.get("uscc"))
        elif kind == "InvestorRegistered":
            self.investors[data["investor_id"]] = (data["name"], data["investor_type"])

    def _common(self, where: Where, data: dict[str, Any], what: str) -> bytes | None:
        """Checks every entry and reversal shares; the entry's key, or None when it must not be booked."""
        collective_id = data["collective_id"]
        entry_id = data["entry_id"]
        key = _key(entry_id)
        if key in self._packed:
            earlier = self._where(self._packed[key])
            self.report("books", where, collective_id,
                        f"{what} {entry_id} was already booked from {_at(earlier)}; this copy is ignored")
            return None
        if collective_id not in self.collectives:
            self.report("books", where, collective_id,
                        f"{what} {entry_id} is in the books of {collective_id!r}, which is not registered")
        return key

    def _posted(self, where: Where, data: dict[str, Any]) -> None:
        key = self._common(where, data, "entry")
        if key is None:
            return
        collective_id = data["collective_id"]
        entry_id = data["entry_id"]
        lines: list[BookLine] = []
        for index, raw in enumerate(data["lines"]):
            debit = parse_yuan(raw["debit"]) if raw.get("debit") is not None else 0
            credit = parse_yuan(raw["credit"]) if raw.get("credit") is not None else 0
            account = raw["account"]
            lines.append((account, debit, credit))
            if account in _ON_CHART:
                continue
            try:
                lookup(account)
            except UnknownAccount as exc:
                self.report("accounts", where, collective_id, f"entry {entry_id} line {index}: {exc.message}")
            else:
                _ON_CHART.add(account)
        total_debit = sum(line[1] for line in lines)
        total_credit = sum(line[2] for line in lines)
        if total_debit != total_credit:
            self.report("balanced", where, collective_id,
                        f"entry {entry_id} is not balanced: debits {format_yuan(total_debit)} ≠ "
                        f"credits {format_yuan(total_credit)}")
        day = data["date"]
        self._check_open(where, collective_id, entry_id, day)
        origin = data.get("origin") or {}
        self._book(key, collective_id, day, lines, origin.get("kind", "manual"), origin.get("ref"),
                   data.get("memo") or "", where)
        if data.get("attachments") is not None:
            self._attachments[key] = data["attachments"]

    def _reversed(self, where: Where, data: dict[str, Any]) -> None:
        key = self._common(where, data, "reversal")
        if key is None:
            return
        collective_id = data["collective_id"]
        entry_id = data["entry_id"]
        original = self.entry(data["reverses"])
        if original is None or original.collective_id != collective_id:
            self.report("books", where, collective_id,
                        f"reversal {entry_id} reverses {data['reverses']}, which is not an entry of "
                        f"{collective_id!r} earlier in the log; nothing is booked")
            return
        try:
            check_reversal(original_date=dt.date.fromisoformat(original.date), reversed_by=original.reversed_by,
                           is_reversal=original.reverses is not None, date=dt.date.fromisoformat(data["date"]),
                           closed_periods=self.closed.get(collective_id, set()))
        except LedgerError as exc:
            self.report("books", where, collective_id, f"reversal {entry_id} of {original.entry_id}: {exc.message}")
        original_key = _key(original.entry_id)
        self._reversed_by.setdefault(original_key, key)
        self._reverses[key] = original_key
        lines = [(account, credit, debit) for account, debit, credit in original.lines]
        self._book(key, collective_id, data["date"], lines, "reversal", original.entry_id, data["reason"], where)

    def _closed(self, where: Where, data: dict[str, Any]) -> None:
        closed = self.closed.setdefault(_intern(data["collective_id"]), set())
        period = _intern(data["period"])
        if period in closed:
            self.report("books", where, data["collective_id"], f"period {period} was closed already")
        closed.add(period)

    def _check_open(self, where: Where, collective_id: str, entry_id: str, day: str) -> None:
        closed = self.closed.get(collective_id)
        if closed and period_of(dt.date.fromisoformat(day)) in closed:
            self.report("books", where, collective_id,
                        f"entry {entry_id} is dated {day}, inside closed period {day[:7]}")

    def _name_index(self, name: str) -> int:
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self._names)
            self._names.append(_intern(name))
        return index

    def _book(self, key: bytes, collective_id: str, day: str, lines: list[BookLine], origin_kind: str,
              origin_ref: str | None, memo: str, where: Where) -> None:
        origin = _ORIGIN_INDEX.get(origin_kind, _ORIGIN_INDEX["manual"])
        collective = self._name_index(collective_id)
        packed = _HEAD.pack(collective, dt.date.fromisoformat(day).toordinal(), where.partition, where.offset, origin)
        packed += b"".join(_LINE.pack(self._name_index(account), debit - credit) for account, debit, credit in lines)
        self._packed[key] = packed
        self._keys_of.setdefault(collective, []).append(key)
        if origin_ref is not None:
            self._refs[key] = origin_ref
        if self.keep_memos and memo:
            self._memos[key] = memo
        if self.last_date is None or day > self.last_date:
            self.last_date = day
        if day > self._as_of_text:
            return
        totals = self._totals.get(collective_id)
        if totals is None:
            totals = self._totals[_intern(collective_id)] = {}
        for account, debit, credit in lines:
            pair = totals.get(account)
            if pair is None:
                try:
                    lookup(account)
                except UnknownAccount:
                    continue  # reported; a trial balance has no row for it
                totals[_intern(account)] = [debit, credit]
            else:
                pair[0] += debit
                pair[1] += credit

    # -- reading ---------------------------------------------------------------------------------------

    def _where(self, packed: bytes) -> Where:
        _, _, partition, offset, _ = _HEAD.unpack_from(packed)
        return Where(LEDGER_ENTRIES, partition, offset)

    def _unpack(self, key: bytes, packed: bytes) -> BookEntry:
        collective, ordinal, partition, offset, origin = _HEAD.unpack_from(packed)
        lines = []
        for position in range(_HEAD.size, len(packed), _LINE.size):
            account, amount = _LINE.unpack_from(packed, position)
            lines.append((self._names[account], max(amount, 0), max(-amount, 0)))
        reverses = self._reverses.get(key)
        reversed_by = self._reversed_by.get(key)
        return BookEntry(_entry_id(key), self._names[collective], dt.date.fromordinal(ordinal).isoformat(),
                         tuple(lines), _ORIGINS[origin], self._refs.get(key), self._memos.get(key, ""),
                         Where(LEDGER_ENTRIES, partition, offset), _entry_id(reverses) if reverses else None,
                         _entry_id(reversed_by) if reversed_by else None, self._attachments.get(key))

    def entry(self, entry_id: str) -> BookEntry | None:
        """One entry (or reversal) by id, or None."""
        try:
            key = _key(entry_id)
        except ValueError:
            return None
        packed = self._packed.get(key)
        return self._unpack(key, packed) if packed is not None else None

    def __len__(self) -> int:
        """How many entries and reversals are booked."""
        return len(self._packed)

    def automatic_entries(self, kinds: frozenset[str]) -> Iterator[BookEntry]:
        """Entries whose origin is one of ``kinds``, in log order."""
        wanted = {_ORIGIN_INDEX[kind] for kind in kinds if kind in _ORIGIN_INDEX}
        origin_at = _HEAD.size - 1
        for key, packed in self._packed.items():
            if packed[origin_at] in wanted:
                yield self._unpack(key, packed)

    def balance_date(self) -> dt.date:
        """The date the trial balances are taken at: ``as_of``, else the latest entry's date."""
        if self.as_of is not None:
            return self.as_of
        return dt.date.fromisoformat(self.last_date) if self.last_date else dt.date.today()

    def collective_ids(self) -> list[str]:
        """Registered collectives and any collective that has entries, sorted."""
        booked = {self._names[_HEAD.unpack_from(packed)[0]] for packed in self._packed.values()}
        return sorted(set(self.collectives) | set(self._totals) | booked)

    def trial_balance(self, collective_id: str) -> TrialBalance:
        """科目余额表 of one collective at :meth:`balance_date`, from the folded lines."""
        as_of = self.balance_date()
        lines = [PostedLine(collective_id, "", as_of, account, debit, credit)
                 for account, (debit, credit) in self._totals.get(collective_id, {}).items()]
        return trial_balance(lines, as_of)

    def entries_of(self, collective_id: str | None = None) -> Iterator[BookEntry]:
        """Entries (and reversals) in log order, of one collective or of all."""
        if collective_id is None:
            for key, packed in self._packed.items():
                yield self._unpack(key, packed)
            return
        wanted = self._index.get(collective_id)
        for key in self._keys_of.get(wanted, ()) if wanted is not None else ():
            yield self._unpack(key, self._packed[key])

    def voucher_numbers(self, collective_id: str) -> dict[str, str]:
        """entry_id -> voucher number (记-YYYY-MM-NNNN) of the collective's entries: the ledger's numbering
        (``services.ledger.vouchers.number_vouchers``) of the entries in log order, as the ledger folds them."""
        keys = self._keys_of.get(self._index.get(collective_id, -1), [])
        dated = []
        for key in keys:
            _, ordinal, _, _, _ = _HEAD.unpack_from(self._packed[key])
            dated.append((collective_id, dt.date.fromordinal(ordinal).isoformat()))
        return {_entry_id(key): voucher.number for key, voucher in zip(keys, number_vouchers(dated), strict=True)}

    def name_of(self, collective_id: str) -> str:
        found = self.collectives.get(collective_id)
        return found.name if found else collective_id


def _at(where: Where) -> str:
    return f"{where.topic}[{where.partition}]@{where.offset}"
