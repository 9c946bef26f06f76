"""A bounded pool of ClickHouse clients for the query service.

clickhouse-connect clients are synchronous and one query at a time each, so the pool hands one
client to each running query (run in a worker thread). ``pool_min`` clients are opened at start;
the pool grows up to ``pool_max`` and a query waits for a free client beyond that.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Iterator

from clickhouse_connect.driver.client import Client

from ...clickhouse.client import connect
from ...config import ClickHouseConfig
from ...errors import StorageError

log = logging.getLogger(__name__)


class ClientPool:
    def __init__(self, cfg: ClickHouseConfig, *, read_only: bool = True, acquire_timeout_s: float = 30.0) -> None:
        self._cfg = cfg
        self._read_only = read_only
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._opened = 0
        self._closed = False
        self._acquire_timeout_s = acquire_timeout_s
        self.size_max = cfg.pool_max

    def open(self) -> None:
        """Open ``pool_min`` clients now, so the first queries do not pay the connection cost.

        Best effort: when ClickHouse is not reachable yet the service still starts, and clients are
        opened on demand (queries answer 503 until the server is back).
        """
        for _ in range(self._cfg.pool_min):
            try:
                self._idle.put(self._new())
            except StorageError as e:
                log.warning("query pool: cannot connect to ClickHouse yet (%s); connecting on demand", e)
                return

    def _new(self) -> Client:
        with self._lock:
            self._opened += 1
        try:
            return connect(self._cfg, read_only=self._read_only)
        except BaseException:
            with self._lock:
                self._opened -= 1
            raise

    def _take(self) -> Client:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            can_grow = self._opened < self.size_max
        if can_grow:
            return self._new()
        return self._idle.get(timeout=self._acquire_timeout_s)

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        c = self._take()
        ok = False
        try:
            yield c
            ok = True
        finally:
            if ok and not self._closed:
                self._idle.put(c)
            else:
                # A client whose query failed midway may hold a broken connection: replace it lazily.
                with self._lock:
                    self._opened -= 1
                c.close()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
