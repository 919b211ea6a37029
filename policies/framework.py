"""How every rule is declared, reads properties and reports.

A rule is a plain function over one resource (`resource_rule`) or the whole stack (`stack_rule`);
the decorators turn it into the `pulumi_policy` object the engine and the offline gate both run.

Properties arrive as the engine sends them: camelCase keys, numbers as floats, secrets unwrapped,
and wrapped in pulumi_policy's unknown-checking proxy, which raises `UnknownValueError` when a rule
touches a value that is not known during preview. A rule never catches that itself: it runs each
independent check inside `findings.verifying()`, so one unknown value skips only that check, every
other check still reports, and at the end `finish()` re-raises the unknowns together. The engine
turns that into its "can't run policy ... during preview" diagnostic (and enforces the rule for real
during `pulumi up`, when every input is known); the offline gate turns it into a violation at the
rule's own level. Either way an unknown is never silently compliant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from .environment import ENVIRONMENT_SCHEMA, is_prod

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY


class Findings:
    """Collects one rule's verdict on one resource (or stack)."""

    def __init__(self, report_violation: ReportViolation) -> None:
        self._report = report_violation
        self._unknowns: list[UnknownValueError] = []

    def violation(self, message: str, urn: str | None = None) -> None:
        self._report(message, urn)

    @contextmanager
    def verifying(self) -> Iterator[None]:
        """Run one independent check; an unknown value ends only this check."""
        try:
            yield
        except UnknownValueError as unknown:
            self._unknowns.append(unknown)

    def finish(self) -> None:
        if not self._unknowns:
            return
        first = self._unknowns[0]
        first.message = "; ".join(dict.fromkeys(u.message for u in self._unknowns))
        raise first


@dataclass(frozen=True)
class Subject:
    """The resource a rule is looking at."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    prod: bool


ResourceCheck = Callable[[Subject, Findings], None]
StackCheck = Callable[[Sequence[Any], Findings, bool], None]


def resource_rule(
    name: str,
    description: str,
    types: Sequence[str] | Callable[[str], bool],
    level: EnforcementLevel = MANDATORY,
    environment_aware: bool = False,
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Turn `check(subject, findings)` into a policy over resources of the given type tokens (or of
    every type a predicate accepts)."""
    wanted = types if callable(types) else frozenset(types).__contains__

    def build(check: ResourceCheck) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if not wanted(normalized_type(args.resource_type)):
                return
            subject = Subject(args.resource_type, args.name, args.urn, args.props, is_prod(args.get_config()))
            findings = Findings(report_violation)
            with findings.verifying():
                check(subject, findings)
            findings.finish()

        return ResourceValidationPolicy(
            name=name,
            description=description,
            validate=validate,
            enforcement_level=level,
            config_schema=ENVIRONMENT_SCHEMA if environment_aware else None,
        )

    return build


def stack_rule(
    name: str, description: str, level: EnforcementLevel = MANDATORY, environment_aware: bool = False
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Turn `check(resources, findings, prod)` into a policy over the whole stack."""

    def build(check: StackCheck) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            findings = Findings(report_violation)
            with findings.verifying():
                check(args.resources, findings, is_prod(args.get_config()))
            findings.finish()

        return StackValidationPolicy(
            name=name,
            description=description,
            validate=validate,
            enforcement_level=level,
            config_schema=ENVIRONMENT_SCHEMA if environment_aware else None,
        )

    return build


def normalized_type(token: str) -> str:
    """azure-native also publishes explicit API versions (`azure-native:redis/v20240301:Redis`):
    rules name the default module and cover every version of it."""
    return re.sub(r"^(azure-native:[^/:]+)/v[0-9a-z]+:", r"\1:", token)


# --- reading properties through the proxy ----------------------------------------------------------


def dig(value: Any, *path: str | int, default: Any = None) -> Any:
    """The value at `path`, or `default` when any step is missing or null. Unknown values raise."""
    for key in path:
        if isinstance(key, int):
            if not is_list(value) or key >= len(value):
                return default
        elif not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
        if value is None:
            return default
    return value


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def items(value: Any) -> list[Any]:
    """The elements of a list property (empty when absent)."""
    return list(value) if is_list(value) else []


def number(value: Any) -> float | None:
    """Numbers come from the engine as floats (and sometimes as strings); None when not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        return float(value)
    return None


def walk(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every leaf of a property tree with its path. Unknown leaves raise when reached."""
    if isinstance(value, Mapping):
        for key in value:
            yield from walk(value[key], (*path, key))
    elif is_list(value):
        for index in range(len(value)):
            yield from walk(value[index], (*path, index))
    else:
        yield path, value


def dotted(path: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


def shown(value: Any) -> str:
    """A property value for a message: whole floats (the engine's numbers) without the `.0`."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "unset" if value is None else str(value)
