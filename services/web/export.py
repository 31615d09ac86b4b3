"""``GET /api/export.xlsx``: placeholder until the audit exporter exists (see register_export)."""

from __future__ import annotations

from flask import Flask

from services.runtime.config import Settings


def register_export(app: Flask, settings: Settings) -> None:
    """Add the Excel download when the audit exporter is available; otherwise the page hides the button."""
    app.extensions["baotuan_export_xlsx"] = False
