"""The gRPC server as operations see it: deadlines that stop work, health and reflection, metrics,
traces and JSON logs, outages of Postgres and Redis, consistency with REST, and SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import grpc
import psycopg
import pytest
import redis
from flask.testing import FlaskClient
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2
from grpc_helpers import GrpcServer, bearer, grpc_process, grpc_settings, health_status, serving
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from product_service.devservers import DevServers, EmbeddedPostgres, EmbeddedValkey
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc
from product_service.grpc.server import CONNECTION_OPTIONS
from service_helpers import create_product, logged_json, wait_until
from test_product_cache import metric_total, spans_of

SERVICE = "product.v1.ProductService"
RPC_LOG = logging.getLogger("product_service.grpc.interceptors")


@pytest.fixture(scope="module")
def grpc_server(servers: DevServers) -> Iterator[GrpcServer]:
    with serving(grpc_settings(servers)) as server:
        yield server


@pytest.fixture
def traced_grpc(servers: DevServers) -> Iterator[tuple[GrpcServer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with serving(grpc_settings(servers), tracer_provider=provider) as server:
        yield server, exporter
    provider.shutdown()


def create(stub: pb_grpc.ProductServiceStub, token: str, **fields: Any) -> pb.Product:
    request = pb.CreateProductRequest(**{"name": "Tea", "price_decimal": "3.50", **fields})
    return stub.CreateProduct(request, metadata=bearer(token), timeout=5)


def handled(server: GrpcServer, method: str, code: str) -> float:
    return metric_total(server.metrics(), "grpc_server_handled_total", grpc_method=method, grpc_code=code)


def rename(product_id: str, name: str) -> pb.UpdateProductRequest:
    return pb.UpdateProductRequest(
        product=pb.Product(id=product_id, name=name), update_mask=field_mask_pb2.FieldMask(paths=["name"])
    )


class RowLock:
    """Holds products' row locks in an open transaction of its own until `release`."""

    def __init__(self, dsn: str, password: str | None) -> None:
        self._conn = psycopg.connect(dsn, password=password)

    def lock(self, product_id: str) -> None:
        self._conn.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", (product_id,))

    def release(self) -> None:
        self._conn.rollback()


@pytest.fixture
def row_lock(db: psycopg.Connection[Any]) -> Iterator[RowLock]:
    holder = RowLock(db.info.dsn, db.info.password)
    yield holder
    holder.release()
    holder._conn.close()


def lock_waiters(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
    return int(row[0]) if row else 0


def test_a_deadline_cancels_the_write_in_postgres_instead_of_applying_it_late(
    grpc_server: GrpcServer, write_token: str, row_lock: RowLock, db: psycopg.Connection[Any]
) -> None:
    product = create(grpc_server.stub, write_token, name="before")
    row_lock.lock(product.id)
    expired_before = handled(grpc_server, "UpdateProduct", "DEADLINE_EXCEEDED")

    with pytest.raises(grpc.RpcError) as raised:
        grpc_server.stub.UpdateProduct(rename(product.id, "after"), metadata=bearer(write_token), timeout=0.5)

    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # The handler ends while the row is still locked: its UPDATE was cancelled, not left waiting.
    wait_until(
        lambda: handled(grpc_server, "UpdateProduct", "DEADLINE_EXCEEDED") == expired_before + 1,
        5,
        "the server to give up the UPDATE at the deadline",
    )
    assert lock_waiters(db) == 0
    name = db.execute("SELECT name FROM products WHERE id = %s", (product.id,)).fetchone()
    assert name == ("before",)


def test_an_rpc_with_time_left_is_not_cancelled(grpc_server: GrpcServer, write_token: str) -> None:
    product = create(grpc_server.stub, write_token)

    renamed = grpc_server.stub.UpdateProduct(
        rename(product.id, "renamed"), metadata=bearer(write_token), timeout=5
    )
    # The connection it used serves the next RPC normally: the end-of-RPC callback cancelled nothing.
    again = grpc_server.stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=5)

    assert renamed.name == again.name == "renamed"


def test_rpcs_beyond_the_concurrency_cap_are_refused_at_once_and_health_still_answers(
    servers: DevServers, write_token: str, row_lock: RowLock, db: psycopg.Connection[Any]
) -> None:
    with serving(grpc_settings(servers, GRPC_MAX_CONCURRENT_RPCS="2")) as server:
        products = [create(server.stub, write_token, name=f"held {i}") for i in range(2)]
        for product in products:
            row_lock.lock(product.id)
        held = [
            server.stub.UpdateProduct.future(rename(p.id, "after"), metadata=bearer(write_token), timeout=10)
            for p in products
        ]
        wait_until(lambda: lock_waiters(db) == 2, 5, "two UpdateProducts waiting on their row locks")

        with pytest.raises(grpc.RpcError) as refused:
            server.stub.GetProduct(pb.GetProductRequest(id=products[0].id), timeout=5)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details() == "the server is at its limit of 2 concurrent RPCs, retry later"
        assert health_status(server.channel) == health_pb2.HealthCheckResponse.SERVING

        row_lock.release()
        assert [call.result().name for call in held] == ["after", "after"]
        assert server.stub.GetProduct(pb.GetProductRequest(id=products[0].id), timeout=5).name == "after"


