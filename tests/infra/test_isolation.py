"""What keeps the platform's namespaces apart: Pod Security admission on every namespace the program
creates, and the network flows each one admits."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from config import KUBERNETES_VERSION
from flows import Address, Pod, allowed, receives, sends
from plan import Plan, PlannedResource

PlanFor = Callable[..., Plan]
RELEASE = "kubernetes:helm.sh/v3:Release"
TARGETS = [(cloud, profile) for cloud in ("aws", "gcp", "azure", "local") for profile in ("dev", "prod")]
POD_SECURITY = "pod-security.kubernetes.io"
# The strictest standard each namespace's pods meet; node-exporter alone needs the host.
ENFORCED = {
    "products": "restricted",
    "monitoring": "restricted",
    "node-exporter": "privileged",
    "tracing": "restricted",
    "argocd": "restricted",
    "argo-rollouts": "restricted",
    "ingress": "restricted",
}


# The pods, with the labels their charts, the Prometheus operator or the program give them.
PART_OF = {"app.kubernetes.io/part-of": "platform"}
API = Pod(
    "products", {"app.kubernetes.io/name": "product-service", **PART_OF, "app.kubernetes.io/component": "api"}
)
GRPC = Pod(
    "products",
    {"app.kubernetes.io/name": "product-service-grpc", **PART_OF, "app.kubernetes.io/component": "grpc"},
)
MIGRATION = Pod(
    "products",
    {"app.kubernetes.io/name": "product-service", **PART_OF, "app.kubernetes.io/component": "migration"},
)
PROMETHEUS = Pod(
    "monitoring", {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack-prometheus"}
)
ALERTMANAGER = Pod("monitoring", {"app.kubernetes.io/name": "alertmanager"})
GRAFANA = Pod(
    "monitoring", {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": "kube-prometheus-stack"}
)
OPERATOR = Pod("monitoring", {"app": "kube-prometheus-stack-operator", "release": "kube-prometheus-stack"})
KUBE_STATE_METRICS = Pod("monitoring", {"app.kubernetes.io/name": "kube-state-metrics"})
JAEGER = Pod("tracing", {"app.kubernetes.io/name": "jaeger", "app.kubernetes.io/component": "all-in-one"})
TRAEFIK = Pod(
    "ingress", {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-ingress"}
)
ARGOCD_SERVER = Pod(
    "argocd", {"app.kubernetes.io/name": "argocd-server", "app.kubernetes.io/instance": "argocd"}
)
ARGOCD_REPO_SERVER = Pod("argocd", {"app.kubernetes.io/name": "argocd-repo-server"})
ARGOCD_CONTROLLER = Pod("argocd", {"app.kubernetes.io/name": "argocd-application-controller"})
ARGOCD_REDIS = Pod("argocd", {"app.kubernetes.io/name": "argocd-redis"})
CLUSTER_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
COREDNS_ELSEWHERE = Pod("default", {"k8s-app": "kube-dns"})
# Outside the pod network.
NODE = Address("10.0.1.20")
INTERNET = Address("203.0.113.7")
PLATFORM_PODS = (
    API, GRPC, MIGRATION, PROMETHEUS, ALERTMANAGER, GRAFANA, OPERATOR, KUBE_STATE_METRICS, JAEGER, TRAEFIK,
    ARGOCD_SERVER, ARGOCD_REPO_SERVER, ARGOCD_CONTROLLER, ARGOCD_REDIS,
)  # fmt: skip


@pytest.fixture(params=TARGETS, ids=[f"{c}-{p}" for c, p in TARGETS])
def plan(request: pytest.FixtureRequest, plan_for: PlanFor) -> Plan:
    cloud, profile = request.param
    return plan_for(cloud, profile)


def _release(plan: Plan, chart: str) -> PlannedResource:
    [release] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"].rsplit("/", 1)[-1] == chart]
    return release


# --- Pod Security -----------------------------------------------------------------------------------


def test_every_namespace_enforces_the_strictest_standard_its_pods_meet_and_warns_below_restricted(
    plan: Plan,
) -> None:
    expected = {**ENFORCED, **({"platform-data": "restricted"} if plan.cloud == "local" else {})}
    if plan.config.get("platform:domain") and plan.cloud != "local":
        expected |= {"cert-manager": "restricted", "external-dns": "restricted"}
    labels = {n.metadata["name"]: n.metadata.get("labels", {}) for n in plan.objects("Namespace")}
    assert set(labels) == set(expected)
    for name, level in expected.items():
        modes = {mode: labels[name].get(f"{POD_SECURITY}/{mode}") for mode in ("enforce", "warn", "audit")}
        assert modes == {"enforce": level, "warn": "restricted", "audit": "restricted"}, name


def test_pod_security_is_pinned_to_the_stacks_kubernetes_minor(plan_for: PlanFor) -> None:
    for minor, plan in (
        (KUBERNETES_VERSION, plan_for("gcp", "prod")),
        ("1.35", plan_for("aws", "dev", kubernetesVersion="1.35")),
    ):
        for namespace in plan.objects("Namespace"):
            versions = {
                value for key, value in namespace.metadata["labels"].items() if key.endswith("-version")
            }
            assert versions == {f"v{minor}"}, namespace.metadata["name"]


def test_node_exporter_runs_alone_in_the_one_namespace_that_allows_host_access(plan: Plan) -> None:
    release = _release(plan, "kube-prometheus-stack")
    assert release.inputs["namespace"] == "monitoring"
    assert release.inputs["values"]["prometheus-node-exporter"]["namespaceOverride"] == "node-exporter"
    assert plan.object("Namespace", "node-exporter").urn in release.dependencies
    # Nothing else of the program's goes there.
    assert not [r for r in plan.kubernetes_objects() if r.metadata.get("namespace") == "node-exporter"
                and r.kind != "NetworkPolicy"]  # fmt: skip
    assert not [r for r in plan.of_type(RELEASE) if r.inputs["namespace"] == "node-exporter"]


# --- network: default deny and the flows each add-on needs ------------------------------------------


def _api_server_port(plan: Plan) -> int:
    """Where the API server listens: 443 on the clouds, 6443 on kind, k3d and Docker Desktop."""
    return 6443 if plan.cloud == "local" else 443


def test_every_namespace_starts_from_default_deny_both_ways(plan: Plan) -> None:
    for namespace in plan.objects("Namespace"):
        name = namespace.metadata["name"]
        specs = [
            p.inputs["spec"]
            for p in plan.objects("NetworkPolicy", name)
            if p.metadata["name"] == "default-deny"
        ]
        assert specs == [{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}], name


def test_every_pod_resolves_names_through_kube_system_dns_only(plan: Plan) -> None:
    for pod in PLATFORM_PODS:
        for protocol in ("UDP", "TCP"):
            assert allowed(plan, pod, CLUSTER_DNS, 53, protocol), pod
            # Prometheus scrapes every pod on TCP, whatever it calls itself.
            if not (pod == PROMETHEUS and protocol == "TCP"):
                assert not allowed(plan, pod, COREDNS_ELSEWHERE, 53, protocol), pod


def test_each_addon_reaches_what_it_needs(plan: Plan) -> None:
    api_server = (Address("172.20.0.1"), _api_server_port(plan))
    needed = [
        # Prometheus scrapes every namespace's metrics ports, and the nodes' node-exporter and kubelet.
        (PROMETHEUS, API, 8080),
        (PROMETHEUS, GRPC, 9464),
        (PROMETHEUS, TRAEFIK, 9100),
        (PROMETHEUS, JAEGER, 8888),
        (PROMETHEUS, ARGOCD_SERVER, 8083),
        (PROMETHEUS, KUBE_STATE_METRICS, 8080),
        (PROMETHEUS, NODE, 9100),
        (PROMETHEUS, NODE, 10250),
        (PROMETHEUS, CLUSTER_DNS, 9153),
        (PROMETHEUS, ALERTMANAGER, 9093),
        (GRAFANA, PROMETHEUS, 9090),
        (GRAFANA, ALERTMANAGER, 9093),
        (PROMETHEUS, *api_server),
        (OPERATOR, *api_server),
        (GRAFANA, *api_server),
        (KUBE_STATE_METRICS, *api_server),
        # The API server calls the operator's admission webhook from outside the pod network.
        (api_server[0], OPERATOR, 10250),
        (API, JAEGER, 4318),
        (GRPC, JAEGER, 4317),
        (INTERNET, TRAEFIK, 8000),
        (INTERNET, TRAEFIK, 8443),
        (TRAEFIK, API, 8080),
        (TRAEFIK, GRPC, 50051),
        (TRAEFIK, *api_server),
        (ARGOCD_CONTROLLER, *api_server),
        (ARGOCD_SERVER, *api_server),
        (ARGOCD_REPO_SERVER, INTERNET, 443),
        (ARGOCD_REPO_SERVER, INTERNET, 22),
    ]
    assert [flow for flow in needed if not allowed(plan, *flow)] == []


def test_nothing_else_gets_through(plan: Plan) -> None:
    intruders = [Pod(namespace, {"app": "intruder"}) for namespace in ENFORCED]
    refused = [
        (INTERNET, TRAEFIK, 9100),
        (INTERNET, GRAFANA, 3000),
        (INTERNET, PROMETHEUS, 9090),
        (TRAEFIK, PROMETHEUS, 9090),
        # The admin UIs are not published by default.
        (TRAEFIK, GRAFANA, 3000),
        (TRAEFIK, ARGOCD_SERVER, 8080),
        (API, PROMETHEUS, 9090),
        (API, GRAFANA, 3000),
        (JAEGER, INTERNET, 443),
        (JAEGER, API, 8080),
        (PROMETHEUS, INTERNET, 5432),
        (ALERTMANAGER, INTERNET, 80),
        (ARGOCD_REDIS, INTERNET, 22),
        (ARGOCD_SERVER, INTERNET, 22),
        (Address("172.20.0.1"), GRAFANA, 3000),
        *((intruder, INTERNET, 80) for intruder in intruders),
        *(
            (intruder, API, 8080)
            for intruder in intruders
            if intruder.namespace not in ("ingress", "monitoring")
        ),
        *((intruder, JAEGER, 4318) for intruder in intruders if intruder.namespace != "products"),
    ]
    assert [flow for flow in refused if allowed(plan, *flow)] == []


def test_the_api_servers_port_is_open_at_any_address_to_the_namespaces_that_call_it(plan: Plan) -> None:
    """NetworkPolicy sees the API server at its endpoints' addresses, which the program does not know (a
    cloud's control plane): the namespaces whose pods call it may send to its port anywhere. On the
    clouds that port is 443, so they reach HTTPS anywhere; Jaeger and the service, which do not call
    it, reach no address outside the cluster but the data services'."""
    port = _api_server_port(plan)
    for pod in (PROMETHEUS, ALERTMANAGER, GRAFANA, ARGOCD_REDIS, TRAEFIK):
        assert allowed(plan, pod, INTERNET, port), pod
    for pod in (JAEGER, API, GRPC, MIGRATION):
        assert not allowed(plan, pod, INTERNET, port), pod


