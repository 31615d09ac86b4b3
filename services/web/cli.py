"""``baotuan serve-web``: the web page under gunicorn, in front of the three services."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from services.web.books_cache import WorkbookCache

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000


@click.command("serve-web")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--threads", type=int, default=16, show_default=True,
              help="each proxied call holds a thread while the service answers")
@click.option("--warm-export/--no-warm-export", default=False, show_default=True,
              help="replay the log for the Excel download at start-up (in the background), so that the first "
                   "download does not wait for the replay")
def web_command(host: str, port: int, threads: int, warm_export: bool) -> None:
    """Serve the web page for accountants, operators and boards (services from BAOTUAN_*_URL)."""
    from services.runtime.server import serve_wsgi
    from services.web.app import create_app

    def load() -> object:
        app = create_app()
        workbooks = app.extensions.get("baotuan_workbooks")
        if warm_export and workbooks is not None:
            threading.Thread(target=_warm, args=(workbooks,), name="warm-export", daemon=True).start()
        return app

    # One process is plenty for a village's users (and holds the one kept replay of the Excel
    # download); threads carry the waits.
    serve_wsgi(load, bind=f"{host}:{port}", threads=threads, name="baotuan-web")


def _warm(workbooks: WorkbookCache) -> None:
    from services.audit.sources.records import ReplayError

    try:
        workbooks.warm()
    except ReplayError as exc:  # the first download will try again
        log.warning("could not replay the log for the Excel download at start-up: %s", exc)
