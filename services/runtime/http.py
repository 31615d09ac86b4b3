"""What every service's HTTP API shares: the app factory, JSON errors, auth, idempotency.

Errors always have one shape, and name the field at fault:
``{"error": {"status": 422, "code": "validation_error", "field": "lines.1.debit",
"message": "...", "errors": {...}}}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, jsonify, request
from flask_smorest import Api, Blueprint
from werkzeug.exceptions import HTTPException

from services.contracts.envelope import new_uuid
from services.contracts.fields import text_problem
from services.runtime.accounts import BEFORE_PASSWORD_CHANGE, AccountDirectory, authenticate
from services.runtime.auth import Forbidden, Principal, TokenRegistry, Unauthenticated
from services.runtime.config import Settings
from services.runtime.forwarding import CannotForward, forward
from services.runtime.handling import Decision, Refused
from services.runtime.kafka_io import BrokerUnavailable
from services.runtime.openapi import ErrorResponseSchema, ErrorResponsesPlugin, ReceiptsPlugin, document_wire_strings
from services.runtime.ownership import NotOwner, NotReady, SpansOwners
from services.runtime.service import (
    MAX_EVENTS_PER_REQUEST,
    EventService,
    IdempotencyConflict,
    NewEvent,
    NotCaughtUp,
    TooManyEvents,
)

log = logging.getLogger(__name__)


#: What a caller may read without a token: liveness and the API's own description.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json"})


class ApiError(Refused):
    """A request the service refuses; mapped once to a JSON error response (``Refused`` is the
    handlers' name for it: the same error, raised without Flask)."""


def first_field(errors: Any, prefix: str = "") -> tuple[str | None, str]:
    """The dotted path and message of the first marshmallow/webargs error."""
    if isinstance(errors, Mapping) and errors:
        key = sorted(errors, key=str)[0]
        path = f"{prefix}.{key}" if prefix else str(key)
        return first_field(errors[key], path)
    if isinstance(errors, list) and errors:
        if all(isinstance(e, str) for e in errors):
            return (prefix or None), "; ".join(errors)
        return first_field(errors[0], prefix)
    return (prefix or None), str(errors)


class BaotuanApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with baotuan's error shape, documented as it is (services.runtime.openapi)."""

    ERROR_SCHEMA = ErrorResponseSchema
    #: No catch-all ``default``: each operation lists the error statuses it can answer.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _init_spec(self, *, extra_plugins: Sequence[Any] | None = None, **options: Any) -> None:
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), ErrorResponsesPlugin(), ReceiptsPlugin()],
                           **options)
        document_wire_strings(self.ma_plugin)

    def handle_http_exception(self, error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
        data = getattr(error, "data", None) or {}
        messages = data.get("errors") or data.get("messages")
        code = error.code or 500
        field: str | None = None
        message = data.get("message") or error.description or error.name
        kind = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "body_too_large", 415: "unsupported_media_type",
                422: "validation_error"}.get(code, "error" if code < 500 else "internal_error")
        if messages:
            # webargs nests by location: {"json": {...}} / {"query": {...}}
            if isinstance(messages, Mapping) and len(messages) == 1 and next(iter(messages)) in (
                    "json", "query", "headers", "form", "path"):
                location = next(iter(messages))
                inner = messages[location]
                field, message = first_field(inner)
                if field is None:
                    field = "body" if location == "json" else location
            else:
                field, message = first_field(messages)
        if field is not None and field.split(".")[0] == "_schema":
            field = "body"  # the body as a whole (e.g. a JSON array where an object is expected)
        if code == 400 and field is None:
            field = "body"
        if code == 413:
            field, message = "body", "request body is too large"
        return ApiError(code, kind, message, field, messages).to_dict(), code, data.get("headers", {})


