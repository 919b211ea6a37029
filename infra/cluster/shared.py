"""What every add-on module installs with: the Installation (where, and under which component), each
add-on's namespace with its NetworkPolicies, and a chart's Release that waits for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from config import PlatformConfig
from foundation import ZONE_KEY_SECRET, ClusterFacts, PublicZone
from kube import DEFAULT_DENY, PodSecurityLevel, dns_egress, egress_anywhere, pod_security_labels

from cluster import charts
from cluster.charts import Chart

MONITORING_NAMESPACE = "monitoring"
# kube-prometheus-stack's node-exporter alone (its subchart's namespaceOverride), see cluster/monitoring.py.
NODE_EXPORTER_NAMESPACE = "node-exporter"
TRACING_NAMESPACE = "tracing"
ARGOCD_NAMESPACE = "argocd"
ROLLOUTS_NAMESPACE = "argo-rollouts"
# "ingress", not the product's name: the namespace says what runs there (and the policy pack knows
# the ingress controller's LoadBalancer Service by that word; Traefik names its Service `traefik`).
INGRESS_NAMESPACE = "ingress"
INGRESS_CLASS = "traefik"
# The Traefik Middleware (one per namespace: Traefik refuses cross-namespace references) that admits
# only platform:adminAllowedCidrs to Grafana and Argo CD.
ADMIN_ALLOWLIST = "admin-allowlist"
# A NetworkPolicy peer: every pod of the policy's own namespace.
SAME_NAMESPACE: dict[str, Any] = {"podSelector": {}}


@dataclass(frozen=True)
class Installation:
    """Where the add-ons go: the stack's config, the cluster's facts and provider, and the component
    every resource belongs to."""

    cfg: PlatformConfig
    cluster: ClusterFacts
    provider: pulumi.ProviderResource
    parent: pulumi.Resource

    @property
    def published(self) -> bool:
        """Whether Grafana and Argo CD are published, behind platform:adminAllowedCidrs."""
        return bool(self.cfg.admin_allowed_cidrs)

    def opts(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.parent, provider=self.provider, depends_on=list(depends_on))


@dataclass(frozen=True)
class Namespace:
    """An add-on's namespace and its NetworkPolicies: its pods, the charts' hook Jobs too, start under
    default deny with the flows they need already open."""

    name: str
    resource: k8s.core.v1.Namespace
    isolation: list[k8s.networking.v1.NetworkPolicy]

    @property
    def ready(self) -> list[pulumi.Resource]:
        """What an object in this namespace waits for."""
        return [self.resource, *self.isolation]


def isolated_namespace(
    at: Installation, name: str, pod_security: PodSecurityLevel, flows: dict[str, dict[str, Any]]
) -> Namespace:
    """The namespace `name`, enforcing `pod_security` (the strictest standard its pods meet, as `make
    charts` renders them), with default deny both ways, DNS to the cluster's resolver only, then `flows`
    (NetworkPolicy specs by name). Outside the pod network (nodes, the API server, Git) NetworkPolicy can
    name addresses and ports only, and the program knows no addresses there: those flows name their
    ports, at any address (the API server's are ClusterFacts.api_server_ports)."""
    labels = pod_security_labels(pod_security, at.cluster.kubernetes_version)
    resource = k8s.core.v1.Namespace(name, metadata={"name": name, "labels": labels}, opts=at.opts())
    policies = {
        "default-deny": DEFAULT_DENY,
        "allow-dns": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns_egress()]},
        **flows,
    }
    isolation = [
        k8s.networking.v1.NetworkPolicy(
            f"{name}-{policy}",
            metadata={"name": policy, "namespace": name},
            spec=spec,
            opts=at.opts(depends_on=[resource]),
        )
        for policy, spec in policies.items()
    ]
    return Namespace(name, resource, isolation)


def chart_release(
    at: Installation,
    chart: Chart,
    name: str,
    namespace: Namespace | None,
    values: dict[str, Any],
    depends_on: Sequence[pulumi.Resource] = (),
    skip_await: bool = False,
) -> k8s.helm.v3.Release:
    """`chart` installed as the release `name` into `namespace` (None: kube-system), once the namespace
    and its policies exist."""
    reference, repository = charts.source(chart, at.cfg.chart_repository)
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=reference,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repository) if repository else None,
        namespace=namespace.resource.metadata["name"] if namespace else "kube-system",
        values=values,
        timeout=900,
        skip_await=skip_await,
        opts=at.opts(depends_on=[*(namespace.ready if namespace else []), *depends_on]),
    )


def api_flow(at: Installation) -> dict[str, Any]:
    """Every pod of the namespace to the Kubernetes API server: its ports, at any address."""
    return {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [egress_anywhere(at.cluster.api_server_ports)],
    }


def storage_class(at: Installation, key: str) -> dict[str, Any]:
    """`key` set to the cluster's storage class, or nothing for its default."""
    return {key: at.cluster.storage_class} if at.cluster.storage_class else {}


def tls(at: Installation, hosts: list[str]) -> dict[str, Any]:
    if not at.cfg.tls_secret_name:
        return {}
    return {"tls": [{"hosts": hosts, "secretName": at.cfg.tls_secret_name}]}


def allowlisted(namespace: str) -> dict[str, str]:
    """The Traefik annotation that puts an Ingress behind the namespace's ADMIN_ALLOWLIST Middleware."""
    return {
        "traefik.ingress.kubernetes.io/router.middlewares": f"{namespace}-{ADMIN_ALLOWLIST}@kubernetescrd"
    }


def admin_url(at: Installation, host: str, namespace: str, service: str, local_port: int) -> str:
    """An admin UI's URL: at `host` where published, else through `kubectl port-forward`."""
    scheme = "https" if at.cfg.tls_secret_name else "http"
    return f"{scheme}://{host}" if at.published else port_forward_url(namespace, service, local_port)


def port_forward_url(namespace: str, service: str, local_port: int) -> str:
    """How to reach a Service (port 80) that is not published through the ingress."""
    return f"http://127.0.0.1:{local_port} after `kubectl -n {namespace} port-forward svc/{service} {local_port}:80`"


def base_domain(host: str) -> str:
    """`api.example.com` -> `example.com`: the add-ons' UIs live next to the API's host."""
    first, _, rest = host.partition(".")
    return rest if first == "api" and rest else host


def present(*resources: pulumi.Resource | None) -> list[pulumi.Resource]:
    """The dependencies among these that the stack installs (platform:addons)."""
    return [r for r in resources if r is not None]


def zone_key(at: Installation, zone: PublicZone, namespace: Namespace) -> list[pulumi.Resource]:
    """The zone's write key, where it has one, as the Secret ZONE_KEY_SECRET in an add-on's `namespace`."""
    if zone.write_key is None:
        return []
    name, key = ZONE_KEY_SECRET
    return [
        k8s.core.v1.Secret(
            f"{namespace.name}-zone-key",
            metadata={"name": name, "namespace": namespace.name},
            string_data={key: zone.write_key},
            opts=at.opts(depends_on=namespace.ready),
        )
    ]
