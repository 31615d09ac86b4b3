"""The web app: the page's static files, ``/api/whoami``, and a proxy to the three services.

It keeps no state of its own but the replay behind the Excel download (``books_cache``). The
browser holds the user's bearer token (in sessionStorage) and every
``/api/<service>/...`` call is forwarded with that token unchanged, so each service still
decides what the user may see and do (DESIGN §8). The app reads the same token file as the
services only to tell the page who is signed in (role, scope, name — never the token).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from flask import Flask, Response, current_app, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from services.runtime.auth import TokenRegistry, Unauthenticated
from services.runtime.config import Settings
from services.web.proxy import Upstreams, error_response, forward

STATIC_DIR = Path(__file__).resolve().parent / "static"
SERVICES = ("ledger", "rentals", "dividends")

# Everything the page loads comes from this origin; no inline script, no CDN (the page must
# work on a machine without internet).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                           "form-action 'self'")


def create_app(settings: Settings | None = None, upstreams: Upstreams | None = None) -> Flask:
    """Build the web app (service URLs from BAOTUAN_LEDGER_URL / _RENTALS_URL / _DIVIDENDS_URL)."""
    settings = settings or Settings.from_env()
    upstreams = upstreams or Upstreams.from_env()
    app = Flask("baotuan-web", static_folder=str(STATIC_DIR), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["baotuan_tokens"] = TokenRegistry.load(settings.tokens_file)
    app.extensions["baotuan_upstreams"] = upstreams
    app.extensions["baotuan_settings"] = settings
    session = requests.Session()
    # A proxy for a browser on the same machine: never pick up a system HTTP proxy.
    session.trust_env = False
    timeout_s = settings.request_timeout_s + 5

    @app.get("/")
    def index() -> Response:
        response = send_from_directory(STATIC_DIR, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/api/whoami")
    def whoami() -> Any:
        registry: TokenRegistry = current_app.extensions["baotuan_tokens"]
        try:
            who = registry.authenticate(request.headers.get("Authorization"))
        except Unauthenticated as exc:
            response = error_response(401, "unauthenticated", str(exc), "token")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        features = {"export_xlsx": bool(current_app.extensions.get("baotuan_export_xlsx"))}
        return jsonify({"name": who.name, "role": who.role, "scope": sorted(who.scope), "features": features})

    @app.route("/api/<service>/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def proxy(service: str, path: str) -> Response:
        if service not in SERVICES:
            return error_response(404, "not_found", f"no service {service!r}", "service")
        return forward(session, upstreams.url(service), service, path, timeout_s)

    from services.web.export import register_export

    register_export(app, settings)

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
