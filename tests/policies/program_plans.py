"""The program's offline plans for the policy tests, cached for the whole session."""

from __future__ import annotations

from typing import Any

from plan import Plan, run_plan

CLOUDS = ("aws", "gcp", "azure", "local")
PROFILES = ("dev", "prod")

_plans: dict[tuple[str, str, tuple[tuple[str, Any], ...]], Plan] = {}


def plan_of(cloud: str, profile: str, **overrides: Any) -> Plan:
    """The committed stack named like the profile, on `cloud`, with `platform:` overrides."""
    key = (cloud, profile, tuple(sorted(overrides.items())))
    if key not in _plans:
        _plans[key] = run_plan(profile, cloud=cloud, overrides={"profile": profile, **overrides})
    return _plans[key]


def committed_plan(stack: str) -> Plan:
    """A committed stack exactly as `make plan STACK=<stack>` runs it (its own cloud and profile)."""
    key = (stack, "", ())
    if key not in _plans:
        _plans[key] = run_plan(stack)
    return _plans[key]
