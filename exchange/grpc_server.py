"""The gRPC server: the standard grpc.health.v1.Health service, whose status follows readiness.

It answers for the empty service name (the server as a whole) and for SERVICE_NAME ("exchange-simulator"),
which a sibling checks by name. A background thread re-runs the readiness checks every
READINESS_POLL_INTERVAL and flips both names between SERVING and NOT_SERVING, so Watch streams see changes.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import structlog
from django.conf import settings
from django.db import connections
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from exchange.health import readiness

logger = structlog.get_logger("exchange.grpc")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcHealthServer:
    def __init__(self, *, host: str, port: int, poll_interval: float) -> None:
        self.host, self.port, self.poll_interval = host, port, poll_interval
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="grpc"))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names = ("", settings.SERVICE_NAME)
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._follow_readiness, name="grpc-readiness", daemon=True)
        self._serving: bool | None = None

    def start(self) -> int:
        bound = self.server.add_insecure_port(f"{self.host}:{self.port}")
        if not bound:
            raise RuntimeError(f"cannot bind gRPC to {self.host}:{self.port}")
        self.port = bound
        # NOT_SERVING until the first readiness check passes.
        self._set(False)
        self.server.start()
        self._update()
        self._monitor.start()
        logger.info("grpc_started", grpc_port=self.port, services=list(self.service_names))
        return bound

    def _set(self, serving: bool) -> None:
        if serving == self._serving:
            return
        for name in self.service_names:
            self.health.set(name, SERVING if serving else NOT_SERVING)
        if self._serving is not None:
            logger.warning("grpc_health_changed", serving=serving) if not serving else logger.info(
                "grpc_health_changed", serving=serving
            )
        self._serving = serving

    def _update(self) -> None:
        result = readiness()
        self._set(result.ready)

    def _follow_readiness(self) -> None:
        try:
            while not self._stop.wait(self.poll_interval):
                try:
                    self._update()
                except Exception:
                    logger.exception("readiness_poll_failed")
                    self._set(False)
        finally:
            connections.close_all()

    def stop(self, grace: float) -> None:
        """Flip to NOT_SERVING first so balancers stop sending, then let in-flight calls finish."""
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait(grace + 1)
        logger.info("grpc_stopped")
