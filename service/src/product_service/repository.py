"""Products in Postgres through a psycopg 3 connection pool.

Every row carries a `version` that each update increments under the row lock, so versions follow
commit order; the cache uses it to refuse stale writes (see `cache.py`).

Pooled connections are not checked before use (that would cost a round trip per request). A
connection found dead instead makes the pool check all its idle connections, and a read is retried
once; a write is not (it may have been applied), it answers 503 and the client retries.

Each operation (with its one retry) waits on Postgres no longer than its time budget, DB_REQUEST_BUDGET
_SECONDS or the RPC's deadline if that ends first: a stalled server is cut off at the socket (budget.py).

Outages go through a `CircuitBreaker` (breaker.py): when a connection fails and Postgres does not answer
a direct connection attempt either, every request answers 503 at once until a background probe
connects again. The pool gives up reconnecting in the background after `RECONNECT_TIMEOUT_SECONDS`
(psycopg_pool backs off exponentially, which kept requests failing for ~35 s after Postgres came back);
the first request after the breaker closes grows it again on demand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar, cast
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import PoolTimeout

from product_service.breaker import CircuitBreaker, CircuitOpen
from product_service.budget import BudgetedPool, TimeBudget
from product_service.errors import ServiceUnavailable
from product_service.metrics import ServiceMetrics
from product_service.schemas import PRODUCT_JSON, Product, ProductCreate, ProductRow

_SELECT_BY_ID = """
    SELECT id, name, price, description, created_at, updated_at, version FROM products WHERE id = %s
"""
_SELECT_BY_IDS = """
    SELECT id, name, price, description, created_at, updated_at, version FROM products WHERE id = ANY(%s)
"""
# The offset is walked in the (created_at, id) index alone, and only the page's rows are read from the
# table: OFFSET on the rows themselves fetched every skipped row (at offset 900, 871 buffers against 30).
# The total is kept by triggers (migration 0002): counting the rows would read the whole table for
# every page. In one statement, page and total come from the same snapshot.
_SELECT_PAGE = """
    SELECT id, name, price, description, created_at, updated_at, version,
           (SELECT total FROM product_count) AS total
    FROM products
    WHERE (created_at, id) >= (SELECT created_at, id FROM products ORDER BY created_at, id OFFSET %s LIMIT 1)
    ORDER BY created_at, id LIMIT %s
"""
_SELECT_TOTAL = "SELECT total FROM product_count"
_INSERT = """
    INSERT INTO products (name, price, description) VALUES (%s, %s, %s)
    RETURNING id, name, price, description, created_at, updated_at, version
"""
_UPDATE = """
    UPDATE products SET {assignments}, version = version + 1, updated_at = now() WHERE id = %(id)s
    RETURNING id, name, price, description, created_at, updated_at, version
"""


# A write whose cache mark failed notes its product for repair (cache.py, migration 0003).
_NOTE_CACHE_REPAIR = """
    INSERT INTO cache_repairs (product_id, version) VALUES (%s, %s)
    ON CONFLICT (product_id) DO UPDATE SET version = GREATEST(cache_repairs.version, EXCLUDED.version),
                                           noted_at = now()
"""
_CACHE_REPAIRS = "SELECT product_id, version FROM cache_repairs ORDER BY noted_at LIMIT %s"
# Only what was repaired: a write since then noted a newer version, which waits for the next repair.
_FORGET_CACHE_REPAIRS = """
    DELETE FROM cache_repairs AS noted USING unnest(%s::uuid[], %s::bigint[]) AS repaired(id, version)
    WHERE noted.product_id = repaired.id AND noted.version <= repaired.version
