"""Batch sizing: from the embedded server's configured memory, then halved by MEMORY_LIMIT_EXCEEDED."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from otelingest import config
from otelingest.clickhouse.client import connect
from otelingest.config import Config
from otelingest.ingest import frame as records
from otelingest.ingest.writer.inserter import Inserter
from otelingest.ingest.writer.ledger import Ledger
from otelingest.ingest.writer import sizing
from otelingest.ingest.writer.service import WriterService
from otelingest.ingest.writer.sizing import MEMORY_LIMIT_EXCEEDED, MIN_ITEMS, BatchSizer, initial_max_items

from rings import make_ring


def cfg_with(**sections: Any) -> Config:
    return config.load(None, overrides=sections, environ={})


def test_size_is_the_configured_one_unless_the_embedded_server_is_memory_capped() -> None:
    assert initial_max_items(cfg_with()) == config.DEFAULT_BATCH_MAX_ITEMS
    # The exhaustion scenario's 200 MiB server inserts 10,000-item batches (it stalled on 50,000).
    assert initial_max_items(cfg_with(clickhouse={"embedded_max_memory_mib": 200})) == 10_000
    assert initial_max_items(cfg_with(clickhouse={"embedded_max_memory_mib": 4096})) == config.DEFAULT_BATCH_MAX_ITEMS
    assert initial_max_items(cfg_with(clickhouse={"embedded_max_memory_mib": 10})) == MIN_ITEMS
    # An external server's memory is not ours to know: the setting as given.
    assert initial_max_items(cfg_with(clickhouse={"url": "http://x:8123", "embedded_max_memory_mib": 200})) \
        == config.DEFAULT_BATCH_MAX_ITEMS
    assert initial_max_items(cfg_with(writer={"batch_max_items": 100})) == 100


def test_memory_limit_exceeded_halves_later_batches_down_to_a_floor() -> None:
    sizer = BatchSizer(cfg_with())
    sizer.failed(209, 50_000)  # a timeout: not about the size
    assert sizer.max_items == 50_000
    sizer.failed(MEMORY_LIMIT_EXCEEDED, 50_000)
    assert sizer.max_items == 25_000
    sizer.failed(MEMORY_LIMIT_EXCEEDED, 50_000)  # the same batch's other tables: no second halving
    assert sizer.max_items == 25_000
    for _ in range(10):
        sizer.failed(MEMORY_LIMIT_EXCEEDED, sizer.max_items)
    assert sizer.max_items == MIN_ITEMS
    small = BatchSizer(cfg_with(writer={"batch_max_items": 100}))
    small.failed(MEMORY_LIMIT_EXCEEDED, 100)
    assert small.max_items == 100  # never above what was configured


def test_writer_seals_the_next_batch_at_the_lowered_size(migrated: Config, make_config: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "MIN_ITEMS", 10)
    cfg = make_config(clickhouse={"database": migrated.clickhouse.database}, writer={"batch_max_items": 40})
    cfg.data_path.joinpath("run").mkdir(parents=True, exist_ok=True)
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    w = WriterService(cfg, [ring], Ledger(cfg.data_path / "run" / "writer-0.ledger"),
                      Inserter(cfg, stop=threading.Event()), index=0)
    try:
        assert w.open.max_items == 40
        w.sizer.failed(MEMORY_LIMIT_EXCEEDED, 40)  # as the inserter reports it
        assert w.open.max_items == 40  # the open batch keeps its size until sealed
        body = client.raw_query("SELECT toDateTime64('2026-11-24 00:00:00', 9) AS Timestamp, 'svc' AS ServiceName,"
                                " toString(number) AS Body FROM numbers(10) FORMAT Native")
        for _ in range(6):
            assert ring.try_push(records.encode([("otel_logs", 10, body)]))
        w.replay()
        w.drain(threading.Event())
        assert w.open.max_items == 20
        assert w.stats["batches"] == 2 and w.stats["rows"] == 60  # 40, then 20 (lowered after the first seal)
    finally:
        w.close()
