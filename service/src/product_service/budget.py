"""How long a request may wait on Postgres: a time budget per REST request or RPC, enforced at the socket.

A stalled Postgres (a failover, a lock storm, a network drop) answers nothing: neither its own
statement_timeout nor a cancel request reaches it, and a thread reading from its socket waits as long as
the stall lasts. So the budget is enforced on this side:

- `TimeBudget.bound(seconds)` sets the budget of the request this thread serves (REST: the request's
  DB_REQUEST_BUDGET_SECONDS; gRPC: that or the RPC's deadline, whichever ends first). A budget bound
  inside another never outlasts it.
- `BudgetedPool` waits for a connection no longer than the budget has left. While a connection is
  checked out, its watchdog thread acts once the budget is spent: it asks Postgres to cancel the
  statement (on a thread of its own, which a healthy server answers in a millisecond: the statement
  fails, its transaction rolls back, the connection stays usable), and if the holder still waits
  CUT_AFTER_SECONDS later, shuts the connection's socket down: the holder's read fails at once, the
  pool discards the connection. Either way the repository answers `ServiceUnavailable` (REST 503,
  gRPC DEADLINE_EXCEEDED or UNAVAILABLE).
- `TimeBudget.end()` spends the budget at once (the gRPC client cancelled). It only sets a flag: gRPC
  calls it on its event loop, and anything that waited there would stop the whole server.
- Postgres ends a statement by itself at the pool's budget (statement_timeout on every connection), so
  work a client gave up on does not go on in the database while it is reachable.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

WATCHDOG_TICK_SECONDS = 0.02  # how late after its budget a statement is cancelled, at worst
CUT_AFTER_SECONDS = 0.1  # a healthy server answers a cancel within this; a stalled one never does
CANCEL_TIMEOUT_SECONDS = 2.0

_current: ContextVar[TimeBudget | None] = ContextVar("time_budget", default=None)


class TimeBudget:
    """The time a request has left to wait on Postgres: its own, and never more than its enclosing one's."""

    def __init__(self, seconds: float, within: TimeBudget | None = None) -> None:
        self._expires_at = time.monotonic() + seconds
        self._within = within
        self._ended = False

    @classmethod
    def current(cls) -> TimeBudget | None:
        return _current.get()

    @classmethod
    @contextmanager
    def bound(cls, seconds: float) -> Iterator[TimeBudget]:
        budget = cls(seconds, within=_current.get())
        token = _current.set(budget)
        try:
            yield budget
        finally:
            _current.reset(token)

    def remaining(self) -> float:
        if self._ended:
            return 0.0
        own = self._expires_at - time.monotonic()
        return own if self._within is None else min(own, self._within.remaining())

    @property
    def spent(self) -> bool:
        return self.remaining() <= 0

    def end(self) -> None:
        """Spend what is left now; the watchdog cuts the connection in use, if any. Never blocks."""
        self._ended = True


class BudgetedPool(ConnectionPool):
    """A `ConnectionPool` whose checkouts end with the current `TimeBudget` (or one of `budget` seconds
    when none is bound)."""

    def __init__(
        self,
        conninfo: str,
        *,
        budget: float,
        configure: Callable[[psycopg.Connection[Any]], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.budget = budget
        statement_timeout = str(max(1, round(budget * 1000)))

        def configured(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (statement_timeout,))
            if configure is not None:
                configure(conn)

        self._watchdog = _Watchdog()
        super().__init__(conninfo, configure=configured, **kwargs)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        budget = TimeBudget.current() or TimeBudget(self.budget)
        remaining = budget.remaining()
        if remaining <= 0:
            raise PoolTimeout("the request's time budget is spent")
        with (
            super().connection(min(timeout or self.timeout, remaining)) as conn,
            self._watchdog.watching(conn, budget),
        ):
            yield conn

    def check_connection(self, conn: psycopg.Connection[Any]) -> None:  # type: ignore[override]
        """`check()`'s test of each idle connection, cut like a checkout when the budget is spent: on a
        stalled server it would otherwise wait as long as the stall."""
        with self._watchdog.watching(conn, TimeBudget.current() or TimeBudget(self.budget)):
            ConnectionPool.check_connection(conn)

    def close(self, timeout: float = 5.0) -> None:
        self._watchdog.stop()
        super().close(timeout)


class _Lease:
    """A checked-out connection, its holder's budget, and what the watchdog did about it."""

    def __init__(self, conn: psycopg.Connection[Any], budget: TimeBudget) -> None:
        self.conn = conn
        self.budget = budget
        self.cancel: threading.Thread | None = None
        self.cancel_sent_at = 0.0
        self.cut = False


class _Watchdog:
    """One thread per pool: every tick, cancels then cuts the connections whose holder's budget is spent.

    A cancel names a backend, not a statement: the connection must not go back to the pool (and to the
    next holder) while a cancel for it may still arrive. So a holder waits for its cancel to finish
    before giving the connection back, unless the connection was cut (the pool discards it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[int, _Lease] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="postgres-budget", daemon=True)
        self._thread.start()

    @contextmanager
    def watching(self, conn: psycopg.Connection[Any], budget: TimeBudget) -> Iterator[None]:
        lease = _Lease(conn, budget)
        with self._lock:
            self._leases[id(conn)] = lease
        try:
            yield
        finally:
            with self._lock:
                self._leases.pop(id(conn), None)
            if lease.cancel is not None and not lease.cut:
                lease.cancel.join()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.wait(WATCHDOG_TICK_SECONDS):
            with self._lock:
                for lease in self._leases.values():
                    if not lease.budget.spent or lease.cut:
                        continue
                    if lease.cancel is None:
                        lease.cancel = threading.Thread(
                            target=_cancel, args=(lease.conn,), name="postgres-cancel", daemon=True
                        )
                        lease.cancel.start()
                        lease.cancel_sent_at = time.monotonic()
                    elif time.monotonic() - lease.cancel_sent_at >= CUT_AFTER_SECONDS:
                        lease.cut = _cut(lease.conn)


def _cancel(conn: psycopg.Connection[Any]) -> None:
    with suppress(psycopg.Error):  # a stalled or gone server: the cut follows
        conn.cancel_safe(timeout=CANCEL_TIMEOUT_SECONDS)


def _cut(conn: psycopg.Connection[Any]) -> bool:
    """Shut the connection's socket down under the thread using it: its read returns at once. The file
    descriptor stays libpq's (shut down, not closed), so it cannot be reused under it."""
    try:
        duplicate = socket.socket(fileno=os.dup(conn.fileno()))
    except (OSError, psycopg.Error):
        return True  # closed meanwhile: nothing left to cut
    with duplicate:
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            return True
    log.warning("postgres did not answer a cancel within the request's time budget: connection closed")
    return True
