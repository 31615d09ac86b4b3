"""``baotuan run``: the whole system on one machine (what ``make run`` does).

Starts (or reuses) the local Kafka broker, creates the topics and the demo tokens, starts
the three services as separate processes, waits until they are healthy, imports the
scenario through their public APIs and prints each distribution's payout table and the
services' URLs. Then it stays up until Ctrl-C (SIGINT) or SIGTERM, and stops what it
started: the services, and the broker only if this run started it. ``--no-wait`` exits
right after printing (for CI).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

from services.contracts.topics import TOPICS
from services.launcher.stack import (
    SERVICES,
    Broker,
    ServiceProcess,
    StackError,
    guard_projections,
    open_broker,
    service_env,
    start_services,
    stop_services,
)
from services.launcher.tokens import DEMO_TOKENS_FILE, TOKENS_FILE, demo_principals, demo_token, ensure_demo_tokens
from services.runtime.kafka_io import BrokerUnavailable, ensure_topics
from services.runtime.local_kafka import PROJECT_ROOT, BrokerError
from services.scenario.cli import EXIT_BAD_FILE, EXIT_REFUSED, console_for, load_and_report
from services.scenario.loader import ApiClient, Endpoints, LoadError
from services.scenario.schemas import ScenarioError, read_scenario

DEFAULT_SCENARIO = PROJECT_ROOT / "data" / "binhai_scenario.json"
VAR = PROJECT_ROOT / "var"


class Stop(Exception):
    """SIGTERM (or SIGINT) asked the run to stop."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.command("run")
@click.option("--scenario", "scenario_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_SCENARIO, show_default=True, help="the scenario to import")
@click.option("--no-wait", is_flag=True, help="stop everything and exit once the tables are printed")
@click.option("--base-port", type=int, default=8001, show_default=True,
              help="ledger on this port, rentals on +1, dividends on +2")
def run_command(scenario_file: Path, no_wait: bool, base_port: int) -> None:
    """Run the whole system on this machine and load the Binhai demo scenario."""
    began = time.monotonic()
    out = console_for(sys.stdout)
    err = console_for(sys.stderr)
    try:
        scenario = read_scenario(scenario_file)
    except ScenarioError as exc:
        err.print(f"[red]✗ {scenario_file}: {exc}[/]")
        sys.exit(EXIT_BAD_FILE)
    previous = {s: signal.signal(s, _stop_on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    broker: Broker | None = None
    services: list[ServiceProcess] = []
    status = 0
    try:
        with err.status("starting Kafka …"):
            broker = open_broker()
        err.print(f"[green]✓[/] {broker.note}")
        created = ensure_topics(broker.bootstrap)
        err.print(f"[green]✓[/] topics: {len(TOPICS)} ready" + (f" ({len(created)} created now)" if created else ""))
        note = guard_projections(VAR, broker.bootstrap)
        if note:
            err.print(f"[yellow]![/] {note}")
        issued = ensure_demo_tokens(demo_principals(scenario))
        err.print(f"[green]✓[/] demo tokens in {_rel(DEMO_TOKENS_FILE)} (mode 600; {issued} issued now)")
        services = [ServiceProcess(name, base_port + i, VAR / "log" / f"{name}.log") for i, name in enumerate(SERVICES)]
        with err.status("starting ledger, rentals and dividends …"):
            took = start_services(services, service_env(broker.bootstrap, VAR, TOKENS_FILE))
        err.print("[green]✓[/] healthy: " + ", ".join(f"{s.name} :{s.port} ({took[s.name]:.1f}s)" for s in services))
        endpoints = Endpoints(*(s.url for s in services))
        admin = demo_token("admin")
        if admin is None:
            raise StackError(f"no admin token in {_rel(DEMO_TOKENS_FILE)}")
        client = ApiClient(endpoints, admin)
        try:
            load_and_report(scenario, client, json_output=False, out=out, err=err,
                            show_progress=sys.stderr.isatty())
        finally:
            client.close()
        _print_where(out, services, time.monotonic() - began)
        if no_wait:
            return
        out.print("[bold]Press Ctrl-C to stop.[/]")
        _wait(services)
    except Stop:
        err.print("\nstopping …")
    except KeyboardInterrupt:
        err.print("\nstopping …")
    except (StackError, BrokerError, BrokerUnavailable) as exc:
        err.print(f"[red]✗ {exc}[/]")
        status = 1
    except LoadError as exc:
        err.print(f"[red]✗ loading {_rel(scenario_file)}: {exc}[/]")
        status = EXIT_REFUSED
    finally:
        # No second signal may interrupt the clean-up half-way.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        stop_services(services)
        if broker is not None and broker.started is not None:
            broker.stop()
            err.print("stopped the services and the Kafka broker this run started")
        elif services:
            err.print("stopped the services" + (" (the broker was already running: it stays up)"
                                                if broker is not None else ""))
        for s, handler in previous.items():
            signal.signal(s, handler)
    sys.exit(status)


def _print_where(out: Console, services: list[ServiceProcess], seconds: float) -> None:
    out.print("[bold]Services[/]")
    for svc in services:
        out.print(f"  {svc.name:<10} {svc.url}   API docs {svc.url}/docs   OpenAPI {svc.url}/openapi.json")
    out.print(f"Logs in {_rel(VAR / 'log')}/; demo bearer tokens (admin, auditor, accountant-<village>, "
              f"operator-<project>, board-<project>) in {_rel(DEMO_TOKENS_FILE)}")
    out.print(f"Health: baotuan status.  Ready in {seconds:.1f}s.")


def _wait(services: list[ServiceProcess]) -> None:
    """Until a signal arrives (raised as Stop); a service that dies ends the run."""
    while True:
        for svc in services:
            code = svc.exited()
            if code is not None:
                raise StackError(f"{svc.name} exited with status {code}; the end of its log:\n{svc.log_tail()}")
        time.sleep(0.5)
