"""Drive the pack through pulumi_policy's own analyzer service, exactly as the engine does.

`Engine` builds the gRPC requests the Pulumi engine sends (properties in a protobuf Struct, secrets
in their envelope, unknowns as the engine's sentinel, the reconciled per-policy config) and calls
the servicer the `PolicyPack` would serve, without starting a server. So every test exercises the
real deserializer, unknown-checking proxy and diagnostic mapping of pulumi_policy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from policies.pack import PACK_NAME, POLICIES

# What the engine puts in place of a value that is not known during preview.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
DELETE = object()
PREVIEW_NOTE = "during preview"

_LEVELS = {proto.ADVISORY: "advisory", proto.MANDATORY: "mandatory"}
_TO_PROTO = {EnforcementLevel.ADVISORY: proto.ADVISORY, EnforcementLevel.MANDATORY: proto.MANDATORY}


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str
    message: str
    urn: str

    @property
    def unverifiable(self) -> bool:
        return PREVIEW_NOTE in self.message


class Engine:
    """The analyzer side of `pulumi preview --policy-pack policies [--policy-pack-config ...]`."""

    def __init__(self, environment: str | None = None) -> None:
        self.servicer = _PolicyAnalyzerServicer(PACK_NAME, "1.0.0", POLICIES, EnforcementLevel.ADVISORY)
        self.servicer.Configure(self._reconciled_config(environment), None)

    def analyze(self, type_: str, props: Mapping[str, Any], name: str = "subject") -> list[Diagnostic]:
        urn = urn_of(type_, name)
        request = proto.AnalyzeRequest(type=type_, urn=urn, name=name, properties=struct(props))
        return self._diagnostics(self.servicer.Analyze(request, None), urn)

    def analyze_stack(self, resources: list[tuple[str, str, Mapping[str, Any]]]) -> list[Diagnostic]:
        """`resources`: (type, name, outputs) per resource."""
        request = proto.AnalyzeStackRequest(
            resources=[
                proto.AnalyzerResource(type=t, urn=urn_of(t, n), name=n, properties=struct(p))
                for t, n, p in resources
            ]
        )
        return self._diagnostics(self.servicer.AnalyzeStack(request, None), "")

    def _diagnostics(self, response: Any, urn: str) -> list[Diagnostic]:
        return [
            Diagnostic(d.policyName, _LEVELS[d.enforcementLevel], d.message, d.urn or urn)
            for d in response.diagnostics
        ]

    @staticmethod
    def _reconciled_config(environment: str | None) -> Any:
        """What the engine sends after merging schema defaults with --policy-pack-config."""
        entries = {}
        for policy in POLICIES:
            properties = struct_pb2.Struct()
            if policy.config_schema is not None:
                defaults = {
                    k: v["default"] for k, v in policy.config_schema.properties.items() if "default" in v
                }
                properties.update({**defaults, **({"environment": environment} if environment else {})})
            entries[policy.name] = proto.PolicyConfig(
                enforcementLevel=_TO_PROTO[policy.enforcement_level or EnforcementLevel.ADVISORY],
                properties=properties,
            )
        return proto.ConfigureAnalyzerRequest(policyConfig=entries)


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(dict(props))
    return value


def urn_of(type_: str, name: str) -> str:
    return f"urn:pulumi:test::platform::{type_}::{name}"


def secret(value: Any) -> dict[str, Any]:
    """A value in the engine's secret envelope."""
    return {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": value}


def changed(props: Mapping[str, Any], *changes: tuple[str, Any]) -> dict[str, Any]:
    """A deep copy of `props` with each dotted path (`a.b[0].c`) set to a value, or deleted."""
    result = copy.deepcopy(dict(props))
    for path, value in changes:
        keys: list[str | int] = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
        node: Any = result
        for key in keys[:-1]:
            node = node[key] if isinstance(key, int) else node.setdefault(key, {})
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return result


def of(diagnostics: list[Diagnostic], policy: str) -> list[Diagnostic]:
    return [d for d in diagnostics if d.policy == policy]
