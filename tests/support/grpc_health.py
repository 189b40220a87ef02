"""Client side of grpc.health.v1 for tests: one-off Check, and a Watch stream recorded in the background."""

from __future__ import annotations

import queue
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_STATUS_NAMES = health_pb2.HealthCheckResponse.ServingStatus.Name


def check(target: str, service: str = "", timeout: float = 2.0) -> str:
    """The status name ("SERVING", "NOT_SERVING", ...) or the gRPC error code name ("NOT_FOUND", "UNAVAILABLE")."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return exc.code().name  # type: ignore[no-any-return]
        return _STATUS_NAMES(reply.status)  # type: ignore[no-any-return]


def wait_for_check(target: str, service: str, expected: str, timeout: float) -> str:
    """Poll Check until it answers ``expected``; returns the last answer (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        status = check(target, service)
        if status == expected or time.monotonic() >= deadline:
            return status
        time.sleep(0.1)


class HealthWatch:
    """A Watch stream read by a background thread; every status it delivers is kept in order."""

    def __init__(self, target: str, service: str = "") -> None:
        self._channel = grpc.insecure_channel(target)
        self._call = health_pb2_grpc.HealthStub(self._channel).Watch(health_pb2.HealthCheckRequest(service=service))
        self.statuses: list[str] = []
        self.ended_with: str | None = None
        self._updates: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"health-watch-{service or 'server'}")
        self._thread.start()

    def _read(self) -> None:
        try:
            for reply in self._call:
                status = _STATUS_NAMES(reply.status)
                self.statuses.append(status)
                self._updates.put(status)
        except grpc.RpcError as exc:
            self.ended_with = exc.code().name
        self._updates.put("")  # wakes a waiter when the stream ends

    def wait_for(self, expected: str, timeout: float) -> bool:
        """True once the stream has delivered ``expected`` (now or earlier), False at the deadline or stream end."""
        if expected in self.statuses:
            return True
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                status = self._updates.get(timeout=remaining)
            except queue.Empty:
                return False
            if status == expected:
                return True
            if status == "":
                return False
        return False

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(timeout=5)
        self._channel.close()

    def __enter__(self) -> HealthWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
