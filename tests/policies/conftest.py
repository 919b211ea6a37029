"""Fixtures for the policy pack's tests; the machinery lives in policy_harness.py."""

from __future__ import annotations

import pytest
from policy_harness import Engine


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The pack as configured with no --policy-pack-config: strict (prod)."""
    return Engine()


@pytest.fixture(scope="session")
def dev_engine() -> Engine:
    """The pack with --policy-pack-config policies/config/dev.json."""
    return Engine("dev")
