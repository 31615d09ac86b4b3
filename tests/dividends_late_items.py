"""Late rent no longer vanishes from the dividends (DESIGN §6 step 1): the story, through the three services.

The 2025 distribution of a project is declared; then the operator records rent received on 2025-12-20 and an
expense of 2025-12-28. The rentals answers say both are late for the 2025 distribution; 2025 stays as declared;
the 2026 preview and the 2026 distribution count them (in gross rent and expenses) and list them in
``late_items``; a cancelled 2026 distribution frees them for the one declared in its place, and the next
period does not count them again. Told on the in-memory log (tests/unit/dividends/test_late_items_api.py)
and on a broker, where the audit of the whole log follows (tests/integration/dividends/test_late_items_kafka.py).

Not a test module; test modules import it by name, as they do ``conftest``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conftest import bearer
from flask.testing import FlaskClient

P = "late-park"
A, B = "late-village-a", "late-village-b"


@dataclass
class Services:
    ledger: FlaskClient
    rentals: FlaskClient
    dividends: FlaskClient
    admin: str

    def call(self, client: FlaskClient, method: str, url: str, body: dict[str, Any] | None = None,
             status: int = 200, **headers: str) -> dict[str, Any]:
        response = client.open(url, method=method, json=body, headers=bearer(self.admin, **headers))
        assert response.status_code == status, (url, response.get_json())
        answer: dict[str, Any] = response.get_json()
        return answer


def late_rent_and_expense_join_the_next_distribution(world: Services) -> None:
    ledger, rentals, dividends, call = world.ledger, world.rentals, world.dividends, world.call
    # -- a park, two villages, a lease and 2025's rent ------------------------------------------------------
    for village, name in ((A, "联盟村股份经济合作社"), (B, "新桥村股份经济合作社")):
        call(ledger, "POST", "/v1/collectives", {"collective_id": village, "name": name, "town": "金清镇",
                                                 "alliances": []}, 201)
    call(ledger, "POST", "/v1/projects", {"project_id": P, "name": "路桥滨海产业园", "kind": "industrial_park",
                                          "town": "金清镇", "operator": "路桥滨海产业园运营有限公司"}, 201)
    call(ledger, "POST", f"/v1/projects/{P}/investments", {"kind": "land", "investor_id": A, "area_mu": "2.0000",
                                                           "price_per_mu": "500000.00", "effective_on": "2025-01-01"},
         201)
    call(ledger, "POST", f"/v1/projects/{P}/investments", {"kind": "cash", "investor_id": B, "amount": "1000000.00",
                                                           "effective_on": "2025-01-01"}, 201)
    call(dividends, "PUT", f"/v1/projects/{P}/policy", {"management_fee_rate": "0.05", "tax_rate": "0.10",
                                                        "payout_ratio": "0.90", "guaranteed_rate": "0.00"})
    call(rentals, "POST", f"/v1/projects/{P}/buildings", {"building_id": "late-b01", "name": "1号厂房",
                                                          "floor_area_m2": "8400.00"}, 201)
    call(rentals, "POST", f"/v1/projects/{P}/leases", {
        "lease_id": "late-lease", "building_id": "late-b01", "tenant": {"name": "台州卫浴制造有限公司"},
        "start_on": "2025-01-01", "end_on": "2027-01-01", "monthly_rent": "100000.00", "deposit": "0.00",
        "billing": "monthly"}, 201)
    on_time = call(rentals, "POST", "/v1/leases/late-lease/payments",
                   {"amount": "200000.00", "received_on": "2025-06-10"}, 201)
    assert on_time["late"] is None  # nothing is declared yet

    # -- 2025 is declared ---------------------------------------------------------------------------------
    d2025 = call(dividends, "POST", f"/v1/projects/{P}/distributions",
                 {"period_start": "2025-01-01", "period_end": "2025-12-31"}, 201)
    assert (d2025["gross_rent"], d2025["late_items"]) == ("200000.00", [])

    # -- then rent received on 2025-12-20 and an expense of 2025-12-28 are recorded ------------------------
    late_for_2025 = {"distribution_id": d2025["distribution_id"], "period_start": "2025-01-01",
                     "period_end": "2025-12-31", "counts_in": f"the next distribution of {P} declared after it"}
    paid = call(rentals, "POST", "/v1/leases/late-lease/payments",
                {"payment_id": "late-rent-1220", "amount": "40000.00", "received_on": "2025-12-20"}, 201,
                **{"Idempotency-Key": "late-rent-1220"})
    assert paid["late"] == late_for_2025
    repeat = call(rentals, "POST", "/v1/leases/late-lease/payments",
                  {"payment_id": "late-rent-1220", "amount": "40000.00", "received_on": "2025-12-20"}, 201,
                  **{"Idempotency-Key": "late-rent-1220"})
    assert repeat == paid
    spent = call(rentals, "POST", f"/v1/projects/{P}/expenses",
                 {"expense_id": "late-repair", "category": "maintenance", "amount": "3000.00",
                  "incurred_on": "2025-12-28", "memo": "年底维修"}, 201)
    assert spent["late"] == late_for_2025
    in_2026 = call(rentals, "POST", "/v1/leases/late-lease/payments",
                   {"amount": "60000.00", "received_on": "2026-01-10"}, 201)
    assert in_2026["late"] is None

    # 2025 stays as declared.
    assert call(dividends, "GET", f"/v1/distributions/{d2025['distribution_id']}")["gross_rent"] == "200000.00"

    # -- the 2026 preview and distribution take them up ----------------------------------------------------
    late_items = [{"kind": "rent", "amount": "40000.00", "date": "2025-12-20"},
                  {"kind": "expense", "amount": "3000.00", "date": "2025-12-28"}]
    period_2026 = {"period_start": "2026-01-01", "period_end": "2026-06-30"}
    preview = call(dividends, "POST", f"/v1/projects/{P}/distributions/preview", period_2026)
    assert (preview["gross_rent"], preview["expenses"]) == ("100000.00", "3000.00")
    assert [{k: v for k, v in item.items() if k != "event_id"} for item in preview["late_items"]] == late_items
    first = call(dividends, "POST", f"/v1/projects/{P}/distributions", period_2026, 201)
    assert first["late_items"] == preview["late_items"]
    assert (first["gross_rent"], first["expenses"], first["pool"]) == ("100000.00", "3000.00", "73800.00")
    # A cancelled distribution takes nothing: the one declared in its place takes them up again.
    call(dividends, "POST", f"/v1/distributions/{first['distribution_id']}/cancel", {"reason": "重新核算"})
    second = call(dividends, "POST", f"/v1/projects/{P}/distributions",
                  {**period_2026, "distribution_id": "late-park-2026h1-redone"}, 201)
    assert second["late_items"] == first["late_items"] and second["gross_rent"] == "100000.00"
    listed = call(dividends, "GET", f"/v1/projects/{P}/distributions")["items"]
    assert {d["distribution_id"]: len(d["late_items"]) for d in listed} == {
        d2025["distribution_id"]: 0, first["distribution_id"]: 2, "late-park-2026h1-redone": 2}
    # Counted once: the next period does not take them up again.
    h2 = call(dividends, "POST", f"/v1/projects/{P}/distributions/preview",
              {"period_start": "2026-07-01", "period_end": "2026-12-31"})
    assert (h2["gross_rent"], h2["expenses"], h2["late_items"]) == ("0.00", "0.00", [])
