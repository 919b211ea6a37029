"""`make up STACK=dev` for real: the engine, the Kubernetes provider, the policy pack, an API server.

The tests run in file order as one user's session: a refused up, the up, what it made, a no-op
preview, a one-value change, a profile switch and back, and the destroy. Everything is read from the
API server and from Pulumi's own state, never from the program's records. The add-on charts are the
placeholders unless E2E_CHARTS names the real ones (conftest.py); the header of the run says which.
"""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cluster import CHART_SERVICES
from cluster.cert_manager import LOCAL_CA
from cluster.cert_manager import NAMESPACE as CERT_MANAGER_NAMESPACE
from config import MANAGED_CERTIFICATE
from control_plane import Cluster
from e2e_stack import (
    PLATFORM_NAMESPACES,
    SUPPLIED_SECRETS,
    Checkout,
    cert_manager_controllers,
    get,
    namespaces,
)

UP = ("up", "STACK=dev", "ARGS=--yes")


def resources_in_state(checkout: Checkout) -> list[dict[str, Any]]:
    deployment = checkout.state()["deployment"]
    return [r for r in deployment.get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"]


def test_an_unsafe_value_is_refused_by_the_policy_pack_inside_the_engine_and_nothing_is_created(
    checkout: Checkout, cluster: Cluster
) -> None:
    # A Git URL with a credential in it would sit in plain text in the Argo CD Application.
    checkout.pulumi("config", "set", "platform:delivery", "argocd")
    checkout.pulumi(
        "config", "set", "platform:gitopsRepoUrl", "https://deploy:hunter2hunter2@git.example.com/x.git"
    )
    refused = checkout.make(*UP, check=False)
    checkout.pulumi("config", "rm", "platform:delivery")
    checkout.pulumi("config", "rm", "platform:gitopsRepoUrl")

    assert refused.returncode != 0
    assert "k8s-no-secret-literals" in refused.stdout + refused.stderr
    assert "a URL with a password" in refused.stdout + refused.stderr
    assert resources_in_state(checkout) == []
    assert not namespaces(cluster) & set(PLATFORM_NAMESPACES)


@pytest.fixture(scope="module")
def deployed(checkout: Checkout, request: pytest.FixtureRequest) -> str:
    up = checkout.make(*UP)
    # The engine's warnings (plugins taken from PATH, versions) belong in the test output.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    warnings = dict.fromkeys(
        line.strip() for line in (up.stdout + up.stderr).splitlines() if "warning:" in line
    )
    for line in warnings if reporter is not None else ():
        reporter.write_line(f"[pulumi up] {line}")
    return up.stdout


def test_make_up_deploys_every_workload_and_each_becomes_ready(deployed: str, cluster: Cluster) -> None:
    deployments = get(cluster, "deployments", "--all-namespaces")["items"]
    assert {d["metadata"]["name"] for d in deployments} >= {"product-service"}
    for d in deployments:
        conditions = {c["type"]: c["status"] for c in d["status"].get("conditions", [])}
        assert conditions.get("Available") == "True", d["metadata"]["name"]
    statefulsets = get(cluster, "statefulsets", "--all-namespaces")["items"]
    assert {s["metadata"]["name"] for s in statefulsets} >= {"postgres", "redis"}
    for s in statefulsets:
        assert s["status"].get("readyReplicas") == s["spec"]["replicas"], s["metadata"]["name"]
    for d in get(cluster, "daemonsets", "--all-namespaces")["items"]:
        assert d["status"].get("numberReady") == d["status"]["desiredNumberScheduled"], d["metadata"]["name"]
    claims = get(cluster, "persistentvolumeclaims", "--namespace", "platform-data")["items"]
    assert claims and all(c["status"]["phase"] == "Bound" for c in claims)


