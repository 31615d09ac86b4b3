"""The rentals projection as a pure left fold (no broker): events in, tables out.

Money is never lost or made up whatever the order of invoices, payments and an early end:
Σ received = Σ paid on live invoices + credit, no invoice is paid beyond its amount, and
credit is only kept while nothing is owed.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.contracts import envelope as env
from services.contracts.money import format_yuan
from services.contracts.topics import LEDGER_INVESTMENTS, RENTALS
from services.rentals import domain
from services.rentals.projection import SCHEMA, fold
from services.rentals.reads import lease_of
from services.runtime.store import ProjectionStore

PROJECT = "binhai-park"
LEASE = "lease-b01"


class Log:
    """A projection store fed envelopes in order, like the consumer does."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self.store = ProjectionStore(path, SCHEMA)
        self.offset = 0
        self.head = env.ChainHead()
        self.sealed: list[dict[str, Any]] = []

    def add(self, event_type: str, data: dict[str, Any], topic: str = RENTALS) -> dict[str, Any]:
        sealed = env.seal(env.new_envelope(event_type=event_type, version=1, source="rentals", subject=PROJECT,
                                           data=data, actor="operator:test"), self.head)
        self.head = env.ChainHead(sealed["seq"], sealed["hash"])
        self.store.apply(topic, 0, self.offset, sealed, fold, chain=topic == RENTALS)
        self.offset += 1
        self.sealed.append(sealed)
        return sealed

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.store.query_one(sql, params)
        assert row is not None
        return row[0]

    def lease(self) -> domain.Lease:
        row = self.store.query_one("SELECT * FROM leases WHERE lease_id=?", (LEASE,))
        assert row is not None
        return lease_of(row)


def sign(log: Log, rent: int = 10_920_000) -> None:
    log.add("BuildingRegistered", {"building_id": "b01", "project_id": PROJECT, "name": "1号厂房",
                                   "floor_area_m2": "8400.00"})
    log.add("LeaseSigned", {"lease_id": LEASE, "project_id": PROJECT, "building_id": "b01",
                            "tenant": {"name": "台州卫浴制造有限公司01"}, "start_on": "2025-01-01",
                            "end_on": "2026-01-01", "monthly_rent": format_yuan(rent), "deposit": "0.00",
                            "billing": "monthly"})


def invoice(log: Log, due: domain.InvoiceDue) -> None:
    log.add("RentInvoiced", {"invoice_id": due.invoice_id, "lease_id": LEASE, "project_id": PROJECT,
                             "period_start": due.period_start.isoformat(), "period_end": due.period_end.isoformat(),
                             "amount": format_yuan(due.amount), "due_on": due.due_on.isoformat()})


def pay(log: Log, payment_id: str, fen: int, invoice_id: str | None = None, lease_id: str = LEASE) -> None:
    log.add("RentReceived", {"payment_id": payment_id, "lease_id": lease_id, "project_id": PROJECT,
                             "invoice_id": invoice_id, "amount": format_yuan(fen), "received_on": "2025-02-01"})


def test_the_ledger_registers_projects_and_unknown_fields_are_ignored() -> None:
    log = Log()
    log.add("ProjectRegistered", {"project_id": PROJECT, "name": "路桥滨海产业园", "kind": "industrial_park",
                                  "town": "金清镇", "operator": "运营公司", "added_in_v2": "ignored"},
            topic=LEDGER_INVESTMENTS)
    log.add("CashInvested", {"investment_id": "i1", "project_id": PROJECT, "investor_id": "v1",
                             "investor_type": "collective", "amount": "1.00", "effective_on": "2025-01-01"},
            topic=LEDGER_INVESTMENTS)
    assert log.one("SELECT name FROM projects WHERE project_id=?", (PROJECT,)) == "路桥滨海产业园"


def test_a_payment_on_an_unknown_lease_counts_as_income_but_is_applied_to_nothing() -> None:
    log = Log()
    pay(log, "p1", 100, lease_id="lease-nobody")
    assert log.one("SELECT SUM(amount) FROM payments WHERE project_id=?", (PROJECT,)) == 100
    assert log.one("SELECT COUNT(*) FROM applications") == 0


