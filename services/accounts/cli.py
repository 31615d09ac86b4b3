"""``baotuan accounts``: people's accounts from the server's shell (the first admin of a real deployment).

The commands call the ledger's accounts API as an admin: with the bearer token in ``BAOTUAN_TOKEN``
if set, else with a short-lived admin token added to the token file (``BAOTUAN_TOKENS_FILE``, as
``baotuan tokens add`` does) and taken out again when the command ends. Whoever may write the token
file is an admin already; nothing else is needed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import requests

from services.contracts.events import ACCOUNT_ROLES
from services.runtime.auth import add_token, remove_token
from services.runtime.config import PROJECT_ROOT


@contextlib.contextmanager
def admin_token(tokens_file: Path) -> Iterator[str]:
    """``BAOTUAN_TOKEN``, or an admin token that exists in the token file only while this runs."""
    given = os.environ.get("BAOTUAN_TOKEN")
    if given:
        yield given
        return
    name = f"baotuan-accounts-cli-{secrets.token_hex(4)}"
    token = add_token(tokens_file, name=name, role="admin")
    try:
        yield token
    finally:
        remove_token(tokens_file, name)


def call(ledger_url: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call of the ledger's accounts API; a refusal is a ClickException naming the field."""
    session = requests.Session()
    session.trust_env = False
    try:
        answer = session.request(method, f"{ledger_url.rstrip('/')}{path}", json=body, timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})
    except requests.RequestException as exc:
        raise click.ClickException(f"the ledger at {ledger_url} is not reachable: {exc}") from None
    finally:
        session.close()
    payload: dict[str, Any] = answer.json() if answer.content else {}
    if answer.status_code >= 400:
        error = payload.get("error", {})
        where = f" ({error['field']})" if error.get("field") else ""
        raise click.ClickException(f"{answer.status_code} {error.get('message', answer.reason)}{where}")
    return payload


_LEDGER = click.option("--ledger-url", envvar="BAOTUAN_LEDGER_URL", default="http://127.0.0.1:8001", show_default=True,
                       help="the ledger service, which serves the accounts")
_TOKENS = click.option("--tokens-file", type=click.Path(path_type=Path), envvar="BAOTUAN_TOKENS_FILE",
                       default=PROJECT_ROOT / "var" / "tokens.json", show_default=True,
                       help="where a short-lived admin token is put while the command runs (unless BAOTUAN_TOKEN)")


@click.group("accounts")
def accounts_group() -> None:
    """People's accounts (sign in at the web page; served by the ledger): create one, reset a password."""


@accounts_group.command("add")
@click.option("--name", required=True, help="the account's name: lowercase letters, digits, hyphens")
@click.option("--display-name", default=None, help="the person's name as shown (default: the account's name)")
@click.option("--role", required=True, type=click.Choice(ACCOUNT_ROLES))
@click.option("--scope", multiple=True, help="a collective id (accountant) or project id (operator, board); repeat")
@_LEDGER
@_TOKENS
def add_command(name: str, display_name: str | None, role: str, scope: tuple[str, ...], ledger_url: str,
                tokens_file: Path) -> None:
    """Create an account and print its one-time password, once: the person must change it at their first
    sign-in (on a real deployment, the first admin: ``baotuan accounts add --name admin --role admin``)."""
    with admin_token(tokens_file) as token:
        made = call(ledger_url, token, "POST", "/v1/users",
                    {"name": name, "display_name": display_name or name, "role": role, "scope": list(scope)})
    click.echo(f"account {made['name']} ({made['role']}) created; one-time password: {made['one_time_password']}")
    click.echo("(shown only now: hand it over; it must be changed at the first sign-in)", err=True)


@accounts_group.command("reset-password")
@click.argument("name")
@_LEDGER
@_TOKENS
def reset_command(name: str, ledger_url: str, tokens_file: Path) -> None:
    """Give NAME a new one-time password (printed once; its sessions end; it must be changed at sign-in)."""
    with admin_token(tokens_file) as token:
        done = call(ledger_url, token, "POST", f"/v1/users/{name}/password-reset")
    click.echo(f"account {done['name']}: one-time password {done['one_time_password']}")


@accounts_group.command("list")
@_LEDGER
@_TOKENS
def list_command(ledger_url: str, tokens_file: Path) -> None:
    """Every account: name, role, scope, status, last sign-in."""
    with admin_token(tokens_file) as token:
        items = call(ledger_url, token, "GET", "/v1/users")["items"]
    for item in items:
        scope = ",".join(item["scope"]) or "-"
        click.echo(f"{item['name']:<28} {item['role']:<10} {item['status']:<8} {scope:<30} "
                   f"{item.get('last_sign_in') or 'never signed in'}")
    if not items:
        click.echo("no accounts yet", err=True)


