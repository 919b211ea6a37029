"""The proto is linted by buf and stays wire-compatible with every version of it ever committed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "bin" / "buf"
PROTO = ROOT / "proto"
PROTO_FILE = "proto/product/v1/product.proto"
pytestmark = pytest.mark.go_tool


@pytest.fixture(scope="module")
def buf() -> Path:
    if not BUF.exists():
        pytest.fail(f"{BUF.relative_to(ROOT)} is missing: `make setup` builds it (needs Go)")
    return BUF


def run_buf(buf: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([buf, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120)


def committed_versions() -> list[str]:
    """The commits that changed the proto, newest first; empty outside a Git checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return []
    log = subprocess.run(
        ["git", "log", "--format=%H", "--", PROTO_FILE], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return log.stdout.split()


def checkout_of(commit: str, into: Path) -> Path:
    tree = into / commit[:12]
    for path in ("proto/buf.yaml", PROTO_FILE):
        content = subprocess.run(
            ["git", "show", f"{commit}:{path}"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(content)
    return tree / "proto"


def test_buf_lint_passes(buf: Path) -> None:
    result = run_buf(buf, "lint", PROTO)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_proto_is_wire_compatible_with_every_committed_version(buf: Path, tmp_path: Path) -> None:
    commits = committed_versions()
    assert commits, f"no committed version of {PROTO_FILE} to compare with (not a Git checkout?)"

    for commit in commits:
        result = run_buf(buf, "breaking", PROTO, "--against", checkout_of(commit, tmp_path))
        assert result.returncode == 0, f"breaks clients of {commit[:12]}:\n{result.stdout}{result.stderr}"


def test_a_renumbered_field_is_reported_as_breaking(buf: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(PROTO, changed)
    proto = changed / "product" / "v1" / "product.proto"
    proto.write_text(proto.read_text().replace("string price_decimal = 7;", "string price_decimal = 8;"))

    result = run_buf(buf, "breaking", changed, "--against", PROTO)

    assert result.returncode != 0
    assert "price_decimal" in result.stdout
