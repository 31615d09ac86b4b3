"""``baotuan run``: the whole system on one machine (what ``make run`` does).

Starts (or reuses) the local Kafka broker, creates the topics and the demo tokens, starts
the four services as separate processes, waits until they are healthy, imports the
scenario through their public APIs and prints each distribution's payout table and the
services' URLs. Then it stays up until Ctrl-C (SIGINT) or SIGTERM, and stops what it
started: the services, and the broker only if this run started it. ``--no-wait`` exits
right after printing (for CI).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import click
import requests
from rich.console import Console
from rich.markup import escape

from services.contracts.topics import CHECKPOINTS, TOPICS
from services.devtools.broker import BrokerError
from services.devtools.launcher.stack import (
    SERVICES,
    Broker,
    ServiceProcess,
    StackError,
    guard_projections,
    open_broker,
    port_is_free,
    service_env,
    start_services,
    stop_services,
)
from services.devtools.scenario.cli import EXIT_BAD_FILE, EXIT_REFUSED, after_refusal, console_for, load_and_report
from services.devtools.scenario.loader import ApiClient, Endpoints, LoadError
from services.devtools.scenario.schemas import Scenario, ScenarioError, read_scenario
from services.devtools.scenario.tokens import data_dir as default_data_dir
from services.devtools.scenario.tokens import (
    demo_password,
    demo_principals,
    demo_token,
    ensure_demo_tokens,
    store_demo_password,
)
from services.runtime.config import PROJECT_ROOT
from services.runtime.kafka_io import BrokerUnavailable, count_records, end_offsets, ensure_topics

DEFAULT_SCENARIO = PROJECT_ROOT / "data" / "binhai_scenario.json"


class Stop(Exception):
    """SIGTERM (or SIGINT) asked the run to stop."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class LocalRun:
    """One ``baotuan run``: what it started, so that it stops exactly that."""

    var: Path
    base_port: int
    out: Console
    err: Console
    broker: Broker | None = None
    services: list[ServiceProcess] = field(default_factory=list)
    #: How to sign in as the first admin (``ensure_admin_account``).
    admin_sign_in: str = ""
    #: Instances of each service (docs/scaling.md): 1 is one process writing everything, as always.
    instances: int = 1

    @property
    def web_port(self) -> int:
        return self.base_port - 1  # 8000 beside 8001-8004

    @property
    def tokens_file(self) -> Path:
        return Path(os.environ.get("BAOTUAN_TOKENS_FILE") or self.var / "tokens.json")

    @property
    def demo_file(self) -> Path:
        return self.var / "demo-tokens.json"

    def bring_up(self, scenario: Scenario) -> None:
        """Broker, topics, tokens, and the four services healthy."""
        ports = [self.base_port + i for i in range(len(SERVICES))] + [self.web_port]
        extra = [self.base_port + 100 * n + i for n in range(1, self.instances) for i in range(len(SERVICES))]
        ports_all = ports + extra
        busy = [str(port) for port in ports_all if not port_is_free(port)]
        if busy:
            raise StackError(f"port {', '.join(busy)} already in use (another `baotuan run`? see `baotuan status`, "
                             f"or choose --base-port)")
        with self.err.status("starting Kafka …"):
            self.broker = open_broker(self.var)
        self.done(self.broker.note)
        created = ensure_topics(self.broker.bootstrap, **self.broker.kafka_config)
        self.done(f"topics: {len(TOPICS)} ready" + (f" ({len(created)} created now)" if created else ""))
        note = guard_projections(self.var, self.broker.bootstrap, **self.broker.kafka_config)
        if note:
            self.err.print(f"[yellow]![/] {escape(note)}")
        issued = ensure_demo_tokens(demo_principals(scenario), tokens_file=self.tokens_file, demo_file=self.demo_file)
        self.done(f"demo tokens in {_rel(self.demo_file)} (mode 600; {issued} issued now)")
        if self.instances == 1:
            self.services = [ServiceProcess(name, port, self.var / "log" / f"{name}.log")
                             for name, port in zip(SERVICES, ports[:len(SERVICES)], strict=True)]
        else:  # instance n of a service on base port + 100 (n - 1) + its place: ledger 8001, 8101, 8201 …
            self.services = [ServiceProcess(name, self.base_port + 100 * n + i,
                                            self.var / "log" / f"{name}-{n + 1}.log", instance_id=str(n + 1))
                             for n in range(self.instances) for i, name in enumerate(SERVICES)]
        env = service_env(self.broker.bootstrap, self.var, self.tokens_file)
        # The web page and the services' calls to each other use one instance of each (any would do: an instance
        # forwards a write for another's partitions to it).
        env.update({f"BAOTUAN_{svc.name.upper()}_URL": svc.url for svc in reversed(self.services)})
        # The web page for accountants, operators and boards, in front of the services.
        self.services.append(ServiceProcess("web", self.web_port, self.var / "log" / "web.log"))
        with self.err.status("starting ledger, rentals, dividends, members and the web page …"):
            took = start_services(self.services, env)
        self.done("healthy: " + ", ".join(f"{s.label} :{s.port} ({took[s.label]:.1f}s)" for s in self.services))

    def load(self, scenario: Scenario) -> None:
        """Import the scenario through the APIs and print the payout tables."""
        assert self.broker is not None
        admin = demo_token("admin", self.demo_file)
        if admin is None:
            raise StackError(f"no admin token in {_rel(self.demo_file)}")
        first = {s.name: s.url for s in reversed(self.services) if s.name != "web"}
        client = ApiClient(Endpoints(**first), admin)
        before = _log_ends(self.broker)
        try:
            load_and_report(scenario, client, json_output=False, out=self.out, err=self.err,
                            show_progress=self.err.file.isatty())
        finally:
            client.close()
        grown = count_records(self.broker.bootstrap, before, _log_ends(self.broker), **self.broker.kafka_config)
        self.done(f"the event log grew by {grown} records"
                  + (" (the scenario was already imported: nothing new)" if grown == 0 else ""))

    def ensure_admin_account(self, name: str = "admin") -> None:
        """The first admin account (people sign in to the web page with accounts): made once, through the
        ledger's API with the admin demo token; its one-time password is printed now and kept in the demo file."""
        token = demo_token("admin", self.demo_file)
        ledger = next(s.url for s in self.services if s.name == "ledger")
        if token is None:
            raise StackError(f"no admin token in {_rel(self.demo_file)}")
        http = requests.Session()
        http.trust_env = False
        auth = {"Authorization": f"Bearer {token}"}
        try:
            found = http.get(f"{ledger}/v1/users/{name}", headers=auth, timeout=30)
            if found.status_code == 404:
                made = http.post(f"{ledger}/v1/users", headers=auth, timeout=30,
                                 json={"name": name, "display_name": "管理员", "role": "admin", "scope": []})
                if made.status_code != 201:
                    raise StackError(f"could not create the admin account: {made.status_code} {made.text[:300]}")
                password = made.json()["one_time_password"]
                store_demo_password(name, password, self.demo_file)
                self.done(f"admin account {name!r} created (one-time password also in {_rel(self.demo_file)})")
                self.admin_sign_in = (f"sign in as [bold]{name}[/] with the one-time password [bold]{password}[/] "
                                      "(then choose your own)")
            elif found.status_code == 200:
                stored = demo_password(name, self.demo_file)
                if found.json()["must_change_password"] and stored is not None:
                    self.admin_sign_in = (f"sign in as [bold]{name}[/] with the one-time password in "
                                          f"{_rel(self.demo_file)} (then choose your own)")
                else:
                    self.admin_sign_in = (f"sign in as [bold]{name}[/] with your password (forgotten? "
                                          f"baotuan accounts reset-password {name})")
            else:
                raise StackError(f"could not look up the admin account: {found.status_code} {found.text[:300]}")
        finally:
            http.close()

    def print_where(self, seconds: float) -> None:
        self.out.print("[bold]Services[/]")
        for svc in self.services:
            if svc.name == "web":
                self.out.print(f"  {'web page':<10} {svc.url}/   {self.admin_sign_in}")
                continue
            self.out.print(f"  {svc.label:<10} {svc.url}   API docs {svc.url}/docs   OpenAPI {svc.url}/openapi.json")
        self.out.print("People sign in with accounts: the admin creates them on the web page (账号管理) or with "
                       "baotuan accounts add")
        self.out.print(f"Logs in {_rel(self.var / 'log')}/; demo bearer tokens for scripts (admin, auditor, "
                       f"accountant-<village>, operator-<project>, board-<project>, board-<village with members>) "
                       f"in {_rel(self.demo_file)}")
        self.out.print(f"Signing keys in {_rel(self.var / 'keys')}/; for an auditor to pin: baotuan keys export "
                       "--output DIR, then baotuan export --format jsonl -o a.jsonl and "
                       "baotuan audit --archive a.jsonl --trusted-keys DIR")
        self.out.print(f"Health: baotuan status.  Ready in {seconds:.1f}s.")

    def wait(self) -> None:
        """Until a signal arrives (raised as Stop); a service that dies ends the run."""
        self.out.print("[bold]Press Ctrl-C to stop.[/]")
        while True:
            for svc in self.services:
                code = svc.exited()
                if code is not None:
                    raise StackError(f"{svc.label} exited with status {code}; the end of its log:\n{svc.log_tail()}")
            time.sleep(0.5)

    def tear_down(self) -> None:
        """Stop the services, and the broker if this run started it."""
        stop_services(self.services)
        if self.broker is not None and self.broker.started is not None:
            self.broker.stop()
            self.err.print("stopped the services and the Kafka broker this run started")
        elif self.services:
            self.err.print("stopped the services" + (" (the broker was not started by this run: it stays up)"
                                                     if self.broker is not None else ""))

    def done(self, what: str) -> None:
        self.err.print(f"[green]✓[/] {escape(what)}")