@pytest.mark.parametrize("option", ["grpc.max_connection_idle_ms", "grpc.max_connection_age_ms"])
def test_the_server_closes_connections_past_their_idle_and_age_limits(
    servers: DevServers, option: str
) -> None:
    # gRPC ignores an option it does not know: shortened, each must make the server close the connection
    # (GOAWAY), which turns the client's channel from READY back to IDLE.
    ready_then_idle = threading.Event()
    seen: list[grpc.ChannelConnectivity] = []

    def watch(state: grpc.ChannelConnectivity) -> None:
        seen.append(state)
        if state is grpc.ChannelConnectivity.IDLE and grpc.ChannelConnectivity.READY in seen:
            ready_then_idle.set()

    with mock.patch.dict(CONNECTION_OPTIONS, {option: 300}), serving(grpc_settings(servers)) as server:
        server.channel.subscribe(watch, try_to_connect=False)
        server.stub.ListProducts(pb.ListProductsRequest(), timeout=5)

        assert ready_then_idle.wait(5), seen


def test_health_reports_serving_for_the_server_and_the_product_service(grpc_server: GrpcServer) -> None:
    assert health_status(grpc_server.channel) == health_pb2.HealthCheckResponse.SERVING
    assert (
        health_status(grpc_server.channel, "product.v1.ProductService")
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_reflection_lists_the_product_health_and_reflection_services(grpc_server: GrpcServer) -> None:
    database = ProtoReflectionDescriptorDatabase(grpc_server.channel)

    services = set(database.get_services())
    methods = database.FindFileContainingSymbol("product.v1.ProductService").service[0].method

    assert services == {
        "product.v1.ProductService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert [method.name for method in methods] == [
        "GetProduct", "ListProducts", "CreateProduct", "UpdateProduct", "DeleteProduct", "BatchGetProducts",
    ]  # fmt: skip
    # Under its own path, as other protos import it, with the files it imports.
    assert database.FindFileContainingSymbol("product.v1.ProductService").name == "product/v1/product.proto"
    assert database.FindFileByName("google/protobuf/field_mask.proto").package == "google.protobuf"


def test_reflection_serves_no_file_but_the_apis_even_with_tracing_on(
    traced_grpc: tuple[GrpcServer, InMemorySpanExporter],
) -> None:
    # Loaded in this process, like the OTLP exporter's protos in a traced server.
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    server, _ = traced_grpc
    database = ProtoReflectionDescriptorDatabase(server.channel)

    for name in (
        trace_service_pb2.DESCRIPTOR.name,
        "product_service/grpc/generated/product/v1/product.proto",
    ):
        with pytest.raises(KeyError):
            database.FindFileByName(name)
    with pytest.raises(KeyError):
        database.FindFileContainingSymbol("opentelemetry.proto.collector.trace.v1.TraceService")
    # (grpcio-health-checking registers its proto under its Python package path.)
    assert database.FindFileContainingSymbol("grpc.health.v1.Health").name == "grpc_health/v1/health.proto"


def test_metrics_count_rpcs_by_method_and_code(grpc_server: GrpcServer, write_token: str) -> None:
    product = create(grpc_server.stub, write_token)
    ok_before = handled(grpc_server, "GetProduct", "OK")
    not_found_before = handled(grpc_server, "GetProduct", "NOT_FOUND")

    grpc_server.stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=5)
    with pytest.raises(grpc.RpcError):
        grpc_server.stub.GetProduct(pb.GetProductRequest(id=str(uuid.uuid4())), timeout=5)

    assert handled(grpc_server, "GetProduct", "OK") == ok_before + 1
    assert handled(grpc_server, "GetProduct", "NOT_FOUND") == not_found_before + 1
    latency = metric_total(
        grpc_server.metrics(),
        "grpc_server_handling_seconds_count",
        grpc_service="product.v1.ProductService",
        grpc_method="GetProduct",
        grpc_code="OK",
    )
    assert latency == ok_before + 1


