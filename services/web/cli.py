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
    from gunicorn.app.base import BaseApplication

    bind = f"{host}:{port}"

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            # Stateless: one process is plenty for a village's users; threads carry the waits.
            self.cfg.set("workers", 1)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("accesslog", "-")
            self.cfg.set("proc_name", "baotuan-web")
            self.cfg.set("control_socket_disable", True)

        def load(self) -> object:
            from services.web.app import create_app

            return create_app()

    Server().run()