def test_published_admin_uis_are_reachable_from_the_ingress_controller_only(plan_for: PlanFor) -> None:
    plan = plan_for("aws", "prod", adminAllowedCidrs=["203.0.113.0/24"])
    assert allowed(plan, TRAEFIK, GRAFANA, 3000) and allowed(plan, TRAEFIK, ARGOCD_SERVER, 8080)
    assert not allowed(plan, API, GRAFANA, 3000) and not allowed(plan, API, ARGOCD_SERVER, 8080)


def test_alertmanager_reaches_the_webhook_receiver_once_there_is_one(plan_for: PlanFor) -> None:
    webhook = "https://hooks.example.com/services/T000/B000/abcdefghijklmnop"
    plan = plan_for("gcp", "prod", alertWebhookUrl=webhook)
    assert allowed(plan, ALERTMANAGER, INTERNET, 443)
    assert not allowed(plan, ALERTMANAGER, INTERNET, 80)


def test_argocd_components_talk_among_themselves_under_the_charts_own_policies(plan: Plan) -> None:
    """The program lets Argo CD's components send to each other; what each admits is the chart's own
    NetworkPolicies (9.6.0: repo-server from the server, controller, ApplicationSet and notifications,
    Redis from the server, repo-server and controller, Dex from the server). The server's own would admit
    every source, so the program's admits its clients instead."""
    assert sends(plan, ARGOCD_CONTROLLER, ARGOCD_REPO_SERVER, 8081)
    assert sends(plan, ARGOCD_SERVER, ARGOCD_REDIS, 6379)
    assert not receives(plan, ARGOCD_REPO_SERVER, ARGOCD_CONTROLLER, 8081), "the chart's policy admits it"
    values = _release(plan, "argo-cd").inputs["values"]
    assert {
        c: values[c]["networkPolicy"]["create"] for c in ("controller", "repoServer", "redis", "dex")
    } == dict.fromkeys(("controller", "repoServer", "redis", "dex"), True)
    assert values["server"]["networkPolicy"]["create"] is False


