"""Running named SQL against ClickHouse for the APIs: limits, timeouts, cancellation, metrics.

Every query runs on a pooled client in a worker thread with a ``query_id``, ClickHouse-side limits
(``max_execution_time``, ``max_result_rows``/``max_result_bytes`` with ``result_overflow_mode =
'throw'``: an over-large answer is an error, never a silently truncated one) and, while it runs, the
HTTP request is watched: when the client goes away the query is killed (``KILL QUERY``) so
ClickHouse stops working for nobody.

Every query runs for one tenant: the APIs hold a :class:`TenantStore` (``Store.for_tenant``, one per
request), which binds ``{tenant:String}`` on every query it runs and keys every shared lookup by
the tenant; the shared :class:`Store` takes the tenant as a required argument and refuses SQL that
reads a tenant table without ``TenantId = {tenant:String}`` (``scoping.unscoped_reads``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from prometheus_client import Counter, Histogram
from starlette.requests import Request

from ...clickhouse import sqlfiles
from ...clickhouse.client import as_storage_error, error_code
from ...config import QueryConfig, RetentionConfig, TenancyConfig
from ..errors import BadRequest, QueryError, Unavailable, Unprocessable
from .pool import ClientPool
from .scoping import unscoped_reads

log = logging.getLogger(__name__)

QUERY_DURATION = Histogram(
    "otel_query_duration_seconds", "Query service request duration", ["query_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUERY_ERRORS = Counter("otel_query_errors_total", "Query service requests that failed", ["query_type"])

# ClickHouse error codes and what they mean for the client.
_TIMEOUT_CODES = {159, 160, 209, 210}  # TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT, NETWORK_ERROR
_TOO_BIG_CODES = {158, 396, 307}  # TOO_MANY_ROWS, TOO_MANY_ROWS_OR_BYTES, TOO_MANY_BYTES
_BAD_INPUT_CODES = {427, 36, 69}  # CANNOT_COMPILE_REGEXP, BAD_ARGUMENTS, ARGUMENT_OUT_OF_BOUND
_READONLY_CODE = 164  # READONLY: a readonly=1 user may not set max_execution_time & co.
_DISCONNECT_POLL_S = 0.1
MEMO_MAX = 256
# Label sources kept per metric series id (see Store.series_labels).
SERIES_LABELS_MAX = 200_000


class Store:
    """The query service's access to ClickHouse."""

    def __init__(self, pool: ClientPool, cfg: QueryConfig, retention: RetentionConfig | None = None,
                 tenancy: TenancyConfig | None = None) -> None:
        self.pool = pool
        self.cfg = cfg
        # Which metrics table still holds a time range (raw, 5-minute or hourly rollup).
        self.retention = retention or RetentionConfig()
        self.tenancy = tenancy or TenancyConfig()
        # Short-lived lookups shared by this process's requests: key -> (fresh until, stale until, value),
        # on the monotonic clock.
        self._memo: dict[Any, tuple[float, float, Any]] = {}
        self._refreshing: set[Any] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # (tenant, metric series id) -> its Prometheus labels but the name. The id is a hash of the
        # maps they come from (and of the metric and service), so an entry never goes stale; it is
        # only bounded. The tenant is part of the key: a tenant is only told labels of its own rows.
        self.series_labels: dict[tuple[str, int], dict[str, str]] = {}

    def for_tenant(self, tenant: str) -> "TenantStore":
        """This store bound to ``tenant``: what a request's handlers read with."""
        return TenantStore(self, tenant)

    def recall(self, key: Any, *, stale: bool = False) -> Any:
        """What :meth:`remember` stored under ``key``, or None once it expired (with ``stale``: once
        its stale time is over too)."""
        hit = self._memo.get(key)
        return hit[2] if hit is not None and hit[1 if stale else 0] > time.monotonic() else None

    def remember(self, key: Any, value: Any, ttl_s: float, stale_s: float = 0.0) -> None:
        now = time.monotonic()
        if len(self._memo) >= MEMO_MAX:
            self._memo = {k: v for k, v in self._memo.items() if v[1] > now}
            while len(self._memo) >= MEMO_MAX:  # all alive: drop the oldest entries
                self._memo.pop(next(iter(self._memo)))
        self._memo[key] = (now + ttl_s, now + ttl_s + stale_s, value)

    def refresh(self, key: Any, read: Callable[[], Awaitable[object]]) -> None:
        """Run ``read`` (which remembers ``key`` afresh) in the background, unless it already runs."""
        if key in self._refreshing:
            return
        self._refreshing.add(key)

        async def run() -> None:
            try:
                await read()
            except Exception as e:  # the stale value stays; the next request tries again
                log.warning("background refresh of %s failed: %s", key, e)
            finally:
                self._refreshing.discard(key)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def keep_series_labels(self, labels: dict[tuple[str, int], dict[str, str]]) -> None:
        """Remember series' labels; the oldest half goes when full."""
        if len(self.series_labels) + len(labels) > SERIES_LABELS_MAX:
            keep = list(self.series_labels.items())[len(self.series_labels) // 2:]
            self.series_labels = dict(keep)
        self.series_labels.update(labels)

    def _settings(self, max_rows: int | None) -> dict[str, Any]:
        return {
            "max_execution_time": self.cfg.timeout_s,
            "max_result_rows": max_rows or self.cfg.max_rows,
            "max_result_bytes": self.cfg.max_result_bytes,
            "result_overflow_mode": "throw",
        }

    def _run(self, sql: str, params: dict[str, Any], settings: dict[str, Any]) -> list[tuple]:
        with self.pool.client() as client:
            return [tuple(r) for r in client.query(sql, parameters=params, settings=settings).result_rows]

    def _kill(self, query_id: str) -> None:
        try:
            with self.pool.client() as client:
                client.command(sqlfiles.query("shared/kill_query"), parameters={"query_id": query_id})
        except Exception as e:  # best effort: the query also dies at max_execution_time
            log.warning("kill query %s failed: %s", query_id, e)

    async def rows(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        tenant: str,
        request: Request | None = None,
        max_rows: int | None = None,
    ) -> list[tuple]:
        """Rows of ``sql`` (text from sql/ only) with ``params`` bound server-side, for ``tenant``
        (bound as ``{tenant:String}``, over any ``tenant`` in ``params``).

        Raises:
            QueryError: ``sql`` reads a tenant table without ``TenantId = {tenant:String}`` (500:
                a bug, refused rather than answered with every tenant's rows).
            Unavailable: timeout or ClickHouse unreachable (503).
            Unprocessable: the answer exceeds the row/byte limits (422).
            BadRequest: ClickHouse rejected a client-supplied value (e.g. an invalid regex).
        """
        unscoped = unscoped_reads(sql)
        if unscoped:
            raise QueryError(f"query reads {', '.join(unscoped)} without its tenant condition: refused")
        params = {**(params or {}), "tenant": tenant}
        query_id = f"otelq-{uuid.uuid4().hex}"
        settings = self._settings(max_rows) | {"query_id": query_id}
        result: list[tuple] = []
        done = anyio.Event()
        failure: list[BaseException] = []

        async def execute() -> None:
            try:
                result.extend(await anyio.to_thread.run_sync(self._run, sql, params, settings, abandon_on_cancel=True))
            except BaseException as e:  # re-raised below, in the caller's context
                failure.append(e)
            finally:
                done.set()

        gone = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            if request is not None:
                while not done.is_set():
                    with anyio.move_on_after(_DISCONNECT_POLL_S):
                        await done.wait()
                    if not done.is_set() and await request.is_disconnected():
                        gone = True
                        await anyio.to_thread.run_sync(self._kill, query_id)
                        tg.cancel_scope.cancel()
                        break
        if gone:
            raise Unavailable("client disconnected; query cancelled")
        if failure:
            raise classify_error(failure[0])
        return result


class TenantStore:
    """The store as one request's tenant sees it: every query it runs is bound to the tenant and
    every shared lookup (catalog memo, series labels) is keyed by it."""

    def __init__(self, store: Store, tenant: str) -> None:
        self._store = store
        self.tenant = tenant
        self.retention = store.retention
        # A tenant's points are kept its own days (the TTL per tenant): past its raw days its ranges
        # are read from the rollups, past its 5-minute rollup's from the hourly one, as everyone's
        # are past the global days.
        if store.tenancy.enabled:
            own = msgspec.structs.asdict(store.tenancy.limits(tenant).retention)
            self.retention = msgspec.structs.replace(
                store.retention, **{k: v for k, v in own.items() if v is not None})
        self.cfg = store.cfg

    async def rows(self, sql: str, params: dict[str, Any] | None = None, *, request: Request | None = None,
                   max_rows: int | None = None) -> list[tuple]:
        return await self._store.rows(sql, params, tenant=self.tenant, request=request, max_rows=max_rows)

    async def named(self, name: str, params: dict[str, Any] | None = None, **kw: Any) -> list[tuple]:
        return await self.rows(sqlfiles.query(name), params, **kw)

    def recall(self, key: Any, *, stale: bool = False) -> Any:
        return self._store.recall((self.tenant, key), stale=stale)

    def remember(self, key: Any, value: Any, ttl_s: float, stale_s: float = 0.0) -> None:
        self._store.remember((self.tenant, key), value, ttl_s, stale_s)

    def refresh(self, key: Any, read: Callable[[], Awaitable[object]]) -> None:
        self._store.refresh((self.tenant, key), read)

    def known_series_labels(self, ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """The labels already read of those of ``ids`` this tenant's queries have read before."""
        cached = self._store.series_labels
        return {sid: cached[(self.tenant, sid)] for sid in ids if (self.tenant, sid) in cached}

    def keep_series_labels(self, labels: dict[int, dict[str, str]]) -> None:
        self._store.keep_series_labels({(self.tenant, sid): lab for sid, lab in labels.items()})


def classify_error(exc: BaseException) -> BaseException:
    """A ClickHouse failure as the query error the APIs answer with (503, 422, 400 or 500)."""
    if isinstance(exc, QueryError):
        return exc
    code = error_code(exc)
    first = as_storage_error(exc).args[0] if str(exc) else type(exc).__name__
    if code == _READONLY_CODE:
        return QueryError("the read-only ClickHouse user must allow query limits: give it readonly = 2 "
                          f"(not 1), or use a profile with them set: {first}")
    if code in _TOO_BIG_CODES:
        return Unprocessable(f"query result exceeds the limits ([query] max_rows / max_result_bytes): {first}")
    if code in _TIMEOUT_CODES:
        return Unavailable(f"query timed out: {first}")
    if code in _BAD_INPUT_CODES:
        return BadRequest(f"invalid value: {first}")
    if isinstance(exc, TimeoutError) or code is None:
        return Unavailable(f"storage unavailable: {first}")
    return QueryError(f"storage error: {first}")


class Timer:
    """Observe one request of a query type in the duration histogram and the error counter."""

    def __init__(self, query_type: str) -> None:
        self.query_type = query_type

    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        QUERY_DURATION.labels(self.query_type).observe(time.perf_counter() - self.t0)
        if et is not None:
            QUERY_ERRORS.labels(self.query_type).inc()

