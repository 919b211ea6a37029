"""What a newcomer and CI rely on: the README's two commands, the make targets it names, the CI entry."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_targets() -> set[str]:
    listing = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"make (\S+)", listing))


def test_readme_first_screen_gives_the_two_setup_commands():
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:40])
    assert "make test" in first_screen
    assert "make up" in first_screen


def test_every_make_command_in_the_readme_exists():
    readme = (REPO / "README.md").read_text()
    mentioned = set(re.findall(r"`make ([a-z0-9-]+)", readme))
    assert mentioned, "the README names no make command"
    assert mentioned <= make_targets()


def test_make_help_lists_the_contract_targets():
    assert {
        "test",
        "run",
        "plan",
        "policy",
        "preview",
        "up",
        "destroy",
        "bench-service",
        "lint",
        "e2e",
        "cluster",
        "cluster-down",
        "tools",
    } <= make_targets()


def test_without_go_the_tool_build_stops_and_says_how_to_get_it(tmp_path: Path):
    # make and the shell, but no Go: the e2e tools cannot be built, and make says so.
    result = _make_with_only(_bin_with_make_and_a_shell(tmp_path), "need-go")
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "with Go 1.26+: install it" in said
    assert "or run `make check` for lint and every test that needs neither Go nor root" in said


def test_a_non_root_make_test_stops_first_and_points_at_make_check(tmp_path: Path) -> None:
    # `id -u` answering 1000 stands for a user without root.
    bin_dir = _bin_with_make_and_a_shell(tmp_path)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    result = _make_with_only(bin_dir, "test")
    assert result.returncode != 0
    assert result.stdout.splitlines()[0].startswith("make test runs the e2e tier's real node")
    assert "or `make check` for lint and every test that needs neither root nor Go" in result.stdout


def test_ci_entry_runs_the_readme_test_command_and_nothing_else():
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == "make test"
    assert all(c.startswith(("set ", "cd ", "make test")) for c in commands)


def test_generated_state_is_not_committed():
    ignored = (REPO / ".gitignore").read_text()
    for path in (".venv/", "build/", ".pulumi-state/", ".data/"):
        assert path in ignored


def _make_with_only(bin_dir: Path, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
    )


def _bin_with_make_and_a_shell(tmp_path: Path) -> Path:
    """A PATH of its own: make, the shell and awk, nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "bash", "sh", "awk", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return bin_dir
