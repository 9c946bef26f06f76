"""Migrations from empty and from the previous version, retention changes, cluster DDL."""

import pytest

from otelingest import _native
from otelingest.clickhouse import migrations as schema
from otelingest.clickhouse.client import connect
from otelingest.errors import SchemaError

RAW_TABLES = {"otel_traces", "otel_trace_times", "otel_trace_index", "otel_logs", "otel_metrics"}
V2_TABLES = {"otel_span_stats_1h", "otel_service_dependencies_1h", "otel_metrics_5m", "otel_metrics_1h"}
V4_TABLES = {"otel_service_dependency_hours"}


def tables(ch_client, db):
    rows = ch_client.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": db}
    ).result_rows
    return {r[0] for r in rows}


def ttl_days(ch_client, db, table):
    m = schema.Migrator(ch_client, schema.RenderContext(db, None, {}))
    return m.table_ttl_days(table)


def test_migrate_from_empty_creates_every_table(make_config, ch_client):
    cfg = make_config()
    applied, changed = schema.migrate(cfg)
    assert applied == [m.version for m in schema.available_migrations()]
    # Created by 0012 with the raw metrics' days; its labels are read with the rollups too.
    assert changed == ["otel_prom_series"]
    db = cfg.clickhouse.database
    assert RAW_TABLES | V2_TABLES | V4_TABLES | {"otelingest_schema_migrations"} <= tables(ch_client, db)
    assert ttl_days(ch_client, db, "otel_traces") == 30
    assert ttl_days(ch_client, db, "otel_metrics_1h") == 365
    assert ttl_days(ch_client, db, "otel_metrics_5m") == 90
    assert ttl_days(ch_client, db, "otel_service_dependency_hours") == 365
    # Idempotent: a second start applies nothing.
    assert schema.migrate(cfg) == ([], [])
    assert schema.is_current(ch_client, cfg)


def test_upgrade_from_previous_version(make_config, ch_client):
    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=1) == ([1], [])
    assert not (V2_TABLES & tables(ch_client, db))
    assert not schema.is_current(ch_client, cfg)
    # Data written by the previous version survives the upgrade.
    ch_client.command(
        f"INSERT INTO {db}.otel_logs (Timestamp, ServiceName, Body) VALUES (now64(9), 'svc', 'kept across upgrade')"
    )
    ch_client.command(
        f"INSERT INTO {db}.otel_metrics (TimeUnix, MetricName, MetricType, BucketCounts, ExplicitBounds)"
        " VALUES (now64(9), 'h', 'Histogram', [1, 2, 3], [0.5, 1.0])"
    )
    applied, _ = schema.migrate(cfg)
    later = [m.version for m in schema.available_migrations() if m.version > 1]
    assert applied == later
    assert V2_TABLES | V4_TABLES <= tables(ch_client, db)
    indexes = ch_client.query(
        "SELECT name, type FROM system.data_skipping_indices WHERE database = {db:String} AND table = 'otel_logs'",
        parameters={"db": db},
    ).result_rows
    assert ("idx_body", "tokenbf_v1") in indexes
    assert ch_client.query(f"SELECT Body FROM {db}.otel_logs").result_rows == [("kept across upgrade",)]
    versions = ch_client.query(f"SELECT version FROM {db}.otelingest_schema_migrations ORDER BY version").result_rows
    assert versions == [(v,) for v in [1, *later]]
    # 0003: the views' target tables deduplicate replayed blocks too.
    (create,), = ch_client.query("SELECT create_table_query FROM system.tables WHERE database = {db:String}"
                                 " AND name = 'otel_trace_index'", parameters={"db": db}).result_rows
    assert "non_replicated_deduplication_window = 10000" in create
    # 0005: a record stored before it has its resource hash too (computed on read until the
    # background MATERIALIZE COLUMN has written it).
    row = ch_client.query(f"SELECT ResourceHash = cityHash64(mapSort(ResourceAttributes)) FROM {db}.otel_logs").result_rows
    assert row == [(1,)]
    # 0006: histogram bucket counts are stored with T64 + LZ4.
    codecs = ch_client.query("SELECT name, compression_codec FROM system.columns WHERE database = {db:String}"
                             " AND table = 'otel_metrics' AND name LIKE '%BucketCounts'", parameters={"db": db}).result_rows
    assert sorted(codecs) == [(n, "CODEC(T64, LZ4)") for n in ("BucketCounts", "NegativeBucketCounts", "PositiveBucketCounts")]
    # 0007: a point stored before it has its bounds hash too.
    row = ch_client.query(f"SELECT BoundsHash = cityHash64([0.5, 1.0]), BucketCounts FROM {db}.otel_metrics").result_rows
    assert row == [(1, [1, 2, 3])]


