"""Monitoring: kube-prometheus-stack (Prometheus, Alertmanager, Grafana and the Prometheus operator, whose
CRDs the ServiceMonitors and PrometheusRules need), with the product service's dashboard and alerts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from kube import egress_anywhere, namespace_peer, tcp
from passwords import supplied_or_generated

from cluster import bounds, charts, dashboards
from cluster.shared import (
    INGRESS_CLASS,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    NODE_EXPORTER_NAMESPACE,
    ROLLOUTS_NAMESPACE,
    SAME_NAMESPACE,
    Installation,
    Namespace,
    admin_url,
    allowlisted,
    api_flow,
    base_domain,
    chart_release,
    isolated_namespace,
    storage_class,
    tls,
)

# Release names are fixed so the charts' Service names are known.
PROMETHEUS_RELEASE = "kube-prometheus-stack"
GRAFANA_SERVICE = f"{PROMETHEUS_RELEASE}-grafana"
# The pods the NetworkPolicies name, by the labels their charts (or the Prometheus operator) give them,
# and the container ports they serve on (each chart's default; the operator's is set in its values).
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
PROMETHEUS_PORT = 9090
ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager"}
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
GRAFANA_PORT = 3000
OPERATOR_PODS = {"app": f"{PROMETHEUS_RELEASE}-operator"}
# The admission webhook's port; the chart's default, chosen because GKE's control plane may reach nodes on it.
OPERATOR_WEBHOOK_PORT = 10250
# What Prometheus scrapes at the nodes' own addresses: node-exporter (host network) and the kubelet with
# its cAdvisor; where the control plane runs on the nodes, also kube-proxy, kube-controller-manager,
# kube-scheduler and etcd (kube-prometheus-stack's ports for them).
NODE_METRICS_PORTS = (9100, 10250)
CONTROL_PLANE_METRICS_PORTS = (10249, 10257, 10259, 2381)
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
# The busybox that unpacks the CRDs in kube-prometheus-stack's CRD upgrade Job (the chart's default tag
# is `latest`).
BUSYBOX_TAG = "1.37.0"


@dataclass(frozen=True)
class Monitoring:
    release: k8s.helm.v3.Release  # the monitoring CRDs exist once it is installed
    namespace: Namespace
    grafana_url: str
    host: str  # Grafana's, where published


def install(at: Installation, service_job: str) -> Monitoring:
    """The release in its namespace, node-exporter apart, and the dashboard and alerts of the service
    whose metrics carry `job="<service_job>"`.

    Pod Security: Grafana, Prometheus, Alertmanager and the operator meet `restricted` (as `make charts`
    renders them, hook Jobs included, and as the operator builds Prometheus and Alertmanager: read-only
    root, no escalation, ALL dropped; the pod's non-root user and seccomp come from the values in
    bounds.py). Node exporter reports the node itself through the host's network and PID namespaces and
    read-only host paths (charts.EXCEPTIONS), which `baseline` forbids as well: it runs apart, in a
    namespace that allows `privileged` and holds nothing else."""
    monitoring = isolated_namespace(at, MONITORING_NAMESPACE, "restricted", _flows(at))
    # node-exporter's namespace needs no flow: its pods use the host's network, which NetworkPolicy does
    # not govern, and nothing else runs there.
    node_exporter = isolated_namespace(at, NODE_EXPORTER_NAMESPACE, "privileged", {})
    host = f"grafana.{base_domain(at.cfg.host)}"
    stack = _prometheus_stack(at, monitoring, node_exporter, host)
    _dashboard_and_alerts(at, monitoring, stack, service_job)
    return Monitoring(
        stack, monitoring, admin_url(at, host, MONITORING_NAMESPACE, GRAFANA_SERVICE, 3000), host
    )


def _prometheus_stack(
    at: Installation, namespace: Namespace, node_namespace: Namespace, grafana_host: str
) -> k8s.helm.v3.Release:
    prod = at.cfg.is_prod
    admin_password = supplied_or_generated(
        at.cfg, "grafanaAdminPassword", "grafana-admin", 32, pulumi.ResourceOptions(parent=at.parent)
    )
    # Grafana reads its admin credentials from this Secret: the password never enters chart
    # values, which Helm stores in the release (readable by anyone who can read Secrets there).
    admin = k8s.core.v1.Secret(
        "grafana-admin",
        metadata={"name": "grafana-admin", "namespace": MONITORING_NAMESPACE},
        type="Opaque",
        string_data={"admin-user": "admin", "admin-password": admin_password},
        opts=at.opts(depends_on=[namespace.resource]),
    )
    alerting, receiver = _alert_receiver(at, namespace)
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
                "storageSpec": {"volumeClaimTemplate": {"spec": _volume(at, "prometheus")}},
            }
        },
        "alertmanager": {
            **alerting,
            "alertmanagerSpec": {
                "replicas": 2 if prod else 1,
                "secrets": [receiver.metadata["name"]] if receiver else [],
                "storage": {"volumeClaimTemplate": {"spec": _volume(at, "alertmanager")}},
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
                **storage_class(at, "storageClassName"),
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
            "ingress": _admin_ingress(at, MONITORING_NAMESPACE, grafana_host),
        },
        # The admission webhook's port, set so that its NetworkPolicy matches it.
        "prometheusOperator": {"tls": {"internalPort": OPERATOR_WEBHOOK_PORT}},
        # Its own namespace, the one that allows host access (see `install`).
        "prometheus-node-exporter": {"namespaceOverride": NODE_EXPORTER_NAMESPACE},
        **_control_plane_monitors(at),
    }
    return chart_release(
        at,
        charts.KUBE_PROMETHEUS_STACK,
        PROMETHEUS_RELEASE,
        namespace,
        bounds.merged(values, bounds.kube_prometheus_stack(prod)),
        [*node_namespace.ready, admin, *([receiver] if receiver else [])],
    )


def _alert_receiver(
    at: Installation, namespace: Namespace
) -> tuple[dict[str, Any], k8s.core.v1.Secret | None]:
    """Alertmanager's receiver and the Secret holding its URL: the stack's webhook, read from the
    mounted Secret (`url_file`, so the URL stays out of the chart values), or the chart's `null`
    receiver, with a warning at `up`."""
    url = at.cfg.alert_webhook_url
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
        opts=at.opts(depends_on=[namespace.resource]),
    )
    # Alertmanager's configuration reference: webhook_config `url_file`, slack_config `api_url_file`.
    if at.cfg.alert_receiver == "slack":
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


def _control_plane_monitors(at: Installation) -> dict[str, Any]:
    """Managed control planes answer no scrape of kube-controller-manager, kube-scheduler or etcd,
    and kube-proxy serves its metrics on the node's loopback only: without this their Services and
    ServiceMonitors exist for nothing and KubeSchedulerDown, KubeControllerManagerDown and TargetDown
    fire forever."""
    if at.cluster.control_plane_metrics:
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


def _dashboard_and_alerts(
    at: Installation, namespace: Namespace, release: k8s.helm.v3.Release, job: str
) -> None:
    """The product service's Grafana dashboard and its alert rules, which need the release's CRDs."""
    k8s.core.v1.ConfigMap(
        "product-service-dashboard",
        metadata={
            "name": "product-service-dashboard",
            "namespace": MONITORING_NAMESPACE,
            "labels": {DASHBOARD_LABEL: "1"},
        },
        data={"product-service.json": dashboards.dashboard_json(job)},
        opts=at.opts(depends_on=[namespace.resource]),
    )
    k8s.apiextensions.CustomResource(
        "product-service-alerts",
        api_version="monitoring.coreos.com/v1",
        kind="PrometheusRule",
        metadata={"name": "product-service-alerts", "namespace": MONITORING_NAMESPACE},
        spec={"groups": dashboards.alert_groups(job)},
        opts=at.opts(depends_on=[release]),
    )


def _flows(at: Installation) -> dict[str, dict[str, Any]]:
    """Grafana, Prometheus and Alertmanager among themselves; the Kubernetes API; Prometheus's scrapes
    (every namespace admits monitoring on its metrics ports; node-exporter and the kubelet answer at
    the nodes' addresses); the API server's calls to the operator's admission webhook; the alert
    receiver; Grafana behind the ingress controller when published."""
    scraped = NODE_METRICS_PORTS + (CONTROL_PLANE_METRICS_PORTS if at.cluster.control_plane_metrics else ())
    flows: dict[str, dict[str, Any]] = {
        "allow-monitoring-components": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [SAME_NAMESPACE]}],
            "egress": [{"to": [SAME_NAMESPACE]}],
        },
        # The operator, Prometheus's discovery, kube-state-metrics, Grafana's dashboard sidecar and the
        # chart's hook Jobs (CRD upgrade, webhook certificate).
        "allow-kubernetes-api": api_flow(at),
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
    if charts.ARGO_ROLLOUTS.name in at.cfg.addons:
        # The canaries' analyses (cluster/rollouts.py) query Prometheus's API.
        flows["allow-canary-analyses"] = {
            "podSelector": {"matchLabels": PROMETHEUS_PODS},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [namespace_peer(ROLLOUTS_NAMESPACE)], "ports": tcp(PROMETHEUS_PORT)}],
        }
    if at.cfg.alert_webhook_url is not None:
        # platform:alertWebhookUrl is an https:// URL.
        flows["allow-alert-receiver"] = {
            "podSelector": {"matchLabels": ALERTMANAGER_PODS},
            "policyTypes": ["Egress"],
            "egress": [egress_anywhere((443,))],
        }
    if at.published:
        flows["allow-grafana-from-ingress-controller"] = {
            "podSelector": {"matchLabels": GRAFANA_PODS},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [namespace_peer(INGRESS_NAMESPACE)], "ports": tcp(GRAFANA_PORT)}],
        }
    return flows


def _volume(at: Installation, component: str) -> dict[str, Any]:
    """A PersistentVolumeClaim spec on the cluster's storage class (its default when None)."""
    return {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": VOLUME_SIZES[component]}},
        **storage_class(at, "storageClassName"),
    }


def _admin_ingress(at: Installation, namespace: str, host: str) -> dict[str, Any]:
    """Grafana's Ingress: only with platform:adminAllowedCidrs, and then only for them."""
    if not at.published:
        return {"enabled": False}
    return {
        "enabled": True,
        "ingressClassName": INGRESS_CLASS,
        "annotations": allowlisted(namespace),
        "hosts": [host],
        **tls(at, [host]),
    }
