"""Ingress: Traefik, the platform's ingress controller, behind the cloud's L4 load balancer: the API's
Ingresses and, where published, Grafana's and Argo CD's, behind the admin allow-list."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from kube import namespace_peer, pods_peer, spread, tcp

from cluster import bounds, charts
from cluster.delivery import ARGOCD_SERVER_PODS, ARGOCD_SERVER_PORT
from cluster.monitoring import GRAFANA_PODS, GRAFANA_PORT
from cluster.shared import (
    ADMIN_ALLOWLIST,
    ARGOCD_NAMESPACE,
    INGRESS_CLASS,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    Installation,
    Namespace,
    api_flow,
    chart_release,
    isolated_namespace,
    present,
)

INGRESS_RELEASE = "traefik"
# Traefik's container ports (the chart's defaults, set explicitly so the NetworkPolicy matches them):
# its Service maps 80 -> web and 443 -> websecure; metrics stay inside the cluster.
TRAEFIK_WEB_PORT = 8000
TRAEFIK_WEBSECURE_PORT = 8443
TRAEFIK_METRICS_PORT = 9100
# The chart's pod labels (traefik.labelselector: the chart's name, `<release>-<namespace>`).
TRAEFIK_POD_LABELS = {
    "app.kubernetes.io/name": "traefik",
    "app.kubernetes.io/instance": f"{INGRESS_RELEASE}-{INGRESS_NAMESPACE}",
}
# How long a stopping Traefik pod still accepts connections: with externalTrafficPolicy Local the load
# balancer sends a node's traffic to that node's Traefik until its health check of the node fails: 2 checks
# 10 s apart on AWS (cloud-provider-aws, buildNLBHealthCheckConfiguration), 3 x 8 s on GKE's target-pool
# load balancers and 2 x 3 s on its backend-service ones (cloud-provider-gcp, ingress-gce), 2 x 5 s on AKS
# (cloud-provider-azure's probe defaults). With Traefik's 10 s for requests in flight after it, this fits
# the chart's 60 s termination grace period.
TRAEFIK_ACCEPT_GRACE = "30s"


def install(
    at: Installation, service_namespace: str, monitoring: pulumi.Resource | None
) -> k8s.helm.v3.Release:
    """Traefik serving standard `networking.k8s.io/v1` Ingresses of class INGRESS_CLASS, in its namespace, which
    admits anyone to the traffic ports and lets Traefik reach `service_namespace`. With `monitoring` (the
    kube-prometheus-stack release) it has a ServiceMonitor, created once the monitoring CRDs exist."""
    prod = at.cfg.is_prod
    web = _traffic_entry_point(TRAEFIK_WEB_PORT)
    if at.cfg.tls_secret_name:
        # Every published host has TLS then: send plain HTTP to HTTPS, as clients expect.
        web["redirections"] = {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}}
    published = at.cfg.dns_server.ingress_address if at.cfg.dns_server else None
    service: dict[str, Any] = {
        "annotations": at.cluster.load_balancer_annotations,
        # The per-client limits and the admin allow-list match the client address Traefik sees.
        # `Cluster` (the default) lets a node forward to a Traefik pod on another node, and that hop
        # replaces the client's address with the node's; `Local` sends each node's traffic to its own
        # Traefik pod and the load balancers of AWS (NLB, instance targets), GCP and Azure (passthrough
        # L4) keep the client's address up to it (docs/clouds.md, "Edge limits and the client address").
        "spec": {"externalTrafficPolicy": "Local"},
    }
    values = {
        "deployment": {"replicas": 2 if prod else 1},
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1} if prod else {"enabled": False},
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": INGRESS_CLASS},
        "providers": {
            # publishedService copies the load balancer's address into each Ingress's status, where
            # external-dns reads it; a local cluster's has none, and Traefik writes platform:ingressAddress.
            "kubernetesIngress": {"enabled": True, "publishedService": {"enabled": published is None}},
        },
        "ports": {
            "web": web,
            "websecure": _traffic_entry_point(TRAEFIK_WEBSECURE_PORT),
            "metrics": {"port": TRAEFIK_METRICS_PORT},
        },
        "service": service,
        # With `Local` a node without a Traefik pod takes no traffic: spread the replicas over zones
        # and nodes, so two of them never leave one node carrying everything.
        "topologySpreadConstraints": spread(TRAEFIK_POD_LABELS),
        # The metrics port is not on the LoadBalancer Service: the ServiceMonitor scrapes a
        # dedicated ClusterIP Service.
        "metrics": {
            "prometheus": {
                "service": {"enabled": True},
                "serviceMonitor": {"enabled": monitoring is not None},
            }
        },
    }
    if published:
        values["additionalArguments"] = [f"--providers.kubernetesingress.ingressendpoint.ip={published}"]
    # Where nothing provisions load balancers (kind, minikube), the Service stays pending: do not
    # hold `pulumi up` on it there. The ServiceMonitor needs the monitoring CRDs first.
    return chart_release(
        at,
        charts.TRAEFIK,
        INGRESS_RELEASE,
        isolated_namespace(at, INGRESS_NAMESPACE, "restricted", _flows(at, service_namespace)),
        bounds.merged(values, bounds.traefik(prod)),
        present(monitoring),
        skip_await=not at.cluster.load_balancer_addresses,
    )


def admin_allowlist(at: Installation, namespace: Namespace, controller: pulumi.Resource) -> None:
    """The Middleware an admin UI's Ingress in `namespace` names: only platform:adminAllowedCidrs get
    through. Its CRD (traefik.io/v1alpha1) comes with the Traefik chart (`controller`)."""
    k8s.apiextensions.CustomResource(
        f"{namespace.name}-{ADMIN_ALLOWLIST}",
        api_version="traefik.io/v1alpha1",
        kind="Middleware",
        metadata={"name": ADMIN_ALLOWLIST, "namespace": namespace.name},
        spec={"ipAllowList": {"sourceRange": at.cfg.admin_allowed_cidrs}},
        opts=at.opts(depends_on=[namespace.resource, controller]),
    )


def _flows(at: Installation, service_namespace: str) -> dict[str, dict[str, Any]]:
    """The edge: anyone reaches the traffic ports, only Prometheus the metrics port. Traefik watches
    the Kubernetes API and sends to the service's namespace on any port (the service's own policies
    admit this namespace on the ports it serves) and to the admin UIs it publishes."""
    installed = at.cfg.addons
    backends: list[dict[str, Any]] = [{"to": [namespace_peer(service_namespace)]}]
    if at.published and charts.KUBE_PROMETHEUS_STACK.name in installed:
        backends.append({"to": [pods_peer(MONITORING_NAMESPACE, GRAFANA_PODS)], "ports": tcp(GRAFANA_PORT)})
    if at.published and charts.ARGO_CD.name in installed:
        backends.append(
            {"to": [pods_peer(ARGOCD_NAMESPACE, ARGOCD_SERVER_PODS)], "ports": tcp(ARGOCD_SERVER_PORT)}
        )
    return {
        "allow-known-clients": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                # No `from`: every source, in or outside the cluster.
                {"ports": tcp(TRAEFIK_WEB_PORT, TRAEFIK_WEBSECURE_PORT)},
                {"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": tcp(TRAEFIK_METRICS_PORT)},
            ],
        },
        "allow-kubernetes-api": api_flow(at),
        "allow-backends": {"podSelector": {}, "policyTypes": ["Egress"], "egress": backends},
    }


def _traffic_entry_point(port: int) -> dict[str, Any]:
    """web or websecure on `port`. The connection's own address is the client's: nothing in front of
    Traefik (an L4 load balancer) writes X-Forwarded-* or PROXY headers, so Traefik takes them from no one,
    drops a client's X-Forwarded-For and sends its own (the chart's defaults, stated so the policy pack can
    hold them). A stopping pod keeps accepting for TRAEFIK_ACCEPT_GRACE."""
    return {
        "port": port,
        "forwardedHeaders": {"trustedIPs": [], "insecure": False},
        "proxyProtocol": {"trustedIPs": [], "insecure": False},
        "transport": {"lifeCycle": {"requestAcceptGraceTimeout": TRAEFIK_ACCEPT_GRACE}},
    }
