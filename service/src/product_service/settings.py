"""The service's configuration: environment variables only, each validated once at start.

`load_settings` reads every variable, collects every problem and raises one `SettingsError` that
names each bad variable, so an operator fixes a broken Deployment in one round instead of one
crash-loop per variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# HS256 keys shorter than the hash output weaken the signature (RFC 7518, section 3.2).
MIN_JWT_SECRET_LENGTH = 32


SettingsT = TypeVar("SettingsT", bound="DatabaseSettings")


class SettingsError(Exception):
    """One or more environment variables are missing or invalid; the message names each one."""


class DatabaseSettings(BaseModel):
    """What `migrate` needs. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    database_url: Annotated[str, Field(alias="DATABASE_URL", repr=False)]  # it holds the password

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError(
                "must be a postgresql:// URL, e.g. postgresql://user:password@host:5432/products"
            )
        return value


class Settings(DatabaseSettings):
    """Everything the server needs."""

    port: Annotated[int, Field(alias="PORT", ge=1, le=65535)] = 8080
    redis_url: Annotated[str, Field(alias="REDIS_URL", repr=False)]  # it may hold a password
    jwt_secret: Annotated[str, Field(alias="JWT_SECRET", min_length=MIN_JWT_SECRET_LENGTH, repr=False)]
    # When set, a write token must carry exactly this `aud` (one of its audiences) and this `iss`.
    jwt_audience: Annotated[str | None, Field(alias="JWT_AUDIENCE", min_length=1)] = None
    jwt_issuer: Annotated[str | None, Field(alias="JWT_ISSUER", min_length=1)] = None
    db_pool_min_size: Annotated[int, Field(alias="DB_POOL_MIN_SIZE", ge=0, le=100)] = 1
    db_pool_max_size: Annotated[int, Field(alias="DB_POOL_MAX_SIZE", ge=1, le=100)] = 4
    # How long one request may wait on Postgres, for a connection and its statements (budget.py).
    db_request_budget_seconds: Annotated[float, Field(alias="DB_REQUEST_BUDGET_SECONDS", gt=0, le=60)] = 3.0
    cache_ttl_seconds: Annotated[int, Field(alias="CACHE_TTL_SECONDS", ge=1, le=7 * 24 * 3600)] = 300
    redis_timeout_seconds: Annotated[float, Field(alias="REDIS_TIMEOUT_SECONDS", gt=0, le=10)] = 0.1
    prometheus_multiproc_dir: Annotated[Path | None, Field(alias="PROMETHEUS_MULTIPROC_DIR")] = None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://host:6379/0")
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        return self


def load_settings(environ: Mapping[str, str], schema: type[SettingsT] = Settings) -> SettingsT:  # type: ignore[assignment]
    """Validate the variables of `schema` in `environ`; raise `SettingsError` naming every bad one."""
    present = {name: value for name, value in environ.items() if value != ""}
    try:
        return schema.model_validate(present)
    except ValidationError as error:
        raise SettingsError(describe_errors(error)) from None


def describe_errors(error: ValidationError) -> str:
    """One line per bad variable: its name, what is wrong, never its value (it may be a secret)."""
    lines = ["invalid configuration:"]
    for problem in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in problem["loc"]) or "environment"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "is required"
        lines.append(f"  {name}: {message}")
    return "\n".join(lines)
