"""Delivery: Argo CD, which syncs the service's workloads from Git where platform:delivery is argocd."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from kube import egress_anywhere, namespace_peer, tcp

from cluster import bounds, charts
from cluster.shared import (
    ARGOCD_NAMESPACE,
    INGRESS_CLASS,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    SAME_NAMESPACE,
    Installation,
    Namespace,
    admin_url,
    allowlisted,
    api_flow,
    base_domain,
    chart_release,
    isolated_namespace,
    present,
)

ARGOCD_RELEASE = "argocd"
ARGOCD_SERVICE = f"{ARGOCD_RELEASE}-server"  # fixed by the release's name
ARGOCD_SERVER_PODS = {"app.kubernetes.io/name": "argocd-server"}
ARGOCD_REPO_SERVER_PODS = {"app.kubernetes.io/name": "argocd-repo-server"}
ARGOCD_SERVER_PORT = 8080
ARGOCD_SERVER_METRICS_PORT = 8083
# Git over SSH, for a platform:gitopsRepoUrl like git@host:org/repo (over HTTPS it is 443).
GIT_SSH_PORT = 22


@dataclass(frozen=True)
class Delivery:
    release: k8s.helm.v3.Release  # what an Argo CD Application waits for
    namespace: Namespace
    argocd_url: str
    host: str  # Argo CD's, where published


def install(at: Installation, ingress_controller: pulumi.Resource | None) -> Delivery:
    """Argo CD in its namespace; with the platform's ingress controller (`ingress_controller`) its server
    is published where platform:adminAllowedCidrs says who may open it."""
    host = f"argocd.{base_domain(at.cfg.host)}"
    argocd = isolated_namespace(at, ARGOCD_NAMESPACE, "restricted", _flows(at))
    ingress: dict[str, Any] = {"enabled": False}
    if at.published:
        ingress = {
            "enabled": True,
            "ingressClassName": INGRESS_CLASS,
            "annotations": allowlisted(ARGOCD_NAMESPACE),
            **(
                {"extraTls": [{"hosts": [host], "secretName": at.cfg.tls_secret_name}]}
                if at.cfg.tls_secret_name
                else {}
            ),
        }
    # The chart's own NetworkPolicies admit each component's clients among Argo CD's (repo-server from
    # the server, controller, ApplicationSet and notifications; Redis from the server, repo-server and
    # controller; Dex from the server) and metrics from any namespace. The server's would admit every
    # source (`ingress: [{}]`); its clients are the program's (_flows).
    own = {"networkPolicy": {"create": True}}
    values = {
        "global": {"domain": host},
        # TLS ends at the ingress controller; the server speaks plain HTTP behind it.
        "configs": {"params": {"server.insecure": True}},
        "server": {"ingress": ingress, "networkPolicy": {"create": False}},
        "controller": own,
        "repoServer": own,
        "redis": own,
        "dex": own,
    }
    argocd_release = chart_release(
        at,
        charts.ARGO_CD,
        ARGOCD_RELEASE,
        argocd,
        bounds.merged(values, bounds.argo_cd(at.cfg.is_prod)),
        present(ingress_controller),
    )
    return Delivery(argocd_release, argocd, admin_url(at, host, ARGOCD_NAMESPACE, ARGOCD_SERVICE, 8080), host)


def _flows(at: Installation) -> dict[str, dict[str, Any]]:
    """Argo CD's components reach each other (what each admits, the chart's own policies say), the
    Kubernetes API, and Git from the repo-server; the server admits Prometheus and, when published, the
    ingress controller."""
    server_clients = [
        {"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": tcp(ARGOCD_SERVER_METRICS_PORT)}
    ]
    if at.published:
        server_clients.append({"from": [namespace_peer(INGRESS_NAMESPACE)], "ports": tcp(ARGOCD_SERVER_PORT)})
    return {
        "allow-argocd-components": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [SAME_NAMESPACE]}],
        },
        "allow-kubernetes-api": api_flow(at),
        "allow-git": {
            "podSelector": {"matchLabels": ARGOCD_REPO_SERVER_PODS},
            "policyTypes": ["Egress"],
            "egress": [egress_anywhere((443, GIT_SSH_PORT))],
        },
        "allow-server-clients": {
            "podSelector": {"matchLabels": ARGOCD_SERVER_PODS},
            "policyTypes": ["Ingress"],
            "ingress": server_clients,
        },
    }
