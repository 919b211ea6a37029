"""Command line: `python -m product_service {dev,serve,grpc,migrate,token}`.

dev      the service on http://127.0.0.1:$PORT (8080) and gRPC on 127.0.0.1:$GRPC_PORT (50051), with
         embedded Postgres and Valkey unless DATABASE_URL / REDIS_URL are set; what `make run` runs
serve    gunicorn with the production configuration (what the image runs)
grpc     the gRPC server (product.v1.ProductService, health, reflection): the gRPC Deployment's command
migrate  apply the schema migrations to DATABASE_URL (the Kubernetes migration Job); idempotent
token    print a write token signed with JWT_SECRET (for JWT_AUDIENCE / JWT_ISSUER when set)
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from product_service.auth import WRITE_SCOPE, mint_token
from product_service.settings import MIN_JWT_SECRET_LENGTH, DatabaseSettings, SettingsError, load_settings

GUNICORN_CONFIG = "python:product_service.gunicorn_conf"
WSGI_APP = "product_service.wsgi:app"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m product_service", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="serve locally with embedded Postgres and Valkey")
    dev.add_argument("--data-dir", type=Path, default=Path(".data"), help="embedded servers' data (.data)")
    dev.add_argument("--workers", type=int, default=2)
    commands.add_parser("serve", help="gunicorn with the production configuration")
    commands.add_parser("grpc", help="the gRPC server")
    commands.add_parser("migrate", help="apply the schema migrations to DATABASE_URL")
    token = commands.add_parser("token", help="print a write token signed with JWT_SECRET")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds the token is valid (12 h)")
    token.add_argument("--scope", default=WRITE_SCOPE)
    token.add_argument("--subject", default="local-developer")
    args = parser.parse_args(argv)

    try:
        if args.command == "dev":
            return run_dev(args.data_dir, args.workers)
        if args.command == "serve":
            os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, WSGI_APP])  # noqa: S606
        if args.command == "grpc":
            return run_grpc()
        if args.command == "migrate":
            return run_migrate()
        audience, issuer = os.environ.get("JWT_AUDIENCE") or None, os.environ.get("JWT_ISSUER") or None
        print(mint_token(_jwt_secret_from_env(), args.subject, args.ttl, args.scope, audience, issuer))
        return 0
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2


def run_migrate() -> int:
    from product_service.migrate import run_migrations

    run_migrations(load_settings(os.environ, DatabaseSettings).database_url)
    print("migrations applied: the database is at the latest revision")
    return 0


def run_grpc() -> int:
    """One process, threads for RPCs; logs and traces as the gunicorn workers do."""
    # The image sets this for gunicorn's workers; one process keeps its metrics in memory instead, and
    # prometheus_client reads the variable when first imported.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from product_service.grpc.server import GrpcSettings, serve
    from product_service.logs import configure_logging
    from product_service.tracing import start_tracing, stop_tracing

    settings = load_settings(os.environ, GrpcSettings)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    try:
        return serve(settings, start_tracing(os.environ))
    finally:
        stop_tracing()


def run_dev(data_dir: Path, workers: int) -> int:
    """Embedded servers when needed, migrations, then gunicorn and the gRPC server on 127.0.0.1 until
    a signal.

    SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop gunicorn and the gRPC server, then the servers. A
    `kill -9` cannot be caught: gunicorn, the gRPC server and Postgres then get a signal of their own
    from the kernel (they die with this process), and the next run stops whatever is left, recorded in
    `<data-dir>/dev-processes.json`.
    """
    from product_service.devservers import (
        EmbeddedPostgres,
        EmbeddedValkey,
        ProcessRecord,
        die_with_parent,
        set_parent_death_signal,
    )
    from product_service.migrate import run_migrations

    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, _on_stop_signal)
    # When `make` (or the shell) goes away, whatever the signal, so does this run.
    set_parent_death_signal(signal.SIGTERM)
    env = dict(os.environ)
    port = env.setdefault("PORT", "8080")
    grpc_port = env.setdefault("GRPC_PORT", "50051")
    metrics_port = env.setdefault("GRPC_METRICS_PORT", grpc_metrics_port_for(grpc_port))
    data_dir.mkdir(parents=True, exist_ok=True)
    record = ProcessRecord(data_dir / "dev-processes.json")
    started: dict[str, int | None] = {}
    try:
        record.stop_leftovers()
        with ExitStack() as servers:
            if not env.get("DATABASE_URL"):
                postgres = servers.enter_context(EmbeddedPostgres(data_dir / "postgres"))
                started["postgres"] = postgres.pid
                record.write(started)
                env["DATABASE_URL"] = postgres.url
                print(f"embedded Postgres: {env['DATABASE_URL']} (data in {data_dir / 'postgres'})")
            if not env.get("REDIS_URL"):
                valkey = servers.enter_context(EmbeddedValkey(data_dir / "valkey"))
                started["valkey"] = valkey.pid
                record.write(started)
                env["REDIS_URL"] = valkey.url
                print(f"embedded Valkey:   {env['REDIS_URL']}")
            if not env.get("JWT_SECRET"):
                env["JWT_SECRET"] = secrets.token_urlsafe(32)
                print(f"generated a development JWT_SECRET: export JWT_SECRET={env['JWT_SECRET']}")
            settings = load_settings(env)
            run_migrations(env["DATABASE_URL"])
            token = mint_token(
                env["JWT_SECRET"],
                "local-developer",
                12 * 3600,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
            print(
                f"\nproduct service on http://127.0.0.1:{port}  (API docs: http://127.0.0.1:{port}/openapi.json)\n"
                f"a write token valid for 12 hours:\n  export TOKEN={token}\n"
                f"mint another: JWT_SECRET=... python -m product_service token\n"
                f"try: curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
                f'-d \'{{"name": "Tea", "price": "3.50"}}\' http://127.0.0.1:{port}/api/v1/products\n'
                f"\ngRPC (reflection on) on 127.0.0.1:{grpc_port}, e.g. with grpcurl:\n"
                f"  grpcurl -plaintext 127.0.0.1:{grpc_port} list\n"
                f'  grpcurl -plaintext -H "authorization: Bearer $TOKEN" '
                f'-d \'{{"name": "Tea", "price_decimal": "3.50"}}\' '
                f"127.0.0.1:{grpc_port} product.v1.ProductService/CreateProduct\n"
                f"gRPC metrics on http://127.0.0.1:{metrics_port}/metrics (GRPC_METRICS_PORT)\n"
                "Ctrl-C stops the service and the servers it started.\n",
                flush=True,
            )
            grpc_server = subprocess.Popen(
                [sys.executable, "-m", "product_service", "grpc"],
                env={**env, "GRPC_HOST": "127.0.0.1", "GRPC_DRAIN_SECONDS": "0"},
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
            servers.callback(_stop, grpc_server)
            started["grpc"] = grpc_server.pid
            record.write(started)
            gunicorn = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    GUNICORN_CONFIG,
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    WSGI_APP,
                ],
                env=env,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
            started["gunicorn"] = gunicorn.pid
            record.write(started)
            try:
                return gunicorn.wait()
            except _Stopped:
                # On Ctrl-C the terminal sent SIGINT to gunicorn too; either way, let it finish first.
                gunicorn.send_signal(signal.SIGTERM)
                gunicorn.wait()
                return 0
    except _Stopped:  # stopped while the servers were starting: the ExitStack stopped those already up
        return 0
    finally:
        record.remove()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopped(Exception):
    """A stop signal arrived."""


def _on_stop_signal(signum: int, frame: object) -> None:
    # Only once: the cleanup that follows must not be interrupted by a second Ctrl-C.
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise _Stopped


def grpc_metrics_port_for(grpc_port: str) -> str:
    """The gRPC metrics port of a `make run` that did not choose one: 9464 moved as far as GRPC_PORT
    moved from 50051, so a second `make run` on its own PORT and GRPC_PORT does not clash with the
    first (out of range: any free port)."""
    try:
        port = 9464 + int(grpc_port) - 50051
    except ValueError:
        return "9464"  # the gRPC server names the bad GRPC_PORT
    return str(port) if 0 < port < 65536 else "0"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait()


def _jwt_secret_from_env() -> str:
    secret = os.environ.get("JWT_SECRET", "")
    if len(secret) < MIN_JWT_SECRET_LENGTH:
        raise SettingsError(f"JWT_SECRET: must be set, at least {MIN_JWT_SECRET_LENGTH} characters")
    return secret


if __name__ == "__main__":
    sys.exit(main())
