"""Cluster add-ons, identical on every cloud: metrics, dashboards and alerts, tracing, GitOps, canaries,
ingress.

Every chart is a `kubernetes.helm.v3.Release`: the Pulumi Kubernetes provider runs Helm itself (no
helm binary on the machine running `pulumi up`), and Helm installs the charts' CRDs from their
`crds/` directory with a server-side create. That avoids kube-prometheus-stack's known failure when
its CRDs are applied client-side (through `helm.v3.Chart`/`ConfigFile`): the Prometheus CRDs exceed
the 256 KiB `last-applied-configuration` annotation limit. The price is that a Release is one
resource in Pulumi's view; its values are the reviewed surface, listed by `make plan`.

One module per add-on (monitoring, rollouts, tracing, ingress, delivery, metrics_server, autoscaler,
with platform:domain external_dns and cert_manager, and with platform:localTls cert_manager), each
installing into its own namespace with its NetworkPolicies (shared.py); what one needs of another is an
argument, so the order below is the order they must come in.
"""

from __future__ import annotations

import pulumi
from config import PlatformConfig
from foundation import Foundation

from cluster import (
    autoscaler,
    cert_manager,
    charts,
    delivery,
    external_dns,
    ingress,
    metrics_server,
    monitoring,
    rollouts,
    tracing,
)
from cluster.cert_manager import CertManager
from cluster.charts import ChartService
from cluster.shared import (
    ARGOCD_NAMESPACE,
    INGRESS_CLASS,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    TRACING_NAMESPACE,
    Installation,
    Namespace,
    port_forward_url,
)
from cluster.tracing import traces_egress

__all__ = [
    "ARGOCD_NAMESPACE",
    "CHART_SERVICES",
    "INGRESS_CLASS",
    "INGRESS_NAMESPACE",
    "MONITORING_NAMESPACE",
    "ClusterAddons",
    "port_forward_url",
    "traces_egress",
]

# Every Service of a chart that the program, a stack output or the docs name; `make charts` checks that
# the pinned charts render each of them so.
CHART_SERVICES = (
    ChartService(
        charts.JAEGER.name,
        TRACING_NAMESPACE,
        tracing.JAEGER_RELEASE,
        (tracing.OTLP_GRPC_PORT, tracing.OTLP_HTTP_PORT, tracing.JAEGER_QUERY_PORT),
        "the service's OTLP endpoint and the jaeger_url output",
    ),
    ChartService(
        charts.KUBE_PROMETHEUS_STACK.name,
        MONITORING_NAMESPACE,
        monitoring.GRAFANA_SERVICE,
        (80,),
        "the grafana_url output",
    ),
    ChartService(
        charts.KUBE_PROMETHEUS_STACK.name,
        MONITORING_NAMESPACE,
        f"{monitoring.PROMETHEUS_RELEASE}-prometheus",
        (9090,),
        "Prometheus's API, reached by `kubectl port-forward`",
    ),
    ChartService(
        charts.KUBE_PROMETHEUS_STACK.name,
        MONITORING_NAMESPACE,
        f"{monitoring.PROMETHEUS_RELEASE}-alertmanager",
        (9093,),
        "Alertmanager's UI, reached by `kubectl port-forward`",
    ),
    ChartService(
        charts.ARGO_CD.name, ARGOCD_NAMESPACE, delivery.ARGOCD_SERVICE, (80,), "the argocd_url output"
    ),
    ChartService(
        charts.TRAEFIK.name, INGRESS_NAMESPACE, ingress.INGRESS_RELEASE, (80, 443), "the api_url output"
    ),
)


