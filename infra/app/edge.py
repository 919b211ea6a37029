"""Per-client limits at the edge: the Traefik Middlewares every Ingress of the API names.

Two Middlewares (traefik.io/v1alpha1, whose CRD comes with the Traefik chart) in the service's namespace:
a request rate (`rateLimit`, a token bucket: `average` a `period`, `burst` at once) and the requests in
flight (`inFlightReq`), both counted per client address and answered 429 beyond it. The Ingresses name
them in Traefik's `router.middlewares` annotation, rate first, so a flood is turned away before it
counts against the in-flight limit.

"Client address" is the connection's remote address at Traefik (an `ipStrategy` without `depth` or
`excludedIPs`), never X-Forwarded-For, which a client writes itself: the ingress controller's Service
keeps the client's own address (`externalTrafficPolicy: Local`, infra/cluster). `inFlightReq` must say
so, since without a `sourceCriterion` it counts per request host, i.e. every client together
(doc.traefik.io/traefik/v3.6/reference/routing-configuration/http/middlewares/inflightreq/). IPv6
clients count per /64, what one subscriber line is given, so rotating addresses inside it gains nothing.

Traefik keeps the counters in memory, per router and per replica: each Ingress path is a router, so a
client has one budget on `/api`, one on `/openapi.json` and one on the gRPC route, in each Traefik pod
(traefik/traefik#13706).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from config import PlatformConfig

RATE_LIMIT = "api-rate-limit"
IN_FLIGHT_LIMIT = "api-in-flight-limit"
MIDDLEWARES_ANNOTATION = "traefik.ingress.kubernetes.io/router.middlewares"
CLIENT_ADDRESS = {"ipStrategy": {"ipv6Subnet": 64}}


@dataclass(frozen=True)
class EdgeLimits:
    """What an Ingress of the API carries (`annotations`) and waits for (`middlewares`)."""

    annotations: dict[str, str]
    middlewares: list[pulumi.Resource]

    def limiting(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """An Ingress's metadata with the limits' annotation beside any it has."""
        return {**metadata, "annotations": {**metadata.get("annotations", {}), **self.annotations}}


def per_client_limits(
    cfg: PlatformConfig, namespace: str, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> EdgeLimits:
    """The two Middlewares in `namespace`; `opts` must wait for the Traefik release (their CRD)."""
    specs = {
        RATE_LIMIT: {
            "rateLimit": {
                "average": cfg.api_rate_limit,
                "period": "1s",
                "burst": cfg.api_rate_burst,
                "sourceCriterion": CLIENT_ADDRESS,
            }
        },
        IN_FLIGHT_LIMIT: {
            "inFlightReq": {"amount": cfg.api_in_flight_limit, "sourceCriterion": CLIENT_ADDRESS},
        },
    }
    middlewares: list[pulumi.Resource] = [
        k8s.apiextensions.CustomResource(
            name,
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata={"name": name, "namespace": namespace, "labels": labels},
            spec=spec,
            opts=opts,
        )
        for name, spec in specs.items()
    ]
    # Traefik's Kubernetes providers name a Middleware `<namespace>-<name>@kubernetescrd`.
    chain = ",".join(f"{namespace}-{name}@kubernetescrd" for name in specs)
    return EdgeLimits({MIDDLEWARES_ANNOTATION: chain}, middlewares)
