"""The gRPC server process: `open_server` wires it from settings, `serve` runs it until SIGTERM.

Beside `product.v1.ProductService` it serves `grpc.health.v1.Health` (what the Kubernetes gRPC probes
ask) and server reflection (what grpcurl and Postman use to discover the API), and Prometheus metrics
over HTTP on GRPC_METRICS_PORT.

Health, like REST's /health and /ready: "" (the server) is SERVING while the process serves (liveness);
`product.v1.ProductService` is SERVING only while Postgres and Redis answer, checked every
GRPC_READINESS_INTERVAL_SECONDS (readiness), so a data outage takes pods out of the Service without
restarting them.

Shutdown on SIGTERM: health turns NOT_SERVING at once, so readiness probes and health-checking
clients stop sending; after GRPC_DRAIN_SECONDS the server stops accepting RPCs and gives those in
flight up to GRPC_GRACE_SECONDS to finish.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Annotated

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, start_http_server
from pydantic import Field, field_validator

from product_service.auth import TokenVerifier
from product_service.dependencies import Dependencies, open_dependencies
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc
from product_service.grpc.interceptors import ObservedRpcs, RpcMetrics
from product_service.grpc.servicer import SERVICE_NAME, ProductServicer
from product_service.metrics import ServiceMetrics
from product_service.proxies import DEFAULT_FORWARDED_ALLOW_IPS, TrustedProxies
from product_service.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 1.0  # as REST's /ready
SIGNAL_CHECK_SECONDS = 0.2  # how soon a SIGTERM takes effect, at worst (see serve)


# What the API needs: its largest valid request (an UpdateProduct with a 2,000-character description
# and a 200-character name, up to 4 bytes a character) is under 10 KiB; REST caps bodies at 1 MiB.
MAX_REQUEST_BYTES = 64 * 1024
# Workers beyond GRPC_MAX_CONCURRENT_RPCS: health checks and refusals always find one.
SPARE_WORKERS = 2
# Connections (gRFC A8, A9). Clients reconnect every few minutes, so a Deployment that the HPA scaled out
# gets their calls (one HTTP/2 connection otherwise pins a client to one pod); in-flight RPCs get the
# grace to finish, longer than DB_REQUEST_BUDGET_SECONDS allows. Idle connections are closed, and
# dead peers are found by pings within about a minute and a half.
CONNECTION_OPTIONS = {
    "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
    "grpc.max_connection_age_ms": 5 * 60_000,
    "grpc.max_connection_age_grace_ms": 30_000,
    "grpc.max_connection_idle_ms": 5 * 60_000,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
}
# Calls accepted by gRPC itself (running or queued) before it answers RESOURCE_EXHAUSTED: bounds the
# memory a flood can queue; the interceptor's cap refuses most of it sooner, with a clearer message.
QUEUED_RPCS_PER_RUNNING = 4


class GrpcSettings(Settings):
    """The REST settings plus the gRPC process's own. Field aliases are the environment variables."""

    # Every interface in a container; `make run` binds 127.0.0.1.
    grpc_host: Annotated[str, Field(alias="GRPC_HOST", min_length=1)] = "0.0.0.0"  # noqa: S104
    grpc_port: Annotated[int, Field(alias="GRPC_PORT", ge=0, le=65535)] = 50051  # 0: a free port (tests)
    grpc_metrics_port: Annotated[int, Field(alias="GRPC_METRICS_PORT", ge=0, le=65535)] = 9464  # 0: free
    # Product RPCs served at once; beyond it, RESOURCE_EXHAUSTED. Each may hold one of the
    # DB_POOL_MAX_SIZE connections, the others wait for one within their budget.
    grpc_max_concurrent_rpcs: Annotated[int, Field(alias="GRPC_MAX_CONCURRENT_RPCS", ge=1, le=256)] = 16
    grpc_drain_seconds: Annotated[float, Field(alias="GRPC_DRAIN_SECONDS", ge=0, le=60)] = 5.0
    grpc_grace_seconds: Annotated[float, Field(alias="GRPC_GRACE_SECONDS", ge=0, le=120)] = 20.0
    grpc_readiness_interval_seconds: Annotated[
        float, Field(alias="GRPC_READINESS_INTERVAL_SECONDS", gt=0, le=60)
    ] = 2.0
    # gunicorn's setting, read the same way: the peers whose x-forwarded-for names the client in the log.
    forwarded_allow_ips: Annotated[str, Field(alias="FORWARDED_ALLOW_IPS")] = DEFAULT_FORWARDED_ALLOW_IPS

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        try:
            TrustedProxies.parse(value)
        except ValueError:
            raise ValueError("must be IP addresses or networks separated by commas, or *") from None
        return value


