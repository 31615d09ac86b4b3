"""The error responses of every service's OpenAPI document, as the services really answer them.

Every error has one body, ``{"error": {"status", "code", "message", "field", "errors"?}}``
(:class:`services.runtime.http.ApiError`). :class:`ErrorResponsesPlugin` documents it once per
status on each operation, after the rules every operation follows (DESIGN §8–§9), instead of a
decorator on each of the services' routes:

- every operation is authenticated: 401 (no token, or a bad one) and 403 (outside the token's
  role or scope); 503 when the event log is unreachable (a write, or a read that first catches
  up with the log); 500 is the same body, for a fault of the service itself;
- a path with parameters, or a query parameter naming a resource (``..._id``): 404 when the
  resource it names does not exist;
- a JSON body: 400 (not JSON), 413 (too large), 422 (a field refused, by the schema or a rule);
- a query string: 422 (a parameter refused);
- a write (any method but GET): 400 (a bad ``Idempotency-Key``) and 409 (a conflict with the
  state: already exists, already done, or the key reused with another body).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

import flask_smorest
from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields
from webargs.flaskparser import FlaskParser

from services.contracts.fields import WireString

#: The error statuses documented on operations, and what each means for a caller.
ERROR_RESPONSES: dict[int, str] = {
    400: "Bad request: the body is not JSON (field `body`), or the Idempotency-Key header is malformed.",
    401: "No bearer token, or one that is not valid (field `Authorization`; a `WWW-Authenticate` header).",
    403: "The token's role or scope does not allow this (field `Authorization`, or the id outside the scope).",
    404: "What the path names does not exist (the field names the path parameter).",
    409: "A conflict with the state: it already exists or was already done, or the Idempotency-Key was "
         "used before with another body. Nothing was written.",
    413: "The request body is larger than the service accepts (field `body`). Nothing was written.",
    422: "A field was refused, by its schema or by a rule (the field is named, dotted when nested: "
         "`lines.1.debit`). Nothing was written.",
    500: "A fault of the service, never of the request. Nothing half-done was confirmed.",
    503: "The event log (Kafka) is not reachable right now; nothing was confirmed. Retry after "
         "`Retry-After` seconds with the same Idempotency-Key: it is never applied twice.",
}

#: The component name of each documented error response.
RESPONSE_NAMES: dict[int, str] = {status: f"Error{status}" for status in ERROR_RESPONSES}

#: Response headers some errors carry.
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
}

WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})


class ErrorDetailSchema(Schema):
    """What went wrong, and which field."""

    status = fields.Integer(required=True, metadata={"description": "The HTTP status, again."})
    code = fields.String(required=True, metadata={
        "description": "Machine-readable kind: `validation_error`, `not_found`, `unauthenticated`, `forbidden`, "
                       "`already_exists`, `idempotency_conflict`, `broker_unavailable`, `owner_changing` (several "
                       "instances: retry), `spans_instances`, or a rule's own code."})
    message = fields.String(required=True, metadata={"description": "For a person: what was refused and why."})
    field = fields.String(required=True, allow_none=True, metadata={
        "description": "The field at fault, dotted when nested (`lines.1.debit`); `body` for the body as a "
                       "whole, a header's name for a header; null when no field is at fault."})
    errors = fields.Dict(metadata={
        "description": "Every message of a schema validation, by field (webargs' shape, e.g. "
                       "`{\"json\": {\"lines\": {\"1\": {\"debit\": [\"...\"]}}}}`); absent otherwise."})


class ErrorResponseSchema(Schema):
    """The body of every error response."""

    error = fields.Nested(ErrorDetailSchema, required=True)


def document_wire_strings(plugin: MarshmallowPlugin) -> None:
    """The contracts' wire strings (amounts, rates, mu, ids, dates, periods, USCC) are JSON strings:
    say so, so that a generated client types them as strings (their pattern or format is documented
    already)."""
    plugin.map_to_openapi_type(WireString, "string", None)  # type: ignore[no-untyped-call]


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation of the services can answer (see the module's docstring)."""
    statuses = {401, 403, 500, 503}
    query = [p["name"] for p in operation.get("parameters", ()) if isinstance(p, dict) and p.get("in") == "query"]
    if "{" in path or any(name.endswith("_id") for name in query):
        statuses.add(404)
    if "requestBody" in operation:
        statuses.update((400, 413, 422))
    if query:
        statuses.add(422)
    if method.lower() in WRITE_METHODS:
        statuses.update((400, 409))
    return sorted(statuses)


