"""The one list of policies: `__main__.py` serves it to the engine, `gate.py` runs it offline."""

from __future__ import annotations

from pulumi_policy import Policy

from .rules import aws, azure, edge, gcp, helm, kubernetes, stack, tls

PACK_NAME = "platform-guardrails"

POLICIES: list[Policy] = [
    *kubernetes.POLICIES,
    *edge.POLICIES,
    *helm.POLICIES,
    *aws.POLICIES,
    *gcp.POLICIES,
    *azure.POLICIES,
    *stack.POLICIES,
    *tls.POLICIES,
]


def environment_aware_policies() -> list[str]:
    """Names of the rules whose verdict depends on the `environment` setting."""
    return [
        p.name
        for p in POLICIES
        if p.config_schema is not None and "environment" in p.config_schema.properties
    ]
