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
from kube import (
    DEFAULT_DENY,
    PodSecurityLevel,
    dns_egress,
    egress_anywhere,
    namespace_peer,
    pod_security_labels,
    pods_peer,
    spread,
    tcp,
)
from passwords import supplied_or_generated

from cluster import bounds, charts, dashboards
from cluster.charts import Chart, ChartService

MONITORING_NAMESPACE = "monitoring"
# kube-prometheus-stack's node-exporter alone (its subchart's namespaceOverride), see POD_SECURITY.
NODE_EXPORTER_NAMESPACE = "node-exporter"
TRACING_NAMESPACE = "tracing"
ARGOCD_NAMESPACE = "argocd"
# "ingress", not the product's name: the namespace says what runs there (and the policy pack knows
# the ingress controller's LoadBalancer Service by that word; Traefik names its Service `traefik`).
INGRESS_NAMESPACE = "ingress"
INGRESS_CLASS = "traefik"
INGRESS_RELEASE = "traefik"
# The namespaces of each add-on platform:addons may leave out, and the UIs published behind the allow-list.
ADDON_NAMESPACES = {
    MONITORING_NAMESPACE: charts.KUBE_PROMETHEUS_STACK.name,
    NODE_EXPORTER_NAMESPACE: charts.KUBE_PROMETHEUS_STACK.name,
    TRACING_NAMESPACE: charts.JAEGER.name,
    ARGOCD_NAMESPACE: charts.ARGO_CD.name,
    INGRESS_NAMESPACE: charts.TRAEFIK.name,
}
ADMIN_NAMESPACES = (MONITORING_NAMESPACE, ARGOCD_NAMESPACE)
# Pod Security `enforce` per namespace: the strictest standard its pods meet, as `make charts` renders
# them (every container of every workload, hook Jobs included, judged against `restricted`) and as the
# Prometheus operator builds Prometheus and Alertmanager (read-only root, no escalation, ALL dropped; the
# pod's non-root user and seccomp come from the values in bounds.py). Node exporter reports the node
# itself through the host's network and PID namespaces and read-only host paths (charts.EXCEPTIONS),
# which `baseline` forbids as well: it runs apart, in a namespace that allows `privileged` and holds
# nothing else, so Grafana, Prometheus and the operator stay `restricted`.
POD_SECURITY: dict[str, PodSecurityLevel] = {
    MONITORING_NAMESPACE: "restricted",
    NODE_EXPORTER_NAMESPACE: "privileged",
    TRACING_NAMESPACE: "restricted",
    ARGOCD_NAMESPACE: "restricted",
    INGRESS_NAMESPACE: "restricted",
}
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
# Release names are fixed so the charts' Service names are known: `<release>-grafana`, `argocd-server`,
# and Jaeger's one Service, named after its release (charts.JAEGER).
PROMETHEUS_RELEASE = "kube-prometheus-stack"
JAEGER_RELEASE = "jaeger"
ARGOCD_RELEASE = "argocd"
GRAFANA_SERVICE = f"{PROMETHEUS_RELEASE}-grafana"
ARGOCD_SERVICE = f"{ARGOCD_RELEASE}-server"
OTLP_HTTP_PORT = 4318
OTLP_GRPC_PORT = 4317
JAEGER_QUERY_PORT = 16686
JAEGER_METRICS_PORT = 8888  # the all-in-one's own metrics (its Deployment's prometheus.io/port)
# The pods the NetworkPolicies name, by the labels their charts (or the Prometheus operator) give them,
# and the container ports they serve on (each chart's default; the operator's is set in its values).
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager"}
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
GRAFANA_PORT = 3000
OPERATOR_PODS = {"app": f"{PROMETHEUS_RELEASE}-operator"}
# The admission webhook's port; the chart's default, chosen because GKE's control plane may reach nodes on it.
OPERATOR_WEBHOOK_PORT = 10250
ARGOCD_SERVER_PODS = {"app.kubernetes.io/name": "argocd-server"}
ARGOCD_REPO_SERVER_PODS = {"app.kubernetes.io/name": "argocd-repo-server"}
ARGOCD_SERVER_PORT = 8080
ARGOCD_SERVER_METRICS_PORT = 8083
# What Prometheus scrapes at the nodes' own addresses: node-exporter (host network) and the kubelet with
# its cAdvisor; where the control plane runs on the nodes, also kube-proxy, kube-controller-manager,
# kube-scheduler and etcd (kube-prometheus-stack's ports for them).
NODE_METRICS_PORTS = (9100, 10250)
CONTROL_PLANE_METRICS_PORTS = (10249, 10257, 10259, 2381)
# Git over SSH, for a platform:gitopsRepoUrl like git@host:org/repo (over HTTPS it is 443).
GIT_SSH_PORT = 22
# A NetworkPolicy peer: every pod of the policy's own namespace.
SAME_NAMESPACE: dict[str, Any] = {"podSelector": {}}
# Every Service of a chart that the program, a stack output or the docs name; `make charts` checks that
# the pinned charts render each of them so.
CHART_SERVICES = (
    ChartService(
        charts.JAEGER.name,
        TRACING_NAMESPACE,
        JAEGER_RELEASE,
        (OTLP_GRPC_PORT, OTLP_HTTP_PORT, JAEGER_QUERY_PORT),
        "the service's OTLP endpoint and the jaeger_url output",
    ),
    ChartService(
        charts.KUBE_PROMETHEUS_STACK.name,
        MONITORING_NAMESPACE,
        GRAFANA_SERVICE,
        (80,),
        "the grafana_url output",
    ),
    ChartService(
        charts.KUBE_PROMETHEUS_STACK.name,
        MONITORING_NAMESPACE,
        f"{PROMETHEUS_RELEASE}-prometheus",
        (9090,),
        "Prometheus's API, reached by `kubectl port-forward`",
    ),
    ChartService(
        charts.KUBE_PROMETHEUS_STACK.name,
        MONITORING_NAMESPACE,
        f"{PROMETHEUS_RELEASE}-alertmanager",
        (9093,),
        "Alertmanager's UI, reached by `kubectl port-forward`",
    ),
    ChartService(charts.ARGO_CD.name, ARGOCD_NAMESPACE, ARGOCD_SERVICE, (80,), "the argocd_url output"),
    ChartService(charts.TRAEFIK.name, INGRESS_NAMESPACE, INGRESS_RELEASE, (80, 443), "the api_url output"),
)
# The label Grafana's dashboard sidecar watches for (the chart's default), in every namespace.
DASHBOARD_LABEL = "grafana_dashboard"
# Persistent volumes, the same in every profile: a claim never shrinks and grows only where its
# StorageClass allows expansion, so sizes that followed the profile made a live stack's profile switch
# fail in the chart's upgrade. Prometheus keeps 3 (dev) or 15 (prod) days, stopped early by
# RETENTION_SIZE so the volume never fills; Alertmanager its silences and notification log; Grafana its
# users and settings.
VOLUME_SIZES = {"prometheus": "50Gi", "alertmanager": "5Gi", "grafana": "10Gi"}
RETENTION_SIZE = "40GiB"
# Alertmanager mounts each Secret listed in alertmanagerSpec.secrets at /etc/alertmanager/secrets/<name>/.
ALERT_RECEIVER_SECRET = "alertmanager-receiver"  # noqa: S105 (a Secret's name, not a credential)
ALERT_RECEIVER_URL_FILE = f"/etc/alertmanager/secrets/{ALERT_RECEIVER_SECRET}/url"
# The Traefik Middleware (one per namespace: Traefik refuses cross-namespace references) that admits
# only platform:adminAllowedCidrs to Grafana and Argo CD.
ADMIN_ALLOWLIST = "admin-allowlist"
# The busybox that unpacks the CRDs in kube-prometheus-stack's CRD upgrade Job (the chart's default tag
# is `latest`).
BUSYBOX_TAG = "1.37.0"


