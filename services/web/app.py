"""The web app: the page's static files, sign-in (``/api/session``, ``/api/whoami``), a proxy to the
services and the printable notice of a member plan (``/notice/<collective>/<plan>``).

People sign in with their account's name and password (``services.web.signin``): the session's
secret lives in an HttpOnly cookie, and every ``/api/<service>/...`` call is forwarded with it as
``Authorization: Session <secret>``, so each service still decides what the person may see and do
(DESIGN §8), with the account's current role, scope and status. The app keeps no state of its own
but the sessions' idle clock and the replay behind the Excel download (``books_cache``). A script's
own ``Authorization`` header is forwarded unchanged.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import requests
from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from services.runtime.auth import TokenRegistry
from services.runtime.config import Settings
from services.web.proxy import Upstreams, error_response, forward
from services.web.signin import register_signin

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
SERVICES = ("ledger", "rentals", "dividends", "members")

# Everything the page loads comes from this origin; no inline script, no CDN (the page must
# work on a machine without internet).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                           "form-action 'self'")


def create_app(settings: Settings | None = None, upstreams: Upstreams | None = None) -> Flask:
    """Build the web app (service URLs from BAOTUAN_LEDGER_URL / _RENTALS_URL / _DIVIDENDS_URL)."""
    settings = settings or Settings.from_env()
    upstreams = upstreams or Upstreams.from_env()
    app = Flask("baotuan-web", static_folder=str(STATIC_DIR), static_url_path="/static",
                template_folder=str(TEMPLATES_DIR))
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["baotuan_tokens"] = TokenRegistry.load(settings.tokens_file)
    app.extensions["baotuan_upstreams"] = upstreams
    app.extensions["baotuan_settings"] = settings
    session = requests.Session()
    # A proxy for a browser on the same machine: never pick up a system HTTP proxy.
    session.trust_env = False
    # Its pooled connections to the services are closed with the app, not left to the garbage collector.
    weakref.finalize(app, session.close)
    timeout_s = settings.request_timeout_s + 5

    @app.get("/")
    def index() -> Response:
        response = send_from_directory(STATIC_DIR, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    # Sign-in and sign-out, who-am-I, and the session cookie's way to the services.
    gate = register_signin(app, upstreams, session, timeout_s)

    @app.route("/api/<service>/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def proxy(service: str, path: str) -> Response:
        if service not in SERVICES:
            return error_response(404, "not_found", f"no service {service!r}", "service")
        return forward(session, upstreams.url(service), service, path, timeout_s, gate.authorization())

    from services.web.export import register_export

    register_export(app, settings)

    from services.web.notice import register_notice

    # The public notice (公示) of an approved member plan: a printable page, its CSV and workbook.
    register_notice(app, upstreams, session, timeout_s)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            return exc
        status = exc.code or 500
        field = "body" if status == 413 else None
        return error_response(status, exc.name.lower().replace(" ", "_"), exc.description or exc.name, field)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    return app
