"""`make up|preview|destroy` check their prerequisites first and say what is missing and how to get it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "pulumi-stack.sh"


def run(
    tmp_path: Path,
    *args: str,
    fake_pulumi: bool,
    kubectl_context: str | None = None,
    tools: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    script: Path = SCRIPT,
    preview_exit: int = 0,
):
    """The script with a PATH holding only the basics, plus stand-ins that record how they were called
    (and, for `tools`, stand-ins that only exist)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "sed", "ls", "grep", "paste", "dirname", "mkdir", "head", "base64", "cat", "ln"):
        found = subprocess.run(
            ["bash", "-c", f"command -v {tool}"], capture_output=True, text=True
        ).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    calls = tmp_path / "calls"
    if fake_pulumi:
        (bin_dir / "pulumi").write_text(
            f'#!/bin/bash\necho "$@" >> {calls}\n[ "$1" != preview ] || exit {preview_exit}\n'
        )
        (bin_dir / "pulumi").chmod(0o755)
    if kubectl_context is not None:
        (bin_dir / "kubectl").write_text(f"#!/bin/bash\necho {kubectl_context}\n")
        (bin_dir / "kubectl").chmod(0o755)
    for tool in tools:
        (bin_dir / tool).write_text("#!/bin/bash\n")
        (bin_dir / tool).chmod(0o755)
    environment = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "PULUMI_BACKEND_URL": f"file://{tmp_path}/state",
    }
    environment["PULUMI_CONFIG_PASSPHRASE"] = "test-only"
    environment.update(env or {})
    result = subprocess.run(
        ["bash", str(script), *args], env=environment, capture_output=True, text=True, cwd=REPO
    )
    return result, (calls.read_text() if calls.exists() else "")


def test_without_the_pulumi_cli_it_says_where_to_get_it(tmp_path):
    result, _ = run(tmp_path, "up", "dev", fake_pulumi=False)
    assert result.returncode == 1
    assert "the Pulumi CLI is not installed" in result.stderr and "pulumi.com" in result.stderr


def test_an_unknown_stack_lists_the_committed_ones(tmp_path):
    result, _ = run(tmp_path, "up", "nosuch", fake_pulumi=True)
    assert result.returncode == 1
    assert "no Pulumi.nosuch.yaml" in result.stderr and "dev prod" in result.stderr


def test_a_local_stack_without_a_kubernetes_context_says_how_to_start_one(tmp_path):
    result, calls = run(tmp_path, "up", "dev", fake_pulumi=True)
    assert result.returncode == 1
    assert "kind create cluster" in result.stderr
    assert calls == ""  # nothing was deployed


def test_a_cloud_stack_without_credentials_says_how_to_sign_in(tmp_path):
    result, calls = run(tmp_path, "preview", "prod", fake_pulumi=True)
    assert result.returncode == 1
    assert "aws configure sso" in result.stderr
    assert calls == ""


def test_up_runs_the_policy_pack_with_the_stacks_own_policy_config(tmp_path):
    result, calls = run(tmp_path, "up", "dev", fake_pulumi=True, kubectl_context="kind-platform")
    assert result.returncode == 0, result.stderr
    assert "stack select --create dev --secrets-provider passphrase" in calls
    assert (
        "up --stack dev --refresh --policy-pack policies --policy-pack-config policies/config/dev.json"
        in calls
    )
    assert os.path.exists(REPO / "policies" / "config" / "dev.json")


def test_make_drift_previews_the_refreshed_stack_and_expects_no_changes(tmp_path):
    dry_run = subprocess.run(
        ["make", "-n", "drift", "STACK=staging"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "tools/pulumi-stack.sh drift staging" in dry_run
    result, calls = run(tmp_path, "drift", "prod", fake_pulumi=True, tools=("aws",), env=CLOUD_SIGN_IN["aws"])
    assert result.returncode == 0, result.stderr
    assert "preview --stack prod --refresh --expect-no-changes --diff" in calls


def test_drift_fails_and_says_how_to_put_the_stack_back(tmp_path):
    result, _ = run(
        tmp_path,
        "drift",
        "prod",
        fake_pulumi=True,
        tools=("aws",),
        env=CLOUD_SIGN_IN["aws"],
        preview_exit=255,
    )
    assert result.returncode == 1
    assert "stack prod differs from its program and config" in result.stderr
    assert "make up STACK=prod" in result.stderr


# Committed stacks: prod targets aws, staging gcp; none targets azure, so that one runs the script
# from a copy of the repository holding only an azure stack file.
CLOUD_SIGN_IN = {
    "aws": {"AWS_PROFILE": "platform"},
    "gcp": {"GOOGLE_APPLICATION_CREDENTIALS": "/dev/null"},
    "azure": {"ARM_CLIENT_ID": "00000000-0000-0000-0000-000000000001"},
}


def _stack_and_script(tmp_path: Path, cloud: str) -> tuple[str, Path]:
    if cloud != "azure":
        return {"aws": "prod", "gcp": "staging"}[cloud], SCRIPT
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "tools" / SCRIPT.name)
    (repo / "Pulumi.az.yaml").write_text("config:\n  platform:cloud: azure\n")
    return "az", repo / "tools" / SCRIPT.name


@pytest.mark.parametrize(
    ("cloud", "tool", "how"),
    [
        ("aws", "aws", "install the AWS CLI v2"),
        ("gcp", "gke-gcloud-auth-plugin", "gcloud components install gke-gcloud-auth-plugin"),
        ("azure", "kubelogin", "az aks install-cli"),
    ],
)
def test_a_cloud_stack_without_its_kubeconfig_exec_plugin_says_how_to_get_it(tmp_path, cloud, tool, how):
    stack, script = _stack_and_script(tmp_path, cloud)
    result, calls = run(tmp_path, "preview", stack, fake_pulumi=True, env=CLOUD_SIGN_IN[cloud], script=script)
    assert result.returncode == 1
    assert f"runs '{tool}', which is not installed" in result.stderr and how in result.stderr
    assert calls == ""


@pytest.mark.parametrize(
    ("cloud", "tool"), [("aws", "aws"), ("gcp", "gke-gcloud-auth-plugin"), ("azure", "kubelogin")]
)
def test_a_cloud_stack_with_its_exec_plugin_goes_ahead(tmp_path, cloud, tool):
    stack, script = _stack_and_script(tmp_path, cloud)
    result, calls = run(
        tmp_path, "preview", stack, fake_pulumi=True, tools=(tool,), env=CLOUD_SIGN_IN[cloud], script=script
    )
    assert result.returncode == 0, result.stderr
    assert f"preview --stack {stack} --policy-pack policies" in calls
