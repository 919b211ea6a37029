"""Redis cache-aside in front of `ProductRepository`, never a reason for a read to fail.

Consistency. A plain "delete the key after the commit" loses a race: a reader that fetched the old row
just before the writer committed can back-fill the old value *after* the writer deleted the key, and
that stale value then lives for a whole TTL. Here every cache write is conditional on the row version
(incremented by each UPDATE under the row lock, so it follows commit order):

- a cache entry is `"<version>:<product JSON>"`, a delete leaves a tombstone `"<version + 1>:"`, and a
  write in progress leaves a pending mark `"<version>:?"`, which readers treat as a miss;
- every write to the cache goes through one Lua script that stores it only when the key is absent or
  holds a lower version, or a pending mark of the same version (which the committed value replaces);
- a writer marks the key pending with the row's new version *before* it commits, inside the
  transaction that holds the row lock. After the commit, and before it answers, it stores the new
  value (update) or the tombstone (delete) over the mark; if that fails, the mark stays and readers go
  to Postgres.
- a back-fill from a reader that read the old row carries a lower version and is refused.

So once an update or delete has answered, every reader gets the new value (from the cache or from
Postgres), even when Redis stalled or restarted in between.

Writes through a Redis outage. When Redis does not take the mark, the write still commits (the cache
holds nothing Postgres does not), and notes a repair in `cache_repairs` in the same transaction: Redis
may still hold the old entry. `CacheRepairs` marks each noted entry pending once Redis answers, and
forgets the note: in this process before its breaker closes (so it never reads such an entry), and in
every process soon after such a write, and when it starts (the notes of a process that died first).
A process that never noticed the outage may read an old entry until the first repair, within one
probe interval (0.5 s) of Redis answering again: the bound tests/service/test_product_cache.py
measures. A mark sent to a stalled Redis may land late; it only keeps that product out of the cache
until the mark's TTL ends (readers go to Postgres meanwhile).

Back-fills. A read that missed answers without waiting for its back-fill: `BackFills` stores them from
one thread per process, every back-fill queued meanwhile in one pipelined round trip. Storing late is
safe for the reason above (a late back-fill is refused over anything newer), and writes never wait
there: an update or delete stores over its mark before it answers.

Reads. An entry's body is the product's JSON exactly as the API answers it (the bytes of
`Product.model_dump_json`, dumped from the row: `schemas.ProductRow`), so a REST cache hit sends the
stored bytes as they are (`get_json`, `get_many_json`), with no parsing into a model and no dumping
again; gRPC, which needs the fields, parses them (`get`, `get_many`).

Availability. Redis calls use short socket timeouts and no retries, behind a `CircuitBreaker`
(breaker.py): once Redis fails and does not answer a PING either, calls are skipped without any
timeout until a background PING succeeds. Any Redis error or skipped call is counted in
`product_cache_errors_total` and the read is served from Postgres.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import redis
from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.backoff import NoBackoff
from redis.retry import Retry

from product_service.breaker import CircuitBreaker, CircuitOpen
from product_service.metrics import ServiceMetrics
from product_service.repository import ProductRepository, StoredProduct
from product_service.schemas import Product, ProductCreate

log = logging.getLogger(__name__)

Result = TypeVar("Result")
# What a read returns for one product: the model (gRPC) or its JSON document (REST).
Found = TypeVar("Found")

# `v1` is the entry format: a release that changes it changes the prefix instead of misreading entries.
_KEY_PREFIX = "product:v1:"

_PENDING = "?"
# ARGV: version, body (product JSON, "" for a tombstone, "?" for a pending mark), TTL in ms.
_STORE_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local version, body = string.match(current, '^(%d+):(.*)$')
  version = tonumber(version)
  local new = tonumber(ARGV[1])
  if version and (version > new or (version == new and not (body == '?' and ARGV[2] ~= '?'))) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 1
"""

# What a read or write of the cache may raise; the caller falls back to Postgres.
CACHE_FAILURES = (redis.RedisError, CircuitOpen)


