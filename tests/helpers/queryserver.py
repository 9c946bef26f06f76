"""Serving the query app for tests: uvicorn on a free port in a thread, for real HTTP clients, with
the dependency rollup the supervisor runs beside it (``[query] dependencies_rollup_interval_s``)."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import contextlib
import uvicorn

from otelingest.config import Config
from otelingest.jobs.dependencies import DependencyRollup
from otelingest.query.app import create_app


@contextlib.contextmanager
def serve(cfg: Config, port: int) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning",
                                           loop="uvloop", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("query server did not start")
        time.sleep(0.02)
    interval = cfg.query.dependencies_rollup_interval_s
    rollup = DependencyRollup(cfg.clickhouse, interval, cfg.query.dependencies_backfill_hours) if interval else None
    if rollup is not None:
        rollup.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if rollup is not None:
            rollup.stop()
        server.should_exit = True
        thread.join(timeout=10)
