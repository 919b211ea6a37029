"""What every pod of the product service shares, the servers' and the migration Job's alike: the image,
run as its `app` user on a read-only root, the service account, and the CAs Postgres and Redis chain to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from kube import container_security

APP_UID = 10001  # the image's `app` user (see the Dockerfile)
# A mount path inside the container (the root filesystem is read-only), not a file here.
SCRATCH_DIR = "/tmp"  # noqa: S108
# Where pods find the CAs that Postgres's and Redis's certificates chain to, if a cloud names them:
# each trust ConfigMap is mounted at TRUST_DIR/<its volume name>.
TRUST_DIR = "/etc/platform"


@dataclass(frozen=True)
class Pods:
    image: str
    service_account: pulumi.Input[str]
    trust: list[dict[str, Any]]  # ConfigMap volumes holding the CAs, each mounted under TRUST_DIR

    def container(
        self,
        name: str,
        env: dict[str, Any],
        resources: dict[str, Any],
        command: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A container of the image with `env` (its `env` and `envFrom`); `command` replaces the image's."""
        return {
            "name": name,
            "image": self.image,
            **env,
            "resources": resources,
            "securityContext": container_security(runAsUser=APP_UID, runAsGroup=APP_UID),
            "volumeMounts": [{"name": "tmp", "mountPath": SCRATCH_DIR}],
            **({"command": list(command)} if command else {}),
        }

    def spec(self, container: dict[str, Any], restart_policy: str) -> dict[str, Any]:
        """The pod spec around `container`, with the CAs mounted into it."""
        mounts = [
            {"name": v["name"], "mountPath": f"{TRUST_DIR}/{v['name']}", "readOnly": True} for v in self.trust
        ]
        container = {**container, "volumeMounts": [*container["volumeMounts"], *mounts]}
        return {
            "serviceAccountName": self.service_account,
            "automountServiceAccountToken": False,
            "restartPolicy": restart_policy,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": APP_UID,
                "runAsGroup": APP_UID,
                "fsGroup": APP_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            # gunicorn's Prometheus multiprocess files and Python's temp files: the root fs is read-only.
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, *self.trust],
        }
