"""The edge: per-client limits on every Ingress, and an ingress controller that knows who the client is.

A per-client limit is only as good as the address it counts by. Traefik's Middlewares count by the
connection's remote address unless told to read X-Forwarded-For (`ipStrategy.depth` / `excludedIPs`),
which a client writes itself; and the remote address is the client's only when the load balancer's
Service keeps it (`externalTrafficPolicy: Local`) or a PROXY header from a listed load balancer carries
it. Behind `Cluster` every client of a node shares the node's address, so one client's flood throttles
all of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ..framework import Findings, Subject, dig, items, number, resource_rule, stack_rule

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
MIDDLEWARES_ANNOTATION = "traefik.ingress.kubernetes.io/router.middlewares"
TRAFFIC_ENTRY_POINTS = ("web", "websecure")


# why: without a per-client rate and in-flight limit one client can take every worker of the API.
@stack_rule(
    "k8s-ingress-per-client-limits",
    "Every Ingress names, in Traefik's router.middlewares annotation, Middlewares the program declares that "
    "limit each client's request rate (rateLimit) and requests in flight (inFlightReq), counted by the "
    "client's address: without them one client can take every worker of the service behind it.",
)
def ingress_per_client_limits(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    middlewares: dict[str, Mapping[str, Any]] = {}
    for r in resources:
        if str(r.resource_type) == MIDDLEWARE:
            with findings.verifying():
                namespace = str(dig(r.props, "metadata", "namespace", default="default"))
                name = str(dig(r.props, "metadata", "name", default=r.name))
                # How Traefik's Kubernetes providers name it.
                middlewares[f"{namespace}-{name}@kubernetescrd"] = dig(r.props, "spec", default={})
    for r in resources:
        if str(r.resource_type) != INGRESS:
            continue
        with findings.verifying():
            name = str(dig(r.props, "metadata", "name", default=r.name))
            annotation = str(dig(r.props, "metadata", "annotations", MIDDLEWARES_ANNOTATION, default=""))
            specs = [middlewares[ref.strip()] for ref in annotation.split(",") if ref.strip() in middlewares]
            for kind, amount, what in (
                ("rateLimit", "average", "request rate"),
                ("inFlightReq", "amount", "requests in flight"),
            ):
                problem = _limit_problem([dig(spec, kind) for spec in specs if dig(spec, kind)], kind, amount)
                if problem:
                    findings.violation(
                        f"Ingress '{name}' sets no per-client limit of {what}: {problem}", r.urn
                    )


def _limit_problem(limits: list[Mapping[str, Any]], kind: str, amount: str) -> str | None:
    """Why none of these Middleware bodies of `kind` limits per client, or None when one does."""
    if not limits:
        return f"none of its Middlewares declared here has {kind}"
    problems = []
    for limit in limits:
        value = number(dig(limit, amount))
        criterion = dig(limit, "sourceCriterion")
        strategy = dig(criterion, "ipStrategy")
        if value is None or value <= 0:
            problems.append(f"{kind}.{amount} is {value or 0:g}, no limit")
        elif criterion is None and kind == "inFlightReq":
            problems.append(f"{kind} without sourceCriterion counts per request host, every client together")
        elif criterion is not None and strategy is None:
            problems.append(f"{kind}.sourceCriterion groups by host or header, not by client address")
        elif strategy is not None and (dig(strategy, "depth") or items(dig(strategy, "excludedIPs"))):
            problems.append(f"{kind} takes the client from X-Forwarded-For, which the client writes itself")
        else:
            return None
    return "; ".join(problems)


# why: a controller that trusts forwarded headers from anyone, or that never sees the client's address,
# makes every per-client limit and allow-list count the wrong address.
@resource_rule(
    "k8s-ingress-controller-client-address",
    "The Traefik release keeps the client's address: its Service's externalTrafficPolicy is Local (or both "
    "traffic entry points read PROXY headers from listed load balancers), and no entry point trusts "
    "X-Forwarded-* or PROXY headers from everyone (insecure, or a /0 range), which would let any client name "
    "its own address and escape its limits.",
    (HELM_RELEASE,),
)
def ingress_controller_client_address(subject: Subject, findings: Findings) -> None:
    if str(dig(subject.props, "chart", default="")).rsplit("/", 1)[-1] != "traefik":
        return
    values = dig(subject.props, "values", default={})
    proxied = []
    for entry_point in TRAFFIC_ENTRY_POINTS:
        for header in ("forwardedHeaders", "proxyProtocol"):
            with findings.verifying():
                trust = dig(values, "ports", entry_point, header, default={})
                ranges = [str(r) for r in items(dig(trust, "trustedIPs"))]
                if dig(trust, "insecure") is True:
                    findings.violation(f"ports.{entry_point}.{header}.insecure trusts every client")
                elif any(_everyone(r) for r in ranges):
                    findings.violation(f"ports.{entry_point}.{header}.trustedIPs include every address")
                elif header == "proxyProtocol" and ranges:
                    proxied.append(entry_point)
    with findings.verifying():
        service_type = str(dig(values, "service", "type", default="LoadBalancer"))
        policy = dig(values, "service", "spec", "externalTrafficPolicy", default="Cluster")
        if (
            service_type in ("LoadBalancer", "NodePort")
            and policy != "Local"
            and len(proxied) < len(TRAFFIC_ENTRY_POINTS)
        ):
            findings.violation(
                f"service.spec.externalTrafficPolicy is {policy}: every client reaches Traefik with a node's "
                "address; set Local (or PROXY protocol from the load balancer on web and websecure)"
            )


def _everyone(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


POLICIES = [ingress_per_client_limits, ingress_controller_client_address]