def create_service_app(*, title: str, service: EventService | None, settings: Settings,
                       blueprints: Sequence[Blueprint], tokens: TokenRegistry | None = None,
                       description: str = "") -> Flask:
    """Build a service's Flask app: config, OpenAPI at /openapi.json, docs at /docs, errors, health."""
    app = Flask(title)
    app.config.update(
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_REDOC_PATH="/docs",
        OPENAPI_REDOC_URL="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_AS_ASCII=False,
        API_SPEC_OPTIONS={
            "info": {"description": description},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["baotuan_service"] = service
    app.extensions["baotuan_tokens"] = tokens or TokenRegistry.load(settings.tokens_file)
    # People's sessions and accounts' API tokens, from the accounts topic folded into the projection.
    app.extensions["baotuan_accounts"] = AccountDirectory(service.store) if service is not None else None
    api = BaotuanApi(app)
    for blp in blueprints:
        api.register_blueprint(blp)

    @app.errorhandler(Refused)
    def _api_error(exc: Refused) -> Any:
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(Unauthenticated)
    def _unauthenticated(exc: Unauthenticated) -> Any:
        err = ApiError(401, "unauthenticated", str(exc), "Authorization")
        return jsonify(err.to_dict()), 401, {"WWW-Authenticate": "Bearer"}

    @app.errorhandler(Forbidden)
    def _forbidden(exc: Forbidden) -> Any:
        return jsonify(ApiError(403, "forbidden", str(exc), "Authorization").to_dict()), 403

    @app.errorhandler(TooManyEvents)
    def _too_many_events(exc: TooManyEvents) -> Any:
        return jsonify(ApiError(422, "too_many_events", str(exc), exc.field or "body").to_dict()), 422

    @app.errorhandler(IdempotencyConflict)
    def _conflict(exc: IdempotencyConflict) -> Any:
        err = ApiError(409, "idempotency_conflict",
                       "this Idempotency-Key was already used with a different request body", "Idempotency-Key")
        return jsonify(err.to_dict()), 409

    @app.errorhandler(BrokerUnavailable)
    @app.errorhandler(NotCaughtUp)
    def _unavailable(exc: Exception) -> Any:
        log.warning("write refused, broker unavailable: %s", exc)
        err = ApiError(503, "broker_unavailable",
                       "the event log is not reachable right now; nothing was confirmed. Retry with the same "
                       "Idempotency-Key: it will not be applied twice", None)
        return jsonify(err.to_dict()), 503, {"Retry-After": "2"}

    # Scale-out (DESIGN §12): a write for streams another instance owns goes there.
    @app.errorhandler(NotOwner)
    def _not_owner(exc: NotOwner) -> Any:
        try:
            return forward(exc, settings.advertised_url, settings.request_timeout_s,
                           service.store if service is not None else None)
        except CannotForward as why:
            return _moving(why)

    @app.errorhandler(NotReady)
    @app.errorhandler(CannotForward)
    def _moving(exc: Exception) -> Any:
        log.info("write refused for now: %s", exc)
        err = ApiError(503, "owner_changing", f"{exc}. Nothing was confirmed: retry with the same Idempotency-Key",
                       None)
        return jsonify(err.to_dict()), 503, {"Retry-After": "1"}

    @app.errorhandler(SpansOwners)
    def _spans(exc: SpansOwners) -> Any:
        err = ApiError(409, "spans_instances", f"{exc}: send its parts as separate requests", None)
        return jsonify(err.to_dict()), 409

    @app.before_request
    def _authenticate() -> None:
        # Every API call is authenticated before its body is parsed: a caller without a valid
        # token learns nothing about validation (401), whatever it sends.
        if request.path in PUBLIC_PATHS or request.path.startswith("/docs") \
                or request.path in current_app.extensions.get("baotuan_public_paths", ()):
            return
        who = principal()
        if who.must_change_password and (request.method, getattr(request.url_rule, "rule", None)) \
                not in BEFORE_PASSWORD_CHANGE:
            raise ApiError(403, "password_change_required",
                           "choose a new password first (PUT /v1/users/me/password)", "password")
        refuse_odd_path_ids(request.view_args)
        if request.is_json:
            parsed = request.get_json(silent=True)
            if parsed is not None:
                refuse_bad_text(parsed)

    app.after_request(add_receipts)

    @app.get("/health")
    def health() -> Any:
        svc: EventService | None = current_app.extensions["baotuan_service"]
        if svc is None:
            return jsonify({"status": "ok"})
        body = svc.health()
        return jsonify(body), 200 if body["status"] == "ok" else 503

    return app


def principal() -> Principal:
    """The authenticated caller of this request (401 if none): a bearer token's, or an account's (a session
    or the account's API token) with the account's role, scope and status as the projection holds them now."""
    if "principal" not in g:
        g.principal = authenticate(request.headers.get("Authorization"), current_app.extensions["baotuan_tokens"],
                                   current_app.extensions.get("baotuan_accounts"))
    result: Principal = g.principal
    return result


def service() -> EventService:
    svc: EventService = current_app.extensions["baotuan_service"]
    return svc


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200):
        raise ApiError(400, "bad_request", "Idempotency-Key must be 1-200 characters", "Idempotency-Key")
    return key


def idempotency_scope() -> str | None:
    """The request's Idempotency-Key bound to (principal, route) (DESIGN §8), or None without a key.

    Two callers sending the same key make two different requests: neither can block the other
    with a 409, nor be handed the other's stored result, nor get ids derived from the other's key.
    """
    key = idempotency_key()
    if key is None:
        return None
    who = principal()
    bound = json.dumps([*who.identity, request.method, request.path, key], ensure_ascii=False)
    return hashlib.sha256(bound.encode("utf-8")).hexdigest()


#: Namespace of the ids derived from a bound Idempotency-Key (a retry gets the same ids).
_KEYED_IDS = uuid.UUID("0d6f3f4e-8a53-5b7c-9d1e-7c2b6a41e0f1")


def fresh_uuid(qualifier: str) -> uuid.UUID:
    """A new id for something this request creates: derived from the bound Idempotency-Key (and
    ``qualifier``, to tell apart the things one request creates) when there is one, so a retry
    creates the same ids; else random."""
    scope = idempotency_scope()
    if scope is None:
        return uuid.UUID(new_uuid())
    return uuid.uuid5(_KEYED_IDS, f"{scope}:{qualifier}")


Publisher = Callable[[Sequence[NewEvent], dict[str, Any]], dict[str, Any]]

Command = TypeVar("Command")
Reads = TypeVar("Reads")


def publish_decision(publish: Publisher, decision: Decision) -> dict[str, Any]:
    """Publish a handler's Decision (a Decision without events publishes, and stores, nothing)."""
    if not decision.events:
        return dict(decision.result)
    return publish(decision.events, dict(decision.result))


def decided(handler: Callable[[Command, Reads], Decision], command: Command,
            reads: Callable[[], Reads]) -> Callable[[Publisher], dict[str, Any]]:
    """The write of :func:`idempotent`: the handler decides on the projection as it is inside the writer lock
    (``reads()`` is called there), and its decision is published."""
    return lambda publish: publish_decision(publish, handler(command, reads()))


def idempotent(body: Any, write: Callable[[Publisher], dict[str, Any]],
               render: Callable[[dict[str, Any]], Any]) -> Any:
    """Run ``write`` once per Idempotency-Key (same key and body: the first result; other body: 409).

    The key is bound to the caller and the route (``idempotency_scope``), so a stored result is
    only ever returned to the principal that made it. Views check roles and scopes before they
    call this, so a stored result is never returned to a caller the check would refuse.

    ``write`` validates against the projection and calls ``publish(events, result)`` inside
    the writer lock; ``result`` (a few ids) is stored in the log with the events, and
    ``render`` turns it into the response, the first time and for every repeat.
    """
    svc = service()
    outcome = svc.execute(write, actor=principal().actor, key=idempotency_scope(), body=body,
                          max_events=MAX_EVENTS_PER_REQUEST)
    # A write answer always carries its receipts (none when it published nothing); a repeat, those of
    # the first request's events.
    g.receipts = (svc.receipts_of(outcome.repeated_ids) if outcome.repeated_ids is not None
                  else svc.receipts(outcome.published))
    return render(outcome.result)


def add_receipts(response: Response) -> Response:
    """Put the request's signed receipts (``idempotent``) into a 2xx JSON answer, as ``receipts``."""
    receipts = g.get("receipts")
    if receipts is None or not 200 <= response.status_code < 300 or not response.is_json:
        return response
    body = response.get_data().rstrip()
    if body.startswith(b"{") and body.endswith(b"}"):
        # Spliced in rather than parsed and dumped again: a 1,000-entry batch answer is a megabyte.
        member = b'"receipts":' + current_app.json.dumps(receipts).encode("utf-8")
        inner = body[1:-1].strip()
        response.set_data(b"{" + inner + (b"," if inner else b"") + member + b"}")
    return response


def refuse_bad_text(value: Any) -> None:
    """422 naming the place of the first lone surrogate or control character in a parsed JSON body
    (in a value or a key): such text cannot be stored or hashed as UTF-8, whatever field it is in."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                raise ApiError(422, "validation_error", problem, path or "body")
        elif isinstance(item, dict):
            for key, inner in item.items():
                where = f"{path}.{key}" if path else str(key)
                if text_problem(str(key)) is not None:
                    raise ApiError(422, "validation_error", f"a field name {text_problem(str(key))}",
                                   path or "body")
                stack.append((where, inner))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), inner) for i, inner in enumerate(item))


def refuse_odd_path_ids(view_args: Mapping[str, Any] | None) -> None:
    """404 for an id in the URL with surrounding whitespace or control characters: no id can be
    written so (every id matches its pattern over the whole string), so none is looked up."""
    for name, value in (view_args or {}).items():
        if isinstance(value, str) and (value != value.strip() or not value.isprintable()):
            raise ApiError(404, "not_found", f"no {name.removesuffix('_id')} {value!r}", name)