class ClusterAddons(pulumi.ComponentResource):
    """kube-prometheus-stack, Jaeger, Argo CD and Traefik (ingress), those of platform:addons, and
    (where the cloud lacks them) metrics-server and cluster-autoscaler. The attributes of an add-on left
    out are None, and the app's objects that need it follow: ServiceMonitors wait for `monitoring_crds`,
    Ingresses for `ingress_controller`, the Application for `argocd`; traces go to `otlp_endpoint`."""

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
        self._published = bool(cfg.admin_allowed_cidrs)

        installed = cfg.addons
        self.monitoring_crds: pulumi.Resource | None = None
        self.ingress_controller: pulumi.Resource | None = None
        self.argocd: pulumi.Resource | None = None
        self.otlp_endpoint: str | None = None
        self.jaeger_url: str | None = None
        self.grafana_url: str | None = None
        self.argocd_url: str | None = None
        namespaces = {
            namespace: self._namespace(namespace)
            for namespace, addon in ADDON_NAMESPACES.items()
            if addon in installed
        }
        # Each namespace's NetworkPolicies, which every Release there waits for: its pods, the charts' hook
        # Jobs too, start under default deny with the flows they need already open.
        self._service_namespace = service_namespace
        self._isolation = {
            namespace: self._network_policies(name, namespace) for name, namespace in namespaces.items()
        }

        if charts.KUBE_PROMETHEUS_STACK.name in installed:
            monitoring = namespaces[MONITORING_NAMESPACE]
            self.monitoring_crds = self._prometheus_stack(
                monitoring, namespaces[NODE_EXPORTER_NAMESPACE], f"grafana.{domain}"
            )
            self._dashboard_and_alerts(monitoring, service_job)
            self.grafana_url = (
                f"{scheme}://grafana.{domain}"
                if self._published
                else port_forward_url(MONITORING_NAMESPACE, GRAFANA_SERVICE, 3000)
            )
        if charts.JAEGER.name in installed:
            self._jaeger(namespaces[TRACING_NAMESPACE])
            self.otlp_endpoint = _jaeger_url(OTLP_HTTP_PORT)
            # The Jaeger UI has no login of its own, so it is never published: port-forward to reach it.
            self.jaeger_url = _jaeger_url(JAEGER_QUERY_PORT)
        if charts.TRAEFIK.name in installed:
            # Ingresses (Argo CD's, the service's) are created once the controller and its IngressClass
            # exist, so they are served (and get the load balancer's address) as soon as they land.
            self.ingress_controller = self._ingress_controller(namespaces[INGRESS_NAMESPACE])
            if self._published:
                self._admin_allowlists(
                    {name: namespaces[name] for name in ADMIN_NAMESPACES if name in namespaces}
                )
        if charts.ARGO_CD.name in installed:
            self.argocd = self._argocd(namespaces[ARGOCD_NAMESPACE], f"argocd.{domain}")
            self.argocd_url = (
                f"{scheme}://argocd.{domain}"
                if self._published
                else port_forward_url(ARGOCD_NAMESPACE, ARGOCD_SERVICE, 8080)
            )
        if foundation.cluster.needs_metrics_server:
            self._metrics_server()
        if foundation.cluster.cluster_autoscaler_values is not None:
            # Without it the HPA's extra replicas stay Pending once the minimum node count is full.
            self._release(
                charts.CLUSTER_AUTOSCALER,
                "cluster-autoscaler",
                None,
                bounds.merged(
                    foundation.cluster.cluster_autoscaler_values, bounds.cluster_autoscaler(cfg.is_prod)
                ),
            )
        self.register_outputs(
            {
                "otlp_endpoint": self.otlp_endpoint,
                "grafana_url": self.grafana_url,
                "argocd_url": self.argocd_url,
                "jaeger_url": self.jaeger_url,
            }
        )

    # --- the add-ons, one method each ------------------------------------------------------------

    def _prometheus_stack(
        self, namespace: k8s.core.v1.Namespace, node_namespace: k8s.core.v1.Namespace, grafana_host: str
    ) -> k8s.helm.v3.Release:
        prod = self._cfg.is_prod
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
        alerting, receiver = self._alert_receiver(namespace)
        values = {
            # Helm installs a chart's crds/ only once and never upgrades them; the chart's upgrade Job
            # (a pre-install/pre-upgrade hook) server-side applies the CRDs of the pinned version, so a
            # chart bump upgrades ServiceMonitor, PrometheusRule and the rest with it.
            "crds": {"upgradeJob": {"enabled": True, "image": {"busybox": {"tag": BUSYBOX_TAG}}}},
            "prometheus": {
                "prometheusSpec": {
                    # Select ServiceMonitors and rules from every namespace, not just this release's.
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "podMonitorSelectorNilUsesHelmValues": False,
                    "ruleSelectorNilUsesHelmValues": False,
                    "retention": "15d" if prod else "3d",
                    "retentionSize": RETENTION_SIZE,
                    "replicas": 2 if prod else 1,
                    "storageSpec": {"volumeClaimTemplate": {"spec": self._volume("prometheus")}},
                }
            },
            "alertmanager": {
                **alerting,
                "alertmanagerSpec": {
                    "replicas": 2 if prod else 1,
                    "secrets": [receiver.metadata["name"]] if receiver else [],
                    "storage": {"volumeClaimTemplate": {"spec": self._volume("alertmanager")}},
                },
            },
            "grafana": {
                "admin": {
                    "existingSecret": admin.metadata["name"],
                    "userKey": "admin-user",
                    "passwordKey": "admin-password",
                },
                "persistence": {
                    "enabled": True,
                    "type": "pvc",
                    "accessModes": ["ReadWriteOnce"],
                    "size": VOLUME_SIZES["grafana"],
                    **self._storage_class("storageClassName"),
                },
                # A ReadWriteOnce volume attaches to one node: the old pod must go before the new starts.
                "deploymentStrategy": {"type": "Recreate"},
                "sidecar": {
                    "dashboards": {
                        "enabled": True,
                        "label": DASHBOARD_LABEL,
                        "labelValue": "1",
                        "searchNamespace": "ALL",
                    }
                },
                "ingress": self._admin_ingress(MONITORING_NAMESPACE, grafana_host),
            },
            # The admission webhook's port, set so that its NetworkPolicy matches it.
            "prometheusOperator": {"tls": {"internalPort": OPERATOR_WEBHOOK_PORT}},
            # Its own namespace, the one that allows host access (POD_SECURITY).
            "prometheus-node-exporter": {"namespaceOverride": NODE_EXPORTER_NAMESPACE},
            **self._control_plane_monitors(),
        }
        return self._release(
            charts.KUBE_PROMETHEUS_STACK,
            PROMETHEUS_RELEASE,
            namespace,
            bounds.merged(values, bounds.kube_prometheus_stack(prod)),
            [node_namespace, *self._isolation[node_namespace], admin, *([receiver] if receiver else [])],
        )

    def _alert_receiver(
        self, namespace: k8s.core.v1.Namespace
    ) -> tuple[dict[str, Any], k8s.core.v1.Secret | None]:
        """Alertmanager's receiver and the Secret holding its URL: the stack's webhook, read from the
        mounted Secret (`url_file`, so the URL stays out of the chart values), or the chart's `null`
        receiver, with a warning at `up`."""
        url = self._cfg.alert_webhook_url
        if url is None:
            pulumi.log.warn(
                "platform:alertWebhookUrl is not set: Alertmanager sends every alert to its null receiver "
                "and no alert reaches anyone; set it with `pulumi config set --secret platform:alertWebhookUrl "
                "https://...` (platform:alertReceiver: webhook or slack)"
            )
            return {}, None
        secret = k8s.core.v1.Secret(
            ALERT_RECEIVER_SECRET,
            metadata={"name": ALERT_RECEIVER_SECRET, "namespace": MONITORING_NAMESPACE},
            type="Opaque",
            string_data={"url": url},
            opts=self._k8s(depends_on=[namespace]),
        )
        # Alertmanager's configuration reference: webhook_config `url_file`, slack_config `api_url_file`.
        if self._cfg.alert_receiver == "slack":
            receiver = {"slack_configs": [{"api_url_file": ALERT_RECEIVER_URL_FILE, "send_resolved": True}]}
        else:
            receiver = {"webhook_configs": [{"url_file": ALERT_RECEIVER_URL_FILE, "send_resolved": True}]}
        # Helm merges maps and replaces lists: the chart's routes (Watchdog to `null`) and inhibit rules
        # stay, the default route and the receiver list are ours.
        config = {
            "route": {"receiver": "platform"},
            "receivers": [{"name": "null"}, {"name": "platform", **receiver}],
        }
        return {"config": config}, secret

    def _control_plane_monitors(self) -> dict[str, Any]:
        """Managed control planes answer no scrape of kube-controller-manager, kube-scheduler or etcd,
        and kube-proxy serves its metrics on the node's loopback only: without this their Services and
        ServiceMonitors exist for nothing and KubeSchedulerDown, KubeControllerManagerDown and TargetDown
        fire forever."""
        if self._foundation.cluster.control_plane_metrics:
            return {}
        off = {"enabled": False}
        return {
            "kubeControllerManager": off,
            "kubeScheduler": off,
            "kubeEtcd": off,
            "kubeProxy": off,
            "defaultRules": {
                "rules": {
                    "etcd": False,
                    "kubeControllerManager": False,
                    "kubeSchedulerAlerting": False,
                    "kubeSchedulerRecording": False,
                    "kubeProxy": False,
                }
            },
        }

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
            opts=self._k8s(depends_on=_present(self.monitoring_crds)),
        )

    def _jaeger(self, namespace: k8s.core.v1.Namespace) -> None:
        # All-in-one Jaeger v2: with no user config the image's own serves OTLP and keeps traces in
        # memory, for debugging, while the pod lives. It calls no Kubernetes API.
        values = {"jaeger": {"enabled": True, "serviceAccount": {"automountServiceAccountToken": False}}}
        self._release(
            charts.JAEGER, JAEGER_RELEASE, namespace, bounds.merged(values, bounds.jaeger(self._cfg.is_prod))
        )

    def _argocd(self, namespace: k8s.core.v1.Namespace, host: str) -> k8s.helm.v3.Release:
        ingress: dict[str, Any] = {"enabled": False}
        if self._published:
            ingress = {
                "enabled": True,
                "ingressClassName": INGRESS_CLASS,
                "annotations": _allowlisted(ARGOCD_NAMESPACE),
                **(
                    {"extraTls": [{"hosts": [host], "secretName": self._cfg.tls_secret_name}]}
                    if self._cfg.tls_secret_name
                    else {}
                ),
            }
        # The chart's own NetworkPolicies admit each component's clients among Argo CD's (repo-server from
        # the server, controller, ApplicationSet and notifications; Redis from the server, repo-server and
        # controller; Dex from the server) and metrics from any namespace. The server's would admit every
        # source (`ingress: [{}]`); its clients are the program's (_argocd_flows).
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
        return self._release(
            charts.ARGO_CD,
            ARGOCD_RELEASE,
            namespace,
            bounds.merged(values, bounds.argo_cd(self._cfg.is_prod)),
            _present(self.ingress_controller),
        )

    def _ingress_controller(self, namespace: k8s.core.v1.Namespace) -> k8s.helm.v3.Release:
        """Traefik serving standard `networking.k8s.io/v1` Ingresses of class INGRESS_CLASS."""
        prod = self._cfg.is_prod
        web = _traffic_entry_point(TRAEFIK_WEB_PORT)
        if self._cfg.tls_secret_name:
            # Every published host has TLS then: send plain HTTP to HTTPS, as clients expect.
            web["redirections"] = {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}}
        service: dict[str, Any] = {
            "annotations": self._foundation.cluster.load_balancer_annotations,
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
                # publishedService copies the load balancer's address into each Ingress's status.
                "kubernetesIngress": {"enabled": True, "publishedService": {"enabled": True}},
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
                    "serviceMonitor": {"enabled": self.monitoring_crds is not None},
                }
            },
        }
        # Where nothing provisions load balancers (kind, minikube), the Service stays pending: do not
        # hold `pulumi up` on it there. The ServiceMonitor needs the monitoring CRDs first.
        controller = self._release(
            charts.TRAEFIK,
            INGRESS_RELEASE,
            namespace,
            bounds.merged(values, bounds.traefik(prod)),
            _present(self.monitoring_crds),
            skip_await=not self._foundation.cluster.load_balancer_addresses,
        )
        return controller

    def _admin_allowlists(self, namespaces: dict[str, k8s.core.v1.Namespace]) -> None:
        """The Middleware each admin UI's Ingress names: only platform:adminAllowedCidrs get through.
        Its CRD (traefik.io/v1alpha1) comes with the Traefik chart."""
        for name, namespace in namespaces.items():
            k8s.apiextensions.CustomResource(
                f"{name}-{ADMIN_ALLOWLIST}",
                api_version="traefik.io/v1alpha1",
                kind="Middleware",
                metadata={"name": ADMIN_ALLOWLIST, "namespace": name},
                spec={"ipAllowList": {"sourceRange": self._cfg.admin_allowed_cidrs}},
                opts=self._k8s(depends_on=[namespace, *_present(self.ingress_controller)]),
            )

    def _network_policies(
        self, name: str, namespace: k8s.core.v1.Namespace
    ) -> list[k8s.networking.v1.NetworkPolicy]:
        """Default deny both ways, DNS to the cluster's resolver only, then the flows of the namespace's
        add-on. Outside the pod network (nodes, the API server, Git) NetworkPolicy can name addresses and
        ports only, and the program knows no addresses there: those flows name their ports, at any
        address (the API server's are ClusterFacts.api_server_ports)."""
        flows = {
            MONITORING_NAMESPACE: self._monitoring_flows,
            TRACING_NAMESPACE: self._tracing_flows,
            ARGOCD_NAMESPACE: self._argocd_flows,
            INGRESS_NAMESPACE: self._ingress_controller_flows,
        }
        policies = {
            "default-deny": DEFAULT_DENY,
            "allow-dns": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns_egress()]},
            # node-exporter's namespace needs nothing more: its pods use the host's network, which
            # NetworkPolicy does not govern, and nothing else runs there.
            **(flows[name]() if name in flows else {}),
        }
        return [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy}",
                metadata={"name": policy, "namespace": name},
                spec=spec,
                opts=self._k8s(depends_on=[namespace]),
            )
            for policy, spec in policies.items()
        ]

    def _monitoring_flows(self) -> dict[str, dict[str, Any]]:
        """Grafana, Prometheus and Alertmanager among themselves; the Kubernetes API; Prometheus's scrapes
        (every namespace admits monitoring on its metrics ports; node-exporter and the kubelet answer at
        the nodes' addresses); the API server's calls to the operator's admission webhook; the alert
        receiver; Grafana behind the ingress controller when published."""
        scraped = NODE_METRICS_PORTS + (
            CONTROL_PLANE_METRICS_PORTS if self._foundation.cluster.control_plane_metrics else ()
        )
        flows: dict[str, dict[str, Any]] = {
            "allow-monitoring-components": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [SAME_NAMESPACE]}],
                "egress": [{"to": [SAME_NAMESPACE]}],
            },
            # The operator, Prometheus's discovery, kube-state-metrics, Grafana's dashboard sidecar and the
            # chart's hook Jobs (CRD upgrade, webhook certificate).
            "allow-kubernetes-api": self._api_flow(),
            "allow-prometheus-scrapes": {
                "podSelector": {"matchLabels": PROMETHEUS_PODS},
                "policyTypes": ["Egress"],
                # Every pod of every namespace, on TCP (metrics are HTTP; a pod's own policies pick its ports).
                "egress": [
                    {"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP"}]},
                    egress_anywhere(scraped),
                ],
            },
            # The API server calls the webhook from outside the pod network, from addresses that differ per
            # cloud (GKE's control plane range, AKS's konnectivity tunnel, EKS's ENIs): the port only.
            "allow-admission-webhook": {
                "podSelector": {"matchLabels": OPERATOR_PODS},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": tcp(OPERATOR_WEBHOOK_PORT)}],
            },
        }
        if self._cfg.alert_webhook_url is not None:
            # platform:alertWebhookUrl is an https:// URL.
            flows["allow-alert-receiver"] = {
                "podSelector": {"matchLabels": ALERTMANAGER_PODS},
                "policyTypes": ["Egress"],
                "egress": [egress_anywhere((443,))],
            }
        if self._published:
            flows["allow-grafana-from-ingress-controller"] = {
                "podSelector": {"matchLabels": GRAFANA_PODS},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [namespace_peer(INGRESS_NAMESPACE)], "ports": tcp(GRAFANA_PORT)}],
            }
        return flows

    def _tracing_flows(self) -> dict[str, dict[str, Any]]:
        """Jaeger receives OTLP from the service and scrapes from Prometheus; it keeps spans in memory and
        calls nothing."""
        return {
            "allow-known-clients": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [namespace_peer(self._service_namespace)],
                        "ports": tcp(OTLP_GRPC_PORT, OTLP_HTTP_PORT),
                    },
                    {"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": tcp(JAEGER_METRICS_PORT)},
                ],
            }
        }

    def _argocd_flows(self) -> dict[str, dict[str, Any]]:
        """Argo CD's components reach each other (what each admits, the chart's own policies say: see
        _argocd), the Kubernetes API, and Git from the repo-server; the server admits Prometheus and,
        when published, the ingress controller."""
        server_clients = [
            {"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": tcp(ARGOCD_SERVER_METRICS_PORT)}
        ]
        if self._published:
            server_clients.append(
                {"from": [namespace_peer(INGRESS_NAMESPACE)], "ports": tcp(ARGOCD_SERVER_PORT)}
            )
        return {
            "allow-argocd-components": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [SAME_NAMESPACE]}],
            },
            "allow-kubernetes-api": self._api_flow(),
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

    def _ingress_controller_flows(self) -> dict[str, dict[str, Any]]:
        """The edge: anyone reaches the traffic ports, only Prometheus the metrics port. Traefik watches
        the Kubernetes API and sends to the service's namespace on any port (the service's own policies
        admit this namespace on the ports it serves) and to the admin UIs it publishes."""
        installed = self._cfg.addons
        backends: list[dict[str, Any]] = [{"to": [namespace_peer(self._service_namespace)]}]
        if self._published and charts.KUBE_PROMETHEUS_STACK.name in installed:
            backends.append(
                {"to": [pods_peer(MONITORING_NAMESPACE, GRAFANA_PODS)], "ports": tcp(GRAFANA_PORT)}
            )
        if self._published and charts.ARGO_CD.name in installed:
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
            "allow-kubernetes-api": self._api_flow(),
            "allow-backends": {"podSelector": {}, "policyTypes": ["Egress"], "egress": backends},
        }

    def _api_flow(self) -> dict[str, Any]:
        """Every pod of the namespace to the Kubernetes API server: its ports, at any address."""
        return {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [egress_anywhere(self._foundation.cluster.api_server_ports)],
        }

    def _metrics_server(self) -> None:
        values = {"args": self._foundation.cluster.metrics_server_args}
        self._release(
            charts.METRICS_SERVER,
            "metrics-server",
            None,
            bounds.merged(values, bounds.metrics_server(self._cfg.is_prod)),
        )

    # --- helpers ------------------------------------------------------------------------------------

    def _k8s(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=depends_on or [])

    def _namespace(self, name: str) -> k8s.core.v1.Namespace:
        labels = pod_security_labels(POD_SECURITY[name], self._foundation.cluster.kubernetes_version)
        return k8s.core.v1.Namespace(name, metadata={"name": name, "labels": labels}, opts=self._k8s())

    def _release(
        self,
        chart: Chart,
        release: str,
        namespace: k8s.core.v1.Namespace | None,
        values: dict[str, Any],
        depends_on: list[pulumi.Resource] | None = None,
        skip_await: bool = False,
    ) -> k8s.helm.v3.Release:
        reference, repository = charts.source(chart, self._cfg.chart_repository)
        return k8s.helm.v3.Release(
            release,
            name=release,
            chart=reference,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repository) if repository else None,
            namespace=namespace.metadata["name"] if namespace else "kube-system",
            values=values,
            timeout=900,
            skip_await=skip_await,
            opts=self._k8s(
                depends_on=[
                    *([namespace, *self._isolation[namespace]] if namespace else []),
                    *(depends_on or []),
                ]
            ),
        )

    def _volume(self, component: str) -> dict[str, Any]:
        """A PersistentVolumeClaim spec on the cluster's storage class (its default when None)."""
        return {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": VOLUME_SIZES[component]}},
            **self._storage_class("storageClassName"),
        }

    def _storage_class(self, key: str) -> dict[str, Any]:
        storage_class = self._foundation.cluster.storage_class
        return {key: storage_class} if storage_class else {}

    def _admin_ingress(self, namespace: str, host: str) -> dict[str, Any]:
        """Grafana's Ingress: only with platform:adminAllowedCidrs, and then only for them."""
        if not self._published:
            return {"enabled": False}
        return {
            "enabled": True,
            "ingressClassName": INGRESS_CLASS,
            "annotations": _allowlisted(namespace),
            "hosts": [host],
            **self._tls([host]),
        }

    def _tls(self, hosts: list[str]) -> dict[str, Any]:
        if not self._cfg.tls_secret_name:
            return {}
        return {"tls": [{"hosts": hosts, "secretName": self._cfg.tls_secret_name}]}


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


