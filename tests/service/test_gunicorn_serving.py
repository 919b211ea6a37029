"""The production gunicorn configuration, for real: several workers, metrics, logs, concurrency, SIGTERM."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from product_service.auth import mint_token
from product_service.devservers import DevServers
from product_service.metrics import ServiceMetrics
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import JWT_SECRET, Gunicorn, running_gunicorn, wait_until

pytestmark = pytest.mark.slow

PRODUCT_ROUTE = "/api/v1/products/<product_id>"
TOKEN = mint_token(JWT_SECRET, "tests", 3600)


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("prometheus")
    # A file a previous run left behind: its count must not leak into this run's metrics.
    shutil.copy(_stale_counter_file(tmp_path_factory.mktemp("stale")), directory / "counter_999999.db")
    return directory


@pytest.fixture(scope="module")
def gunicorn(
    servers: DevServers, metrics_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with running_gunicorn(servers, log_path, workers=2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as server:
        yield server


def request(
    base_url: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    req = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_metrics_files_of_a_previous_run_are_wiped_at_start(gunicorn: Gunicorn, metrics_dir: Path) -> None:
    assert not (metrics_dir / "counter_999999.db").exists()
    status, body = gunicorn.get("/metrics")
    assert status == 200
    assert "stale_marker" not in body.decode()


def test_a_scrape_while_a_worker_creates_its_metrics_file_sums_the_others(tmp_path: Path) -> None:
    # A booting worker's file exists at 0 bytes until prometheus_client sizes it; reading it failed the
    # whole scrape with struct.error (a /metrics answered 500 right after gunicorn started).
    _stale_counter_file(tmp_path)  # another worker's counter, at 41
    (tmp_path / "counter_424242.db").touch()

    body = ServiceMetrics(multiprocess_dir=tmp_path).exposition().decode()

    assert "stale_marker_total 41.0" in body


@pytest.mark.usefixtures("empty_catalog")
def test_200_concurrent_creates_make_exactly_200_rows(
    gunicorn: Gunicorn, db: psycopg.Connection[Any]
) -> None:
    def create(i: int) -> tuple[int, Any]:
        return request(gunicorn.base_url, "POST", "/api/v1/products", {"name": f"p{i}", "price": f"{i}.99"})

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(create, range(200)))

    assert [status for status, _ in results] == [201] * 200
    assert len({body["id"] for _, body in results}) == 200
    row = db.execute("SELECT count(*), count(DISTINCT id) FROM products").fetchone()
    assert row == (200, 200)


def test_metrics_sum_the_requests_of_both_workers(gunicorn: Gunicorn, metrics_dir: Path) -> None:
    _, product = request(gunicorn.base_url, "POST", "/api/v1/products", {"name": "m", "price": 1})
    path = f"/api/v1/products/{product['id']}"
    before = _route_count(gunicorn.get("/metrics")[1].decode())
    sent = 0

    def both_workers_counted() -> bool:
        nonlocal sent
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: request(gunicorn.base_url, "GET", path)[0], range(40)))
        assert statuses == [200] * 40
        sent += 40
        return len([count for count in _route_count_per_worker(metrics_dir).values() if count > 0]) >= 2

    wait_until(both_workers_counted, 60, "requests served by both workers")

    after = _route_count(gunicorn.get("/metrics")[1].decode())
    assert after - before == sent
    assert sum(_route_count_per_worker(metrics_dir).values()) == after


def test_metrics_label_routes_by_template_and_count_cache_results(gunicorn: Gunicorn) -> None:
    text = gunicorn.get("/metrics")[1].decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}

    routes = {sample.labels["route"] for sample in families["http_server_requests"].samples}
    assert PRODUCT_ROUTE in routes
    assert not any(re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", route) for route in routes)
    assert "http_server_request_duration_seconds" in families
    results = {sample.labels["result"] for sample in families["product_cache_lookups"].samples}
    assert {"hit", "miss"} <= results
    assert "product_db_pool_connections_in_use" in families


def test_access_log_is_one_json_object_per_request(gunicorn: Gunicorn) -> None:
    gunicorn.get("/health?probe=1")

    def logged() -> bool:
        return any('"/health"' in line and "probe=1" in line for line in gunicorn.log_lines())

    wait_until(logged, 10, "the access log line")
    lines = [json.loads(line) for line in gunicorn.log_lines() if line.startswith("{")]
    access = [
        line for line in lines if line["logger"] == "gunicorn.access" and line.get("query") == "probe=1"
    ]
    assert access[0]["status"] == 200
    assert access[0]["method"] == "GET"
    assert {"duration_ms", "trace_id", "span_id", "remote_addr"} <= set(access[0])
    assert all(line.startswith("{") for line in gunicorn.log_lines() if line.strip())


def headers_of(gunicorn: Gunicorn, path: str, **sent: str) -> dict[str, str]:
    request = urllib.request.Request(gunicorn.base_url + path, headers=sent)  # noqa: S310 (127.0.0.1)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (127.0.0.1)
            return dict(response.headers)
    except urllib.error.HTTPError as error:
        return dict(error.headers)


@pytest.mark.parametrize(
    ("path", "cache_control"),
    [
        ("/api/v1/products", "no-store"),
        ("/api/v1/products/not-a-uuid", "no-store"),
        ("/openapi.json", "public, max-age=300"),
        ("/health", "no-store"),
    ],
)
def test_answers_carry_protective_headers_and_no_server_banner(
    gunicorn: Gunicorn, path: str, cache_control: str
) -> None:
    headers = headers_of(gunicorn, path)

    assert "Server" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == cache_control
    assert "Strict-Transport-Security" not in headers  # served over plain HTTP


def test_answers_behind_a_tls_proxy_ask_for_https_only(gunicorn: Gunicorn) -> None:
    headers = headers_of(gunicorn, "/api/v1/products", **{"X-Forwarded-Proto": "https"})

    assert headers["Strict-Transport-Security"] == "max-age=31536000"


# In the tests below this client is a trusted proxy: 127.0.0.1 is in gunicorn's default FORWARDED_ALLOW_IPS,
# as the ingress controller is in Kubernetes' `*`.


def test_the_access_log_names_the_client_the_trusted_proxy_put_last_in_x_forwarded_for(
    gunicorn: Gunicorn,
) -> None:
    headers_of(gunicorn, "/health?client=1", **{"X-Forwarded-For": "203.0.113.9, 198.51.100.7"})

    def logged() -> bool:
        return any("client=1" in line for line in gunicorn.log_lines())

    wait_until(logged, 10, "the access log line")
    [line] = [json.loads(text) for text in gunicorn.log_lines() if "client=1" in text]
    # 203.0.113.9 is what the client itself wrote; the proxy appended the address it saw.
    assert (line["remote_addr"], line["client_addr"]) == ("127.0.0.1", "198.51.100.7")


def test_a_proxy_passing_on_a_clients_script_name_cannot_open_an_internal_path(gunicorn: Gunicorn) -> None:
    """Traefik passes a client's `SCRIPT_NAME` header on; gunicorn's default forwarder_headers would take
    it from a trusted proxy, strip `/api` from `/api/metrics` and serve /metrics on the public route."""
    request = urllib.request.Request(gunicorn.base_url + "/api/metrics", headers={"SCRIPT_NAME": "/api"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (127.0.0.1)
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()

    assert status == 404 and b"http_server_requests" not in body


def test_a_proxy_says_https_by_x_forwarded_proto_alone(gunicorn: Gunicorn) -> None:
    """X-Forwarded-Ssl and X-Forwarded-Protocol are not among the headers Traefik replaces, so a client
    sets them; gunicorn's default secure_scheme_headers would take either as the proxy's word."""
    for header, value in (("X-Forwarded-Ssl", "on"), ("X-Forwarded-Protocol", "ssl")):
        assert "Strict-Transport-Security" not in headers_of(gunicorn, "/api/v1/products", **{header: value})


def test_sigterm_lets_in_flight_requests_finish_and_exits_0(
    servers: DevServers, tmp_path: Path, db: psycopg.Connection[Any]
) -> None:
    with running_gunicorn(servers, tmp_path / "gunicorn.log", workers=2) as server:
        load_results = _drive_load(server.base_url, threads=8, requests_per_thread=40)
        in_flight = [_start_slow_create(server.port, f"in-flight {i}") for i in range(2)]
        # Both slow requests must be inside workers (accepted), not waiting in the listen queue.
        wait_until(lambda: _accept_queue_length(server.port) == 0, 10, "workers to accept both requests")
        listener = _listening_socket_inode(server.port)

        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: not _holds_socket(server.process.pid, listener), 10, "gunicorn to stop listening")
        responses = [_finish_slow_create(connection, rest) for connection, rest in in_flight]

        assert server.process.wait(timeout=30) == 0
    assert len(load_results) == 8 * 40
    assert sorted({status for status, _ in load_results}) == [200, 201]
    assert [status for status, _ in responses] == [201, 201], responses
    names = [json.loads(body)["name"] for _, body in responses]
    stored = db.execute("SELECT count(*) FROM products WHERE name = ANY(%s)", (names,)).fetchone()
    assert stored == (2,)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def _drive_load(base_url: str, threads: int, requests_per_thread: int) -> list[tuple[int, Any]]:
    """Creates and reads from several threads; every result is kept."""
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(requests_per_thread // 2):
            created = request(base_url, "POST", "/api/v1/products", {"name": f"load {n}-{i}", "price": 1})
            with lock:
                results.append(created)
            if created[0] == 201:
                read = request(base_url, "GET", f"/api/v1/products/{created[1]['id']}")
                with lock:
                    results.append(read)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def _start_slow_create(port: int, name: str) -> tuple[socket.socket, bytes]:
    """Send the headers and half of a create request's body; return the socket and the other half."""
    body = json.dumps({"name": name, "price": "2.50", "description": "x" * 1500}).encode()
    head = (
        f"POST /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    half = len(body) // 2
    connection.sendall(head + body[:half])
    return connection, body[half:]


def _finish_slow_create(connection: socket.socket, rest: bytes) -> tuple[int, bytes]:
    with connection:
        connection.sendall(rest)
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _listen_entries(port: int) -> list[list[str]]:
    """Rows of /proc/net/tcp for the LISTEN socket on 127.0.0.1:`port`."""
    local = f"0100007F:{port:04X}"
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return [row for row in rows if row[1] == local and row[3] == "0A"]


def _accept_queue_length(port: int) -> int:
    # For a listening socket, rx_queue is the number of connections waiting to be accepted.
    return sum(int(row[4].split(":")[1], 16) for row in _listen_entries(port))


def _listening_socket_inode(port: int) -> str:
    return _listen_entries(port)[0][9]


def _holds_socket(pid: int, inode: str) -> bool:
    target = f"socket:[{inode}]"
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return False


def _route_count(metrics_text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "http_server_requests_total"
        and sample.labels.get("route") == PRODUCT_ROUTE
        and sample.labels.get("method") == "GET"
    )


def _route_count_per_worker(metrics_dir: Path) -> dict[str, float]:
    """GET-by-id requests counted in each worker's own file (counter_<pid>.db)."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        isolated = metrics_dir.parent / f"isolated-{path.stem}"
        isolated.mkdir(exist_ok=True)
        shutil.copy(path, isolated / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(isolated))
        counts[path.stem] = sum(
            sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if sample.name == "http_server_requests_total"
            and sample.labels.get("route") == PRODUCT_ROUTE
            and sample.labels.get("method") == "GET"
        )
        shutil.rmtree(isolated)
    return counts


def _stale_counter_file(directory: Path) -> Path:
    """A counter file as a worker of an earlier run would have written it."""
    script = "from prometheus_client import Counter\nCounter('stale_marker', 'left over').inc(41)\n"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    return next(directory.glob("counter_*.db"))


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver that keeps every exported span."""

    spans: ClassVar[list[tuple[str, Any]]] = []  # (service name, span)

    def do_POST(self) -> None:
        export = ExportTraceServiceRequest()
        export.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((attributes.get("service.name", ""), span) for span in scope_spans.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_workers_export_traces_over_otlp_when_an_endpoint_is_set(servers: DevServers, tmp_path: Path) -> None:
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    try:
        with running_gunicorn(
            servers,
            tmp_path / "gunicorn.log",
            workers=1,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
        ) as server:
            _, product = request(server.base_url, "POST", "/api/v1/products", {"name": "traced", "price": 1})

            def exported() -> bool:
                names = {span.name for _, span in _Collector.spans}
                return "POST /api/v1/products" in names and any("INSERT" in name for name in names)

            wait_until(exported, 30, "the worker to export the request's spans")
            access = [json.loads(line) for line in server.log_lines() if '"path": "/api/v1/products"' in line]
    finally:
        collector.shutdown()
        collector.server_close()

    assert product["name"] == "traced"
    assert {service for service, _ in _Collector.spans} == {"product-service"}
    request_span = next(span for _, span in _Collector.spans if span.name == "POST /api/v1/products")
    trace_ids = {span.trace_id.hex() for _, span in _Collector.spans if "INSERT" in span.name}
    assert request_span.trace_id.hex() in trace_ids
    assert access[0]["trace_id"] == request_span.trace_id.hex()


def test_a_booting_worker_imports_no_module_but_the_wsgi_entry_point(
    servers: DevServers, tmp_path: Path
) -> None:
    # What a worker runs after fork (post_fork's start_tracing, then gunicorn imports the app), measured
    # against what the master imported with the config: an import left to the worker is paid again at
    # every max_requests recycle (the OTLP exporter's lazy `import requests` cost 60 to 235 ms of CPU).
    probe = (
        "import sys\n"
        "import product_service.gunicorn_conf as conf\n"
        "before = set(sys.modules)\n"
        "conf.post_fork(None, None)\n"
        "import product_service.wsgi\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "JWT_SECRET": JWT_SECRET,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        # Tracing on, so that the exporter is built; nothing listens there and nothing is exported.
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    }

    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['product_service.wsgi']"


def test_a_full_collection_in_a_worker_leaves_the_masters_pages_shared(tmp_path: Path) -> None:
    # The master's when_ready, then a fork and a full collection in the child, as a worker makes now and
    # then: how much of the inherited memory it copied. Without the freeze it copied 29 MiB here, every
    # page holding one of the master's 86,000 tracked objects.
    probe = (
        "import gc, os\n"
        "import product_service.gunicorn_conf as conf\n"
        "def private_dirty_kib():\n"
        "    rows = open('/proc/self/smaps_rollup').read().splitlines()\n"
        "    return next(int(row.split()[1]) for row in rows if row.startswith('Private_Dirty:'))\n"
        "conf.when_ready(None)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    before = private_dirty_kib()\n"
        "    gc.collect()\n"
        "    print(private_dirty_kib() - before, flush=True)\n"
        "    os._exit(0)\n"
        "assert os.waitpid(pid, 0)[1] == 0\n"
    )
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # tracing's modules imported, as in prod
    }

    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 2048, f"a worker's full collection copied {result.stdout.strip()} KiB"


def test_only_workers_connect_to_postgres_and_redis(gunicorn: Gunicorn, servers: DevServers) -> None:
    postgres_port, redis_port = urlsplit(servers.database_url).port, urlsplit(servers.redis_url).port
    master = gunicorn.process.pid
    workers = [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]

    def connected_ports(pid: int) -> set[int]:
        inodes = {
            os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
        }
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        return {int(row[2].split(":")[1], 16) for row in rows if row[9] in inodes and row[3] == "01"}

    assert len(workers) == 2
    # Pools and Redis clients are opened after fork; each worker's pool keeps its minimum connection.
    assert connected_ports(master).isdisjoint({postgres_port, redis_port})
    wait_until(
        lambda: all(postgres_port in connected_ports(worker) for worker in workers),
        10,
        "each worker's pool to hold a Postgres connection",
    )


def test_recycled_workers_leave_no_live_gauges_behind(servers: DevServers, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    with running_gunicorn(
        servers, tmp_path / "gunicorn.log", workers=2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    ) as server:

        def gauge_pids() -> set[int]:
            return {int(path.stem.rpartition("_")[2]) for path in metrics_dir.glob("gauge_livesum_*.db")}

        _, product = request(server.base_url, "POST", "/api/v1/products", {"name": "r", "price": 1})
        # A worker writes its live gauges once its app is open, after its signal handlers are set: a
        # SIGTERM sent to a worker still booting is lost, and it would never be replaced.
        wait_until(lambda: len(_children(server.process.pid) & gauge_pids()) == 2, 30, "both workers booted")
        first_workers = _children(server.process.pid)
        # Recycle both workers by hand (what max_requests does): gunicorn replaces each one.
        for pid in first_workers:
            os.kill(pid, signal.SIGTERM)
        wait_until(
            lambda: len(_children(server.process.pid) - first_workers) == 2, 30, "two replacement workers"
        )
        for _ in range(20):
            assert request(server.base_url, "GET", f"/api/v1/products/{product['id']}")[0] == 200

        def only_live_gauge_files() -> bool:
            return gauge_pids() <= _children(server.process.pid)

        wait_until(only_live_gauge_files, 10, "child_exit to drop the dead workers' gauge files")
        text = server.get("/metrics")[1].decode()
    open_connections = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "product_db_pool_connections_open"
    )
    assert 1 <= open_connections <= 2 * 4  # live workers only, at most DB_POOL_MAX_SIZE each
    assert any(path.name.startswith("counter_") for path in metrics_dir.iterdir())  # counters stay summed


def _children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
