"""The product service on the cluster, as one ComponentResource: its namespace, settings, credentials,
migration Job and NetworkPolicies, and its two servers from the same image, REST and gRPC (app/grpc.py),
each a Workload (app/workload.py).

It reads the Foundation (where Postgres and Redis are, which provider) and the add-ons (where
traces go, when the monitoring CRDs exist), never the cloud. Credentials reach the pods only
through a Kubernetes Secret built from Pulumi secrets, so they stay encrypted in Pulumi's state.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s
from cluster import ARGOCD_NAMESPACE, ClusterAddons, port_forward_url, traces_egress
from config import PlatformConfig
from foundation import Foundation
from kube import DEFAULT_DENY, dns_egress, pod_security_labels, pods_peer, resources
from passwords import supplied_or_generated

from app.edge import per_client_limits
from app.grpc import GRPC
from app.pods import TRUST_DIR, Pods
from app.rollout import HTTP_SIGNALS
from app.workload import Port, Shared, Workload, WorkloadSpec

NAME = "product-service"  # also the Service name, hence the `job` label of its metrics
NAMESPACE = "products"
HTTP_PORT = 8080
POSTGRES_CA_FILE = f"{TRUST_DIR}/postgres-ca/ca.crt"
REDIS_CA_FILE = f"{TRUST_DIR}/redis-ca/ca.crt"
# What Pulumi keeps owning and the manifests in Git (deploy/<stack>) refer to, by logical name: their
# fixed names where Argo CD delivers the workloads (auto-named where Pulumi does).
GITOPS_NAMES = {
    "credentials": f"{NAME}-credentials",
    "settings": f"{NAME}-settings",
    "postgres-ca": f"{NAME}-postgres-ca",
    "redis-ca": f"{NAME}-redis-ca",
}
# The service then accepts only write tokens minted for it by this stack (`aud`, `iss` claims), e.g.
# JWT_AUDIENCE=product-service JWT_ISSUER=product-platform/<stack> python -m product_service token
JWT_AUDIENCE = NAME
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "platform"}
# The API's pods, apart from the migration Job's (which carry LABELS too): what the Service sends traffic
# to and the disruption budget counts. A budget that also matched the Job's pod found no scale subresource
# on the Job and allowed no disruption at all, so a node drain blocked.
API_POD_LABELS = {**LABELS, "app.kubernetes.io/component": "api"}
MIGRATION_POD_LABELS = {**LABELS, "app.kubernetes.io/component": "migration"}
REST = WorkloadSpec(
    name=NAME,
    component="api",
    labels=LABELS,
    selector=API_POD_LABELS,
    port=Port("http", HTTP_PORT),
    service_port=80,
    # Liveness asks only "is the process serving"; readiness also checks Postgres and Redis, so a data
    # outage takes pods out of the Service without restarting them.
    liveness={"httpGet": {"path": "/health", "port": "http"}},
    readiness={"httpGet": {"path": "/ready", "port": "http"}},
    # What the Ingress publishes: the API and its OpenAPI document. Probes and metrics stay in the cluster
    # (the kubelet and Prometheus reach the pods directly); a public /ready let anyone make every pod query
    # Postgres and ping Redis. Kubernetes' Prefix compares whole `/`-separated elements (`/api` takes
    # /api/v1/products... but not /apifoo), Exact the whole path.
    public_paths=(("/api", "Prefix"), ("/openapi.json", "Exact")),
    termination_grace_seconds=30,
    policies=("allow-ingress-controller-and-prometheus", "allow-api-egress"),
    signals=HTTP_SIGNALS,
    pre_stop_seconds=5,
)
# What each process reads from the credentials Secret. `migrate` reaches Postgres only, so its Job's pod
# holds neither the cache's password nor the key that signs write tokens.
SERVER_CREDENTIALS = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
MIGRATION_CREDENTIALS = ("DATABASE_URL",)


# Delivered through Argo CD, what its project lets it sync from Git, (API group, kind): the workloads, no
# more (the platform's objects stay Pulumi's), into the service's namespace of this cluster only.
def synced_kinds(canaries: bool) -> tuple[tuple[str, str], ...]:
    """The migration Job, the servers (Rollouts with their AnalysisTemplates where argo-rollouts runs,
    else Deployments), their autoscalers and disruption budgets."""
    servers = (
        (("argoproj.io", "Rollout"), ("argoproj.io", "AnalysisTemplate"))
        if canaries
        else (("apps", "Deployment"),)
    )
    return (
        ("batch", "Job"),
        *servers,
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
    )


IN_CLUSTER = "https://kubernetes.default.svc"


class ProductService(pulumi.ComponentResource):
    api_url: str

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        foundation: Foundation,
        addons: ClusterAddons,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("platform:app:ProductService", name, None, opts)
        self._cfg = cfg
        self._provider = foundation.provider
        namespace = k8s.core.v1.Namespace(
            "products",
            # Every pod here (the service, its migration Job) is built restricted.
            metadata={
                "name": NAMESPACE,
                "labels": pod_security_labels("restricted", foundation.cluster.kubernetes_version),
            },
            opts=self._k8s(),
        )
        self._ready = [namespace]

        # Delivered directly, Secret and ConfigMap are auto-named: a changed value makes a new object,
        # so the Deployment that references it rolls out instead of running on stale settings. Through
        # Argo CD, the manifests in Git refer to them by these fixed names.
        gitops = cfg.delivery == "argocd"
        credentials = k8s.core.v1.Secret(
            "credentials",
            metadata={
                "namespace": NAMESPACE,
                "labels": LABELS,
                **({"name": GITOPS_NAMES["credentials"]} if gitops else {}),
            },
            type="Opaque",
            string_data=_credentials(cfg, foundation, self),
            opts=self._k8s(),
        )
        settings = k8s.core.v1.ConfigMap(
            "settings",
            metadata={
                "namespace": NAMESPACE,
                "labels": LABELS,
                **({"name": GITOPS_NAMES["settings"]} if gitops else {}),
            },
            data={
                # Without the jaeger add-on no endpoint is set, and the service traces nothing.
                **({"OTEL_EXPORTER_OTLP_ENDPOINT": addons.otlp_endpoint} if addons.otlp_endpoint else {}),
                "OTEL_SERVICE_NAME": NAME,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(cfg.trace_sample_ratio),
                "LOG_LEVEL": cfg.log_level,
                "DB_POOL_MIN_SIZE": str(cfg.db_pool_min),
                "DB_POOL_MAX_SIZE": str(cfg.db_pool_max),
                "CACHE_TTL_SECONDS": str(cfg.cache_ttl_seconds),
                "JWT_AUDIENCE": JWT_AUDIENCE,
                "JWT_ISSUER": jwt_issuer(cfg.stack),
                # Which peers' X-Forwarded-For names the client in the logs (gunicorn's setting; the gRPC
                # server reads it too): any, since the pods' NetworkPolicies admit only the ingress
                # controller and Prometheus. A pod-network CIDR would differ per cloud and CNI and trust
                # every pod of the cluster, more than those policies let through.
                "FORWARDED_ALLOW_IPS": "*",
            },
            opts=self._k8s(),
        )
        account = k8s.core.v1.ServiceAccount(
            "service-account",
            metadata={
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": LABELS,
                "annotations": foundation.cluster.service_account_annotations,
            },
            automount_service_account_token=False,
            opts=self._k8s(),
        )
        pods = Pods(cfg.image, account.metadata["name"], self._trust(foundation, gitops))

        # Per-client limits on every route of the API, where the platform's Traefik serves it.
        edge = None
        if addons.ingress_controller is not None:
            edge = per_client_limits(
                cfg, NAMESPACE, LABELS, self._k8s(depends_on=[addons.ingress_controller])
            )
        migration = None
        if gitops:
            self._argocd_application(cfg, addons)
        else:
            migration = self._migration(
                pods, _environment(credentials.metadata["name"], MIGRATION_CREDENTIALS)
            )
        shared = Shared(
            cfg=cfg,
            pods=pods,
            env=_environment(credentials.metadata["name"], SERVER_CREDENTIALS, settings.metadata["name"]),
            egress=self._network_policies(foundation, addons),
            migration=migration,
            kubeconfig=foundation.kubeconfig,
            edge=edge,
            addons=addons,
            load_balancer_addresses=foundation.cluster.load_balancer_addresses,
            provider=self._provider,
            namespace=NAMESPACE,
            after=self._ready,
        )
        # REST's objects were declared straight under this component, gRPC's under a component of its own
        # (platform:app:ProductGrpcService): the aliases keep live stacks' resources as they are.
        Workload(
            "rest",
            REST,
            shared,
            aliases=[pulumi.Alias(parent=self)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        Workload(
            "grpc",
            GRPC,
            shared,
            opts=pulumi.ResourceOptions(
                parent=self, aliases=[pulumi.Alias(type_="platform:app:ProductGrpcService")]
            ),
        )
        # Without the platform's ingress controller (platform:addons leaves traefik out) there is no
        # Ingress: the team routes to the Service.
        if edge is None:
            self.api_url = port_forward_url(NAMESPACE, NAME, 8080)
        else:
            self.api_url = f"{'https' if cfg.tls_secret_name else 'http'}://{cfg.host}"
        self.register_outputs({"api_url": self.api_url})

    def _migration(self, pods: Pods, env: dict[str, Any]) -> k8s.batch.v1.Job:
        """The Job that migrates the schema, which the servers (Deployments or Rollouts) wait for."""
        container = pods.container(
            NAME,
            env,
            resources("100m", "128Mi", "500m", "256Mi"),
            command=["python", "-m", "product_service", "migrate"],
        )
        return k8s.batch.v1.Job(
            "migrate",
            metadata={
                "namespace": NAMESPACE,
                "labels": MIGRATION_POD_LABELS,
            },
            spec={
                "backoffLimit": 3,
                "activeDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": MIGRATION_POD_LABELS},
                    "spec": pods.spec(container, restart_policy="Never"),
                },
            },
            # The provider waits for a Job to complete (and fails `up` if it does not) before anything
            # that depends on it: the Deployments never serve an unmigrated schema. The Job is
            # auto-named so that a new image replaces it with a fresh run.
            opts=self._k8s(replace_on_changes=["spec"], delete_before_replace=False),
        )

    def _argocd_application(self, cfg: PlatformConfig, addons: ClusterAddons) -> None:
        """Argo CD syncs the workloads (migration Job, Deployments, HPAs, PDBs) from the stack's Kustomize
        directory in Git (deploy/<stack>, generated from this program by `make deploy-manifests`, image
        included: a release is a commit there); Pulumi keeps what the platform owns (namespace,
        credentials, settings, network policy, Services, Ingresses, monitoring).
        The Application belongs to a project of its own, which lets it sync only that repository, only
        into NAMESPACE and only synced_kinds (Argo CD's `default` project allows any of them anywhere)."""
        project = k8s.apiextensions.CustomResource(
            "app-project",
            api_version="argoproj.io/v1alpha1",
            kind="AppProject",
            metadata={"name": NAME, "namespace": ARGOCD_NAMESPACE},
            spec={
                "description": "The product service's workloads, synced from Git",
                "sourceRepos": [cfg.gitops_repo_url],
                "destinations": [{"server": IN_CLUSTER, "namespace": NAMESPACE}],
                # No cluster-scoped kind: an empty allow-list (and no deny-list) allows none.
                "clusterResourceWhitelist": [],
                "namespaceResourceWhitelist": [
                    {"group": group, "kind": kind}
                    for group, kind in synced_kinds(addons.rollouts is not None)
                ],
            },
            opts=self._k8s(depends_on=[addons.argocd]),
        )
        k8s.apiextensions.CustomResource(
            "application",
            api_version="argoproj.io/v1alpha1",
            kind="Application",
            metadata={"name": NAME, "namespace": ARGOCD_NAMESPACE},
            spec={
                "project": NAME,
                "source": {
                    "repoURL": cfg.gitops_repo_url,
                    "path": cfg.gitops_path,
                    "targetRevision": cfg.gitops_revision,
                },
                "destination": {"server": IN_CLUSTER, "namespace": NAMESPACE},
                "syncPolicy": {
                    "automated": {"prune": True, "selfHeal": True},
                    "syncOptions": ["CreateNamespace=false"],
                    "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"}},
                },
            },
            opts=self._k8s(depends_on=[addons.argocd, project]),
        )

    def _trust(self, foundation: Foundation, gitops: bool) -> list[dict[str, Any]]:
        """Volumes carrying the CAs the Foundation names for Postgres and Redis, mounted at
        POSTGRES_CA_FILE and REDIS_CA_FILE; none for a server whose certificate needs no CA here."""
        volumes = []
        for name, certificate in (
            ("postgres-ca", foundation.postgres.ca_certificate),
            ("redis-ca", foundation.redis.ca_certificate),
        ):
            if certificate is None:
                continue
            ca = k8s.core.v1.ConfigMap(
                name,
                metadata={
                    "namespace": NAMESPACE,
                    "labels": LABELS,
                    **({"name": GITOPS_NAMES[name]} if gitops else {}),
                },
                data={"ca.crt": certificate},
                opts=self._k8s(),
            )
            volumes.append({"name": name, "configMap": {"name": ca.metadata["name"]}})
        return volumes

    def _k8s(self, **kwargs: Any) -> pulumi.ResourceOptions:
        depends_on = [*getattr(self, "_ready", []), *kwargs.pop("depends_on", [])]
        return pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=depends_on, **kwargs)

    def _network_policies(self, foundation: Foundation, addons: ClusterAddons) -> list[dict[str, Any]]:
        """Default deny both ways; the migration Job reaches DNS and Postgres only. Where the data services
        run in the cluster, they admit the servers and the Job and no one else. Returns the servers' egress
        rules (DNS, Postgres, Redis and Jaeger's OTLP ports), which each Workload gives its pods beside
        the policy that admits its clients."""
        data = foundation.cluster.data_network_peers
        postgres = {"to": data, "ports": [{"protocol": "TCP", "port": foundation.postgres.port}]}
        redis = {"to": data, "ports": [{"protocol": "TCP", "port": foundation.redis.port}]}
        # Without the jaeger add-on the service has no OTLP endpoint and traces nothing.
        server_egress = [dns_egress(), postgres, redis, *([traces_egress()] if addons.otlp_endpoint else [])]
        policies: dict[str, dict[str, Any]] = {
            "default-deny": DEFAULT_DENY,
            # `migrate` reads DATABASE_URL alone: no cache, no traces.
            "allow-migration-egress": {
                "podSelector": {"matchLabels": MIGRATION_POD_LABELS},
                "policyTypes": ["Egress"],
                "egress": [dns_egress(), postgres],
            },
        }
        for policy, spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                policy,
                metadata={"name": policy, "namespace": NAMESPACE, "labels": LABELS},
                spec=spec,
                opts=self._k8s(),
            )
        if foundation.cluster.admit_data_clients is not None:
            servers = [pods_peer(NAMESPACE, REST.selector), pods_peer(NAMESPACE, GRPC.selector)]
            foundation.cluster.admit_data_clients(
                [*servers, pods_peer(NAMESPACE, MIGRATION_POD_LABELS)], servers
            )
        return server_egress


