"""Bearer tokens and the roles of DESIGN §8. Tokens are stored only as SHA-256 hashes.

The token file is JSON: ``{"tokens": [{"name", "sha256", "role", "scope": [...]}]}``.
``baotuan tokens add`` appends to it and prints the token once; nothing else ever sees it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("accountant", "operator", "board", "auditor", "admin")


class Unauthenticated(Exception):
    """No token, or one that matches no principal (HTTP 401)."""


class Forbidden(Exception):
    """A valid token acting outside its role or scope (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    scope: frozenset[str] = field(default_factory=frozenset)
    #: "token" (a bearer token of the token file: a machine) or "account" (a person, by a session or by one
    #: of the account's API tokens; services.runtime.accounts).
    kind: str = "token"
    display_name: str | None = None
    #: An account's session: the SHA-256 of its secret; whether its password must be changed first.
    session: str | None = None
    must_change_password: bool = False
    #: An account's API token: its id.
    token_id: str | None = None

    @property
    def actor(self) -> str:
        """Who an event is written on behalf of: ``<role>:<token name>``, or ``account:<name>`` for a person."""
        return f"account:{self.name}" if self.kind == "account" else f"{self.role}:{self.name}"

    @property
    def identity(self) -> tuple[str, str]:
        """What an Idempotency-Key is bound to: a token by its role and name, an account by its name."""
        return ("account", self.name) if self.kind == "account" else (self.role, self.name)

    def can_read(self, *, collective: str | None = None, project: str | None = None) -> bool:
        if self.role in ("admin", "auditor"):
            return True
        target = collective or project
        return target is None or target in self.scope

    def require(self, roles: Iterable[str], *, collective: str | None = None, project: str | None = None) -> None:
        """Raise Forbidden unless this principal has one of ``roles`` and the target is in scope."""
        if self.role == "admin":
            return
        if self.role not in set(roles):
            raise Forbidden(f"role {self.role!r} may not do this")
        target = collective or project
        if target is not None and self.role != "auditor" and target not in self.scope:
            raise Forbidden(f"{target!r} is outside this {'account' if self.kind == 'account' else 'token'}'s scope")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "bt_" + secrets.token_urlsafe(32)


class TokenRegistry:
    """The principals known to a service, looked up by the hash of the presented token.

    The token file is re-read when it changes, so a token added with ``baotuan tokens add``
    works without a restart.
    """

    def __init__(self, principals: dict[str, Principal], path: Path | None = None) -> None:
        self._by_hash = principals
        self._path = path
        self._mtime = _mtime(path)

    @classmethod
    def load(cls, path: Path | None) -> TokenRegistry:
        return cls(_read_tokens(path), path)

    def _refresh(self) -> None:
        mtime = _mtime(self._path)
        if mtime != self._mtime:
            self._by_hash = _read_tokens(self._path)
            self._mtime = mtime

    def authenticate(self, header: str | None) -> Principal:
        if not header or not header.startswith("Bearer "):
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        self._refresh()
        digest = hash_token(header[len("Bearer "):].strip())
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise Unauthenticated("unknown token")


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


def _read_tokens(path: Path | None) -> dict[str, Principal]:
    if path is None or not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    principals = {}
    for item in raw.get("tokens", []):
        if item["role"] not in ROLES:
            raise ValueError(f"unknown role {item['role']!r} in {path}")
        principals[item["sha256"]] = Principal(item["name"], item["role"], frozenset(item.get("scope", [])))
    return principals


def add_token(path: Path, *, name: str, role: str, scope: Iterable[str] = (), token: str | None = None) -> str:
    """Append a principal to the token file and return its (only ever shown once) token."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = token or new_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    # One writer at a time (two `tokens add` at once must not lose either), readers never wait.
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"tokens": []}
        data["tokens"] = [t for t in data["tokens"] if t["name"] != name]
        data["tokens"].append({"name": name, "sha256": hash_token(token), "role": role, "scope": sorted(scope)})
        _replace_file(path, json.dumps(data, ensure_ascii=False, indent=2))
    return token


def remove_token(path: Path, name: str) -> bool:
    """Take the principal ``name`` out of the token file; whether it was there."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
        kept = [t for t in data["tokens"] if t["name"] != name]
        if len(kept) == len(data["tokens"]):
            return False
        data["tokens"] = kept
        _replace_file(path, json.dumps(data, ensure_ascii=False, indent=2))
    return True


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (mode 600): a temporary file beside it, flushed to disk, then
    renamed over it. A reader sees the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp creates it with mode 600
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
