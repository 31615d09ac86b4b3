"""What the fault tests share: services run as real processes, an HTTP client, the log checked.

Not a test module (pytest does not collect it); the fault tests import it by name
(pytest puts this folder on ``sys.path``). Everything runs on loopback, with a broker of
the test's own, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kafka_helpers import LoggedRecord

from services.contracts import envelope as env
from services.devtools.broker import LocalBroker, free_port
from services.runtime.auth import add_token
from services.runtime.config import PROJECT_ROOT

BAOTUAN = Path(sys.executable).parent / "baotuan"


class ServiceProcess:
    """One service as production runs it: ``baotuan serve <name>`` (gunicorn), in its own process group.

    ``kill()`` is SIGKILL to the whole group (gunicorn's arbiter and its worker): a crash, no
    clean shutdown, no flushing.
    """

    def __init__(self, name: str, *, bootstrap: str, data_dir: Path, tokens_file: Path,
                 timeout_s: float = 5.0, env_extra: Mapping[str, str] | None = None, threads: int = 8) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.tokens_file = tokens_file
        self.timeout_s = timeout_s
        self.env_extra = dict(env_extra or {})
        self.threads = threads
        self.port = free_port()
        self.log_path = data_dir / f"{name}.process.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def projection(self) -> Path:
        return self.data_dir / f"{self.name}.sqlite"

    def start(self, wait_s: float = 90.0) -> float:
        """Start the process and wait until /health answers (the service has caught up); returns seconds."""
        began = time.monotonic()
        self.launch()
        assert self._proc is not None
        deadline = began + wait_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - began
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"{self.name} not healthy after {wait_s:.0f}s:\n{self.log_tail()}")

    def launch(self) -> None:
        """Start the process and return at once (``start`` waits until it is healthy)."""
        environ = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "BAOTUAN_DATA_DIR": str(self.data_dir),
                   "BAOTUAN_TOKENS_FILE": str(self.tokens_file), "BAOTUAN_REQUEST_TIMEOUT_S": str(self.timeout_s),
                   "PYTHONUNBUFFERED": "1", **self.env_extra}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start #{self.starts + 1} ---\n".encode())
            self._proc = subprocess.Popen(
                [str(BAOTUAN), "serve", self.name, "--port", str(self.port), "--threads", str(self.threads)],
                cwd=PROJECT_ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the service's process group (arbiter and worker), as a crash would."""
        self._signal(signal.SIGKILL, wait_s=10)

    def stop(self) -> None:
        """A clean stop (SIGTERM); SIGKILL if it has not exited after 20 s."""
        if not self._signal(signal.SIGTERM, wait_s=20):
            self.kill()

    def _signal(self, sig: signal.Signals, wait_s: float) -> bool:
        proc = self._proc
        if proc is None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # the group this harness created with start_new_session
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return False
        # The worker is in the same group; make sure it is gone too before a restart.
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self._proc = None
        return True

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def delete_projection(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.projection}{suffix}").unlink(missing_ok=True)


@dataclass
class Stack:
    """A broker of the test's own, the services it started, and the tokens it made."""

    broker: LocalBroker
    root: Path
    timeout_s: float = 5.0
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def tokens_file(self) -> Path:
        return self.root / "tokens.json"

    def service(self, name: str, **env_extra: str) -> ServiceProcess:
        if name not in self.services:
            self.services[name] = ServiceProcess(name, bootstrap=self.broker.bootstrap, data_dir=self.root / name,
                                                 tokens_file=self.tokens_file, timeout_s=self.timeout_s,
                                                 env_extra=env_extra)
        return self.services[name]

    def token(self, role: str, *scope: str) -> str:
        key = f"{role}:{','.join(scope)}"
        if key not in self._tokens:
            self._tokens[key] = add_token(self.tokens_file, name=f"{role}-{len(self._tokens)}", role=role,
                                          scope=scope)
        return self._tokens[key]

    def all_tokens(self) -> list[str]:
        return list(self._tokens.values())

    def close(self) -> None:
        for svc in self.services.values():
            svc.kill()

    def keep_logs(self, name: str) -> Path:
        """Copy the services' and the broker's logs to var/fault-logs/<name>/ (for a failed run)."""
        target = PROJECT_ROOT / "var" / "fault-logs" / name
        target.mkdir(parents=True, exist_ok=True)
        for svc in self.services.values():
            if svc.log_path.exists():
                shutil.copy(svc.log_path, target / svc.log_path.name)
        if self.broker.log_file.exists():
            shutil.copy(self.broker.log_file, target / "broker.log")
        return target


@contextmanager
def stack_on(broker: LocalBroker, root: Path, timeout_s: float = 5.0, name: str = "stack") -> Iterator[Stack]:
    """The services of one test on ``broker``; killed afterwards, their logs kept when the test failed."""
    stack = Stack(broker, root, timeout_s)
    try:
        yield stack
    except BaseException:
        print(f"logs kept in {stack.keep_logs(name)}")
        raise
    finally:
        stack.close()


# -- HTTP ---------------------------------------------------------------------------------------------------


def call(method: str, url: str, token: str | None, body: Any = None, *, key: str | None = None,
         timeout: float = 30.0) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if key:
        headers["Idempotency-Key"] = key
    return requests.request(method, url, json=body, headers=headers, timeout=timeout)


def ok(response: requests.Response) -> dict[str, Any]:
    """The JSON body of a 2xx answer (fails the test with the body otherwise)."""
    assert 200 <= response.status_code < 300, f"{response.request.method} {response.url}: " \
                                              f"{response.status_code} {response.text[:500]}"
    body: dict[str, Any] = response.json()
    return body


def post_until_ok(url: str, token: str, body: Any, key: str, deadline_s: float = 60.0) -> dict[str, Any]:
    """POST with the same Idempotency-Key until it is acknowledged (a client's retry loop)."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = call("POST", url, token, body, key=key, timeout=30)
            if 200 <= response.status_code < 300:
                return dict(response.json())
            last = f"{response.status_code} {response.text[:300]}"
            if response.status_code == 503:
                with contextlib.suppress(requests.RequestException):
                    last += " health: " + requests.get(url.split("/v1/")[0] + "/health", timeout=5).text
            if response.status_code != 503:
                raise AssertionError(f"POST {url} refused: {last}")
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"POST {url} never acknowledged in {deadline_s:.0f}s: {last}")


# -- the log --------------------------------------------------------------------------------------------------


def events(records: list[LoggedRecord], event_type: str | None = None) -> list[dict[str, Any]]:
    found = []
    for record in records:
        try:
            envelope = record.envelope
        except env.EnvelopeError:
            continue
        if event_type is None or envelope.get("type") == event_type:
            found.append(envelope)
    return found


def duplicates(values: list[str]) -> dict[str, int]:
    """Values seen more than once, with their counts."""
    return {value: n for value, n in Counter(values).items() if n > 1}


def verify_chains(topic: str, records: list[LoggedRecord]) -> int:
    """Check every (topic, subject) hash chain in log order; returns how many envelopes were checked.

    A record that repeats an envelope already in the log (same event_id: a producer retry) is
    skipped, as every consumer dedupes it.
    """
    verifier = env.ChainVerifier()
    seen: set[str] = set()
    checked = 0
    for envelope in events(records):
        if envelope["event_id"] in seen:
            continue
        seen.add(envelope["event_id"])
        verifier.check(topic, envelope)
        checked += 1
    return checked


def report(title: str, figures: Mapping[str, Any]) -> str:
    """Print the figures of a fault run (pytest shows them with -s or -rA) and keep them for the docs."""
    line = f"[{title}] " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    out = PROJECT_ROOT / "var" / "fault-figures.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"test": title, **figures}, ensure_ascii=False) + "\n")
    return line


# -- a small world to act on ----------------------------------------------------------------------------------


def seed_villages(stack: Stack, villages: list[str], project: str | None = None, *,
                  area_mu: str = "14.2500", price_per_mu: str = "100000.00") -> None:
    """Register the villages (and a project they each put land into) through the ledger's API."""
    admin = stack.token("admin")
    ledger = stack.services["ledger"].url
    for village in villages:
        post_until_ok(f"{ledger}/v1/collectives", admin,
                      {"collective_id": village, "name": f"{village}村", "town": "金清镇"}, key=f"seed-{village}")
    if project is None:
        return
    post_until_ok(f"{ledger}/v1/projects", admin,
                  {"project_id": project, "name": "滨海产业园", "kind": "industrial_park", "town": "金清镇",
                   "operator": "路桥滨海产业园运营公司"}, key=f"seed-{project}")
    for village in villages:
        post_until_ok(f"{ledger}/v1/projects/{project}/investments", admin,
                      {"kind": "land", "investor_id": village, "area_mu": area_mu, "price_per_mu": price_per_mu,
                       "effective_on": "2026-01-01"}, key=f"seed-{project}-{village}")


def seed_lease(stack: Stack, project: str, monthly_rent: str = "100000.00") -> str:
    """A building and a lease on it through the rentals API; returns the lease id."""
    admin = stack.token("admin")
    rentals = stack.services["rentals"].url
    building = post_until_ok(f"{rentals}/v1/projects/{project}/buildings", admin,
                             {"name": "1号厂房", "floor_area_m2": "8400.00"}, key=f"seed-building-{project}")
    lease = post_until_ok(f"{rentals}/v1/projects/{project}/leases", admin,
                          {"building_id": building["building_id"], "tenant": {"name": "台州精工机械有限公司"},
                           "start_on": "2026-01-01", "end_on": "2027-01-01", "monthly_rent": monthly_rent,
                           "deposit": "0.00", "billing": "monthly"}, key=f"seed-lease-{project}")
    return str(lease["lease_id"])


def entry_body(amount: str, memo: str = "") -> dict[str, Any]:
    """A balanced journal entry: cash in (Dr 102) as other income (Cr 504)."""
    return {"date": "2026-03-15", "memo": memo,
            "lines": [{"account": "102", "debit": amount}, {"account": "504", "credit": amount}]}


@contextmanager
def own_broker(root: Path, **kwargs: Any) -> Iterator[LocalBroker]:
    """A broker of this module's own (an empty log nobody else writes to); stopped afterwards."""
    broker = LocalBroker(root, free_port(), free_port(), **kwargs)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60.0, every_s: float = 0.25) -> float:
    """Poll ``check`` until it is true; returns the seconds it took (fails the test after ``timeout_s``)."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"{what}: not reached in {timeout_s:.0f}s")
        time.sleep(every_s)
    return time.monotonic() - began


def settled(stack: Stack, timeout_s: float = 30.0) -> None:
    """Wait until every running service's writes are covered by its signed checkpoints: a service signs a
    checkpoint a few seconds after its last write, and that checkpoint is a record of the log too."""
    for svc in stack.services.values():
        if svc.alive():
            wait_for(f"{svc.name}'s last writes covered by a checkpoint",
                     lambda svc=svc: not ok(call("GET", f"{svc.url}/health", None))["checkpoints"]["uncovered_events"],
                     timeout_s=timeout_s)


def secrets_in_logs(stack: Stack, *extra: str) -> list[str]:
    """Which of the stack's bearer tokens (and ``extra`` secrets) appear in any service or broker log."""
    texts = [svc.log_text() for svc in stack.services.values()]
    if stack.broker.log_file.exists():
        texts.append(stack.broker.log_file.read_text(errors="replace"))
    secrets = [s for s in (*stack.all_tokens(), *extra) if s]
    return [s[:6] + "…" for s in secrets if any(s in text for text in texts)]
