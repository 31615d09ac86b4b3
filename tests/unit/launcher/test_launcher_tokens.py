"""Demo tokens of `baotuan run`: stored hashed for the services, kept privately in plaintext, reused."""

from __future__ import annotations

import json
from pathlib import Path

from services.devtools.scenario.schemas import read_scenario
from services.devtools.scenario.tokens import (
    demo_password,
    demo_principals,
    demo_token,
    ensure_demo_tokens,
    store_demo_password,
)
from services.runtime.auth import TokenRegistry
from services.runtime.config import PROJECT_ROOT

BINHAI = PROJECT_ROOT / "data" / "binhai_scenario.json"


def test_every_village_project_and_role_gets_a_demo_principal() -> None:
    principals = {p.name: p for p in demo_principals(read_scenario(BINHAI))}
    assert len(principals) == 2 + 19 + 2 + 2 + 1  # …and the board of the one village with members
    assert principals["admin"].role == "admin"
    assert principals["auditor"].role == "auditor"
    assert principals["accountant-jinqing-lianmeng"].scope == ("jinqing-lianmeng",)
    assert principals["board-binhai-park"].scope == ("binhai-park",)
    assert principals["board-jinqing-lianmeng"].scope == ("jinqing-lianmeng",)
    assert principals["operator-jinqing-market"].role == "operator"


def test_tokens_are_stored_hashed_kept_private_and_reused_by_the_next_run(tmp_path: Path) -> None:
    principals = demo_principals(read_scenario(BINHAI))
    tokens, demo = tmp_path / "tokens.json", tmp_path / "demo-tokens.json"
    assert ensure_demo_tokens(principals, tokens_file=tokens, demo_file=demo) == 26
    admin = demo_token("admin", demo)
    assert admin is not None and admin not in tokens.read_text()
    assert demo.stat().st_mode & 0o777 == 0o600
    assert tokens.stat().st_mode & 0o777 == 0o600
    principal = TokenRegistry.load(tokens).authenticate(f"Bearer {demo_token('accountant-jinqing-v03', demo)}")
    assert (principal.role, principal.scope) == ("accountant", frozenset({"jinqing-v03"}))

    assert ensure_demo_tokens(principals, tokens_file=tokens, demo_file=demo) == 0
    assert demo_token("admin", demo) == admin


def test_a_token_that_no_longer_matches_is_issued_again(tmp_path: Path) -> None:
    principals = demo_principals(read_scenario(BINHAI))
    tokens, demo = tmp_path / "tokens.json", tmp_path / "demo-tokens.json"
    ensure_demo_tokens(principals, tokens_file=tokens, demo_file=demo)
    stored = json.loads(tokens.read_text())
    stored["tokens"] = [t for t in stored["tokens"] if t["name"] != "auditor"]
    tokens.write_text(json.dumps(stored))
    old = demo_token("auditor", demo)
    assert ensure_demo_tokens(principals, tokens_file=tokens, demo_file=demo) == 1
    new = demo_token("auditor", demo)
    assert new != old
    assert TokenRegistry.load(tokens).authenticate(f"Bearer {new}").role == "auditor"


def test_the_first_admins_one_time_password_is_kept_privately_beside_the_tokens_and_survives_a_run(
        tmp_path: Path) -> None:
    principals = demo_principals(read_scenario(BINHAI))
    tokens, demo = tmp_path / "tokens.json", tmp_path / "demo-tokens.json"
    ensure_demo_tokens(principals, tokens_file=tokens, demo_file=demo)
    assert demo_password("admin", demo) is None
    store_demo_password("admin", "k7mq-3xte-9fhp", demo)
    assert demo.stat().st_mode & 0o777 == 0o600
    ensure_demo_tokens(principals, tokens_file=tokens, demo_file=demo)  # the next `baotuan run`
    assert demo_password("admin", demo) == "k7mq-3xte-9fhp"
    assert demo_token("admin", demo) is not None
    store_demo_password("admin", "2nd0-time-code", demo)
    assert [a["name"] for a in json.loads(demo.read_text())["accounts"]] == ["admin"]
    assert demo_password("admin", demo) == "2nd0-time-code"
