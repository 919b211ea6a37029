"""A real gRPC server in this process (or as `python -m product_service grpc`) and a real client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.sdk.trace import TracerProvider
from product_service.devservers import DevServers, free_port, stop_child
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc
from product_service.grpc.server import GrpcSettings, ProductGrpcServer, open_server
from product_service.settings import load_settings
from prometheus_client import generate_latest
from service_helpers import JWT_SECRET, wait_until


def grpc_settings(servers: DevServers, **overrides: str) -> GrpcSettings:
    environ = {
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "JWT_SECRET": JWT_SECRET,
        "DB_REQUEST_BUDGET_SECONDS": "2",
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": "0",
        **overrides,
    }
    return load_settings(environ, GrpcSettings)


@dataclass
class GrpcServer:
    running: ProductGrpcServer
    channel: grpc.Channel
    stub: pb_grpc.ProductServiceStub

    def metrics(self) -> str:
        return generate_latest(self.running.registry).decode()


@contextmanager
def serving(settings: GrpcSettings, tracer_provider: TracerProvider | None = None) -> Iterator[GrpcServer]:
    running = open_server(settings, tracer_provider)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield GrpcServer(running, channel, pb_grpc.ProductServiceStub(channel))
    finally:
        channel.close()
        running.shutdown(drain_seconds=0, grace_seconds=1)


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations an INVALID_ARGUMENT carries."""
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    violations: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        violations.update({v.field: v.description for v in bad_request.field_violations})
    return violations


def health_status(channel: grpc.Channel, service: str = "") -> Any:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


@dataclass
class GrpcProcess:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log_path: Path


@contextmanager
def grpc_process(servers: DevServers, log_path: Path, **environ: str) -> Iterator[GrpcProcess]:
    """`python -m product_service grpc` on 127.0.0.1:<free port>; stopped by its PID on exit."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "JWT_SECRET": JWT_SECRET,
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(port),
        "GRPC_METRICS_PORT": str(metrics_port),
        **environ,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "product_service", "grpc"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    started = GrpcProcess(process, port, metrics_port, log_path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_until(
                lambda: _serving(channel) or process.poll() is not None, 60, "the gRPC server to be SERVING"
            )
        assert process.poll() is None, log_path.read_text()
        yield started
    finally:
        stop_child(process)


def _serving(channel: grpc.Channel) -> bool:
    try:
        return bool(health_status(channel) == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
