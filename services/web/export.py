"""``GET /api/export.xlsx?collective_id=``: one collective's books as an Excel workbook.

The workbook is what ``baotuan export --format xlsx --collective ID`` writes: 科目余额表,
凭证明细 and 分红明细 from the events of the log, never from a service's database. The replay
is kept between downloads (:mod:`services.web.books_cache`): the first download replays the
log, each later one folds only the records written since and gives the same workbook again
while the log has not moved. Who may download what is checked first, on every request.
"""

from __future__ import annotations

import io
import re
from typing import Any

from flask import Flask, current_app, request, send_file

from services.runtime.auth import Forbidden, TokenRegistry
from services.runtime.config import Settings
from services.web.proxy import error_response
from services.web.signin import Refusal, gate

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


def register_export(app: Flask, settings: Settings) -> None:
    """Add the download when the audit exporter can be imported; otherwise the page hides the button."""
    try:
        from services.audit.sources.records import ReplayError
        from services.web.books_cache import WorkbookCache
    except ImportError:  # pragma: no cover - an install without the audit tool
        app.extensions["baotuan_export_xlsx"] = False
        return
    app.extensions["baotuan_export_xlsx"] = True
    workbooks = WorkbookCache(settings.bootstrap_servers, settings.kafka_client_config())
    app.extensions["baotuan_workbooks"] = workbooks

    @app.get("/api/export.xlsx")
    def export_xlsx() -> Any:
        registry: TokenRegistry = current_app.extensions["baotuan_tokens"]
        try:
            who = gate(current_app).principal(registry)
        except Refusal as exc:
            field = "Authorization" if exc.status == 401 else exc.field
            return error_response(exc.status, exc.code, exc.message, field)
        collective_id = request.args.get("collective_id", "")
        if not _SLUG.fullmatch(collective_id):
            return error_response(422, "validation_error", "collective_id must be a collective's id", "collective_id")
        try:
            who.require(("accountant", "auditor"), collective=collective_id)
        except Forbidden as exc:
            return error_response(403, "forbidden", str(exc), "Authorization")
        # Only now, with the caller allowed this collective's books, is the kept replay asked for them.
        try:
            data = workbooks.workbook(collective_id)
        except ReplayError as exc:
            return error_response(503, "broker_unavailable", f"the event log cannot be read: {exc}")
        if data is None:
            return error_response(404, "not_found", f"no books of collective {collective_id!r}", "collective_id")
        return send_file(io.BytesIO(data), mimetype=XLSX, as_attachment=True,
                         download_name=f"baotuan-{collective_id}.xlsx")
