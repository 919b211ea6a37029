"""The pack boots the way `pulumi preview --policy-pack policies` starts it, and answers over gRPC."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from policy_harness import struct
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.pack import PACK_NAME, POLICIES

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # The CLI's pulumi-analyzer-policy-python shim runs exactly this, in the pack's directory.
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        assert port.isdigit(), server.stderr.read() if server.stderr else "no port"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.kill()
        server.wait(timeout=10)


def test_the_pack_serves_every_policy_with_its_level(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=20)
    assert info.name == PACK_NAME
    assert [p.name for p in info.policies] == [p.name for p in POLICIES]
    assert {p.name for p in info.policies if p.configSchema.properties} == {
        p.name for p in POLICIES if p.config_schema is not None
    }


def test_the_served_pack_reports_a_violation(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    request = analyzer_pb2.AnalyzeRequest(
        type="aws:rds/instance:Instance",
        urn="urn:pulumi:prod::platform::aws:rds/instance:Instance::postgres",
        name="postgres",
        properties=struct({"engine": "postgres", "publiclyAccessible": True}),
    )
    messages = [
        d.message
        for d in analyzer.Analyze(request, timeout=20).diagnostics
        if d.policyName == "aws-rds-not-public"
    ]
    assert messages and messages[0].endswith("publiclyAccessible is true")


def test_the_project_file_uses_the_shared_environment() -> None:
    project = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    venv = PACK_DIR / project["runtime"]["options"]["virtualenv"]
    assert venv.resolve() == (PACK_DIR.parent / ".venv").resolve()
