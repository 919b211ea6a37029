"""One server of the product service on the cluster: REST (gunicorn) and gRPC are each a `Workload`.

Both run the same image with the same settings, credentials and egress; what tells them apart is data,
a `WorkloadSpec`: name, labels, ports, probes, command. Each gets a Deployment (with its autoscaler and
disruption budget, where Pulumi delivers the workloads), a Service, the NetworkPolicies that admit its
clients and let it reach its dependencies, a ServiceMonitor, and an Ingress for its public paths behind
the per-client limits (app/edge.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from cluster import INGRESS_CLASS, INGRESS_NAMESPACE, MONITORING_NAMESPACE, ClusterAddons
from config import PlatformConfig
from kube import PATCH_FORCE, cpu_autoscaling, ingress_await, namespace_peer, resources, spread, tcp

from app.edge import EdgeLimits
from app.pods import Pods
from app.rollout import (
    HASH_LABEL,
    ROLLOUT_AWAIT,
    ROLLOUTS_API,
    RolloutOutcome,
    Signals,
    analysis_template,
    canary_strategy,
)

COMPONENT = "app.kubernetes.io/component"
# Traefik's Ingress provider reads the scheme to its backends from this Service annotation
# (doc.traefik.io/traefik/v3.8/reference/routing-configuration/kubernetes/ingress/, "On Service").
TRAEFIK_SERVERS_SCHEME = "traefik.ingress.kubernetes.io/service.serversscheme"


@dataclass(frozen=True)
class Port:
    name: str
    number: int


@dataclass(frozen=True)
class WorkloadSpec:
    """What one server is: everything in which the REST and gRPC workloads differ."""

    name: str  # its objects' name, hence the `job` label of its metrics
    component: str  # its pods' app.kubernetes.io/component
    labels: dict[str, str]  # on its objects; its Deployment's selector (immutable)
    # What sets its pods apart from every other pod of the namespace: what its Service, disruption budget
    # and NetworkPolicies select.
    selector: dict[str, str]
    port: Port  # what it serves, to the ingress controller
    service_port: int
    liveness: Mapping[str, Any]  # how a probe asks (httpGet, grpc); also the startup probe's question
    readiness: Mapping[str, Any]
    public_paths: tuple[tuple[str, str], ...]  # (path, Ingress pathType) routed to `port`
    termination_grace_seconds: int
    policies: tuple[str, str]  # its NetworkPolicies' names: who reaches it, what it reaches
    signals: Signals  # its metrics that judge a canary (app/rollout.py)
    metrics_port: Port | None = None  # None: metrics are served on `port`
    command: tuple[str, ...] | None = None  # None: the image's own (gunicorn)
    env: tuple[Mapping[str, str], ...] = ()  # beside the settings and credentials every server reads
    h2c: bool = False  # `port` speaks HTTP/2 without TLS (gRPC)
    # Endpoints drop a terminating pod asynchronously: a server that does not stop accepting by itself
    # (gunicorn) keeps serving this long before it gets SIGTERM.
    pre_stop_seconds: int | None = None
    prefix: str = ""  # before its Pulumi resource names, which are unique per stack


@dataclass(frozen=True)
class Shared:
    """What the service's workloads share, built once by ProductService."""

    cfg: PlatformConfig
    pods: Pods
    env: dict[str, Any]  # `env` and `envFrom`: the servers' credentials and settings
    egress: list[dict[str, Any]]  # the servers' egress rules: DNS, Postgres, Redis, traces
    # The Job the servers (Deployments or Rollouts) wait for; None where Argo CD delivers them (with their
    # autoscalers and budgets) from Git, and only the platform's part is declared here.
    migration: pulumi.Resource | None
    # The cluster's kubeconfig ("" for the local target's own, with `kube_context`), for `pulumi up` to
    # wait on a canary's outcome.
    kubeconfig: pulumi.Output[str]
    edge: EdgeLimits | None  # None where the platform runs no ingress controller
    addons: ClusterAddons
    load_balancer_addresses: bool
    provider: pulumi.ProviderResource
    namespace: str
    after: list[pulumi.Resource]  # what every object waits for: the namespace


