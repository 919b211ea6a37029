"""k8s-helm-release-bounded(-dev): every component of every pinned chart bounded and hardened, checked
on the values the program really passes (its offline plans), and on those values made unsafe."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cluster import charts
from plan import Plan, PlannedResource
from policy_harness import DELETE, UNKNOWN, Engine, changed, of
from program_plans import CLOUDS, PROFILES, plan_of

from policies import gate
from policies.rules import helm

RULES = {"k8s-helm-release-bounded", "k8s-helm-release-bounded-dev"}
RELEASE = "kubernetes:helm.sh/v3:Release"


def release_of(plan: Plan, name: str) -> PlannedResource:
    return next(r for r in plan.of_type(RELEASE) if r.name == name)


def with_release(plan: Plan, name: str, *changes: tuple[str, Any]) -> list[PlannedResource]:
    """The plan's resources with the release `name` changed (inputs and outputs alike)."""
    target = release_of(plan, name)

    def edit(r: PlannedResource) -> PlannedResource:
        outputs = changed(r.outputs, *changes) if r.outputs else r.outputs
        return dataclasses.replace(r, inputs=changed(r.inputs, *changes), outputs=outputs)

    return [edit(r) if r is target else r for r in plan.resources]


def findings(resources: Any, environment: str) -> list[tuple[str, str, str]]:
    return sorted(
        (v.policy, v.level, v.message) for v in gate.evaluate(resources, environment) if v.policy in RULES
    )


def test_the_rule_has_read_every_chart_the_program_pins_at_its_pinned_version() -> None:
    known = helm.chart_versions()
    for chart in charts.ALL:
        assert chart.version in known.get(chart.name, ()), (
            f"{chart.name} {chart.version}: re-read values.yaml"
        )


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_add_on_the_program_installs_is_bounded_and_hardened(cloud: str, profile: str) -> None:
    assert findings(plan_of(cloud, profile), profile) == []


@pytest.mark.parametrize(
    ("environment", "rule", "level"),
    [("prod", "k8s-helm-release-bounded", "mandatory"), ("dev", "k8s-helm-release-bounded-dev", "advisory")],
)
def test_a_component_without_a_memory_limit_is_mandatory_in_prod_and_advisory_in_dev(
    environment: str, rule: str, level: str
) -> None:
    plan = plan_of("aws", environment)
    resources = with_release(
        plan, "kube-prometheus-stack", ("values.grafana.resources.limits.memory", DELETE)
    )
    assert findings(resources, environment) == [
        (
            rule,
            level,
            "kube-prometheus-stack component 'grafana': grafana.resources sets no limits.memory",
        )
    ]


def test_a_component_left_to_the_charts_defaults_names_every_missing_setting() -> None:
    plan = plan_of("gcp", "prod")
    resources = with_release(
        plan,
        "argocd",
        ("values.repoServer.containerSecurityContext", DELETE),
        ("values.repoServer.resources", DELETE),
    )
    messages = [m for _, _, m in findings(resources, "prod")]
    assert (
        "argo-cd component 'repo-server': repoServer.resources sets no requests.cpu, requests.memory, limits.cpu, limits.memory"
        in messages
    )
    assert (
        "argo-cd component 'repo-server': repoServer.containerSecurityContext does not set runAsNonRoot: true, "
        "seccompProfile RuntimeDefault, allowPrivilegeEscalation: false, capabilities.drop [ALL], "
        "readOnlyRootFilesystem: true"
    ) in messages
    # The copyutil init container shares the repo server's securityContext: it is unhardened too.
    assert any(
        m.startswith("argo-cd component 'repo-server-copyutil': repoServer.containerSecurityContext")
        for m in messages
    )


