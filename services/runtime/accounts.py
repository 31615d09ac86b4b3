"""People's accounts as every service sees them (docs/security.md, "Accounts and sessions").

The ledger owns ``baotuan.accounts.v1``; every service folds it into its own projection (the
``_accounts``, ``_sessions`` and ``_account_tokens`` tables beside its own state), so every
instance of every service knows the same accounts. A request that presents a session
(``Authorization: Session <secret>``, what the web page sends for a signed-in person) or an
account's API token (``Authorization: Bearer bt_…``) is the account's principal *as the
projection holds it now*: its current role, scope and status. A disabled account, an ended
session or a revoked token is refused by every service as soon as it has folded the event.

Only the owner keeps what sign-in needs: the sealed password hashes and the failed sign-ins.
Secrets are never stored: a session and a token are known by the SHA-256 of their secret.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.contracts.topics import ACCOUNTS
from services.runtime.auth import Principal, TokenRegistry, Unauthenticated
from services.runtime.store import Fold, ProjectionStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS _accounts (name TEXT PRIMARY KEY, display_name TEXT NOT NULL, role TEXT NOT NULL,
    scope TEXT NOT NULL, status TEXT NOT NULL, must_change_password INTEGER NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, changed_at TEXT NOT NULL, changed_by TEXT NOT NULL,
    password_set_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _sessions (session TEXT PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL,
    started_at TEXT NOT NULL, expires_at TEXT NOT NULL, idle_timeout_s INTEGER NOT NULL, ended_at TEXT,
    end_reason TEXT, ended_by TEXT);
CREATE INDEX IF NOT EXISTS _sessions_of ON _sessions (name, started_at);
CREATE TABLE IF NOT EXISTS _account_tokens (token_id TEXT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL, issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT);
CREATE INDEX IF NOT EXISTS _account_tokens_of ON _account_tokens (name);
"""

#: What only the owner (the ledger, which signs people in) keeps.
OWNER_SCHEMA = """
CREATE TABLE IF NOT EXISTS _account_passwords (name TEXT PRIMARY KEY, sealed TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _sign_in_failures (name TEXT NOT NULL, at TEXT NOT NULL, address TEXT NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS _sign_in_failures_of ON _sign_in_failures (name, at);
"""

#: What a session whose password must be changed may still do (method, route): see who it is, change
#: the password, sign out. Everything else is refused (403 ``password_change_required``).
BEFORE_PASSWORD_CHANGE = frozenset({("GET", "/v1/users/me"), ("PUT", "/v1/users/me/password"),
                                    ("DELETE", "/v1/sessions/current")})


def digest(secret: str) -> str:
    """How a session or a token is known: the SHA-256 of its secret (never the secret)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def instant(moment: datetime) -> str:
    """An instant as the envelope writes one: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def with_accounts(schema: str, fold: Fold, *, owner: bool = False) -> tuple[str, Fold]:
    """A service's projection schema and fold, with the accounts topic folded in beside its own state."""

    def folded(conn: sqlite3.Connection, topic: str, envelope: dict[str, Any]) -> None:
        if topic == ACCOUNTS:
            fold_accounts(conn, envelope, owner=owner)
        else:
            fold(conn, topic, envelope)

    return schema + SCHEMA + (OWNER_SCHEMA if owner else ""), folded