def test_every_release_waits_for_its_namespaces_network_policies(plan: Plan) -> None:
    """The charts' hook Jobs (kube-prometheus-stack's CRD upgrade and webhook certificate) run before the
    release's other objects: the flows they need must already be open."""
    for release in plan.of_type(RELEASE):
        namespaces = {release.inputs["namespace"]} - {"kube-system"}
        if release.inputs["chart"].endswith("kube-prometheus-stack"):
            namespaces.add("node-exporter")
        for namespace in namespaces:
            policies = {p.urn for p in plan.objects("NetworkPolicy", namespace)}
            assert policies and policies <= set(release.dependencies), (release.name, namespace)


# --- the service's egress, per workload and port, and who reaches its data ------------------------------


def _data(plan: Plan) -> tuple[tuple[Pod | Address, int], tuple[Pod | Address, int]]:
    """(Postgres, port), (Redis, port): the in-cluster StatefulSets' pods on the local target, an address
    of the data services' network (the Foundation's data_network_peers) on a cloud."""
    postgres_port, redis_port = (
        int(plan.outputs[key].rsplit(":", 1)[1]) for key in ("database_endpoint", "redis_endpoint")
    )
    if plan.cloud == "local":
        data = {"app.kubernetes.io/part-of": "platform"}
        return (
            (Pod("platform-data", {"app.kubernetes.io/name": "postgres", **data}), postgres_port),
            (Pod("platform-data", {"app.kubernetes.io/name": "redis", **data}), redis_port),
        )
    egress = plan.object("NetworkPolicy", "allow-api-egress").inputs["spec"]["egress"]
    [cidr, *_] = [peer["ipBlock"]["cidr"] for rule in egress for peer in rule["to"] if "ipBlock" in peer]
    address = Address(str(next(ipaddress.ip_network(cidr).hosts())))
    return (address, postgres_port), (address, redis_port)


