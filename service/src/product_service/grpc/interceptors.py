"""What every unary RPC goes through: its deadline bound, a Prometheus count and latency, a JSON log line.

Labels are the service and method names gRPC routed the call to and the status code, so they are
bounded by the proto: a call to an unknown method never reaches an interceptor's handler. The
OpenTelemetry interceptor runs outside this one, so the log line carries the RPC's trace id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from product_service.grpc.deadlines import RpcDeadline

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
    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # unknown methods, and the streaming health Watch and reflection
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        # Probes check health every few seconds: at INFO their lines would bury the RPCs.
        level = logging.DEBUG if service == _HEALTH_SERVICE else logging.INFO
        behaviour = handler.unary_unary

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                with RpcDeadline.bind(context):
                    response = behaviour(request, context)
                code = _code(context) or grpc.StatusCode.OK
                return response
            except Exception:
                code = _code(context) or grpc.StatusCode.UNKNOWN
                if code is grpc.StatusCode.UNKNOWN:
                    log.exception("unhandled error in %s", handler_call_details.method)
                raise
            finally:
                if not context.is_active() and code is grpc.StatusCode.OK:
                    code = grpc.StatusCode.DEADLINE_EXCEEDED if context.time_remaining() <= 0 else code
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
                        }
                    },
                )

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    """The code the handler set or aborted with (ServicerContext.code(): grpcio 1.38+, not in the stubs)."""
    code: grpc.StatusCode | None = context.code()  # type: ignore[attr-defined]
    return code
