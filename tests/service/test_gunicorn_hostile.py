"""The production gunicorn under hostile HTTP: malformed framing, oversized heads and bodies, slowloris,
and a Postgres outage under concurrent load. Every answer is the JSON error shape; no worker dies."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from product_service.auth import mint_token
from product_service.devservers import DevServers, EmbeddedPostgres
from product_service.worker import CLIENT_READ_TIMEOUT
from service_helpers import JWT_SECRET, Gunicorn, running_gunicorn, wait_until

pytestmark = pytest.mark.slow

TOKEN = mint_token(JWT_SECRET, "tests", 3600)
WORKERS = 2
THREADS = 8  # product_service.gunicorn_conf.threads (importing it would set PROMETHEUS_MULTIPROC_DIR here)


@pytest.fixture(scope="module")
def gunicorn(servers: DevServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    log_path = tmp_path_factory.mktemp("gunicorn-hostile") / "gunicorn.log"
    with running_gunicorn(servers, log_path, workers=WORKERS) as server:
        wait_until(lambda: len(worker_pids(server)) == WORKERS, 30, "every worker to start")
        yield server


def exchange(port: int, raw: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` as is; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(raw)
        connection.shutdown(socket.SHUT_WR)
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)
    }
    return int(status_line.split()[1]), headers, body


def worker_pids(server: Gunicorn) -> set[int]:
    pid = server.process.pid
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def post_head(content_length_lines: str) -> bytes:
    return (
        "POST /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\n{content_length_lines}Connection: close\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: abc\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_a_malformed_content_length_is_a_json_400_and_the_workers_live(
    gunicorn: Gunicorn, framing: str
) -> None:
    workers = worker_pids(gunicorn)

    status, headers, body = exchange(gunicorn.port, post_head(framing) + b"{}")

    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert gunicorn.get("/health")[0] == 200
    assert worker_pids(gunicorn) == workers
    assert not any('"level": "error"' in line for line in gunicorn.log_lines())


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431, None),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, None),
        (b"NOT A REQUEST\r\n\r\n", 400, "bad_request"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: unknowncoding\r\n\r\n", 501, "not_implemented"),
    ],
)
def test_errors_gunicorn_answers_itself_have_the_json_error_shape(
    gunicorn: Gunicorn, raw: bytes, status: int, code: str | None
) -> None:
    answered, headers, body = exchange(gunicorn.port, raw)

    assert answered == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == (code or "request_header_fields_too_large")
    assert set(error) == {"code", "message", "details"}


def test_the_openapi_document_lists_the_errors_gunicorn_answers(gunicorn: Gunicorn) -> None:
    document = json.loads(gunicorn.get("/openapi.json")[1])

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert {"400", "414", "431"} <= set(operation["responses"]), (method, path)
            if "requestBody" in operation:
                assert "501" in operation["responses"], (method, path)


def test_a_chunked_body_over_1_mib_is_413_like_a_content_length_one(gunicorn: Gunicorn) -> None:
    document = json.dumps({"name": "Tea", "price": 1, "description": "x" * (1024 * 1024)}).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (document[i : i + 65536] for i in range(0, len(document), 65536))
    )

    status, _, body = exchange(
        gunicorn.port, post_head("Transfer-Encoding: chunked\r\n") + chunks + b"0\r\n\r\n"
    )

    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_entity_too_large"


def test_half_open_connections_leave_health_answering_and_are_dropped_after_the_read_timeout(
    gunicorn: Gunicorn,
) -> None:
    # Requests that sent part of their headers, then nothing: with sync workers, two of these stopped
    # the pod answering for 30 s. Even if one worker took them all, it keeps a thread free.
    stalled = []
    for _ in range(THREADS - 1):
        connection = socket.create_connection(("127.0.0.1", gunicorn.port), timeout=30)
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        stalled.append(connection)
    opened = time.monotonic()
    try:
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            assert gunicorn.get("/health", timeout=5)[0] == 200
            latencies.append(time.monotonic() - started)
        for connection in stalled:
            assert connection.recv(1) == b""  # closed by the server
        dropped_after = time.monotonic() - opened
    finally:
        for connection in stalled:
            connection.close()
    assert max(latencies) < 0.5
    assert CLIENT_READ_TIMEOUT - 0.5 < dropped_after < CLIENT_READ_TIMEOUT + 3
    wait_until(
        lambda: sum("connection closed" in line for line in gunicorn.log_lines()) >= len(stalled),
        10,
        "one line per dropped connection",
    )
    timeouts = [json.loads(line) for line in gunicorn.log_lines() if "client sent nothing" in line]
    assert {line["level"] for line in timeouts} == {"info"}
    assert not any("Traceback" in line for line in gunicorn.log_lines())


def test_health_answers_within_100_ms_while_postgres_is_down_under_4_concurrent_clients(
    servers: DevServers, own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    with running_gunicorn(
        DevServers(own_postgres.url, servers.redis_url), tmp_path / "gunicorn.log", workers=WORKERS
    ) as server:
        own_postgres.stop()
        done = threading.Event()
        answers: list[tuple[int, float]] = []

        def client() -> None:
            while not done.is_set():
                started = time.monotonic()
                status, _ = server.get(f"/api/v1/products/{uuid.uuid4()}", timeout=30)
                answers.append((status, time.monotonic() - started))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        try:
            health = []
            wait_until(lambda: len(answers) >= 8, 30, "the clients' first answers")
            for _ in range(20):
                started = time.monotonic()
                assert server.get("/health", timeout=5)[0] == 200
                health.append(time.monotonic() - started)
        finally:
            done.set()
            for thread in clients:
                thread.join()

    assert {status for status, _ in answers} == {503}
    assert max(seconds for _, seconds in answers) < 1.0
    assert statistics.median(health) < 0.1
    assert max(health) < 0.5