def test_log_resource_hash_ignores_attribute_order(migrated, ch_client):
    db = migrated.clickhouse.database
    ch_client.command(
        f"INSERT INTO {db}.otel_logs (Timestamp, ServiceName, ResourceAttributes) VALUES "
        "(now64(9), 's', map('a', '1', 'b', '2')), (now64(9), 's', map('b', '2', 'a', '1')), (now64(9), 's', map('a', '1'))"
    )
    hashes = ch_client.query(f"SELECT uniqExact(ResourceHash), countIf(ResourceHash = 0) FROM {db}.otel_logs").result_rows
    assert hashes == [(2, 0)]


def test_retention_change_applies_to_existing_tables(make_config, ch_client):
    cfg = make_config()
    schema.migrate(cfg)
    db = cfg.clickhouse.database
    cfg2 = make_config(clickhouse={"database": db}, retention={"traces": 7, "metrics_1h": 730, "dependencies": 400})
    applied, changed = schema.migrate(cfg2)
    assert applied == []
    assert set(changed) == {"otel_traces", "otel_trace_times", "otel_trace_index", "otel_metrics_1h",
                            "otel_service_dependencies_1h", "otel_service_dependency_hours", "otel_prom_series"}
    assert ttl_days(ch_client, db, "otel_traces") == 7
    assert ttl_days(ch_client, db, "otel_prom_series") == 730  # the longest of the metric keys
    assert ttl_days(ch_client, db, "otel_trace_index") == 7
    assert ttl_days(ch_client, db, "otel_metrics_1h") == 730
    # The record of computed hours expires with the rollup it describes.
    assert ttl_days(ch_client, db, "otel_service_dependency_hours") == 400
    assert ttl_days(ch_client, db, "otel_logs") == 30
    assert schema.migrate(cfg2) == ([], [])


def test_materialized_views_fill_the_derived_tables(migrated, ch_client):
    db = migrated.clickhouse.database
    ch_client.command(
        f"INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration, StatusCode) "
        "VALUES ('2026-11-24 10:00:00', unhex('0102030405060708090a0b0c0d0e0f10'), unhex('0102030405060708'), "
        "'checkout', 'GET /cart', 2000000, 'ERROR')"
    )
    assert ch_client.query(f"SELECT count(), any(IsRoot) FROM {db}.otel_trace_index").result_rows == [(1, 1)]
    row = ch_client.query(
        f"SELECT SpanCount, ErrorCount, DurationSum FROM {db}.otel_span_stats_1h FINAL WHERE ServiceName = 'checkout'"
    ).result_rows
    assert row == [(1, 1, 2000000)]
    window = ch_client.query(f"SELECT dateDiff('millisecond', Start, End) FROM {db}.otel_trace_times").result_rows
    assert window == [(2,)]


def test_bad_migration_is_a_schema_error(make_config, ch_client):
    cfg = make_config()
    m = schema.Migrator(ch_client, schema.RenderContext.from_config(cfg))
    with pytest.raises(SchemaError, match="SYNTAX_ERROR|Syntax error"):
        m._run(schema.Statement("CREATE TABLE broken (", None, None))


def test_unknown_placeholder_is_rejected():
    with pytest.raises(SchemaError, match=r"unknown placeholder \$\{ttl:nope\}"):
        schema.render("SELECT ${ttl:nope};", schema.RenderContext("db", None, {"traces": 1}))


