"""Request and response schemas of the members API (values stay wire strings: yuan, rates, shares, dates)."""

from __future__ import annotations

from marshmallow import Schema, fields

from services.contracts.fields import IsoDate, Rate, Slug


class ShareKindBody(Schema):
    kind = Slug()
    name = fields.String()
    weight = fields.String()


class CharterBody(Schema):
    collective_id = Slug()
    share_kinds = fields.List(fields.Nested(ShareKindBody))
    reserve_rate_min = Rate()
    shares_fixed_on = IsoDate(allow_none=True)
    quorum = fields.String()
    majority = fields.String()
    adopted_on = IsoDate()