def test_a_root_init_container_is_caught_once_the_chart_renders_it() -> None:
    plan = plan_of("aws", "prod")
    resources = with_release(plan, "kube-prometheus-stack", ("values.grafana.initChownData.enabled", True))
    messages = [m for _, _, m in findings(resources, "prod")]
    assert messages == [
        "kube-prometheus-stack component 'grafana-init-chown-data': grafana.initChownData.resources sets no "
        "requests.cpu, requests.memory, limits.cpu, limits.memory",
        "kube-prometheus-stack component 'grafana-init-chown-data': grafana.initChownData.securityContext does "
        "not set runAsNonRoot: true, seccompProfile RuntimeDefault, allowPrivilegeEscalation: false, "
        "capabilities.drop [ALL], "
        "readOnlyRootFilesystem: true",
    ]


def test_a_pod_level_setting_satisfies_what_the_container_leaves_out() -> None:
    plan = plan_of("local", "prod")
    resources = with_release(plan, "jaeger", ("values.jaeger.securityContext.seccompProfile", DELETE))
    assert findings(resources, "prod") == [], (
        "podSecurityContext.seccompProfile still applies to the container"
    )


def test_a_chart_version_the_rule_has_not_read_is_a_finding() -> None:
    plan = plan_of("local", "prod")
    resources = with_release(plan, "traefik", ("version", "99.0.0"))
    assert findings(resources, "prod") == [
        (
            "k8s-helm-release-bounded",
            "mandatory",
            "chart 'traefik' 99.0.0: the map of its components was read at 37.3.0; re-read its values.yaml "
            "at 99.0.0 and update policies/rules/helm.py",
        )
    ]


def test_a_chart_the_rule_does_not_know_is_a_finding_and_a_mirror_changes_nothing() -> None:
    plan = plan_of("local", "prod")
    unknown = with_release(plan, "traefik", ("chart", "ingress-nginx"))
    assert [m for _, _, m in findings(unknown, "prod")] == [
        "chart 'ingress-nginx' is not in this rule's map: read its values.yaml and add where each "
        "component's resources and securityContext live (policies/rules/helm.py)"
    ]
    mirrored = with_release(plan, "traefik", ("chart", "oci://registry.example.com/helm/traefik"))
    assert findings(mirrored, "prod") == []


def test_values_unknown_during_preview_are_not_passed_silently() -> None:
    values = release_of(plan_of("local", "prod"), "traefik").inputs["values"]
    props = {"chart": "traefik", "version": "37.3.0", "values": {**values, "resources": UNKNOWN}}
    [diagnostic] = of(Engine("prod").analyze(RELEASE, props), "k8s-helm-release-bounded")
    assert diagnostic.unverifiable


def test_prod_monitoring_without_volumes_fails_and_dev_may_go_without() -> None:
    changes = (
        ("values.prometheus.prometheusSpec.storageSpec", DELETE),
        ("values.grafana.persistence.enabled", False),
    )
    prod = with_release(plan_of("azure", "prod"), "kube-prometheus-stack", *changes)
    assert sorted(
        v.message for v in gate.evaluate(prod, "prod") if v.policy == "k8s-helm-monitoring-volumes"
    ) == [
        "grafana.persistence.enabled is not true in prod",
        "prometheus.prometheusSpec.storageSpec has no volumeClaimTemplate with a storage request in prod",
    ]
    dev = with_release(plan_of("azure", "dev"), "kube-prometheus-stack", *changes)
    assert not [v for v in gate.evaluate(dev, "dev") if v.policy == "k8s-helm-monitoring-volumes"]


def test_a_prod_alertmanager_with_only_the_null_receiver_is_advised_against() -> None:
    def advice(plan: Plan) -> list[str]:
        return [v.level for v in gate.evaluate(plan, "prod") if v.policy == "k8s-helm-alertmanager-receiver"]

    assert advice(plan_of("gcp", "prod")) == ["advisory"]
    assert (
        advice(plan_of("gcp", "prod", alertWebhookUrl="https://hooks.example.com/alerts/abcdefghijkl")) == []
    )
