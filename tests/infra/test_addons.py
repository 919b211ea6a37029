"""The cluster add-ons: where their charts come from, what they keep, whom they alert, who may reach
them, and how they behave on a local cluster and on a managed one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cluster import charts
from config import ConfigError
from plan import Plan, PlannedResource, run_plan

PlanFor = Callable[..., Plan]
RELEASE = "kubernetes:helm.sh/v3:Release"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
WEBHOOK = "https://hooks.example.com/services/T000/B000/abcdefghijklmnop"


def _release(plan: Plan, chart: str) -> PlannedResource:
    [release] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"].rsplit("/", 1)[-1] == chart]
    return release


def _values(plan: Plan, chart: str) -> dict[str, Any]:
    return _release(plan, chart).inputs["values"]


def _admin_allowlists(plan: Plan) -> list[PlannedResource]:
    """The admin UIs' Middlewares (the API's own limits are Middlewares too: test_edge.py)."""
    return [m for m in plan.of_type(MIDDLEWARE) if m.metadata["name"] == "admin-allowlist"]


# --- where the charts come from ---------------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["aws", "local"])
def test_every_release_installs_a_pinned_chart_of_charts_py(plan_for: PlanFor, cloud: str) -> None:
    pinned = {c.name: c for c in charts.ALL}
    for release in plan_for(cloud, "prod").of_type(RELEASE):
        chart = pinned[release.inputs["chart"]]
        assert (release.inputs["version"], release.inputs["repositoryOpts"]["repo"]) == (
            chart.version,
            chart.repo,
        )


def test_a_chart_repository_serves_every_release_under_the_charts_own_names(plan_for: PlanFor) -> None:
    mirror = "https://charts.mirror.example.com/platform"
    plan = plan_for("aws", "prod", chartRepository=mirror + "/")
    releases = plan.of_type(RELEASE)
    assert {r.inputs["chart"] for r in releases} >= {"kube-prometheus-stack", "jaeger", "argo-cd", "traefik"}
    for release in releases:
        assert release.inputs["repositoryOpts"] == {"repo": mirror}, release.name


def test_an_oci_chart_repository_names_each_chart_in_its_reference(plan_for: PlanFor) -> None:
    plan = plan_for("local", "dev", chartRepository="oci://registry.example.com/helm")
    for release in plan.of_type(RELEASE):
        assert release.inputs["chart"].startswith("oci://registry.example.com/helm/"), release.name
        assert "repositoryOpts" not in release.inputs, release.name
    assert _release(plan, "jaeger").inputs["chart"] == "oci://registry.example.com/helm/jaeger"


@pytest.mark.parametrize("value", ["charts.example.com", "ftp://charts.example.com", "https://a b", "oci://"])
def test_a_chart_repository_that_is_no_url_stops_with_one_sentence(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", cloud="local", overrides={"chartRepository": value})
    assert str(caught.value).startswith("platform:chartRepository must be a Helm repository URL")
    assert f"(got '{value}')" in str(caught.value)


# --- tracing ------------------------------------------------------------------------------------------


def test_jaeger_values_use_the_pinned_charts_keys_and_the_service_it_names(plan_for: PlanFor) -> None:
    plan = plan_for("local", "dev")
    values = _values(plan, "jaeger")
    assert _release(plan, "jaeger").inputs["version"] == "4.4.7"
    assert set(values) == {"jaeger"}, "4.4.7 has no allInOne, provisionDataStore or storage for all-in-one"
    assert values["jaeger"]["resources"]["limits"]["memory"]
    # 4.4.7's one Service is named after the release: the endpoint and the UI URL point at it.
    service = f"{_release(plan, 'jaeger').inputs['name']}.tracing.svc.cluster.local"
    [settings] = [c for c in plan.objects("ConfigMap", "products") if "OTEL_SERVICE_NAME" in c.inputs["data"]]
    assert settings.inputs["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{service}:4318"
    assert plan.outputs["jaeger_url"] == f"http://{service}:16686"


# --- the local target ---------------------------------------------------------------------------------


def test_on_a_local_cluster_nothing_waits_for_a_load_balancer_address(plan_for: PlanFor) -> None:
    local = plan_for("local", "dev")
    ingress = local.object("Ingress", "product-service")
    assert ingress.metadata["annotations"]["pulumi.com/skipAwait"] == "true"
    assert _release(local, "traefik").inputs["skipAwait"] is True


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_on_a_cloud_the_ingress_waits_for_its_load_balancer(plan_for: PlanFor, cloud: str) -> None:
    plan = plan_for(cloud, "dev")
    assert "pulumi.com/skipAwait" not in plan.object("Ingress", "product-service").metadata["annotations"]
    assert _release(plan, "traefik").inputs.get("skipAwait") is not True


# --- monitoring data, CRDs, control plane -------------------------------------------------------------


def _volume_sizes(values: dict[str, Any]) -> tuple[str, str, str]:
    prometheus = values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    alertmanager = values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]
    return (
        prometheus["resources"]["requests"]["storage"],
        alertmanager["resources"]["requests"]["storage"],
        values["grafana"]["persistence"]["size"],
    )


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_prometheus_alertmanager_and_grafana_keep_their_data_on_volumes(
    plan_for: PlanFor, profile: str
) -> None:
    values = _values(plan_for("gcp", profile), "kube-prometheus-stack")
    assert _volume_sizes(values) == ("50Gi", "5Gi", "10Gi")
    grafana = values["grafana"]
    assert grafana["persistence"]["enabled"] is True and grafana["deploymentStrategy"] == {"type": "Recreate"}
    # Prometheus stops keeping data before its volume is full.
    assert values["prometheus"]["prometheusSpec"]["retentionSize"] == "40GiB"


def test_switching_a_live_stacks_profile_leaves_every_volume_claim_as_it_is(plan_for: PlanFor) -> None:
    # A claim cannot shrink, and grows only where the StorageClass allows expansion (kind's does not):
    # a size that followed the profile failed the chart's upgrade and left the Release `failed`.
    dev, prod = (_values(plan_for("local", profile), "kube-prometheus-stack") for profile in ("dev", "prod"))
    assert _volume_sizes(dev) == _volume_sizes(prod)


def test_the_volumes_use_the_clusters_storage_class_where_the_cloud_names_one(plan_for: PlanFor) -> None:
    aws = _values(plan_for("aws", "prod"), "kube-prometheus-stack")
    gcp = _values(plan_for("gcp", "prod"), "kube-prometheus-stack")
    claim = aws["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == aws["grafana"]["persistence"]["storageClassName"] != ""
    assert "storageClassName" not in gcp["grafana"]["persistence"], "GKE: the cluster's default class"


def test_a_chart_bump_upgrades_the_monitoring_crds_through_the_charts_upgrade_job(plan_for: PlanFor) -> None:
    job = _values(plan_for("local", "dev"), "kube-prometheus-stack")["crds"]["upgradeJob"]
    assert job["enabled"] is True
    assert job["image"]["busybox"]["tag"] != "latest"
    assert job["resources"]["limits"]["memory"] and job["containerSecurityContext"]["readOnlyRootFilesystem"]


CONTROL_PLANE = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_managed_clusters_get_no_monitors_of_a_control_plane_they_do_not_expose(
    plan_for: PlanFor, cloud: str
) -> None:
    values = _values(plan_for(cloud, "prod"), "kube-prometheus-stack")
    assert all(values[component] == {"enabled": False} for component in CONTROL_PLANE)
    rules = values["defaultRules"]["rules"]
    assert not any(rules[r] for r in ("etcd", "kubeControllerManager", "kubeSchedulerAlerting", "kubeProxy"))


def test_a_local_cluster_keeps_the_control_plane_monitors(plan_for: PlanFor) -> None:
    values = _values(plan_for("local", "dev"), "kube-prometheus-stack")
    assert not set(CONTROL_PLANE) & set(values) and "defaultRules" not in values


# --- alerts --------------------------------------------------------------------------------------------


def test_without_a_receiver_alerts_stay_on_the_null_receiver_and_up_says_so(plan_for: PlanFor) -> None:
    plan = plan_for("aws", "prod")
    alertmanager = _values(plan, "kube-prometheus-stack")["alertmanager"]
    assert "config" not in alertmanager and alertmanager["alertmanagerSpec"]["secrets"] == []
    assert any("platform:alertWebhookUrl is not set" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("receiver", "configs", "field"),
    [("webhook", "webhook_configs", "url_file"), ("slack", "slack_configs", "api_url_file")],
)
def test_a_webhook_receiver_reads_its_url_from_a_secret_never_from_the_values(
    plan_for: PlanFor, receiver: str, configs: str, field: str
) -> None:
    plan = plan_for("aws", "prod", alertWebhookUrl=WEBHOOK, alertReceiver=receiver)
    release = _release(plan, "kube-prometheus-stack")
    alertmanager = release.inputs["values"]["alertmanager"]
    secret = plan.object("Secret", "alertmanager-receiver")
    assert secret.is_secret(("stringData",)) and secret.inputs["stringData"]["url"] == WEBHOOK
    assert alertmanager["alertmanagerSpec"]["secrets"] == ["alertmanager-receiver"]
    config = alertmanager["config"]
    assert config["route"]["receiver"] == "platform"
    [platform] = [r for r in config["receivers"] if r["name"] == "platform"]
    assert platform[configs] == [
        {field: "/etc/alertmanager/secrets/alertmanager-receiver/url", "send_resolved": True}
    ]
    assert WEBHOOK not in repr(release.inputs)
    assert not any("alertWebhookUrl" in w for w in plan.warnings)


def test_a_receiver_url_that_is_not_https_stops_without_repeating_it() -> None:
    with pytest.raises(ConfigError) as caught:
        run_plan("prod", cloud="aws", overrides={"alertWebhookUrl": "http://hooks.example.com/x"})
    assert str(caught.value) == (
        "platform:alertWebhookUrl must be an https:// URL, set with pulumi config set --secret"
    )


# --- who may reach Grafana and Argo CD ------------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["aws", "local"])
def test_grafana_and_argocd_are_not_published_by_default(plan_for: PlanFor, cloud: str) -> None:
    plan = plan_for(cloud, "prod")
    assert _values(plan, "kube-prometheus-stack")["grafana"]["ingress"] == {"enabled": False}
    assert _values(plan, "argo-cd")["server"]["ingress"] == {"enabled": False}
    assert _admin_allowlists(plan) == []
    assert (
        "kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana" in plan.outputs["grafana_url"]
    )
    assert "kubectl -n argocd port-forward svc/argocd-server" in plan.outputs["argocd_url"]


def test_allowed_cidrs_publish_them_behind_an_allow_list_of_exactly_those_ranges(plan_for: PlanFor) -> None:
    cidrs = ["198.51.100.0/24", "203.0.113.7/32"]
    plan = plan_for("aws", "prod", adminAllowedCidrs=cidrs)
    middlewares = {m.metadata["namespace"]: m.inputs for m in _admin_allowlists(plan)}
    assert set(middlewares) == {"monitoring", "argocd"}
    assert all(m["spec"] == {"ipAllowList": {"sourceRange": cidrs}} for m in middlewares.values())
    # Their CRD comes with the Traefik chart, and their namespaces must exist first.
    for middleware in _admin_allowlists(plan):
        namespace = plan.object("Namespace", middleware.metadata["namespace"])
        assert {_release(plan, "traefik").urn, namespace.urn} <= set(middleware.dependencies)
    grafana = _values(plan, "kube-prometheus-stack")["grafana"]["ingress"]
    argocd = _values(plan, "argo-cd")["server"]["ingress"]
    key = "traefik.ingress.kubernetes.io/router.middlewares"
    assert grafana["enabled"] and grafana["annotations"] == {key: "monitoring-admin-allowlist@kubernetescrd"}
    assert argocd["enabled"] and argocd["annotations"] == {key: "argocd-admin-allowlist@kubernetescrd"}
    # The allow-list sees client addresses only if the load balancer keeps them.
    assert _values(plan, "traefik")["service"]["spec"] == {"externalTrafficPolicy": "Local"}
    assert plan.outputs["grafana_url"].startswith("https://grafana.")


def test_the_whole_internet_is_no_allowed_range() -> None:
    with pytest.raises(ConfigError) as caught:
        run_plan("prod", cloud="aws", overrides={"adminAllowedCidrs": '["0.0.0.0/0"]'})
    assert "platform:adminAllowedCidrs must be a list of CIDRs narrower than /0" in str(caught.value)


# --- platform:addons ----------------------------------------------------------------------------------


def test_a_stack_without_the_optional_addons_installs_none_of_them_and_nothing_that_needs_them(
    plan_for: PlanFor,
) -> None:
    plan = plan_for("aws", "prod", addons=[], domain=None)
    # The cloud's own needs stay: EKS has no metrics-server and needs cluster-autoscaler.
    assert {r.name for r in plan.of_type(RELEASE)} == {"metrics-server", "cluster-autoscaler"}
    assert not plan.objects("Ingress") and not plan.objects("ServiceMonitor")
    assert not plan.objects("PrometheusRule") and not plan.objects("Middleware")
    namespaces = {n.metadata["name"] for n in plan.objects("Namespace")}
    assert not namespaces & {"monitoring", "tracing", "argocd", "ingress"}
    settings = next(c for c in plan.objects("ConfigMap") if "OTEL_SERVICE_NAME" in c.inputs.get("data", {}))
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in settings.inputs["data"], (
        "no Jaeger: the service traces nothing"
    )
    assert set(plan.outputs) >= {"api_url"} and not set(plan.outputs) & {
        "grafana_url",
        "jaeger_url",
        "argocd_url",
    }
    assert "port-forward svc/product-service" in plan.outputs["api_url"]


def test_each_addon_left_out_takes_only_what_depends_on_it(plan_for: PlanFor) -> None:
    plan = plan_for("local", "dev", addons=["jaeger", "argo-cd", "traefik"])
    assert {r.name for r in plan.of_type(RELEASE)} == {"jaeger", "argocd", "traefik", "metrics-server"}
    assert not plan.objects("ServiceMonitor") and not plan.objects("PrometheusRule")
    # Traefik's own ServiceMonitor needs the Prometheus operator's CRDs.
    assert _values(plan, "traefik")["metrics"]["prometheus"]["serviceMonitor"] == {"enabled": False}
    assert {i.metadata["name"] for i in plan.objects("Ingress")} == {
        "product-service",
        "product-service-grpc",
    }
    assert plan.outputs["api_url"] == "http://api.dev.localtest.me"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"addons": ["prometheus"]},
            "platform:addons must list add-ons from kube-prometheus-stack, jaeger, argo-cd, argo-rollouts, traefik (got 'prometheus')",
        ),
        ({"addons": "traefik"}, "platform:addons must be a list of add-ons"),
        (
            {
                "addons": ["traefik"],
                "delivery": "argocd",
                "gitopsRepoUrl": "https://git.example.com/deploy.git",
            },
            "platform:delivery needs the argo-cd add-on, which platform:addons leaves out",
        ),
        (
            {"addons": ["argo-cd"], "adminAllowedCidrs": ["203.0.113.0/24"]},
            "platform:adminAllowedCidrs needs the traefik add-on, which platform:addons leaves out",
        ),
        (
            {"addons": ["jaeger"], "tlsSecretName": "api-tls"},
            "platform:tlsSecretName needs the traefik add-on, which platform:addons leaves out",
        ),
    ],
)
def test_an_unknown_or_inconsistent_addons_value_stops_the_program_naming_the_key(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        run_plan("dev", cloud="local", overrides=overrides)
    assert str(raised.value).startswith(message)
