"""A client's deadline bounds the server's work on its RPC, down to the SQL statement.

`RpcDeadline.bind(context)` runs for the length of one RPC (the interceptor opens it). While it is
bound, `DeadlineBoundPool` waits for a connection no longer than the RPC has left, and the statement
running on that connection is cancelled in Postgres when gRPC ends the RPC (deadline passed, client
cancelled), so a write the client gave up on is rolled back instead of applied late.

Both failures surface as `psycopg_pool.PoolTimeout` or `psycopg.OperationalError`, which the
repository already reports as `ServiceUnavailable`; the servicer then answers DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

_current: ContextVar[RpcDeadline | None] = ContextVar("rpc_deadline", default=None)


class RpcDeadline:
    """The deadline of the RPC this thread is serving, and the connection it is using."""

    def __init__(self, expires_at: float) -> None:
        self._expires_at = expires_at
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[Any] | None = None
        self._ended = False

    @classmethod
    @contextmanager
    def bind(cls, context: grpc.ServicerContext) -> Iterator[RpcDeadline]:
        # time_remaining() is huge for a call without a deadline; the pool's own timeout still applies.
        deadline = cls(time.monotonic() + context.time_remaining())
        context.add_callback(deadline.end)
        token = _current.set(deadline)
        try:
            yield deadline
        finally:
            _current.reset(token)

    def remaining(self) -> float:
        return 0.0 if self._ended else self._expires_at - time.monotonic()

    def end(self) -> None:
        """gRPC ended the RPC: cancel the statement in flight, if any (called from gRPC's thread)."""
        with self._lock:
            self._ended = True
            if self._connection is not None:
                self._connection.cancel_safe(timeout=2)

    @contextmanager
    def using(self, connection: psycopg.Connection[Any]) -> Iterator[None]:
        with self._lock:
            self._connection = connection
        try:
            yield
        finally:
            with self._lock:
                self._connection = None


class DeadlineBoundPool(ConnectionPool):
    """A `ConnectionPool` whose waits and statements end with the current RPC's deadline."""

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        deadline = _current.get()
        if deadline is None:
            with super().connection(timeout) as conn:
                yield conn
            return
        remaining = deadline.remaining()
        if remaining <= 0:
            raise PoolTimeout("the RPC's deadline has passed")
        with super().connection(min(timeout or self.timeout, remaining)) as conn, deadline.using(conn):
            yield conn
