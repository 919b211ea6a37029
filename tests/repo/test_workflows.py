"""The GitHub Actions that teams using this repository run: valid, keyless, one deploy per stack at a time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT = REPO / ".tools" / "bin" / "actionlint"


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


@pytest.mark.go_tool
def test_workflows_pass_actionlint():
    result = subprocess.run([str(ACTIONLINT), "-color=false"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_run_the_tests_and_plan_every_stack_on_every_cloud():
    ci = load("ci.yml")
    assert "pull_request" in ci[True]  # PyYAML reads the bare key `on` as True
    steps = [step.get("run", "") for step in ci["jobs"]["test"]["steps"]]
    assert any("make test" in run for run in steps)
    matrix = ci["jobs"]["plan"]["strategy"]["matrix"]
    committed = {p.name.split(".")[1] for p in REPO.glob("Pulumi.*.yaml")}
    assert set(matrix["stack"]) == committed
    assert set(matrix["cloud"]) == {"aws", "gcp", "azure", "local"}
    uploads = [
        s for s in ci["jobs"]["plan"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    ]
    assert uploads and "build/plan/" in uploads[0]["with"]["path"]


def test_the_workflows_go_is_the_newest_version_a_pinned_tool_module_asks_for():
    # setup-go reads the `go` line of the file named: it must satisfy every harness/go module.
    test = load("ci.yml")["jobs"]["test"]
    go = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-go"))
    asked = {module: _go_version(module) for module in REPO.glob("harness/go/*/go.mod")}
    assert _go_version(REPO / go["with"]["go-version-file"]) == max(asked.values()), asked


def _go_version(go_mod: Path) -> tuple[int, ...]:
    line = next(line for line in go_mod.read_text().splitlines() if line.startswith("go "))
    return tuple(int(part) for part in line.split()[1].split("."))


def test_the_full_suite_runs_as_root_where_the_real_node_can_run():
    ci = load("ci.yml")["jobs"]
    assert any("make check" in step.get("run", "") for step in ci["check"]["steps"])
    test = ci["test"]
    assert test["container"]["image"].startswith("debian:") and "--privileged" in test["container"]["options"]
    assert "user" not in test["container"], "the real node needs root"
    assert test["timeout-minutes"] >= 45, "a cold run takes about 35 minutes"


def test_pull_requests_audit_the_pinned_charts_with_the_go_of_the_helm_pin():
    charts = load("ci.yml")["jobs"]["charts"]
    assert any("make charts" in step.get("run", "") for step in charts["steps"])
    go = next(s for s in charts["steps"] if s.get("uses", "").startswith("actions/setup-go"))
    assert go["with"]["go-version-file"] == "harness/go/helm/go.mod"


def test_preview_runs_the_policy_pack_only_where_credentials_are_configured():
    preview = load("ci.yml")["jobs"]["preview"]
    assert "vars." in preview["if"]
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions"))
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "policies"


def test_deploys_go_dev_then_staging_then_prod_and_never_overlap_on_a_stack():
    deploy = load("deploy.yml")
    assert deploy[True]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert jobs["dev"]["needs"] == "image"
    assert "dev" in jobs["staging"]["needs"]
    assert "staging" in jobs["prod"]["needs"]
    up = load("pulumi-up.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    assert up["concurrency"] == {"group": "pulumi-${{ inputs.stack }}", "cancel-in-progress": False}


def test_each_stage_releases_the_image_by_committing_it_into_the_environments_folder():
    deploy = load("deploy.yml")
    # The release commit and its revert touch only these: they build no new image.
    assert deploy[True]["push"]["paths-ignore"] == ["deploy/**", "Pulumi.*.yaml"]
    for stage in ("dev", "staging", "prod"):
        job = deploy["jobs"][stage]
        assert job["with"]["image"] == "${{ needs.image.outputs.image }}"
        assert job["permissions"] == {"contents": "write", "id-token": "write"}
    steps = load("pulumi-up.yml")["jobs"]["up"]["steps"]
    [release] = [s for s in steps if "make promote" in s.get("run", "")]
    assert release["if"] == "inputs.image != ''"
    assert 'git add "Pulumi.$STACK.yaml" "deploy/$STACK"' in release["run"] and "git push" in release["run"]
    up = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions"))
    assert "config-map" not in up["with"]  # the committed stack file names the image


def test_a_revert_of_a_release_rolls_every_stack_out_in_order_without_a_new_image():
    apply = load("apply.yml")
    assert apply[True]["push"] == {"branches": ["main"], "paths": ["deploy/**", "Pulumi.*.yaml"]}
    jobs = apply["jobs"]
    assert "image" not in jobs["dev"]["with"] and jobs["staging"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "staging"


def test_drift_is_checked_daily_per_stack_and_reported_in_the_job_summary():
    drift = load("drift.yml")
    assert drift[True]["schedule"]
    job = drift["jobs"]["drift"]
    committed = {p.name.split(".")[1] for p in REPO.glob("Pulumi.*.yaml")}
    assert set(job["strategy"]["matrix"]["stack"]) == committed
    [check] = [s for s in job["steps"] if s.get("name") == "make drift"]
    assert "make drift STACK=" in check["run"]
    assert "GITHUB_STEP_SUMMARY" in check["run"] and 'exit "$status"' in check["run"]


def test_cloud_sign_in_uses_oidc_and_no_long_lived_keys():
    up = load("pulumi-up.yml")
    assert up["permissions"]["id-token"] == "write"
    text = "\n".join(
        p.read_text() for p in [*WORKFLOWS.glob("*.yml"), *REPO.glob(".github/actions/*/action.yml")]
    )
    for long_lived in (
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "GOOGLE_CREDENTIALS",
        "ARM_CLIENT_SECRET",
        "creds:",
    ):
        assert long_lived not in text
