"""``baotuan accounts``: the first admin of a real deployment, from the server's shell."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from conftest import Server

from services.accounts.cli import accounts_group
from services.ledger.app import create_app as ledger_app
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

CODE = re.compile(r"one-time password:? ([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})")


@pytest.fixture
def ledger(memory_log: InMemoryLog, memory_settings: Settings) -> Iterator[Server]:
    server = Server(ledger_app(memory_settings, log=memory_log))
    try:
        yield server
    finally:
        server.stop()


def invoke(ledger: Server, tokens_file: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(accounts_group, [*args, "--ledger-url", ledger.url, "--tokens-file", str(tokens_file)],
                                env={"BAOTUAN_TOKEN": ""})
    return result.exit_code, result.output


def test_the_first_admin_is_made_with_a_one_time_password_and_no_token_is_left_behind(
        ledger: Server, memory_settings: Settings) -> None:
    assert memory_settings.tokens_file is not None
    code, output = invoke(ledger, memory_settings.tokens_file, "add", "--name", "admin", "--role", "admin",
                          "--display-name", "镇管理员")
    assert code == 0, output
    found = CODE.search(output)
    assert found is not None, output
    # The short-lived admin token the command used is gone from the token file again.
    assert json.loads(memory_settings.tokens_file.read_text())["tokens"] == []
    signed = requests.post(f"{ledger.url}/v1/sessions", json={"name": "admin", "password": found.group(1)}, timeout=10)
    assert signed.status_code == 201 and signed.json()["must_change_password"] is True

    code, output = invoke(ledger, memory_settings.tokens_file, "list")
    assert code == 0 and output.startswith("admin ") and " active " in output
    code, output = invoke(ledger, memory_settings.tokens_file, "reset-password", "admin")
    again = CODE.search(output)
    assert code == 0 and again is not None and again.group(1) != found.group(1)


def test_a_refusal_is_shown_with_the_field_and_a_non_zero_exit(ledger: Server, memory_settings: Settings) -> None:
    assert memory_settings.tokens_file is not None
    code, output = invoke(ledger, memory_settings.tokens_file, "add", "--name", "kuaiji", "--role", "accountant",
                          "--scope", "nowhere")
    assert code == 1
    assert "422" in output and "(scope.0)" in output
    code, output = invoke(ledger, memory_settings.tokens_file, "reset-password", "nobody")
    assert code == 1 and "404" in output