def test_rpcs_are_traced_and_logged_as_json_with_the_trace_id(
    traced_grpc: tuple[GrpcServer, InMemorySpanExporter], write_token: str
) -> None:
    server, exporter = traced_grpc
    product = create(server.stub, write_token)
    exporter.clear()
    with logged_json(RPC_LOG, logging.INFO) as lines:
        server.stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=5)
        health_status(server.channel)

    spans = exporter.get_finished_spans()
    [rpc_span] = [span for span in spans if span.name == "/product.v1.ProductService/GetProduct"]
    assert not [span for span in spans if "Health" in span.name]
    [line] = lines
    assert line["message"] == "rpc"
    assert (line["grpc_method"], line["grpc_code"]) == ("GetProduct", "OK")
    assert line["trace_id"] == format(rpc_span.context.trace_id, "032x")


@pytest.mark.parametrize(
    ("allowed", "client"),
    [("127.0.0.1", "198.51.100.7"), ("10.0.0.0/8", "127.0.0.1")],
    ids=["from-a-trusted-proxy", "from-anyone-else"],
)
def test_the_rpc_log_names_the_client_a_trusted_proxy_put_last_in_x_forwarded_for(
    servers: DevServers, allowed: str, client: str
) -> None:
    """Traefik appends the address it received an RPC from to its x-forwarded-for metadata, as to any
    request's X-Forwarded-For; an untrusted peer's header names nobody."""
    with (
        logged_json(RPC_LOG, logging.INFO) as lines,
        serving(grpc_settings(servers, FORWARDED_ALLOW_IPS=allowed)) as server,
        pytest.raises(grpc.RpcError),
    ):
        server.stub.GetProduct(
            pb.GetProductRequest(id=str(uuid.uuid4())),
            metadata=[("x-forwarded-for", "203.0.113.9, 198.51.100.7")],
            timeout=5,
        )

    [line] = lines
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    assert line["client_addr"] == client


def test_a_callers_traceparent_continues_its_trace_into_the_rpc(
    traced_grpc: tuple[GrpcServer, InMemorySpanExporter], write_token: str
) -> None:
    server, exporter = traced_grpc
    product = create(server.stub, write_token)
    exporter.clear()
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    server.stub.GetProduct(
        pb.GetProductRequest(id=product.id),
        metadata=[("traceparent", f"00-{trace_id}-{parent_id}-01")],
        timeout=5,
    )

    [rpc_span] = [s for s in exporter.get_finished_spans() if s.name.endswith("/GetProduct")]
    assert format(rpc_span.context.trace_id, "032x") == trace_id
    assert rpc_span.parent is not None and format(rpc_span.parent.span_id, "016x") == parent_id


def test_batch_get_is_one_mget_and_at_most_one_sql_query(
    traced_grpc: tuple[GrpcServer, InMemorySpanExporter], write_token: str, redis_client: redis.Redis
) -> None:
    server, exporter = traced_grpc
    cached = [create(server.stub, write_token, name=f"cached {i}").id for i in range(2)]
    uncached = [create(server.stub, write_token, name=f"uncached {i}").id for i in range(3)]
    for product_id in cached:
        server.stub.GetProduct(pb.GetProductRequest(id=product_id), timeout=5)
    exporter.clear()
    redis_client.config_resetstat()

    result = server.stub.BatchGetProducts(
        pb.BatchGetProductsRequest(ids=[*cached, *uncached, str(uuid.uuid4())]), timeout=5
    )

    assert len(result.products) == 5
    assert len(spans_of(exporter.get_finished_spans(), "postgresql")) == 1
    assert redis_client.info("commandstats")["cmdstat_mget"]["calls"] == 1


def test_updates_and_deletes_are_seen_across_rest_and_grpc(
    grpc_server: GrpcServer, client: FlaskClient, auth: dict[str, str], write_token: str
) -> None:
    stub = grpc_server.stub
    product = create_product(client, auth, name="from REST", price="2.00")
    by_id = pb.GetProductRequest(id=product["id"])
    assert stub.GetProduct(by_id, timeout=5).price_decimal == "2.00"  # now cached
    assert client.get(f"/api/v1/products/{product['id']}").status_code == 200

    client.patch(f"/api/v1/products/{product['id']}", json={"price": "2.25"}, headers=auth)
    assert stub.GetProduct(by_id, timeout=5).price_decimal == "2.25"
    batch_get = pb.BatchGetProductsRequest(ids=[product["id"]])
    assert stub.BatchGetProducts(batch_get, timeout=5).products[0].price_decimal == "2.25"

    stub.UpdateProduct(rename(product["id"], "from gRPC"), metadata=bearer(write_token), timeout=5)
    rest = client.get(f"/api/v1/products/{product['id']}").json
    assert (rest["name"], rest["price"]) == ("from gRPC", "2.25")
    assert rest["updated_at"] == stub.GetProduct(by_id, timeout=5).updated_at.ToJsonString()

    stub.DeleteProduct(pb.DeleteProductRequest(id=product["id"]), metadata=bearer(write_token), timeout=5)
    assert client.get(f"/api/v1/products/{product['id']}").status_code == 404
    batch = client.post("/api/v1/products:batchGet", json={"ids": [product["id"]]}).json
    assert batch["missing"] == [product["id"]]