"""

Result = TypeVar("Result")
# Whether the cache took a write's pending mark; when it did not, the write notes a cache repair.
CacheMarked = bool

RECONNECT_TIMEOUT_SECONDS = 1.0
POOL_WAIT_SLICE_SECONDS = 0.25
PROBE_CONNECT_TIMEOUT_SECONDS = 2  # libpq's minimum


@dataclass(frozen=True)
class StoredProduct:
    """A product's row and the version it was read at.

    The columns' types and constraints (`numeric(12, 2)`, `varchar(200)`, `CHECK`s) already hold what
    `Product` checks, so the row is not validated again: validating it was a quarter of a page's CPU
    (docs/performance.md). The model is built only when asked for (gRPC, writes); REST answers dump the
    row itself (`document`)."""

    row: ProductRow
    version: int

    @property
    def id(self) -> UUID:
        return self.row["id"]

    @cached_property
    def product(self) -> Product:
        return Product.model_construct(**self.row)

    @cached_property
    def document(self) -> bytes:
        """The product's JSON as the API answers it and the cache stores it, dumped once."""
        return PRODUCT_JSON.dump_json(self.row)


def open_pool(
    database_url: str,
    *,
    min_size: int,
    max_size: int,
    budget: float,
    configure: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> BudgetedPool:
    """A connection pool for this process. Call it after gunicorn forks: sockets must not be shared."""
    return BudgetedPool(
        database_url,
        budget=budget,
        min_size=min_size,
        max_size=max_size,
        timeout=budget,
        open=True,
        configure=configure,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        name="products",
        # Each row is read into a dict; autocommit keeps single-statement reads out of a transaction.
        kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": max(2, int(budget))},
    )


class ProductRepository:
    """Reads and writes products; raises `ServiceUnavailable` when Postgres cannot be reached."""

    def __init__(
        self, pool: BudgetedPool, metrics: ServiceMetrics, breaker: CircuitBreaker | None = None
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self.breaker = breaker or CircuitBreaker(
            "postgres", self._connects, on_change=metrics.dependency_available
        )

    def get(self, product_id: UUID) -> StoredProduct | None:
        row = self._read(lambda conn: conn.execute(_SELECT_BY_ID, (product_id,)).fetchone())
        return _stored(row) if row else None

    def get_many(self, product_ids: Sequence[UUID]) -> list[StoredProduct]:
        """The products among `product_ids` that exist, in one query."""
        rows = self._read(lambda conn: conn.execute(_SELECT_BY_IDS, (list(product_ids),)).fetchall())
        return [_stored(row) for row in rows]

    def list_page(self, limit: int, offset: int) -> tuple[list[StoredProduct], int]:
        """One page in creation order, and the total number of products."""

        def page(conn: psycopg.Connection[Any]) -> tuple[list[dict[str, Any]], int]:
            rows = conn.execute(_SELECT_PAGE, (offset, limit)).fetchall()
            if not rows:  # a page past the end has no row to carry the total
                counted = conn.execute(_SELECT_TOTAL).fetchone()
                return rows, counted["total"] if counted else 0
            return rows, rows[0]["total"]  # the rows' "total" key is left out of their documents

        rows, total = self._read(page)
        return [_stored(row) for row in rows], total

    def create(self, new: ProductCreate) -> StoredProduct:
        with self._connection() as conn:
            row = conn.execute(_INSERT, (new.name, new.price, new.description)).fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        return _stored(row)

    def update(
        self,
        product_id: UUID,
        changes: dict[str, Any],
        before_commit: Callable[[StoredProduct], CacheMarked] | None = None,
    ) -> StoredProduct | None:
        """Apply `changes` (column -> value); None when the product does not exist.

        `before_commit` sees the new row while its lock is held; if it raises, nothing is applied; if it
        returns False, the cache repair is noted in the same transaction.
        """
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in changes
        )
        query = sql.SQL(_UPDATE).format(assignments=assignments)
        with self._connection() as conn, conn.transaction():
            row = conn.execute(query, {**changes, "id": product_id}).fetchone()
            stored = _stored(row) if row else None
            if stored is not None and before_commit is not None and not before_commit(stored):
                conn.execute(_NOTE_CACHE_REPAIR, (product_id, stored.version))
        return stored

    def delete(
        self, product_id: UUID, before_commit: Callable[[int], CacheMarked] | None = None
    ) -> int | None:
        """Delete the product; the version it had, or None when it did not exist.

        `before_commit` gets that version while the row lock is held; if it raises, nothing is deleted;
        if it returns False, the cache repair (of the tombstone's version) is noted in the same transaction.
        """
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                "DELETE FROM products WHERE id = %s RETURNING version", (product_id,)
            ).fetchone()
            if row is not None and before_commit is not None and not before_commit(row["version"]):
                conn.execute(_NOTE_CACHE_REPAIR, (product_id, row["version"] + 1))
        return row["version"] if row else None

    def cache_repairs(self, limit: int) -> list[tuple[UUID, int]]:
        """The oldest noted cache repairs: (product id, the version its entry must not be older than)."""
        rows = self._read(lambda conn: conn.execute(_CACHE_REPAIRS, (limit,)).fetchall())
        return [(row["product_id"], row["version"]) for row in rows]

    def forget_cache_repairs(self, repaired: Sequence[tuple[UUID, int]]) -> None:
        ids, versions = [product_id for product_id, _ in repaired], [version for _, version in repaired]
        with self._connection() as conn:
            conn.execute(_FORGET_CACHE_REPAIRS, (ids, versions))

    def ping(self, timeout: float) -> None:
        with TimeBudget.bound(timeout):
            self._read(lambda conn: conn.execute("SELECT 1"))

    def _read(self, work: Callable[[psycopg.Connection[Any]], Result]) -> Result:
        """Run read-only `work`, once more on a fresh connection if the first one was found dead."""
        with TimeBudget.bound(self._pool.budget):
            try:
                with self._connection() as conn:
                    return work(conn)
            except ServiceUnavailable as error:
                if not isinstance(error.__cause__, psycopg.OperationalError) or self.breaker.is_open:
                    raise
            with self._connection() as conn:
                return work(conn)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            self.breaker.check()
        except CircuitOpen as error:
            raise ServiceUnavailable("postgres") from error
        started = time.perf_counter()
        budget: TimeBudget
        try:
            with ExitStack() as checked_out:
                budget = checked_out.enter_context(TimeBudget.bound(self._pool.budget))
                conn = self._checkout(checked_out, budget.remaining())
                self._metrics.db_connection_acquired(time.perf_counter() - started, self._pool.get_stats())
                try:
                    yield conn
                finally:
                    self._metrics.db_connection_released()
        except PoolTimeout as error:
            raise ServiceUnavailable("postgres") from error
        except psycopg.OperationalError as error:
            self.breaker.record_failure()
            if not budget.spent:
                # The server went away (restart, failover): its other idle connections are dead too.
                # (When the budget cut the connection, the server may be stalled, and so would the check.)
                self._pool.check()
            raise ServiceUnavailable("postgres") from error

    def _checkout(self, checked_out: ExitStack, timeout: float) -> psycopg.Connection[Any]:
        """A connection from `pool.connection()`, waited for in slices: a request that queued before
        the breaker opened (or while nobody noticed that Postgres is gone) must not wait out the whole
        budget. The pool's own context manager is kept: it watches the connection's budget (budget.py)."""
        deadline = time.monotonic() + timeout
        while True:
            wait = max(min(POOL_WAIT_SLICE_SECONDS, deadline - time.monotonic()), 0.001)
            attempt_started = time.monotonic()
            try:
                return checked_out.enter_context(self._pool.connection(timeout=wait))
            except PoolTimeout:
                gave_up_early = time.monotonic() - attempt_started < 0.9 * wait  # a deadline of the caller's
                if gave_up_early or time.monotonic() >= deadline:
                    raise
                self.breaker.record_failure()
                if self.breaker.is_open:
                    raise

    def _connects(self) -> None:
        """The breaker's probe: a connection of its own, outside the pool and its backoff."""
        conninfo = self._pool.conninfo
        conninfo = conninfo() if callable(conninfo) else conninfo
        psycopg.connect(conninfo, connect_timeout=PROBE_CONNECT_TIMEOUT_SECONDS).close()


def _stored(row: dict[str, Any]) -> StoredProduct:
    return StoredProduct(cast(ProductRow, row), row["version"])  # the SELECTs read ProductRow's columns
