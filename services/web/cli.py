"""``baotuan serve-web``: the web page under gunicorn, in front of the three services."""

from __future__ import annotations

import click

DEFAULT_PORT = 8000


@click.command("serve-web")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--threads", type=int, default=16, show_default=True,
              help="each proxied call holds a thread while the service answers")
def web_command(host: str, port: int, threads: int) -> None:
    """Serve the web page for accountants, operators and boards (services from BAOTUAN_*_URL)."""
    from services.runtime.server import serve_wsgi
    from services.web.app import create_app

    # Stateless: one process is plenty for a village's users; threads carry the waits.
    serve_wsgi(create_app, bind=f"{host}:{port}", threads=threads, name="baotuan-web")