def open_redis(url: str, timeout: float) -> redis.Redis:
    """A client that fails fast: short timeouts and no retries, the caller falls back to Postgres."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=0),
        health_check_interval=30,
    )


@dataclass(frozen=True)
class CacheEntry:
    version: int
    body: bytes  # the product's JSON as the API answers it; b"" for a tombstone (the product was deleted)

    @property
    def deleted(self) -> bool:
        return not self.body


class ProductCache:
    """Versioned product entries in Redis. Raises one of `CACHE_FAILURES` on failure; the caller decides."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, breaker: CircuitBreaker | None = None) -> None:
        self._client = client
        self._ttl_ms = ttl_seconds * 1000
        self.breaker = breaker or CircuitBreaker("redis", client.ping)

    def get(self, product_id: UUID) -> CacheEntry | None:
        """The entry, or None for a miss (absent, unreadable or pending)."""
        return _decode(self._call(lambda: self._client.get(_key(product_id))))

    def get_many(self, product_ids: Sequence[UUID]) -> list[CacheEntry | None]:
        """One MGET; entries in the order of `product_ids`."""
        keys = [_key(product_id) for product_id in product_ids]
        return [_decode(raw) for raw in self._call(lambda: self._client.mget(keys))]

    # EVAL rather than redis-py's Script (EVALSHA): a pipeline of Scripts costs an extra SCRIPT EXISTS
    # round trip per execute, and EVAL needs no reloading after a Redis restart.
    def store(self, stored: StoredProduct) -> None:
        self._store(_key(stored.id), stored.version, stored.document)

    def store_many(self, products: Iterable[StoredProduct]) -> None:
        """All in one pipelined round trip."""
        pipeline = self._client.pipeline(transaction=False)
        for stored in products:
            pipeline.eval(
                _STORE_IF_NEWER, 1, _key(stored.id), stored.version, stored.document,
                self._ttl_ms,
            )  # fmt: skip
        self._call(pipeline.execute)

    def store_tombstone(self, product_id: UUID, deleted_version: int) -> None:
        self._store(_key(product_id), deleted_version + 1, "")

    def mark_pending(self, product_id: UUID, version: int) -> None:
        """Readers miss and older back-fills are refused until `version` is stored over the mark."""
        self._store(_key(product_id), version, _PENDING)

    def mark_many_pending(self, marks: Sequence[tuple[UUID, int]]) -> None:
        """Mark each (product id, version) pending in one round trip, whatever the breaker says: the
        repairs run before it closes."""
        pipeline = self._client.pipeline(transaction=False)
        for product_id, version in marks:
            pipeline.eval(_STORE_IF_NEWER, 1, _key(product_id), version, _PENDING, self._ttl_ms)
        pipeline.execute()

    def ping(self) -> None:
        self._call(self._client.ping)

    def _store(self, key: str, version: int, body: str | bytes) -> None:
        self._call(lambda: self._client.eval(_STORE_IF_NEWER, 1, key, version, body, self._ttl_ms))

    def _call(self, command: Callable[[], Result]) -> Result:
        self.breaker.check()
        try:
            return command()
        except redis.RedisError:
            self.breaker.record_failure()
            raise


class BackFills:
    """Back-fills of products that reads fetched from Postgres, stored by one thread of the process.

    The thread takes every back-fill queued while it stored the last ones and stores them in one
    pipelined round trip, so under load a miss costs a share of a round trip instead of a whole one
    (docs/performance.md, "What was changed to get here"). Its commands belong to no request: they are
    not traced. At most `limit` back-fills wait; more are dropped (the next read of the product misses again) and, like a
    failed store, counted in `product_cache_errors_total{operation="store"}`.

    Make it in the process that serves (after gunicorn forks): its thread starts at the first back-fill.
    """

    BATCH = 100  # back-fills per round trip: a pipeline must finish well within the socket timeout

    def __init__(self, cache: ProductCache, metrics: ServiceMetrics, limit: int = 1000) -> None:
        self._cache = cache
        self._metrics = metrics
        self._limit = limit
        self._queued: list[StoredProduct] = []
        self._storing = False
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, loaded: Sequence[StoredProduct]) -> None:
        with self._changed:
            room = 0 if self._closed else self._limit - len(self._queued)
            self._queued.extend(loaded[:room])
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="cache-back-fills", daemon=True)
                self._thread.start()
            self._changed.notify()
        if len(loaded) > room:
            self._failed("%d back-fills dropped: too many waiting", len(loaded) - room)

    def flush(self, timeout: float = 5.0) -> None:
        """Return once every back-fill submitted so far is stored or has failed."""
        with self._changed:
            if not self._changed.wait_for(lambda: not (self._queued or self._storing), timeout):
                raise TimeoutError(f"back-fills still waiting after {timeout} s")

    def close(self, timeout: float = 2.0) -> None:
        """Store what is waiting, then stop the thread; later back-fills are dropped."""
        with self._changed:
            self._closed = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        with suppress_instrumentation():
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._queued or self._closed)
                    if not self._queued:
                        return
                    batch, self._queued = self._queued[: self.BATCH], self._queued[self.BATCH :]
                    self._storing = True
                try:
                    self._cache.store_many(batch)
                except CACHE_FAILURES:
                    self._failed(
                        "redis store of %d back-fills failed; their next reads go to postgres", len(batch)
                    )
                except Exception:  # the thread must outlive any one batch
                    log.exception("back-fill of %d products failed", len(batch))
                    self._metrics.cache_error("store")
                finally:
                    with self._changed:
                        self._storing = False
                        self._changed.notify_all()

    def _failed(self, message: str, count: int) -> None:
        self._metrics.cache_error("store")
        log.warning(message, count)


