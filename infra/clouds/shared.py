"""What the cloud modules build alike: names from the stack, secret outputs, and a kubeconfig whose user
runs a credential plugin (AWS's and GKE's; AKS hands out its own, which clouds/azure.py adapts)."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi


def platform_name(stack: str) -> str:
    """The stack's name for cloud resources that are named once per stack (a cluster, a database)."""
    return f"platform-{dns_label(stack)}"


def dns_label(text: str) -> str:
    """A stack name as cloud resource names accept it: lowercase letters, digits, single hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def secret(value: pulumi.Input[str]) -> pulumi.Output[str]:
    """`value` as a secret output: passwords, tokens, kubeconfigs (typed, where Output.secret is not)."""
    return pulumi.Output.secret(value)


def plugin_kubeconfig(name: str, server: str, ca_data: str, plugin: dict[str, Any]) -> str:
    """A kubeconfig for one cluster whose user asks `plugin` (an exec credential plugin's `command`,
    `args` and any further fields) for a short-lived token: no credential is stored in it."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}
            ],
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            **plugin,
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
    )
