"""Kubernetes object fragments that the layers share, so every workload is hardened the same way."""

from __future__ import annotations

from typing import Any, Literal

# A Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


def pod_security_labels(enforce: PodSecurityLevel, kubernetes_version: str) -> dict[str, str]:
    """Namespace labels for Pod Security admission: the API server refuses pods above `enforce` (the
    strictest level the namespace's workloads meet), and warns about and audits every pod that is not
    `restricted`, so a deviation is seen where it is allowed too. Each mode is pinned to the stack's
    Kubernetes minor (`v1.36`) rather than `latest`: the checks of a minor never change, so a control
    plane upgraded under the stack (EKS at the end of standard support, GKE's release channel) cannot
    start refusing pods; the standard moves with platform:kubernetesVersion, in a reviewed change. A
    cluster older than that minor evaluates it at its own newest (k8s.io/pod-security-admission,
    policy/registry.go: EvaluatePod caps the version at the newest it knows)."""
    version = f"v{kubernetes_version}"
    labels: dict[str, str] = {}
    for mode, level in (("enforce", enforce), ("warn", "restricted"), ("audit", "restricted")):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    return labels


def container_security(**extra: Any) -> dict[str, Any]:
    """The restricted container securityContext; `extra` adds fields such as runAsUser."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        **extra,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


def namespace_peer(namespace: str) -> dict[str, Any]:
    """A NetworkPolicy peer for every pod of one namespace (the label the API server sets on each)."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def pods_peer(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """A NetworkPolicy peer for the pods with these labels in one namespace (both selectors in one peer)."""
    return {**namespace_peer(namespace), "podSelector": {"matchLabels": labels}}


# A namespace's first NetworkPolicy: its pods accept and send nothing until another policy says so.
DEFAULT_DENY: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
# The cluster's DNS: the kube-dns pods of kube-system (CoreDNS on EKS, AKS, kind, k3d and minikube, kube-dns
# on GKE Standard; every one labelled k8s-app=kube-dns), namespace and pods in one peer, so a pod that
# calls itself kube-dns in another namespace answers nobody's queries.
CLUSTER_DNS = pods_peer("kube-system", {"k8s-app": "kube-dns"})
# Outside the pod network, where NetworkPolicy can only name addresses: nodes, the API server, Git.
ANY_ADDRESS = {"ipBlock": {"cidr": "0.0.0.0/0"}}


def dns_egress() -> dict[str, Any]:
    """An egress rule to the cluster's DNS, and nowhere else, on port 53."""
    return {"to": [CLUSTER_DNS], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def egress_anywhere(ports: tuple[int, ...]) -> dict[str, Any]:
    """An egress rule to any address on these TCP ports: what NetworkPolicy can say of a destination
    outside the cluster whose addresses it does not know."""
    return {"to": [ANY_ADDRESS], "ports": tcp(*ports)}


def cpu_autoscaling(
    api_version: str, kind: str, name: str, min_replicas: int, max_replicas: int
) -> dict[str, Any]:
    """A HorizontalPodAutoscaler spec for a workload of the service (a Deployment, or an Argo Rollout,
    which has the same scale subresource): CPU at 70% of the request.

    CPU only. A Python worker's memory does not follow the load (the heap keeps its arenas): a pod's
    gunicorn (master + 1 worker, PSS) went 93 -> 101 MiB over four load runs and stayed there at rest
    (docs/performance.md, "Memory"): a memory target would either never fire or add replicas that
    never leave. CPU follows the load down as well as up."""
    return {
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": name},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ],
    }


# The provider's annotation that ends its wait on an object as soon as the API server has it.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
# The provider's annotation that forces its server-side apply: the object's fields become Pulumi's even
# where another field manager holds them, instead of the apply failing on the conflict (pulumi-kubernetes
# v4.25.0, patchForce in pkg/await/await.go). For what Pulumi alone delivers: the service's servers, which
# Argo CD (kubectl-client-side-apply) held before a stack came back to direct delivery, or a `kubectl edit`.
PATCH_FORCE = {"pulumi.com/patchForce": "true"}


def ingress_await(load_balancer_addresses: bool) -> dict[str, Any]:
    """Ingress metadata for the cluster at hand. Where nothing gives the ingress controller's Service
    an address (kind, minikube), an Ingress never gets `status.loadBalancer` and pulumi-kubernetes
    would wait for it until it times out (pulumi/pulumi-kubernetes#1812); the `pulumi.com/skipAwait`
    annotation ends the wait at creation."""
    if load_balancer_addresses:
        return {}
    return {"annotations": SKIP_AWAIT}


def spread(labels: dict[str, str]) -> list[dict[str, Any]]:
    """Topology spread for a Deployment's pods: across zones, then nodes. ScheduleAnyway, so a
    one-zone or one-node cluster (dev) still schedules every replica."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]
