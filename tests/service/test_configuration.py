"""Configuration comes from environment variables, each validated at start with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from product_service.__main__ import grpc_metrics_port_for
from product_service.devservers import free_port
from product_service.settings import DatabaseSettings, SettingsError, load_settings
from service_helpers import JWT_SECRET

VALID = {
    "DATABASE_URL": "postgresql://app:secret@db:5432/products",
    "REDIS_URL": "redis://cache:6379/0",
    "JWT_SECRET": JWT_SECRET,
}


def test_defaults_apply_when_only_the_required_variables_are_set() -> None:
    settings = load_settings(VALID)

    assert settings.port == 8080
    assert (settings.db_pool_min_size, settings.db_pool_max_size) == (1, 4)
    assert settings.cache_ttl_seconds == 300
    assert settings.redis_timeout_seconds == 0.1
    assert settings.db_request_budget_seconds == 3.0
    assert settings.prometheus_multiproc_dir is None


def test_settings_never_show_the_urls_or_the_secret_they_hold() -> None:
    settings = load_settings({**VALID, "REDIS_URL": "redis://:cache-password@cache:6379/0"})

    for shown in (repr(settings), str(settings), repr(load_settings(VALID, DatabaseSettings))):
        assert "secret" not in shown  # the database password and the JWT secret
        assert "cache-password" not in shown
        assert JWT_SECRET not in shown


def test_every_variable_is_read_from_the_environment() -> None:
    settings = load_settings(
        {
            **VALID,
            "PORT": "9000",
            "DB_POOL_MIN_SIZE": "2",
            "DB_POOL_MAX_SIZE": "8",
            "DB_REQUEST_BUDGET_SECONDS": "1.5",
            "CACHE_TTL_SECONDS": "60",
            "REDIS_TIMEOUT_SECONDS": "0.05",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",
        }
    )

    assert (settings.port, settings.db_pool_min_size, settings.db_pool_max_size) == (9000, 2, 8)
    assert (settings.db_request_budget_seconds, settings.cache_ttl_seconds) == (1.5, 60)
    assert settings.redis_timeout_seconds == 0.05
    assert str(settings.prometheus_multiproc_dir) == "/tmp/metrics"


def test_one_error_names_every_bad_variable_without_its_value() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {
                "DATABASE_URL": "mysql://db/products",
                "JWT_SECRET": "short-secret-value",
                "PORT": "http",
                "CACHE_TTL_SECONDS": "0",
            }
        )

    message = str(raised.value)
    lines = message.splitlines()[1:]
    assert {line.split(":")[0].strip() for line in lines} == {
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "PORT",
        "CACHE_TTL_SECONDS",
    }
    assert "REDIS_URL: is required" in message
    assert "postgresql://" in message
    assert "short-secret-value" not in message


def test_pool_bounds_must_be_ordered() -> None:
    with pytest.raises(SettingsError, match="DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE"):
        load_settings({**VALID, "DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"})


def test_empty_variables_count_as_unset() -> None:
    assert load_settings({**VALID, "PORT": ""}).port == 8080


def test_migrate_needs_only_the_database_url() -> None:
    assert load_settings({"DATABASE_URL": VALID["DATABASE_URL"]}, DatabaseSettings).database_url


def test_gunicorn_refuses_to_start_with_bad_configuration(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
    }
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)

    result = subprocess.run(
        [
            sys.executable, "-m", "gunicorn",
            "-c", "python:product_service.gunicorn_conf",
            "--bind", f"127.0.0.1:{free_port()}",
            "product_service.wsgi:app",
        ],
        env={**env, "JWT_SECRET": "too-short"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "DATABASE_URL: is required" in output
    assert "REDIS_URL: is required" in output
    assert "JWT_SECRET" in output
    assert "Booting worker" not in output


def test_migrate_command_reports_a_missing_database_url() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}

    result = subprocess.run(
        [sys.executable, "-m", "product_service", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "DATABASE_URL: is required" in result.stderr


def test_token_command_mints_a_write_token() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "product_service", "token", "--ttl", "60"],
        env={**os.environ, "JWT_SECRET": JWT_SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["scope"] == "products:write"


@pytest.mark.parametrize(
    ("grpc_port", "metrics_port"), [("50051", "9464"), ("50052", "9465"), ("50151", "9564"), ("80", "0")]
)
def test_make_run_moves_the_grpc_metrics_port_with_the_grpc_port(grpc_port: str, metrics_port: str) -> None:
    # So a second `PORT=8081 GRPC_PORT=50052 make run` starts beside the first instead of failing on 9464.
    assert grpc_metrics_port_for(grpc_port) == metrics_port
