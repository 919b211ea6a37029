"""Helpers shared by the service tests: product creation, polling, a real gunicorn."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from product_service.devservers import DevServers, EmbeddedPostgres, free_port, stop_child
from product_service.logs import JsonFormatter
from product_service.settings import Settings, load_settings

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


def settings_for(servers: DevServers, **overrides: str) -> Settings:
    environ = {
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "JWT_SECRET": JWT_SECRET,
        "DB_REQUEST_BUDGET_SECONDS": "2",
        **overrides,
    }
    return load_settings(environ)


def create_product(client: FlaskClient, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": "Tea", "price": "3.50", **fields}
    response = client.post("/api/v1/products", json=body, headers=auth)
    assert response.status_code == 201, response.json
    product: dict[str, Any] = response.json  # type: ignore[assignment]
    return product


def backfilled(app: Flask) -> None:
    """Return once the app has stored the cache back-fills of its reads so far (cache.BackFills)."""
    app.extensions["product_service"].backfills.flush()


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    """Poll `condition` until it holds; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s: {message}")
        time.sleep(0.05)


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    base_url: str
    port: int
    log_path: Path

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()


@contextmanager
def running_gunicorn(
    servers: DevServers, log_path: Path, workers: int = 2, **environ: str
) -> Iterator[Gunicorn]:
    """The production gunicorn configuration on 127.0.0.1:<free port>; always stopped on exit."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "JWT_SECRET": JWT_SECRET,
        **environ,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn",
                "-c", "python:product_service.gunicorn_conf",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers),
                "product_service.wsgi:app",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Gunicorn(process, f"http://127.0.0.1:{port}", port, log_path)
    try:
        wait_until(lambda: _answers(server) or process.poll() is not None, 60, "gunicorn to serve /health")
        assert process.poll() is None, log_path.read_text()
        yield server
    finally:
        stop_child(process)


def _answers(server: Gunicorn) -> bool:
    try:
        return server.get("/health", timeout=1)[0] == 200
    except OSError:
        return False


@contextmanager
def stalled(postgres: EmbeddedPostgres) -> Iterator[None]:
    """Postgres frozen, postmaster and backends alike: connections stay open and nothing answers, as
    in a failover or a network drop. Resumed on exit, whatever happened. Each backend is a session of
    its own (Postgres calls setsid), so they are found as the postmaster's children, not its group."""
    assert postgres.pid is not None
    children = Path(f"/proc/{postgres.pid}/task/{postgres.pid}/children").read_text().split()
    processes = [postgres.pid, *map(int, children)]
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in processes:
            os.kill(pid, signal.SIGCONT)


@contextmanager
def logged_json(logger: logging.Logger, level: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """The lines `logger` writes inside the block, as `JsonFormatter` formats them, parsed once it ends."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    if level is not None:
        logger.setLevel(level)
    parsed: list[dict[str, Any]] = []
    try:
        yield parsed
    finally:
        logger.removeHandler(handler)
        parsed.extend(json.loads(text) for text in lines.getvalue().splitlines())
