"""People sign in to the web page with their account's name and password (docs/web.md, docs/security.md).

The ledger checks the password and starts the session (``POST /v1/sessions``); the page never sees
the session's secret: the web app keeps it in a cookie the page's scripts cannot read (``HttpOnly``,
``SameSite=Strict``, ``Secure`` when served over HTTPS, then named ``__Host-baotuan-session``) and
sends it on to the services as ``Authorization: Session <secret>``, so every service decides, at
every request, with the account's current role, scope and status (DESIGN §8).

- **CSRF**: every state-changing request that rides on the cookie must carry ``X-CSRF-Token`` (an
  HMAC of the session's secret: the page gets it from ``/api/whoami``, a page of another site can
  read neither it nor the cookie) and, when the browser says where it comes from (``Origin``,
  ``Sec-Fetch-Site``), come from this page. Sign-in itself must be JSON from this page.
- **Timeouts**: the session ends after ``idle_timeout_s`` without a request (this process keeps the
  clock, and ends the session in the log when it runs out) and at its absolute end (every service
  checks that one).
- **Sign-out** ends the session in the log: every service refuses it from then on.

A request with its own ``Authorization`` header (a script with a bearer token) is passed on as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask, Response, current_app, jsonify, request

from services.runtime.auth import Principal, TokenRegistry, Unauthenticated
from services.web.proxy import Upstreams, error_response

log = logging.getLogger(__name__)

COOKIE = "baotuan-session"
SECURE_COOKIE = "__Host-baotuan-session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_IDLE_S = 30 * 60


class Refusal(Exception):
    """What the web app itself refuses, in the services' error shape."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.field)