def fold_accounts(conn: sqlite3.Connection, envelope: dict[str, Any], *, owner: bool = False) -> None:
    """Apply one event of the accounts topic."""
    kind, data, at, actor = envelope["type"], envelope["data"], envelope["occurred_at"], envelope["actor"]
    name = data["name"]
    if kind == "AccountCreated":
        conn.execute("INSERT OR REPLACE INTO _accounts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     (name, data["display_name"], data["role"], json.dumps(sorted(data.get("scope", []))),
                      "active", int(data["must_change_password"]), at, actor, at, actor, at))
        if owner:
            conn.execute("INSERT OR REPLACE INTO _account_passwords VALUES (?,?)", (name, data["password"]))
    elif kind == "AccountChanged":
        conn.execute("UPDATE _accounts SET display_name=?, role=?, scope=?, changed_at=?, changed_by=? WHERE name=?",
                     (data["display_name"], data["role"], json.dumps(sorted(data.get("scope", []))), at, actor,
                      name))
    elif kind in ("AccountDisabled", "AccountEnabled"):
        status = "disabled" if kind == "AccountDisabled" else "active"
        conn.execute("UPDATE _accounts SET status=?, changed_at=?, changed_by=? WHERE name=?",
                     (status, at, actor, name))
    elif kind == "PasswordSet":
        conn.execute("UPDATE _accounts SET must_change_password=?, password_set_at=?, changed_at=?, changed_by=? "
                     "WHERE name=?", (int(data["must_change_password"]), at, at, actor, name))
        if owner:
            conn.execute("UPDATE _account_passwords SET sealed=? WHERE name=?", (data["password"], name))
    elif kind == "SessionStarted":
        conn.execute("INSERT OR IGNORE INTO _sessions VALUES (?,?,?,?,?,?,NULL,NULL,NULL)",
                     (data["session"], name, data["address"], at, data["expires_at"], data["idle_timeout_s"]))
    elif kind == "SessionEnded":
        conn.execute("UPDATE _sessions SET ended_at=?, end_reason=?, ended_by=? WHERE session=? AND ended_at IS NULL",
                     (at, data["reason"], actor, data["session"]))
    elif kind == "SignInFailed":
        if owner:
            conn.execute("INSERT INTO _sign_in_failures VALUES (?,?,?,?)", (name, at, data["address"], data["reason"]))
    elif kind == "ApiTokenIssued":
        conn.execute("INSERT OR IGNORE INTO _account_tokens VALUES (?,?,?,?,?,?,NULL)",
                     (data["token_id"], name, data["sha256"], data["label"], at, data["expires_at"]))
    elif kind == "ApiTokenRevoked":
        conn.execute("UPDATE _account_tokens SET revoked_at=? WHERE token_id=? AND revoked_at IS NULL",
                     (at, data["token_id"]))


class AccountDirectory:
    """Who a session or an account's token is, from a service's projection, checked at every request."""

    def __init__(self, store: ProjectionStore, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))

    def _principal(self, row: sqlite3.Row, **extra: Any) -> Principal:
        return Principal(row["name"], row["role"], frozenset(json.loads(row["scope"])), kind="account",
                         display_name=row["display_name"], **extra)

    def session(self, secret: str) -> Principal:
        """The principal of a session; Unauthenticated when it is unknown, ended, expired or its account
        is disabled."""
        row = self.store.query_one(
            "SELECT s.session, s.expires_at, s.ended_at, a.* FROM _sessions s JOIN _accounts a ON a.name = s.name "
            "WHERE s.session=?", (digest(secret),))
        if row is None:
            raise Unauthenticated("unknown session: sign in again")
        if row["ended_at"] is not None:
            raise Unauthenticated("this session has ended: sign in again")
        if parse_instant(row["expires_at"]) <= self.clock():
            raise Unauthenticated("this session has expired: sign in again")
        if row["status"] != "active":
            raise Unauthenticated("this account is disabled")
        return self._principal(row, session=row["session"], must_change_password=bool(row["must_change_password"]))

    def token(self, secret: str) -> Principal | None:
        """The principal of an account's API token; None if no account issued it; Unauthenticated when it
        is revoked, expired or its account is disabled."""
        row = self.store.query_one(
            "SELECT t.token_id, t.expires_at AS token_expires_at, t.revoked_at, a.* FROM _account_tokens t "
            "JOIN _accounts a ON a.name = t.name WHERE t.sha256=?", (digest(secret),))
        if row is None:
            return None
        if row["revoked_at"] is not None:
            raise Unauthenticated("this token was revoked")
        if parse_instant(row["token_expires_at"]) <= self.clock():
            raise Unauthenticated("this token has expired")
        if row["status"] != "active":
            raise Unauthenticated("this token's account is disabled")
        return self._principal(row, token_id=row["token_id"])


def authenticate(header: str | None, tokens: TokenRegistry, directory: AccountDirectory | None) -> Principal:
    """The principal of an ``Authorization`` header: a session, a bearer token of the token file, or an
    account's API token (in that order); Unauthenticated (401) otherwise."""
    if header and header.startswith("Session "):
        if directory is None:
            raise Unauthenticated("sessions are not accepted here")
        return directory.session(header[len("Session "):].strip())
    try:
        return tokens.authenticate(header)
    except Unauthenticated:
        if directory is None or not header or not header.startswith("Bearer "):
            raise
        found = directory.token(header[len("Bearer "):].strip())
        if found is None:
            raise
        return found
