"""What every unary RPC goes through: a cap on concurrent product RPCs, its deadline as its time budget
on Postgres (budget.py), a Prometheus count and latency, a JSON log line with the connection's `peer`
and the client's address (`client_addr`: the last x-forwarded-for entry of a trusted proxy, proxies.py;
Traefik sets it on the RPCs it proxies, as on any request).

The code counted is the one the client saw: an RPC whose deadline passed before the server finished
is DEADLINE_EXCEEDED, whatever the handler returned, since gRPC answered the client at its deadline.

Labels are the service and method names gRPC routed the call to and the status code, so they are
bounded by the proto: a call to an unknown method never reaches an interceptor's handler. The
OpenTelemetry interceptor runs outside this one, so the log line carries the RPC's trace id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from product_service.budget import TimeBudget
from product_service.proxies import TrustedProxies, grpc_peer_address

log = logging.getLogger(__name__)

_HEALTH_SERVICE = "grpc.health.v1.Health"

# From half a millisecond (a cached GetProduct) to the seconds a deadline may allow.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RpcMetrics:
    """`grpc_server_handled_total` and `grpc_server_handling_seconds`, the names go-grpc-prometheus uses."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_service", "grpc_method", "grpc_code"]
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed, by service, method and status code.",
            labels,
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from request to status, by service, method and status code.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.handled.labels(service, method, code.name).inc()
        self.handling.labels(service, method, code.name).observe(seconds)


class ObservedRpcs(grpc.ServerInterceptor):
    """`max_in_flight` product RPCs at a time; beyond it, RESOURCE_EXHAUSTED at once. Health checks are
    outside the cap, so the server's workers beyond it always answer the kubelet's probes."""

    def __init__(self, metrics: RpcMetrics, max_in_flight: int, proxies: TrustedProxies) -> None:
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self._proxies = proxies

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # unknown methods, and the streaming health Watch and reflection
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        is_health = service == _HEALTH_SERVICE
        # Probes check health every few seconds: at INFO their lines would bury the RPCs.
        level = logging.DEBUG if is_health else logging.INFO
        behaviour = handler.unary_unary

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                with self._admitted(is_health, context):
                    if context.time_remaining() <= 0:  # it waited in the queue past its deadline
                        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed in the queue")
                    with TimeBudget.bound(context.time_remaining()) as budget:
                        context.add_callback(budget.end)  # the client cancelled: stop waiting on Postgres
                        response = behaviour(request, context)
                code = _code(context) or grpc.StatusCode.OK
                return response
            except Exception:
                code = _code(context) or grpc.StatusCode.UNKNOWN
                if code is grpc.StatusCode.UNKNOWN:
                    log.exception("unhandled error in %s", handler_call_details.method)
                raise
            finally:
                if context.time_remaining() <= 0:
                    code = grpc.StatusCode.DEADLINE_EXCEEDED  # what the client saw at its deadline
                elapsed = time.perf_counter() - started
                self._metrics.observe(service, method, code, elapsed)
                log.log(
                    level,
                    "rpc",
                    extra={
                        "fields": {
                            "grpc_service": service,
                            "grpc_method": method,
                            "grpc_code": code.name,
                            "duration_ms": round(elapsed * 1000, 3),
                            "peer": context.peer(),
                            "client_addr": self._client(context),
                        }
                    },
                )

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _client(self, context: grpc.ServicerContext) -> str | None:
        forwarded = [str(value) for key, value in context.invocation_metadata() if key == "x-forwarded-for"]
        return self._proxies.client(grpc_peer_address(context.peer()), ",".join(forwarded) or None)

    @contextmanager
    def _admitted(self, exempt: bool, context: grpc.ServicerContext) -> Iterator[None]:
        if exempt:
            yield
            return
        if not self._in_flight.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {self._max_in_flight} concurrent RPCs, retry later",
            )
        try:
            yield
        finally:
            self._in_flight.release()


def _code(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    """The code the handler set or aborted with (ServicerContext.code(): grpcio 1.38+, not in the stubs)."""
    code: grpc.StatusCode | None = context.code()  # type: ignore[attr-defined]
    return code