class CacheRepairs:
    """Marks pending the cache entries that writes noted in `cache_repairs` (Redis did not take their
    mark), then forgets the notes. See "Writes through a Redis outage" above for when it runs.

    Make it in the process that serves (after gunicorn forks): its thread starts with it.
    """

    BATCH = 500
    RETRY_SECONDS = 1.0

    def __init__(self, repository: ProductRepository, cache: ProductCache, metrics: ServiceMetrics) -> None:
        self._repository = repository
        self._cache = cache
        self._metrics = metrics
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        cache.breaker.before_closing(self.run)
        self._wanted.set()  # at start: notes a process left when it died
        self._thread = threading.Thread(target=self._run_when_wanted, name="cache-repairs", daemon=True)
        self._thread.start()

    def soon(self) -> None:
        """A write has just noted a repair (and committed)."""
        self._wanted.set()

    def run(self) -> None:
        """Repair every noted entry; raises, leaving the rest noted, when Redis or Postgres fails."""
        with suppress_instrumentation():
            while True:
                noted = self._repository.cache_repairs(self.BATCH)
                if not noted:
                    return
                self._cache.mark_many_pending(noted)
                self._repository.forget_cache_repairs(noted)
                log.warning("repaired %d cache entries that writes during a redis outage left", len(noted))
                if len(noted) < self.BATCH:
                    return

    def close(self, timeout: float = 2.0) -> None:
        self._stopped.set()
        self._wanted.set()
        self._thread.join(timeout)

    def _run_when_wanted(self) -> None:
        failing = False
        while True:
            self._wanted.wait()
            if self._stopped.is_set():
                return
            self._wanted.clear()
            if self._cache.breaker.is_open:
                continue  # the breaker runs the repairs before it closes
            try:
                self.run()
                failing = False
            except Exception as error:  # the thread must outlive any one attempt
                self._metrics.cache_error("repair")
                if not failing:
                    log.warning("cache repairs failed, retrying every %.0f s: %r", self.RETRY_SECONDS, error)
                failing = True
                self._stopped.wait(self.RETRY_SECONDS)
                self._wanted.set()


@dataclass(frozen=True)
class BatchResult(Generic[Found]):
    products: list[Found]
    missing: list[UUID]


@dataclass(frozen=True)
class _Reading(Generic[Found]):
    """How a read turns what it found into its result: a cached body (None if unreadable) or a row."""

    from_cache: Callable[[bytes], Found | None]
    from_row: Callable[[StoredProduct], Found]


