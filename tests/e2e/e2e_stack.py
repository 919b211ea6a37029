"""What the e2e tests share: the cluster's tools, the user's checkout, reading the API server."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"

from control_plane import Cluster, die_with_parent, terminate  # noqa: E402 (harness/e2e, on pytest's pythonpath)
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
