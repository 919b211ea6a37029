"""Kubernetes object fragments that the layers share, so every workload is hardened the same way."""

from __future__ import annotations

from typing import Any

# Namespaces whose pods must meet the `restricted` Pod Security Standard, enforced by the API server.
RESTRICTED_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


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


def utilization(resource: str, percent: int) -> dict[str, Any]:
    """An autoscaler metric: average utilization of `resource` against the pods' requests."""
    return {
        "type": "Resource",
        "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": percent}},
    }


def ingress_await(load_balancer_addresses: bool) -> dict[str, Any]:
    """Ingress metadata for the cluster at hand. Where nothing gives the ingress controller's Service
    an address (kind, minikube), an Ingress never gets `status.loadBalancer` and pulumi-kubernetes
    would wait for it until it times out (pulumi/pulumi-kubernetes#1812); the `pulumi.com/skipAwait`
    annotation ends the wait at creation."""
    if load_balancer_addresses:
        return {}
    return {"annotations": {"pulumi.com/skipAwait": "true"}}
