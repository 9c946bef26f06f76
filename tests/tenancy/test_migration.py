"""Migration 0014 on a database written by the previous release (schema 13, rows without TenantId):
every row kept exactly once as tenant 'default', every table ordered by (TenantId, ...), the views
carrying the tenant into every lookup and rollup, and a migration interrupted mid-copy and re-run
neither loses nor doubles a row."""

from __future__ import annotations

import time

import pytest

from otelingest import _native
from otelingest.bench.payloads import trace_requests
from otelingest.bench.promwrite import Series, write_request
from otelingest.clickhouse import migrations as schema
from otelingest.ingest.writer.inserter import insert_settings

TABLES = ["otel_traces", "otel_trace_times", "otel_trace_index", "otel_logs", "otel_metrics",
          "otel_span_stats_1h", "otel_service_dependencies_1h", "otel_service_dependency_hours",
          "otel_metrics_5m", "otel_metrics_1h", "otel_metrics_metadata", "otel_metrics_exemplars",
          "otel_prom_samples", "otel_prom_series"]
NS = 1_000_000_000
DAY = 86_400


class Interrupted(Exception):
    pass


def _write_previous_release(ch, db: str) -> None:
    """Rows over several days (partitions), as the previous release's writer and jobs wrote them: its
    Native blocks had no TenantId column (ClickHouse drops one a table lacks when asked to)."""
    old_blocks = {**insert_settings("x"), "input_format_skip_unknown_fields": 1}
    now = int(time.time())
    for day in range(4):
        base = (now - day * DAY) * NS
        ch.command(
            f"INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName, Duration, StatusCode)"
            " SELECT fromUnixTimestamp64Nano(toInt64({b:Int64} - number * 60 * 1000000000)),"
            " unhex(lpad(hex(intDiv(number, 3) + {d:UInt64} * 1000 + 1), 32, '0')), unhex(lpad(hex(number + 1), 16, '0')),"
            " if(number % 3 = 0, toFixedString('\\0\\0\\0\\0\\0\\0\\0\\0', 8), unhex(lpad(hex(number), 16, '0'))),"
            " ['a', 'b', 'c'][number % 3 + 1], 'op', 1000 + number, if(number % 7 = 0, 'ERROR', 'OK')"
            " FROM numbers(90)", parameters={"b": base, "d": day})
        ch.command(f"INSERT INTO {db}.otel_logs (Timestamp, ServiceName, Body, ResourceAttributes)"
                   " SELECT fromUnixTimestamp64Nano(toInt64({b:Int64} - number * 1000000000)), 'a', toString(number),"
                   " map('host', toString(number % 2)) FROM numbers(50)", parameters={"b": base})
        ch.command(f"INSERT INTO {db}.otel_metrics (TimeUnix, MetricName, MetricType, ServiceName, Attributes, Value)"
                   " SELECT fromUnixTimestamp64Nano(toInt64({b:Int64} - number * 15 * 1000000000)), 'm', 'Gauge', 'a', map('k', toString(number % 4)),"
                   " toFloat64(number) FROM numbers(40)", parameters={"b": base})
        ch.command(f"INSERT INTO {db}.otel_service_dependencies_1h (TimeBucket, Parent, Child, CallCount, ErrorCount)"
                   " VALUES (toStartOfHour(fromUnixTimestamp({t:Int64})), 'a', 'b', 10, 1)", parameters={"t": now - day * DAY})
        ch.command(f"INSERT INTO {db}.otel_service_dependency_hours (TimeBucket, ComputedAt)"
                   " VALUES (toStartOfHour(fromUnixTimestamp({t:Int64})), now64(3))", parameters={"t": now - day * DAY})
        series = [Series({"__name__": "up", "job": "j", "instance": f"i{k}"},
                         [((now - day * DAY - s * 15) * 1000, 1.0) for s in range(10)],
                         [({"trace_id": "0102030405060708090a0b0c0d0e0f10"}, 1.0, (now - day * DAY) * 1000)])
                  for k in range(3)]
        body = write_request(series, [("up", "gauge", "up?", "")])
        for table, _, block in _native.decode_remote_write(body, compression=None).blocks:
            ch.raw_insert(f"{db}.{table}", insert_block=block, fmt="Native",
                          settings={**old_blocks, "insert_deduplication_token": f"d{day}-{table}"})
    # Trace payloads of the benchmark through the writer's path as well.
    for k, p in enumerate(trace_requests(2, spans=100)):
        for table, _, block in _native.decode_traces(p.body).blocks:
            ch.raw_insert(f"{db}.{table}", insert_block=block, fmt="Native",
                          settings={**old_blocks, "insert_deduplication_token": f"bench{k}-{table}"})


