"""What the Binhai demo scenario (data/binhai_scenario.json) must come to, one instance of each service or
several: the e2e test of the single-instance stack and the scale-out tests check the same figures from here.

Not a test module (pytest does not collect it); tests import it by name (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

#: The 2025 distribution of the park (the one approved and paid in the e2e test).
BINHAI_2025 = "binhai-park-2025-01-01-2025-12-31"
#: Every village of the park (19 in the 2025 distribution).
VILLAGES = [f"jinqing-v{n:02d}" for n in range(3, 20)] + ["jinqing-lianmeng", "jinqing-shangtang"]
#: The import's API calls: the park's 320 records, then 联盟村's books, register and plan.
CALLS = 639
#: Each declared distribution, (project, period start) -> (gross rent, pool, total top-up, total payout).
DISTRIBUTIONS = {
    ("binhai-park", "2025-01-01"): ("8611900.00", "6109089.30", "2121153.44", "8230242.74"),
    ("binhai-park", "2026-01-01"): ("10652600.00", "7741492.20", "0.00", "7741492.20"),
    ("jinqing-market", "2025-01-01"): ("3099999.96", "2634999.96", "0.00", "2634999.96"),
}
#: 联盟村 in 2025: 14.2 mu × 250,000.00 = 3,550,000.00 of capital; 10% a year guaranteed; the pool's share
#: falls short: (pro rata, guaranteed floor, top-up, payout).
LIANMENG_2025 = ("211577.30", "355000.00", "143422.70", "355000.00")
#: Payouts of the 2025 distribution the e2e test pins: 滨港村 joined on 2025-07-01 (its floor counts 184 days:
#: 3,725,000.00 × 0.10 × 184 / 365); the guarantor company gets its pro-rata share only, no floor.
PAYOUTS_2025 = {"jinqing-lianmeng": LIANMENG_2025[3], "jinqing-v19": "187780.82",
                "luqiao-state-assets": "2979961.92"}
#: 联盟村's 2025 plan: distributable, welfare, members' total (the reserve is 10% of distributable, half up).
PLAN_2025 = {"distributable": "1019600.00", "welfare": "50000.00", "members_total": "800000.00"}
#: Households allocated in the plan (306, one of which passed all its shares on in 2023) and those paid.
PLAN_HOUSEHOLDS, PLAN_PAID = 305, 303
#: What ``baotuan run`` prints of the plan: distributable, 公积公益金, welfare, members' total, undistributed, paid.
PLAN_PRINTED = ("1,019,600.00", "101,960.00", "50,000.00", "800,000.00", "67,640.00", "303 / 305")
