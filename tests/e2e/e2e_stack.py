"""What the e2e tests share: the cluster's tools, the user's checkout, reading the API server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"

from control_plane import Cluster, die_with_parent, terminate  # noqa: E402 (harness/e2e, on pytest's pythonpath)
from product_service.devservers import EmbeddedValkey  # noqa: E402
from standin_charts import module_dir  # noqa: E402

STACK = "dev"
# The passwords the dev stack would generate with pulumi_random, whose provider no registry serves:
# the e2e supplies them as the stack's secrets instead (infra/passwords.py).
SUPPLIED_SECRETS = {
    "postgresPassword": "E2ePostgresPassword0123456789",
    "redisPassword": "E2eRedisPassword0123456789",
    "grafanaAdminPassword": "E2eGrafanaPassword0123456789",
    "jwtSecret": "E2eJwtSecretThatIsLongEnough0123456789",
}
PLATFORM_NAMESPACES = (
    "products",
    "platform-data",
    "monitoring",
    "node-exporter",
    "tracing",
    "argocd",
    "argo-rollouts",
    "ingress",
    "cert-manager",
)


@dataclass
class Checkout:
    """A user's copy of the repository, pointed at the e2e cluster."""

    root: Path
    env: dict[str, str]

    def make(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(["make", "--no-print-directory", *args], check)

    def pulumi(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pulumi ARGS`; `stdin` is what it reads (a secret's value, kept out of argv and the log)."""
        return self._run([str(TOOLS / "pulumi"), *args, "--stack", STACK, "--non-interactive"], check, stdin)

    def state(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "export").stdout)

    def _run(
        self, command: list[str], check: bool, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command, cwd=self.root, env=self.env, input=stdin, capture_output=True, text=True, timeout=600
        )
        # Everything the engine says, warnings about plugin versions included, goes to the test log.
        print(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}")
        if check and result.returncode:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result


def get(cluster: Cluster, *what: str) -> Any:
    """`kubectl get ... -o json`, parsed."""
    return json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)


def namespaces(cluster: Cluster) -> set[str]:
    return {ns["metadata"]["name"] for ns in get(cluster, "namespaces")["items"]}


@contextlib.contextmanager
def cert_manager_controllers(cluster: Cluster, log: Path, *flags: str) -> Iterator[None]:
    """cert-manager's own controllers (harness/go/cert-manager, a stand-in main) beside the API server while
    the `with` lasts, stopped by PID. They need cert-manager's CRDs, which the placeholder chart's open ones
    are not (no status, no CertificateRequest): the pinned module's replace them first."""
    crds = module_dir("cert-manager", "github.com/cert-manager/cert-manager") / "deploy" / "crds"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=50s")
    with log.open("w") as output:
        controller = subprocess.Popen(
            [str(TOOLS / "cert-manager-controller"), f"--kubeconfig={cluster.kubeconfig}", *flags],
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            yield
        finally:
            terminate(controller.pid)


@contextlib.contextmanager
def argo_cd_controllers(cluster: Cluster, root: Path, git_host: str, git_ca: Path) -> Iterator[None]:
    """Argo CD's application controller and repo server (harness/go/argo-cd) beside the API server while the
    `with` lasts, with a Valkey for their cache, all stopped by PID. They get what the chart would give them
    and the placeholder does not: Argo CD's CRDs from the pinned module, its two settings objects (empty:
    the defaults), and the Git server's CA where argocd-tls-certs-cm would put it (a file named by the host)."""
    crds = module_dir("argo-cd", "github.com/argoproj/argo-cd/v3") / "manifests" / "crds"
    for crd in ("application-crd.yaml", "appproject-crd.yaml"):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds / crd))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=50s")
    root.mkdir(parents=True)
    settings = root / "settings.json"
    metadata = {"namespace": "argocd", "labels": {"app.kubernetes.io/part-of": "argocd"}}
    settings.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, **metadata}}
        for kind, name in (("ConfigMap", "argocd-cm"), ("Secret", "argocd-secret"))
    ]}))  # fmt: skip
    cluster.kubectl("apply", "-f", str(settings))
    tls = root / "tls"
    tls.mkdir()
    shutil.copy(git_ca, tls / git_host)
    cache = EmbeddedValkey(root / "valkey")
    cache.start()
    env = {
        **os.environ,
        "PATH": f"{TOOLS}:{os.environ['PATH']}",  # the repo server runs git and kustomize
        "ARGOCD_TLS_DATA_PATH": str(tls),
        # No GnuPG keyring (the image keeps it under /app/config): the AppProject asks for no signed commits.
        "ARGOCD_GPG_ENABLED": "false",
        "TMPDIR": str(root),
        # Argo CD's own switch for running outside a pod: the in-cluster destination is reached through
        # KUBECONFIG, as the controller itself is, instead of a pod's service account.
        "KUBECONFIG": str(cluster.kubeconfig),
        "ARGOCD_FAKE_IN_CLUSTER": "true",
    }
    common = [f"--redis=127.0.0.1:{cache.port}", "--loglevel=info"]
    programs = {
        "argocd-repo-server": [*common, "--address=127.0.0.1", "--metrics-address=127.0.0.1"],
        "argocd-application-controller": [*common, "--namespace=argocd", "--repo-server=127.0.0.1:8081"],
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        for program, args in programs.items():
            with (root / f"{program}.log").open("w") as output:
                started.append(
                    subprocess.Popen(
                        [str(TOOLS / "argocd"), *args],
                        env={**env, "ARGOCD_BINARY_NAME": program},
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        preexec_fn=die_with_parent,
                    )
                )
        yield
    finally:
        for process in reversed(started):
            terminate(process.pid)
        cache.stop()
