"""The image's HEALTHCHECK (`python -m product_service.healthcheck`) against real servers: it asks the
server the container runs, so the gRPC container built from the same image reports healthy too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from grpc_helpers import grpc_process
from product_service.devservers import DevServers, free_port
from product_service.healthcheck import server_of
from service_helpers import running_gunicorn


def healthcheck(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "product_service.healthcheck", *args],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "server"),
    [
        # The image's ENTRYPOINT, and `serve` which execs the same gunicorn.
        ("gunicorn --config /etc/product-service/gunicorn.conf.py product_service.wsgi:app", "rest"),
        ("/opt/venv/bin/python -m product_service serve", "rest"),
        # The gRPC Deployment's command, also behind an init (`docker run --init`).
        ("python -m product_service grpc", "grpc"),
        ("/sbin/docker-init -- python -m product_service grpc", "grpc"),
    ],
)
def test_the_check_follows_the_containers_main_process(command: str, server: str) -> None:
    assert server_of([word.encode() for word in command.split()]) == server


def test_a_serving_gunicorn_is_healthy_and_a_closed_port_is_not(servers: DevServers, tmp_path: Path) -> None:
    with running_gunicorn(servers, tmp_path / "gunicorn.log", workers=1) as gunicorn:
        passed = healthcheck("rest", PORT=str(gunicorn.port))
        assert passed.returncode == 0, passed.stderr
    failed = healthcheck("rest", PORT=str(free_port()))
    assert failed.returncode == 1
    assert "rest" in failed.stderr and "Traceback" not in failed.stderr


def test_a_serving_grpc_server_is_healthy_where_the_rest_check_fails(
    servers: DevServers, tmp_path: Path
) -> None:
    with grpc_process(servers, tmp_path / "grpc.log") as grpc:
        passed = healthcheck("grpc", GRPC_PORT=str(grpc.port))
        assert passed.returncode == 0, passed.stderr
        # What the image checked before: an HTTP GET /health, which a gRPC server never answers.
        assert healthcheck("rest", PORT=str(grpc.port)).returncode == 1
    failed = healthcheck("grpc", GRPC_PORT=str(free_port()))
    assert failed.returncode == 1
    assert "grpc" in failed.stderr and "Traceback" not in failed.stderr