def test_the_migration_job_completed_before_the_service_pods_were_created(
    deployed: str, cluster: Cluster
) -> None:
    [job] = [
        j
        for j in get(cluster, "jobs", "--namespace", "products")["items"]
        if j["metadata"]["name"].startswith("migrate-")
    ]
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"])
    pods = get(
        cluster, "pods", "--namespace", "products", "--selector", "app.kubernetes.io/name=product-service"
    )["items"]
    service_pods = [p for p in pods if "job-name" not in p["metadata"].get("labels", {})]
    assert service_pods
    completed = _time(job["status"]["completionTime"])
    assert all(completed <= _time(p["metadata"]["creationTimestamp"]) for p in service_pods)


def test_the_service_reads_its_credentials_from_a_secret_that_pulumi_state_never_shows(
    deployed: str, cluster: Cluster, checkout: Checkout
) -> None:
    [deployment] = [
        d
        for d in get(cluster, "deployments", "--namespace", "products")["items"]
        if d["metadata"]["name"] == "product-service"
    ]
    [container] = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "product-service"
    ]
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"} <= from_secret.keys()
    [secret_name] = {from_secret[k] for k in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")}
    secret = get(cluster, "secret", secret_name, "--namespace", "products")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert SUPPLIED_SECRETS["postgresPassword"] in values["DATABASE_URL"]
    assert values["JWT_SECRET"] == SUPPLIED_SECRETS["jwtSecret"]

    exported = json.dumps(checkout.state())
    for key in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET"):
        assert values[key] not in exported, f"{key} is in plain text in pulumi stack export"
    for supplied in SUPPLIED_SECRETS.values():
        assert supplied not in exported


def test_every_release_of_the_stack_is_deployed(deployed: str, checkout: Checkout, cluster: Cluster) -> None:
    declared = {
        r["outputs"]["name"]
        for r in resources_in_state(checkout)
        if r["type"] == "kubernetes:helm.sh/v3:Release"
    }
    assert declared >= {"kube-prometheus-stack", "jaeger", "argocd", "traefik", "metrics-server"}
    # Helm keeps each revision of a release in a Secret labelled with its status; the newest counts.
    newest: dict[str, dict[str, str]] = {}
    for secret in get(cluster, "secrets", "--all-namespaces", "--selector", "owner=helm")["items"]:
        labels = secret["metadata"]["labels"]
        if int(labels["version"]) > int(newest.get(labels["name"], {}).get("version", 0)):
            newest[labels["name"]] = labels
    assert {name: labels["status"] for name, labels in newest.items()} == dict.fromkeys(declared, "deployed")


def test_the_programs_custom_resources_are_accepted_by_the_crds_the_charts_installed(
    deployed: str, checkout: Checkout, cluster: Cluster, real_charts: bool
) -> None:
    custom = [
        r
        for r in resources_in_state(checkout)
        if r["type"].startswith(
            (
                "kubernetes:monitoring.coreos.com/",
                "kubernetes:argoproj.io/",
                "kubernetes:traefik.io/",
                "kubernetes:cert-manager.io/",
            )
        )
    ]
    # With the placeholders the stack has platform:localTls (conftest.py): the local CA and the API's
    # certificate from it.
    local_ca = set() if real_charts else {"Certificate", "Issuer", "ClusterIssuer"}
    assert {r["type"].rsplit(":", 1)[1] for r in custom} >= {"ServiceMonitor", "PrometheusRule", *local_ca}
    for r in custom:
        kind, metadata = r["type"].rsplit(":", 1)[1], r["outputs"]["metadata"]
        namespaced = ["--namespace", metadata["namespace"]] if metadata.get("namespace") else []
        assert get(cluster, kind.lower(), metadata["name"], *namespaced)["kind"] == kind


def test_cert_manager_issues_the_local_ca_and_make_local_ca_writes_its_certificate_and_nothing_of_its_key(
    deployed: str, checkout: Checkout, cluster: Cluster, real_charts: bool, tmp_path: Path
) -> None:
    if real_charts:
        pytest.skip("the stack sets platform:localTls with the placeholder charts only (conftest.py)")
    # cert-manager's own controllers issue what the program declared.
    with cert_manager_controllers(cluster, tmp_path / "cert-manager.log"):
        ready = cluster.kubectl(
            "wait", "--for=condition=Ready", "certificate", "--all", "-A", "--timeout=50s", check=False
        )
    assert ready.returncode == 0, ready.stderr + (tmp_path / "cert-manager.log").read_text()[-3000:]

    checkout.make("local-ca", "STACK=dev")
    written = checkout.root / "build" / "dev-ca.crt"
    assert "PRIVATE KEY" not in written.read_text()
    assert checkout.pulumi("stack", "output", "ca_certificate").stdout.strip() == (
        "build/dev-ca.crt after `make local-ca STACK=dev`"
    )
    # A client that trusts that file alone accepts the API's certificate for the API's name.
    api = next(
        c
        for c in get(cluster, "certificates", "--all-namespaces")["items"]
        if c["spec"]["secretName"] == MANAGED_CERTIFICATE
    )
    secret = get(cluster, "secret", MANAGED_CERTIFICATE, "--namespace", api["metadata"]["namespace"])
    leaf = tmp_path / "api.crt"
    leaf.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    host = api["spec"]["dnsNames"][0]
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(written), "-verify_hostname", host, str(leaf)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # Pulumi never read the CA's Secret: its key is in the state neither as text nor as base64.
    key = get(cluster, "secret", LOCAL_CA, "--namespace", CERT_MANAGER_NAMESPACE)["data"]["tls.key"]
    exported = json.dumps(checkout.state())
    assert key not in exported and base64.b64decode(key).decode() not in exported


def test_every_service_the_program_and_its_outputs_name_is_there(
    deployed: str, cluster: Cluster, real_charts: bool
) -> None:
    if not real_charts:
        pytest.skip(
            "the placeholder charts render no Services: E2E_CHARTS=<url>|upstream installs the real ones"
        )
    for named in CHART_SERVICES:
        service = get(cluster, "service", named.name, "--namespace", named.namespace)
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert set(named.ports) <= ports, (named.name, ports)


def test_a_preview_right_after_the_up_has_no_changes(deployed: str, checkout: Checkout) -> None:
    checkout.make("preview", "STACK=dev", "ARGS=--expect-no-changes")


def test_make_drift_finds_a_kubectl_edit_and_make_up_puts_it_back(
    deployed: str, checkout: Checkout, cluster: Cluster
) -> None:
    def settings() -> dict[str, Any]:
        """The service's settings ConfigMap (auto-named: a change of its data replaces it)."""
        (found,) = [
            c
            for c in get(cluster, "configmaps", "-n", "products")["items"]
            if "LOG_LEVEL" in (c.get("data") or {})
        ]
        return found

    # One of them changed by hand, as an operator might.
    name = settings()["metadata"]["name"]
    cluster.kubectl("patch", "configmap", name, "-n", "products", "-p", '{"data":{"LOG_LEVEL":"DEBUG"}}')

    drifted = checkout.make("drift", "STACK=dev", check=False)
    said = drifted.stdout + drifted.stderr
    assert drifted.returncode != 0
    assert "make drift: stack dev differs from its program and config" in said
    assert "LOG_LEVEL" in said and "DEBUG" in said, said[-3000:]

    checkout.make(*UP)
    assert settings()["data"]["LOG_LEVEL"] == "INFO"
    checkout.make("drift", "STACK=dev")


def test_changing_hpa_max_replicas_updates_the_autoscalers_and_nothing_else(
    deployed: str, checkout: Checkout, cluster: Cluster
) -> None:
    checkout.pulumi("config", "set", "platform:hpaMaxReplicas", "5")
    preview = json.loads(checkout.pulumi("preview", "--json").stdout)
    changed = [step for step in preview["steps"] if step["op"] != "same"]
    # hpaMaxReplicas bounds both Deployments of the service: REST and gRPC.
    assert {(step["op"], step["urn"].rsplit("::", 1)[1]) for step in changed} == {
        ("update", "autoscaler"),
        ("update", "grpc-autoscaler"),
    }
    assert all("HorizontalPodAutoscaler" in step["urn"] for step in changed)

    checkout.make(*UP)
    for name in ("product-service", "product-service-grpc"):
        hpa = get(cluster, "horizontalpodautoscaler", name, "--namespace", "products")
        assert hpa["spec"]["maxReplicas"] == 5


def test_a_live_stack_hands_its_workloads_to_argo_cd_and_takes_them_back(
    deployed: str, checkout: Checkout, cluster: Cluster
) -> None:
    """The switch docs/delivery.md describes, both ways. Argo CD's programs do not run on this tier: the
    Application and AppProject are checked as the API server stored them, not synced."""
    checkout.pulumi("config", "set", "platform:delivery", "argocd")
    checkout.pulumi("config", "set", "platform:gitopsRepoUrl", "https://git.example.com/platform.git")
    try:
        checkout.make(*UP)
        application = get(cluster, "applications.argoproj.io", "product-service", "-n", "argocd")["spec"]
        assert application["source"] == {
            "repoURL": "https://git.example.com/platform.git",
            "path": "deploy/dev",
            "targetRevision": "HEAD",
        }
        assert application["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        project = get(cluster, "appprojects.argoproj.io", "product-service", "-n", "argocd")["spec"]
        assert project["destinations"] == [
            {"server": "https://kubernetes.default.svc", "namespace": "products"}
        ]
        # Pulumi let go of the workloads; the Secret they name in Git is there under its fixed name.
        assert get(cluster, "deployments", "-n", "products")["items"] == []
        get(cluster, "secret", "product-service-credentials", "-n", "products")
    finally:
        checkout.pulumi("config", "rm", "platform:gitopsRepoUrl")
        checkout.pulumi("config", "rm", "platform:delivery")
        checkout.make(*UP)
    assert not get(cluster, "applications.argoproj.io", "-n", "argocd")["items"]
    for name in ("product-service", "product-service-grpc"):
        deployment = get(cluster, "deployment", name, "-n", "products")
        assert deployment["status"].get("readyReplicas", 0) >= 1


def test_a_live_stack_switches_its_profile_to_prod_and_back(
    deployed: str, checkout: Checkout, cluster: Cluster
) -> None:
    tagged = checkout.pulumi("config", "get", "platform:image").stdout.strip()
    checkout.pulumi("config", "set", "platform:profile", "prod")
    refused = checkout.make(*UP, check=False)  # prod runs an image by digest only
    assert refused.returncode != 0
    assert (
        "platform:image must name the image by digest in the prod profile" in refused.stdout + refused.stderr
    )
    # kwok's pods pull nothing: any digest does here.
    checkout.pulumi("config", "set", "platform:image", f"{tagged.split(':')[0]}@sha256:{'0' * 64}")
    checkout.make(*UP)
    hpa = get(cluster, "horizontalpodautoscaler", "product-service", "--namespace", "products")
    assert hpa["spec"]["minReplicas"] == 3
    checkout.pulumi("config", "rm", "platform:profile")
    checkout.pulumi("config", "set", "platform:image", tagged)
    checkout.make(*UP)
    hpa = get(cluster, "horizontalpodautoscaler", "product-service", "--namespace", "products")
    assert hpa["spec"]["minReplicas"] == 1


def test_make_destroy_leaves_none_of_the_platform_namespaces_and_keeps_the_crds(
    deployed: str, checkout: Checkout, cluster: Cluster
) -> None:
    checkout.make("destroy", "STACK=dev", "ARGS=--yes")
    assert not namespaces(cluster) & set(PLATFORM_NAMESPACES)
    assert resources_in_state(checkout) == []
    # Helm never deletes a chart's crds/: deleting a CRD deletes every object of its kind in the
    # cluster, another team's too. A later `up` adopts them as they are.
    crds = {c["metadata"]["name"] for c in get(cluster, "customresourcedefinitions")["items"]}
    assert "servicemonitors.monitoring.coreos.com" in crds


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
