"""The program on every target: the product service, its guardrails, and that secrets stay secret.

The app and the add-ons are the same on every cloud, so these run for each cloud x profile (the
plans are cached per session); `test_local.py` covers what only the local target builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cluster import charts
from plan import Plan, PlannedResource

TARGETS = [(cloud, profile) for cloud in ("aws", "gcp", "azure", "local") for profile in ("dev", "prod")]
PlanFor = Callable[..., Plan]


@pytest.fixture(params=TARGETS, ids=[f"{c}-{p}" for c, p in TARGETS])
def plan(request: pytest.FixtureRequest, plan_for: PlanFor) -> Plan:
    cloud, profile = request.param
    return plan_for(cloud, profile)


def _pod_spec(r: PlannedResource) -> dict[str, Any]:
    return r.inputs["spec"]["template"]["spec"]


def _leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _ingress_controller(plan: Plan) -> PlannedResource:
    [controller] = [
        r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "traefik"
    ]
    return controller


def _generated_secrets(plan: Plan) -> list[str]:
    return [r.outputs["result"] for r in plan.of_type("random:index/randomPassword:RandomPassword")]


def test_the_program_completes_with_the_service_and_its_add_ons(plan: Plan) -> None:
    assert plan.object("Rollout", "product-service")
    assert {r.inputs["chart"] for r in plan.of_type("kubernetes:helm.sh/v3:Release")} >= {
        "kube-prometheus-stack",
        "jaeger",
        "argo-cd",
        "traefik",
    }
    assert set(plan.outputs) >= {
        "kubeconfig",
        "api_url",
        "grafana_url",
        "jaeger_url",
        "argocd_url",
        "database_endpoint",
        "redis_endpoint",
    }


def test_hpa_bounds_follow_the_profile_and_scale_on_cpu_70_only(plan: Plan) -> None:
    spec = plan.object("HorizontalPodAutoscaler", "product-service").inputs["spec"]
    expected = (3, 10) if plan.config["platform:profile"] == "prod" else (1, 3)
    assert (spec["minReplicas"], spec["maxReplicas"]) == expected
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in spec["metrics"]}
    assert targets == {"cpu": 70}, "a Python pod's memory never falls: a memory target never scales down"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "product-service",
    }
    # The HPA owns the replica count; a fixed one in the Rollout would fight it on every `up`.
    assert "replicas" not in plan.object("Rollout", "product-service").inputs["spec"]


def test_a_disruption_budget_covers_the_service_pods(plan: Plan) -> None:
    pdb = plan.object("PodDisruptionBudget", "product-service").inputs["spec"]
    deployment = plan.object("Rollout", "product-service")
    assert pdb["selector"]["matchLabels"].items() <= _pod_labels(deployment).items()
    assert pdb["maxUnavailable"] == 1


def test_every_generated_password_stays_secret_wherever_it_is_used(plan: Plan) -> None:
    secrets = _generated_secrets(plan)
    assert secrets, "the program generates passwords"
    used = 0
    for resource in plan.resources:
        for path, value in _leaves(resource.inputs):
            if isinstance(value, str) and any(s in value for s in secrets):
                used += 1
                assert resource.is_secret(path), (
                    f"{resource.urn} {path} holds a generated password in the clear"
                )
    assert used, "the passwords reach some resource"
    for path, value in _leaves(plan.outputs):
        if isinstance(value, str) and any(s in value for s in secrets):
            assert any(path[: len(p)] == p for p in plan.output_secret_paths), f"stack output {path} leaks"


def test_the_credentials_secret_is_secret_and_holds_urls_built_from_the_foundation(plan: Plan) -> None:
    [secret] = [s for s in plan.objects("Secret", "products") if s.name == "credentials"]
    data = secret.inputs["stringData"]
    assert set(data) == {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"}
    for key in data:
        assert secret.is_secret(("stringData", key))
    assert data["DATABASE_URL"].startswith("postgresql://")
    assert "sslmode=" in data["DATABASE_URL"]
    assert data["REDIS_URL"].startswith(("redis://", "rediss://"))
    assert len(data["JWT_SECRET"]) >= 32  # the service refuses shorter keys
    if plan.cloud != "local":
        assert "sslmode=disable" not in data["DATABASE_URL"]
        assert data["REDIS_URL"].startswith("rediss://"), "managed Redis is reached over TLS"


def test_resources_json_masks_every_secret(plan: Plan) -> None:
    secrets = _generated_secrets(plan)
    for resource in plan.resources:
        text = repr(resource.masked_inputs())
        assert not any(s in text for s in secrets), resource.urn
    [secret] = [s for s in plan.objects("Secret", "products") if s.name == "credentials"]
    assert set(secret.manifest()["stringData"].values()) == {"[secret]"}


def test_the_rest_and_grpc_deployments_take_every_credential_and_the_settings_from_their_objects(
    plan: Plan,
) -> None:
    [secret] = [s for s in plan.objects("Secret", "products") if s.name == "credentials"]
    [config_map] = [c for c in plan.objects("ConfigMap", "products") if c.name == "settings"]
    for name in ("product-service", "product-service-grpc"):
        [container] = _pod_spec(plan.object("Rollout", name))["containers"]
        assert _from_secret(container) == {
            key: {"name": secret.metadata["name"], "key": key}
            for key in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
        }, name
        assert container["envFrom"] == [{"configMapRef": {"name": config_map.metadata["name"]}}]


def test_the_migration_job_receives_only_the_database_url(plan: Plan) -> None:
    """`migrate` reads DATABASE_URL alone: a Job pod must not hold the cache's password or the key
    that signs write tokens."""
    [secret] = [s for s in plan.objects("Secret", "products") if s.name == "credentials"]
    [job] = plan.objects("Job", "products")
    [container] = _pod_spec(job)["containers"]
    assert container["command"] == ["python", "-m", "product_service", "migrate"]
    assert container["env"] == [
        {
            "name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"], "key": "DATABASE_URL"}},
        }
    ]
    assert "envFrom" not in container


def _from_secret(container: dict[str, Any]) -> dict[str, Any]:
    """The container's variables that reference a Secret, and no variable holding a literal credential."""
    env = {e["name"]: e for e in container["env"]}
    assert not {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"} & {n for n, e in env.items() if "value" in e}
    return {
        name: e["valueFrom"]["secretKeyRef"]
        for name, e in env.items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_secret_and_config_map_are_auto_named_so_changes_roll_the_deployment(plan: Plan) -> None:
    [secret] = [s for s in plan.objects("Secret", "products") if s.name == "credentials"]
    name = secret.metadata["name"]
    assert name.startswith("credentials-") and len(name) == len("credentials-") + 8


def test_the_config_map_holds_settings_and_no_secret(plan: Plan) -> None:
    [config_map] = [c for c in plan.objects("ConfigMap", "products") if c.name == "settings"]
    data = config_map.inputs["data"]
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger.tracing.svc.cluster.local:4318"
    assert {
        "OTEL_SERVICE_NAME",
        "LOG_LEVEL",
        "DB_POOL_MIN_SIZE",
        "DB_POOL_MAX_SIZE",
        "CACHE_TTL_SECONDS",
    } <= set(data)
    # Write tokens must be minted for this service by this stack.
    assert (data["JWT_AUDIENCE"], data["JWT_ISSUER"]) == ("product-service", f"product-platform/{plan.stack}")
    for other in plan.objects("ConfigMap"):
        assert not other.secret_paths
        text = repr(other.inputs).lower()
        assert "password" not in text.replace("passwordkey", "")
        assert not any(s in repr(other.inputs) for s in _generated_secrets(plan))


def test_the_migration_job_completes_before_the_deployment_rolls_out(plan: Plan) -> None:
    [job] = plan.objects("Job", "products")
    deployment = plan.object("Rollout", "product-service")
    assert job.urn in deployment.dependencies
    [container] = _pod_spec(job)["containers"]
    assert container["command"] == ["python", "-m", "product_service", "migrate"]
    assert container["image"] == _pod_spec(deployment)["containers"][0]["image"]
    assert _pod_spec(job)["restartPolicy"] == "Never"


def test_workloads_run_restricted(plan: Plan) -> None:
    workloads = [*plan.objects("Rollout", "products"), *plan.objects("Job"), *plan.objects("StatefulSet")]
    assert workloads
    for workload in workloads:
        pod = _pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] not in (None, "default")
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert (
                set(container["resources"]["requests"])
                == set(container["resources"]["limits"])
                == {"cpu", "memory"}
            )
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts


def test_the_service_has_probes_its_own_account_and_spreads_over_zones(plan: Plan) -> None:
    deployment = plan.object("Rollout", "product-service")
    pod = _pod_spec(deployment)
    [container] = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    account = plan.object("ServiceAccount", "product-service")
    assert account.inputs["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account.metadata["name"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert "topology.kubernetes.io/zone" in keys


def test_the_service_drains_before_sigterm_within_its_grace_period(plan: Plan) -> None:
    pod = _pod_spec(plan.object("Rollout", "product-service"))
    [container] = pod["containers"]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < pause < pod["terminationGracePeriodSeconds"]


def test_network_policies_deny_by_default_and_allow_only_what_the_service_needs(plan: Plan) -> None:
    policies = {p.metadata["name"]: p.inputs["spec"] for p in plan.objects("NetworkPolicy", "products")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    sources = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for spec in policies.values()
        for rule in spec.get("ingress", [])
        for peer in rule["from"]
    ]
    # REST and gRPC pods each admit exactly these two namespaces.
    assert set(sources) == {_ingress_controller(plan).inputs["namespace"], "monitoring"}
    egress = [rule for spec in policies.values() for rule in spec.get("egress", [])]
    ports = {port["port"] for rule in egress for port in rule["ports"]}
    assert {53, 4317, 4318} <= ports
    data_rules = [rule for rule in egress if rule["to"] and "podSelector" not in rule["to"][0]]
    assert any(
        rule["to"] and all("ipBlock" in p or "namespaceSelector" in p for p in rule["to"])
        for rule in data_rules
    )
    for rule in egress:
        for peer in rule["to"]:
            assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0"


def test_prometheus_scrapes_the_service_and_alerts_on_errors_and_latency(plan: Plan) -> None:
    monitor = plan.object("ServiceMonitor", "product-service")
    assert monitor.inputs["spec"]["endpoints"][0]["path"] == "/metrics"
    release = next(
        r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.name == "kube-prometheus-stack"
    )
    assert release.urn in monitor.dependencies, "the ServiceMonitor CRD comes with the chart"
    [rule] = plan.objects("PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule.inputs["spec"]["groups"] for r in g["rules"]}
    assert "http_server_requests_total" in alerts["ProductServiceHighErrorRate"]
    assert "http_server_request_duration_seconds_bucket" in alerts["ProductServiceHighLatency"]


def test_the_dashboard_is_a_labelled_config_map_with_the_service_metrics(plan: Plan) -> None:
    dashboard = plan.object("ConfigMap", "product-service-dashboard")
    assert dashboard.metadata["labels"] == {"grafana_dashboard": "1"}
    text = next(iter(dashboard.inputs["data"].values()))
    for metric in (
        "http_server_requests_total",
        "http_server_request_duration_seconds_bucket",
        "product_cache_lookups_total",
        "product_db_pool_connections_in_use",
    ):
        assert metric in text


def test_grafana_takes_its_admin_password_from_a_secret_not_from_values(plan: Plan) -> None:
    release = next(
        r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.name == "kube-prometheus-stack"
    )
    admin = release.inputs["values"]["grafana"]["admin"]
    grafana_secret = plan.object("Secret", "grafana-admin")
    assert admin["existingSecret"] == grafana_secret.metadata["name"]
    assert grafana_secret.is_secret(("stringData",))
    assert "adminPassword" not in release.inputs["values"]["grafana"]


def test_every_chart_is_pinned_to_a_version_and_a_repository(plan: Plan) -> None:
    for release in plan.of_type("kubernetes:helm.sh/v3:Release"):
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", release.inputs["version"]), release.name
        assert release.inputs["repositoryOpts"]["repo"].startswith("https://"), release.name
        assert release.inputs["repositoryOpts"]["repo"] in {c.repo for c in charts.ALL}, release.name


def test_the_ingress_routes_the_configured_host_to_the_service(plan_for: PlanFor) -> None:
    plan = plan_for(
        "local",
        "dev",
        host="api.shop.example.com",
        tlsSecretName="shop-tls",
        adminAllowedCidrs=["198.51.100.0/24"],
    )
    spec = plan.object("Ingress", "product-service").inputs["spec"]
    assert spec["rules"][0]["host"] == "api.shop.example.com"
    assert spec["tls"] == [{"hosts": ["api.shop.example.com"], "secretName": "shop-tls"}]
    assert plan.outputs["api_url"] == "https://api.shop.example.com"
    assert plan.outputs["grafana_url"] == "https://grafana.shop.example.com"


def test_the_rest_ingress_publishes_the_api_and_its_openapi_document_only(plan: Plan) -> None:
    [rule] = plan.object("Ingress", "product-service").inputs["spec"]["rules"]
    backend = {"service": {"name": "product-service", "port": {"name": "http"}}}
    assert rule["http"]["paths"] == [
        {"path": "/api", "pathType": "Prefix", "backend": backend},
        {"path": "/openapi.json", "pathType": "Exact", "backend": backend},
    ]


# Requests as a client on the internet could send them; the Ingresses must route the first set only.
PUBLIC_REQUESTS = (
    "/api/v1/products",
    "/api/v1/products/0b5e7c1e-0000-4000-8000-000000000000",
    "/api/v1/products:batchGet",
    "/openapi.json",
    "/product.v1.ProductService/ListProducts",
)
IN_CLUSTER_REQUESTS = (
    "/",
    "/health",
    "/ready",
    "/metrics",
    "/metrics/",
    "/openapi.json/x",
    "/apifoo",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


def test_no_ingress_routes_probes_metrics_or_grpc_health_and_reflection_from_the_internet(plan: Plan) -> None:
    paths = [
        (path["path"], path["pathType"])
        for ingress in plan.objects("Ingress", "products")
        for rule in ingress.inputs["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert all("defaultBackend" not in i.inputs["spec"] for i in plan.objects("Ingress", "products"))
    for request in PUBLIC_REQUESTS:
        assert any(_ingress_matches(path, kind, request) for path, kind in paths), request
    for request in IN_CLUSTER_REQUESTS:
        assert not any(_ingress_matches(path, kind, request) for path, kind in paths), request


def _ingress_matches(path: str, path_type: str, request: str) -> bool:
    """Kubernetes' Ingress path semantics (networking.k8s.io/v1 HTTPIngressPath): Exact compares the
    whole path; Prefix compares `/`-separated elements, so `/api` matches `/api/v1` but not `/apifoo`."""
    if path_type == "Exact":
        return request == path
    assert path_type == "Prefix", f"{path_type}: matching is up to the controller, name Exact or Prefix"
    elements = [e for e in path.split("/") if e]
    return [e for e in request.split("/") if e][: len(elements)] == elements


def test_stack_outputs_keep_the_kubeconfig_secret_and_endpoints_without_passwords(plan: Plan) -> None:
    assert plan.output_is_secret("kubeconfig")
    for key in ("database_endpoint", "redis_endpoint"):
        assert not plan.output_is_secret(key)
        assert "@" not in plan.outputs[key]
    assert not any(s in repr(plan.masked_outputs()) for s in _generated_secrets(plan))


def test_argocd_delivery_hands_the_workloads_to_an_application_syncing_the_stacks_folder(
    plan_for: PlanFor,
) -> None:
    plan = plan_for("local", "prod", delivery="argocd", gitopsRepoUrl="https://git.example.com/deploy.git")
    assert not plan.objects("Rollout", "products") and not plan.objects("Job", "products")
    [app] = plan.objects("Application")
    source = app.inputs["spec"]["source"]
    # The image is the one committed in deploy/prod: a release is a commit there, a rollback its revert.
    assert source == {
        "repoURL": "https://git.example.com/deploy.git",
        "path": "deploy/prod",
        "targetRevision": "HEAD",
    }
    assert app.inputs["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    argocd = next(r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.name == "argocd")
    assert argocd.urn in app.dependencies
    # The manifests in Git refer to the platform's Secret and ConfigMaps by fixed names.
    assert {s.metadata["name"] for s in plan.objects("Secret", "products")} == {"product-service-credentials"}
    assert {c.metadata["name"] for c in plan.objects("ConfigMap", "products")} >= {"product-service-settings"}
    assert plan.object("Ingress", "product-service") and plan.object("Service", "product-service")


def test_ingresses_wait_for_the_ingress_controller(plan: Plan) -> None:
    releases = {r.name: r for r in plan.of_type("kubernetes:helm.sh/v3:Release")}
    controller = _ingress_controller(plan)
    assert controller.urn in plan.object("Ingress", "product-service").dependencies
    assert controller.urn in releases["argocd"].dependencies
    # Nothing provisions a load balancer on plain kind: the release is not awaited there.
    assert controller.inputs.get("skipAwait", False) is (plan.cloud == "local")


def test_the_ingress_controller_serves_standard_ingresses_of_its_class(plan: Plan) -> None:
    controller = _ingress_controller(plan)
    assert re.fullmatch(r"\d+\.\d+\.\d+", controller.inputs["version"]), "an exact chart version"
    values = controller.inputs["values"]
    ingress_class = values["ingressClass"]
    assert ingress_class["enabled"] is True and ingress_class["isDefaultClass"] is True
    assert (
        plan.object("Ingress", "product-service").inputs["spec"]["ingressClassName"] == ingress_class["name"]
    )
    provider = values["providers"]["kubernetesIngress"]
    assert provider["enabled"] is True and provider["publishedService"]["enabled"] is True
    prometheus = values["metrics"]["prometheus"]
    assert prometheus["serviceMonitor"]["enabled"] is True and prometheus["service"]["enabled"] is True
    assert controller.inputs["values"]["resources"]["requests"]
    prod = plan.config["platform:profile"] == "prod"
    assert values["deployment"]["replicas"] == (2 if prod else 1)
    assert values["podDisruptionBudget"]["enabled"] is prod
    if prod:
        assert values["podDisruptionBudget"]["minAvailable"] == 1


def test_the_ingress_controller_is_reachable_from_anywhere_but_only_on_its_traffic_ports(plan: Plan) -> None:
    controller = _ingress_controller(plan)
    ports = controller.inputs["values"]["ports"]
    [policy] = [
        p
        for p in plan.objects("NetworkPolicy", controller.inputs["namespace"])
        if "ingress" in p.inputs["spec"]
    ]
    spec = policy.inputs["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress"]
    open_rules = [rule for rule in spec["ingress"] if "from" not in rule]
    assert [{p["port"] for p in rule["ports"]} for rule in open_rules] == [
        {ports["web"]["port"], ports["websecure"]["port"]}
    ]
    [metrics] = [rule for rule in spec["ingress"] if "from" in rule]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert {p["port"] for p in metrics["ports"]} == {ports["metrics"]["port"]}


def test_plain_http_redirects_to_https_only_when_tls_is_configured(plan_for: PlanFor) -> None:
    with_tls = _ingress_controller(plan_for("local", "dev", tlsSecretName="shop-tls"))
    redirect = with_tls.inputs["values"]["ports"]["web"]["redirections"]["entryPoint"]
    assert (redirect["to"], redirect["scheme"]) == ("websecure", "https")
    without_tls = _ingress_controller(plan_for("local", "dev"))
    assert "redirections" not in without_tls.inputs["values"]["ports"]["web"]


def test_azure_probes_the_ingress_load_balancer_over_tcp(plan_for: PlanFor) -> None:
    annotations = _ingress_controller(plan_for("azure", "prod")).inputs["values"]["service"]["annotations"]
    assert annotations == {
        "service.beta.kubernetes.io/port_80_health-probe_protocol": "tcp",
        "service.beta.kubernetes.io/port_443_health-probe_protocol": "tcp",
    }


def test_tracing_and_argocd_admit_only_their_known_clients(plan: Plan) -> None:
    def sources(namespace: str) -> dict[str, set[int]]:
        return {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: {
                p["port"] for p in rule["ports"]
            }
            for policy in plan.objects("NetworkPolicy", namespace)
            for rule in policy.inputs["spec"].get("ingress", [])
            for peer in rule["from"]
        }

    assert sources("tracing") == {"products": {4317, 4318}, "monitoring": {8888}}
    # Unpublished (no platform:adminAllowedCidrs), the ingress controller has no way to Argo CD's server.
    assert sources("argocd") == {"monitoring": {8083}}


@pytest.mark.parametrize(("profile", "ratio"), [("dev", "1.0"), ("prod", "0.1")])
def test_the_service_samples_traces_per_profile_unless_a_caller_decided(
    plan_for: PlanFor, profile: str, ratio: str
) -> None:
    settings = plan_for("local", profile).objects("ConfigMap", "products")
    [data] = [c.inputs["data"] for c in settings if "OTEL_SERVICE_NAME" in c.inputs.get("data", {})]
    assert data["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert data["OTEL_TRACES_SAMPLER_ARG"] == ratio


def test_each_disruption_budget_selects_only_its_deployments_pods(plan: Plan) -> None:
    # A budget matching a Job's pod finds no scale subresource there and allows no disruption: drains block.
    templates = [
        (w.kind, w.metadata.get("name"), w.metadata.get("namespace"), _pod_labels(w))
        for kind in ("Rollout", "StatefulSet", "Job")
        for w in plan.objects(kind)
    ]
    budgets = plan.objects("PodDisruptionBudget")
    assert budgets
    for budget in budgets:
        selector = budget.inputs["spec"]["selector"]["matchLabels"]
        selected = [
            (kind, name)
            for kind, name, namespace, labels in templates
            if namespace == budget.metadata["namespace"] and selector.items() <= labels.items()
        ]
        assert [kind for kind, _ in selected] == ["Rollout"], (budget.metadata["name"], selected)


def _pod_labels(workload: PlannedResource) -> dict[str, str]:
    return workload.inputs["spec"]["template"]["metadata"]["labels"]
