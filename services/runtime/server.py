"""Production serving: one gunicorn process (gthread) per service.

One worker process on purpose: a service is the single writer of its streams and keeps its
projection's consumer in-process; threads carry the concurrent requests.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from gunicorn.app.base import BaseApplication


def stop_service(server: object, worker: object) -> None:
    """gunicorn's worker_exit hook: stop the app's event service cleanly (its last writes get their signed
    checkpoint, its clients are closed) when the worker ends on SIGTERM or SIGINT."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", None) or {}
    service = extensions.get("baotuan_service")
    if service is not None:
        service.stop()


def serve_wsgi(load_app: Callable[[], object], *, bind: str, threads: int, name: str) -> None:
    """Run the app that ``load_app`` builds (in the worker, after fork) under gunicorn until stopped."""

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", 1)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("accesslog", "-")
            self.cfg.set("proc_name", name)
            # gunicorn's control socket is one path per user: services would delete each other's.
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("worker_exit", stop_service)

        def load(self) -> object:
            app = load_app()
            # What start-up made (modules, the app, its clients: ~80,000 objects) lives as long as the process:
            # out of the collector's sight, a full collection no longer walks it (~30 ms, in some request's
            # wait, every few thousand writes; measured with gc.callbacks, docs/benchmarks.md).
            gc.collect()
            gc.freeze()
            return app

    Server().run()
