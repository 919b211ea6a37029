"""The pack's one piece of configuration: which environment a stack is (`prod` or `dev`).

Rules that only make sense in production (HA, deletion protection, backup length, replica minimums)
declare `ENVIRONMENT_SCHEMA` and read the value with `is_prod`. Pulumi's policy config is keyed by
policy name, so CI passes a file that names each of those rules (`policies/config/<environment>.json`,
kept in step with the rules by `config_file`). Without config the strict setting applies: prod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import PolicyConfigSchema

ENVIRONMENTS = ("prod", "dev")
STRICT = "prod"

ENVIRONMENT_SCHEMA = PolicyConfigSchema(
    properties={
        "environment": {
            "type": "string",
            "enum": list(ENVIRONMENTS),
            "default": STRICT,
            "description": "prod applies the production-only checks; dev skips them",
        }
    }
)


def is_prod(config: Mapping[str, Any]) -> bool:
    """True unless the policy's config says `environment: dev` (missing or unknown: strict)."""
    return config.get("environment", STRICT) != "dev"


def check_environment(environment: str) -> str:
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {', '.join(ENVIRONMENTS)} (got '{environment}')")
    return environment


def config_file(policy_names: Iterable[str], environment: str) -> dict[str, dict[str, str]]:
    """The `--policy-pack-config` document that sets `environment` for every rule that reads it."""
    check_environment(environment)
    return {name: {"environment": environment} for name in sorted(policy_names)}
