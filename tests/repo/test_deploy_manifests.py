"""deploy/<stack>/: what Argo CD syncs, generated from the program (`make deploy-manifests`), never stale."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import deploy_manifests
import pytest
import yaml
from plan import committed_stacks, run_plan

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
GITOPS = {"delivery": "argocd", "gitopsRepoUrl": "https://git.example.com/platform.git"}


def documents(folder: Path) -> dict[str, Any]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


def test_deploy_holds_one_folder_per_committed_stack():
    assert sorted(p.name for p in DEPLOY.iterdir() if p.is_dir()) == committed_stacks()


def test_deploy_is_what_make_deploy_manifests_writes_now(tmp_path: Path):
    deploy_manifests.main(["--out", str(tmp_path)])
    for stack in committed_stacks():
        fresh = {p.name: p.read_text() for p in (tmp_path / stack).glob("*.yaml")}
        committed = {p.name: p.read_text() for p in (DEPLOY / stack).glob("*.yaml")}
        assert committed == fresh, f"deploy/{stack} is stale: run `make deploy-manifests` and commit it"


@pytest.mark.parametrize("stack", committed_stacks())
def test_each_folder_is_a_kustomization_of_the_workloads_on_the_stacks_image(stack: str):
    files = documents(DEPLOY / stack)
    kustomization = files.pop("kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(files)
    kinds = Counter(m["kind"] for m in files.values())
    assert kinds == {
        "Rollout": 2,
        "AnalysisTemplate": 2,
        "HorizontalPodAutoscaler": 2,
        "PodDisruptionBudget": 2,
        "Job": 1,
    }
    image = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]["platform:image"]
    pods = [m["spec"]["template"]["spec"] for m in files.values() if m["kind"] in ("Rollout", "Job")]
    assert {c["image"] for pod in pods for c in pod["containers"]} == {image}
    # The migration runs before the Rollouts change, as a fresh Job each sync.
    [job] = [m for m in files.values() if m["kind"] == "Job"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"


@pytest.mark.parametrize("stack", committed_stacks())
def test_the_manifests_refer_only_to_what_pulumi_declares_under_argocd_delivery(stack: str):
    """No secret in Git: the pods name the Secret and ConfigMaps that Pulumi keeps, and each exists, by that
    name, in what the same stack declares with `delivery: argocd`."""
    text = "".join(p.read_text() for p in (DEPLOY / stack).glob("*.yaml"))
    assert "kind: Secret" not in text and "[secret]" not in text
    referred: set[tuple[str, str]] = set()
    for manifest in documents(DEPLOY / stack).values():
        _collect_references(manifest, referred)
    plan = run_plan(stack, overrides=GITOPS)
    declared = {(str(r.kind), r.metadata.get("name")) for r in plan.objects("Secret", "products")} | {
        (str(r.kind), r.metadata.get("name")) for r in plan.objects("ConfigMap", "products")
    }
    assert referred and referred <= declared
    assert plan.objects("Application")[0].inputs["spec"]["source"]["path"] == f"deploy/{stack}"


def _collect_references(value: Any, into: set[tuple[str, str]]) -> None:
    if isinstance(value, list):
        for v in value:
            _collect_references(v, into)
    elif isinstance(value, dict):
        for key, kind in (
            ("secretKeyRef", "Secret"),
            ("configMapRef", "ConfigMap"),
            ("configMap", "ConfigMap"),
        ):
            if isinstance(value.get(key), dict):
                into.add((kind, value[key]["name"]))
        for v in value.values():
            _collect_references(v, into)


def test_a_release_sets_only_the_stacks_image_line(tmp_path: Path):
    stack_file = tmp_path / "Pulumi.prod.yaml"
    committed = (REPO / "Pulumi.prod.yaml").read_text()
    stack_file.write_text(committed)
    image = f"ghcr.io/acme/product-service@sha256:{'a' * 64}"
    deploy_manifests.set_image(stack_file, image)
    old, new = committed.splitlines(), stack_file.read_text().splitlines()
    assert len(old) == len(new)
    changed = [(before, after) for before, after in zip(old, new, strict=True) if before != after]
    assert len(changed) == 1 and changed[0][1] == f"  platform:image: {image}"
    assert changed[0][0].startswith("  platform:image: ")


def test_make_promote_needs_an_image():
    result = subprocess.run(["make", "promote", "STACK=prod"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and "IMAGE is missing" in result.stderr