def test_postgres_down_is_unavailable_except_for_cached_reads_and_not_ready(
    servers: DevServers, own_postgres: EmbeddedPostgres, write_token: str
) -> None:
    settings = grpc_settings(
        DevServers(own_postgres.url, servers.redis_url),
        DB_REQUEST_BUDGET_SECONDS="1",
        GRPC_READINESS_INTERVAL_SECONDS="0.2",
    )
    with serving(settings) as server:
        cached = create(server.stub, write_token)
        server.stub.GetProduct(pb.GetProductRequest(id=cached.id), timeout=5)

        own_postgres.stop()

        for call, request, metadata in [
            (
                server.stub.CreateProduct,
                pb.CreateProductRequest(name="Tea", price_decimal="1"),
                bearer(write_token),
            ),
            (server.stub.ListProducts, pb.ListProductsRequest(), None),
            (server.stub.GetProduct, pb.GetProductRequest(id=str(uuid.uuid4())), None),
        ]:
            with pytest.raises(grpc.RpcError) as raised:
                call(request, metadata=metadata, timeout=5)
            assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
            assert raised.value.details() == "postgres is unavailable, retry later"
        assert server.stub.GetProduct(pb.GetProductRequest(id=cached.id), timeout=5) == cached
        wait_until(
            lambda: health_status(server.channel, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING,
            10,
            "readiness to turn NOT_SERVING",
        )
        assert health_status(server.channel) == health_pb2.HealthCheckResponse.SERVING  # still alive

        own_postgres.start()

        wait_until(lambda: _lists(server), 30, "ListProducts once Postgres is back")
        wait_until(
            lambda: health_status(server.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING,
            10,
            "readiness to turn SERVING again",
        )


def _lists(server: GrpcServer) -> bool:
    try:
        server.stub.ListProducts(pb.ListProductsRequest(), timeout=2)
        return True
    except grpc.RpcError:
        return False


def test_redis_down_fails_no_read_and_no_write(servers: DevServers, tmp_path: Path, write_token: str) -> None:
    valkey = EmbeddedValkey(tmp_path / "valkey")
    valkey.start()
    try:
        settings = grpc_settings(
            DevServers(servers.database_url, valkey.url), GRPC_READINESS_INTERVAL_SECONDS="0.2"
        )
        with serving(settings) as server:
            product = create(server.stub, write_token)
            server.stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=5)

            valkey.stop()

            assert server.stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=5) == product
            batch = server.stub.BatchGetProducts(pb.BatchGetProductsRequest(ids=[product.id]), timeout=5)
            assert list(batch.products) == [product]
            # Writes go on; the cache entry they could not mark is repaired once Redis answers.
            renamed = server.stub.UpdateProduct(
                rename(product.id, "renamed"), metadata=bearer(write_token), timeout=5
            )
            assert server.stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=5) == renamed
            assert metric_total(server.metrics(), "product_cache_errors_total", operation="get") >= 1
            assert metric_total(server.metrics(), "product_dependency_up", dependency="redis") == 0
            # Readiness (checked every 0.2 s meanwhile) stays SERVING: Redis down must not pull the pods out.
            assert health_status(server.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    finally:
        valkey.stop()


@pytest.mark.slow
def test_sigterm_turns_health_not_serving_first_and_lets_in_flight_rpcs_finish(
    servers: DevServers, server_dir: Path, write_token: str, row_lock: RowLock, db: psycopg.Connection[Any]
) -> None:
    with grpc_process(servers, server_dir / "grpc.log", GRPC_DRAIN_SECONDS="5") as started:
        channel = grpc.insecure_channel(f"127.0.0.1:{started.port}")
        stub = pb_grpc.ProductServiceStub(channel)
        product = create(stub, write_token, name="before")
        row_lock.lock(product.id)
        in_flight = stub.UpdateProduct.future(
            rename(product.id, "after"), metadata=bearer(write_token), timeout=30
        )
        wait_until(lambda: lock_waiters(db) == 1, 30, "the in-flight UPDATE to wait on the row lock")

        started.process.send_signal(signal.SIGTERM)

        wait_until(
            lambda: health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING,
            30,
            "health to turn NOT_SERVING",
        )
        assert not in_flight.done()
        row_lock.release()
        assert in_flight.result(timeout=10).name == "after"
        assert started.process.wait(timeout=30) == 0
        channel.close()
    assert "stopped: in-flight RPCs finished" in started.log_path.read_text()