def csrf_token(secret: str) -> str:
    """The CSRF token of a session: an HMAC of its secret (nothing to store, nothing another site can compute)."""
    mac = hmac.new(secret.encode("utf-8"), b"baotuan-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class IdleClock:
    """When each session was last used through this web app, and how long it may stay idle."""

    def __init__(self, default_idle_s: int) -> None:
        self.default_idle_s = default_idle_s
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def start(self, secret: str, idle_s: int | None) -> None:
        with self._lock:
            self._seen[_digest(secret)] = (time.monotonic(), idle_s or self.default_idle_s)

    def touch(self, secret: str) -> bool:
        """Record a use now; False when the session had been idle too long (it is then forgotten)."""
        key = _digest(secret)
        now = time.monotonic()
        with self._lock:
            last, idle_s = self._seen.get(key, (now, self.default_idle_s))
            if now - last > idle_s:
                del self._seen[key]
                return False
            self._seen[key] = (now, idle_s)
            if len(self._seen) > 50_000:  # forget sessions nobody used for a day
                for stale in [k for k, (t, _) in self._seen.items() if now - t > 86_400]:
                    del self._seen[stale]
            return True

    def forget(self, secret: str) -> None:
        with self._lock:
            self._seen.pop(_digest(secret), None)


@dataclass
class Gate:
    """The web app's side of sign-in: the cookie, CSRF, the idle clock, and the calls to the ledger."""

    upstreams: Upstreams
    http: requests.Session
    timeout_s: float
    clock: IdleClock
    force_secure: bool = False

    # -- the cookie ----------------------------------------------------------------------------------------

    def secure(self) -> bool:
        return self.force_secure or request.is_secure

    def secret(self) -> str | None:
        value = request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)
        return value if value and len(value) <= 200 else None

    def set_cookie(self, response: Response, secret: str) -> None:
        secure = self.secure()
        response.set_cookie(SECURE_COOKIE if secure else COOKIE, secret, httponly=True, secure=secure,
                            samesite="Strict", path="/")

    def clear_cookie(self, response: Response) -> None:
        for name in (COOKIE, SECURE_COOKIE):
            if name in request.cookies:
                response.delete_cookie(name, path="/", secure=name == SECURE_COOKIE, httponly=True,
                                       samesite="Strict")

    # -- checks ----------------------------------------------------------------------------------------------

    def same_origin(self) -> None:
        """Refuse a request the browser says comes from another site."""
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
            raise Refusal(403, "csrf_refused", "this request does not come from this page", "Origin")
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise Refusal(403, "csrf_refused", "this request does not come from this page", "Sec-Fetch-Site")

    def check_csrf(self, secret: str) -> None:
        self.same_origin()
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), csrf_token(secret).encode("ascii")):
            raise Refusal(403, "csrf_refused", "missing or wrong X-CSRF-Token: reload the page", CSRF_HEADER)

    def authorization(self) -> str | None:
        """The ``Authorization`` to send a service for this request: the caller's own header, or the
        session of the cookie (idle clock and CSRF checked); None without either."""
        own = request.headers.get("Authorization")
        if own:
            return own
        secret = self.secret()
        if secret is None:
            return None
        if not self.clock.touch(secret):
            self.end(secret, reason="idle")
            raise Refusal(401, "session_idle", "signed out after a while without activity: sign in again",
                          "session")
        if request.method not in SAFE_METHODS:
            self.check_csrf(secret)
        return f"Session {secret}"

    # -- the ledger's accounts API ---------------------------------------------------------------------------

    def call(self, method: str, path: str, authorization: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        if authorization:
            headers["Authorization"] = authorization
        try:
            return self.http.request(method, f"{self.upstreams.url('ledger')}{path}", headers=headers,
                                     timeout=self.timeout_s, allow_redirects=False, **kwargs)
        except requests.Timeout:
            raise Refusal(504, "upstream_timeout", "the ledger service did not answer in time") from None
        except requests.RequestException:
            raise Refusal(502, "upstream_unavailable", "the ledger service is not reachable") from None

    def end(self, secret: str, *, reason: str = "signed_out") -> None:
        """End the session in the log (best effort: an ended or unknown session is ended already)."""
        self.clock.forget(secret)
        try:
            self.call("DELETE", "/v1/sessions/current" + ("?reason=idle" if reason == "idle" else ""),
                      f"Session {secret}")
        except Refusal as exc:
            log.warning("could not end a session in the log: %s", exc.message)

    def me(self, authorization: str) -> dict[str, Any]:
        """Who an Authorization is, as the ledger says now (401 passed on)."""
        answer = self.call("GET", "/v1/users/me", authorization)
        if answer.status_code != 200:
            error = _error_of(answer)
            session = authorization.startswith("Session ") and answer.status_code == 401
            raise Refusal(answer.status_code, error.get("code", "unauthenticated"),
                          error.get("message", "not signed in"), "session" if session else error.get("field"))
        body: dict[str, Any] = answer.json()
        return body

    def principal(self, tokens: TokenRegistry) -> Principal:
        """The caller of this request: a bearer token of the token file (read here), or the account of the
        cookie's session or of an account's API token (asked of the ledger)."""
        authorization = self.authorization()
        if authorization is None:
            raise Refusal(401, "unauthenticated", "not signed in", "session")
        if authorization.startswith("Bearer "):
            try:
                return tokens.authenticate(authorization)
            except Unauthenticated:
                pass  # perhaps an account's API token: the ledger knows
        who = self.me(authorization)
        if who.get("must_change_password"):
            raise Refusal(403, "password_change_required", "choose a new password first", "password")
        return Principal(who["name"], who["role"], frozenset(who["scope"]), kind=who["kind"],
                         display_name=who.get("display_name"))


def _error_of(answer: requests.Response) -> dict[str, Any]:
    try:
        error = answer.json().get("error", {})
    except ValueError:
        error = {}
    return error if isinstance(error, dict) else {}


def gate(app: Flask) -> Gate:
    found: Gate = app.extensions["baotuan_gate"]
    return found


def register_signin(app: Flask, upstreams: Upstreams, http: requests.Session, timeout_s: float) -> Gate:
    """``/api/session`` (sign in, sign out) and ``/api/whoami``; the Gate the proxy and the export use."""
    idle = int(os.environ.get("BAOTUAN_SESSION_IDLE_S") or DEFAULT_IDLE_S)
    the_gate = Gate(upstreams, http, timeout_s, IdleClock(idle),
                    force_secure=os.environ.get("BAOTUAN_WEB_SECURE_COOKIE", "") in ("1", "true", "yes"))
    app.extensions["baotuan_gate"] = the_gate

    @app.errorhandler(Refusal)
    def _refused(exc: Refusal) -> Response:
        response = exc.response()
        if exc.status == 401 and exc.field == "session":
            the_gate.clear_cookie(response)
        return response

    @app.post("/api/session")
    def sign_in() -> Response:
        """Sign in: name and password (JSON, from this page) to the ledger; the session into the cookie."""
        the_gate.same_origin()
        if not request.is_json:
            raise Refusal(415, "unsupported_media_type", "sign in with a JSON body", "body")
        old = the_gate.secret()
        if old is not None:
            the_gate.end(old)
        answer = the_gate.call("POST", "/v1/sessions", data=request.get_data(),
                               headers={"Content-Type": "application/json",
                                        "X-Forwarded-For": request.remote_addr or "unknown"})
        if answer.status_code != 201:
            response = Response(answer.content, status=answer.status_code, content_type="application/json")
            if "Retry-After" in answer.headers:
                response.headers["Retry-After"] = answer.headers["Retry-After"]
            return response
        body = answer.json()
        secret = body.pop("session")
        body.pop("receipts", None)
        the_gate.clock.start(secret, body.get("idle_timeout_s"))
        response = jsonify({**body, "kind": "account", "csrf_token": csrf_token(secret),
                            "features": _features()})
        response.status_code = 201
        the_gate.set_cookie(response, secret)
        return response

    @app.delete("/api/session")
    def sign_out() -> Response:
        """Sign out: the session ends in the log (every service refuses it) and the cookie is cleared."""
        secret = the_gate.secret()
        if secret is not None:
            the_gate.check_csrf(secret)
            the_gate.end(secret)
        response = Response(status=204)
        the_gate.clear_cookie(response)
        return response

    @app.get("/api/whoami")
    def whoami() -> Any:
        """Who is signed in (never the secret): the account of the cookie's session, with the CSRF token the
        page must send with every change; or the bearer token's principal."""
        own = request.headers.get("Authorization")
        features = _features()
        if own:
            registry: TokenRegistry = current_app.extensions["baotuan_tokens"]
            try:
                who = registry.authenticate(own)
            except Unauthenticated as exc:
                response = error_response(401, "unauthenticated", str(exc), "token")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            return jsonify({"name": who.name, "role": who.role, "scope": sorted(who.scope), "features": features})
        authorization = the_gate.authorization()
        if authorization is None:
            raise Refusal(401, "unauthenticated", "not signed in", "session")
        secret = the_gate.secret()
        assert secret is not None
        me = the_gate.me(authorization)
        if me.get("idle_timeout_s"):
            the_gate.clock.start(secret, me["idle_timeout_s"])
        return jsonify({**me, "csrf_token": csrf_token(secret), "features": features})

    return the_gate


def _features() -> dict[str, bool]:
    return {"export_xlsx": bool(current_app.extensions.get("baotuan_export_xlsx"))}
