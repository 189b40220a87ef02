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
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
# Threads per worker; only the gthread worker class uses more than one.
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Requests finishing when SIGTERM arrives get this long before workers are killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
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
