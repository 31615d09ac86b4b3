"""Forwarding ``/api/<service>/v1/...`` to the three services, as the signed-in person.

The web app holds no credentials of its own: every request to a service carries the person's
session (from the sign-in cookie, ``services.web.signin``) or the caller's own ``Authorization``
header, so the service decides what the person may see and do (DESIGN §8), exactly as for a
script calling it directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from flask import Response, jsonify, request

#: Request headers a service needs to see; nothing else of the browser's is passed on.
FORWARDED_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept", "Idempotency-Key")
#: Response headers the browser needs to see.
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Content-Disposition", "WWW-Authenticate", "Retry-After")

DEFAULT_URLS = {"ledger": "http://127.0.0.1:8001", "rentals": "http://127.0.0.1:8002",
                "dividends": "http://127.0.0.1:8003", "members": "http://127.0.0.1:8004"}


@dataclass(frozen=True)
class Upstreams:
    """Base URLs of the three services the page talks to."""

    ledger: str = DEFAULT_URLS["ledger"]
    rentals: str = DEFAULT_URLS["rentals"]
    dividends: str = DEFAULT_URLS["dividends"]
    members: str = DEFAULT_URLS["members"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Upstreams:
        env = os.environ if environ is None else environ
        return cls(**{name: env.get(f"BAOTUAN_{name.upper()}_URL", url).rstrip("/")
                      for name, url in DEFAULT_URLS.items()})

    def url(self, service: str) -> str:
        base: str = getattr(self, service)
        return base


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    """A JSON error in the services' shape, for what the web app itself refuses."""
    response = jsonify({"error": {"status": status, "code": code, "message": message, "field": field}})
    response.status_code = status
    return response


def forward(session: requests.Session, base_url: str, service: str, path: str, timeout_s: float,
            authorization: str | None = None) -> Response:
    """Send the current request to ``base_url/path`` with ``authorization`` (the caller's own header, or
    the session of the sign-in cookie) and return the service's answer as is.

    Only ``v1/`` paths are forwarded (no ``/docs`` or ``/health`` of a service through the
    page), and never one that climbs out of it.
    """
    segments = path.split("/")
    if segments[0] != "v1" or any(s in ("", ".", "..") for s in segments[1:]):
        return error_response(404, "not_found", f"no such {service} API path: /{path}", "path")
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS
               if name in request.headers and name != "Authorization"}
    if authorization:
        headers["Authorization"] = authorization
    try:
        upstream = session.request(
            request.method,
            f"{base_url}/{path}",
            params=list(request.args.items(multi=True)),
            data=request.get_data() or None,
            headers=headers,
            timeout=timeout_s,
            allow_redirects=False,
        )
    except requests.Timeout:
        return error_response(504, "upstream_timeout", f"the {service} service did not answer in time")
    except requests.RequestException:
        return error_response(502, "upstream_unavailable", f"the {service} service is not reachable")
    response = Response(upstream.content, status=upstream.status_code)
    for name in FORWARDED_RESPONSE_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    return response