def test_cluster_ddl_is_accepted_by_clickhouse(ch_client):
    """Every statement rendered for a cluster parses in the real ClickHouse."""
    ctx = schema.RenderContext("otel", "prod_cluster", {k: 30 for k in
        ("traces", "logs", "metrics", "metrics_5m", "metrics_1h", "span_stats", "dependencies")})
    stmts = schema.bootstrap_statements(ctx)
    for mig in schema.available_migrations():
        stmts += schema.render(mig.text, ctx)
    stmts += schema.retention_statements(ctx)
    distributed = [s for s in stmts if "ENGINE = Distributed(" in s.sql]
    assert {s.table for s in distributed} >= RAW_TABLES | V2_TABLES | V4_TABLES
    for s in stmts:
        if s.sql.startswith(("CREATE", "ALTER")):
            assert "ON CLUSTER 'prod_cluster'" in s.sql, s.sql
        if "MergeTree" in s.sql and "ENGINE = " in s.sql and "Distributed" not in s.sql:
            assert "ENGINE = Replicated" in s.sql, s.sql
            assert "'/clickhouse/tables/{shard}/otel/" in s.sql
        formatted = ch_client.query("SELECT formatQuery({q:String})", parameters={"q": s.sql}).result_rows[0][0]
        assert formatted, s.sql
    mv = next(s.sql for s in stmts if "otel_trace_index_mv" in s.sql)
    assert "TO otel.otel_trace_index_local" in mv and "FROM otel.otel_traces_local" in mv


def test_attribute_kinds_added_to_a_version_7_database_with_spans(make_config, ch_client):
    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=7) == ([1, 2, 3, 4, 5, 6, 7], [])
    ch_client.command(
        f"INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, SpanAttributes) "
        "VALUES (now64(9), unhex('0102030405060708090a0b0c0d0e0f10'), unhex('0102030405060708'), 'svc', 'op', "
        "map('http.status_code', '503'))"
    )
    applied, _ = schema.migrate(cfg)
    assert 8 in applied
    # A span stored before the kinds existed reads '' (kind unknown: inferred from the text).
    rows = ch_client.query(f"SELECT SpanAttributes, SpanAttributeKinds, ResourceAttributeKinds FROM {db}.otel_traces").result_rows
    assert rows == [({"http.status_code": "503"}, "", "")]


def _search(ch_client, db: str, **kw) -> list[tuple]:
    """The trace search query (sql/queries/trace_search.sql) as the native API runs it."""
    from otelingest.clickhouse import sqlfiles

    params = {"service": "", "operation": "", "span_kind": "", "start_ns": 0, "end_ns": 2**62,
              "min_duration": 0, "max_duration": 2**63, "limit": 1000, "tenant": "default", **kw}
    sql = sqlfiles.query("traces/search").replace("FROM otel_trace_index", f"FROM {db}.otel_trace_index")
    # These databases predate TenantId (migration 0014): every row is the one tenant there is.
    sql = sql.replace("TenantId = {tenant:String}\n  AND ", "")
    return sorted(ch_client.query(sql, parameters=params).result_rows)


def _store(ch_client, db: str, blocks, token: str) -> None:
    """A decoded request's blocks INSERTed as the writer does, one token per table (a replay is dropped)."""
    from otelingest.ingest.writer.inserter import insert_settings

    for table, _, block in blocks:
        ch_client.raw_insert(f"{db}.{table}", insert_block=block, fmt="Native", settings=insert_settings(f"{token}-{table}"))