def _credentials(cfg: PlatformConfig, foundation: Foundation, parent: pulumi.Resource) -> dict[str, Any]:
    """DATABASE_URL, REDIS_URL, JWT_SECRET: each built from secret outputs, each itself a secret."""
    pg = foundation.postgres
    redis = foundation.redis
    jwt_secret = supplied_or_generated(
        cfg, "jwtSecret", "jwt-secret", 48, pulumi.ResourceOptions(parent=parent)
    )
    # libpq verifies the server against the mounted CAs (sslmode verify-full checks its name too).
    pg_trust = f"&sslrootcert={POSTGRES_CA_FILE}" if pg.ca_certificate is not None else ""
    database_url = pulumi.Output.all(pg.host, pg.port, pg.password).apply(
        lambda v: (
            f"postgresql://{quote(pg.user, safe='')}:{quote(v[2], safe='')}@{v[0]}:{v[1]}/{pg.database}"
            f"?sslmode={pg.sslmode}{pg_trust}"
        )
    )
    scheme = "rediss" if redis.tls else "redis"
    user = quote(redis.username, safe="") if redis.username else ""
    # redis-py passes URL query arguments to its connection: the client verifies a private CA, and
    # skips only the name check where the Foundation says the certificate cannot carry the name.
    arguments = [
        *([f"ssl_ca_certs={REDIS_CA_FILE}"] if redis.ca_certificate is not None else []),
        *(["ssl_check_hostname=false"] if not redis.verify_hostname else []),
    ]
    trust = f"?{'&'.join(arguments)}" if arguments else ""
    redis_url = pulumi.Output.all(redis.host, redis.port, redis.password).apply(
        lambda v: f"{scheme}://{user}:{quote(v[2], safe='')}@{v[0]}:{v[1]}/0{trust}"
    )
    # Output.secret on top of the secret inputs: secret even if a Foundation forgot to mark one.
    return {
        "DATABASE_URL": pulumi.Output.secret(database_url),
        "REDIS_URL": pulumi.Output.secret(redis_url),
        "JWT_SECRET": pulumi.Output.secret(jwt_secret),
    }


def jwt_issuer(stack: str) -> str:
    """Per stack: a token minted for staging is refused by prod even if both had the same secret."""
    return f"product-platform/{stack}"


def _environment(
    secret_name: pulumi.Input[str], keys: tuple[str, ...], config_map_name: pulumi.Input[str] | None = None
) -> dict[str, Any]:
    """`keys` of the credentials Secret, and the settings ConfigMap for a process that reads it."""
    return {
        "env": [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}} for key in keys
        ],
        **({"envFrom": [{"configMapRef": {"name": config_map_name}}]} if config_map_name is not None else {}),
    }
