"""`make charts` offline: the audit's judgement on small charts these tests write, package with the
real Helm and serve as a chart repository on 127.0.0.1 (the real charts' repositories cannot be
reached here; `make charts` runs against them where they can)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import chart_audit
import pytest
import yaml
from chart_audit import Release, StackUnderAudit
from cluster.charts import ChartException, ChartPermission, ChartService
from served import served

HELM = chart_audit.HELM
pytestmark = pytest.mark.go_tool
SECURE_CONTAINER = {
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
    "securityContext": {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def deployment(name: str, *, init: dict[str, Any] | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": "main", "image": "example:1", **SECURE_CONTAINER}]}
    if init is not None:
        pod["initContainers"] = [{"name": "setup", "image": "example:1", **init}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }


def service(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]},
    }


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {}}}],
        },
    }


def gadget_crd() -> dict[str, Any]:
    crd = widget_crd()
    crd["metadata"]["name"] = "gadgets.example.com"
    crd["spec"]["names"] = {"kind": "Gadget", "plural": "gadgets"}
    return crd


def cluster_role(*rules: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "scaler"},
        "rules": list(rules),
    }


NODES = {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}
SLICES = {"apiGroups": ["resource.k8s.io"], "resources": ["resourceslices"], "verbs": ["list", "watch"]}

# Charts of the test repository: name -> {version: {template file: text}}.
CHARTS: dict[str, dict[str, dict[str, str]]] = {
    "good": {
        "1.0.0": {
            "templates/app.yaml": json.dumps(deployment("good")),
            "templates/svc.yaml": json.dumps(service("good", 80)),
            # A bare `=` in an enum, as CRDs carry (YAML 1.1 would read it as its value tag).
            "crds/widgets.yaml": json.dumps(widget_crd()).replace(
                '"openAPIV3Schema": {}',
                '"openAPIV3Schema": {"type": "object", "properties": {"op": {"type": "string", "enum": [=, "!="]}}}',
            ),
        }
    },
    "strict": {
        "1.0.0": {
            "templates/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\n"
            'data: {size: "{{ required "strict needs .Values.size" .Values.size }}"}\n'
        }
    },
    "scaler": {
        "1.0.0": {"templates/rbac.yaml": json.dumps(cluster_role(NODES))},
        "1.1.0": {"templates/rbac.yaml": json.dumps(cluster_role(NODES, SLICES))},
    },
    # Refuses to render until another chart's API is there (as Traefik's ServiceMonitor needs the operator's).
    "needy": {
        "1.0.0": {
            "templates/needs.yaml": '{{- if not (.Capabilities.APIVersions.Has "example.com/v1") }}'
            '{{- fail "deploy example.com/v1 first" }}{{- end }}\n',
            "crds/gadgets.yaml": json.dumps(gadget_crd()),
        }
    },
    "leaky": {
        "1.0.0": {
            "templates/app.yaml": json.dumps(deployment("leaky", init={"resources": {}})),
            "templates/svc.yaml": json.dumps(service("leaky", 8080)),
        }
    },
}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: `make test` builds it (make .tools/bin/helm)")
    root = tmp_path_factory.mktemp("repo")
    for name, versions in CHARTS.items():
        for version, files in versions.items():
            source = tmp_path_factory.mktemp("src") / name
            for path, text in {
                "Chart.yaml": yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version}),
                **files,
            }.items():
                (source / path).parent.mkdir(parents=True, exist_ok=True)
                (source / path).write_text(text)
            _helm("package", str(source), "--destination", str(root))
    _helm("repo", "index", str(root))
    with served(root) as url:
        yield url


def stack(
    repository: str,
    *releases: tuple[str, str, dict[str, Any]],
    custom_kinds: set[tuple[str, str]] | None = None,
    services: list[ChartService] | None = None,
) -> StackUnderAudit:
    return StackUnderAudit(
        where="dev-local",
        releases=[
            Release(chart, "tools", chart, version, repository, json.dumps(values), "1.36")
            for chart, version, values in releases
        ],
        custom_kinds=custom_kinds or set(),
        services=services or [],
    )


def test_a_chart_that_is_bounded_renders_its_named_service_and_crds_passes(repository: str) -> None:
    audited = stack(
        repository,
        ("good", "1.0.0", {}),
        custom_kinds={("example.com/v1", "Widget")},
        services=[ChartService("good", "tools", "good", (80,), "a test")],
    )
    assert chart_audit.audit([audited], ()) == []


def test_a_pinned_version_the_repository_does_not_serve_is_one_line(repository: str) -> None:
    [line] = chart_audit.audit([stack(repository, ("good", "1.0.1", {}))], ())
    assert line.startswith(f"good 1.0.1: cannot be pulled from {repository}: ")
    assert "1.0.1" in line.split(": ", 2)[2]


def test_a_chart_that_does_not_render_with_the_programs_values_is_one_line(repository: str) -> None:
    [line] = chart_audit.audit([stack(repository, ("strict", "1.0.0", {}))], ())
    assert line.startswith("strict 1.0.0: does not render with the program's values: ")
    assert "strict needs .Values.size" in line
    assert chart_audit.audit([stack(repository, ("strict", "1.0.0", {"size": 1}))], ()) == []


def test_an_unbounded_init_container_is_named_with_what_it_lacks(repository: str) -> None:
    [line] = chart_audit.audit([stack(repository, ("leaky", "1.0.0", {}))], ())
    assert line.startswith("leaky 1.0.0: Deployment tools/leaky, init container setup: ")
    lacks = line.rsplit(": ", 1)[1].split(", ")
    assert lacks == [
        "memory limit",
        "cpu request",
        "memory request",
        "runAsNonRoot",
        "allowPrivilegeEscalation",
        "capabilities.drop ALL",
        "seccompProfile",
    ]


def test_an_exception_excuses_only_the_findings_it_names(repository: str) -> None:
    excused = ChartException(
        "leaky",
        "Deployment/leaky",
        "setup",
        frozenset({"memory limit", "cpu request", "memory request"}),
        "test",
    )
    [line] = chart_audit.audit([stack(repository, ("leaky", "1.0.0", {}))], exceptions=[excused])
    assert line.endswith(
        "init container setup: runAsNonRoot, allowPrivilegeEscalation, capabilities.drop ALL, seccompProfile"
    )


def test_rbac_without_a_permission_the_charts_workload_needs_is_one_line(repository: str) -> None:
    needs = [
        ChartPermission(
            "scaler", "resource.k8s.io", ("resourceslices",), ("list", "watch"), "it watches them"
        )
    ]
    assert chart_audit.audit([stack(repository, ("scaler", "1.0.0", {}))], permissions=needs) == [
        "scaler 1.0.0: its RBAC does not grant list resourceslices, watch resourceslices in resource.k8s.io "
        "(it watches them)"
    ]
    assert chart_audit.audit([stack(repository, ("scaler", "1.1.0", {}))], permissions=needs) == []


def test_a_named_service_the_chart_does_not_render_or_renders_without_its_port_is_one_line(
    repository: str,
) -> None:
    named = [
        ChartService("good", "tools", "good-query", (80,), "the query_url output"),
        ChartService("good", "tools", "good", (80, 443), "the good_url output"),
    ]
    assert chart_audit.audit([stack(repository, ("good", "1.0.0", {}), services=named)], ()) == [
        "good: Service tools/good has no port 443 (the good_url output)",
        "good: renders no Service tools/good-query (the query_url output)",
    ]


def test_a_custom_resource_whose_crd_no_chart_installs_is_one_line(repository: str) -> None:
    audited = stack(repository, ("good", "1.0.0", {}), custom_kinds={("example.com/v2", "Widget")})
    assert chart_audit.audit([audited], ()) == [
        "no chart installs the CRD of Widget (example.com/v2), a kind the program declares"
    ]


def test_the_crds_of_a_chart_that_renders_only_beside_another_are_known(repository: str) -> None:
    audited = stack(
        repository,
        ("good", "1.0.0", {}),
        ("needy", "1.0.0", {}),
        custom_kinds={("example.com/v1", "Widget"), ("example.com/v1", "Gadget")},
    )
    assert chart_audit.audit([audited], ()) == []


def test_a_problem_found_in_some_plans_only_names_them(repository: str) -> None:
    ok = stack(repository, ("strict", "1.0.0", {"size": 1}))
    broken = stack(repository, ("strict", "1.0.0", {}))
    broken.where = "prod-aws"
    [line] = chart_audit.audit([ok, broken], ())
    assert line.endswith("  [prod-aws]")


def test_the_audit_of_the_programs_pins_reads_every_release_service_and_custom_kind_of_a_plan() -> None:
    from plan import run_plan

    audited = chart_audit.from_plan(
        run_plan("dev", "local", {"chartRepository": "https://charts.example.com"})
    )
    assert {r.chart for r in audited.releases} == {
        "kube-prometheus-stack",
        "jaeger",
        "argo-cd",
        "argo-rollouts",
        "traefik",
        "metrics-server",
    }
    assert {r.repo for r in audited.releases} == {"https://charts.example.com"}
    assert {kind for _, kind in audited.custom_kinds} >= {"ServiceMonitor", "PrometheusRule"}
    assert {s.name for s in audited.services} >= {"jaeger", "kube-prometheus-stack-grafana", "traefik"}


def _helm(*args: str) -> None:
    subprocess.run([str(HELM), *args], check=True, capture_output=True)
