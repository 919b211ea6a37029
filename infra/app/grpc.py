"""The gRPC side of the product service: `python -m product_service grpc` from the same image, as a
Workload of its own (app/workload.py) beside REST's.

Its Ingress route is `/product.v1.ProductService/*` on the REST host, behind the same per-client limits
as REST's (app/edge.py; each RPC is one request to them). Its pods carry labels of their own, so the REST
Service, Deployment and budget never select them (nor the REST ones these). h2c to the pods: the Service
port's `appProtocol: kubernetes.io/h2c` and Traefik's Service annotation say so.
"""

from __future__ import annotations

from app.rollout import GRPC_SIGNALS
from app.workload import Port, WorkloadSpec

NAME = "product-service-grpc"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "platform"}
GRPC_PORT = 50051
METRICS_PORT = 9464
# NOT_SERVING on SIGTERM, then this long for probes and endpoints to notice, then up to the grace for
# in-flight RPCs.
DRAIN_SECONDS = 5
GRACE_SECONDS = 20

GRPC = WorkloadSpec(
    name=NAME,
    component="grpc",
    labels=LABELS,
    selector=LABELS,
    port=Port("grpc", GRPC_PORT),
    service_port=GRPC_PORT,
    metrics_port=Port("metrics", METRICS_PORT),
    # Native gRPC probes ask grpc.health.v1.Health: liveness the server as a whole (""), readiness the
    # product service; both turn NOT_SERVING at SIGTERM.
    liveness={"grpc": {"port": GRPC_PORT, "service": ""}},
    readiness={"grpc": {"port": GRPC_PORT, "service": "product.v1.ProductService"}},
    # The RPCs' paths start with the service's full name; the Ingress sends exactly these to gRPC. Health
    # (/grpc.health.v1.Health/) and reflection (/grpc.reflection.*/) stay in the cluster: the kubelet probes
    # the pods directly, and reflection is a tool for developers, not part of the API.
    public_paths=(("/product.v1.ProductService", "Prefix"),),
    termination_grace_seconds=35,  # DRAIN_SECONDS and GRACE_SECONDS, with room to spare
    policies=("allow-grpc-from-ingress-controller-and-prometheus", "allow-grpc-egress"),
    signals=GRPC_SIGNALS,
    command=("python", "-m", "product_service", "grpc"),
    env=(
        {"name": "GRPC_PORT", "value": str(GRPC_PORT)},
        {"name": "GRPC_METRICS_PORT", "value": str(METRICS_PORT)},
        {"name": "GRPC_DRAIN_SECONDS", "value": str(DRAIN_SECONDS)},
        {"name": "GRPC_GRACE_SECONDS", "value": str(GRACE_SECONDS)},
        # Its own name in Jaeger; a REST caller's trace continues into it across the hop.
        {"name": "OTEL_SERVICE_NAME", "value": NAME},
    ),
    h2c=True,
    prefix="grpc-",
)
