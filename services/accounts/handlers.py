"""Every decision about accounts, sessions and accounts' API tokens, and every refusal (pure functions).

The secrets are made by the caller (the API): a handler gets the sealed password hash, the SHA-256 of
a session's or a token's secret, never a secret itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.accounts.reads import AccountReads
from services.runtime.handling import Decision, Refused, not_found
from services.runtime.service import NewEvent

SCOPED_ROLES = ("accountant", "operator", "board")


def _event(kind: str, name: str, **data: object) -> NewEvent:
    return NewEvent(kind, name, {"name": name, **data})


def check_scope(role: str, scope: Sequence[str], reads: AccountReads) -> None:
    """An accountant is scoped to collectives, an operator and a board to projects, all of the ledger's
    registry; an admin's and an auditor's scope is everything (an empty list)."""
    if role not in SCOPED_ROLES:
        if scope:
            raise Refused(422, "validation_error", f"an {role} sees everything: leave the scope empty", "scope")
        return
    if not scope:
        what = "collective" if role == "accountant" else "project"
        raise Refused(422, "validation_error", f"an {role} needs at least one {what} in its scope", "scope")
    unknown = reads.unknown_scope(role, list(scope))
    if unknown is not None:
        what = "collective" if role == "accountant" else "project"
        raise Refused(422, "validation_error", f"{scope[unknown]!r} is not a registered {what}", f"scope.{unknown}")


def _existing(reads: AccountReads, name: str) -> dict[str, Any]:
    account = reads.account(name)
    if account is None:
        raise not_found("account", "name", name)
    return account


def handle_create(*, name: str, display_name: str, role: str, scope: Sequence[str], sealed: str,
                  must_change_password: bool, reads: AccountReads) -> Decision:
    if reads.account(name) is not None:
        raise Refused(409, "conflict", f"there is an account {name!r} already", "name")
    check_scope(role, scope, reads)
    return Decision([_event("AccountCreated", name, display_name=display_name, role=role, scope=sorted(set(scope)),
                            password=sealed, must_change_password=must_change_password)], {"name": name})


def handle_change(*, name: str, by: str | None, display_name: str | None, role: str | None,
                  scope: Sequence[str] | None, reads: AccountReads) -> Decision:
    account = _existing(reads, name)
    new_role = role or str(account["role"])
    if name == by and new_role != account["role"]:
        raise Refused(409, "conflict", "an admin cannot change their own role", "role")
    kept: list[str] = list(account["scope"]) if new_role in SCOPED_ROLES else []
    new_scope = list(scope) if scope is not None else kept
    check_scope(new_role, new_scope, reads)
    return Decision([_event("AccountChanged", name, display_name=display_name or account["display_name"],
                            role=new_role, scope=sorted(set(new_scope)))], {"name": name})


def _end_sessions(name: str, sessions: Sequence[str], reason: str) -> list[NewEvent]:
    return [_event("SessionEnded", name, session=session, reason=reason) for session in sessions]


def handle_disable(*, name: str, by: str | None, reason: str, now: str, reads: AccountReads) -> Decision:
    account = _existing(reads, name)
    if name == by:
        raise Refused(409, "conflict", "an admin cannot disable their own account", "name")
    if account["status"] == "disabled":
        raise Refused(409, "conflict", f"account {name!r} is disabled already", "name")
    return Decision([_event("AccountDisabled", name, reason=reason),
                     *_end_sessions(name, reads.open_sessions(name, now), "disabled")], {"name": name})


def handle_enable(*, name: str, reason: str, reads: AccountReads) -> Decision:
    account = _existing(reads, name)
    if account["status"] == "active":
        raise Refused(409, "conflict", f"account {name!r} is active already", "name")
    return Decision([_event("AccountEnabled", name, reason=reason)], {"name": name})


def handle_reset_password(*, name: str, sealed: str, now: str, reads: AccountReads) -> Decision:
    """A one-time password the person must change at their next sign-in; every session of theirs ends."""
    _existing(reads, name)
    return Decision([_event("PasswordSet", name, password=sealed, must_change_password=True),
                     *_end_sessions(name, reads.open_sessions(name, now), "password_reset")], {"name": name})


def handle_change_password(*, name: str, session: str | None, sealed: str, now: str,
                           reads: AccountReads) -> Decision:
    """The person's own new password; their other sessions end, the one they changed it in goes on."""
    _existing(reads, name)
    others = [s for s in reads.open_sessions(name, now) if s != session]
    return Decision([_event("PasswordSet", name, password=sealed, must_change_password=False),
                     *_end_sessions(name, others, "password_changed")], {"name": name})


def handle_sign_in(*, name: str, session: str, address: str, expires_at: str, idle_timeout_s: int,
                   password_set_at: str | None, reads: AccountReads) -> Decision:
    """A session for an account whose password was verified (against the hash set at ``password_set_at``)."""
    account = reads.account(name)
    if account is None or account["status"] != "active" or reads.password_set_at(name) != password_set_at:
        # Disabled, or its password reset, while the password was being checked.
        raise Refused(401, "unauthenticated", "wrong account name or password", "password")
    return Decision([_event("SessionStarted", name, session=session, address=address, expires_at=expires_at,
                            idle_timeout_s=idle_timeout_s)], {"name": name})


def handle_sign_in_failed(*, name: str, address: str, reason: str, reads: AccountReads) -> Decision:
    if reads.account(name) is None:
        return Decision([], {})
    return Decision([_event("SignInFailed", name, address=address, reason=reason)], {})


def handle_sign_out(*, name: str, session: str, reason: str, reads: AccountReads) -> Decision:
    found = reads.session(session)
    if found is None or found["name"] != name or found["ended_at"] is not None:
        return Decision([], {})  # ended already: signing out twice is not an error
    return Decision(_end_sessions(name, [session], reason), {})


def handle_issue_token(*, name: str, token_id: str, sha256: str, label: str, expires_at: str,
                       reads: AccountReads) -> Decision:
    _existing(reads, name)
    return Decision([_event("ApiTokenIssued", name, token_id=token_id, sha256=sha256, label=label,
                            expires_at=expires_at)], {"token_id": token_id})


def handle_revoke_token(*, name: str, token_id: str, reads: AccountReads) -> Decision:
    token = reads.token(name, token_id)
    if token is None:
        raise not_found("token", "token_id", token_id)
    if token["revoked_at"] is not None:
        raise Refused(409, "conflict", f"token {token_id!r} is revoked already", "token_id")
    return Decision([_event("ApiTokenRevoked", name, token_id=token_id)], {"token_id": token_id})