def test_slim_trace_index_carries_a_version_9_database(make_config, ch_client):
    """0010 on a database written by version 9 (the writer's path: Rust Native blocks, dedup tokens):
    every span keeps exactly one index row, searches answer the same, a replayed batch stays single."""
    from otelingest.bench.payloads import trace_requests
    from otelingest.ingest.writer.inserter import insert_settings

    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=9) == ([1, 2, 3, 4, 5, 6, 7, 8, 9], [])
    requests = trace_requests(6, spans=200)

    def write(batch: int, bodies) -> None:
        blocks = [blk for p in bodies for t, _, blk in _native.decode_traces(p.body).blocks if t == "otel_traces"]
        # This release's blocks carry TenantId (migration 0014), which a version 9/10 table lacks:
        # dropped here as ClickHouse does by default, so the rows are what version 9 wrote.
        ch_client.raw_insert(f"{db}.otel_traces", insert_block=b"".join(blocks), fmt="Native",
                             settings={**insert_settings(f"batch{batch}-otel_traces"), "input_format_skip_unknown_fields": 1})

    write(1, requests[:3])
    counts = f"SELECT (SELECT count() FROM {db}.otel_traces), (SELECT count() FROM {db}.otel_trace_index), " \
             f"(SELECT uniqExact(TraceId) FROM {db}.otel_trace_times)"
    before = ch_client.query(counts).result_rows
    assert before == [(600, 600, 60)]
    searches = [{}, {"service": "checkout"}, {"service": "cart", "operation": "GET /api/cart"},
                {"span_kind": "SERVER", "min_duration": 10_000_000}]
    answers = [_search(ch_client, db, **s) for s in searches]
    assert all(answers) and len(answers[0]) == 60

    applied, _ = schema.migrate(cfg, target=10)
    assert applied == [10]
    assert ch_client.query(counts).result_rows == before
    assert [_search(ch_client, db, **s) for s in searches] == answers
    cols = {r[0] for r in ch_client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'otel_trace_index'",
        parameters={"db": db}).result_rows}
    assert "SpanId" not in cols and {"TraceId", "Timestamp", "Duration", "IsRoot"} <= cols
    # After the upgrade: new spans get one index row each; a replay of the last batch is dropped.
    write(2, requests[3:])
    write(2, requests[3:])
    assert ch_client.query(counts).result_rows == [(1200, 1200, 120)]
    assert ch_client.query(f"SELECT countIf(IsRoot = 1) FROM {db}.otel_trace_index").result_rows == [(120,)]
    assert len(_search(ch_client, db)) == 120


def test_prometheus_narrow_samples_read_a_version_10_database(make_config, ch_client):
    """0012 on a database written by version 10 (remote-written samples as whole otel_metrics rows,
    as its Rust decoder wrote them): nothing is moved; the series keeps its id and labels across the
    two layouts, the PromQL reads see old and new samples once each, a replayed batch stays single."""
    import time

    from otelingest.bench.promwrite import Series, write_request
    from otelingest.clickhouse import sqlfiles

    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=10) == (list(range(1, 11)), [])
    t0_s = int(time.time()) // 3600 * 3600 - 7200
    ns = 1_000_000_000
    labels = {"__name__": "node_x", "job": "node", "instance": "h:9100", "cpu": "0"}
    ch_client.command(
        f"INSERT INTO {db}.otel_metrics (TimeUnix, MetricName, MetricType, ServiceName, ResourceAttributes,"
        " ScopeName, Attributes, Value) SELECT fromUnixTimestamp64Nano(toInt64({t0:Int64} + number * 15 * 1000000000)),"
        " 'node_x', 'Gauge', 'node', map('service.name', 'node', 'service.instance.id', 'h:9100', 'otelingest.source',"
        " 'prometheus.remote_write'), 'otelingest.prometheus.remote_write', map('cpu', '0', 'instance', 'h:9100',"
        " 'job', 'node'), toFloat64(number) FROM numbers(10)", parameters={"t0": t0_s * ns})

    applied, _ = schema.migrate(cfg)
    assert 12 in applied and applied[-1] == schema.latest_version()
    assert ch_client.query(f"SELECT count() FROM {db}.otel_metrics").result_rows == [(10,)]
    body = write_request([Series(labels, [((t0_s + (10 + k) * 15) * 1000, float(10 + k)) for k in range(10)])])
    decoded = _native.decode_remote_write(body, compression=None)
    assert sorted(t for t, _, _ in decoded.blocks) == ["otel_prom_samples", "otel_prom_series"]
    for _ in range(2):  # a replay of the same batch (same token) is dropped, views included
        _store(ch_client, db, decoded.blocks, "batch1")

    client = connect(cfg.clickhouse)
    window = {"names": ["node_x"], "start_ns": (t0_s - 60) * ns, "end_ns": (t0_s + 3600) * ns, "tenant": "default"}
    series = client.query(sqlfiles.query("promql/series_raw"), parameters=window).result_rows
    assert [(name, service, narrow) for _, name, service, _, _, narrow in series] == [("node_x", "node", 1)]
    sid = series[0][0]
    points = client.query(sqlfiles.query("promql/points_raw"), parameters={**window, "series": [sid]}).result_rows
    assert [(t, v) for _, t, v, *_ in points] == [((t0_s + k * 15) * ns, float(k)) for k in range(20)]
    full = ({"service.name": "node", "service.instance.id": "h:9100", "otelingest.source": "prometheus.remote_write"},
            {"cpu": "0", "instance": "h:9100", "job": "node"})
    got = client.query(sqlfiles.query("promql/series_labels_raw"), parameters={**window, "series": [sid]}).result_rows
    assert [(s, r, a) for s, _, r, a in got] == [(sid, *full)]
    catalog = client.query(sqlfiles.query("promql/catalog_raw"), parameters=window).result_rows
    assert [c for c in catalog if c[0] == "node_x"] == [("node_x", "Gauge", "Unspecified", False, "", "", 1)]
    for rollup in ("otel_metrics_5m", "otel_metrics_1h"):
        assert client.query(f"SELECT sum(Points), sum(ValueSum) FROM {rollup}").result_rows == [(20, 190.0)], rollup
        got = client.query(sqlfiles.query("promql/series_labels_rollup"),
                           parameters={**window, "series": [sid], "table": rollup}).result_rows
        assert [(s, r, a) for s, _, r, a in got] == [(sid, *full)], rollup
        keys = client.query(sqlfiles.query("promql/label_keys_rollup"), parameters={**window, "table": rollup}).result_rows
        assert sorted(keys[0][0]) == ["cpu", "instance", "job"] and keys[0][1] == 1
    keys = client.query(sqlfiles.query("promql/label_keys_raw"), parameters=window).result_rows
    assert sorted(keys[0][0]) == ["cpu", "instance", "job"] and keys[0][1] == 1