def test_a_payment_records_the_invoice_it_names_or_else_the_first_it_reached() -> None:
    log = Log()
    sign(log)
    january, february = domain.invoice_schedule(log.lease(), date(2025, 2, 1))
    invoice(log, january)
    invoice(log, february)
    pay(log, "p-named", 100, invoice_id=february.invoice_id)
    pay(log, "p-oldest", 100)
    pay(log, "p-credit", 2 * 10_920_000)  # pays both off; the rest is credit
    pay(log, "p-all-credit", 100)
    reached = dict(log.store.query("SELECT payment_id, invoice_id FROM payments"))
    assert reached == {"p-named": february.invoice_id, "p-oldest": january.invoice_id,
                       "p-credit": january.invoice_id, "p-all-credit": None}
    assert [tuple(r) for r in log.store.query("SELECT invoice_id, amount FROM applications WHERE ref='p-credit' "
                                              "ORDER BY id")] == [(january.invoice_id, 10_920_000 - 100),
                                                                  (february.invoice_id, 10_920_000 - 100)]


def test_an_event_delivered_twice_is_applied_once() -> None:
    log = Log()
    sign(log)
    due = domain.invoice_schedule(log.lease(), date(2025, 1, 1))[0]
    invoice(log, due)
    sealed = log.add("RentReceived", {"payment_id": "p1", "lease_id": LEASE, "project_id": PROJECT,
                                      "amount": "50000.00", "received_on": "2025-01-05"})
    log.store.apply(RENTALS, 0, log.offset, sealed, fold, chain=True)  # the same record again, at a later offset
    assert log.one("SELECT paid FROM invoices") == 5_000_000
    assert log.one("SELECT COUNT(*) FROM payments") == 1


def test_replaying_the_same_log_rebuilds_the_same_tables(tmp_path: Path) -> None:
    original = Log(tmp_path / "a.sqlite")
    sign(original)
    for due in domain.invoice_schedule(original.lease(), date(2025, 3, 1)):
        invoice(original, due)
    pay(original, "p1", 15_000_000)
    pay(original, "p2", 30_000_000)
    original.add("LeaseTerminated", {"lease_id": LEASE, "project_id": PROJECT, "end_on": "2025-02-20",
                                     "reason": "搬迁"})
    copy = Log(tmp_path / "b.sqlite")
    for envelope in original.sealed:
        copy.store.apply(RENTALS, 0, copy.offset, envelope, fold, chain=True)
        copy.offset += 1
    for table in ("leases", "invoices", "payments", "applications"):
        assert [tuple(r) for r in original.store.query(f"SELECT * FROM {table} ORDER BY 1")] == [
            tuple(r) for r in copy.store.query(f"SELECT * FROM {table} ORDER BY 1")]


actions = st.lists(st.one_of(
    st.tuples(st.just("invoice"), st.integers(min_value=0, max_value=400)),
    st.tuples(st.just("pay"), st.integers(min_value=1, max_value=30_000_000), st.booleans()),
    st.tuples(st.just("terminate"), st.integers(min_value=1, max_value=365)),
), max_size=12)


@given(st.integers(min_value=1, max_value=20_000_000), actions)
def test_money_is_never_lost_whatever_the_order_of_invoices_payments_and_an_early_end(
        rent: int, steps: list[tuple[Any, ...]]) -> None:
    log = Log()
    sign(log, rent)
    start = date(2025, 1, 1)
    for n, step in enumerate(steps):
        lease = log.lease()
        if step[0] == "invoice":
            issued = {r[0] for r in log.store.query("SELECT invoice_id FROM invoices")}
            for due in domain.invoice_schedule(lease, start + timedelta(days=step[1])):
                if due.invoice_id not in issued:
                    invoice(log, due)
        elif step[0] == "pay":
            open_ids = [r[0] for r in log.store.query(
                "SELECT invoice_id FROM invoices WHERE void=0 AND amount > paid ORDER BY due_on DESC")]
            pay(log, f"p{n}", step[1], open_ids[0] if step[2] and open_ids else None)
        elif lease.terminated_on is None:
            log.add("LeaseTerminated", {"lease_id": LEASE, "project_id": PROJECT,
                                        "end_on": (start + timedelta(days=step[1])).isoformat(), "reason": "x"})
        received = log.one("SELECT COALESCE(SUM(amount), 0) FROM payments")
        paid = log.one("SELECT COALESCE(SUM(paid), 0) FROM invoices WHERE void=0")
        credit = log.one("SELECT credit FROM leases")
        assert received == paid + credit
        assert log.one("SELECT COUNT(*) FROM invoices WHERE paid < 0 OR paid > amount OR (void=1 AND paid<>0)") == 0
        owed = log.one("SELECT COALESCE(SUM(amount - paid), 0) FROM invoices WHERE void=0")
        assert credit == 0 or owed == 0
        applied = log.one("SELECT COALESCE(SUM(amount), 0) FROM applications")
        assert applied == paid