def _present(*resources: pulumi.Resource | None) -> list[pulumi.Resource]:
    """The dependencies among these that the stack installs (platform:addons)."""
    return [r for r in resources if r is not None]


def traces_egress() -> dict[str, Any]:
    """A NetworkPolicy egress rule to Jaeger's OTLP ports, for the pods that send traces."""
    return {"to": [namespace_peer(TRACING_NAMESPACE)], "ports": tcp(OTLP_GRPC_PORT, OTLP_HTTP_PORT)}


def _jaeger_url(port: int) -> str:
    """Jaeger's one Service (named after its release) at `port`: the only place its address is built."""
    return f"http://{JAEGER_RELEASE}.{TRACING_NAMESPACE}.svc.cluster.local:{port}"


def port_forward_url(namespace: str, service: str, local_port: int) -> str:
    """How to reach a Service (port 80) that is not published through the ingress."""
    return f"http://127.0.0.1:{local_port} after `kubectl -n {namespace} port-forward svc/{service} {local_port}:80`"


def _allowlisted(namespace: str) -> dict[str, str]:
    """The Traefik annotation that puts an Ingress behind the namespace's ADMIN_ALLOWLIST Middleware."""
    return {
        "traefik.ingress.kubernetes.io/router.middlewares": f"{namespace}-{ADMIN_ALLOWLIST}@kubernetescrd"
    }


def _base_domain(host: str) -> str:
    """`api.example.com` -> `example.com`: the add-ons' UIs live next to the API's host."""
    first, _, rest = host.partition(".")
    return rest if first == "api" and rest else host