def _log_ends(broker: Broker) -> dict[tuple[str, int], int]:
    """Where baotuan's topics end now, the checkpoints left out (a service signs one whenever its timer says,
    import or not): what an import adds is counted between two of these."""
    return end_offsets(broker.bootstrap, [t for t in TOPICS if t != CHECKPOINTS], **broker.kafka_config)


@click.command("run")
@click.option("--scenario", "scenario_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_SCENARIO, show_default=True, help="the scenario to import")
@click.option("--no-wait", is_flag=True, help="stop everything and exit once the tables are printed")
@click.option("--base-port", type=int, default=8001, show_default=True,
              help="ledger on this port, rentals on +1, dividends on +2, members on +3, the web page on -1")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="BAOTUAN_DATA_DIR",
              default=None, help="projections, tokens, logs and the local broker's log  [default: var/]")
@click.option("--instances", type=click.IntRange(1, 8), default=1, show_default=True,
              help="instances of each service (docs/scaling.md): they share the partitions; instance n of a "
                   "service listens on its port + 100 (n - 1)")
def run_command(scenario_file: Path, no_wait: bool, base_port: int, data_dir: Path | None, instances: int) -> None:
    """Run the whole system on this machine and load the Binhai demo scenario."""
    began = time.monotonic()
    run = LocalRun((data_dir or default_data_dir()).resolve(), base_port, console_for(sys.stdout),
                   console_for(sys.stderr), instances=instances)
    try:
        scenario = read_scenario(scenario_file)
    except ScenarioError as exc:
        run.err.print(f"[red]✗ {escape(str(scenario_file))}: {escape(str(exc))}[/]")
        sys.exit(EXIT_BAD_FILE)
    previous = {s: signal.signal(s, _stop_on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        run.bring_up(scenario)
        run.ensure_admin_account()
        run.load(scenario)
        run.print_where(time.monotonic() - began)
        if not no_wait:
            run.wait()
    except (Stop, KeyboardInterrupt):
        run.err.print("\nstopping …")
    except (StackError, BrokerError, BrokerUnavailable) as exc:
        run.err.print(f"[red]✗ {escape(str(exc))}[/]")
        status = 1
    except LoadError as exc:
        run.err.print(f"[red]✗ loading {escape(_rel(scenario_file))}: {escape(str(exc))}[/]\n"
                      f"{escape(after_refusal(scenario, exc))}")
        status = EXIT_REFUSED
    finally:
        # No second signal may interrupt the clean-up half-way.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        run.tear_down()
        for s, handler in previous.items():
            signal.signal(s, handler)
    sys.exit(status)
