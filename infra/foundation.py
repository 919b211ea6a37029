"""The one seam between a cloud and everything above it.

Each module in `clouds/` builds its network, cluster and data services and hands back a
`Foundation`. The cluster add-ons and the product service read only this value, so they
never learn which cloud they run on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class PostgresEndpoint:
    host: pulumi.Input[str]
    port: pulumi.Input[int]
    database: str
    user: str
    password: pulumi.Output[str]  # always a Pulumi secret
    sslmode: str  # libpq sslmode the service must use: "verify-full" on clouds, "disable" in-cluster
    # PEM of the CAs the server's certificate chains to, which the pods verify it against (libpq
    # sslrootcert); None where nothing is verified.
    ca_certificate: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class RedisEndpoint:
    host: pulumi.Input[str]
    port: pulumi.Input[int]
    password: pulumi.Output[str]  # always a Pulumi secret (auth token / access key)
    tls: bool
    username: str | None = None  # set where the server wants an ACL user name with the password
    # PEM of the private CAs that sign the server's TLS certificate (Memorystore has one per
    # instance, two while it rotates); None where the certificate chains to a public root.
    ca_certificate: pulumi.Input[str] | None = None
    # False where the certificate cannot name the address clients use, so only its chain to
    # `ca_certificate` (a CA of this one server) is verified.
    verify_hostname: bool = True


# The ServiceAccounts (namespace, name) of the two add-ons that write to the stack's DNS zone: a cloud
# binds each one's own identity to exactly its account (cluster/certificates.py, cluster/dns.py).
CERT_MANAGER_ACCOUNT = ("cert-manager", "cert-manager")
EXTERNAL_DNS_ACCOUNT = ("external-dns", "external-dns")


@dataclass(frozen=True)
class WorkloadIdentity:
    """How one add-on's pods act as the cloud identity made for them: its ServiceAccount's annotations
    and labels, and its pods' labels."""

    service_account_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    service_account_labels: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PublicZone:
    """The stack's public DNS zone (platform:domain) in the cloud's DNS service, and the two identities
    that may write to it and nothing else: external-dns (the hosts' records) and cert-manager (ACME
    DNS-01 challenges)."""

    domain: str
    name_servers: pulumi.Input[list[str]]  # what the parent zone delegates the domain to
    external_dns: WorkloadIdentity
    cert_manager: WorkloadIdentity
    # external-dns's chart values that pick the cloud's provider and the zone (provider, extraArgs, ...).
    external_dns_values: dict[str, Any]
    # The ClusterIssuer's `dns01` solver for this zone (cert-manager.io/docs/configuration/acme/dns01).
    dns01_solver: dict[str, Any]
    # Ports besides 443 the identities' token exchange needs at any address (GKE's metadata server).
    credential_ports: tuple[int, ...] = ()
    # Files external-dns reads its provider's settings from (no credentials), by name; they are mounted
    # from a Secret at EXTERNAL_DNS_CONFIG_DIR (Azure's azure.json).
    external_dns_files: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # Egress rules both add-ons need besides 443 anywhere: to a DNS server they update themselves (RFC 2136).
    dns_server_egress: list[dict[str, Any]] = field(default_factory=list)
    # The zone's write key where the DNS server checks one on every update (an RFC 2136 server's TSIG
    # secret, a Pulumi secret): each add-on reads it from the Secret ZONE_KEY_SECRET in its namespace. None
    # where the cloud identity is what may write.
    write_key: pulumi.Output[str] | None = None
    # Where cert-manager checks that a challenge's record is served before it asks for the certificate
    # (host:port, ...); empty: the cluster's resolver, which reaches a cloud's public zone.
    check_nameservers: tuple[str, ...] = ()


EXTERNAL_DNS_CONFIG_DIR = "/etc/kubernetes"
# The Secret (name, key) holding PublicZone.write_key in external-dns's and cert-manager's namespaces.
ZONE_KEY_SECRET = ("dns-zone-key", "secret")


@dataclass(frozen=True)
class ClusterFacts:
    """What the layers above need to know about the cluster, and nothing about the cloud."""

    kubernetes_version: str
    zones: pulumi.Input[list[str]]  # GCP learns its zones only once the Compute API is enabled
    storage_class: str | None = None  # None: the cluster's default StorageClass
    # Installed by the add-ons when the platform does not ship them (the HPA needs metrics).
    needs_metrics_server: bool = True
    # Annotations for the ingress controller's Service of type LoadBalancer.
    load_balancer_annotations: dict[str, str] = field(default_factory=dict)
    # NetworkPolicy egress peers (Kubernetes NetworkPolicyPeer dicts) where Postgres and Redis live:
    # ipBlocks of the data subnets on a cloud, a namespaceSelector in-cluster.
    data_network_peers: list[dict[str, Any]] = field(default_factory=list)
    # The ports the Kubernetes API server listens on, as the pods' NetworkPolicies see it (the `kubernetes`
    # Service's endpoints, after its address is translated): 443 on EKS, GKE and AKS.
    api_server_ports: tuple[int, ...] = (443,)
    # Where Postgres and Redis run in the cluster (the local target's StatefulSets): admits their clients,
    # given as NetworkPolicy peers (Postgres's, Redis's), and nobody else. None where the data services
    # live outside the cluster, behind the cloud's own network rules.
    admit_data_clients: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] | None = None
    # Helm values for the Kubernetes cluster-autoscaler where the cloud's node groups do not resize
    # themselves (EKS); None where the cloud autoscales nodes (GKE, AKS) or there is nothing to scale.
    cluster_autoscaler_values: dict[str, Any] | None = None
    # Extra annotations for the service's ServiceAccount (workload identity binding, if any).
    service_account_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # Extra metrics-server arguments, e.g. --kubelet-insecure-tls where kubelets serve self-signed
    # certificates (kind, Docker Desktop); managed clusters need none.
    metrics_server_args: list[str] = field(default_factory=list)
    # Whether something gives LoadBalancer Services an address (a cloud's controller). Where nothing
    # does (kind, minikube), nothing waits for one: an Ingress never gets `status.loadBalancer`.
    load_balancer_addresses: bool = True
    # Whether Prometheus can scrape the control plane (kube-controller-manager, kube-scheduler, etcd,
    # kube-proxy's metrics port). Managed control planes (EKS, GKE, AKS) expose none of them.
    control_plane_metrics: bool = False
    # The public zone external-dns and cert-manager write to; None without platform:domain.
    public_zone: PublicZone | None = None


@dataclass(frozen=True)
class Foundation:
    cloud: str
    provider: k8s.Provider  # explicit provider for every Kubernetes resource above
    kubeconfig: pulumi.Output[str]  # always a Pulumi secret
    postgres: PostgresEndpoint
    redis: RedisEndpoint
    cluster: ClusterFacts
