"""The images the real node runs, built here without a registry or a Docker engine (buildah, as root).

    python harness/e2e/images.py build NAME [NAME...]   # writes .tools/images/NAME.tar (docker-archive)

No registry is reachable from this machine, so nothing is pulled:
- `debian` is a `debootstrap --variant=minbase` of Debian bookworm, from this machine's own apt mirror;
- `pause` is the static sandbox program of harness/go/pause;
- `python` is a STAND-IN for the Dockerfile's pinned base (python:3.11.17-slim-bookworm): Debian's own
  Python 3.11 (3.11.2) on the same Debian release, instead of a CPython built from source in /usr/local;
- `product-service` is the repository's own Dockerfile, built on that stand-in (buildah's --from), with pip
  installing from a wheelhouse downloaded here (PIP_NO_INDEX, PIP_FIND_LINKS), and named as the dev stack
  names it (`platform:image: product-service:0.1.0`), the way a kind user loads an image;
- `postgres` and `redis` are STAND-INS for the local target's official images, from Debian's packages
  (PostgreSQL 15 and Redis 7.0 instead of 17 and 7.4), speaking the same contract: the same environment
  variables, ports, probe commands and uid 999 (harness/e2e/images/*/Containerfile);
- the add-ons' images (ADDONS) are the real programs, each built from its pinned Go module
  (harness/go/<module>) into an image holding that one static binary where the official image has it, and
  named and tagged as the chart's default image, so a chart runs it unchanged. Where the module's version
  differs from the tag, ADDONS says so.
Make rebuilds an archive when its inputs change (Makefile, `images`); buildah's layer cache (in CACHE)
makes an unchanged step free, and the Debian base is bootstrapped once per cache.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / ".tools" / "images"
# buildah's store and the wheelhouse, outside the checkout like Go's caches: a fresh clone reuses the
# debootstrap and every cached layer (`rm -rf ~/.cache/product-platform` starts from nothing).
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "product-platform"
CONTAINERFILES = Path(__file__).resolve().parent / "images"
SUITE = "bookworm"
MIRROR = re.compile(r"^(?:URIs:|deb)\s+(\S+/debian)\s*$", re.MULTILINE)
PREFIX = "localhost/platform-e2e"
IMAGES = {
    "debian": f"{PREFIX}/debian:{SUITE}-minbase",
    "pause": f"{PREFIX}/pause:1",
    "python": f"{PREFIX}/python:3.11-{SUITE}-standin",
    "postgres": f"{PREFIX}/postgres:15-{SUITE}-standin",
    "redis": f"{PREFIX}/redis:7.0-{SUITE}-standin",
    "product-service": "docker.io/library/product-service:0.1.0",
    # Two releases of it for the canary test: one that serves, one that answers 500 (a FAULTY stand-in).
    "product-service-next": "docker.io/library/product-service:0.2.0",
    "product-service-faulty": "docker.io/library/product-service:0.3.0-faulty",
}
# What each image is built on (an archive made first); `debian`, `pause` and the add-ons start from nothing.
BASES = {
    "python": "debian",
    "postgres": "debian",
    "redis": "debian",
    "product-service": "python",
    "product-service-next": "product-service",
    "product-service-faulty": "product-service",
}


@dataclass(frozen=True)
class GoProgram:
    """An add-on's image: one program from its pinned module, at the path its official image runs."""

    module: str  # harness/go/<module>
    package: str
    path: str
    user: str
    env: dict[str, str] = field(default_factory=dict)
    tags: str = ""  # Go build tags
    built_from: str = ""  # the module version, where it is not the image's tag


