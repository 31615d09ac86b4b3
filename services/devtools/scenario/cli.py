"""``baotuan load FILE [--json]`` and ``baotuan status``.

``load`` checks the whole file first and sends nothing if any record is bad; then it sends
each record as one API call (a progress bar on a terminal) and prints the payout table of
every declared distribution, or with ``--json`` the document of DESIGN §10.
Exit status: 0 done, 1 a service refused a record or could not be reached, 2 a bad file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.devtools.scenario.loader import (
    DEFAULT_URLS,
    ApiClient,
    Call,
    Endpoints,
    ImportResult,
    LoadError,
    as_json,
    import_scenario,
    payout_views,
    plan,
)
from services.devtools.scenario.schemas import Scenario, ScenarioError, read_scenario
from services.devtools.scenario.table import print_payout_tables

EXIT_REFUSED = 1
EXIT_BAD_FILE = 2


def console_for(stream: Any) -> Console:
    """A console on ``stream``: the terminal's width there, wide enough for the tables elsewhere."""
    return Console(file=stream, width=None if stream.isatty() else 140, soft_wrap=False)


def run_import(scenario: Scenario, client: ApiClient, *, show_progress: bool, err: Console) -> ImportResult:
    """Import with a progress bar (on a terminal) or one line per record kind (elsewhere)."""
    if show_progress:
        columns = (TextColumn("[bold]importing[/] {task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task("", total=len(scenario))

            def advance(done: int, total: int, call: Call) -> None:
                bar.update(task, completed=done, description=call.record.split("[")[0])

            return import_scenario(scenario, client, advance)
    counts: dict[str, int] = {}

    def log_section(done: int, total: int, call: Call) -> None:
        section = call.record.split("[")[0]
        counts[section] = counts.get(section, 0) + 1
        if counts[section] == len(scenario.sections[section]):
            err.print(f"imported {counts[section]:>4} {section}  ({done}/{total})")

    return import_scenario(scenario, client, log_section)


def resolve_token(token: str | None) -> str:
    if token:
        return token
    from services.devtools.scenario.tokens import demo_token, demo_tokens_file

    found = demo_token("admin")
    if found is None:
        raise click.UsageError(f"no token: pass --token, set BAOTUAN_TOKEN, or run `baotuan run` once "
                               f"(it writes an admin token to {demo_tokens_file()})")
    return found


def after_refusal(scenario: Scenario, exc: LoadError) -> str:
    """What a stopped import left behind."""
    first = next(iter(plan(scenario)), None)
    if first is None or first.record == exc.record:
        return "nothing was imported"
    return (f"the records before {exc.record} are imported (a re-run skips them); {exc.record} and the ones "
            f"after it are not")


def load_and_report(scenario: Scenario, client: ApiClient, *, json_output: bool, out: Console, err: Console,
                    show_progress: bool) -> ImportResult:
    """Import ``scenario`` and print the result: payout tables, or the JSON document."""
    result = run_import(scenario, client, show_progress=show_progress, err=err)
    if json_output:
        out.file.write(json.dumps(as_json(result), ensure_ascii=False, indent=2) + "\n")
        out.file.flush()
        return result
    err.print(f"[green]✓[/] {result.calls} records sent in {result.seconds:.1f}s "
              f"({len(result.distributions)} distributions); a repeat of the same file changes nothing")
    out.print()
    print_payout_tables(out, payout_views(scenario, result, client))
    return result


@click.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "json_output", is_flag=True, help="print the declared distributions as JSON (DESIGN §10)")
@click.option("--token", envvar="BAOTUAN_TOKEN", help="admin bearer token (default: var/demo-tokens.json's admin)")
@click.option("--ledger-url", envvar="BAOTUAN_LEDGER_URL", default=DEFAULT_URLS["ledger"], show_default=True)
@click.option("--rentals-url", envvar="BAOTUAN_RENTALS_URL", default=DEFAULT_URLS["rentals"], show_default=True)
@click.option("--dividends-url", envvar="BAOTUAN_DIVIDENDS_URL", default=DEFAULT_URLS["dividends"], show_default=True)
@click.option("--members-url", envvar="BAOTUAN_MEMBERS_URL", default=DEFAULT_URLS["members"], show_default=True)
def load_command(file: Path, json_output: bool, token: str | None, ledger_url: str, rentals_url: str,
                 dividends_url: str, members_url: str) -> None:
    """Import a scenario FILE (collectives, projects, investments, leases, rent, ...) through the APIs.

    The whole file is checked first: if any record is bad, nothing is sent and the error
    names the record and field (``investments[3].area_mu``). Each record is one request
    with an Idempotency-Key derived from its content, so loading a file again changes
    nothing and declares no distribution twice.
    """
    err = console_for(sys.stderr)
    try:
        scenario = read_scenario(file)
    except ScenarioError as exc:
        err.print(f"[red]✗ {escape(str(file))}: {escape(str(exc))}[/]\nnothing was imported")
        sys.exit(EXIT_BAD_FILE)
    client = ApiClient(Endpoints(ledger_url, rentals_url, dividends_url, members_url), resolve_token(token))
    try:
        load_and_report(scenario, client, json_output=json_output, out=console_for(sys.stdout), err=err,
                        show_progress=sys.stdout.isatty() and sys.stderr.isatty())
    except LoadError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]\n{escape(after_refusal(scenario, exc))}")
        sys.exit(EXIT_REFUSED)
    finally:
        client.close()


