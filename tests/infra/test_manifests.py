"""The rendered manifests are valid Kubernetes objects for the configured version (strict schemas)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from config import KUBERNETES_VERSION
from plan import Plan, write_artefacts

TARGETS = [(cloud, profile) for cloud in ("aws", "gcp", "azure", "local") for profile in ("dev", "prod")]
VALIDATOR = Path(sys.executable).parent / "kubernetes-validate"
# Custom resources have no schema in kubernetes-validate; their CRDs come with the charts and the
# API server validates them at apply time.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "Application"}


@pytest.mark.parametrize(("cloud", "profile"), TARGETS, ids=[f"{c}-{p}" for c, p in TARGETS])
def test_manifests_validate_strictly_for_the_kubernetes_version(
    cloud: str, profile: str, plan_for: Callable[..., Plan], tmp_path: Path
) -> None:
    plan = plan_for(cloud, profile)
    write_artefacts(plan, tmp_path)
    manifests = sorted((tmp_path / "manifests").glob("*.yaml"))
    # helm-releases.yaml lists chart, version and values: a review aid, not a Kubernetes object.
    objects = [m for m in manifests if m.name != "helm-releases.yaml"]
    builtin = [m for m in objects if yaml.safe_load(m.read_text())["kind"] not in CUSTOM_KINDS]
    assert len(builtin) == len([r for r in plan.kubernetes_objects() if r.kind not in CUSTOM_KINDS])
    version = plan.config.get("platform:kubernetesVersion", KUBERNETES_VERSION) + ".0"
    result = subprocess.run(
        [str(VALIDATOR), "--strict", "--quiet", "-k", version, *map(str, builtin)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_secret_data_is_masked_in_manifests(plan_for: Callable[..., Plan], tmp_path: Path) -> None:
    plan = plan_for("local", "prod")
    write_artefacts(plan, tmp_path)
    text = "\n".join(p.read_text() for p in (tmp_path / "manifests").glob("*.yaml"))
    passwords = [r.outputs["result"] for r in plan.of_type("random:index/randomPassword:RandomPassword")]
    assert passwords and not any(p in text for p in passwords)
    secret = yaml.safe_load(
        (tmp_path / "manifests" / "platform-data.secret.data-credentials.yaml").read_text()
    )
    assert secret["stringData"] == dict.fromkeys(
        ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "redis-auth.conf"), "[secret]"
    )


def test_helm_releases_are_listed_with_chart_version_repo_and_values(
    plan_for: Callable[..., Plan], tmp_path: Path
) -> None:
    write_artefacts(plan_for("local", "dev"), tmp_path)
    releases = yaml.safe_load((tmp_path / "manifests" / "helm-releases.yaml").read_text())
    by_chart = {r["chart"]: r for r in releases}
    assert set(by_chart) == {
        "kube-prometheus-stack",
        "jaeger",
        "argo-cd",
        "argo-rollouts",
        "traefik",
        "metrics-server",
    }
    for release in releases:
        assert release["version"] and release["repo"].startswith("https://") and "values" in release
