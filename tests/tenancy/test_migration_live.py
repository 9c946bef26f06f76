"""Migration 0014 while the writers keep inserting: the hold covers each table's final pass only.

A database at schema 13 with enough rows that the copy takes seconds; a thread inserts through the
writers' own :class:`Inserter` (the daemon's hold is the flag the migration raises and lowers)
all through the migration. Afterwards every acknowledged row is stored exactly once, in the raw
tables and in the views' lookups and rollups, and inserts were held far less than the copy took.
"""

from __future__ import annotations

import re
import threading
import time

from otelingest import _native
from otelingest.bench.payloads import log_requests, trace_requests
from otelingest.bench.promwrite import Series, write_request
from otelingest.clickhouse import migrations as schema
from otelingest.clickhouse.client import connect
from otelingest.ingest.writer.inserter import OK, Inserter, insert_settings

NS = 1_000_000_000
HOUR = 3600
TENANT = "live"


def _write_many(ch, db: str, hours: int, per_hour: int) -> None:
    """Old rows (the previous release's: no TenantId) over many hourly partitions, in bulk."""
    now = int(time.time()) - 2 * 86_400  # older than anything the sender writes
    ch.command(
        f"INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName, Duration, StatusCode)"
        " SELECT fromUnixTimestamp64Nano(toInt64(({t:Int64} - intDiv(number, {n:UInt64}) * 3600) * 1000000000 + number % {n:UInt64})),"
        " reinterpretAsFixedString(toUInt128(intDiv(number, 4) + 1)), reinterpretAsFixedString(toUInt64(number + 1)),"
        " toFixedString('\\0\\0\\0\\0\\0\\0\\0\\0', 8), ['a', 'b', 'c'][number % 3 + 1], 'op', 1000 + number % 977,"
        " if(number % 7 = 0, 'ERROR', 'OK') FROM numbers({total:UInt64})",
        parameters={"t": now, "n": per_hour, "total": hours * per_hour},
        settings={**insert_settings("bulk-traces"), "max_partitions_per_insert_block": 0})
    ch.command(
        f"INSERT INTO {db}.otel_logs (Timestamp, ServiceName, Body)"
        " SELECT fromUnixTimestamp64Nano(toInt64(({t:Int64} - intDiv(number, {n:UInt64}) * 3600) * 1000000000)), 'a',"
        " toString(number) FROM numbers({total:UInt64})",
        parameters={"t": now, "n": per_hour // 2, "total": hours * per_hour // 2},
        settings={**insert_settings("bulk-logs"), "max_partitions_per_insert_block": 0})


class Sender:
    """Inserts spans, logs and remote-write samples of tenant ``live`` through the writers' Inserter
    until stopped, counting what each table acknowledged."""

    def __init__(self, cfg, held: threading.Event) -> None:
        self.stop = threading.Event()
        self.inserter = Inserter(cfg, stop=threading.Event(), storage_ready=lambda: False, hold=held.is_set)
        self.acked: dict[str, int] = {}
        self.spans = 0
        self.samples = 0
        self.rounds = 0
        self.thread = threading.Thread(target=self._run, name="sender", daemon=True)

    def _blocks(self, r: int):
        spans = trace_requests(1, spans=100, seed=10_000 + r)[0].body
        logs = log_requests(1, records=50, seed=20_000 + r)[0].body
        now = int(time.time()) * 1000
        body = write_request([Series({"__name__": "live_up", "job": "j", "instance": f"i{r}"},
                                     [(now - s * 1000, float(s)) for s in range(5)])],
                             [("live_up", "gauge", "up?", "")])
        yield "spans", _native.decode_traces(spans, tenant=TENANT).blocks
        yield "logs", _native.decode_logs(logs, tenant=TENANT).blocks
        yield "samples", _native.decode_remote_write(body, compression=None, tenant=TENANT).blocks

    def _run(self) -> None:
        r = 0
        while not self.stop.is_set():
            for _, blocks in self._blocks(r):
                for table, rows, block in blocks:
                    # Retried until stored (the schema is not current: every failure is retryable).
                    assert self.inserter.insert(table, rows, block, f"live-{r}") == OK
                    self.acked[table] = self.acked.get(table, 0) + rows
            r += 1
            self.rounds = r
            time.sleep(0.02)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.stop.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()
        self.inserter.close()


def test_writers_insert_during_the_copy_and_are_held_only_for_the_final_passes(make_config, ch_client) -> None:
    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=13)[0][-1] == 13
    _write_many(ch_client, db, hours=96, per_hour=20_000)
    old_spans = ch_client.query(f"SELECT count() FROM {db}.otel_traces").result_rows[0][0]

    # The daemon's hold: up from start-up until the rekey lowers it (storage.StorageWatcher._hold).
    held = threading.Event()
    held.set()
    timeline: list[tuple[float, bool]] = []

    def hold(on: bool) -> None:
        if on != held.is_set():
            timeline.append((time.monotonic(), on))
        held.set() if on else held.clear()

    sender = Sender(cfg, held)
    sender.start()
    client = connect(cfg.clickhouse, with_database=False)
    m = schema.Migrator(client, schema.RenderContext.from_config(cfg), hold=hold)
    started = time.monotonic()
    try:
        assert m.migrate() == [v.version for v in schema.available_migrations() if v.version >= 14]
    finally:
        client.close()
    took = time.monotonic() - started
    hold(False)  # the schema is current: the watcher lowers the hold
    time.sleep(1.0)  # inserts after the migration, into the new tables
    sender.join()

    # Hold intervals after the first lowering (before it: the ALTERs, which the writers' blocks need).
    first_lift = next(t for t, on in timeline if not on)
    alter_phase = first_lift - started
    held_s = 0.0
    for (t0, on), (t1, _) in zip(timeline, timeline[1:]):
        if on and t0 >= first_lift:
            held_s += t1 - t0
    per_table = {t: s for t, s, _ in m.held}
    caught_up = {t: n for t, _, n in m.held if n}
    print(f"\nmigration {took:.1f}s over {old_spans} old spans; inserts held {alter_phase:.2f}s before the copy "
          f"and {held_s:.2f}s in final passes ({len(per_table)} tables, longest "
          f"{max(per_table.values()):.2f}s); the sender stored {sender.rounds} rounds; "
          f"partitions caught up after the bulk copy: {caught_up}")
    assert len(per_table) == 14
    # Rows written during the copy reached the old tables, raw and views' (the final passes' work).
    assert {"otel_traces", "otel_trace_index"} <= set(caught_up), caught_up
    assert sender.rounds > 20, "the sender hardly ran during the migration"
    assert max(per_table.values()) < 2.0, per_table
    # About 0.15 s a table whatever its size (a barrier and a few seconds' inserts), so the share
    # shrinks as the database grows; here the copy is seconds only.
    assert held_s < took / 2, (held_s, took)

    # Acknowledged == stored == distinct, raw tables and the views' targets.
    def one(sql: str) -> int:
        return int(ch_client.query(sql, parameters={"t": TENANT}).result_rows[0][0])

    spans = sender.acked["otel_traces"]
    assert one(f"SELECT count() FROM {db}.otel_traces WHERE TenantId = {{t:String}}") == spans
    assert one(f"SELECT uniqExact(TraceId, SpanId) FROM {db}.otel_traces WHERE TenantId = {{t:String}}") == spans
    assert one(f"SELECT count() FROM {db}.otel_trace_index WHERE TenantId = {{t:String}}") == spans
    assert one(f"SELECT uniqExact(TraceId, Timestamp, SpanName, Duration) FROM {db}.otel_trace_index "
               "WHERE TenantId = {t:String}") == spans
    assert one(f"SELECT sum(SpanCount) FROM {db}.otel_span_stats_1h WHERE TenantId = {{t:String}}") == spans
    assert one(f"SELECT count() FROM {db}.otel_trace_times FINAL WHERE TenantId = {{t:String}}") == \
        one(f"SELECT uniqExact(TraceId) FROM {db}.otel_traces WHERE TenantId = {{t:String}}")
    logs = sender.acked["otel_logs"]
    assert one(f"SELECT count() FROM {db}.otel_logs WHERE TenantId = {{t:String}}") == logs
    assert one(f"SELECT uniqExact(Timestamp, TraceId, SpanId, Body) FROM {db}.otel_logs WHERE TenantId = {{t:String}}") == logs
    samples = sender.acked["otel_prom_samples"]
    assert one(f"SELECT count() FROM {db}.otel_prom_samples WHERE TenantId = {{t:String}}") == samples
    assert one(f"SELECT uniqExact(*) FROM {db}.otel_prom_samples WHERE TenantId = {{t:String}}") == samples
    for rollup in ("otel_metrics_5m", "otel_metrics_1h"):
        assert one(f"SELECT sum(Points) FROM {db}.{rollup} WHERE TenantId = {{t:String}}") == samples, rollup
    assert one(f"SELECT count() FROM {db}.otel_prom_series FINAL WHERE TenantId = {{t:String}}") == sender.rounds
    # The old rows: each exactly once, as tenant 'default'.
    assert one(f"SELECT count() FROM {db}.otel_traces WHERE TenantId = 'default'") == old_spans
    assert one(f"SELECT sum(SpanCount) FROM {db}.otel_span_stats_1h WHERE TenantId = 'default'") == old_spans
    assert not ch_client.query("SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%\\_v2'",
                               parameters={"db": db}).result_rows