class Workload(pulumi.ComponentResource):
    """`aliases` go to each child: where it was declared before this component held it."""

    def __init__(
        self,
        name: str,
        spec: WorkloadSpec,
        shared: Shared,
        aliases: Sequence[pulumi.Alias] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("platform:app:Workload", name, None, opts)
        self._spec = spec
        self._shared = shared
        self._child_aliases = list(aliases)
        addons = shared.addons
        if shared.migration is not None:
            self._server(shared.migration)
        service = self._service()
        self._network_policies()
        if addons.monitoring_crds is not None:
            k8s.apiextensions.CustomResource(
                f"{spec.prefix}service-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=self._metadata(),
                spec={
                    "selector": {"matchLabels": spec.labels},
                    "endpoints": [
                        {"port": (spec.metrics_port or spec.port).name, "path": "/metrics", "interval": "30s"}
                    ],
                    # Each version's series apart, for its canary's analysis (app/rollout.py).
                    "podTargetLabels": [HASH_LABEL],
                },
                opts=self._opts(depends_on=[addons.monitoring_crds]),
            )
        if addons.ingress_controller is not None and shared.edge is not None:
            self._ingress(service, addons.ingress_controller, shared.edge)
        self.register_outputs({})

    def _server(self, migration: pulumi.Resource) -> None:
        """The Deployment, or the Rollout where argo-rollouts runs (app/rollout.py), which waits for the
        migration Job; its autoscaler and its disruption budget."""
        spec = self._spec
        cfg = self._shared.cfg
        template = {
            "metadata": {"labels": {**spec.selector, COMPONENT: spec.component}},
            "spec": {
                **self._shared.pods.spec(self._container(), restart_policy="Always"),
                "terminationGracePeriodSeconds": spec.termination_grace_seconds,
                # Spread over zones and nodes; ScheduleAnyway so a lost zone degrades, not blocks.
                "topologySpreadConstraints": spread(spec.labels),
            },
        }
        # No `replicas`: the HPA owns the count, and a value here would reset it on every `up`.
        if self._shared.addons.rollouts is None:
            workload: pulumi.CustomResource = k8s.apps.v1.Deployment(
                f"{spec.prefix}deployment",
                metadata={**self._metadata(), "annotations": PATCH_FORCE},
                spec={
                    "selector": {"matchLabels": spec.labels},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
                    },
                    "template": template,
                },
                opts=self._opts(depends_on=[migration]),
            )
            target = ("apps/v1", "Deployment")
        else:
            workload = self._rollout(template, migration)
            target = (ROLLOUTS_API, "Rollout")
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{spec.prefix}autoscaler",
            metadata=self._metadata(),
            spec=cpu_autoscaling(*target, spec.name, cfg.hpa_min_replicas, cfg.hpa_max_replicas),
            opts=self._opts(depends_on=[workload]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{spec.prefix}disruption-budget",
            metadata=self._metadata(),
            # maxUnavailable rather than minAvailable: with one replica (dev) drains still proceed.
            spec={"maxUnavailable": 1, "selector": {"matchLabels": spec.selector}},
            opts=self._opts(),
        )

    def _rollout(self, template: dict[str, Any], migration: pulumi.Resource) -> pulumi.CustomResource:
        """The Rollout and the AnalysisTemplate that judges its canaries; where Pulumi delivers it, `up`
        waits for each release's outcome (RolloutOutcome)."""
        spec = self._spec
        shared = self._shared
        analysis = k8s.apiextensions.CustomResource(
            f"{spec.prefix}canary-analysis",
            api_version=ROLLOUTS_API,
            kind="AnalysisTemplate",
            metadata=self._metadata(),
            spec=analysis_template(spec.name, shared.namespace, spec.signals, shared.cfg.canary),
            opts=self._opts(depends_on=[shared.addons.rollouts]),
        )
        rollout = k8s.apiextensions.CustomResource(
            f"{spec.prefix}rollout",
            api_version=ROLLOUTS_API,
            kind="Rollout",
            metadata={**self._metadata(), "annotations": {**ROLLOUT_AWAIT, **PATCH_FORCE}},
            spec={
                "selector": {"matchLabels": spec.labels},
                "template": template,
                "strategy": canary_strategy(spec.name, shared.cfg.canary),
                # A canary whose pods are not ready within 10 minutes is rolled back too.
                "progressDeadlineSeconds": 600,
                "progressDeadlineAbort": True,
            },
            opts=self._opts(depends_on=[migration, analysis]),
        )
        RolloutOutcome(
            f"{spec.prefix}release",
            shared.namespace,
            spec.name,
            template,
            shared.cfg.canary,
            shared.kubeconfig,
            shared.cfg.kube_context,
            opts=self._opts(depends_on=[rollout]),
        )
        return rollout

    def _container(self) -> dict[str, Any]:
        spec = self._spec
        env = self._shared.env
        container = self._shared.pods.container(
            spec.name,
            {**env, "env": [*env["env"], *spec.env]},
            resources("100m", "256Mi", "1", "512Mi"),
            command=spec.command,
        )
        ports = [spec.port, *([spec.metrics_port] if spec.metrics_port else [])]
        return {
            **container,
            "ports": [{"name": p.name, "containerPort": p.number, "protocol": "TCP"} for p in ports],
            "livenessProbe": _probe(spec.liveness, period=10, failures=3),
            "readinessProbe": _probe(spec.readiness, period=5, failures=2),
            "startupProbe": _probe(spec.liveness, period=2, failures=30),
            **(
                {"lifecycle": {"preStop": {"sleep": {"seconds": spec.pre_stop_seconds}}}}
                if spec.pre_stop_seconds
                else {}
            ),
        }

    def _service(self) -> k8s.core.v1.Service:
        spec = self._spec
        port: dict[str, Any] = {
            "name": spec.port.name,
            "port": spec.service_port,
            "targetPort": spec.port.name,
            "protocol": "TCP",
            # Kubernetes' standard application protocol name, for any controller that reads it.
            **({"appProtocol": "kubernetes.io/h2c"} if spec.h2c else {}),
        }
        metrics = spec.metrics_port
        return k8s.core.v1.Service(
            f"{spec.prefix}service",
            metadata={
                **self._metadata(),
                **({"annotations": {TRAEFIK_SERVERS_SCHEME: "h2c"}} if spec.h2c else {}),
            },
            spec={
                "type": "ClusterIP",
                "selector": spec.selector,
                "ports": [
                    port,
                    *(
                        [
                            {
                                "name": metrics.name,
                                "port": metrics.number,
                                "targetPort": metrics.name,
                                "protocol": "TCP",
                            }
                        ]
                        if metrics
                        else []
                    ),
                ],
            },
            opts=self._opts(),
        )

    def _network_policies(self) -> None:
        """On top of the namespace's default deny: the ingress controller reaches `port`, Prometheus the
        metrics, and the pods reach what every server needs (Shared.egress)."""
        spec = self._spec
        if spec.metrics_port is None:
            clients = [
                {
                    "from": [namespace_peer(INGRESS_NAMESPACE), namespace_peer(MONITORING_NAMESPACE)],
                    "ports": tcp(spec.port.number),
                }
            ]
        else:
            clients = [
                {"from": [namespace_peer(INGRESS_NAMESPACE)], "ports": tcp(spec.port.number)},
                {"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": tcp(spec.metrics_port.number)},
            ]
        admitted, egress = spec.policies
        policies: dict[str, dict[str, Any]] = {
            admitted: {
                "podSelector": {"matchLabels": spec.selector},
                "policyTypes": ["Ingress"],
                "ingress": clients,
            },
            egress: {
                "podSelector": {"matchLabels": spec.selector},
                "policyTypes": ["Egress"],
                "egress": self._shared.egress,
            },
        }
        for policy, policy_spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                policy,
                metadata={"name": policy, "namespace": self._shared.namespace, "labels": spec.labels},
                spec=policy_spec,
                opts=self._opts(),
            )

    def _ingress(self, service: k8s.core.v1.Service, controller: pulumi.Resource, edge: EdgeLimits) -> None:
        """`public_paths` on the API's host, behind the per-client limits; TLS at the ingress when the host
        has a certificate."""
        spec = self._spec
        cfg = self._shared.cfg
        backend = {"service": {"name": service.metadata["name"], "port": {"name": spec.port.name}}}
        k8s.networking.v1.Ingress(
            f"{spec.prefix}ingress",
            metadata=edge.limiting(
                {**self._metadata(), **ingress_await(self._shared.load_balancer_addresses)}
            ),
            spec={
                "ingressClassName": INGRESS_CLASS,
                "rules": [
                    {
                        "host": cfg.host,
                        "http": {
                            "paths": [
                                {"path": path, "pathType": path_type, "backend": backend}
                                for path, path_type in spec.public_paths
                            ]
                        },
                    }
                ],
                **(
                    {"tls": [{"hosts": [cfg.host], "secretName": cfg.tls_secret_name}]}
                    if cfg.tls_secret_name
                    else {}
                ),
            },
            # Created after its Middlewares: Traefik leaves out a route whose Middleware is missing.
            opts=self._opts(depends_on=[controller, *edge.middlewares]),
        )

    def _metadata(self) -> dict[str, Any]:
        return {"name": self._spec.name, "namespace": self._shared.namespace, "labels": self._spec.labels}

    def _opts(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self,
            provider=self._shared.provider,
            depends_on=[*self._shared.after, *depends_on],
            aliases=self._child_aliases,
        )


def _probe(question: Mapping[str, Any], period: int, failures: int) -> dict[str, Any]:
    return {**question, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures}