ADDONS = {
    # Chart traefik 37.3.0 runs docker.io/traefik:v3.6.0; the module proxy serves v3.6.12 of that minor.
    "traefik": GoProgram(
        "traefik", "github.com/traefik/traefik/v3/cmd/traefik", "/usr/local/bin/traefik", "65532",
        built_from="v3.6.12",
    ),
    # Chart jaeger 4.4.7 runs jaegertracing/jaeger:2.14.1; Jaeger v2.14.0 is module version v1.76.0 (no
    # v1.76.1 is served). The official image listens on every address, not localhost: the same variable.
    "jaeger": GoProgram(
        "jaeger", "github.com/jaegertracing/jaeger/cmd/jaeger", "/cmd/jaeger/jaeger-linux", "10001",
        env={"JAEGER_LISTEN_HOST": "0.0.0.0"},  # noqa: S104 (the pod's own addresses)
        built_from="v1.76.0 (Jaeger v2.14.0)",
    ),
    "metrics-server": GoProgram(
        "metrics-server", "sigs.k8s.io/metrics-server/cmd/metrics-server", "/metrics-server", "65534"
    ),
    "prometheus-operator": GoProgram(
        "prometheus-operator", "github.com/prometheus-operator/prometheus-operator/cmd/operator",
        "/bin/operator", "65534",
    ),
    "prometheus-config-reloader": GoProgram(
        "prometheus-operator",
        "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader",
        "/bin/prometheus-config-reloader", "65534",
    ),
    # Module v0.310.0 is Prometheus v3.10.0, chart kube-prometheus-stack 82.9.0's default. Only the
    # Kubernetes service discovery, the one the operator configures: the clouds' SDKs stay out of the build.
    "prometheus": GoProgram(
        "prometheus", "github.com/prometheus/prometheus/cmd/prometheus", "/bin/prometheus", "65534",
        tags="remove_all_sd,enable_kubernetes_sd",
    ),
    # Chart argo-rollouts 2.41.0 runs v1.9.0, built here at that version; it runs the service's canaries.
    "argo-rollouts": GoProgram(
        "argo-rollouts", "github.com/argoproj/argo-rollouts/cmd/rollouts-controller", "/bin/rollouts-controller",
        "999",
    ),
}  # fmt: skip
IMAGES |= {
    "traefik": "docker.io/library/traefik:v3.6.0",
    "jaeger": "docker.io/jaegertracing/jaeger:2.14.1",
    "metrics-server": "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
    "prometheus-operator": "quay.io/prometheus-operator/prometheus-operator:v0.89.0",
    "prometheus-config-reloader": "quay.io/prometheus-operator/prometheus-config-reloader:v0.89.0",
    "prometheus": "quay.io/prometheus/prometheus:v3.10.0",
    "argo-rollouts": "quay.io/argoproj/argo-rollouts:v1.9.0",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build")
    build.add_argument("names", nargs="+", choices=sorted(IMAGES))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("images: buildah and debootstrap need root here (no Docker engine, no rootless setup)")
    for name in args.names:
        archive(name)


def archive(name: str) -> Path:
    """Build `name` and write it as a docker-archive that `ctr images import` reads."""
    OUT.mkdir(parents=True, exist_ok=True)
    if base := BASES.get(name):
        _load(base)
    if name in ADDONS:
        _go_program(name, ADDONS[name])
    else:
        {"debian": _debian, "pause": _pause, "product-service": _service}.get(name, _containerfile)(name)
    target = OUT / f"{name}.tar"
    target.unlink(missing_ok=True)
    _buildah("push", IMAGES[name], f"docker-archive:{target}:{IMAGES[name]}")
    print(f"{name}: {IMAGES[name]}, {target.stat().st_size / 2**20:.0f} MiB archive", flush=True)
    return target


def _debian(name: str) -> None:
    if _in_store(name):
        print(f"{name}: reusing {IMAGES[name]} from {CACHE}", flush=True)
        return
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        rootfs = Path(scratch) / "rootfs"
        _run("debootstrap", "--variant=minbase", SUITE, str(rootfs), apt_mirror())
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
            (rootfs / cache).mkdir(parents=True)
        _from_rootfs(name, rootfs, ["--cmd", "/bin/bash"])


def _pause(name: str) -> None:
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        rootfs = Path(scratch)
        _run(
            "go", "-C", str(REPO / "harness/go/pause"), "build", "-trimpath", "-ldflags=-s -w",
            "-o", str(rootfs / "pause"), ".", env={**os.environ, "CGO_ENABLED": "0"},
        )  # fmt: skip
        _from_rootfs(name, rootfs, ["--entrypoint", '["/pause"]', "--user", "65535:65535"])


def _go_program(name: str, program: GoProgram) -> None:
    """The static binary alone, with /tmp (most charts mount a volume there; the others may write it)."""
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        rootfs = Path(scratch)
        (rootfs / "tmp").mkdir()
        (rootfs / "tmp").chmod(0o1777)  # as /tmp is everywhere (mkdir's mode would pass through the umask)
        _run(
            "go", "-C", str(REPO / "harness/go" / program.module), "build", "-trimpath", "-ldflags=-s -w",
            f"-tags={program.tags}", "-o", str(rootfs / program.path.lstrip("/")), program.package,
            env={**os.environ, "CGO_ENABLED": "0"},
        )  # fmt: skip
        env = [f"--env={key}={value}" for key, value in program.env.items()]
        _from_rootfs(name, rootfs, ["--entrypoint", json.dumps([program.path]), "--user", program.user, *env])


def _containerfile(name: str) -> None:
    """harness/e2e/images/NAME/Containerfile on its base; apt reads the mirror debootstrap wrote."""
    _buildah(
        "bud", "--pull=never", "--network=host", "--layers", "--build-arg", f"BASE={IMAGES[BASES[name]]}",
        "-t", IMAGES[name], str(CONTAINERFILES / name),
    )  # fmt: skip


def _service(name: str) -> None:
    """The repository's Dockerfile, on the Python stand-in, installing from a local wheelhouse."""
    wheels = CACHE / "wheels"
    _run(
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--dest", str(wheels), "-c", str(REPO / "constraints.txt"),
        "-r", str(REPO / "service/requirements.txt"), "grpcio-tools", "setuptools", "wheel",
        # redis needs it before Python 3.11.3, and the stand-in's Python is 3.11.2 (this one is newer).
        "async-timeout",
    )  # fmt: skip
    _buildah(
        "bud", "--pull=never", "--network=none", "--layers",
        "--from", IMAGES["python"],  # replaces the first FROM: the pinned base cannot be pulled here
        "--build-arg", "PIP_NO_INDEX=1", "--build-arg", "PIP_FIND_LINKS=/wheels",
        "--volume", f"{wheels}:/wheels:ro",
        "-t", IMAGES[name], "-f", str(REPO / "Dockerfile"), str(REPO),
    )  # fmt: skip


def _from_rootfs(name: str, rootfs: Path, config: list[str]) -> None:
    replaced = _image_id(name)
    container = _buildah("from", "--name", f"platform-e2e-{name}", "scratch", capture=True).strip()
    try:
        mount = Path(_buildah("mount", container, capture=True).strip())
        _run("cp", "-a", f"{rootfs}/.", str(mount))
        _buildah("config", *config, container)
        _buildah("commit", "--rm", container, IMAGES[name])
    except BaseException:
        _buildah("rm", container)
        raise
    # The image the tag named before is left untagged: removed, or the shared store grows by every
    # fresh clone's build (kept where an image built on it still needs it).
    if replaced and replaced != _image_id(name):
        subprocess.run([*_buildah_command(), "rmi", replaced], capture_output=True, check=False)


def _load(name: str) -> None:
    """Make the base image present in buildah's store: from its archive, or built."""
    if _in_store(name):
        return
    if (OUT / f"{name}.tar").exists():
        _buildah("pull", f"docker-archive:{OUT / f'{name}.tar'}")
    else:
        archive(name)


def _in_store(name: str) -> bool:
    return _image_id(name) is not None


def _image_id(name: str) -> str | None:
    """The id of the image IMAGES[name] tags in buildah's store; None if there is none."""
    listed = subprocess.run(
        [*_buildah_command(), "images", "--quiet", "--no-trunc", IMAGES[name]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode:
        return None
    return listed.stdout.strip() or None


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 sources or sources.list)."""
    sources = [*sorted(Path("/etc/apt").glob("sources.list.d/*.sources")), Path("/etc/apt/sources.list")]
    for source in sources:
        if source.exists() and (match := MIRROR.search(source.read_text())):
            return match.group(1)
    sys.exit("images: no Debian mirror found in /etc/apt (URIs: .../debian)")


def _buildah_command() -> list[str]:
    store = CACHE / "buildah"
    return [
        "buildah",
        "--root",
        str(store / "root"),
        "--runroot",
        str(store / "run"),
        "--storage-driver",
        "overlay",
    ]


def _buildah(*args: str, capture: bool = False) -> str:
    return _run(*_buildah_command(), *args, capture=capture)


def _run(*command: str, env: dict[str, str] | None = None, capture: bool = False) -> str:
    """Run `command`, its output shown (or returned when `capture`); stop on failure."""
    result = subprocess.run(
        command, stdout=subprocess.PIPE if capture else None, text=True, env=env, check=False
    )
    if result.returncode:
        sys.exit(f"images: `{' '.join(command[:6])} ...` failed (exit {result.returncode})")
    return result.stdout or ""


if __name__ == "__main__":
    main()
