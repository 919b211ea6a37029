"""The gRPC side of the product service: `python -m product_service grpc` from the same image.

Its own Deployment (autoscaler, disruption budget), Service, ServiceMonitor, NetworkPolicy and an
Ingress route for `/product.v1.ProductService/*` on the REST host, behind the same per-client limits
as REST's (app/edge.py; each RPC is one request to them). Pods carry labels of their own, so
the REST Service, Deployment and budget never select them (nor the REST ones these).

h2c to the pods: `appProtocol: kubernetes.io/h2c` on the Service port says so to any controller that
reads it (Kubernetes' standard application protocol names), and Traefik's Ingress provider reads its
Service annotation `traefik.ingress.kubernetes.io/service.serversscheme: h2c`
(doc.traefik.io/traefik/v3.8/reference/routing-configuration/kubernetes/ingress/, "On Service").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from cluster import (
    INGRESS_CLASS,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    ClusterAddons,
)
from config import PlatformConfig
from kube import cpu_autoscaling, ingress_await, namespace_peer, spread

from app.edge import EdgeLimits

NAME = "product-service-grpc"
GRPC_PORT = 50051
METRICS_PORT = 9464
# The RPCs' paths start with the service's full name; the Ingress sends exactly these to gRPC. Health
# (/grpc.health.v1.Health/) and reflection (/grpc.reflection.*/) stay in the cluster: the kubelet probes
# the pods directly, and reflection is a tool for developers, not part of the API.
ROUTE_PREFIX = "/product.v1.ProductService"
COMMAND = ["python", "-m", "product_service", "grpc"]
# NOT_SERVING on SIGTERM, then this long for probes and endpoints to notice, then up to the grace for
# in-flight RPCs; the pod's termination grace period covers both, with room to spare.
DRAIN_SECONDS = 5
GRACE_SECONDS = 20
TERMINATION_GRACE_SECONDS = 35


def grpc_labels(part_of: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": part_of}


class ProductGrpcService(pulumi.ComponentResource):
    """`container` is the REST container's template (image, env, security, mounts) and `pod_spec` wraps
    a container into the REST pod's spec. Without a `migration` Job, Argo CD delivers the workloads
    (Deployment, HPA, PDB) from Git, as it does REST's, and only the platform's part is declared here.
    `edge` is REST's per-client limits, None where the platform runs no ingress controller."""

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        namespace: str,
        labels: dict[str, str],
        addons: ClusterAddons,
        pod_spec: Callable[[dict[str, Any]], dict[str, Any]],
        container: dict[str, Any],
        migration: pulumi.Resource | None,
        edge: EdgeLimits | None,
        egress: list[dict[str, Any]],
        load_balancer_addresses: bool,
        provider: pulumi.ProviderResource,
        depends_on: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("platform:app:ProductGrpcService", name, None, opts)
        self._namespace = namespace
        self._labels = labels
        self._load_balancer_addresses = load_balancer_addresses
        self._provider = provider
        self._depends_on = depends_on
        if migration is not None:
            self._workloads(cfg, pod_spec(self._container(container)), migration)
        service = self._service()
        self._network_policies(egress)
        if addons.monitoring_crds is not None:
            k8s.apiextensions.CustomResource(
                "grpc-service-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=self._metadata(),
                spec={
                    "selector": {"matchLabels": labels},
                    "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
                },
                opts=self._opts(depends_on=[addons.monitoring_crds]),
            )
        if addons.ingress_controller is not None and edge is not None:
            self._ingress(cfg, service, addons.ingress_controller, edge)
        self.register_outputs({})

    def _container(self, template: dict[str, Any]) -> dict[str, Any]:
        env = [
            *template.get("env", []),
            {"name": "GRPC_PORT", "value": str(GRPC_PORT)},
            {"name": "GRPC_METRICS_PORT", "value": str(METRICS_PORT)},
            {"name": "GRPC_DRAIN_SECONDS", "value": str(DRAIN_SECONDS)},
            {"name": "GRPC_GRACE_SECONDS", "value": str(GRACE_SECONDS)},
            # Its own name in Jaeger; a REST caller's trace continues into it across the hop.
            {"name": "OTEL_SERVICE_NAME", "value": NAME},
        ]
        return {
            **template,
            "name": NAME,
            "command": COMMAND,
            "env": env,
            "ports": [
                {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
                {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            ],
            # Native gRPC probes ask grpc.health.v1.Health: liveness the server as a whole (""),
            # readiness the product service; both turn NOT_SERVING at SIGTERM.
            "livenessProbe": _grpc_probe("", period=10, failures=3),
            "readinessProbe": _grpc_probe("product.v1.ProductService", period=5, failures=2),
            "startupProbe": _grpc_probe("", period=2, failures=30),
        }

    def _workloads(self, cfg: PlatformConfig, pod_spec: dict[str, Any], migration: pulumi.Resource) -> None:
        """The Deployment waits for the same migration Job as REST's."""
        deployment = k8s.apps.v1.Deployment(
            "grpc-deployment",
            metadata=self._metadata(),
            spec={
                # No `replicas`: the HPA owns the count.
                "selector": {"matchLabels": self._labels},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
                },
                "template": {
                    "metadata": {"labels": {**self._labels, "app.kubernetes.io/component": "grpc"}},
                    "spec": {
                        **pod_spec,
                        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                        "topologySpreadConstraints": spread(self._labels),
                    },
                },
            },
            opts=self._opts(depends_on=[migration]),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            "grpc-autoscaler",
            metadata=self._metadata(),
            spec=cpu_autoscaling(deployment.metadata["name"], cfg.hpa_min_replicas, cfg.hpa_max_replicas),
            opts=self._opts(),
        )
        k8s.policy.v1.PodDisruptionBudget(
            "grpc-disruption-budget",
            metadata=self._metadata(),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": self._labels}},
            opts=self._opts(),
        )

    def _service(self) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            "grpc-service",
            metadata={
                **self._metadata(),
                "annotations": {"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"},
            },
            spec={
                "type": "ClusterIP",
                "selector": self._labels,
                "ports": [
                    {
                        "name": "grpc",
                        "port": GRPC_PORT,
                        "targetPort": "grpc",
                        "protocol": "TCP",
                        "appProtocol": "kubernetes.io/h2c",
                    },
                    {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
                ],
            },
            opts=self._opts(),
        )

    def _network_policies(self, egress: list[dict[str, Any]]) -> None:
        """On top of the namespace's default deny: who reaches the gRPC pods, and what they reach (`egress`,
        the same rules as the REST pods': DNS, Postgres, Redis, OTLP)."""
        policies: dict[str, dict[str, Any]] = {
            "allow-grpc-from-ingress-controller-and-prometheus": {
                "podSelector": {"matchLabels": self._labels},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [namespace_peer(INGRESS_NAMESPACE)],
                        "ports": [{"protocol": "TCP", "port": GRPC_PORT}],
                    },
                    {
                        "from": [namespace_peer(MONITORING_NAMESPACE)],
                        "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
                    },
                ],
            },
            "allow-grpc-egress": {
                "podSelector": {"matchLabels": self._labels},
                "policyTypes": ["Egress"],
                "egress": egress,
            },
        }
        for policy, spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                policy,
                metadata={"name": policy, "namespace": self._namespace, "labels": self._labels},
                spec=spec,
                opts=self._opts(),
            )

    def _ingress(
        self, cfg: PlatformConfig, service: k8s.core.v1.Service, controller: pulumi.Resource, edge: EdgeLimits
    ) -> None:
        """The RPC paths on the REST host; TLS at the ingress when the host has a certificate."""
        backend = {"service": {"name": service.metadata["name"], "port": {"name": "grpc"}}}
        k8s.networking.v1.Ingress(
            "grpc-ingress",
            metadata=edge.limiting({**self._metadata(), **ingress_await(self._load_balancer_addresses)}),
            spec={
                "ingressClassName": INGRESS_CLASS,
                "rules": [
                    {
                        "host": cfg.host,
                        "http": {"paths": [{"path": ROUTE_PREFIX, "pathType": "Prefix", "backend": backend}]},
                    }
                ],
                **(
                    {"tls": [{"hosts": [cfg.host], "secretName": cfg.tls_secret_name}]}
                    if cfg.tls_secret_name
                    else {}
                ),
            },
            opts=self._opts(depends_on=[controller, *edge.middlewares]),
        )

    def _opts(self, **kwargs: Any) -> pulumi.ResourceOptions:
        depends_on = [*self._depends_on, *kwargs.pop("depends_on", [])]
        return pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=depends_on, **kwargs)

    def _metadata(self) -> dict[str, Any]:
        return {"name": NAME, "namespace": self._namespace, "labels": self._labels}


def _grpc_probe(service: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "grpc": {"port": GRPC_PORT, "service": service},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }
