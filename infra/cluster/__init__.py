"""Cluster add-ons, identical on every cloud: metrics, dashboards and alerts, tracing, GitOps, ingress.

Every chart is a `kubernetes.helm.v3.Release`: the Pulumi Kubernetes provider runs Helm itself (no
helm binary on the machine running `pulumi up`), and Helm installs the charts' CRDs from their
`crds/` directory with a server-side create. That avoids kube-prometheus-stack's known failure when
its CRDs are applied client-side (through `helm.v3.Chart`/`ConfigFile`): the Prometheus CRDs exceed
the 256 KiB `last-applied-configuration` annotation limit. The price is that a Release is one
resource in Pulumi's view; its values are the reviewed surface, listed by `make plan`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from config import PlatformConfig
from foundation import Foundation
from kube import container_security, namespace_peer, resources
from passwords import supplied_or_generated

from cluster import charts, dashboards
from cluster.charts import Chart

MONITORING_NAMESPACE = "monitoring"
TRACING_NAMESPACE = "tracing"
ARGOCD_NAMESPACE = "argocd"
# "ingress", not the product's name: the namespace says what runs there (and the policy pack knows
# the ingress controller's LoadBalancer Service by that word; Traefik names its Service `traefik`).
INGRESS_NAMESPACE = "ingress"
INGRESS_CLASS = "traefik"
INGRESS_RELEASE = "traefik"
# Traefik's container ports (the chart's defaults, set explicitly so the NetworkPolicy matches them):
# its Service maps 80 -> web and 443 -> websecure; metrics stay inside the cluster.
TRAEFIK_WEB_PORT = 8000
TRAEFIK_WEBSECURE_PORT = 8443
TRAEFIK_METRICS_PORT = 9100
# Release names are fixed so the charts' Service names are known: `<release>-grafana`, `jaeger`.
PROMETHEUS_RELEASE = "kube-prometheus-stack"
JAEGER_RELEASE = "jaeger"
OTLP_HTTP_PORT = 4318
OTLP_GRPC_PORT = 4317
JAEGER_QUERY_PORT = 16686
# The label Grafana's dashboard sidecar watches for (the chart's default), in every namespace.
DASHBOARD_LABEL = "grafana_dashboard"


class ClusterAddons(pulumi.ComponentResource):
    """kube-prometheus-stack, Jaeger, Argo CD, Traefik (ingress) and (where missing) metrics-server."""

    otlp_endpoint: str
    grafana_url: str
    jaeger_url: str
    argocd_url: str
    # Resources the app's custom resources (ServiceMonitor, Application) must wait for: their CRDs.
    monitoring_crds: pulumi.Resource
    argocd: pulumi.Resource
    ingress_controller: pulumi.Resource

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
        self._cfg = cfg
        self._foundation = foundation
        self._provider = foundation.provider
        scheme = "https" if cfg.tls_secret_name else "http"
        domain = _base_domain(cfg.host)

        monitoring = self._namespace(MONITORING_NAMESPACE)
        tracing = self._namespace(TRACING_NAMESPACE)
        argocd_ns = self._namespace(ARGOCD_NAMESPACE)
        ingress_ns = self._namespace(INGRESS_NAMESPACE)

        self.monitoring_crds = self._prometheus_stack(monitoring, f"grafana.{domain}")
        self._dashboard_and_alerts(monitoring, service_job)
        self._jaeger(tracing)
        # Ingresses (Argo CD's, the service's) are created once the controller and its IngressClass
        # exist, so they are served (and get the load balancer's address) as soon as they land.
        self.ingress_controller = self._ingress_controller(ingress_ns)
        self.argocd = self._argocd(argocd_ns, f"argocd.{domain}")
        self._ingress_policies(tracing, argocd_ns, ingress_ns, service_namespace)
        if foundation.cluster.needs_metrics_server:
            self._metrics_server()
        if foundation.cluster.cluster_autoscaler_values is not None:
            # Without it the HPA's extra replicas stay Pending once the minimum node count is full.
            self._release(
                charts.CLUSTER_AUTOSCALER,
                "cluster-autoscaler",
                None,
                foundation.cluster.cluster_autoscaler_values,
            )

        self.otlp_endpoint = f"http://{JAEGER_RELEASE}.{TRACING_NAMESPACE}.svc.cluster.local:{OTLP_HTTP_PORT}"
        self.grafana_url = f"{scheme}://grafana.{domain}"
        self.argocd_url = f"{scheme}://argocd.{domain}"
        # The Jaeger UI has no login of its own, so it is not published: port-forward to reach it.
        self.jaeger_url = f"http://{JAEGER_RELEASE}.{TRACING_NAMESPACE}.svc.cluster.local:{JAEGER_QUERY_PORT}"
        self.register_outputs(
            {
                "otlp_endpoint": self.otlp_endpoint,
                "grafana_url": self.grafana_url,
                "argocd_url": self.argocd_url,
                "jaeger_url": self.jaeger_url,
            }
        )

    # --- the add-ons, one method each ------------------------------------------------------------

    def _prometheus_stack(self, namespace: k8s.core.v1.Namespace, grafana_host: str) -> k8s.helm.v3.Release:
        admin_password = supplied_or_generated(
            self._cfg, "grafanaAdminPassword", "grafana-admin", 32, pulumi.ResourceOptions(parent=self)
        )
        # Grafana reads its admin credentials from this Secret: the password never enters chart
        # values, which Helm stores in the release (readable by anyone who can read Secrets there).
        admin = k8s.core.v1.Secret(
            "grafana-admin",
            metadata={"name": "grafana-admin", "namespace": MONITORING_NAMESPACE},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": admin_password},
            opts=self._k8s(depends_on=[namespace]),
        )
        values = {
            "prometheus": {
                "prometheusSpec": {
                    # Select ServiceMonitors and rules from every namespace, not just this release's.
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "podMonitorSelectorNilUsesHelmValues": False,
                    "ruleSelectorNilUsesHelmValues": False,
                    "retention": "15d" if self._cfg.is_prod else "3d",
                    "replicas": 2 if self._cfg.is_prod else 1,
                    "resources": resources("200m", "1Gi", "2", "4Gi"),
                }
            },
            "alertmanager": {"alertmanagerSpec": {"replicas": 2 if self._cfg.is_prod else 1}},
            "grafana": {
                "admin": {
                    "existingSecret": admin.metadata["name"],
                    "userKey": "admin-user",
                    "passwordKey": "admin-password",
                },
                "sidecar": {
                    "dashboards": {
                        "enabled": True,
                        "label": DASHBOARD_LABEL,
                        "labelValue": "1",
                        "searchNamespace": "ALL",
                    }
                },
                "ingress": {
                    "enabled": True,
                    "ingressClassName": INGRESS_CLASS,
                    "hosts": [grafana_host],
                    **self._tls([grafana_host]),
                },
            },
        }
        return self._release(charts.KUBE_PROMETHEUS_STACK, PROMETHEUS_RELEASE, namespace, values, [admin])

    def _dashboard_and_alerts(self, namespace: k8s.core.v1.Namespace, job: str) -> None:
        k8s.core.v1.ConfigMap(
            "product-service-dashboard",
            metadata={
                "name": "product-service-dashboard",
                "namespace": MONITORING_NAMESPACE,
                "labels": {DASHBOARD_LABEL: "1"},
            },
            data={"product-service.json": dashboards.dashboard_json(job)},
            opts=self._k8s(depends_on=[namespace]),
        )
        k8s.apiextensions.CustomResource(
            "product-service-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "product-service-alerts", "namespace": MONITORING_NAMESPACE},
            spec={"groups": dashboards.alert_groups(job)},
            opts=self._k8s(depends_on=[self.monitoring_crds]),
        )

    def _jaeger(self, namespace: k8s.core.v1.Namespace) -> None:
        # All-in-one Jaeger v2 with in-memory storage: traces for debugging, kept while the pod lives.
        values = {
            "provisionDataStore": {"cassandra": False, "elasticsearch": False, "kafka": False},
            "storage": {"type": "memory"},
            "jaeger": {
                "enabled": True,
                "resources": resources("100m", "256Mi", "1", "1Gi"),
                "podSecurityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "securityContext": container_security(),
            },
        }
        self._release(charts.JAEGER, JAEGER_RELEASE, namespace, values)

    def _argocd(self, namespace: k8s.core.v1.Namespace, host: str) -> k8s.helm.v3.Release:
        values = {
            "global": {"domain": host},
            # TLS ends at the ingress controller; the server speaks plain HTTP behind it.
            "configs": {"params": {"server.insecure": True}},
            "server": {
                "ingress": {
                    "enabled": True,
                    "ingressClassName": INGRESS_CLASS,
                    **(
                        {"extraTls": [{"hosts": [host], "secretName": self._cfg.tls_secret_name}]}
                        if self._cfg.tls_secret_name
                        else {}
                    ),
                }
            },
        }
        return self._release(charts.ARGO_CD, "argocd", namespace, values, [self.ingress_controller])

    def _ingress_controller(self, namespace: k8s.core.v1.Namespace) -> k8s.helm.v3.Release:
        """Traefik serving standard `networking.k8s.io/v1` Ingresses of class INGRESS_CLASS."""
        local = self._foundation.cloud == "local"
        prod = self._cfg.is_prod
        web: dict[str, Any] = {"port": TRAEFIK_WEB_PORT}
        if self._cfg.tls_secret_name:
            # Every published host has TLS then: send plain HTTP to HTTPS, as clients expect.
            web["redirections"] = {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}}
        values = {
            "deployment": {"replicas": 2 if prod else 1},
            "podDisruptionBudget": {"enabled": True, "minAvailable": 1} if prod else {"enabled": False},
            "ingressClass": {"enabled": True, "isDefaultClass": True, "name": INGRESS_CLASS},
            "providers": {
                # publishedService copies the load balancer's address into each Ingress's status.
                "kubernetesIngress": {"enabled": True, "publishedService": {"enabled": True}},
            },
            "ports": {
                "web": web,
                "websecure": {"port": TRAEFIK_WEBSECURE_PORT},
                "metrics": {"port": TRAEFIK_METRICS_PORT},
            },
            "service": {"annotations": self._foundation.cluster.load_balancer_annotations},
            # The metrics port is not on the LoadBalancer Service: the ServiceMonitor scrapes a
            # dedicated ClusterIP Service.
            "metrics": {"prometheus": {"service": {"enabled": True}, "serviceMonitor": {"enabled": True}}},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }
        # Where nothing provisions load balancers (plain kind), the Service stays pending: do not
        # hold `pulumi up` on it there. The ServiceMonitor needs the monitoring CRDs first.
        return self._release(
            charts.TRAEFIK,
            INGRESS_RELEASE,
            namespace,
            values,
            [self.monitoring_crds],
            skip_await=local,
        )

    def _ingress_policies(
        self,
        tracing: k8s.core.v1.Namespace,
        argocd: k8s.core.v1.Namespace,
        ingress: k8s.core.v1.Namespace,
        service_namespace: str,
    ) -> None:
        """Ingress allow-lists where every client is known: traces come from the service, the Argo CD
        UI through the ingress controller, metrics scrapes from Prometheus; components of one add-on
        talk among themselves. The ingress controller is the edge: anyone may reach its web and
        websecure ports, only Prometheus its metrics. (Egress stays open: Argo CD reaches Git, Jaeger
        keeps spans in memory, Traefik reaches every backend.) The monitoring namespace gets none: the
        API server calls the Prometheus operator's admission webhook from addresses outside the
        cluster's pod network, which differ per cloud."""
        same: dict[str, Any] = {"podSelector": {}}
        allow: dict[str, tuple[k8s.core.v1.Namespace, list[dict[str, Any]]]] = {
            TRACING_NAMESPACE: (
                tracing,
                [
                    {"from": [same]},
                    {
                        "from": [namespace_peer(service_namespace)],
                        "ports": [
                            {"protocol": "TCP", "port": OTLP_GRPC_PORT},
                            {"protocol": "TCP", "port": OTLP_HTTP_PORT},
                        ],
                    },
                    {"from": [namespace_peer(MONITORING_NAMESPACE)]},
                ],
            ),
            ARGOCD_NAMESPACE: (
                argocd,
                [
                    {"from": [same]},
                    {"from": [namespace_peer(INGRESS_NAMESPACE), namespace_peer(MONITORING_NAMESPACE)]},
                ],
            ),
            INGRESS_NAMESPACE: (
                ingress,
                [
                    # No `from`: every source, in or outside the cluster.
                    {
                        "ports": [
                            {"protocol": "TCP", "port": TRAEFIK_WEB_PORT},
                            {"protocol": "TCP", "port": TRAEFIK_WEBSECURE_PORT},
                        ]
                    },
                    {
                        "from": [namespace_peer(MONITORING_NAMESPACE)],
                        "ports": [{"protocol": "TCP", "port": TRAEFIK_METRICS_PORT}],
                    },
                ],
            ),
        }
        for namespace_name, (namespace, rules) in allow.items():
            k8s.networking.v1.NetworkPolicy(
                f"{namespace_name}-ingress",
                metadata={"name": "allow-known-clients", "namespace": namespace_name},
                spec={"podSelector": {}, "policyTypes": ["Ingress"], "ingress": rules},
                opts=self._k8s(depends_on=[namespace]),
            )

    def _metrics_server(self) -> None:
        values = {"args": self._foundation.cluster.metrics_server_args}
        self._release(charts.METRICS_SERVER, "metrics-server", None, values)

    # --- helpers ------------------------------------------------------------------------------------

    def _k8s(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=depends_on or [])

    def _namespace(self, name: str) -> k8s.core.v1.Namespace:
        return k8s.core.v1.Namespace(name, metadata={"name": name}, opts=self._k8s())

    def _release(
        self,
        chart: Chart,
        release: str,
        namespace: k8s.core.v1.Namespace | None,
        values: dict[str, Any],
        depends_on: list[pulumi.Resource] | None = None,
        skip_await: bool = False,
    ) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            release,
            name=release,
            chart=chart.name,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
            namespace=namespace.metadata["name"] if namespace else "kube-system",
            values=values,
            timeout=900,
            skip_await=skip_await,
            opts=self._k8s(depends_on=[*([namespace] if namespace else []), *(depends_on or [])]),
        )

    def _tls(self, hosts: list[str]) -> dict[str, Any]:
        if not self._cfg.tls_secret_name:
            return {}
        return {"tls": [{"hosts": hosts, "secretName": self._cfg.tls_secret_name}]}


def _base_domain(host: str) -> str:
    """`api.example.com` -> `example.com`: the add-ons' UIs live next to the API's host."""
    first, _, rest = host.partition(".")
    return rest if first == "api" and rest else host