def _counts(ch, db: str) -> dict[str, int]:
    """Rows per table; FINAL where merges fold rows, so a merge between two reads changes nothing."""
    out = {}
    for t in TABLES:
        engine = ch.query("SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                          parameters={"db": db, "t": t}).result_rows[0][0]
        final = "" if engine == "MergeTree" else " FINAL"
        out[t] = ch.query(f"SELECT count() FROM {db}.{t}{final}").result_rows[0][0]
    return out


def test_previous_release_database_migrates_once_even_when_interrupted(make_config, ch_client) -> None:
    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=13)[0][-1] == 13
    _write_previous_release(ch_client, db)
    before = _counts(ch_client, db)
    assert all(before[t] > 0 for t in TABLES), before
    partitions = ch_client.query("SELECT uniqExact(partition_id) FROM system.parts WHERE database = {db:String}"
                                 " AND table = 'otel_traces' AND active", parameters={"db": db}).result_rows[0][0]
    assert partitions >= 4

    # Interrupted twice: in the middle of otel_traces' partitions, then in a later table.
    from otelingest.clickhouse.client import connect

    for stop_after in (2, 2 + partitions + 3):
        copies = [0]

        def interrupt(table: str, partition: str) -> None:
            copies[0] += 1
            if copies[0] > stop_after:
                raise Interrupted(f"{table} {partition}")

        client = connect(cfg.clickhouse, with_database=False)
        m = schema.Migrator(client, schema.RenderContext.from_config(cfg))
        m.before_partition = interrupt
        with pytest.raises(Exception, match="Interrupted|interrupted|otel_"):
            m.migrate()
        client.close()
        assert not schema.is_current(ch_client, cfg)
    applied, _ = schema.migrate(cfg)
    assert applied == [m.version for m in schema.available_migrations() if m.version >= 14]
    assert schema.is_current(ch_client, cfg)

    assert _counts(ch_client, db) == before
    for t in TABLES:
        key, = ch_client.query("SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                               parameters={"db": db, "t": t}).result_rows[0]
        assert key.startswith("TenantId, "), (t, key)
        tenants = ch_client.query(f"SELECT groupUniqArray(TenantId) FROM {db}.{t}").result_rows[0][0]
        assert tenants == ["default"], t
    leftovers = ch_client.query("SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%\\_v2'",
                                parameters={"db": db}).result_rows
    assert leftovers == []

    # The views now carry the tenant of new rows into every lookup and rollup.
    for table, _, block in _native.decode_traces(trace_requests(1, spans=30)[0].body, tenant="team-a").blocks:
        ch_client.raw_insert(f"{db}.{table}", insert_block=block, fmt="Native", settings=insert_settings("new-traces"))
    body = write_request([Series({"__name__": "up", "job": "j"}, [(int(time.time()) * 1000, 1.0)])])
    for table, _, block in _native.decode_remote_write(body, compression=None, tenant="team-a").blocks:
        ch_client.raw_insert(f"{db}.{table}", insert_block=block, fmt="Native", settings=insert_settings(f"new-{table}"))
    for t in ("otel_traces", "otel_trace_times", "otel_trace_index", "otel_span_stats_1h", "otel_prom_samples",
              "otel_prom_series", "otel_metrics_5m", "otel_metrics_1h"):
        n = ch_client.query(f"SELECT count() FROM {db}.{t} WHERE TenantId = 'team-a'").result_rows[0][0]
        assert n > 0, t
    # A new row of tenant team-a never folds into a 'default' rollup row.
    assert _counts(ch_client, db)["otel_span_stats_1h"] > before["otel_span_stats_1h"]


def test_a_fresh_database_gets_the_tenant_key_everywhere(migrated, ch_client) -> None:
    db = migrated.clickhouse.database
    keys = dict(ch_client.query("SELECT name, sorting_key FROM system.tables WHERE database = {db:String}",
                                parameters={"db": db}).result_rows)
    for t in TABLES:
        assert keys[t].startswith("TenantId, "), (t, keys[t])


class _Racing:
    """A client that lets INSERTs race the hold: rows land in otel_traces just as the hold is raised
    (an INSERT already started), and in the old table right after the exchange (an INSERT that had
    resolved it), then the run stops there (between the exchange and the drop)."""

    def __init__(self, client, ch, db: str) -> None:
        self.client, self.ch, self.db = client, ch, db
        self.exchanged = False

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def race(self, table: str, tenant: str, n: int) -> None:
        self.ch.command(
            f"INSERT INTO {self.db}.{table} (TenantId, Timestamp, TraceId, SpanId, ServiceName, SpanName)"
            " SELECT {t:String}, now64(9), reinterpretAsFixedString(toUInt128(number + 1) + 7000000),"
            " reinterpretAsFixedString(toUInt64(number + 1)), 'race', 'op' FROM numbers({n:UInt64})",
            parameters={"t": tenant, "n": n}, settings=insert_settings(f"race-{tenant}"))

    def command(self, sql: str, *args, **kwargs):
        out = self.client.command(sql, *args, **kwargs)
        if sql.startswith(f"EXCHANGE TABLES {self.db}.otel_traces ") and not self.exchanged:
            self.exchanged = True
            self.race("otel_traces_v2", "race-after-exchange", 70)
            raise Interrupted("between the exchange and the drop")
        return out


def test_inserts_racing_the_hold_and_the_exchange_are_carried_over(make_config, ch_client) -> None:
    from otelingest.clickhouse.client import connect

    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=13)[0][-1] == 13
    _write_previous_release(ch_client, db)
    before = ch_client.query(f"SELECT count() FROM {db}.otel_traces").result_rows[0][0]

    client = connect(cfg.clickhouse, with_database=False)
    racing = _Racing(client, ch_client, db)
    raised: list[bool] = []

    def hold(on: bool) -> None:
        # The first time the hold goes up for a final pass (after a first lowering): an INSERT
        # that read "no hold" just before lands now, in the old table.
        if on and raised == [False]:
            racing.race("otel_traces", "race-at-hold", 40)
        raised.append(on)

    m = schema.Migrator(racing, schema.RenderContext.from_config(cfg), hold=hold)
    with pytest.raises(Exception, match="between the exchange and the drop"):
        m.migrate()
    client.close()
    assert not schema.is_current(ch_client, cfg)
    assert schema.migrate(cfg)[0] == [m.version for m in schema.available_migrations() if m.version >= 14]

    rows = dict(ch_client.query(f"SELECT TenantId, count() FROM {db}.otel_traces GROUP BY TenantId").result_rows)
    assert rows == {"default": before, "race-at-hold": 40, "race-after-exchange": 70}
    distinct = ch_client.query(f"SELECT uniqExact(TenantId, TraceId, SpanId) FROM {db}.otel_traces").result_rows[0][0]
    assert distinct == before + 110
