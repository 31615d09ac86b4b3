"""Demo bearer tokens for a local run: one per role of a scenario, so a script can try the API at once; and
the first admin account's one-time password.

``baotuan run`` issues them (for the scenario it loads); ``baotuan load`` and ``baotuan status``
use the admin's when no token is given.

The services only ever see the SHA-256 of a token (``var/tokens.json``). The plaintext
tokens of the demo principals are kept in ``var/demo-tokens.json`` (mode 0600, under the
git-ignored ``var/``), reused by later runs as long as they still match, and never printed.
The first admin account's one-time password is printed once, when ``baotuan run`` creates the
account, and kept in the same file (``accounts``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.devtools.scenario.schemas import Scenario
from services.runtime.auth import add_token, hash_token
from services.runtime.config import PROJECT_ROOT


def data_dir() -> Path:
    """Where a local run keeps its state: ``BAOTUAN_DATA_DIR``, by default ``var/`` of the project."""
    return Path(os.environ.get("BAOTUAN_DATA_DIR") or PROJECT_ROOT / "var")


def demo_tokens_file() -> Path:
    return data_dir() / "demo-tokens.json"


@dataclass(frozen=True)
class DemoPrincipal:
    name: str
    role: str
    scope: tuple[str, ...] = ()


def demo_principals(scenario: Scenario) -> list[DemoPrincipal]:
    """An admin (the loader), an auditor, an accountant per village, an operator and a board per project, and the
    board (理事会) of each village with members (a charter in the file: it approves the village's plans)."""
    principals = [DemoPrincipal("admin", "admin"), DemoPrincipal("auditor", "auditor")]
    for c in scenario.sections["collectives"]:
        principals.append(DemoPrincipal(f"accountant-{c['collective_id']}", "accountant", (c["collective_id"],)))
    for p in scenario.sections["projects"]:
        principals.append(DemoPrincipal(f"operator-{p['project_id']}", "operator", (p["project_id"],)))
        principals.append(DemoPrincipal(f"board-{p['project_id']}", "board", (p["project_id"],)))
    for c in scenario.sections["charters"]:
        principals.append(DemoPrincipal(f"board-{c['collective_id']}", "board", (c["collective_id"],)))
    return principals


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ensure_demo_tokens(principals: list[DemoPrincipal], *, tokens_file: Path, demo_file: Path) -> int:
    """Make sure every demo principal has a working token; returns how many were (re)issued."""
    known = {t.get("name"): t for t in _read_json(demo_file).get("tokens", []) if isinstance(t, dict)}
    stored = {t.get("name"): t for t in _read_json(tokens_file).get("tokens", []) if isinstance(t, dict)}
    issued = 0
    out = []
    for p in principals:
        mine = known.get(p.name)
        theirs = stored.get(p.name)
        still_good = (mine is not None and theirs is not None and isinstance(mine.get("token"), str)
                      and theirs.get("sha256") == hash_token(mine["token"]) and theirs.get("role") == p.role
                      and sorted(theirs.get("scope", [])) == sorted(p.scope))
        token = mine["token"] if still_good and mine is not None else add_token(
            tokens_file, name=p.name, role=p.role, scope=p.scope)
        issued += 0 if still_good else 1
        out.append({"name": p.name, "role": p.role, "scope": list(p.scope), "token": token})
    note = ("Demo bearer tokens of this machine's `baotuan run` (their hashes are in tokens.json). "
            "Use as: Authorization: Bearer <token>. Keep this file private.")
    kept = {k: v for k, v in _read_json(demo_file).items() if k not in ("note", "tokens")}  # the admin's password
    _write_private(demo_file, json.dumps({"note": note, "tokens": out, **kept}, ensure_ascii=False, indent=2) + "\n")
    return issued


def store_demo_password(name: str, password: str, demo_file: Path) -> None:
    """Keep an account's one-time password (the first admin's) beside the demo tokens (mode 600)."""
    data = _read_json(demo_file)
    accounts = [a for a in data.get("accounts", []) if isinstance(a, dict) and a.get("name") != name]
    accounts.append({"name": name, "one_time_password": password,
                     "note": "one-time: the web page asks for a password of your own at the first sign-in"})
    data["accounts"] = accounts
    _write_private(demo_file, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def demo_password(name: str, demo_file: Path | None = None) -> str | None:
    """The one-time password of the account ``name`` kept by ``store_demo_password``, if any."""
    for item in _read_json(demo_file or demo_tokens_file()).get("accounts", []):
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get("one_time_password"), str):
            return str(item["one_time_password"])
    return None


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def demo_token(name: str = "admin", demo_file: Path | None = None) -> str | None:
    """The plaintext demo token of ``name`` from ``var/demo-tokens.json``, if there is one."""
    for item in _read_json(demo_file or demo_tokens_file()).get("tokens", []):
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get("token"), str):
            return str(item["token"])
    return None
