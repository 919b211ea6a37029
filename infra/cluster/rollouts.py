"""Argo Rollouts: the controller that releases the service's workloads as canaries (app/rollout.py) and
judges each step on the service's own metrics in Prometheus, rolling back by itself when they fail.

Canaries here shift traffic by replicas (the Service sends to canary and stable pods alike), so the
controller needs no traffic router: the chart's RBAC for Istio, SMI, ALB, Traefik and the rest is off.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from kube import namespace_peer, pods_peer, tcp

from cluster import bounds, charts
from cluster.monitoring import PROMETHEUS_PODS, PROMETHEUS_PORT, PROMETHEUS_RELEASE
from cluster.shared import (
    MONITORING_NAMESPACE,
    ROLLOUTS_NAMESPACE,
    Installation,
    api_flow,
    chart_release,
    isolated_namespace,
)

RELEASE = "argo-rollouts"
CONTROLLER_PODS = {
    "app.kubernetes.io/name": "argo-rollouts",
    "app.kubernetes.io/component": "rollouts-controller",
}
METRICS_PORT = 8090  # the chart's controller.containerPorts.metrics
# Where an AnalysisTemplate asks: kube-prometheus-stack's Prometheus Service.
PROMETHEUS_URL = f"http://{PROMETHEUS_RELEASE}-prometheus.{MONITORING_NAMESPACE}.svc:{PROMETHEUS_PORT}"


def install(at: Installation, monitoring_crds: pulumi.Resource) -> k8s.helm.v3.Release:
    """The controller with its CRDs (kept when the release goes: deleting them would delete every
    Rollout, and with it the service's pods), its metrics scraped by the platform's Prometheus."""
    namespace = isolated_namespace(at, ROLLOUTS_NAMESPACE, "restricted", _flows(at))
    values: dict[str, Any] = {
        "installCRDs": True,
        "keepCRDs": True,
        "providerRBAC": {"enabled": False},
        "dashboard": {"enabled": False},
        "controller": {
            # Leader election keeps one active; the second takes over without a gap in judging.
            "replicas": 2 if at.cfg.is_prod else 1,
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
        },
    }
    return chart_release(
        at,
        charts.ARGO_ROLLOUTS,
        RELEASE,
        namespace,
        bounds.merged(values, bounds.argo_rollouts(at.cfg.is_prod)),
        [monitoring_crds],
    )


def _flows(at: Installation) -> dict[str, dict[str, Any]]:
    """The Kubernetes API, Prometheus's API for the analyses, and Prometheus's scrapes of the controller."""
    return {
        "allow-kubernetes-api": api_flow(at),
        "allow-prometheus-queries": {
            "podSelector": {"matchLabels": CONTROLLER_PODS},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [pods_peer(MONITORING_NAMESPACE, PROMETHEUS_PODS)], "ports": tcp(PROMETHEUS_PORT)}
            ],
        },
        "allow-prometheus-scrapes": {
            "podSelector": {"matchLabels": CONTROLLER_PODS},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": tcp(METRICS_PORT)}],
        },
    }
