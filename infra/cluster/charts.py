"""Every Helm chart the platform installs, pinned: bump a version here, in one reviewed change."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    repo: str


KUBE_PROMETHEUS_STACK = Chart(
    "kube-prometheus-stack", "82.9.0", "https://prometheus-community.github.io/helm-charts"
)
JAEGER = Chart("jaeger", "4.1.0", "https://jaegertracing.github.io/helm-charts")
ARGO_CD = Chart("argo-cd", "9.5.14", "https://argoproj.github.io/argo-helm")
# Chart 9.53 ships cluster-autoscaler 1.34, the default kubernetesVersion: the two move together.
CLUSTER_AUTOSCALER = Chart("cluster-autoscaler", "9.53.0", "https://kubernetes.github.io/autoscaler")
METRICS_SERVER = Chart("metrics-server", "3.13.0", "https://kubernetes-sigs.github.io/metrics-server/")
# Ingress controller for standard Ingress objects; maintained, unlike the retired ingress-nginx.
TRAEFIK = Chart("traefik", "37.3.0", "https://traefik.github.io/charts")
