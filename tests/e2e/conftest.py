"""The e2e tier: the real Pulumi engine deploys the dev stack onto a real Kubernetes API server.

Fixtures, from the outside in:
- `cluster`: etcd, kube-apiserver, controller-manager, scheduler and kwok on loopback
  (harness/e2e/control_plane.py), stopped by PID when the session ends, however it ends;
- `real_cluster`: the same control plane with one real node instead (harness/e2e/node.py: containerd,
  kubelet, kube-proxy, CoreDNS; images built here by `make images`), for test_real_node.py;
- `chart_repository`: where the kwok tier's add-on charts come from. Offline (the default)
  `placeholder_charts`, a Helm repository of PLACEHOLDER charts (real names and versions, no contents)
  served on 127.0.0.1, because the charts' own repositories cannot be reached here;
  `E2E_CHARTS=<repository URL>` installs the real pinned charts from that mirror, `E2E_CHARTS=upstream`
  from their own repositories;
- `standin_charts`: the real node's repository: STAND-IN charts (harness/e2e/standin_charts.py) that run the
  real Traefik, Jaeger, metrics-server and Prometheus operator and Prometheus, built from their pinned Go
  modules, and placeholders for the rest (Argo CD and cluster-autoscaler, which the node does not run);
  with `E2E_CHARTS`, the real Traefik, Jaeger and metrics-server charts instead of their stand-ins;
- `checkout` (and `real_checkout`): a copy of this repository, where the test acts as a user: it sets
  the stack's secrets with `pulumi config set --secret` and runs `make up STACK=dev`, exactly as the
  README says; with the placeholders the kwok tier's stack also sets `platform:localTls`.

What this tier cannot see: with placeholders, what the real charts render; with the real charts on
kwok nodes, what their containers do (nothing runs: kwok marks pods ready and Job pods complete, so hook
Jobs "succeed" without running, and admission webhooks have no server behind them); the cloud
providers, always.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import control_plane
import images
import node
import pytest
from e2e_stack import REPO, SUPPLIED_SECRETS, TOOLS, Checkout
from served import served

# Where the e2e's add-on charts come from: "" (placeholders), a repository URL, or "upstream".
E2E_CHARTS = os.environ.get("E2E_CHARTS", "")


def pytest_report_header(config: pytest.Config) -> str:
    if not E2E_CHARTS:
        return (
            "e2e charts: PLACEHOLDERS on kwok, STAND-INS running the real programs on the real node "
            "(harness/e2e/placeholder_charts.py, standin_charts.py); E2E_CHARTS=<url>|upstream installs the real ones"
        )
    return f"e2e charts: the real pinned charts from {E2E_CHARTS} (on the real node: Traefik, Jaeger, metrics-server, Argo Rollouts)"


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [
        tool
        for tool in (
            *control_plane.CONTROL_PLANE,
            "kwok",
            "kubectl",
            "pulumi",
            "pulumi-language-python",
            "pulumi-resource-kubernetes",
            *node.COMPONENTS[1:],
        )
        if not (TOOLS / tool).exists()
    ]
    if missing:
        # A clear error, never a skip: the tier is part of `make test`.
        raise pytest.UsageError(
            f"tests/e2e needs {', '.join(missing)} in .tools/bin: run `make tools` (it builds them with Go 1.26+)"
        )
    if os.geteuid() != 0:
        raise pytest.UsageError(
            "tests/e2e runs a real node (network namespaces, mounts, cgroups), which needs root; "
            "`make test PYTEST_ARGS='--ignore=tests/e2e/test_real_node.py'` leaves it out"
        )
    if unbuilt := [name for name in images.IMAGES if not (images.OUT / f"{name}.tar").exists()]:
        raise pytest.UsageError(f"tests/e2e needs the images {', '.join(unbuilt)}: run `make images`")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[control_plane.Cluster]:
    with control_plane.Cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[control_plane.Cluster]:
    with control_plane.Cluster(tmp_path_factory.mktemp("real-cluster"), node="real") as running:
        yield running


@pytest.fixture(scope="session")
def placeholder_charts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _served_charts(tmp_path_factory, "placeholder_charts.py")


@pytest.fixture(scope="session")
def standin_charts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # With E2E_CHARTS, the real charts of the add-ons whose images are built here run on the node too.
    yield from _served_charts(tmp_path_factory, "standin_charts.py", *([E2E_CHARTS] if E2E_CHARTS else []))


def _served_charts(tmp_path_factory: pytest.TempPathFactory, writer: str, *args: str) -> Iterator[str]:
    """The Helm repository harness/e2e/`writer` writes, served on 127.0.0.1 while the session lasts."""
    root = tmp_path_factory.mktemp(writer.removesuffix(".py"))
    subprocess.run([sys.executable, str(REPO / "harness" / "e2e" / writer), str(root), *args], check=True)
    with served(root) as url:
        yield url


@pytest.fixture(scope="session")
def chart_repository(request: pytest.FixtureRequest) -> str | None:
    """platform:chartRepository of the kwok tier's stack; None: the charts' own repositories."""
    if E2E_CHARTS:
        return None if E2E_CHARTS == "upstream" else E2E_CHARTS
    return str(request.getfixturevalue("placeholder_charts"))


@pytest.fixture(scope="session")
def real_charts() -> bool:
    return bool(E2E_CHARTS)


@pytest.fixture(scope="session")
def checkout(
    tmp_path_factory: pytest.TempPathFactory,
    cluster: control_plane.Cluster,
    chart_repository: str | None,
    real_charts: bool,
) -> Checkout:
    user = _checkout(tmp_path_factory, cluster, chart_repository)
    # Every add-on but argo-rollouts: kwok's pods run nothing, so no controller would ever finish a Rollout
    # and `up` would wait for it in vain; the real node runs Rollouts with the real controller.
    for index, addon in enumerate(("kube-prometheus-stack", "jaeger", "argo-cd", "traefik")):
        user.pulumi("config", "set", "--path", f"platform:addons[{index}]", addon)
    # The local CA's objects meet the placeholder's cert-manager CRDs. Not with the real chart: its webhook
    # (failurePolicy Fail) has no server on kwok, so the API server would refuse every one of them.
    if not real_charts:
        user.pulumi("config", "set", "platform:localTls", "true")
    return user


@pytest.fixture(scope="session")
def real_checkout(
    tmp_path_factory: pytest.TempPathFactory, real_cluster: control_plane.Cluster, standin_charts: str
) -> Checkout:
    user = _checkout(tmp_path_factory, real_cluster, standin_charts)
    # Every add-on but Argo CD, which the GitOps test adds (its controllers run beside the API server).
    for index, addon in enumerate(("kube-prometheus-stack", "jaeger", "argo-rollouts", "traefik")):
        user.pulumi("config", "set", "--path", f"platform:addons[{index}]", addon)
    # The node has no registry: the data services run the stand-ins `make images` built.
    user.pulumi("config", "set", "platform:postgresImage", images.IMAGES["postgres"])
    user.pulumi("config", "set", "platform:redisImage", images.IMAGES["redis"])
    return user


def _checkout(
    tmp_path_factory: pytest.TempPathFactory, cluster: control_plane.Cluster, chart_repository: str | None
) -> Checkout:
    root = tmp_path_factory.mktemp("checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    # The environments `make setup` built, shared rather than rebuilt.
    for prepared in (".venv", ".venv-checkov", ".tools"):
        (root / prepared).symlink_to(REPO / prepared)
    home = tmp_path_factory.mktemp("pulumi-home")
    env = {
        **cluster.env,
        "PATH": f"{TOOLS}{os.pathsep}{os.environ['PATH']}",
        "PULUMI_HOME": str(home),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_CONFIG_PASSPHRASE": "e2e-passphrase",
        "PULUMI_BACKEND_URL": f"file://{root / '.pulumi-state'}",
    }
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    (root / ".pulumi-state").mkdir()
    user = Checkout(root, env)
    user.pulumi("stack", "init", "--secrets-provider", "passphrase")
    if chart_repository:
        user.pulumi("config", "set", "platform:chartRepository", chart_repository)
    for key, value in SUPPLIED_SECRETS.items():
        user.pulumi("config", "set", "--secret", f"platform:{key}", value)
    return user
