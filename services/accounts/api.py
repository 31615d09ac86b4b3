# mypy: disable-error-code="untyped-decorator"
"""The accounts API, served by the ledger (the owner of ``baotuan.accounts.v1``; docs/security.md).

- ``POST /v1/sessions`` signs a person in (no token: the one public write); ``DELETE
  /v1/sessions/current`` signs the session out, everywhere at once.
- ``/v1/users/me``: who the caller is, their password, their API tokens.
- ``/v1/users`` and ``/v1/sign-ins``: the admin's page (the auditor may read them).

Passwords are hashed (argon2id) and sealed before anything is written (``passwords``); a failed
sign-in is logged (``log`` and a ``SignInFailed`` event) with the name and the address, never the
password. Every write runs through the service's writer (``EventService.execute``) without an
Idempotency-Key: an answer that holds a secret is never stored.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request

from services.accounts import handlers
from services.accounts.passwords import (
    Passwords,
    key_file,
    load_or_create_key,
    one_time_code,
    password_problem,
)
from services.accounts.policy import AddressThrottle, SignInPolicy
from services.accounts.reads import AccountReads
from services.accounts.schemas import (
    MeBody,
    OneTimePasswordBody,
    PasswordChangeRequest,
    ReasonRequest,
    SessionBody,
    SignInList,
    SignInRequest,
    SignInsQuery,
    TokenBody,
    TokenList,
    TokenRequest,
    UserBody,
    UserList,
    UserPatch,
    UserRequest,
)
from services.contracts.fields import SLUG_RE
from services.runtime.accounts import digest, instant
from services.runtime.auth import Forbidden, Principal
from services.runtime.config import Settings
from services.runtime.handling import Decision, Refused
from services.runtime.http import ApiError, principal, publish_decision, service
from services.runtime.openapi import Blueprint, ErrorResponseSchema

log = logging.getLogger(__name__)

#: Where a sign-in comes from is the peer's address, or the X-Forwarded-For that one of these
#: (the web page's app, by default on this machine) says it forwarded for.
DEFAULT_TRUSTED_PROXIES = "127.0.0.1,::1"
PUBLIC_PATHS = frozenset({"/v1/sessions"})
WRONG = "wrong account name or password"

RATE_LIMITED = {"429": {
    "description": "Too Many Requests. Too many failed sign-ins for this account or from this address: wait "
                   "`Retry-After` seconds (code `too_many_attempts`, field `name`). The password was not checked.",
    "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    "content": {"application/json": {"schema": ErrorResponseSchema}}}}


# -- wiring --------------------------------------------------------------------------------------------------


def install(app: Flask, settings: Settings, policy: SignInPolicy | None = None) -> None:
    """What the accounts API needs beside its blueprint: the accounts key, the sign-in policy, the
    per-address throttle, and its one public path."""
    policy = policy or SignInPolicy.from_env()
    app.extensions["baotuan_passwords"] = Passwords(load_or_create_key(key_file(settings.data_dir)))
    app.extensions["baotuan_sign_in_policy"] = policy
    app.extensions["baotuan_address_throttle"] = AddressThrottle(policy)
    app.extensions["baotuan_public_paths"] = PUBLIC_PATHS


def _passwords() -> Passwords:
    found: Passwords = current_app.extensions["baotuan_passwords"]
    return found


def _policy() -> SignInPolicy:
    found: SignInPolicy = current_app.extensions["baotuan_sign_in_policy"]
    return found


def _throttle() -> AddressThrottle:
    found: AddressThrottle = current_app.extensions["baotuan_address_throttle"]
    return found


def _reads() -> AccountReads:
    return AccountReads(service().store)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def client_address() -> str:
    """The address a request comes from (see ``DEFAULT_TRUSTED_PROXIES``; ``BAOTUAN_TRUSTED_PROXIES``)."""
    remote = request.remote_addr or "unknown"
    trusted = {p.strip() for p in os.environ.get("BAOTUAN_TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES).split(",")}
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and remote in trusted:
        hop = forwarded.split(",")[-1].strip()
        if hop and hop.isprintable():
            return hop[:64]
    return remote[:64]


def _write(decide: Callable[[], Decision], actor: str | None = None) -> dict[str, Any]:
    """Decide and publish through the service's writer; the answer carries the events' receipts."""
    svc = service()

    outcome = svc.execute(lambda publish: publish_decision(publish, decide()), actor=actor or principal().actor)
    g.receipts = svc.receipts(outcome.published)
    return outcome.result


def _account_principal(*, session: bool) -> Principal:
    who = principal()
    if who.kind != "account" or (session and who.session is None):
        raise Forbidden("only a person signed in to their account may do this"
                        + (" (with a session, not an API token)" if session else ""))
    return who


def _admin() -> Principal:
    who = principal()
    who.require(("admin",))
    return who


def _reader() -> Principal:
    who = principal()
    if who.role not in ("admin", "auditor"):
        raise Forbidden(f"role {who.role!r} may not see the accounts")
    return who


def _too_many(wait: float, name: str, address: str) -> Response:
    seconds = max(1, math.ceil(wait))
    log.warning("sign-in of %r from %s refused unchecked: too many failed attempts (retry in %ds)", name, address,
                seconds)
    body = Refused(429, "too_many_attempts",
                   f"too many failed sign-ins: try again in {seconds} seconds", "name").to_dict()
    response = jsonify(body)
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


def _wait(name: str | None, address: str, now: dt.datetime) -> float:
    """Seconds before the next attempt for this account (when there is one) from this address may be tried."""
    policy = _policy()
    wait = _throttle().wait(address, now)
    if name is not None:
        since = instant(now - dt.timedelta(seconds=policy.counted_s))
        failures = [dt.datetime.fromisoformat(at.replace("Z", "+00:00")) for at in _reads().failures_since(name, since)]
        wait = max(wait, policy.account.wait(failures, now))
    return wait


def _failed(name: str | None, address: str, now: dt.datetime, reason: str) -> None:
    """Count and log a failed attempt (never the password); an existing account's is also written to the log."""
    _throttle().failed(address, now)
    log.warning("failed sign-in of %r from %s: %s", name, address, reason)
    if name is not None:
        try:
            _write(lambda: handlers.handle_sign_in_failed(name=name, address=address, reason=reason, reads=_reads()),
                   actor="system:ledger")
        except Exception:  # the refusal stands; the count is kept in this process all the same
            log.exception("could not record the failed sign-in of %r", name)