class ClusterAddons(pulumi.ComponentResource):
    """kube-prometheus-stack, Jaeger, Argo CD, Argo Rollouts and Traefik (ingress), those of platform:addons, and
    (where the cloud lacks them) metrics-server and cluster-autoscaler. The attributes of an add-on left
    out are None, and the app's objects that need it follow: ServiceMonitors wait for `monitoring_crds`,
    Ingresses for `ingress_controller`, the Application for `argocd`, Rollouts (else Deployments) for
    `rollouts`; traces go to `otlp_endpoint`.
    With the cloud's public zone (platform:domain), external-dns publishes every Ingress's host there and
    cert-manager certifies Grafana's and Argo CD's hosts from ACME; on the local target with
    platform:localTls, cert-manager certifies them from its local CA (whose certificate `local_ca` says how
    to get). The API's certificate is `certify`'s."""

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        foundation: Foundation,
        service_job: str,
        service_namespace: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("platform:cluster:Addons", name, None, opts)
        at = Installation(cfg, foundation.cluster, foundation.provider, self)
        self._at = at
        installed = cfg.addons
        self.monitoring_crds: pulumi.Resource | None = None
        self.ingress_controller: pulumi.Resource | None = None
        self.argocd: pulumi.Resource | None = None
        self.rollouts: pulumi.Resource | None = None
        self.otlp_endpoint: str | None = None
        self.jaeger_url: str | None = None
        self.grafana_url: str | None = None
        self.argocd_url: str | None = None
        self.cert_manager: CertManager | None = None
        self.local_ca: str | None = None
        # Behind the admin allow-list, where published: Grafana's and Argo CD's namespaces and hosts.
        admin_uis: list[tuple[Namespace, str]] = []
        zone = foundation.cluster.public_zone
        if zone is not None:
            external_dns.install(at, zone)
        if zone is not None or cfg.local_ca:
            self.cert_manager = cert_manager.install(at, zone)
        if cfg.local_ca:
            self.local_ca = f"build/{cfg.stack}-ca.crt after `make local-ca STACK={cfg.stack}`"

        if charts.KUBE_PROMETHEUS_STACK.name in installed:
            installed_monitoring = monitoring.install(at, service_job)
            self.monitoring_crds = installed_monitoring.release
            self.grafana_url = installed_monitoring.grafana_url
            admin_uis.append((installed_monitoring.namespace, installed_monitoring.host))
        # Its canaries are judged in that Prometheus (config.py refuses it without).
        if charts.ARGO_ROLLOUTS.name in installed and self.monitoring_crds is not None:
            self.rollouts = rollouts.install(at, self.monitoring_crds)
        if charts.JAEGER.name in installed:
            installed_tracing = tracing.install(at, service_namespace)
            self.otlp_endpoint = installed_tracing.otlp_endpoint
            self.jaeger_url = installed_tracing.jaeger_url
        if charts.TRAEFIK.name in installed:
            # Ingresses (Argo CD's, the service's) are created once the controller and its IngressClass
            # exist, so they are served (and get the load balancer's address) as soon as they land.
            self.ingress_controller = ingress.install(at, service_namespace, self.monitoring_crds)
        if charts.ARGO_CD.name in installed:
            installed_delivery = delivery.install(at, self.ingress_controller)
            self.argocd = installed_delivery.release
            self.argocd_url = installed_delivery.argocd_url
            admin_uis.append((installed_delivery.namespace, installed_delivery.host))
        if at.published and self.ingress_controller is not None:
            for namespace, host in admin_uis:
                ingress.admin_allowlist(at, namespace, self.ingress_controller)
                if self.cert_manager is not None:
                    self.cert_manager.certificate(
                        at, host.split(".")[0], host, namespace.name, namespace.ready
                    )
        if foundation.cluster.needs_metrics_server:
            metrics_server.install(at)
        if foundation.cluster.cluster_autoscaler_values is not None:
            autoscaler.install(at, foundation.cluster.cluster_autoscaler_values)
        self.register_outputs(
            {
                "otlp_endpoint": self.otlp_endpoint,
                "grafana_url": self.grafana_url,
                "argocd_url": self.argocd_url,
                "jaeger_url": self.jaeger_url,
                "local_ca": self.local_ca,
            }
        )

    def certify(self, host: str, namespace: str, after: list[pulumi.Resource]) -> None:
        """With platform:domain or platform:localTls, a certificate for `host` in `namespace` (the API's, made
        by the app), once `after` exists; without, nothing."""
        if self.cert_manager is not None:
            self.cert_manager.certificate(self._at, host.split(".")[0], host, namespace, after)
