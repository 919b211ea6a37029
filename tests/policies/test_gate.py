"""The offline gate runs the same policy objects as the engine and reaches the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import policy_fixtures as fx
import pytest
import yaml
from policy_harness import UNKNOWN, Engine, changed, urn_of
from test_resource_rules import CASES, Case

from policies import gate
from policies.environment import config_file
from policies.pack import POLICIES, environment_aware_policies

REPO = Path(__file__).resolve().parents[2]


def record(type_: str, name: str, inputs: dict, **extra: object) -> dict:
    return {"type": type_, "name": name, "urn": urn_of(type_, name), "parent": "", "inputs": inputs, **extra}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_gate_and_engine_agree_on_every_non_compliant_case(engine: Engine, case: Case) -> None:
    props = changed(case.build(), *case.bad)
    diagnostics = engine.analyze(case.type, props, name="subject")
    diagnostics += engine.analyze_stack([(case.type, "subject", props)])
    from_engine = {(d.policy, d.level, d.message.split("\n", 1)[1]) for d in diagnostics}
    from_gate = {
        (v.policy, v.level, v.message) for v in gate.evaluate([record(case.type, "subject", props)], "prod")
    }
    assert from_gate == from_engine


def test_a_violation_names_policy_level_resource_and_message() -> None:
    bad = record(fx.RDS, "postgres", changed(fx.rds(), ("publiclyAccessible", True)))
    assert gate.evaluate([bad], "prod") == [
        gate.Violation(
            "aws-rds-not-public", "mandatory", urn_of(fx.RDS, "postgres"), "publiclyAccessible is true"
        )
    ]


def test_the_environment_switches_the_prod_only_checks() -> None:
    single_az = [record(fx.RDS, "postgres", changed(fx.rds(), ("multiAz", False)))]
    assert [v.policy for v in gate.evaluate(single_az, "prod")] == ["aws-rds-multi-az"]
    assert gate.evaluate(single_az, "dev") == []


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="environment must be one of prod, dev"):
        gate.evaluate([], "staging")


def test_an_unknown_value_fails_closed_at_the_rules_level() -> None:
    unknown = [record(fx.RDS, "postgres", changed(fx.rds(), ("publiclyAccessible", UNKNOWN)))]
    violations = [v for v in gate.evaluate(unknown, "prod") if v.policy == "aws-rds-not-public"]
    assert [v.level for v in violations] == ["mandatory"]
    assert (
        violations[0].message
        == "cannot be verified: string value at .publiclyAccessible can't be known during preview"
    )
    assert gate.has_mandatory_violations(violations)


def test_secret_inputs_are_seen_unwrapped_as_the_engine_sees_them() -> None:
    leaked = record(
        fx.CONFIG_MAP,
        "cfg",
        changed(fx.config_map(), ("data.API_TOKEN", "abcdef0123456789")),
        secret_paths=[("data",)],
    )
    assert [v.policy for v in gate.evaluate([leaked], "prod")] == ["k8s-no-secret-literals"]


def test_stack_rules_see_outputs_when_the_plan_recorded_them() -> None:
    password = "Zx8vQ2mN4kL7pR9tW3yB6cD1"
    stack = [
        record(fx.RANDOM_PASSWORD, "pw", {"length": 24}, outputs={"length": 24, "result": password}),
        record(fx.CONFIG_MAP, "cfg", changed(fx.config_map(), ("data.NOTE", f"pw is {password}"))),
    ]
    assert [v.policy for v in gate.evaluate(stack, "prod")] == ["no-plaintext-secrets"]


def test_a_plan_object_brings_its_own_environment() -> None:
    plan = SimpleNamespace(
        config={"platform:profile": "dev"},
        resources=[record(fx.RDS, "postgres", changed(fx.rds(), ("multiAz", False)))],
    )
    assert gate.evaluate(plan) == []


def test_report_and_table(tmp_path: Path) -> None:
    violations = gate.evaluate(
        [
            record(fx.RDS, "postgres", changed(fx.rds(), ("storageEncrypted", False))),
            record(fx.SERVICE, "api", fx.service("LoadBalancer")),
        ],
        "prod",
    )
    gate.write_report(tmp_path / "policy-report.json", violations)
    report = json.loads((tmp_path / "policy-report.json").read_text())
    assert (report["mandatory"], report["advisory"], report["policies"]) == (1, 1, len(POLICIES))
    assert report["violations"][0] == {
        "policy": "aws-rds-storage-encrypted",
        "level": "mandatory",
        "urn": urn_of(fx.RDS, "postgres"),
        "message": "storageEncrypted is not true",
    }
    table = gate.format_table(violations).splitlines()
    assert table[0] == f"Policy gate ({len(POLICIES)} policies): 1 mandatory, 1 advisory"
    assert (
        "mandatory  aws-rds-storage-encrypted" in table[1]
        and "aws:rds/instance:Instance::postgres" in table[1]
    )
    assert gate.format_table([]).endswith("all clear")


COMMITTED_STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in REPO.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_every_committed_stack_has_a_policy_config_for_its_profile(stack: str) -> None:
    """CI passes policies/config/<stack>.json to `pulumi preview`; it must match what the gate uses."""
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text()).get("config") or {}
    environment = "prod" if config.get("platform:profile", "dev") == "prod" else "dev"
    committed = json.loads((REPO / "policies" / "config" / f"{stack}.json").read_text())
    assert committed == config_file(environment_aware_policies(), environment)


def test_every_rule_explains_itself_and_names_are_unique() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names))
    assert all(p.enforcement_level is not None and len(p.description) > 40 for p in POLICIES)


def test_the_docs_list_every_rule_with_its_level() -> None:
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[2]
        for line in (REPO / "docs" / "policies.md").read_text().splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == {p.name for p in POLICIES}
    for p in POLICIES:
        assert p.enforcement_level is not None and p.enforcement_level.value in rows[p.name], p.name
        assert ("prod" in rows[p.name]) == (p.config_schema is not None), p.name
