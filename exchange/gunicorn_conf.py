"""gunicorn settings used by ``manage.py serve`` (and the Dockerfile through it)."""

from __future__ import annotations

import os

from django.conf import settings

# Log through the same structured pipeline as the application: one JSON object per line on stdout.
# gunicorn's own access log is off: RequestIdMiddleware writes one access line per request with the request id.
logconfig_dict = settings.LOGGING | {
    "loggers": {
        **settings.LOGGING.get("loggers", {}),
        "gunicorn.error": {"handlers": ["stdout"], "level": settings.LOG_LEVEL, "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    }
}
accesslog = None
# gunicorn's native ASGI worker on uvloop (exchange/gunicorn_worker.py adds read timeouts): connections are read
# on an event loop, so slow clients hold sockets, not threads; complete requests run on the Django WSGI
# application in a pool of WEB_THREADS threads per worker (exchange/asgi.py). Measured on this machine
# (docs/benchmarks.md): the fastest of the models tried, and 50 slowloris sockets did not slow a normal client.
worker_class = "exchange.gunicorn_worker.ExchangeASGIWorker"
asgi_loop = "uvloop"
# Requests finishing when SIGTERM arrives get this long before workers are killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# A worker whose event loop does not report for this long is restarted; the same bound caps how long the worker
# waits for a request body (the protocol's own HTTP_BODY_TIMEOUT closes a stalled one sooner).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Idle keep-alive connections are closed after this long; it also bounds slow headers after the first request.
keepalive = 5
# Load the app once in the master and fork: faster start, less memory on a 2-core box.
preload_app = False
# gunicorn's control socket lives at one fixed path per user; two instances on one machine would fight over it,
# and we do not use it (the serve command supervises gunicorn by signals).
control_socket_disable = True


def child_exit(server: object, worker: object) -> None:
    """gunicorn hook: drop a dead worker's live gauges from the shared metrics directory (see serve.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
