"""What the scale-out tests share (DESIGN §12, issue 17): instances of a service in one writers' group.

Not a test module; ``test_scale_out.py`` (the ledger) and ``test_scale_out_services.py`` (rentals,
dividends, members, the demo scenario across instances) import it by name, as they do fault_harness.
Every instance is a real process (``baotuan serve SERVICE`` with ``BAOTUAN_INSTANCE_ID``) whose data
lives under ``<stack root>/cluster`` (its projection in ``instances/<service>-<id>``, the service's one
signing key in ``keys/``), so ``baotuan keys export`` of that folder pins what every instance signs.
"""

from __future__ import annotations

import functools
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from fault_harness import BAOTUAN, ServiceProcess, Stack, call, wait_for

from services.contracts.topics import owned_by, partitions
from services.runtime.config import PROJECT_ROOT
from services.runtime.ownership import partition_of

#: Small on purpose: the group notices a silent member after this (the broker's minimum is 6 s).
SESSION_MS = 6000


def instance(stack: Stack, service: str, instance_id: str, *, threads: int = 8) -> ServiceProcess:
    """Instance ``instance_id`` of ``service`` in the stack (created once, not started)."""
    name = f"{service}-{instance_id}"
    if name not in stack.services:
        svc = ServiceProcess(service, bootstrap=stack.broker.bootstrap, data_dir=stack.root / "cluster",
                             tokens_file=stack.tokens_file, timeout_s=stack.timeout_s, threads=threads)
        svc.log_path = stack.root / f"{name}.process.log"
        svc.env_extra = {"BAOTUAN_INSTANCE_ID": instance_id, "BAOTUAN_ADVERTISED_URL": svc.url,
                         "BAOTUAN_GROUP_SESSION_TIMEOUT_MS": str(SESSION_MS),
                         "BAOTUAN_TRANSACTION_TIMEOUT_MS": "10000", "BAOTUAN_CHECKPOINT_SECONDS": "1"}
        stack.services[name] = svc
    return stack.services[name]


def health(svc: ServiceProcess) -> dict[str, Any]:
    return dict(requests.get(f"{svc.url}/health", timeout=5).json())


def owned(svc: ServiceProcess, topic: str | None = None) -> set[int]:
    """The partitions of ``topic`` (default: the service's first topic of record) the instance writes now
    (assigned and caught up with)."""
    topic = topic or owned_by(svc.name)[0]
    info = health(svc)["instance"]
    waiting = set(info["catching_up"])
    return {int(name.split("[")[1].rstrip("]")) for name in info["owned"]
            if name.startswith(topic + "[") and name not in waiting}


def settled_group(*members: ServiceProcess, timeout_s: float = 60.0) -> dict[str, set[int]]:
    """Wait until the members (instances of one service) between them write every partition, each caught up;
    returns who writes what (by URL)."""
    everything = set(range(partitions()))

    def done() -> bool:
        try:
            held = [owned(m) for m in members]
        except (requests.RequestException, ValueError, KeyError):
            return False
        return all(held) and set().union(*held) == everything and sum(map(len, held)) == len(everything)

    wait_for(f"the {members[0].name} writers' group to settle", done, timeout_s=timeout_s)
    return {m.url: owned(m) for m in members}


def writes_everything(svc: ServiceProcess) -> bool:
    """Whether the instance writes every partition (a survivor that took the others over)."""
    try:
        return owned(svc) == set(range(partitions()))
    except (requests.RequestException, ValueError, KeyError):
        return False


def subjects_of(parts: set[int], count: int, prefix: str) -> list[str]:
    """``count`` subject ids (villages, projects …) whose streams fall into ``parts``."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        name = f"{prefix}{i:03d}"
        if partition_of(name, partitions()) in parts:
            found.append(name)
        i += 1
    return found


def post_any(urls: list[str], token: str, path: str, body: Any, key: str, deadline_s: float = 90.0,
             method: str = "POST") -> dict[str, Any]:
    """A write with one Idempotency-Key to any of ``urls`` until acknowledged (a client retrying elsewhere);
    ``urls`` may change meanwhile (the caller drops a killed instance)."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        url = random.choice(urls)
        try:
            response = call(method, f"{url}{path}", token, body, key=key, timeout=20)
            if 200 <= response.status_code < 300:
                return dict(response.json())
            last = f"{response.status_code} {response.text[:300]}"
            if response.status_code not in (503, 502, 504):
                raise AssertionError(f"{method} {path} refused: {last}")
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise AssertionError(f"{method} {path} never acknowledged in {deadline_s:.0f}s: {last}")


def audit(stack: Stack) -> tuple[int, str]:
    """``baotuan audit`` of the whole log, with every service's key pinned: (exit status, output)."""
    return audit_log(stack.broker.bootstrap, stack.root / "cluster", stack.root / "pinned")


def audit_log(bootstrap: str, data_dir: Path, pinned: Path) -> tuple[int, str]:
    """``baotuan keys export`` of ``data_dir`` into ``pinned``, then ``baotuan audit`` of the log on ``bootstrap``
    trusting only those keys: (exit status, output)."""
    exported = subprocess.run([str(BAOTUAN), "keys", "export", "--output", str(pinned), "--data-dir", str(data_dir)],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    done = subprocess.run([str(BAOTUAN), "audit", "--bootstrap", bootstrap, "--trusted-keys", str(pinned), "--json"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, check=False)
    return done.returncode, done.stdout + done.stderr


def covered(*instances: ServiceProcess, timeout_s: float = 60.0) -> None:
    """Wait until every write of the running instances is covered by a signed checkpoint (one of several
    instances counts every instance's writes)."""
    def none_left(svc: ServiceProcess) -> bool:
        return bool(health(svc)["checkpoints"]["uncovered_events"] == 0)

    for svc in instances:
        if svc.alive():
            wait_for(f"{svc.log_path.name}: every write covered by a checkpoint", functools.partial(none_left, svc),
                     timeout_s=timeout_s)
