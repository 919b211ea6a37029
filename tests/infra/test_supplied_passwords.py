"""Every generated password can be supplied as a stack secret instead (infra/passwords.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from config import SUPPLIABLE_SECRETS, ConfigError
from plan import Plan, run_plan

PlanFor = Callable[..., Plan]
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
SUPPLIED = {key: f"Supplied{key}0123456789abcdefghijklmnop" for key in SUPPLIABLE_SECRETS}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "local"])
def test_a_stack_that_supplies_every_password_declares_no_random_password(
    plan_for: PlanFor, cloud: str
) -> None:
    assert plan_for(cloud, "dev").of_type(RANDOM_PASSWORD), "the default path generates them"
    assert plan_for(cloud, "dev", **SUPPLIED).of_type(RANDOM_PASSWORD) == []


def test_supplied_passwords_reach_their_secrets_and_stay_secret(plan_for: PlanFor) -> None:
    plan = plan_for("local", "dev", **SUPPLIED)
    [data] = plan.objects("Secret", "platform-data")
    assert data.inputs["stringData"]["POSTGRES_PASSWORD"] == SUPPLIED["postgresPassword"]
    assert data.inputs["stringData"]["REDIS_PASSWORD"] == SUPPLIED["redisPassword"]
    assert data.is_secret(("stringData", "POSTGRES_PASSWORD"))
    [credentials] = [s for s in plan.objects("Secret", "products") if s.name == "credentials"]
    assert SUPPLIED["postgresPassword"] in credentials.inputs["stringData"]["DATABASE_URL"]
    assert credentials.inputs["stringData"]["JWT_SECRET"] == SUPPLIED["jwtSecret"]
    assert credentials.is_secret(("stringData", "DATABASE_URL"))


@pytest.mark.parametrize("value", ["short1", "has-punctuation-0123456789"])
def test_a_supplied_password_of_the_wrong_shape_stops_the_run(value: str) -> None:
    with pytest.raises(
        ConfigError, match=r"^platform:postgresPassword must be 16 or more letters and digits$"
    ):
        run_plan("dev", cloud="local", overrides={"postgresPassword": value})