def health_of(url: str) -> dict[str, Any]:
    """A service's /health document, or a stand-in saying why it did not answer."""
    try:
        response = requests.get(url.rstrip("/") + "/health", timeout=3)
        body: dict[str, Any] = response.json()
        return body
    except requests.RequestException as exc:
        return {"status": "down", "broker": "?", "error": type(exc).__name__}
    except ValueError:
        return {"status": "down", "broker": "?", "error": "not a baotuan service"}


@click.command("status")
@click.option("--ledger-url", envvar="BAOTUAN_LEDGER_URL", default=DEFAULT_URLS["ledger"], show_default=True)
@click.option("--rentals-url", envvar="BAOTUAN_RENTALS_URL", default=DEFAULT_URLS["rentals"], show_default=True)
@click.option("--dividends-url", envvar="BAOTUAN_DIVIDENDS_URL", default=DEFAULT_URLS["dividends"], show_default=True)
@click.option("--members-url", envvar="BAOTUAN_MEMBERS_URL", default=DEFAULT_URLS["members"], show_default=True)
@click.option("--json", "json_output", is_flag=True, help="print the health documents as JSON")
def status_command(ledger_url: str, rentals_url: str, dividends_url: str, members_url: str,
                   json_output: bool) -> None:
    """Summarise each service's /health: up, broker reachable, consumer lag, dead letters. Exit 1 unless all ok."""
    urls = {"ledger": ledger_url, "rentals": rentals_url, "dividends": dividends_url, "members": members_url}
    healths = {name: health_of(url) for name, url in urls.items()}
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    from services.devtools.broker import broker_answers
    from services.runtime.config import Settings

    # With BAOTUAN_KAFKA_SASL_* set, the broker is asked as that user (as the services log in).
    broker_up = broker_answers(bootstrap, **Settings.from_env().kafka_client_config())
    if json_output:
        click.echo(json.dumps({"broker": {"bootstrap": bootstrap, "reachable": broker_up}, "services": healths},
                              ensure_ascii=False, indent=2))
    else:
        out = console_for(sys.stdout)
        table = Table(title=f"Kafka {bootstrap}: " + ("[green]reachable[/]" if broker_up else "[red]not reachable[/]"),
                      title_justify="left")
        for column in ("service", "url", "status", "broker", "consumer lag", "dead letters", "API docs"):
            table.add_column(column)
        for name, h in healths.items():
            lag = h.get("consumer_lag") or {}
            lag_text = ", ".join(f"{topic.removeprefix('baotuan.')} {n}" for topic, n in sorted(lag.items()) if n)
            status = str(h.get("status", "?"))
            colour = "green" if status == "ok" else "red"
            table.add_row(name, urls[name], f"[{colour}]{status}[/]", str(h.get("broker", "?")),
                          lag_text or ("0" if lag else "–"), str(h.get("dead_letters", "–")),
                          urls[name].rstrip("/") + "/docs" if status != "down" else "–")
        out.print(table)
    if not broker_up or any(h.get("status") != "ok" for h in healths.values()):
        sys.exit(1)
