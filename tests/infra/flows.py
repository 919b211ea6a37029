"""Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), over the NetworkPolicies of a plan.

    allowed(plan, Pod("products", {...}), Address("10.0.0.5"), 5432)

A connection is allowed when the source may send it (no policy of the source's namespace that selects
the source has Egress in its policyTypes, or one of their egress rules matches the destination and
port) and the destination may receive it (the same for Ingress). Rules are ORed; inside a rule, a peer
list and a port list each match if any entry does, and an absent list matches everything. A peer with
a namespaceSelector and a podSelector matches pods that both select; a podSelector alone means the
policy's own namespace. ipBlock peers match Addresses (what lives outside the pod network: nodes, the
API server, managed databases, the internet); pods are matched by selectors only, as Kubernetes means
ipBlock for cluster-external addresses. What the charts render (Argo CD's own policies) is not here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plan import Plan


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    # Named container ports, for policies that name a port.
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    ip: str


Endpoint = Pod | Address


def allowed(plan: Plan, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
    return sends(plan, source, destination, port, protocol) and receives(
        plan, destination, source, port, protocol
    )


def sends(plan: Plan, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """The source's egress side only."""
    return not isinstance(source, Pod) or _admits(plan, source, "Egress", destination, port, protocol)


def receives(plan: Plan, destination: Endpoint, source: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """The destination's ingress side only."""
    return not isinstance(destination, Pod) or _admits(plan, destination, "Ingress", source, port, protocol)


def _admits(plan: Plan, pod: Pod, direction: str, other: Endpoint, port: int, protocol: str) -> bool:
    specs = [
        p.inputs["spec"]
        for p in plan.objects("NetworkPolicy", pod.namespace)
        if direction in p.inputs["spec"].get("policyTypes", ["Ingress"])
        and selects(p.inputs["spec"]["podSelector"], pod.labels)
    ]
    if not specs:
        return True
    rules = (rule for spec in specs for rule in spec.get(direction.lower(), []))
    peers_key = "from" if direction == "Ingress" else "to"
    target = pod if direction == "Ingress" else other
    return any(
        (not rule.get(peers_key) or any(_peer(peer, pod.namespace, other) for peer in rule[peers_key]))
        and (not rule.get("ports") or any(_port(p, target, port, protocol) for p in rule["ports"]))
        for rule in rules
    )


def _peer(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, Address):
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": other.namespace}):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), other.labels)


def _port(rule: Mapping[str, Any], target: Endpoint, port: int, protocol: str) -> bool:
    if rule.get("protocol", "TCP") != protocol:
        return False
    wanted = rule.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return isinstance(target, Pod) and target.ports.get(wanted) == port
    return wanted == port or wanted <= port <= rule.get("endPort", wanted)


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions, all of them; an empty one selects everything."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
