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


@dataclass(frozen=True)
class Foundation:
    cloud: str
    provider: k8s.Provider  # explicit provider for every Kubernetes resource above
    kubeconfig: pulumi.Output[str]  # always a Pulumi secret
    postgres: PostgresEndpoint
    redis: RedisEndpoint
    cluster: ClusterFacts