class ErrorResponsesPlugin(BasePlugin):
    """An apispec plugin adding the error responses of :func:`error_statuses` to every operation."""

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        for status, description in ERROR_RESPONSES.items():
            response: dict[str, Any] = {
                "description": f"{HTTPStatus(status).phrase}. {description}",
                "content": {"application/json": {"schema": ErrorResponseSchema}},
            }
            if status in ERROR_HEADERS:
                response["headers"] = ERROR_HEADERS[status]
            spec.components.response(RESPONSE_NAMES[status], response, lazy=True)

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            for status in error_statuses(method, path or "", operation):
                # flask-smorest's own 422 (from @arguments, keyed by the int) names its generic response:
                # ours replaces it; a response an operation documents itself (a mapping) is kept.
                if isinstance(responses.get(status), str):
                    del responses[status]
                if not isinstance(responses.get(status, responses.get(str(status))), dict):
                    responses[str(status)] = RESPONSE_NAMES[status]


RECEIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Where an event of this write sits in the log and what it is, signed by the service "
                   "(Ed25519; DESIGN §4). Keep it: `baotuan audit --receipts FILE` proves the record is there.",
    "required": ["topic", "partition", "offset", "subject", "seq", "hash", "key_id", "signature"],
    "properties": {
        "topic": {"type": "string"}, "partition": {"type": "integer"}, "offset": {"type": "integer"},
        "subject": {"type": "string"}, "seq": {"type": "integer"},
        "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$",
                   "description": "the signing key: the first 16 hex digits of SHA-256 of the raw public key"},
        "signature": {"type": "string", "description": "base64 Ed25519 signature of the receipt's other fields"},
    },
}


class ReceiptsPlugin(BasePlugin):
    """Documents the ``receipts`` every 2xx answer of a write carries (``services.runtime.http.add_receipts``).

    A write's answer schema ``X`` (closed: no additional properties) becomes ``XWithReceipts``: the same
    properties plus ``receipts``; the schema ``X`` itself stays as it is for the reads that answer it.
    """

    RECEIPTS_PROPERTY: ClassVar[dict[str, Any]] = {
        "type": "array", "items": {"$ref": "#/components/schemas/Receipt"},
        "description": "one signed receipt per event this request wrote (a repeat: the first request's)"}

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        self.spec = spec
        spec.components.schema("Receipt", RECEIPT_SCHEMA)

    def _with_receipts(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/components/schemas/"):
            return {**schema, "properties": {**schema.get("properties", {}), "receipts": self.RECEIPTS_PROPERTY}}
        name = ref.rsplit("/", 1)[1]
        target = f"{name}WithReceipts"
        if target not in self.spec.components.schemas:
            base = dict(self.spec.components.schemas[name])
            base["properties"] = {**base.get("properties", {}), "receipts": self.RECEIPTS_PROPERTY}
            self.spec.components.schema(target, base)
        return {"$ref": f"#/components/schemas/{target}"}

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            if method.lower() not in WRITE_METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                if not str(status).startswith("2") or not isinstance(response, dict):
                    continue
                media = response.get("content", {}).get("application/json")
                if media is not None and isinstance(media.get("schema"), dict):
                    media["schema"] = self._with_receipts(media["schema"])


class _SchemaOnceParser(FlaskParser):
    """webargs' Flask parser, with each argument schema built once.

    Given a schema *class* (``@blp.arguments(EntryRequest)``), webargs instantiates it on every request
    (deep-copying its declared fields and building its nested schemas: about a tenth of a single post's
    request CPU). A marshmallow schema instance may be loaded with any number of times, from any thread
    (marshmallow keeps no per-load state on it; the services' schemas keep none either), so one is built
    per class, on first use, and reused."""

    def __init__(self) -> None:
        super().__init__()
        self._schemas: dict[type[Schema], Schema] = {}

    def _get_schema(self, argmap: Any, req: Any) -> Schema:
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            schema = self._schemas.get(argmap)
            if schema is None:  # two threads may build one each at first: the first stored is kept
                schema = self._schemas.setdefault(argmap, argmap())
            return schema
        built: Schema = super()._get_schema(argmap, req)
        return built


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint, parsing arguments with :class:`_SchemaOnceParser` (every service's)."""

    ARGUMENTS_PARSER = _SchemaOnceParser()


__all__ = ["ERROR_RESPONSES", "Blueprint", "ErrorDetailSchema", "ErrorResponseSchema", "ErrorResponsesPlugin",
           "ReceiptsPlugin", "document_wire_strings", "error_statuses"]