def _me(who: Principal) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": who.kind, "name": who.name, "display_name": who.display_name, "role": who.role,
                            "scope": sorted(who.scope), "must_change_password": who.must_change_password,
                            "session_expires_at": None, "idle_timeout_s": None}
    if who.session is not None:
        found = _reads().session(who.session)
        if found is not None:
            body["session_expires_at"] = found["expires_at"]
            body["idle_timeout_s"] = found["idle_timeout_s"]
    return body


def _existing(name: str) -> dict[str, Any]:
    account = _reads().account(name)
    if account is None:
        raise ApiError(404, "not_found", f"unknown account {name!r}", "name")
    return account


# -- the blueprint -------------------------------------------------------------------------------------------


def blueprints() -> list[Blueprint]:
    """The accounts' blueprint, fresh for each app."""
    blp = Blueprint("accounts", __name__, url_prefix="/v1",
                    description="People's accounts: sign-in and sessions, passwords, API tokens, and the admin's "
                                "list of accounts and sign-ins (docs/security.md).")

    @blp.route("/sessions", methods=["POST"])
    @blp.arguments(SignInRequest)
    @blp.response(201, SessionBody)
    @blp.doc(security=[], responses=RATE_LIMITED)
    def sign_in(body: dict[str, Any]) -> Any:
        """Sign in with an account's name and password (no token): a session, valid until it is signed out,
        idle too long (the web page's clock) or its absolute end. Failed attempts are slowed, then locked."""
        now = _now()
        address = client_address()
        name = body["name"].strip().lower()
        reads = _reads()
        account = reads.account(name) if SLUG_RE.fullmatch(name) else None
        known = name if account is not None else None
        wait = _wait(known, address, now)
        if wait > 0:
            return _too_many(wait, name, address)
        set_at = reads.password_set_at(name) if known else None
        sealed = reads.sealed_password(name) if known else None
        if not _passwords().verify(name, sealed, body["password"]):
            _failed(known, address, now, "wrong_password")
            raise ApiError(401, "unauthenticated", WRONG, "password")
        assert account is not None
        if account["status"] != "active":
            _failed(known, address, now, "disabled")
            raise ApiError(401, "account_disabled", "this account is disabled: ask your administrator", "name")
        policy = _policy()
        secret = secrets.token_urlsafe(32)
        expires_at = instant(now + dt.timedelta(seconds=policy.session_max_s))
        _write(lambda: handlers.handle_sign_in(name=name, session=digest(secret), address=address,
                                               expires_at=expires_at, idle_timeout_s=policy.session_idle_s,
                                               password_set_at=set_at, reads=_reads()),
               actor=f"account:{name}")
        log.info("%r signed in from %s", name, address)
        account = _reads().account(name) or account
        return {"session": secret, "name": name, "display_name": account["display_name"], "role": account["role"],
                "scope": account["scope"], "must_change_password": account["must_change_password"],
                "expires_at": expires_at, "idle_timeout_s": policy.session_idle_s}

    @blp.route("/sessions/current", methods=["DELETE"])
    @blp.response(204)
    def sign_out() -> Any:
        """Sign this session out: every service refuses it from now on. ``?reason=idle`` when the web page ends
        it for having been idle too long."""
        who = _account_principal(session=True)
        reason = "idle" if request.args.get("reason") == "idle" else "signed_out"
        session = who.session
        assert session is not None
        _write(lambda: handlers.handle_sign_out(name=who.name, session=session, reason=reason, reads=_reads()))
        return ""

    @blp.route("/users/me", methods=["GET"])
    @blp.response(200, MeBody)
    def me() -> Any:
        """Who the caller is: an account (its current role, scope and status) or a bearer token."""
        return _me(principal())

    @blp.route("/users/me/password", methods=["PUT"])
    @blp.arguments(PasswordChangeRequest)
    @blp.response(200, MeBody)
    def change_password(body: dict[str, Any]) -> Any:
        """Choose a new password (the current one is asked again); the account's other sessions end."""
        who = _account_principal(session=True)
        now = _now()
        address = client_address()
        wait = _wait(who.name, address, now)
        if wait > 0:
            return _too_many(wait, who.name, address)
        reads = _reads()
        if not _passwords().verify(who.name, reads.sealed_password(who.name), body["current_password"]):
            _failed(who.name, address, now, "wrong_password")
            raise ApiError(422, "wrong_password", "the current password is not right", "current_password")
        new = body["new_password"]
        problem = password_problem(new, name=who.name)
        if problem is None and new == body["current_password"]:
            problem = "choose a password other than the current one"
        if problem is not None:
            raise ApiError(422, "validation_error", problem, "new_password")
        sealed = _passwords().seal(who.name, new)
        _write(lambda: handlers.handle_change_password(name=who.name, session=who.session, sealed=sealed,
                                                       now=instant(now), reads=_reads()))
        log.info("%r changed their password", who.name)
        g.pop("principal", None)
        return _me(principal())

    @blp.route("/users/me/tokens", methods=["GET"])
    @blp.response(200, TokenList)
    def my_tokens() -> Any:
        """The caller's account's API tokens (a bearer token of the token file has none)."""
        who = principal()
        return {"items": _reads().tokens(who.name) if who.kind == "account" else []}

    @blp.route("/users/me/tokens", methods=["POST"])
    @blp.arguments(TokenRequest)
    @blp.response(201, TokenBody)
    def issue_token(body: dict[str, Any]) -> Any:
        """An API token of the caller's account, for a script: it acts as the account (role, scope, status as
        they are at each request) until it expires or is revoked. Shown only in this answer."""
        who = _account_principal(session=True)
        now = _now()
        expires_on = dt.date.fromisoformat(body["expires_on"])
        if not now.date() < expires_on <= now.date() + dt.timedelta(days=_policy().token_max_days):
            raise ApiError(422, "validation_error",
                           f"a token expires after today and at most {_policy().token_max_days} days ahead",
                           "expires_on")
        secret = "bt_" + secrets.token_urlsafe(32)
        token_id = f"tok-{secrets.token_hex(6)}"
        expires_at = instant(dt.datetime.combine(expires_on, dt.time(), tzinfo=dt.UTC))
        _write(lambda: handlers.handle_issue_token(name=who.name, token_id=token_id, sha256=digest(secret),
                                                   label=body["label"], expires_at=expires_at, reads=_reads()))
        issued = _reads().token(who.name, token_id)
        return {**(issued or {}), "token": secret}

    @blp.route("/users/me/tokens/<token_id>", methods=["DELETE"])
    @blp.response(200, TokenBody)
    def revoke_token(token_id: str) -> Any:
        """Revoke one of the caller's account's API tokens: refused by every service from now on."""
        who = _account_principal(session=True)
        _write(lambda: handlers.handle_revoke_token(name=who.name, token_id=token_id, reads=_reads()))
        return _reads().token(who.name, token_id)

    @blp.route("/users", methods=["GET"])
    @blp.response(200, UserList)
    def list_accounts() -> Any:
        """Every account, with its last sign-in (admin, auditor)."""
        _reader()
        return {"items": _reads().accounts()}

    @blp.route("/users", methods=["POST"])
    @blp.arguments(UserRequest)
    @blp.response(201, UserBody)
    def create_account(body: dict[str, Any]) -> Any:
        """Create an account for a person (admin). Without a password the answer holds a one-time password,
        which the person must change at their first sign-in."""
        _admin()
        name = body["name"]
        chosen = body["password"]
        if chosen is not None:
            problem = password_problem(chosen, name=name)
            if problem is not None:
                raise ApiError(422, "validation_error", problem, "password")
        password = chosen if chosen is not None else one_time_code()
        must_change = body["must_change_password"] if chosen is not None else True
        sealed = _passwords().seal(name, password)
        _write(lambda: handlers.handle_create(name=name, display_name=body["display_name"], role=body["role"],
                                              scope=body["scope"], sealed=sealed, must_change_password=must_change,
                                              reads=_reads()))
        log.info("account %r (%s) created by %s", name, body["role"], principal().actor)
        made = {**_existing(name), "last_sign_in": None}
        if chosen is None:
            made["one_time_password"] = password
        return made

    @blp.route("/users/<name>", methods=["GET"])
    @blp.response(200, UserBody)
    def get_account(name: str) -> Any:
        """One account (admin, auditor, or the account itself)."""
        who = principal()
        if not (who.kind == "account" and who.name == name):
            _reader()
        return _existing(name)

    @blp.route("/users/<name>", methods=["PATCH"])
    @blp.arguments(UserPatch)
    @blp.response(200, UserBody)
    def change_account(body: dict[str, Any], name: str) -> Any:
        """Change an account's display name, role or scope (admin); its sessions carry the change at once."""
        who = _admin()
        by = who.name if who.kind == "account" else None
        _write(lambda: handlers.handle_change(name=name, by=by, display_name=body.get("display_name"),
                                              role=body.get("role"), scope=body.get("scope"), reads=_reads()))
        return _existing(name)

    @blp.route("/users/<name>/password-reset", methods=["POST"])
    @blp.response(200, OneTimePasswordBody)
    def reset_password(name: str) -> Any:
        """A new one-time password for the account (admin): the person must change it at their next sign-in;
        every session of theirs ends now."""
        _admin()
        _existing(name)
        code = one_time_code()
        sealed = _passwords().seal(name, code)
        _write(lambda: handlers.handle_reset_password(name=name, sealed=sealed, now=instant(_now()), reads=_reads()))
        log.info("password of %r reset by %s", name, principal().actor)
        return {"name": name, "one_time_password": code}

    @blp.route("/users/<name>/disable", methods=["POST"])
    @blp.arguments(ReasonRequest)
    @blp.response(200, UserBody)
    def disable_account(body: dict[str, Any], name: str) -> Any:
        """Disable an account (admin): its sessions and API tokens are refused by every service at once."""
        who = _admin()
        by = who.name if who.kind == "account" else None
        _write(lambda: handlers.handle_disable(name=name, by=by, reason=body["reason"], now=instant(_now()),
                                               reads=_reads()))
        log.info("account %r disabled by %s", name, who.actor)
        return _existing(name)

    @blp.route("/users/<name>/enable", methods=["POST"])
    @blp.arguments(ReasonRequest)
    @blp.response(200, UserBody)
    def enable_account(body: dict[str, Any], name: str) -> Any:
        """Enable a disabled account again (admin); its old sessions stay ended."""
        _admin()
        _write(lambda: handlers.handle_enable(name=name, reason=body["reason"], reads=_reads()))
        return _existing(name)

    @blp.route("/sign-ins", methods=["GET"])
    @blp.arguments(SignInsQuery, location="query")
    @blp.response(200, SignInList)
    def sign_ins(query: dict[str, Any]) -> Any:
        """Who signed in when, from where, and the failed attempts, newest first (admin, auditor)."""
        _reader()
        return {"items": _reads().sign_ins(query["name"], query["limit"])}

    return [blp]


__all__ = ["blueprints", "client_address", "install"]
