"""The edge rules on the program's own plans: every Ingress behind per-client limits counted by the
client's address, and a Traefik that keeps that address and trusts no forwarded header from anyone."""

from __future__ import annotations

import dataclasses
from typing import Any

import policy_fixtures as fx
import pytest
from plan import Plan, PlannedResource
from policy_harness import DELETE, UNKNOWN, Engine, changed, of
from program_plans import CLOUDS, plan_of

from policies import gate

LIMITS = "k8s-ingress-per-client-limits"
CLIENT_ADDRESS = "k8s-ingress-controller-client-address"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
RELEASE = "kubernetes:helm.sh/v3:Release"
MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"


def edited(plan: Plan, type_: str, name: str, *changes: tuple[str, Any]) -> list[PlannedResource]:
    """The plan's resources with the one of `type_` whose metadata.name (or chart) is `name` changed."""

    def named(r: PlannedResource) -> bool:
        return r.type == type_ and name in (r.inputs.get("metadata", {}).get("name"), r.inputs.get("chart"))

    def edit(r: PlannedResource) -> PlannedResource:
        outputs = changed(r.outputs, *changes) if r.outputs else r.outputs
        return dataclasses.replace(r, inputs=changed(r.inputs, *changes), outputs=outputs)

    [target] = [r for r in plan.resources if named(r)]
    return [edit(r) if r is target else r for r in plan.resources]


def found(resources: list[PlannedResource], policy: str) -> list[str]:
    return [v.message for v in gate.evaluate(resources, "prod") if v.policy == policy]


def without_annotation(plan: Plan, ingress: str) -> list[PlannedResource]:
    """`ingress` without Traefik's middlewares annotation (a key `changed` cannot name: it has dots)."""
    resources = []
    for r in plan.resources:
        if r.type == INGRESS and r.inputs["metadata"]["name"] == ingress:
            strip = {**r.inputs["metadata"]["annotations"]}
            strip.pop(MIDDLEWARES)
            r = dataclasses.replace(
                r,
                inputs=changed(r.inputs, ("metadata.annotations", strip)),
                outputs=changed(r.outputs, ("metadata.annotations", strip)) if r.outputs else r.outputs,
            )
        resources.append(r)
    return resources


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_plan_keeps_the_client_address_and_limits_every_api_route(cloud: str) -> None:
    for profile in ("dev", "prod"):
        resources = plan_of(cloud, profile).resources
        assert found(resources, LIMITS) == [] and found(resources, CLIENT_ADDRESS) == []


@pytest.mark.parametrize("ingress", ["product-service", "product-service-grpc"])
def test_an_api_ingress_without_the_limits_fails(ingress: str) -> None:
    messages = found(without_annotation(plan_of("aws", "prod"), ingress), LIMITS)

    assert messages == [
        f"Ingress '{ingress}' sets no per-client limit of request rate: "
        "none of its Middlewares declared here has rateLimit",
        f"Ingress '{ingress}' sets no per-client limit of requests in flight: "
        "none of its Middlewares declared here has inFlightReq",
    ]


def test_an_in_flight_limit_counted_per_host_is_no_per_client_limit() -> None:
    resources = edited(
        plan_of("gcp", "prod"),
        MIDDLEWARE,
        "api-in-flight-limit",
        ("spec.inFlightReq.sourceCriterion", DELETE),
    )

    assert set(found(resources, LIMITS)) == {
        f"Ingress '{ingress}' sets no per-client limit of requests in flight: inFlightReq without "
        "sourceCriterion counts per request host, every client together"
        for ingress in ("product-service", "product-service-grpc")
    }


@pytest.mark.parametrize(
    ("strategy", "says"),
    [
        ({"depth": 1}, "rateLimit takes the client from X-Forwarded-For, which the client writes itself"),
        ({"excludedIPs": ["10.0.0.0/8"]}, "rateLimit takes the client from X-Forwarded-For"),
    ],
)
def test_a_rate_limit_keyed_on_x_forwarded_for_fails(strategy: dict[str, Any], says: str) -> None:
    resources = edited(
        plan_of("azure", "prod"),
        MIDDLEWARE,
        "api-rate-limit",
        ("spec.rateLimit.sourceCriterion", {"ipStrategy": strategy}),
    )

    messages = found(resources, LIMITS)
    assert len(messages) == 2 and all(says in m for m in messages), messages


def test_a_rate_limit_of_zero_is_no_limit() -> None:
    resources = edited(plan_of("local", "dev"), MIDDLEWARE, "api-rate-limit", ("spec.rateLimit.average", 0))

    assert any("rateLimit.average is 0, no limit" in m for m in found(resources, LIMITS))


def test_a_traefik_that_forwards_through_other_nodes_fails() -> None:
    resources = edited(
        plan_of("aws", "prod"), RELEASE, "traefik", ("values.service.spec.externalTrafficPolicy", "Cluster")
    )

    assert found(resources, CLIENT_ADDRESS) == [
        "service.spec.externalTrafficPolicy is Cluster: every client reaches Traefik with a node's address; "
        "set Local (or PROXY protocol from the load balancer on web and websecure)"
    ]


def test_proxy_protocol_from_listed_load_balancers_on_both_entry_points_keeps_the_address() -> None:
    """The other way to carry the client's address: an NLB's PROXY protocol v2, trusted from the VPC."""
    props = changed(
        fx.client_address_release(),
        ("values.service.spec.externalTrafficPolicy", "Cluster"),
        ("values.ports.web.proxyProtocol.trustedIPs", ["10.0.0.0/16"]),
        ("values.ports.websecure.proxyProtocol.trustedIPs", ["10.0.0.0/16"]),
    )
    assert of(Engine("prod").analyze(RELEASE, props), CLIENT_ADDRESS) == []
    only_web = changed(props, ("values.ports.websecure.proxyProtocol.trustedIPs", []))
    assert of(Engine("prod").analyze(RELEASE, only_web), CLIENT_ADDRESS)


def test_an_unknown_middlewares_annotation_is_unverifiable_not_a_pass() -> None:
    ingress = fx.ingress()
    ingress["metadata"]["annotations"] = {MIDDLEWARES: UNKNOWN}

    diagnostics = of(Engine("prod").analyze_stack([(INGRESS, "api", ingress)]), LIMITS)

    assert diagnostics and all(d.unverifiable for d in diagnostics), diagnostics
