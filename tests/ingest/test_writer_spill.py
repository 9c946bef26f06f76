"""Writer disk spill: batches go to disk while ClickHouse is unreachable, the replayer stores each
row exactly once afterwards, including across a writer crash at the two dangerous moments."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from otelingest.ingest import frame as records
from otelingest.clickhouse.client import connect
from otelingest.config import Config
from otelingest.ingest.spill import SpillQueue
from otelingest.ingest.writer.inserter import SPILLED, Inserter, Stopped
from otelingest.ingest.writer.ledger import Ledger
from otelingest.ingest.writer.service import WriterService

from rings import make_ring
from test_writer_service import body_count, log_block

BUDGET = 64 << 20


@pytest.fixture
def cfg(migrated: Config) -> Config:
    migrated.data_path.joinpath("run").mkdir(parents=True, exist_ok=True)
    return migrated


@pytest.fixture
def down(cfg: Config, make_config: Any) -> Config:
    """The same database and data dir, but ClickHouse at an address where nothing listens."""
    return make_config(
        clickhouse={"url": f"http://127.0.0.1:{free_port()}", "database": cfg.clickhouse.database},
        writer={"retry_initial_s": 0.05, "retry_max_s": 0.1},
        spill={"after_s": 0},
    )


def spill_queue(cfg: Config, budget: int = BUDGET) -> SpillQueue:
    return SpillQueue(cfg.data_path / "spill" / "writer-0", budget_bytes=budget, fsync="batch")


def writer(cfg: Config, rings: list[Any], spill: SpillQueue | None) -> WriterService:
    ledger = Ledger(cfg.data_path / "run" / "writer-0.ledger")
    return WriterService(cfg, rings, ledger, Inserter(cfg, stop=threading.Event()), index=0, spill=spill)


def push_logs(ring: Any, client: Any, first: int, records_: int, rows: int = 2) -> None:
    for n in range(first, first + records_):
        assert ring.try_push(records.encode([("otel_logs", rows, log_block(client, n * rows, rows))]))


def replay_all(w: WriterService, timeout: float = 60.0) -> None:
    """Run the replayer until the spill queue is empty."""
    assert w.spill is not None
    w.start_replayer()
    deadline = time.monotonic() + timeout
    while len(w.spill) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(w.spill) == 0, "the replayer did not empty the spill queue"


def expected_bodies(n: int) -> list[tuple[str, int]]:
    return [(f"line {k}", 1) for k in sorted(range(n), key=str)]


def spill_everything(down: Config, ring):
    """Drain the ring through a writer whose ClickHouse is unreachable: every batch goes to the spill."""
    w = writer(down, [ring], spill_queue(down))
    try:
        w.replay()
        w.drain(threading.Event())
    finally:
        w.close()
    return w


def test_unreachable_clickhouse_spills_releases_the_ring_then_replay_stores_once(
        cfg: Config, down: Config, tmp_path: Path) -> None:
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    push_logs(ring, client, 0, 5)
    w = spill_everything(down, ring)
    assert w.stats["spilled"] == 1 and w.stats["rows"] == 0
    assert ring.used_bytes == 0  # released: the batch is safe on disk
    assert client.query("SELECT count() FROM otel_logs").result_rows == [(0,)]

    # ClickHouse is back (a new writer at the same index, as after a restart).
    w2 = writer(cfg, [ring], spill_queue(cfg))
    try:
        replay_all(w2)
    finally:
        w2.close()
    assert w2.replayer is not None and w2.replayer.replayed_items == 10
    assert body_count(client, cfg.clickhouse.database) == expected_bodies(10)


def test_crash_after_spill_before_ring_release_stores_each_row_once(
        cfg: Config, down: Config, tmp_path: Path) -> None:
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    push_logs(ring, client, 0, 4)
    first = writer(down, [ring], spill_queue(down))
    first._fill()
    first._seal()
    assert [f.result(timeout=60) for f in first.inflight[0].futures] == [SPILLED]
    first.pool.shutdown()  # "killed": spilled, never released, ledger entry still pending
    first.spill.close()  # type: ignore[union-attr]
    assert ring.used_bytes > 0
    push_logs(ring, client, 4, 2)  # more data arrives before the replacement starts

    second = writer(cfg, [make_ring(tmp_path / "r0", 0, attach=True, reuse=ring)], spill_queue(cfg))
    try:
        second.replay()  # the ledger batch goes to the spill right behind its first copy
        replay_all(second)
        second.drain(threading.Event())
    finally:
        second.close()
    assert second.stats["replayed"] == 1
    assert body_count(client, cfg.clickhouse.database) == expected_bodies(12)
    assert Ledger(cfg.data_path / "run" / "writer-0.ledger").batches == []


def test_crash_between_replay_insert_and_ack_is_deduplicated(cfg: Config, down: Config, tmp_path: Path) -> None:
    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r0", 1 << 20)
    push_logs(ring, client, 0, 3)
    w = spill_everything(down, ring)
    # A replayer INSERTs the spilled batch and dies before its ack.
    q = spill_queue(cfg)
    batch = q.peek()
    assert batch is not None and batch.items == 6
    Inserter(cfg, stop=threading.Event()).insert_with_token(batch.table, batch.items, batch.payload, batch.token,
                                                            may_spill=False)
    q.close()
    assert client.query("SELECT count() FROM otel_logs").result_rows == [(6,)]

    w2 = writer(cfg, [ring], spill_queue(cfg))
    try:
        replay_all(w2)
    finally:
        w2.close()
    assert body_count(client, cfg.clickhouse.database) == expected_bodies(6)


class DiskFullQueue(SpillQueue):
    """The filesystem is full before the budget is reached."""

    def append(self, *args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("full", ["budget", "disk"])
def test_full_spill_keeps_retrying_and_keeps_the_batch(cfg: Config, down: Config, full: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    client = connect(cfg.clickhouse)
    body = log_block(client, 0, 5)
    stop = threading.Event()
    retries = 0

    def sleep(_delay: float) -> bool:
        nonlocal retries
        retries += 1
        if retries == 5:
            stop.set()
        return stop.is_set()

    if full == "budget":
        q = spill_queue(down, budget=100)  # smaller than any record
    else:
        q = DiskFullQueue(down.data_path / "spill" / "writer-0", budget_bytes=BUDGET)
    ins = Inserter(down, stop=stop, sleep=sleep, spill=q)
    with pytest.raises(Stopped):
        ins.insert("otel_logs", 5, body, "tok")
    assert retries == 5
    assert "cannot spill (SpillFull" in caplog.text if full == "budget" else "No space left on device" in caplog.text
    assert len(q) == 0 and q.stats.spilled_batches == 0
    q.close()


def test_spill_after_s_waits_before_spilling(cfg: Config, make_config: Any) -> None:
    slow = make_config(clickhouse={"url": f"http://127.0.0.1:{free_port()}", "database": cfg.clickhouse.database},
                       writer={"retry_initial_s": 0.05, "retry_max_s": 0.1}, spill={"after_s": 0.5})
    client = connect(cfg.clickhouse)
    q = spill_queue(slow)
    attempts = 0
    stop = threading.Event()

    def sleep(delay: float) -> bool:
        nonlocal attempts
        attempts += 1
        return stop.wait(delay)

    ins = Inserter(slow, stop=stop, sleep=sleep, spill=q)
    assert ins.insert("otel_logs", 5, log_block(client, 0, 5), "tok") == SPILLED
    assert attempts >= 2  # retried before going to disk
    batch = q.peek()
    assert batch is not None and (batch.table, batch.token, batch.items) == ("otel_logs", "tok-otel_logs", 5)
    q.close()


def test_spill_of_a_writer_index_gone_since_the_last_run_is_replayed_by_writer_0(
        cfg: Config, down: Config, tmp_path: Path) -> None:
    from otelingest.daemon.rundir import Layout
    from otelingest.daemon.worker import orphan_spill_queues

    client = connect(cfg.clickhouse)
    ring = make_ring(tmp_path / "r1", 1 << 20)
    push_logs(ring, client, 0, 4)
    old_q = SpillQueue(down.data_path / "spill" / "writer-1", budget_bytes=BUDGET)
    old = WriterService(down, [ring], Ledger(down.data_path / "run" / "writer-1.ledger"),
                        Inserter(down, stop=threading.Event()), index=1, spill=old_q)
    try:
        old.replay()
        old.drain(threading.Event())
    finally:
        old.close()
    assert old.stats["spilled"] == 1

    # This run has one writer: writer 0 adopts writer-1's queue.
    orphans = orphan_spill_queues(cfg, Layout(cfg.data_path / "run", receivers=1, writers=1))
    assert [q.dir.name for q in orphans] == ["writer-1"]
    w = WriterService(cfg, [make_ring(tmp_path / "r0", 1 << 20)], Ledger(cfg.data_path / "run" / "writer-0.ledger"),
                      Inserter(cfg, stop=threading.Event()), index=0, spill=spill_queue(cfg), orphan_spills=orphans)
    try:
        w.start_replayer()
        deadline = time.monotonic() + 60
        while len(orphans[0]) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        w.close()
    assert body_count(client, cfg.clickhouse.database) == expected_bodies(8)
    assert orphan_spill_queues(cfg, Layout(cfg.data_path / "run", receivers=1, writers=1)) == []


def test_a_replayed_traces_batch_does_not_double_the_views(cfg: Config) -> None:
    """The same body inserted twice under one token (ring replay + spill copy): the views fed by
    otel_traces (index, times, hourly span stats) count it once too."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    from load import T0
    from otelingest import _native

    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "dedup-views"
    for k in range(7):
        rs.scope_spans.add().spans.add(trace_id=(k + 1).to_bytes(16, "big"), span_id=(k + 1).to_bytes(8, "big"),
                                       name="op", start_time_unix_nano=T0 + k, end_time_unix_nano=T0 + k + 100)
    decoded = _native.decode_traces(req.SerializeToString())
    body = b"".join(b for _, _, b in decoded.blocks)
    ins = Inserter(cfg, stop=threading.Event())
    for _ in range(2):
        assert ins.insert("otel_traces", 7, body, "same-token") == "ok"
    client = connect(cfg.clickhouse)
    assert client.query("SELECT count() FROM otel_traces").result_rows == [(7,)]
    assert client.query("SELECT count() FROM otel_trace_index").result_rows == [(7,)]
    assert client.query("SELECT sum(SpanCount) FROM otel_span_stats_1h").result_rows == [(7,)]
    assert client.query("SELECT count() FROM otel_trace_times").result_rows == [(7,)]


def test_a_replayed_metrics_batch_does_not_double_the_rollups(cfg: Config) -> None:
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    from load import T0
    from otelingest import _native

    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "dedup-rollups"
    m = rm.scope_metrics.add().metrics.add(name="queue.depth")
    for k in range(5):
        m.gauge.data_points.add(time_unix_nano=T0 + k * 1_000_000_000, as_double=float(k + 1))
    decoded = _native.decode_metrics(req.SerializeToString())
    assert [t for t, _, _ in decoded.blocks] == ["otel_metrics"]
    body = b"".join(b for _, _, b in decoded.blocks)
    ins = Inserter(cfg, stop=threading.Event())
    for _ in range(2):
        assert ins.insert("otel_metrics", 5, body, "same-token") == "ok"
    client = connect(cfg.clickhouse)
    assert client.query("SELECT count() FROM otel_metrics").result_rows == [(5,)]
    for rollup in ("otel_metrics_5m", "otel_metrics_1h"):
        assert client.query(f"SELECT sum(Points), sum(ValueSum) FROM {rollup}").result_rows == [(5, 15.0)], rollup
