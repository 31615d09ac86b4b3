"""The local stack of ``baotuan run``: a broker (started or reused) and the four services as processes.

Each service runs as its own ``baotuan serve <svc>`` process (gunicorn, one worker: the
single writer of its streams) in its own session, so a Ctrl-C reaches only the launcher,
which then stops them in order. Their output goes to ``var/log/<svc>.log``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from services.contracts.topics import WRITERS
from services.devtools.broker import LocalBroker, broker_answers, durable_broker
from services.runtime.config import PROJECT_ROOT, Settings

SERVICES = WRITERS
PROJECTION_FILES = tuple(f"{svc}.sqlite" for svc in SERVICES)


class StackError(RuntimeError):
    """The stack could not be brought up."""


@dataclass
class Broker:
    """The broker this run talks to, and whether this run started it (then it also stops it).

    ``kafka_config``: the kafka-python security settings (SASL) for it; empty for the local broker.
    """

    bootstrap: str
    started: LocalBroker | None
    note: str
    kafka_config: dict[str, Any] = field(default_factory=dict, repr=False)

    def stop(self) -> None:
        if self.started is not None:
            self.started.stop()


def open_broker(data_dir: Path) -> Broker:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set (start nothing); else the durable local broker, reused or started.

    An external broker is reached with the security settings of ``BAOTUAN_KAFKA_SASL_*`` (as the
    services are). The local broker keeps its log in ``<data_dir>/kafka`` (``var/kafka``).
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        config = Settings.from_env().kafka_client_config()
        if not broker_answers(external, timeout_ms=5000, **config):
            raise StackError(f"KAFKA_BOOTSTRAP_SERVERS={external} does not answer"
                             + (" (with the BAOTUAN_KAFKA_SASL_* credentials)" if config else ""))
        return Broker(external, None, f"using the broker at {external} (KAFKA_BOOTSTRAP_SERVERS)", config)
    broker = durable_broker(data_dir)
    if broker.is_ready():
        return Broker(broker.bootstrap, None, f"reusing the local Kafka broker on {broker.bootstrap}")
    try:
        seconds = broker.start()
    except BaseException:  # interrupted or failed half-way: leave no broker behind
        broker.stop()
        raise
    return Broker(broker.bootstrap, broker, f"started the local Kafka broker on {broker.bootstrap} in {seconds:.1f}s "
                                            f"(data: {_relative(broker.data_dir)})")


def cluster_id(bootstrap: str, **kafka_config: Any) -> str:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="baotuan-launcher", **kafka_config)
    try:
        return str(admin.describe_cluster()["cluster_id"])
    finally:
        admin.close()


def guard_projections(data_dir: Path, bootstrap: str, **kafka_config: Any) -> str | None:
    """Set aside projections built from another Kafka cluster (they are rebuilt by replay).

    A projection stores the offsets it has applied; against another cluster's log those
    offsets mean nothing, and the service would answer from data that is not in its log.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / "projections.cluster-id"
    current = cluster_id(bootstrap, **kafka_config)
    previous = marker.read_text().strip() if marker.exists() else None
    note = None
    if previous is not None and previous != current:
        stale = data_dir / f"stale-projections-{previous}"
        stale.mkdir(exist_ok=True)
        moved = [p for name in PROJECTION_FILES for p in data_dir.glob(name + "*")]
        for path in moved:
            path.replace(stale / path.name)
        instances = data_dir / "instances"  # the projections of several instances (``--instances N``)
        if instances.is_dir() and any(instances.iterdir()):
            target = stale / "instances"
            n = 1
            while target.exists():
                n += 1
                target = stale / f"instances-{n}"
            instances.replace(target)
            moved.append(instances)
        if moved:
            note = (f"the projections in {_relative(data_dir)} were built from another Kafka cluster: moved to "
                    f"{_relative(stale)}; the services rebuild them from the log")
    marker.write_text(current + "\n")
    return note


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def free_base_port(offsets: Sequence[int], attempts: int = 200) -> int:
    """A base port ``b`` with every ``b + offset`` free, all below the kernel's ephemeral range: a port in that
    range that is free when checked may be taken by any outgoing connection (the services' own Kafka clients)
    before a server binds it. For tests and tools that start several servers on ports of their choosing."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    lowest, highest = 10_000 - min(0, min(offsets)), low - 1 - max(0, max(offsets))
    for _ in range(attempts):
        base = rng.randrange(lowest, highest)
        if all(port_is_free(base + offset) for offset in offsets):
            return base
    raise RuntimeError(f"no free ports at offsets {list(offsets)} below {low}")


@dataclass
class ServiceProcess:
    """One service, run as ``python -m services.cli serve <name> --port <port>``."""

    name: str
    port: int
    log_file: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    #: One of several instances of the service (``baotuan run --instances N``, docs/scaling.md), or None.
    instance_id: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def label(self) -> str:
        """The service's name, and its instance's id when it runs as several."""
        return self.name if self.instance_id is None else f"{self.name}#{self.instance_id}"

    def start(self, env: dict[str, str]) -> None:
        if not port_is_free(self.port, self.host):
            raise StackError(f"port {self.port} for {self.name} is already in use (another `baotuan run`? "
                             f"see `baotuan status`, or choose --base-port)")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        verb = ["serve-web"] if self.name == "web" else ["serve", self.name]
        cmd = [sys.executable, "-m", "services.cli", *verb, "--host", self.host, "--port", str(self.port)]
        if self.instance_id is not None:
            cmd += ["--instance-id", self.instance_id]
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd[1:])}\n".encode())
            log.flush()
            self.process = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.monotonic()

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def healthy(self) -> bool:
        try:
            response = requests.get(self.url + "/health", timeout=2)
        except requests.RequestException:
            return False
        return response.status_code == 200 and response.json().get("status") == "ok"

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self) -> None:
        """Ask for a clean stop (gunicorn finishes the requests in flight)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # the master and its worker share the process group: kill both while it is still theirs
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def service_env(bootstrap: str, data_dir: Path, tokens_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BAOTUAN_DATA_DIR": str(data_dir),
                "BAOTUAN_TOKENS_FILE": str(tokens_file), "PYTHONUNBUFFERED": "1"})
    return env


def start_services(services: list[ServiceProcess], env: dict[str, str], timeout: float = 120.0) -> dict[str, float]:
    """Start every service and wait until each answers /health with status ok; seconds each took."""
    for svc in services:
        svc.start(env)
    ready: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(ready) < len(services):
        for svc in services:
            if svc.label in ready:
                continue
            code = svc.exited()
            if code is not None:
                raise StackError(f"{svc.label} exited with status {code}; the end of {_relative(svc.log_file)}:\n"
                                 + svc.log_tail())
            if svc.healthy():
                ready[svc.label] = time.monotonic() - svc.started_at
        if time.monotonic() > deadline:
            late = [s.label for s in services if s.label not in ready]
            raise StackError(f"not healthy after {timeout:.0f}s: {', '.join(late)} (see var/log/)")
        if len(ready) < len(services):
            time.sleep(0.25)
    return ready


def stop_services(services: list[ServiceProcess], timeout: float = 25.0) -> None:
    for svc in services:
        svc.terminate()
    for svc in services:
        svc.wait_stopped(timeout)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
