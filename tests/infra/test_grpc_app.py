"""The gRPC Deployment beside REST: same image and settings, its own command, probes, scaling,
Service (h2c), network policy, monitoring and ingress route; handed to Argo CD like REST's workloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from plan import Plan

TARGETS = [(cloud, profile) for cloud in ("aws", "gcp", "azure", "local") for profile in ("dev", "prod")]
PlanFor = Callable[..., Plan]


@pytest.fixture(params=TARGETS, ids=[f"{c}-{p}" for c, p in TARGETS])
def plan(request: pytest.FixtureRequest, plan_for: PlanFor) -> Plan:
    cloud, profile = request.param
    return plan_for(cloud, profile)


def pod(plan: Plan, deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = plan.object("Rollout", deployment).inputs["spec"]["template"]["spec"]
    return spec


def test_the_grpc_deployment_runs_the_rest_image_and_settings_with_its_own_command(plan: Plan) -> None:
    [rest] = pod(plan, "product-service")["containers"]
    [grpc] = pod(plan, "product-service-grpc")["containers"]

    assert grpc["command"] == ["python", "-m", "product_service", "grpc"]
    assert grpc["image"] == rest["image"]
    assert grpc["envFrom"] == rest["envFrom"]
    secrets = [e for e in grpc["env"] if "valueFrom" in e]
    assert secrets == [e for e in rest["env"] if "valueFrom" in e]
    settings = {e["name"]: e["value"] for e in grpc["env"] if "value" in e}
    assert settings["GRPC_PORT"] == "50051"
    assert settings["OTEL_SERVICE_NAME"] == "product-service-grpc"
    assert grpc["securityContext"] == rest["securityContext"]
    assert {p["name"]: p["containerPort"] for p in grpc["ports"]} == {"grpc": 50051, "metrics": 9464}


def test_the_grpc_pods_have_native_grpc_probes_and_time_to_drain(plan: Plan) -> None:
    spec = pod(plan, "product-service-grpc")
    [container] = spec["containers"]

    assert container["livenessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert container["readinessProbe"]["grpc"] == {"port": 50051, "service": "product.v1.ProductService"}
    assert container["startupProbe"]["grpc"]["port"] == 50051
    settings = {
        e["name"]: float(e["value"])
        for e in container["env"]
        if e["name"].startswith("GRPC_") and "SECONDS" in e["name"]
    }
    assert (
        settings["GRPC_DRAIN_SECONDS"] + settings["GRPC_GRACE_SECONDS"]
        < spec["terminationGracePeriodSeconds"]
    )


def test_rest_and_grpc_pods_are_selected_only_by_their_own_objects(plan: Plan) -> None:
    rest_labels = plan.object("Rollout", "product-service").inputs["spec"]["template"]["metadata"]["labels"]
    grpc_labels = plan.object("Rollout", "product-service-grpc").inputs["spec"]["template"]["metadata"][
        "labels"
    ]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in selector.items())

    for kind, name, own, other in [
        ("Service", "product-service", rest_labels, grpc_labels),
        ("Service", "product-service-grpc", grpc_labels, rest_labels),
    ]:
        selector = plan.object(kind, name).inputs["spec"]["selector"]
        assert selects(selector, own) and not selects(selector, other)
    for kind in ("Rollout", "PodDisruptionBudget"):
        for name, own, other in [
            ("product-service", rest_labels, grpc_labels),
            ("product-service-grpc", grpc_labels, rest_labels),
        ]:
            selector = plan.object(kind, name).inputs["spec"]["selector"]["matchLabels"]
            assert selects(selector, own) and not selects(selector, other)


def test_the_grpc_deployment_scales_between_the_profile_bounds_and_waits_for_the_migration(
    plan: Plan,
) -> None:
    hpa = plan.object("HorizontalPodAutoscaler", "product-service-grpc").inputs["spec"]
    rest_hpa = plan.object("HorizontalPodAutoscaler", "product-service").inputs["spec"]
    deployment = plan.object("Rollout", "product-service-grpc")
    [job] = plan.objects("Job", "products")

    assert hpa["scaleTargetRef"]["name"] == "product-service-grpc"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (rest_hpa["minReplicas"], rest_hpa["maxReplicas"])
    assert "replicas" not in deployment.inputs["spec"]
    assert job.urn in deployment.dependencies
    assert plan.object("PodDisruptionBudget", "product-service-grpc").inputs["spec"]["maxUnavailable"] == 1


def test_the_grpc_service_speaks_h2c_on_a_port_named_grpc(plan: Plan) -> None:
    service = plan.object("Service", "product-service-grpc")
    ports = {p["name"]: p for p in service.inputs["spec"]["ports"]}

    assert ports["grpc"]["port"] == 50051
    assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    assert service.metadata["annotations"]["traefik.ingress.kubernetes.io/service.serversscheme"] == "h2c"
    assert service.inputs["spec"]["type"] == "ClusterIP"


def test_only_the_ingress_controller_reaches_grpc_and_only_prometheus_its_metrics(plan: Plan) -> None:
    policy = plan.object("NetworkPolicy", "allow-grpc-from-ingress-controller-and-prometheus").inputs["spec"]
    allowed = {
        rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: [
            p["port"] for p in rule["ports"]
        ]
        for rule in policy["ingress"]
    }

    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "product-service-grpc"
    assert allowed == {"ingress": [50051], "monitoring": [9464]}


def test_prometheus_scrapes_the_grpc_metrics_port(plan: Plan) -> None:
    monitor = plan.object("ServiceMonitor", "product-service-grpc")

    assert monitor.inputs["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert (
        monitor.inputs["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "product-service-grpc"
    )


def test_the_ingress_routes_the_rpc_paths_on_the_api_host_to_the_grpc_service(plan_for: PlanFor) -> None:
    plain = plan_for("local", "dev").object("Ingress", "product-service-grpc").inputs["spec"]
    tls = (
        plan_for("local", "dev", tlsSecretName="api-tls")
        .object("Ingress", "product-service-grpc")
        .inputs["spec"]
    )
    rest = plan_for("local", "dev").object("Ingress", "product-service").inputs["spec"]

    [rule] = plain["rules"]
    [path] = rule["http"]["paths"]
    assert rule["host"] == rest["rules"][0]["host"]
    assert (path["path"], path["pathType"]) == ("/product.v1.ProductService", "Prefix")
    assert path["backend"]["service"] == {"name": "product-service-grpc", "port": {"name": "grpc"}}
    assert "tls" not in plain
    assert tls["tls"] == [{"hosts": [rule["host"]], "secretName": "api-tls"}]


def test_argocd_delivery_leaves_the_grpc_workloads_to_git_and_keeps_the_platform_part(
    plan_for: PlanFor,
) -> None:
    plan = plan_for("local", "prod", delivery="argocd", gitopsRepoUrl="https://git.example.com/deploy.git")

    assert not [d for d in plan.objects("Rollout", "products")]
    assert not plan.objects("HorizontalPodAutoscaler", "products")
    assert plan.object("Service", "product-service-grpc")
    assert plan.object("Ingress", "product-service-grpc")
    assert plan.object("ServiceMonitor", "product-service-grpc")
