"""``baotuan run --instances 2`` serves the demo with the same printed payouts as ``baotuan run`` (issue 17,
"done when"): two instances of each service (ledger, rentals, dividends, members) and the web page, on a
broker of this module's own with an empty log; the run imports the Binhai scenario through the first
instance of each service (the second's subjects forwarded to it), prints the payout tables and 联盟村's plan,
and stops. The figures are the single-instance ones the e2e test checks (tests/binhai_figures.py); the
printed per-investor payouts are those the log holds, and ``baotuan audit`` (keys pinned), which recomputes
every distribution from the log, finds nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from binhai_figures import BINHAI_2025, DISTRIBUTIONS, PAYOUTS_2025, PLAN_PRINTED
from fault_harness import events, own_broker
from kafka_helpers import read_records
from scale_harness import audit_log

from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import DIVIDENDS
from services.devtools.launcher.stack import free_base_port
from services.devtools.scenario.schemas import read_scenario
from services.devtools.scenario.table import grouped
from services.runtime.config import PROJECT_ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

BINHAI = PROJECT_ROOT / "data" / "binhai_scenario.json"
INSTANCES = 2


def _base_port() -> int:
    """A base port with the web page's below it and every instance's (+0..3, +100..103 …) free."""
    return free_base_port([-1, *(100 * n + i for n in range(INSTANCES) for i in range(4))])


def test_baotuan_run_with_two_instances_prints_the_single_instance_payouts_and_plan(tmp_path: Path) -> None:
    names = read_scenario(BINHAI).names()
    with own_broker(tmp_path / "kafka") as broker:
        var = tmp_path / "var"
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "BAOTUAN_DATA_DIR": str(var),
               "COLUMNS": "200"}
        env.pop("BAOTUAN_TOKENS_FILE", None)
        base = _base_port()
        began = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "services.devtools.launcher", "--instances", str(INSTANCES),
                              "--base-port", str(base), "--no-wait"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=800, check=False)
        took = time.monotonic() - began
        assert run.returncode == 0, run.stderr[-4000:]
        printed = run.stdout
        print(f"baotuan run --instances {INSTANCES}: {took:.1f}s")
        # Every instance was up: instance n of a service on its port + 100 (n - 1).
        for n in range(INSTANCES):
            for i in range(4):
                assert f":{base + 100 * n + i}" in printed + run.stderr, (n, i)
        # What the run printed: each distribution's total payout, the pinned payouts of 2025, 联盟村's plan.
        for total in (figures[3] for figures in DISTRIBUTIONS.values()):
            assert grouped(total) in printed, total
        year_table = printed[printed.index(BINHAI_2025):]
        for investor, payout in PAYOUTS_2025.items():
            row = next(line for line in year_table.splitlines() if names.get(investor, investor) in line)
            assert row.rstrip().endswith(grouped(payout)), row
        plan = printed[printed.index("2025年度收益分配方案"):]
        for figure in PLAN_PRINTED:
            assert figure in plan, plan
        # The log holds what was printed: per distribution, the allocations' payouts sum to the declared total,
        # and every investor's payout in the tables is its allocation's.
        records = read_records(broker.bootstrap, DIVIDENDS)
        declared = {e["data"]["distribution_id"]: e["data"] for e in events(records, "DistributionDeclared")}
        assert {(d["project_id"], d["period_start"]): (d["gross_rent"], d["pool"], d["total_top_up"],
                                                       d["total_payout"]) for d in declared.values()} == DISTRIBUTIONS
        allocated: dict[str, dict[str, str]] = defaultdict(dict)
        for e in events(records, "DividendAllocated"):
            assert e["data"]["investor_id"] not in allocated[e["data"]["distribution_id"]], "allocated twice"
            allocated[e["data"]["distribution_id"]][e["data"]["investor_id"]] = e["data"]["payout"]
        for distribution_id, payouts in allocated.items():
            assert format_yuan(sum(map(parse_yuan, payouts.values()))) == declared[distribution_id]["total_payout"]
        assert {investor: allocated[BINHAI_2025][investor] for investor in PAYOUTS_2025} == PAYOUTS_2025
        for investor, payout in allocated[BINHAI_2025].items():
            row = next(line for line in year_table.splitlines() if names.get(investor, investor) in line)
            assert grouped(payout) in row, (investor, row)
        status, output = audit_log(broker.bootstrap, var, tmp_path / "pinned")
        assert status == 0, output[-3000:]
