"""`make local-ca STACK=...` writes the local CA's certificate, and only that, for clients to trust."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "local-ca.sh"
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----"


def run(
    tmp_path: Path, stack_file: str, tls_crt: str | None = CERTIFICATE
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The script in a copy of the repository holding `stack_file` as Pulumi.dev.yaml, with a kubectl that
    records its arguments and answers the jsonpath query as the API server would (None: no Secret)."""
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "tools" / SCRIPT.name)
    (repo / "Pulumi.dev.yaml").write_text(stack_file)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "base64", "mkdir", "dirname"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True)
        (bin_dir / tool).symlink_to(found.stdout.strip())
    answer = (
        f"printf %s {base64.b64encode(tls_crt.encode()).decode()}"
        if tls_crt is not None
        else "echo 'Error from server (NotFound): secrets \"platform-ca\" not found' >&2; exit 1"
    )
    (bin_dir / "kubectl").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path / "calls"}\n{answer}\n')
    (bin_dir / "kubectl").chmod(0o755)
    result = subprocess.run(
        ["bash", str(repo / "tools" / SCRIPT.name), "dev"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    return result, repo


LOCAL = "config:\n  platform:cloud: local\n  platform:localTls: true\n"


def test_it_writes_the_cas_certificate_from_the_secret_cert_manager_made(tmp_path: Path) -> None:
    result, repo = run(tmp_path, LOCAL)
    assert result.returncode == 0, result.stderr
    assert (repo / "build" / "dev-ca.crt").read_text() == CERTIFICATE + "\n"
    calls = (tmp_path / "calls").read_text()
    # tls.crt alone: the key's field is never asked for.
    assert "--namespace cert-manager get secret platform-ca --output jsonpath={.data.tls\\.crt}" in calls
    assert "tls.key" not in calls


def test_it_asks_the_stacks_own_context(tmp_path: Path) -> None:
    result, _ = run(tmp_path, LOCAL + "  platform:kubeContext: kind-platform\n")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls").read_text().startswith("--context kind-platform ")


def test_without_the_ca_it_says_what_to_check_and_writes_nothing(tmp_path: Path) -> None:
    result, repo = run(tmp_path, LOCAL, tls_crt=None)
    assert result.returncode == 1
    assert "Is platform:localTls true and the stack up?" in result.stderr
    assert "kubectl describe certificate -n cert-manager platform-ca" in result.stderr
    assert not (repo / "build").exists()


def test_anything_but_a_certificate_is_refused(tmp_path: Path) -> None:
    result, repo = run(
        tmp_path, LOCAL, tls_crt="-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----"
    )
    assert result.returncode == 1
    assert not (repo / "build").exists()


def test_a_cloud_stack_is_told_its_certificates_come_from_acme(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "config:\n  platform:cloud: aws\n")
    assert result.returncode == 1
    assert "stack dev targets aws: its certificates come from ACME" in result.stderr
    assert not (tmp_path / "calls").exists()


def test_make_local_ca_runs_the_script_for_the_stack() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "local-ca", "STACK=dev"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "tools/local-ca.sh dev" in dry_run
