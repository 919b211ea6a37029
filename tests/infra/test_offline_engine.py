"""The offline engine is no more lenient than the real one: secretness, auto-names, isolation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from config import ConfigError
from plan import Plan, run_plan

PlanFor = Callable[..., Plan]


def test_a_generated_password_comes_back_as_a_secret_output(plan_for: PlanFor) -> None:
    # The SDK asks for RandomPassword.result as an additional secret output; the engine honours it,
    # so the Secret built from it carries the secret mark all the way into its inputs.
    plan = plan_for("local", "dev")
    [secret] = plan.objects("Secret", "platform-data")
    assert secret.secret_paths == (("stringData",),)


def test_kubernetes_objects_without_a_name_get_the_providers_auto_name(plan_for: PlanFor) -> None:
    plan = plan_for("local", "dev")
    [job] = plan.objects("Job", "products")
    name = job.metadata["name"]
    assert name.startswith("migrate-") and len(name) == len("migrate-") + 8
    assert job.metadata["annotations"]["pulumi.com/autonamed"] == "true"
    # Stable between runs, so plans diff cleanly.
    assert run_plan("dev", cloud="local").objects("Job", "products")[0].metadata["name"] == name


def test_a_failed_run_leaves_the_next_run_unaffected(plan_for: PlanFor) -> None:
    with pytest.raises(ConfigError):
        run_plan("dev", cloud="local", overrides={"profile": "nope"})
    again = run_plan("dev", cloud="local")
    assert [r.urn for r in again.resources] == [r.urn for r in plan_for("local", "dev").resources]


def test_secure_stack_values_stay_secret_offline(plan_for: PlanFor) -> None:
    from plan import stack_config

    config, _ = stack_config("dev", overrides={"jwtSecret": "x" * 40})
    assert config["platform:jwtSecret"] == "x" * 40
    plan = plan_for("local", "dev", jwtSecret="s" * 40)
    [secret] = [s for s in plan.objects("Secret", "products") if s.name == "credentials"]
    assert secret.inputs["stringData"]["JWT_SECRET"] == "s" * 40
    assert secret.is_secret(("stringData", "JWT_SECRET"))
    assert not plan.of_type("random:index/randomPassword:RandomPassword") or all(
        r.name != "jwt-secret" for r in plan.of_type("random:index/randomPassword:RandomPassword")
    )


def test_encrypted_stack_values_become_secret_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import plan as plan_module

    (tmp_path / "Pulumi.yaml").write_text((plan_module.REPO_DIR / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.vault.yaml").write_text(
        "config:\n  platform:cloud: local\n  platform:jwtSecret:\n    secure: v1:AAAA:BBBB\n"
    )
    monkeypatch.setattr(plan_module, "REPO_DIR", tmp_path)
    config, secret_keys = plan_module.stack_config("vault")
    assert secret_keys == ["platform:jwtSecret"]
    assert config["platform:jwtSecret"] == plan_module.OFFLINE_SECRET
    assert config["platform:profile"] == "dev", "Pulumi.yaml defaults apply like the CLI applies them"


@pytest.mark.parametrize(
    ("cloud", "type_", "reference"),
    [
        ("aws", "aws:rds/instance:Instance", "parameterGroupName"),
        ("aws", "aws:rds/instance:Instance", "dbSubnetGroupName"),
        ("aws", "aws:elasticache/replicationGroup:ReplicationGroup", "subnetGroupName"),
        ("gcp", "gcp:sql/databaseInstance:DatabaseInstance", "settings.ipConfiguration.allocatedIpRange"),
        ("gcp", "gcp:container/nodePool:NodePool", "nodeConfig.serviceAccount"),
    ],
)
def test_cloud_resources_without_a_name_get_the_engines_auto_name(plan_for, cloud, type_, reference):
    """The engine names them before preview, so what refers to them sees a name, never a blank."""
    value = plan_for(cloud, "prod").of_type(type_)[0].inputs
    for key in reference.split("."):
        value = value[key]
    assert isinstance(value, str) and value
