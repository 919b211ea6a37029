"""External cross-check: checkov on what the program renders and on the service image.

Kubernetes and secrets checks run on the offline plan's manifests of every cloud and profile, the
dockerfile checks on the repository's Dockerfile, all in one offline checkov run (its own
virtualenv, `.venv-checkov`, because it pins older versions of shared packages). Any failed check
must be listed, with its reason, in tools/checkov/skips.yaml, and every listed skip must still
match something.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from plan import write_artefacts
from program_plans import CLOUDS, PROFILES, plan_of

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
DOCKERFILE = REPO / "Dockerfile"
SKIPS = yaml.safe_load((REPO / "tools" / "checkov" / "skips.yaml").read_text())["skips"]
OFFLINE = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(REPO)} is missing: run `make setup`")
    if not DOCKERFILE.exists():
        pytest.skip("no Dockerfile yet: the dockerfile cross-check runs once the service image is defined")
    root = tmp_path_factory.mktemp("plans")
    targets: list[str] = []
    for cloud in CLOUDS:
        for profile in PROFILES:
            out = root / f"{profile}-{cloud}"
            write_artefacts(plan_of(cloud, profile), out)
            targets += ["-d", str(out / "manifests")]
    # With both -d and -f checkov drops the -f files, so the Dockerfile goes in as a directory too.
    image = root / "image"
    image.mkdir()
    shutil.copy(DOCKERFILE, image / "Dockerfile")
    result = subprocess.run(
        [str(CHECKOV), "--framework", "kubernetes", "secrets", "dockerfile", *targets, "-d", str(image),
         "--skip-download", "--quiet", "--compact", "--output", "json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE},
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: some check failed
    return _reports(result.stdout)


@pytest.fixture(scope="module")
def findings(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [failed for report in reports for failed in report["results"]["failed_checks"]]


def test_every_failed_check_is_a_documented_skip(findings: list[dict[str, Any]]) -> None:
    unexplained = sorted(
        {f"{f['check_id']} {f['check_name']} at {_where(f)}" for f in findings if not _skip_for(f)}
    )
    assert unexplained == [], "fix these or add them with a reason to tools/checkov/skips.yaml"


def test_every_skip_still_matches_a_finding(findings: list[dict[str, Any]]) -> None:
    stale = [s["id"] for s in SKIPS if not any(_matches(s, f) for f in findings)]
    assert stale == [], "remove these entries from tools/checkov/skips.yaml: nothing fails them any more"


def test_every_skip_says_why() -> None:
    assert all(len(s.get("reason", "")) > 40 and s.get("where") for s in SKIPS)


def test_every_framework_ran_on_its_targets(reports: list[dict[str, Any]]) -> None:
    checked = {r["check_type"]: r["summary"] for r in reports}
    assert checked["kubernetes"]["resource_count"] >= 8 * len(CLOUDS)  # the app's objects on every plan
    assert checked["dockerfile"]["passed"] > 0
    assert "secrets" in checked


def _reports(stdout: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document per target kind (files, directories); each a report or a list."""
    decoder = json.JSONDecoder()
    reports: list[dict[str, Any]] = []
    text = stdout.strip()
    while text:
        document, end = decoder.raw_decode(text)
        reports += document if isinstance(document, list) else [document]
        text = text[end:].strip()
    return reports


def _where(finding: dict[str, Any]) -> str:
    return f"{Path(finding['file_path']).name}::{finding['resource']}"


def _matches(skip: dict[str, Any], finding: dict[str, Any]) -> bool:
    return skip["id"] == finding["check_id"] and fnmatch.fnmatch(_where(finding), skip["where"])


def _skip_for(finding: dict[str, Any]) -> bool:
    return any(_matches(s, finding) for s in SKIPS)
