# mypy: disable-error-code="untyped-decorator"
# (flask-smorest ships no type hints: its route/arguments/response decorators are untyped.)
"""The members HTTP API (DESIGN §11): the charter, households, shares, certificates and distribution plans.

HTTP only: parse -> authorize -> ``idempotent(body, write, render)``, where ``write`` is the command's handler
(:mod:`services.members.handlers`, inside the writer lock) -> render from the reads (:mod:`services.members.reads`).
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from services.members.reads import MembersReads
from services.members.schemas import CharterBody
from services.runtime.http import principal, service

#: Who writes a collective's register and plans: its accountants (and the admin).
WRITERS = ("accountant",)
#: Who reads them: its accountants and boards, the auditor (and the admin).
READERS = ("accountant", "board", "auditor")

blp = Blueprint("members", __name__, url_prefix="/v1",
                description="A village's charter, member households, shares and distribution plans.")


def _reads() -> MembersReads:
    svc = service()
    return MembersReads(svc.store, svc.sync)


@blp.route("/collectives/<collective_id>/charter", methods=["GET"])
@blp.response(200, CharterBody)
def get_charter(collective_id: str) -> Any:
    """The collective's charter in force."""
    principal().require(READERS, collective=collective_id)
    reads = _reads()
    reads.require_collective(collective_id)
    return reads.require_charter(collective_id)
