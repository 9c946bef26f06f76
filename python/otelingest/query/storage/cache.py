"""Result cache keyed by the normalized query.

A window that ended more than ``recent_window_s`` ago cannot change any more (late data aside), so
its result lives ``cache_ttl_s``; a window reaching into the last minutes is cached only
``recent_cache_ttl_s`` so dashboards refreshing "now" never see a 15-minute-old answer.

Every answer is kept under its tenant (``for_tenant``: the key a request's handlers use is
``(tenant, key)``), so a cached answer is never served to another tenant.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Hashable

from prometheus_client import Counter

from ...config import QueryConfig
from ..timeparse import NS

CACHE_HITS = Counter("otel_query_cache_hits_total", "Query results served from the cache")
CACHE_MISSES = Counter("otel_query_cache_misses_total", "Query results computed (not in the cache)")


class ResultCache:
    def __init__(self, cfg: QueryConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def ttl_for(self, end_ns: int | None) -> float:
        """Seconds a result may be kept, from the end of the window it covers."""
        now = self.clock()
        if end_ns is None or end_ns / NS > now - self.cfg.recent_window_s:
            return min(self.cfg.recent_cache_ttl_s, self.cfg.cache_ttl_s)
        return self.cfg.cache_ttl_s

    def get(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False, None
            expires, value = item
            if expires <= self.clock():
                del self._items[key]
                return False, None
            self._items.move_to_end(key)
            return True, value

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._items[key] = (self.clock() + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.cfg.cache_max_entries:
                self._items.popitem(last=False)

    def for_tenant(self, tenant: str) -> "TenantCache":
        return TenantCache(self, tenant)

    async def get_or_compute(self, tenant: str, key: Hashable, end_ns: int | None,
                             compute: Callable[[], Awaitable[Any]]) -> Any:
        key = (tenant, key)
        hit, value = self.get(key)
        if hit:
            CACHE_HITS.inc()
            return value
        CACHE_MISSES.inc()
        value = await compute()
        self.put(key, value, self.ttl_for(end_ns))
        return value


class TenantCache:
    """The result cache as one request's tenant sees it: only its own answers."""

    def __init__(self, cache: ResultCache, tenant: str) -> None:
        self._cache = cache
        self.tenant = tenant

    async def get_or_compute(self, key: Hashable, end_ns: int | None, compute: Callable[[], Awaitable[Any]]) -> Any:
        return await self._cache.get_or_compute(self.tenant, key, end_ns, compute)
