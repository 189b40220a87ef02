"""``manage.py serve`` as operators and siblings meet it: a real process on loopback ports, HTTP and gRPC health,
Prometheus metrics, and a clean stop on SIGTERM that lets an in-flight request finish."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.grpc_health import HealthWatch, check
from tests.support.processes import ServiceProcess
from tests.support.services import scratch_database_url

pytestmark = pytest.mark.slow

SERVICE_NAMES = ["", "exchange-simulator"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One running service shared by the read-only tests of this module (starting one costs seconds). Two gunicorn
    workers, as in production, so the metrics must add up across processes."""
    with scratch_database_url(tmp_path_factory) as database_url:
        process = ServiceProcess(database_url=database_url, log_dir=tmp_path_factory.mktemp("serve"), workers=2)
        process.start()
        try:
            yield process
        finally:
            process.stop()


def test_health_answers_with_the_service_identity(service):
    response = httpx.get(f"{service.base_url}/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["service"] == "exchange-simulator"
    assert {"timestamp", "instance", "version", "environment"} <= set(body)
    assert body["timestamp"].endswith("Z")


def test_ready_checks_the_database_for_real(service):
    response = httpx.get(f"{service.base_url}/api/v1/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    # REDIS_URL is unset for the child: discovery off, which readiness reports instead of hiding.
    assert body["checks"] == {"database": "ok", "redis": "disabled"}
    assert body["details"]["database"]["required"] is True


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_grpc_health_check_answers_serving(service, name):
    assert check(service.grpc_target, name) == "SERVING"


def test_grpc_health_check_does_not_know_other_services(service):
    assert check(service.grpc_target, "custodian-simulator") == "NOT_FOUND"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_grpc_health_watch_streams_the_current_status(service, name):
    with HealthWatch(service.grpc_target, name) as watch:
        assert watch.wait_for("SERVING", timeout=5), watch.statuses


def test_metrics_count_requests_by_view_and_status(service):
    for _ in range(3):
        httpx.get(f"{service.base_url}/api/v1/health")
    httpx.get(f"{service.base_url}/no/such/page")

    response = httpx.get(f"{service.base_url}/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    health = 'django_http_requests_total_by_view_transport_method_total{method="GET",transport="http",view="health"}'
    assert samples[health] >= 3
    assert samples['django_http_responses_total_by_status_total{status="404"}'] >= 1
    assert any(name.startswith("django_http_requests_latency_seconds_by_view_method_bucket") for name in samples)


def test_metrics_add_up_across_gunicorn_workers(service):
    """Each scrape lands on one worker; every scrape must still report the requests all workers served."""
    before = _health_requests(service)
    for _ in range(10):
        httpx.get(f"{service.base_url}/api/v1/health")

    scrapes = [_health_requests(service) for _ in range(6)]

    assert scrapes == [before + 10] * 6


def test_every_log_line_of_the_process_is_json(service):
    httpx.get(f"{service.base_url}/api/v1/health", headers={"X-Request-ID": "serve-log-1"})

    lines = [line for line in service.output().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert record["service"] == "exchange-simulator"
    # gunicorn's own lines come through the same pipeline.
    assert any(json.loads(line)["logger"].startswith("gunicorn") for line in lines)
    # One access line per request, with its request id, from the thread that ran it.
    [access] = [r for r in map(json.loads, lines) if r.get("request_id") == "serve-log-1" and r["message"] == "request"]
    assert (access["route"], access["status"]) == ("/api/v1/health", 200)


def test_sigterm_drains_in_flight_request_flips_grpc_and_exits_zero(migrated_service_database_url, tmp_path):
    """The order a balancer needs: gRPC health turns NOT_SERVING while the process still answers what it has
    already accepted; then it exits 0 in bounded time.

    The in-flight request is one whose headers are still arriving (well within HTTP_HEADER_TIMEOUT): gunicorn's
    worker has accepted the connection and is reading it when SIGTERM lands. Completing it afterwards needs no
    test-only code in the service.
    """
    service = ServiceProcess(database_url=migrated_service_database_url, log_dir=tmp_path).start()
    try:
        with HealthWatch(service.grpc_target, "exchange-simulator") as watch:
            assert watch.wait_for("SERVING", timeout=5)
            in_flight = socket.create_connection(("127.0.0.1", service.http_port), timeout=10)
            in_flight.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: exchange\r\nX-Request-ID: draining-1\r\n")
            time.sleep(0.5)  # the worker has accepted the connection and is reading the rest of the headers

            signalled_at = time.monotonic()
            service.proc.send_signal(signal.SIGTERM)

            assert watch.wait_for("NOT_SERVING", timeout=5), watch.statuses
            _wait_for_output(service, '"Handling signal: term"', timeout=5)  # gunicorn is stopping now
            assert service.proc.poll() is None, "exited before the in-flight request finished"

            in_flight.sendall(b"Connection: close\r\n\r\n")
            reply = _read_all(in_flight)
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
            assert b"x-request-id: draining-1" in reply.lower()  # header names are case-insensitive
            assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["status"] == "healthy"

        exit_code = service.terminate(timeout=30)
        assert exit_code == 0, service.output()[-3000:]
        assert time.monotonic() - signalled_at < 20
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{service.base_url}/api/v1/health", timeout=1)
        events = [json.loads(line).get("message") for line in service.output().splitlines() if line.strip()]
        assert events.index("shutdown_requested") < events.index("service_stopped")
    finally:
        service.stop()


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _health_requests(service: ServiceProcess) -> float:
    samples = _samples(httpx.get(f"{service.base_url}/metrics").text)
    return samples[
        'django_http_requests_total_by_view_transport_method_total{method="GET",transport="http",view="health"}'
    ]


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def _wait_for_output(service: ServiceProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in service.output():
        assert time.monotonic() < deadline, f"{text} not logged:\n{service.output()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"NOT AN HTTP REQUEST\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n", 431, None),
    ],
    ids=["malformed-request-line", "too-many-headers"],
)
def test_requests_gunicorn_refuses_itself_get_the_envelope(service, raw, status, code):
    with socket.create_connection(("127.0.0.1", service.http_port), timeout=5) as sock:
        sock.sendall(raw)
        reply = _read_all(sock)

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    error = json.loads(body)["error"]
    assert error["code"] == (code or "request_header_fields_too_large")
    assert error["request_id"] and f"X-Request-ID: {error['request_id']}".encode() in head
