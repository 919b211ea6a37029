"""`make plan` (harness/plan/plan.py): the three artefacts, a readable summary, the program's error on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _plan(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            str(REPO / "harness" / "plan" / "plan.py"),
            *args,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=240,
    )


def test_plan_writes_resources_manifests_and_policy_report(tmp_path: Path) -> None:
    result = _plan("dev", out=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "dev-local"
    records = json.loads((out / "resources.json").read_text())
    assert records and all(set(r) == {"type", "name", "urn", "parent", "inputs"} for r in records)
    assert "[secret]" in (out / "resources.json").read_text()
    assert (out / "manifests" / "products.rollout.product-service.yaml").is_file()
    assert (out / "policy-report.json").is_file()
    assert "Plan of stack dev on local" in result.stdout
    assert "HPA product-service: 1-3 replicas" in result.stdout
    assert "chart kube-prometheus-stack:" in result.stdout


def test_cloud_overrides_the_stacks_cloud(tmp_path: Path) -> None:
    result = _plan("dev", "--cloud", "aws", out=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dev-aws" / "resources.json").is_file()
    assert "node group" in result.stdout and "database" in result.stdout


def test_a_bad_value_exits_non_zero_with_the_config_sentence(tmp_path: Path) -> None:
    result = _plan("dev", "--set", "hpaMinReplicas=many", out=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "plan dev failed: platform:hpaMinReplicas must be a whole number from 1 to 100 (got 'many')"
    )
    assert "Traceback" not in result.stderr
