"""Every Helm chart the platform installs, pinned: bump a version here, in one reviewed change.

A bump also means re-reading the chart's values.yaml at the new version: the values the program
passes (infra/cluster/) and the policy pack's map of where each component's resources and
securityContext live (policies/rules/helm.py) name keys of the pinned version.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    repo: str


def source(chart: Chart, mirror: str | None) -> tuple[str, str | None]:
    """The Release's (chart, repository): the chart's own repository, or the one mirror
    (`platform:chartRepository`) that serves every chart under the same name and version. An OCI
    registry names the chart in the reference itself and takes no repository (pulumi-kubernetes
    #1892: `chart: oci://host/path/name`)."""
    if mirror is None:
        return chart.name, chart.repo
    if mirror.startswith("oci://"):
        return f"{mirror}/{chart.name}", None
    return chart.name, mirror


KUBE_PROMETHEUS_STACK = Chart(
    "kube-prometheus-stack", "82.9.0", "https://prometheus-community.github.io/helm-charts"
)
# 4.2+ renamed `allInOne:` to `jaeger:` and serves one Service named after the release (`jaeger`)
# with otlp-grpc 4317, otlp-http 4318 and http-query 16686 (templates/jaeger/jaeger-service.yaml).
# (4.4.8 was never released: its number exists only on a closed pull request.)
JAEGER = Chart("jaeger", "4.4.7", "https://jaegertracing.github.io/helm-charts")
# 9.6.0 gives the copyutil init containers their own resources (repoServer.copyutil.resources,
# dex.initImage.resources) instead of inheriting the main container's.
ARGO_CD = Chart("argo-cd", "9.6.0", "https://argoproj.github.io/argo-helm")
# Runs the controller v1.9.0 (its appVersion), the service's canaries.
ARGO_ROLLOUTS = Chart("argo-rollouts", "2.41.0", "https://argoproj.github.io/argo-helm")
# The EKS foundation sets `image.tag` to the cluster's own minor (infra/clouds/aws.py), since the
# autoscaler supports only its matching minor. From 1.35 it always watches the resource.k8s.io (DRA)
# objects: 9.54.0 is the first chart whose ClusterRole lets it (9.53.0's caches never filled, so it never
# scaled while its health check stayed green).
CLUSTER_AUTOSCALER = Chart("cluster-autoscaler", "9.54.0", "https://kubernetes.github.io/autoscaler")
METRICS_SERVER = Chart("metrics-server", "3.13.0", "https://kubernetes-sigs.github.io/metrics-server/")
# Ingress controller for standard Ingress objects; maintained, unlike the retired ingress-nginx.
TRAEFIK = Chart("traefik", "37.3.0", "https://traefik.github.io/charts")

# With platform:domain: certificates by ACME DNS-01 (tag v1.21.1 of cert-manager/cert-manager; the chart's
# version carries the v) and the hosts' records (tag external-dns-helm-chart-1.21.1, image v0.21.0).
CERT_MANAGER = Chart("cert-manager", "v1.21.1", "https://charts.jetstack.io")
EXTERNAL_DNS = Chart("external-dns", "1.21.1", "https://kubernetes-sigs.github.io/external-dns/")

ALL = (
    KUBE_PROMETHEUS_STACK,
    JAEGER,
    ARGO_CD,
    ARGO_ROLLOUTS,
    CLUSTER_AUTOSCALER,
    METRICS_SERVER,
    TRAEFIK,
    CERT_MANAGER,
    EXTERNAL_DNS,
)


@dataclass(frozen=True)
class ChartService:
    """A Service a chart renders that the program or a stack output names (`make charts` checks it)."""

    chart: str
    namespace: str
    name: str
    ports: tuple[int, ...]
    purpose: str


@dataclass(frozen=True)
class ChartException:
    """Findings of `make charts` accepted for one workload of a pinned chart, and why. `container` is a
    container's name, "*" for each of the workload's containers, or "" for the pod itself."""

    chart: str
    workload: str  # Kind/name as rendered
    container: str
    findings: frozenset[str]
    reason: str


@dataclass(frozen=True)
class ChartPermission:
    """What a chart's workload must be allowed to do, checked by `make charts` in the rendered RBAC."""

    chart: str
    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    reason: str


PERMISSIONS = (
    ChartPermission(
        CLUSTER_AUTOSCALER.name,
        "resource.k8s.io",
        ("resourceslices", "deviceclasses", "resourceclaims"),
        ("get", "list", "watch"),
        "the autoscaler of Kubernetes 1.35+ watches them; without them its caches never fill and it never scales",
    ),
)

# Each entry was read in the rendered chart at its pinned version; a bump re-reads them.
EXCEPTIONS = (
    ChartException(
        KUBE_PROMETHEUS_STACK.name,
        "DaemonSet/kube-prometheus-stack-prometheus-node-exporter",
        "",
        frozenset({"hostNetwork", "hostPID", "hostPath volume"}),
        "node-exporter reports the node itself: its processes, network devices and filesystems (/proc, /sys "
        "and / mounted read-only); its containers are bounded and run as non-root with nothing to escalate",
    ),
)
