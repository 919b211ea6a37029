"""The harness for every infra test: the real program under the offline engine (`harness/plan/plan.py`).

    def test_something(plan_for):
        plan = plan_for("aws", "prod")                        # committed Pulumi.prod.yaml, cloud aws
        plan = plan_for("gcp", "dev", highAvailability=True)  # any platform: key overridden
        plan.objects("Deployment"), plan.of_type("aws:rds/instance:Instance"), r.inputs, r.is_secret(path)

`plan_for(cloud, profile, **overrides)` runs the program for the committed stack named like the
profile (`Pulumi.dev.yaml` / `Pulumi.prod.yaml`) with `platform:cloud` = cloud and
`platform:profile` = profile, then each override (plain keys are `platform:` keys; a namespaced key
like `aws:region` is spelled through `plan_for(..., **{"aws:region": "eu-west-1"})`; None removes
a key). Results are cached per argument set for the whole session, so tests may share plans
freely; treat them as read-only. A failing program raises its own error (e.g. `ConfigError`);
use `run_plan` from `plan` directly with `pytest.raises` to test failures.

Pulumi's runtime is process-global: `run_plan` installs a fresh runtime for every run and removes
it afterwards, so runs in one process are independent (see `_fresh_runtime` in plan.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from plan import Plan, run_plan

CLOUDS = ("aws", "gcp", "azure", "local")
PROFILES = ("dev", "prod")

_cache: dict[tuple[str, str, tuple[tuple[str, str | None], ...]], Plan] = {}


def plan_for_args(cloud: str, profile: str, **overrides: Any) -> Plan:
    """The plan for `cloud` x `profile` with overrides; cached per argument set."""
    settings = {"profile": profile, **overrides}
    key = (cloud, profile, tuple(sorted((k, _text(v)) for k, v in settings.items())))
    if key not in _cache:
        _cache[key] = run_plan(profile, cloud=cloud, overrides=settings)
    return _cache[key]


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


@pytest.fixture(scope="session")
def plan_for() -> Callable[..., Plan]:
    return plan_for_args
