"""Scale-out simulation (issue 17, docs/scaling.md): N ledger instances in one writers' group on a broker of
its own with P partitions, C collectives registered, then a province-like mix of writes for S seconds.

    PYTHONPATH=. .venv/bin/python -m bench.scale_out --instances 4 --partitions 24 --collectives 2000 --seconds 60

Every request goes to a random instance (any instance takes any request: a write for another's
partitions is forwarded to its owner). The mix, per client request: 80% one journal entry of one
village (an accountant's post), 20% a batch of 20 entries of one village (a month's receipts). Prints
the figures as JSON and as the Markdown table docs/scaling.md shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from services.devtools.broker import LocalBroker, free_port
from services.runtime.auth import add_token
from services.runtime.config import PROJECT_ROOT


def entry(amount: str, memo: str, day: int) -> dict[str, Any]:
    return {"date": f"2026-03-{day:02d}", "memo": memo,
            "lines": [{"account": "102", "debit": amount}, {"account": "504", "credit": amount}]}


class Instances:
    def __init__(self, root: Path, bootstrap: str, tokens: Path, count: int, partitions: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        for n in range(count):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BAOTUAN_DATA_DIR": str(root / "cluster"),
                   "BAOTUAN_TOKENS_FILE": str(tokens), "BAOTUAN_TOPIC_PARTITIONS": str(partitions),
                   "BAOTUAN_REQUEST_TIMEOUT_S": "15", "PYTHONUNBUFFERED": "1"}
            log = (root / f"ledger-{n + 1}.log").open("ab")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", "ledger", "--port", str(port), "--threads", "16",
                 "--instance-id", str(n + 1), "--advertised-url", url],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            self.urls.append(url)

    def wait(self, partitions: int, timeout_s: float = 180.0) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout_s:
            try:
                held = [requests.get(f"{u}/health", timeout=3).json()["instance"] for u in self.urls]
                owned = sum(1 for h in held for name in h["owned"]
                            if name.startswith("baotuan.ledger.entries.v1[") and name not in h["catching_up"])
                if owned == partitions:
                    return time.monotonic() - began
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the writers' group did not settle")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(instances: int, partitions: int, collectives: int, seconds: float, clients: int) -> dict[str, Any]:
    os.environ["BAOTUAN_TOPIC_PARTITIONS"] = str(partitions)
    root = Path(tempfile.mkdtemp(prefix="baotuan-scale-"))
    broker = LocalBroker(root / "kafka", free_port(), free_port(), partitions=partitions)
    broker.start()
    tokens = root / "tokens.json"
    admin = add_token(tokens, name="admin", role="admin", scope=())
    group = Instances(root, broker.bootstrap, tokens, instances, partitions)
    figures: dict[str, Any] = {"instances": instances, "partitions": partitions, "collectives": collectives,
                               "seconds": seconds, "clients": clients, "cpu_cores": os.cpu_count()}
    try:
        figures["group_settled_s"] = round(group.wait(partitions), 1)
        headers = {"Authorization": f"Bearer {admin}"}
        villages = [f"v{i:05d}" for i in range(collectives)]
        todo = list(villages)
        lock = threading.Lock()

        def register() -> None:
            session = requests.Session()
            while True:
                with lock:
                    if not todo:
                        return
                    village = todo.pop()
                for _ in range(20):  # a client's retry loop: same key, any instance
                    try:
                        r = session.post(f"{random.choice(group.urls)}/v1/collectives", timeout=60,
                                         headers={**headers, "Idempotency-Key": f"reg-{village}"},
                                         json={"collective_id": village, "name": f"{village}村", "town": "某镇"})
                        if r.status_code == 201:
                            break
                    except requests.RequestException:  # a kept-alive connection the server had just closed
                        pass
                    time.sleep(0.2)

        began = time.monotonic()
        workers = [threading.Thread(target=register) for _ in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        took = time.monotonic() - began
        figures["registration"] = {"seconds": round(took, 1), "per_s": round(collectives / took, 1)}

        results: list[tuple[str, int, float, int, bool]] = []  # kind, status, seconds, entries, forwarded
        stop_at = time.monotonic() + seconds

        def client(n: int) -> None:
            session = requests.Session()
            rng = random.Random(n)
            i = 0
            while time.monotonic() < stop_at:
                village = rng.choice(villages)
                url = rng.choice(group.urls)
                key = f"c{n}-{i}"
                t0 = time.monotonic()
                try:
                    if rng.random() < 0.8:
                        kind, count = "single", 1
                        r = session.post(f"{url}/v1/collectives/{village}/entries", timeout=60,
                                         headers={**headers, "Idempotency-Key": key},
                                         json=entry("12.50", key, 1 + i % 28))
                    else:
                        kind, count = "batch20", 20
                        r = session.post(f"{url}/v1/entries/batch", timeout=60,
                                         headers={**headers, "Idempotency-Key": key},
                                         json={"entries": [{"collective_id": village, **entry("3.00", f"{key}-{j}",
                                                                                             1 + j)}
                                                           for j in range(20)]})
                    status = r.status_code
                    forwarded = "X-Baotuan-Answered-By" in r.headers
                except requests.RequestException:
                    status, forwarded = 0, False
                with lock:
                    results.append((kind, status, time.monotonic() - t0, count, forwarded))
                i += 1

        began = time.monotonic()
        workers = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        took = time.monotonic() - began
        ok = [r for r in results if 200 <= r[1] < 300]
        figures["load"] = {
            "seconds": round(took, 1),
            "requests": len(results), "acknowledged": len(ok),
            "refused_or_failed": dict(sorted((str(s), sum(1 for r in results if r[1] == s))
                                             for s in {r[1] for r in results if not 200 <= r[1] < 300})),
            "entries_per_s": round(sum(r[3] for r in ok) / took, 1),
            "requests_per_s": round(len(ok) / took, 1),
            "forwarded_share": round(sum(1 for r in ok if r[4]) / max(1, len(ok)), 3),
        }
        for kind in ("single", "batch20"):
            lat = sorted(r[2] * 1000 for r in ok if r[0] == kind)
            if lat:
                figures["load"][f"{kind}_ms"] = {"p50": round(statistics.median(lat), 1),
                                                 "p95": round(lat[int(len(lat) * 0.95) - 1], 1),
                                                 "p99": round(lat[int(len(lat) * 0.99) - 1], 1), "count": len(lat)}
        for kind, local in (("local", False), ("forwarded", True)):
            lat = sorted(r[2] * 1000 for r in ok if r[0] == "single" and r[4] == local)
            if lat:
                figures["load"][f"single_{kind}_p50_ms"] = round(statistics.median(lat), 1)
    finally:
        group.stop()
        broker.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=24)
    parser.add_argument("--collectives", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    figures = run(args.instances, args.partitions, args.collectives, args.seconds, args.clients)
    print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
