"""Releases as canaries (infra/app/rollout.py): where argo-rollouts runs, REST and gRPC are Rollouts whose
steps are judged by an AnalysisTemplate on each version's own metrics, with the profile's bars, and
`pulumi up` waits for the outcome where Pulumi delivers them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from app.rollout import outcome_timeout_seconds
from config import CANARY_STEPS, Canary, ConfigError
from plan import Plan, run_plan

CLOUDS = ("aws", "gcp", "azure", "local")
WORKLOADS = ("product-service", "product-service-grpc")
DYNAMIC = "pulumi-python:dynamic/rollouts:RolloutOutcome"


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("profile", ("dev", "prod"))
def test_each_server_is_a_rollout_judged_at_each_step_of_the_profiles_canary(
    plan_for: Callable[..., Plan], cloud: str, profile: str
) -> None:
    plan = plan_for(cloud, profile)
    assert not plan.objects("Deployment", "products")
    weights = CANARY_STEPS[profile]["weights"]
    for name in WORKLOADS:
        spec = plan.object("Rollout", name).inputs["spec"]
        steps = spec["strategy"]["canary"]["steps"]
        assert [s["setWeight"] for s in steps[::2]] == list(weights)
        for analysis in steps[1::2]:
            assert analysis["analysis"]["templates"] == [{"templateName": name}]
            assert analysis["analysis"]["args"] == [
                {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}
            ]
        assert spec["progressDeadlineAbort"] is True
        # RolloutOutcome waits; the provider's own waits on a Rollout crash (app/rollout.py). Forced: Pulumi
        # takes back a Rollout Argo CD held (kube.PATCH_FORCE).
        assert plan.object("Rollout", name).metadata["annotations"] == {
            "pulumi.com/skipAwait": "true",
            "pulumi.com/deletionPropagationPolicy": "background",
            "pulumi.com/patchForce": "true",
        }
        assert "replicas" not in spec, "the HPA owns the count"
        hpa = plan.object("HorizontalPodAutoscaler", name).inputs["spec"]["scaleTargetRef"]
        assert hpa == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": name}


@pytest.mark.parametrize(
    ("profile", "overrides", "ratio", "p99"),
    [
        ("dev", {}, 0.05, 1.0),
        ("prod", {}, 0.01, 0.5),
        ("prod", {"canaryMaxErrorRatio": "0.002", "canaryMaxP99Seconds": "0.25"}, 0.002, 0.25),
    ],
)
def test_the_analysis_judges_the_new_versions_own_errors_and_p99_against_the_profiles_bars(
    plan_for: Callable[..., Plan], profile: str, overrides: dict[str, str], ratio: float, p99: float
) -> None:
    plan = plan_for("aws", profile, **overrides)
    for name, answers, failures in (
        ("product-service", "http_server_requests_total", 'status=~"5.."'),
        ("product-service-grpc", "grpc_server_handled_total", 'grpc_code=~"Unknown|'),
    ):
        metrics = {m["name"]: m for m in plan.object("AnalysisTemplate", name).inputs["spec"]["metrics"]}
        assert set(metrics) == {"error-ratio", "p99-latency"}
        version = f'job="{name}", rollouts_pod_template_hash="{{{{args.canary-hash}}}}"'
        for metric, bar in ((metrics["error-ratio"], ratio), (metrics["p99-latency"], p99)):
            query = metric["provider"]["prometheus"]["query"]
            assert version in query and 'namespace="products"' in query
            assert metric["provider"]["prometheus"]["address"] == (
                "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
            )
            assert metric["successCondition"].endswith(f"result[0] <= {bar}")
            assert metric["count"] == CANARY_STEPS[profile]["measurements"]
        assert answers in metrics["error-ratio"]["provider"]["prometheus"]["query"]
        assert failures in metrics["error-ratio"]["provider"]["prometheus"]["query"]
        assert "histogram_quantile(0.99" in metrics["p99-latency"]["provider"]["prometheus"]["query"]


def test_each_versions_series_carry_its_pod_template_hash(plan_for: Callable[..., Plan]) -> None:
    plan = plan_for("local", "dev")
    for name in WORKLOADS:
        monitor = plan.object("ServiceMonitor", name).inputs["spec"]
        assert monitor["podTargetLabels"] == ["rollouts-pod-template-hash"]


def test_up_waits_for_each_release_where_pulumi_delivers_and_not_where_argo_cd_does(
    plan_for: Callable[..., Plan],
) -> None:
    direct = _outcomes(plan_for("gcp", "prod"))
    assert sorted(o["name"] for o in direct) == sorted(WORKLOADS)
    for outcome in direct:
        assert outcome["namespace"] == "products"
        assert outcome["timeout_seconds"] == 3 * (60 + 60 * 5) + 600
    gitops = plan_for("gcp", "prod", delivery="argocd", gitopsRepoUrl="https://git.example.com/platform.git")
    assert not _outcomes(gitops)
    kinds = {(k["group"], k["kind"]) for k in gitops.object("AppProject", "product-service").inputs["spec"][
        "namespaceResourceWhitelist"
    ]}  # fmt: skip
    assert ("argoproj.io", "Rollout") in kinds and ("apps", "Deployment") not in kinds


def test_the_wait_is_told_the_cluster_without_its_credentials_leaving_the_secret(
    plan_for: Callable[..., Plan],
) -> None:
    plan = plan_for("aws", "prod")
    [resource, *_] = [r for r in plan.resources if r.type == DYNAMIC]
    assert resource.is_secret(("kubeconfig",))


def test_without_argo_rollouts_the_servers_are_deployments_with_a_rolling_update(
    plan_for: Callable[..., Plan],
) -> None:
    plan = plan_for("local", "dev", addons=["kube-prometheus-stack", "jaeger", "argo-cd", "traefik"])
    assert not plan.objects("Rollout") and not plan.objects("AnalysisTemplate") and not _outcomes(plan)
    for name in WORKLOADS:
        deployment = plan.object("Deployment", name)
        assert deployment.inputs["spec"]["strategy"]["type"] == "RollingUpdate"
        assert deployment.metadata["annotations"] == {"pulumi.com/patchForce": "true"}
        assert plan.object("HorizontalPodAutoscaler", name).inputs["spec"]["scaleTargetRef"]["kind"] == (
            "Deployment"
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"addons": ["argo-rollouts", "traefik"]},
            "platform:addons lists argo-rollouts without kube-prometheus-stack",
        ),
        (
            {"canaryMaxErrorRatio": "5%"},
            "platform:canaryMaxErrorRatio must be a number from 0 to 1 (got '5%')",
        ),
        (
            {"canaryMaxP99Seconds": "0"},
            "platform:canaryMaxP99Seconds must be a number of seconds from 0.001 to 60 (got '0')",
        ),
    ],
)
def test_a_wrong_canary_setting_stops_the_program_naming_the_key(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        run_plan("dev", cloud="local", overrides=overrides)
    assert str(raised.value).startswith(message)


def test_the_wait_allows_every_steps_analysis_and_ten_minutes_for_the_pods() -> None:
    dev = Canary(**CANARY_STEPS["dev"], max_error_ratio=0.05, max_p99_seconds=1)
    assert outcome_timeout_seconds(dev) == 60 + 30 * 3 + 600


def _outcomes(plan: Plan) -> list[dict[str, Any]]:
    return [r.inputs for r in plan.resources if r.type == DYNAMIC]
