"""Every query of the accounts' part of the ledger's projection (``services.runtime.accounts`` folds it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.runtime.store import ProjectionStore


def account_view(row: Any) -> dict[str, Any]:
    """An account as the API shows it (never its password)."""
    return {"name": row["name"], "display_name": row["display_name"], "role": row["role"],
            "scope": json.loads(row["scope"]), "status": row["status"],
            "must_change_password": bool(row["must_change_password"]),
            "created_at": row["created_at"], "created_by": row["created_by"],
            "changed_at": row["changed_at"], "changed_by": row["changed_by"]}


@dataclass(frozen=True)
class AccountReads:
    """The reads of the accounts handlers and API."""

    store: ProjectionStore

    def account(self, name: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT * FROM _accounts WHERE name=?", (name,))
        return account_view(row) if row is not None else None

    def sealed_password(self, name: str) -> str | None:
        row = self.store.query_one("SELECT sealed FROM _account_passwords WHERE name=?", (name,))
        return str(row[0]) if row is not None else None

    def password_set_at(self, name: str) -> str | None:
        row = self.store.query_one("SELECT password_set_at FROM _accounts WHERE name=?", (name,))
        return str(row[0]) if row is not None else None

    def accounts(self) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT a.*, (SELECT MAX(started_at) FROM _sessions s WHERE s.name = a.name) AS last_sign_in "
            "FROM _accounts a ORDER BY a.name")
        return [{**account_view(r), "last_sign_in": r["last_sign_in"]} for r in rows]

    def failures_since(self, name: str, since: str) -> list[str]:
        """When ``name``'s sign-ins failed after ``since`` (an instant) and after its last success or new
        password."""
        rows = self.store.query(
            "SELECT at FROM _sign_in_failures WHERE name=? AND at > ? "
            "AND at > COALESCE((SELECT MAX(started_at) FROM _sessions WHERE name=?), '') "
            "AND at > COALESCE((SELECT password_set_at FROM _accounts WHERE name=?), '') ORDER BY at",
            (name, since, name, name))
        return [str(r[0]) for r in rows]

    def open_sessions(self, name: str, now: str) -> list[str]:
        """The sessions of ``name`` not ended and not expired at ``now``."""
        rows = self.store.query("SELECT session FROM _sessions WHERE name=? AND ended_at IS NULL AND expires_at > ? "
                                "ORDER BY started_at", (name, now))
        return [str(r[0]) for r in rows]

    def session(self, session: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT * FROM _sessions WHERE session=?", (session,))
        return dict(row) if row is not None else None

    def sign_ins(self, name: str | None, limit: int) -> list[dict[str, Any]]:
        """Sign-ins (sessions started) and failed attempts, newest first."""
        where, params = ("WHERE name=?", (name,)) if name else ("", ())
        sessions = self.store.query(
            f"SELECT name, started_at AS at, address, expires_at, ended_at, end_reason FROM _sessions {where} "
            "ORDER BY started_at DESC LIMIT ?", (*params, limit))
        failures = self.store.query(f"SELECT name, at, address, reason FROM _sign_in_failures {where} "
                                    "ORDER BY at DESC LIMIT ?", (*params, limit))
        items = [{"name": r["name"], "at": r["at"], "address": r["address"], "outcome": "signed_in",
                  "ended_at": r["ended_at"], "end_reason": r["end_reason"], "expires_at": r["expires_at"]}
                 for r in sessions]
        items += [{"name": r["name"], "at": r["at"], "address": r["address"], "outcome": r["reason"],
                   "ended_at": None, "end_reason": None, "expires_at": None} for r in failures]
        items.sort(key=lambda item: item["at"], reverse=True)
        return items[:limit]

    def tokens(self, name: str) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT token_id, label, issued_at, expires_at, revoked_at FROM _account_tokens "
                                "WHERE name=? ORDER BY issued_at DESC", (name,))
        return [dict(r) for r in rows]

    def token(self, name: str, token_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT token_id, label, issued_at, expires_at, revoked_at FROM _account_tokens "
                                   "WHERE name=? AND token_id=?", (name, token_id))
        return dict(row) if row is not None else None

    def unknown_scope(self, role: str, scope: list[str]) -> int | None:
        """The index of the first id of ``scope`` that is not a collective (accountants) or a project
        (operators, boards) of the ledger's registry; None when all are."""
        table, key = ("collectives", "collective_id") if role == "accountant" else ("projects", "project_id")
        for index, item in enumerate(scope):
            if self.store.query_one(f"SELECT 1 FROM {table} WHERE {key}=?", (item,)) is None:
                return index
        return None