def test_prometheus_lean_rollups_carry_a_version_12_database(make_config, ch_client):
    """0013 on a database written by version 12 (both rollups computed from the narrow rows): the
    rollup rows already written stay, samples written after it reach the 5-minute and hourly rollups
    once each (a replay and otel_metrics' own rows included), and PromQL reads the same last values
    from either rollup as from raw samples."""
    import time

    from otelingest.bench.promwrite import Series, write_request
    from otelingest.clickhouse import sqlfiles
    from otelingest.ingest.writer.inserter import insert_settings

    cfg = make_config()
    db = cfg.clickhouse.database
    assert schema.migrate(cfg, target=12) == (list(range(1, 11)) + [12], ["otel_prom_series"])
    t0_s = int(time.time()) // 3600 * 3600 - 7200
    ns = 1_000_000_000
    labels = {"__name__": "node_y", "job": "node", "instance": "h:9100", "cpu": "1"}

    def write(token, first, count, *, version_12=False):
        body = write_request([Series(labels, [((t0_s + k * 60) * 1000, float(k)) for k in range(first, first + count)])])
        blocks = _native.decode_remote_write(body, compression=None).blocks
        if not version_12:
            _store(ch_client, db, blocks, token)
            return
        for table, _, block in blocks:
            # Version 12's blocks had no TenantId (0014): staged, then copied without it.
            stage = f"{db}.stage_{table}"
            ch_client.command(f"CREATE TABLE {stage} ENGINE = Memory AS SELECT 'default' AS TenantId, * FROM {db}.{table} WHERE 0")
            ch_client.raw_insert(stage, insert_block=block, fmt="Native")
            ch_client.command(f"INSERT INTO {db}.{table} SELECT * EXCEPT TenantId FROM {stage}",
                              settings=insert_settings(f"{token}-{table}"))
            ch_client.command(f"DROP TABLE {stage}")

    write("before", 0, 40, version_12=True)  # 0:00-0:39, rolled up by 0012's views
    assert schema.migrate(cfg, target=13) == ([13], [])
    assert schema.migrate(cfg) == ([m.version for m in schema.available_migrations() if m.version > 13], [])
    for _ in range(2):  # a replay of the same batch is dropped, chained view included
        write("after", 40, 50)  # 0:40-1:29: the first hour gets rows from both versions
    # An otel_metrics gauge with the same name keeps its own hourly view and is not re-rolled.
    ch_client.command(
        f"INSERT INTO {db}.otel_metrics (TimeUnix, MetricName, MetricType, ServiceName, ResourceAttributes,"
        " Attributes, Value) SELECT fromUnixTimestamp64Nano(toInt64({t0:Int64} + number * 60 * 1000000000)),"
        " 'node_y', 'Gauge', 'other', map('service.name', 'other'), map('k', 'v'), 1.0 FROM numbers(30)",
        parameters={"t0": t0_s * ns})

    for rollup in ("otel_metrics_5m", "otel_metrics_1h"):
        got = ch_client.query(f"SELECT ServiceName, sum(Points), sum(ValueSum), min(ValueMin), max(ValueMax) FROM {db}.{rollup}"
                              " GROUP BY ServiceName ORDER BY ServiceName").result_rows
        assert got == [("node", 90, float(sum(range(90))), 0.0, 89.0), ("other", 30, 30.0, 1.0, 1.0)], rollup

    client = connect(cfg.clickhouse)
    window = {"names": ["node_y"], "start_ns": t0_s * ns, "end_ns": (t0_s + 4 * 3600) * ns, "tenant": "default"}
    series = client.query(sqlfiles.query("promql/series_raw"), parameters=window).result_rows
    sid = next(s for s, _, service, _, _, _ in series if service == "node")
    for rollup, bucket_s in (("otel_metrics_5m", 300), ("otel_metrics_1h", 3600)):
        points = client.query(sqlfiles.query("promql/points_rollup"),
                              parameters={**window, "series": [sid], "table": rollup, "bucket_s": bucket_s}).result_rows
        # The last sample of each bucket, stamped at the bucket's end.
        want = [((t0_s + b + bucket_s) * ns, float(min((b + bucket_s) // 60, 90) - 1)) for b in range(0, 90 * 60, bucket_s)]
        assert [(t, v) for _, t, v, *_ in points] == want, rollup
        got = client.query(sqlfiles.query("promql/series_labels_rollup"),
                           parameters={**window, "series": [sid], "table": rollup}).result_rows
        assert [a for _, _, _, a in got] == [{"cpu": "1", "instance": "h:9100", "job": "node"}], rollup


@pytest.mark.parametrize("marked", [True, False])
def test_a_later_migration_keeps_the_writers_held_only_if_they_need_it(make_config, ch_client, monkeypatch, marked):
    """Upgrading from version 13 with 0014 and a later migration pending: 0014's rebuilds let the
    writers insert during their copy only when the later file says the writers' blocks do not need
    it (``-- @writers-unchanged``); otherwise the hold stays up until every migration has run."""
    cfg = make_config()
    schema.migrate(cfg, target=13)
    later = schema.Migration(
        schema.latest_version() + 1, "later",
        ("-- @writers-unchanged\n" if marked else "")
        + "CREATE TABLE IF NOT EXISTS ${table:otel_later} ${on_cluster} (x UInt8) ENGINE = ${engine:MergeTree} ORDER BY x;\n")
    shipped = schema.available_migrations()
    monkeypatch.setattr(schema, "available_migrations", lambda directory=None: shipped + [later])
    assert schema.lift_from([m for m in shipped if m.version >= 14] + [later]) == (14 if marked else later.version)

    calls: list[bool] = []
    m = schema.Migrator(ch_client, schema.RenderContext.from_config(cfg), hold=calls.append)
    assert m.migrate() == list(range(14, later.version + 1))
    assert (False in calls) is marked  # lowered for the copies only when the later file allows it
    assert not calls or calls[-1] is True  # up when the migrations end (until the daemon records them)


def test_metric_rollups_without_maps_carry_a_version_14_database(make_config, ch_client):
    """0015 on a database written by version 14: rollup rows written before keep their maps, rows
    written after carry only the marker and their series' maps go to otel_prom_series once; the
    rollup queries answer every series' labels and keys exactly as the raw points do, and a series
    whose otel_prom_series row is not visible is left out, never answered without its labels."""
    import time

    from otelingest.bench.payloads import metric_requests
    from otelingest.clickhouse import sqlfiles

    cfg = make_config()
    db = cfg.clickhouse.database
    schema.migrate(cfg, target=14)
    before, after = metric_requests(2)

    def write(token, payload):
        _store(ch_client, db, _native.decode_metrics(payload.body).blocks, token)

    write("before", before)
    assert schema.migrate(cfg, target=15) == ([15], [])
    for _ in range(2):  # a replayed batch is dropped, the series view's rows too
        write("after", after)

    client = connect(cfg.clickhouse)
    names = [r[0] for r in client.query("SELECT DISTINCT MetricName FROM otel_metrics").result_rows]
    now_ns = time.time_ns()
    window = {"names": names, "start_ns": now_ns - 86400 * 10**9, "end_ns": now_ns + 3600 * 10**9, "tenant": "default"}
    sids = [r[0] for r in client.query("SELECT DISTINCT SeriesId FROM otel_metrics").result_rows]
    assert len(sids) == 1000  # 500 series a request, each request its own resource
    assert client.query("SELECT count(), uniqExact(SeriesId) FROM otel_prom_series").result_rows == [(500, 500)]

    def labels(name, **extra):
        return {sid: (service, res, attrs) for sid, service, res, attrs in client.query(
            sqlfiles.query(name), parameters={**window, "series": sids, **extra}).result_rows}

    raw = labels("promql/series_labels_raw")
    assert len(raw) == 1000
    for rollup in ("otel_metrics_5m", "otel_metrics_1h"):
        marked = client.query(f"SELECT count() FROM {rollup} WHERE mapContains(ResourceAttributes, 'otelingest.labels')"
                              " AND empty(Attributes)").result_rows[0][0]
        assert marked == 500, rollup  # the rows written after 0015: no maps
        assert labels("promql/series_labels_rollup", table=rollup) == raw, rollup
        # Keys from the rows after 0015 alone (the rows before, with their maps, deleted).
        ch_client.command(f"ALTER TABLE {db}.{rollup} DELETE WHERE NOT mapContains(ResourceAttributes, 'otelingest.labels')",
                          settings={"mutations_sync": 2})
        keys = {r[0]: (sorted(r[7]), r[8]) for r in client.query(
            sqlfiles.query("promql/labels_rollup"), parameters={**window, "table": rollup}).result_rows}
        raw_keys = {r[0]: (sorted(r[7]), r[8]) for r in client.query(
            sqlfiles.query("promql/labels_raw"), parameters=window).result_rows}
        assert keys == raw_keys and keys["process.cpu.utilization"] == (["http.route", "instance"], False), rollup

    # The series rows not visible yet: those series are left out, not answered without labels.
    ch_client.command(f"TRUNCATE TABLE {db}.otel_prom_series")
    assert labels("promql/series_labels_rollup", table="otel_metrics_5m") == {}


LAZIER_MERGES = ("otel_traces", "otel_trace_index", "otel_trace_times", "otel_span_stats_1h", "otel_logs")


def test_lazier_merges_carry_a_version_15_database(make_config, ch_client):
    """0016 on a database written by version 15: only the merge setting of the span and log tables
    changes; every row stays, searches answer the same, and a replayed batch is still dropped."""
    from otelingest.bench.payloads import log_requests, trace_requests

    cfg = make_config()
    db = cfg.clickhouse.database
    schema.migrate(cfg, target=15)
    traces, logs = trace_requests(4, spans=200), log_requests(4, records=200)

    def write(token, lo, hi):
        for decode, payloads in ((_native.decode_traces, traces), (_native.decode_logs, logs)):
            for i in range(lo, hi):
                _store(ch_client, db, decode(payloads[i].body).blocks, f"{token}-{i}")

    def base(table):
        return ch_client.query("SELECT create_table_query LIKE '%merge_selector_base = 20%' FROM system.tables "
                               "WHERE database = {db:String} AND name = {t:String}", parameters={"db": db, "t": table}).result_rows

    write("before", 0, 2)
    counts = f"SELECT (SELECT count() FROM {db}.otel_traces), (SELECT count() FROM {db}.otel_trace_index), " \
             f"(SELECT uniqExact(TraceId) FROM {db}.otel_trace_times), (SELECT count() FROM {db}.otel_logs)"
    before = ch_client.query(counts).result_rows
    assert before == [(400, 400, 40, 400)]
    answers = [_search(ch_client, db), _search(ch_client, db, service="checkout")]
    assert all(base(t) == [(0,)] for t in LAZIER_MERGES)

    assert schema.migrate(cfg, target=16) == ([16], [])
    assert all(base(t) == [(1,)] for t in LAZIER_MERGES)
    assert base("otel_metrics") == [(0,)]
    assert ch_client.query(counts).result_rows == before
    assert [_search(ch_client, db), _search(ch_client, db, service="checkout")] == answers
    for _ in range(2):  # the second is a replay: dropped
        write("after", 2, 4)
    assert ch_client.query(counts).result_rows == [(800, 800, 80, 800)]
