"""The offline policy gate: every policy of the pack over the resources of an offline plan.

    violations = evaluate(plan.resources, "prod")      # or evaluate(plan): environment from its profile
    write_report(out_dir / "policy-report.json", violations)
    print(format_table(violations))

Each resource is handed to the rules exactly as the engine's analyzer hands it over: the inputs
(after the provider's Check, e.g. Kubernetes auto-names) go through a protobuf Struct (so numbers
become floats), secrets travel in Pulumi's secret envelope and are unwrapped by pulumi_policy's own
deserializer, and the result is wrapped in its unknown-checking proxy. Stack rules get every
resource with its outputs, as `AnalyzeStack` does after an update. The rules are the objects of
`pack.POLICIES`, the same list `__main__.py` serves to the engine.

A rule that meets an unknown value is reported at its own level ("cannot be verified"): the offline
plan has no unknowns of its own, so one means the gate cannot vouch for the rule, and it fails closed.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from inspect import isawaitable
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from .environment import STRICT, check_environment
from .pack import PACK_NAME, POLICIES

PACK_LEVEL = EnforcementLevel.ADVISORY  # the PolicyPack's default in __main__.py


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str  # "mandatory" or "advisory"
    urn: str  # "" for a finding about the whole stack
    message: str

    @property
    def mandatory(self) -> bool:
        return self.level == EnforcementLevel.MANDATORY.value


def evaluate(resources: Any, environment: str | None = None) -> list[Violation]:
    """Run every policy over `resources` (records of an offline plan, or a whole plan).

    A record is a mapping or an object with `type`, `name`, `urn`, `inputs`, and optionally
    `parent`, `outputs` and `secret_paths` (paths into `inputs` whose values were secrets).
    `environment` is "prod" or "dev"; for a plan it defaults to its `platform:profile`.
    """
    if environment is None:
        environment = _environment_of(resources)
    check_environment(environment)
    records = [_Record.of(r) for r in getattr(resources, "resources", resources)]
    violations: list[Violation] = []
    for policy in POLICIES:
        config = {"environment": environment} if policy.config_schema is not None else None
        level = (policy.enforcement_level or PACK_LEVEL).value
        if isinstance(policy, ResourceValidationPolicy):
            for record in records:
                violations += _run_resource_policy(policy, record, config, level)
        elif isinstance(policy, StackValidationPolicy):
            violations += _run_stack_policy(policy, records, config, level)
    return violations


def has_mandatory_violations(violations: Iterable[Violation]) -> bool:
    return any(v.mandatory for v in violations)


def report_json(violations: Sequence[Violation]) -> dict[str, Any]:
    ordered = sorted(violations, key=_order)
    return {
        "pack": PACK_NAME,
        "policies": len(POLICIES),
        "mandatory": sum(v.mandatory for v in ordered),
        "advisory": sum(not v.mandatory for v in ordered),
        "violations": [asdict(v) for v in ordered],
    }


def write_report(path: Path | str, violations: Sequence[Violation]) -> None:
    Path(path).write_text(json.dumps(report_json(violations), indent=2) + "\n")


def format_table(violations: Sequence[Violation]) -> str:
    """A short terminal table, mandatory findings first."""
    mandatory = sum(v.mandatory for v in violations)
    head = f"Policy gate ({len(POLICIES)} policies): {mandatory} mandatory, {len(violations) - mandatory} advisory"
    if not violations:
        return head + " - all clear"
    rows = [(v.level, v.policy, _resource_label(v.urn), v.message) for v in sorted(violations, key=_order)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [head]
    lines += [f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)


# The offline plan (harness/plan/plan.py) calls the table by this name.
table = format_table


# --- building the engine's arguments ----------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    type: str
    name: str
    urn: str
    parent: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    secret_paths: tuple[tuple[str | int, ...], ...]

    @classmethod
    def of(cls, r: Any) -> _Record:
        def field(name: str, default: Any = None) -> Any:
            return r.get(name, default) if isinstance(r, Mapping) else getattr(r, name, default)

        return cls(
            type=str(field("type")),
            name=str(field("name")),
            urn=str(field("urn")),
            parent=str(field("parent") or ""),
            inputs=field("inputs") or {},
            outputs=field("outputs") or {},
            secret_paths=tuple(tuple(p) for p in field("secret_paths", ()) or ()),
        )

    def engine_props(self, outputs: bool = False) -> Mapping[str, Any]:
        """Properties as the analyzer receives them: through protobuf, unknown-checking proxy."""
        if outputs and self.outputs:
            return _as_engine_sends(dict(self.outputs), ())
        return _as_engine_sends(dict(self.inputs), self.secret_paths)


def _as_engine_sends(props: dict[str, Any], secret_paths: Sequence[tuple[str | int, ...]]) -> Any:
    wire = json.loads(json.dumps(props, default=str))  # what a Struct can carry
    for path in sorted(secret_paths, key=len, reverse=True):
        _wrap_secret(wire, path)
    struct = struct_pb2.Struct()
    struct.update(wire)
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _wrap_secret(tree: Any, path: tuple[str | int, ...]) -> None:
    if not path:
        return
    *parents, last = path
    node = tree
    for key in parents:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    try:
        node[last] = {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": copy.deepcopy(node[last])}
    except (KeyError, IndexError, TypeError):
        return


def _options(parent: str) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent or None)


def _run_resource_policy(
    policy: ResourceValidationPolicy, record: _Record, config: dict[str, str] | None, level: str
) -> list[Violation]:
    found: list[Violation] = []
    args = ResourceValidationArgs(
        record.type, record.engine_props(), record.urn, record.name, _options(record.parent), None, config
    )

    def report(message: str, urn: str | None = None) -> None:
        found.append(Violation(policy.name, level, record.urn, message))

    _run(policy, args, report, found, level, record.urn)
    return found


def _run_stack_policy(
    policy: StackValidationPolicy, records: list[_Record], config: dict[str, str] | None, level: str
) -> list[Violation]:
    found: list[Violation] = []
    resources = {
        r.urn: PolicyResource(
            r.type, r.engine_props(outputs=True), r.urn, r.name, _options(r.parent), None, None, [], {}
        )
        for r in records
    }
    for r in records:
        resources[r.urn].parent = resources.get(r.parent)
    args = StackValidationArgs(list(resources.values()), config)

    def report(message: str, urn: str | None = None) -> None:
        found.append(Violation(policy.name, level, urn or "", message))

    _run(policy, args, report, found, level, "")
    return found


def _run(policy: Policy, args: Any, report: Any, found: list[Violation], level: str, urn: str) -> None:
    try:
        result = policy.validate(args, report)  # type: ignore[attr-defined]
        if isawaitable(result):
            asyncio.run(result)  # type: ignore[arg-type]
    except UnknownValueError as unknown:
        found.append(Violation(policy.name, level, urn, f"cannot be verified: {unknown.message}"))
    except _NotApplicableError:
        return
    except Exception as exc:
        raise RuntimeError(f"policy {policy.name} failed on {urn or 'the stack'}: {exc}") from exc


def _environment_of(plan: Any) -> str:
    config = getattr(plan, "config", None)
    if not isinstance(config, Mapping):
        return STRICT
    return "prod" if config.get("platform:profile", "dev") == "prod" else "dev"


def _order(v: Violation) -> tuple[bool, str, str, str]:
    return (not v.mandatory, v.policy, v.urn, v.message)


def _resource_label(urn: str) -> str:
    if not urn:
        return "(stack)"
    parts = urn.split("::")
    return f"{parts[-2].split('$')[-1]}::{parts[-1]}" if len(parts) >= 4 else urn