@dataclass
class ProductGrpcServer:
    """A started server and what it holds open; `shutdown` releases everything."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    registry: CollectorRegistry
    readiness: ReadinessWatch
    dependencies: Dependencies

    def shutdown(self, drain_seconds: float, grace_seconds: float) -> None:
        """NOT_SERVING first, then stop accepting, then let in-flight RPCs finish."""
        self.health.enter_graceful_shutdown()
        self.readiness.stop()
        log.info("shutting down: health is NOT_SERVING, draining for %s s", drain_seconds)
        time.sleep(drain_seconds)
        self.server.stop(grace_seconds).wait()
        self.dependencies.close()
        log.info("stopped: in-flight RPCs finished")


def open_server(settings: GrpcSettings, tracer_provider: TracerProvider | None = None) -> ProductGrpcServer:
    """Open the pool and the Redis client, and start the server on GRPC_HOST:GRPC_PORT (0: any free port)."""
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry=registry)
    opened = open_dependencies(settings, metrics, tracer_provider)
    capacity = settings.grpc_max_concurrent_rpcs
    server = grpc.server(
        ThreadPoolExecutor(max_workers=capacity + SPARE_WORKERS, thread_name_prefix="grpc"),
        interceptors=[
            *_tracing(tracer_provider),
            ObservedRpcs(RpcMetrics(registry), capacity, TrustedProxies.parse(settings.forwarded_allow_ips)),
        ],
        options=list(CONNECTION_OPTIONS.items()),
        maximum_concurrent_rpcs=capacity * QUEUED_RPCS_PER_RUNNING,
    )
    pb_grpc.add_ProductServiceServicer_to_server(
        ProductServicer(
            opened.products,
            TokenVerifier(settings.jwt_secret, audience=settings.jwt_audience, issuer=settings.jwt_issuer),
        ),
        server,
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server, pool=_reflected_files()
    )
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    server.start()
    # "" is the server as a whole, what a probe without `service` asks.
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # Like REST's /ready: Postgres only; without Redis the server still serves (ops.REQUIRED_FOR_READINESS).
    checks = [lambda: opened.repository.ping(READY_TIMEOUT_SECONDS)]
    readiness = ReadinessWatch(health_servicer, checks, settings.grpc_readiness_interval_seconds)
    return ProductGrpcServer(server, port, health_servicer, registry, readiness, opened)


class ReadinessWatch:
    """Sets the product service's health from `checks` (each returns, or raises when its dependency is
    unreachable) now and then every `interval` seconds, on a thread of its own, until `stop`."""

    def __init__(
        self, health_servicer: health.HealthServicer, checks: list[Callable[[], object]], interval: float
    ):
        self._health = health_servicer
        self._checks = checks
        self._interval = interval
        self._stopped = threading.Event()
        self._check()
        self._thread = threading.Thread(target=self._watch, name="grpc-readiness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stopped.wait(self._interval):
            self._check()

    def _check(self) -> None:
        try:
            # Pings every few seconds would fill Jaeger with root spans of `SELECT 1` and PING.
            with suppress_instrumentation():
                for check in self._checks:
                    check()
        except Exception as error:
            log.warning("not ready: %s", error)
            self._health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        else:
            self._health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)


def serve(settings: GrpcSettings, tracer_provider: TracerProvider | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; the exit status."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    running = open_server(settings, tracer_provider)
    metrics_server, _ = start_http_server(
        settings.grpc_metrics_port, settings.grpc_host, registry=running.registry
    )
    log.info(
        "serving gRPC",
        extra={
            "fields": {
                "address": f"{settings.grpc_host}:{running.port}",
                "metrics": f"http://{settings.grpc_host}:{metrics_server.server_port}/metrics",
            }
        },
    )
    # In slices: a SIGTERM the kernel hands to another thread (gRPC's, the pool's) runs its Python
    # handler only when the main thread next runs Python, which a wait without timeout never does
    # (cpython#85300): the drain then started late or never.
    while not stop.wait(SIGNAL_CHECK_SECONDS):
        pass
    running.shutdown(settings.grpc_drain_seconds, settings.grpc_grace_seconds)
    metrics_server.shutdown()
    return 0


def _reflected_files() -> descriptor_pool.DescriptorPool:
    """The files reflection serves: this API's, health's and reflection's, with the files they import.
    The process's default pool also holds whatever else is loaded (OpenTelemetry's exporter protos)."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
        added.add(file.name)

    for module in (pb, health_pb2, reflection_pb2):
        add(module.DESCRIPTOR)
    return pool


def _tracing(tracer_provider: TracerProvider | None) -> list[grpc.ServerInterceptor]:
    """OpenTelemetry's server interceptor (outermost, so the other interceptors see its span); health
    checks are not traced, they would drown the RPCs in Jaeger."""
    if tracer_provider is None:
        return []
    from opentelemetry.instrumentation.grpc import filters, server_interceptor

    return [
        server_interceptor(tracer_provider=tracer_provider, filter_=filters.negate(filters.health_check()))
    ]