def test_each_workload_reaches_only_the_data_it_uses(plan: Plan) -> None:
    (postgres, postgres_port), (redis, redis_port) = _data(plan)
    for server in (API, GRPC):
        assert allowed(plan, server, postgres, postgres_port) and allowed(plan, server, redis, redis_port)
        assert allowed(plan, server, JAEGER, 4318)
    assert allowed(plan, MIGRATION, postgres, postgres_port)
    # `migrate` reads DATABASE_URL alone.
    assert not allowed(plan, MIGRATION, redis, redis_port)
    assert not allowed(plan, MIGRATION, JAEGER, 4318)


def test_no_one_but_the_services_workloads_reaches_the_data(plan: Plan) -> None:
    """From the platform's namespaces, on every target. From a namespace the platform does not own, only
    the in-cluster data's own policies answer (local); a cloud's data services answer to the cloud's
    network rules, which NetworkPolicy does not write."""
    (postgres, postgres_port), (redis, redis_port) = _data(plan)
    impostor = Pod(
        "default", {"app.kubernetes.io/name": "product-service", "app.kubernetes.io/component": "api"}
    )
    others = [
        Pod("products", {"app": "intruder"}),
        *(pod for pod in PLATFORM_PODS if pod.namespace != "products"),
        *(Pod(namespace, {"app": "intruder"}) for namespace in ENFORCED if namespace != "products"),
        *([impostor] if plan.cloud == "local" else []),
    ]
    reached = [
        (pod, target)
        for pod in others
        for target, port in ((postgres, postgres_port), (redis, redis_port))
        if allowed(plan, pod, target, port)
    ]
    assert reached == []


# --- Argo CD's reach ----------------------------------------------------------------------------------


GITOPS = {"delivery": "argocd", "gitopsRepoUrl": "https://git.example.com/deploy.git"}


@pytest.mark.parametrize("cloud", ["aws", "local"])
def test_argocd_may_sync_only_the_workloads_it_took_over_into_the_services_namespace(
    plan_for: PlanFor, cloud: str
) -> None:
    gitops = plan_for(cloud, "prod", **GITOPS)
    [application] = gitops.objects("Application")
    [project] = gitops.objects("AppProject")
    assert application.inputs["spec"]["project"] == project.metadata["name"] != "default"
    assert project.urn in application.dependencies
    spec = project.inputs["spec"]
    assert spec["sourceRepos"] == [GITOPS["gitopsRepoUrl"]]
    assert spec["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "products"}]
    assert spec["clusterResourceWhitelist"] == []
    # Exactly what direct delivery declares in products and Argo CD delivery leaves to Git.
    direct = plan_for(cloud, "prod")

    def kinds(plan: Plan) -> set[tuple[str, str]]:
        return {
            (r.inputs["apiVersion"].rpartition("/")[0], r.kind or "") for r in plan.kubernetes_objects()
            if r.metadata.get("namespace") == "products"
        }  # fmt: skip

    handed_over = kinds(direct) - kinds(gitops)
    assert {(k["group"], k["kind"]) for k in spec["namespaceResourceWhitelist"]} == handed_over
