"""Request and response schemas of the accounts API (served by the ledger; docs/security.md).

Request schemas reject unknown fields; a refused field is named in the 422 answer. No response
ever holds a password or a hash; a session's secret, an API token and a one-time password are
each in exactly one answer, the one that made them.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.contracts.events import ACCOUNT_ROLES
from services.contracts.fields import Flag, IsoDate, Slug, Text

_NAME_HELP = "the account's name: lowercase letters, digits and hyphens (e.g. lianmeng-kuaiji)"


class SignInRequest(Schema):
    """POST /v1/sessions."""

    name = Text(required=True, max_length=64, metadata={"description": _NAME_HELP})
    password = Text(required=True, max_length=200)


class SessionBody(Schema):
    """A new session: its secret (shown only here) and who it is."""

    session = fields.String(required=True, metadata={
        "description": "the session's secret: send it as `Authorization: Session <secret>` (the web page keeps "
                       "it in an HttpOnly cookie); only its SHA-256 is stored"})
    name = fields.String(required=True)
    display_name = fields.String(required=True)
    role = fields.String(required=True)
    scope = fields.List(fields.String(), required=True)
    must_change_password = fields.Boolean(required=True)
    expires_at = fields.String(required=True, metadata={"description": "the absolute end of the session (UTC)"})
    idle_timeout_s = fields.Integer(required=True, metadata={
        "description": "the session ends after this many seconds without a request (kept by the web page)"})


class MeBody(Schema):
    """Who the caller is: an account (by a session or one of its API tokens) or a bearer token."""

    kind = fields.String(required=True, validate=validate.OneOf(("account", "token")))
    name = fields.String(required=True)
    display_name = fields.String(allow_none=True)
    role = fields.String(required=True)
    scope = fields.List(fields.String(), required=True)
    must_change_password = fields.Boolean(required=True)
    session_expires_at = fields.String(allow_none=True)
    idle_timeout_s = fields.Integer(allow_none=True)


class PasswordChangeRequest(Schema):
    """PUT /v1/users/me/password."""

    current_password = Text(required=True, max_length=200)
    new_password = Text(required=True, max_length=200)


class UserRequest(Schema):
    """POST /v1/users: an account for a person (admin)."""

    name = Slug(required=True, metadata={"description": _NAME_HELP})
    display_name = Text(required=True, max_length=50, metadata={"description": "e.g. 联盟村 王会计"})
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))
    scope = fields.List(Slug(), load_default=list, validate=validate.Length(max=200), metadata={
        "description": "collective ids (accountant) or project ids (operator, board); empty for admin and auditor"})
    password = Text(load_default=None, max_length=200, metadata={
        "description": "optional: without it the answer holds a one-time password"})
    must_change_password = Flag(load_default=True, metadata={
        "description": "whether the person must choose their own password at their first sign-in"})


class UserPatch(Schema):
    """PATCH /v1/users/{name} (admin)."""

    display_name = Text(max_length=50)
    role = fields.String(validate=validate.OneOf(ACCOUNT_ROLES))
    scope = fields.List(Slug(), validate=validate.Length(max=200))


class ReasonRequest(Schema):
    """POST /v1/users/{name}/disable or .../enable: why (kept in the log)."""

    reason = Text(load_default="", allow_empty=True, max_length=200)


class UserBody(Schema):
    """An account (never its password)."""

    name = fields.String(required=True)
    display_name = fields.String(required=True)
    role = fields.String(required=True)
    scope = fields.List(fields.String(), required=True)
    status = fields.String(required=True, validate=validate.OneOf(("active", "disabled")))
    must_change_password = fields.Boolean(required=True)
    created_at = fields.String(required=True)
    created_by = fields.String(required=True, metadata={"description": "the actor who created it"})
    changed_at = fields.String(required=True)
    changed_by = fields.String(required=True)
    last_sign_in = fields.String(allow_none=True)
    one_time_password = fields.String(metadata={
        "description": "only in the answer that made it: hand it to the person, who must change it at sign-in"})


class UserList(Schema):
    items = fields.List(fields.Nested(UserBody), required=True)


class OneTimePasswordBody(Schema):
    name = fields.String(required=True)
    one_time_password = fields.String(required=True)


class SignInsQuery(Schema):
    name = Slug(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class SignInItem(Schema):
    name = fields.String(required=True)
    at = fields.String(required=True)
    address = fields.String(required=True)
    outcome = fields.String(required=True, metadata={"description": "signed_in, wrong_password or disabled"})
    expires_at = fields.String(allow_none=True)
    ended_at = fields.String(allow_none=True)
    end_reason = fields.String(allow_none=True)


class SignInList(Schema):
    items = fields.List(fields.Nested(SignInItem), required=True)


class TokenRequest(Schema):
    """POST /v1/users/me/tokens: an API token of the caller's account, for a script."""

    label = Text(required=True, max_length=100)
    expires_on = IsoDate(required=True, metadata={
        "description": "the day it stops working (00:00 UTC), after today and at most a year ahead"})


class TokenBody(Schema):
    token_id = fields.String(required=True)
    label = fields.String(required=True)
    issued_at = fields.String(required=True)
    expires_at = fields.String(required=True)
    revoked_at = fields.String(allow_none=True)
    token = fields.String(metadata={"description": "only in the answer that issued it: `Authorization: Bearer`"})


class TokenList(Schema):
    items = fields.List(fields.Nested(TokenBody), required=True)