def test_a_daemon_upgrading_a_database_stores_what_it_accepted_during_the_copy(
        clickhouse, make_config, ch_client, tmp_path) -> None:
    """The real daemon (storage watcher -> supervisor -> status page -> writers) on a schema-13
    database: spans sent over OTLP/HTTP while it migrates are stored during the copy, not after it,
    and every span acknowledged (200) is stored exactly once."""
    import http.client

    from daemon import Daemon

    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=13)[0][-1] == 13
    _write_many(ch_client, db, hours=96, per_hour=20_000)
    old_spans = ch_client.query(f"SELECT count() FROM {db}.otel_traces").result_rows[0][0]

    d = Daemon(tmp_path / "daemon", clickhouse_url=clickhouse.url, database=db)
    acked = [0]
    stop = threading.Event()

    def send() -> None:
        r = 0
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30)
            try:
                conn.request("POST", "/v1/traces", body=trace_requests(1, spans=50, seed=30_000 + r)[0].body,
                             headers={"Content-Type": "application/x-protobuf"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    acked[0] += 50
                    r += 1  # a refused request is sent again, the same spans (as a client retries)
            except OSError:
                pass  # not listening yet
            finally:
                conn.close()
            time.sleep(0.05)

    sender = threading.Thread(target=send, daemon=True)
    d.start(wait_ready=False)
    try:
        sender.start()
        stored_before_ready = 0
        deadline = time.monotonic() + 300
        while d.http_status("/ready") != 200:
            assert time.monotonic() < deadline, d.log_tail()
            n = ch_client.query(f"SELECT count() FROM {db}.otel_traces").result_rows[0][0]
            stored_before_ready = max(stored_before_ready, n - old_spans)
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        sender.join(timeout=60)
        d.wait_count("otel_traces", old_spans + acked[0])
        time.sleep(1.0)  # nothing more arrives (no double)
        held = [float(m) for m in re.findall(r"writers held ([0-9.]+)s for the final pass", d.log_text())]
        print(f"\n{stored_before_ready} spans stored before /ready (during the copy), {acked[0]} acknowledged; "
              f"held {sum(held):.2f}s over {len(held)} final passes (longest {max(held, default=0):.2f}s)")
        assert stored_before_ready > 0, "the writers inserted nothing while the tables were copied"
        assert len(held) == 14, held
        total = ch_client.query(f"SELECT count(), uniqExact(TraceId, SpanId) FROM {db}.otel_traces").result_rows[0]
        assert tuple(total) == (old_spans + acked[0],) * 2
        index = ch_client.query(f"SELECT count() FROM {db}.otel_trace_index").result_rows[0][0]
        assert index == old_spans + acked[0]
        stats = ch_client.query(f"SELECT sum(SpanCount) FROM {db}.otel_span_stats_1h").result_rows[0][0]
        assert stats == old_spans + acked[0]
        assert not any((d.data_dir / "deadletter").rglob("*.native"))
    finally:
        stop.set()
        d.stop()