class CachedProductRepository:
    """What the API uses: reads try Redis first, writes go to Postgres and then refresh Redis."""

    def __init__(
        self,
        repository: ProductRepository,
        cache: ProductCache,
        metrics: ServiceMetrics,
        backfills: BackFills,
        repairs: CacheRepairs,
    ) -> None:
        self._repository = repository
        self._cache = cache
        self._metrics = metrics
        self._backfills = backfills
        self._repairs = repairs

    def get(self, product_id: UUID) -> Product | None:
        return self._get(product_id, _AS_MODEL)

    def get_json(self, product_id: UUID) -> bytes | None:
        """The product's JSON as GET /products/{id} answers it; a cache hit is the stored bytes as they are."""
        return self._get(product_id, _AS_JSON)

    def get_many(self, product_ids: Sequence[UUID]) -> BatchResult[Product]:
        """One MGET, at most one SQL query for the misses, one pipelined back-fill."""
        return self._get_many(product_ids, _AS_MODEL)

    def get_many_json(self, product_ids: Sequence[UUID]) -> BatchResult[bytes]:
        """`get_many` with each product as its JSON document, cache hits as stored."""
        return self._get_many(product_ids, _AS_JSON)

    def _get(self, product_id: UUID, reading: _Reading[Found]) -> Found | None:
        try:
            entry = self._cache.get(product_id)
        except CACHE_FAILURES:
            # Straight to Postgres, and no back-fill: a slow Redis must cost one timeout, not two.
            self._cache_failed("get")
            stored = self._repository.get(product_id)
            return reading.from_row(stored) if stored else None
        if entry is not None:
            if entry.deleted:
                self._metrics.cache_hits()
                return None
            found = reading.from_cache(entry.body)
            if found is not None:
                self._metrics.cache_hits()
                return found
        self._metrics.cache_misses()
        stored = self._repository.get(product_id)
        if stored is not None:
            self._backfills.submit([stored])
        return reading.from_row(stored) if stored else None

    def _get_many(self, product_ids: Sequence[UUID], reading: _Reading[Found]) -> BatchResult[Found]:
        wanted = list(dict.fromkeys(product_ids))
        try:
            entries = self._cache.get_many(wanted)
            cache_answered = True
        except CACHE_FAILURES:
            self._cache_failed("mget")
            entries, cache_answered = [None] * len(wanted), False
        found: dict[UUID, Found] = {}
        misses: list[UUID] = []
        for product_id, entry in zip(wanted, entries, strict=True):
            if entry is None:
                misses.append(product_id)
            elif not entry.deleted:
                value = reading.from_cache(entry.body)
                if value is None:
                    misses.append(product_id)
                else:
                    found[product_id] = value
        if cache_answered:
            self._metrics.cache_hits(len(wanted) - len(misses))
            self._metrics.cache_misses(len(misses))
        if misses:
            loaded = self._repository.get_many(misses)
            found.update((stored.id, reading.from_row(stored)) for stored in loaded)
            if cache_answered and loaded:
                self._backfills.submit(loaded)
        return BatchResult(
            products=[found[product_id] for product_id in wanted if product_id in found],
            missing=[product_id for product_id in wanted if product_id not in found],
        )

    # Pages are not cached: any create or delete would shift every page after it.
    def list_page(self, limit: int, offset: int) -> tuple[list[Product], int]:
        return self._list_page(limit, offset, _AS_MODEL)

    def list_page_json(self, limit: int, offset: int) -> tuple[list[bytes], int]:
        """`list_page` with each product as its JSON document."""
        return self._list_page(limit, offset, _AS_JSON)

    def _list_page(self, limit: int, offset: int, reading: _Reading[Found]) -> tuple[list[Found], int]:
        rows, total = self._repository.list_page(limit, offset)
        return [reading.from_row(stored) for stored in rows], total

    def create(self, new: ProductCreate) -> Product:
        return self._repository.create(new).product

    def update(self, product_id: UUID, changes: dict[str, Any]) -> Product | None:
        marks: list[bool] = []
        stored = self._repository.update(
            product_id, changes, before_commit=lambda new: self._mark_pending(product_id, new.version, marks)
        )
        self._repair_if_unmarked(marks)
        if stored is not None:
            try:  # over its mark, before the update answers: never left to `BackFills`
                self._cache.store(stored)
            except CACHE_FAILURES:
                self._cache_failed("store", stored.id)
        return stored.product if stored else None

    def delete(self, product_id: UUID) -> bool:
        marks: list[bool] = []
        deleted_version = self._repository.delete(
            product_id, before_commit=lambda version: self._mark_pending(product_id, version + 1, marks)
        )
        self._repair_if_unmarked(marks)
        if deleted_version is None:
            return False
        try:
            self._cache.store_tombstone(product_id, deleted_version)
        except CACHE_FAILURES:
            self._cache_failed("invalidate", product_id)
        return True

    def _mark_pending(self, product_id: UUID, version: int, marks: list[bool]) -> bool:
        """Whether Redis took the mark; when not, the write notes a repair and still commits."""
        try:
            self._cache.mark_pending(product_id, version)
            marked = True
        except CACHE_FAILURES:
            self._metrics.cache_error("mark")
            marked = False
        marks.append(marked)
        return marked

    def _repair_if_unmarked(self, marks: list[bool]) -> None:
        if not all(marks):  # committed with its repair noted
            self._repairs.soon()

    def _cache_failed(self, operation: str, product_id: UUID | None = None) -> None:
        self._metrics.cache_error(operation)
        log.warning(
            "redis %s failed; served from postgres", operation, extra={"fields": {"product_id": product_id}}
        )


def _key(product_id: UUID) -> str:
    return f"{_KEY_PREFIX}{product_id}"


def _decode(raw: bytes | str | None) -> CacheEntry | None:
    if raw is None:
        return None
    version, _, body = (raw.encode() if isinstance(raw, str) else raw).partition(b":")
    if body == _PENDING.encode():
        return None
    if body and not (body.startswith(_PRODUCT_DOCUMENT_START) and body.endswith(b"}")):
        return None  # not a product document this release wrote: a miss, whose back-fill replaces it
    try:
        return CacheEntry(int(version), body)
    except ValueError:
        # Not an entry this release can read: a miss, whose back-fill then overwrites it.
        return None


# Product.model_dump_json starts every document with its id.
_PRODUCT_DOCUMENT_START = b'{"id":"'


def _parsed(body: bytes) -> Product | None:
    try:
        return Product.model_validate_json(body)
    except ValueError:
        return None  # unreadable: a miss


_AS_MODEL: _Reading[Product] = _Reading(_parsed, lambda stored: stored.product)
_AS_JSON: _Reading[bytes] = _Reading(lambda body: body, lambda stored: stored.document)
