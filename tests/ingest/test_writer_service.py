"""Writer: batching, exactly-once replay after a crash, dead letters; real ClickHouse."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from otelingest.ingest import frame as records
from otelingest.clickhouse.client import connect
from otelingest.config import Config
from otelingest.ingest.writer.inserter import OK, Inserter
from otelingest.ingest.writer.ledger import Ledger
from otelingest.ingest.writer.service import WriterService

from rings import make_ring


def log_block(client: Any, first: int, count: int, service: str = "svc") -> bytes:
    """A Native block of log rows made by ClickHouse itself (Body = 'line <n>')."""
    return client.raw_query(
        "SELECT toDateTime64('2026-11-24 00:00:00', 9) + toIntervalSecond(number) AS Timestamp,"
        " {svc:String} AS ServiceName, concat('line ', toString(number)) AS Body"
        " FROM numbers({first:UInt64}, {count:UInt64}) FORMAT Native",
        parameters={"svc": service, "first": first, "count": count},
    )


def bad_trace_block(client: Any, count: int) -> bytes:
    """A block ClickHouse can never take: a Timestamp that is not a time."""
    return client.raw_query("SELECT 'not a time' AS Timestamp FROM numbers({n:UInt64}) FORMAT Native",
                            parameters={"n": count})


def make_writer(cfg: Config, rings: list[Any], stop: threading.Event) -> WriterService:
    ledger = Ledger(cfg.data_path / "run" / "writer-0.ledger")
    return WriterService(cfg, rings, ledger, Inserter(cfg, stop=stop), index=0)


def drain(service: WriterService) -> None:
    service.replay()
    service.drain(threading.Event())


def body_count(client: Any, db: str) -> list[tuple[str, int]]:
    return client.query(f"SELECT Body, count() FROM {db}.otel_logs GROUP BY Body ORDER BY Body").result_rows


@pytest.fixture
def cfg(migrated: Config, make_config: Any) -> Config:
    migrated.data_path.joinpath("run").mkdir(parents=True, exist_ok=True)
    return migrated


def test_batches_rows_from_every_ring_into_few_inserts(cfg: Config, tmp_path: Path) -> None:
    client = connect(cfg.clickhouse)
    rings = [make_ring(tmp_path / f"r{i}", 1 << 20) for i in range(2)]
    for n in range(10):
        assert rings[n % 2].try_push(records.encode([("otel_logs", 3, log_block(client, n * 3, 3))]))
    stop = threading.Event()
    w = make_writer(cfg, rings, stop)
    try:
        drain(w)
    finally:
        w.close()
    assert client.query("SELECT count(), uniqExact(Body) FROM otel_logs").result_rows == [(30, 30)]
    assert w.stats["batches"] == 1  # 30 rows under batch_max_items: one INSERT, not one per record
    assert all(r.used_bytes == 0 for r in rings)


def test_flush_at_batch_max_items(migrated: Config, make_config: Any, tmp_path: Path) -> None:
    cfg = make_config(clickhouse={"database": migrated.clickhouse.database}, writer={"batch_max_items": 10})
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    for n in range(10):
        assert ring.try_push(records.encode([("otel_logs", 5, log_block(client, n * 5, 5))]))
    w = make_writer(cfg, [ring], threading.Event())
    try:
        drain(w)
    finally:
        w.close()
    assert client.query("SELECT count() FROM otel_logs").result_rows == [(50,)]
    assert w.stats["batches"] == 5


def store_then_kill(cfg: Config, client, ring, *, requests: int):
    """Push ``requests`` log requests, store them as one batch, then stop the writer as if killed:
    its INSERT is done but the ring is not released and its ledger entry stays."""
    for n in range(requests):
        assert ring.try_push(records.encode([("otel_logs", 2, log_block(client, n * 2, 2))]))
    first = make_writer(cfg, [ring], threading.Event())
    first._fill()
    first._seal()
    for f in first.inflight[0].futures:
        f.result(timeout=60)
    first.pool.shutdown()
    return first


def test_replay_after_crash_stores_each_row_once(cfg: Config, tmp_path: Path) -> None:
    """A writer dies after its INSERT but before releasing the ring: the next one must not double."""
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    store_then_kill(cfg, client, ring, requests=4)  # stored, never released, ledger entry still pending
    assert client.query("SELECT count() FROM otel_logs").result_rows == [(8,)]
    # Two more requests arrive before the replacement starts.
    for n in range(4, 6):
        assert ring.try_push(records.encode([("otel_logs", 2, log_block(client, n * 2, 2))]))

    second = make_writer(cfg, [make_ring(tmp_path / "r0", 0, attach=True, reuse=ring)], threading.Event())
    try:
        drain(second)
    finally:
        second.close()
    assert second.stats["replayed"] == 1
    assert body_count(client, cfg.clickhouse.database) == [(f"line {n}", 1) for n in sorted(range(12), key=str)]
    assert Ledger(cfg.data_path / "run" / "writer-0.ledger").batches == []


def test_unstorable_batch_goes_to_dead_letter_and_others_are_stored(cfg: Config, tmp_path: Path) -> None:
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    assert ring.try_push(records.encode([("otel_traces", 3, bad_trace_block(client, 3)),
                                         ("otel_logs", 4, log_block(client, 0, 4))]))
    w = make_writer(cfg, [ring], threading.Event())
    try:
        drain(w)
    finally:
        w.close()
    assert client.query("SELECT count() FROM otel_logs").result_rows == [(4,)]
    assert client.query("SELECT count() FROM otel_traces").result_rows == [(0,)]
    dead = list((cfg.data_path / "deadletter" / "otel_traces").glob("*.json"))
    assert len(dead) == 1
    assert "Cannot parse" in dead[0].read_text()
    assert w.stats["dead_letter"] == 1
    assert ring.used_bytes == 0


def test_batch_stored_but_not_released_is_skipped_not_reinserted(cfg: Config, tmp_path: Path) -> None:
    """The writer died after marking a batch done, before releasing the ring."""
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    first = store_then_kill(cfg, client, ring, requests=3)
    first.ledger.mark_done(first.inflight[0].batch.seq)
    # Deduplication would hide a re-insert; drop the rows so a re-insert would show.
    client.command("TRUNCATE TABLE otel_logs")
    second = make_writer(cfg, [make_ring(tmp_path / "r0", 0, attach=True, reuse=ring)], threading.Event())
    try:
        drain(second)
    finally:
        second.close()
    assert client.query("SELECT count() FROM otel_logs").result_rows == [(0,)]
    assert second.stats["replayed"] == 0
    assert second.rings[0].used_bytes == 0
    assert Ledger(cfg.data_path / "run" / "writer-0.ledger").batches == []


def test_batch_seals_at_a_quarter_of_the_rings(migrated: Config, make_config: Any, tmp_path: Path) -> None:
    """Large batch_max_items must not let one batch hold the rings full while it is inserted."""
    cfg = make_config(clickhouse={"database": migrated.clickhouse.database}, writer={"ring_mib": 1})
    cfg.data_path.joinpath("run").mkdir(parents=True, exist_ok=True)
    rings = [make_ring(tmp_path / f"r{i}", 1 << 20) for i in range(2)]
    w = make_writer(cfg, rings, threading.Event())
    assert w.open.max_bytes == (2 << 20) // 4


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_a_body_given_as_parts_is_stored_whole_with_every_compression(migrated: Config, make_config: Any,
                                                                       compression: str) -> None:
    """A sealed batch hands the inserter its blocks unjoined; each compression sends them as one body."""
    cfg = make_config(clickhouse={"database": migrated.clickhouse.database, "compression": compression})
    client = connect(cfg.clickhouse)
    db = cfg.clickhouse.database
    parts: list[bytes | memoryview] = [log_block(client, 10 * n, 10) for n in range(5)]
    parts[2] = memoryview(parts[2])  # as the writer holds them: views into the ring records
    inserter = Inserter(cfg, stop=threading.Event())
    assert inserter.insert("otel_logs", 50, parts, f"parts-{compression}") == OK
    assert inserter.insert("otel_logs", 50, parts, f"parts-{compression}") == OK  # a replay: dropped
    inserter.close()
    assert body_count(client, db) == sorted((f"line {n}", 1) for n in range(50))
