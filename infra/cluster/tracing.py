"""Tracing: Jaeger all-in-one (v2), which receives the service's OTLP and keeps spans in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kube import namespace_peer, tcp

from cluster import bounds, charts
from cluster.shared import (
    MONITORING_NAMESPACE,
    TRACING_NAMESPACE,
    Installation,
    chart_release,
    isolated_namespace,
)

# Jaeger's one Service is named after its release (charts.JAEGER).
JAEGER_RELEASE = "jaeger"
OTLP_HTTP_PORT = 4318
OTLP_GRPC_PORT = 4317
JAEGER_QUERY_PORT = 16686
JAEGER_METRICS_PORT = 8888  # the all-in-one's own metrics (its Deployment's prometheus.io/port)


@dataclass(frozen=True)
class Tracing:
    otlp_endpoint: str  # where the service sends its traces
    # The Jaeger UI has no login of its own, so it is never published: port-forward to reach it.
    jaeger_url: str


def install(at: Installation, service_namespace: str) -> Tracing:
    """Jaeger in its namespace, which admits OTLP from `service_namespace` and scrapes from Prometheus.
    With no user config the image's own serves OTLP and keeps traces in memory, for debugging, while the
    pod lives. It calls no Kubernetes API."""
    flows = {
        "allow-known-clients": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [namespace_peer(service_namespace)], "ports": tcp(OTLP_GRPC_PORT, OTLP_HTTP_PORT)},
                {"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": tcp(JAEGER_METRICS_PORT)},
            ],
        }
    }
    values = {"jaeger": {"enabled": True, "serviceAccount": {"automountServiceAccountToken": False}}}
    chart_release(
        at,
        charts.JAEGER,
        JAEGER_RELEASE,
        isolated_namespace(at, TRACING_NAMESPACE, "restricted", flows),
        bounds.merged(values, bounds.jaeger(at.cfg.is_prod)),
    )
    return Tracing(otlp_endpoint=_jaeger_url(OTLP_HTTP_PORT), jaeger_url=_jaeger_url(JAEGER_QUERY_PORT))


def traces_egress() -> dict[str, Any]:
    """A NetworkPolicy egress rule to Jaeger's OTLP ports, for the pods that send traces."""
    return {"to": [namespace_peer(TRACING_NAMESPACE)], "ports": tcp(OTLP_GRPC_PORT, OTLP_HTTP_PORT)}


def _jaeger_url(port: int) -> str:
    """Jaeger's one Service (named after its release) at `port`: the only place its address is built."""
    return f"http://{JAEGER_RELEASE}.{TRACING_NAMESPACE}.svc.cluster.local:{port}"
