"""The edge: per-client rate and in-flight limits on every route of the API, sized by profile and set
by stack config; the client's address kept up to Traefik on every cloud and trusted from no header; and
the service told which proxy may name the client in its logs."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster import charts
from config import ConfigError
from plan import Plan, PlannedResource, run_plan

PlanFor = Callable[..., Plan]
REPO = Path(__file__).resolve().parents[2]
TARGETS = [(cloud, profile) for cloud in ("aws", "gcp", "azure", "local") for profile in ("dev", "prod")]
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
RELEASE = "kubernetes:helm.sh/v3:Release"
ANNOTATION = "traefik.ingress.kubernetes.io/router.middlewares"
API_INGRESSES = ("product-service", "product-service-grpc")


@pytest.fixture(params=TARGETS, ids=[f"{c}-{p}" for c, p in TARGETS])
def plan(request: pytest.FixtureRequest, plan_for: PlanFor) -> Plan:
    cloud, profile = request.param
    return plan_for(cloud, profile)


def _limits(plan: Plan) -> dict[str, PlannedResource]:
    return {m.metadata["name"]: m for m in plan.of_type(MIDDLEWARE) if m.metadata["namespace"] == "products"}


def _traefik(plan: Plan) -> PlannedResource:
    [release] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == "traefik"]
    return release


# --- per-client limits ----------------------------------------------------------------------------------


def test_every_route_of_the_api_passes_the_rate_then_the_in_flight_limit(plan: Plan) -> None:
    limits = _limits(plan)
    assert set(limits) == {"api-rate-limit", "api-in-flight-limit"}
    for name in API_INGRESSES:
        ingress = plan.object("Ingress", name)
        assert ingress.metadata["annotations"][ANNOTATION] == (
            "products-api-rate-limit@kubernetescrd,products-api-in-flight-limit@kubernetescrd"
        )
        # Created after its Middlewares, which wait for Traefik's release (their CRD).
        assert {m.urn for m in limits.values()} <= set(ingress.dependencies)
    for middleware in limits.values():
        assert _traefik(plan).urn in middleware.dependencies


def test_the_limits_count_by_the_connections_own_address_never_a_header(plan: Plan) -> None:
    limits = _limits(plan)
    rate = limits["api-rate-limit"].inputs["spec"]["rateLimit"]
    in_flight = limits["api-in-flight-limit"].inputs["spec"]["inFlightReq"]
    # Without a sourceCriterion, inFlightReq counts per request host: every client together.
    for limit in (rate, in_flight):
        assert limit["sourceCriterion"] == {"ipStrategy": {"ipv6Subnet": 64}}
    assert rate["period"] == "1s"


@pytest.mark.parametrize(
    ("profile", "rate", "burst", "in_flight"),
    [("dev", 20, 40, 4), ("prod", 50, 100, 6)],
)
def test_the_limits_follow_the_profile(
    plan_for: PlanFor, profile: str, rate: int, burst: int, in_flight: int
) -> None:
    limits = _limits(plan_for("aws", profile))
    spec = limits["api-rate-limit"].inputs["spec"]["rateLimit"]
    assert (spec["average"], spec["burst"]) == (rate, burst)
    assert limits["api-in-flight-limit"].inputs["spec"]["inFlightReq"]["amount"] == in_flight


def test_a_stack_sets_each_limit_on_its_own(plan_for: PlanFor) -> None:
    limits = _limits(plan_for("gcp", "prod", apiRateLimit="400", apiRateBurst="1000", apiInFlightLimit="32"))
    spec = limits["api-rate-limit"].inputs["spec"]["rateLimit"]
    assert (spec["average"], spec["burst"]) == (400, 1000)
    assert limits["api-in-flight-limit"].inputs["spec"]["inFlightReq"]["amount"] == 32


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("apiRateLimit", "0", "1 to 100000"),
        ("apiRateBurst", "lots", "1 to 100000"),
        ("apiInFlightLimit", "-3", "1 to 10000"),
        ("apiInFlightLimit", "20000", "1 to 10000"),
    ],
)
def test_a_limit_that_is_no_whole_number_in_range_stops_with_one_sentence(
    key: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        run_plan("prod", cloud="aws", overrides={key: value})
    assert str(caught.value) == f"platform:{key} must be a whole number from {allowed} (got '{value}')"


def test_without_the_platforms_traefik_there_is_no_middleware_to_name(plan_for: PlanFor) -> None:
    plan = plan_for("local", "dev", addons=["kube-prometheus-stack", "jaeger", "argo-cd"])
    assert plan.of_type(MIDDLEWARE) == [] and plan.objects("Ingress") == []


# --- the client's address -------------------------------------------------------------------------------


def test_the_load_balancer_hands_traefik_the_clients_own_address(plan: Plan) -> None:
    """Also without platform:adminAllowedCidrs: the limits count by it on every stack."""
    values = _traefik(plan).inputs["values"]
    assert values["service"]["spec"] == {"externalTrafficPolicy": "Local"}
    # No proxy protocol: an L4 load balancer passes the connection through.
    for entry_point in ("web", "websecure"):
        ports = values["ports"][entry_point]
        assert ports["forwardedHeaders"] == {"trustedIPs": [], "insecure": False}
        assert ports["proxyProtocol"] == {"trustedIPs": [], "insecure": False}


def test_traefik_spreads_over_nodes_and_accepts_until_the_load_balancer_has_noticed(plan: Plan) -> None:
    values = _traefik(plan).inputs["values"]
    spread = values["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    # The chart's own pod labels (traefik.labelselector), or the constraints select nothing.
    assert all(
        c["labelSelector"]["matchLabels"]
        == {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-ingress"}
        for c in spread
    )
    for entry_point in ("web", "websecure"):
        life_cycle = values["ports"][entry_point]["transport"]["lifeCycle"]
        # AWS's NLB notices a node without Traefik after 2 health checks 10 s apart, GKE's after up to 24 s.
        assert life_cycle == {"requestAcceptGraceTimeout": "30s"}


def test_the_service_takes_the_client_from_x_forwarded_for_only_behind_its_network_policy(plan: Plan) -> None:
    [settings] = [c for c in plan.objects("ConfigMap", "products") if c.name == "settings"]
    assert settings.inputs["data"]["FORWARDED_ALLOW_IPS"] == "*"
    # Trusting every peer is safe only while nothing but the ingress controller (and Prometheus, which
    # sends no X-Forwarded-For) reaches the REST and gRPC ports.
    rules = [
        rule
        for p in plan.objects("NetworkPolicy", "products")
        for rule in p.inputs["spec"].get("ingress", [])
    ]
    assert rules and all(rule.get("from") for rule in rules), "a rule without `from` admits every pod"
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in rules
        for peer in rule["from"]
    }
    assert sources <= {"ingress", "monitoring"}


# --- the e2e tier's placeholder charts -------------------------------------------------------------------


def test_the_placeholder_charts_carry_a_crd_for_every_custom_resource_the_dev_stack_declares(
    plan_for: PlanFor,
) -> None:
    """Offline the e2e tier installs placeholders: a custom resource whose CRD none of them carries (the
    API's Middlewares need Traefik's) fails its `make up`."""
    spec = importlib.util.spec_from_file_location(
        "placeholder_charts", REPO / "harness/e2e/placeholder_charts.py"
    )
    assert spec is not None and spec.loader is not None
    placeholders = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(placeholders)
    served = set()
    for chart in charts.ALL:
        with tarfile.open(fileobj=io.BytesIO(placeholders.placeholder(chart))) as archive:
            for member in archive.getmembers():
                if "/crds/" in member.name:
                    crd: dict[str, Any] = json.load(archive.extractfile(member))  # type: ignore[arg-type]
                    names = crd["spec"]["names"]
                    served |= {
                        f"{crd['spec']['group']}/{v['name']}:{names['kind']}" for v in crd["spec"]["versions"]
                    }
    declared = _custom_kinds(plan_for("local", "dev"))
    assert "traefik.io/v1alpha1:Middleware" in declared
    assert declared <= served


def _custom_kinds(plan: Plan) -> set[str]:
    """`group/version:Kind` of every custom resource: a Kubernetes type whose group is neither built in
    (no dot, or `*.k8s.io`) nor the provider's Helm Release."""
    kinds = set()
    for r in plan.resources:
        provider, _, rest = r.type.partition(":")
        group_version, _, kind = rest.rpartition(":")
        group = group_version.split("/")[0]
        if provider == "kubernetes" and "." in group and not group.endswith(".k8s.io") and group != "helm.sh":
            kinds.add(f"{group_version}:{kind}")
    return kinds
