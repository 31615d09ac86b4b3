"""``GET /api/export.xlsx?collective_id=``: one collective's books as an Excel workbook.

The workbook is what ``baotuan export --format xlsx --collective ID`` writes: the audit tool
replays the topics from the beginning and writes 科目余额表, 凭证明细 and 分红明细 from the
events, never from a service's database. The replay reads the whole log, so a download
takes as long as ``baotuan audit``; that is fine at a town's scale.
"""

from __future__ import annotations

import io
import re
from typing import Any

from flask import Flask, current_app, request, send_file

from services.runtime.auth import Forbidden, TokenRegistry, Unauthenticated
from services.runtime.config import Settings
from services.web.proxy import error_response

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


def register_export(app: Flask, settings: Settings) -> None:
    """Add the download when the audit exporter can be imported; otherwise the page hides the button."""
    try:
        from services.audit.checks import run_audit
        from services.audit.export import write_xlsx
        from services.audit.replay import KafkaSource, ReplayError
    except ImportError:  # pragma: no cover - an install without the audit tool
        app.extensions["baotuan_export_xlsx"] = False
        return
    app.extensions["baotuan_export_xlsx"] = True

    @app.get("/api/export.xlsx")
    def export_xlsx() -> Any:
        registry: TokenRegistry = current_app.extensions["baotuan_tokens"]
        try:
            who = registry.authenticate(request.headers.get("Authorization"))
        except Unauthenticated as exc:
            return error_response(401, "unauthenticated", str(exc), "Authorization")
        collective_id = request.args.get("collective_id", "")
        if not _SLUG.fullmatch(collective_id):
            return error_response(422, "validation_error", "collective_id must be a collective's id", "collective_id")
        try:
            who.require(("accountant", "auditor"), collective=collective_id)
        except Forbidden as exc:
            return error_response(403, "forbidden", str(exc), "Authorization")
        try:
            source = KafkaSource(settings.bootstrap_servers, kafka_config=settings.kafka_client_config())
            result = run_audit(source, keep_memos=True)
        except ReplayError as exc:
            return error_response(503, "broker_unavailable", f"the event log cannot be read: {exc}")
        books, payouts = result.auditor.books, result.auditor.payouts
        if collective_id not in books.collective_ids():
            return error_response(404, "not_found", f"no books of collective {collective_id!r}", "collective_id")
        workbook = io.BytesIO()
        write_xlsx(books, payouts, workbook, collective_id)
        workbook.seek(0)
        return send_file(workbook, mimetype=XLSX, as_attachment=True, download_name=f"baotuan-{collective_id}.xlsx")
