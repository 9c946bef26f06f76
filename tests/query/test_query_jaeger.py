"""Jaeger query API: documented JSON shapes, a trace across two services, dependencies."""

from __future__ import annotations

import json

import pytest

import querydata as qd
from querydata import env, http  # noqa: F401 (pytest fixtures: the served data set, a client)
from otelingest.clickhouse.client import connect
from otelingest.jobs import dependencies


def us(env, seconds):
    return (env.data.t0 + seconds * qd.NS) // 1000


def test_services_and_operations(http):
    r = http.get("/api/services")
    assert r.status_code == 200
    assert r.json() == {"data": ["checkout", "frontend"], "total": 2, "limit": 0, "offset": 0, "errors": None}
    r = http.get("/api/services/checkout/operations")
    assert r.json()["data"] == ["SELECT orders", "batch-job", "charge"]
    r = http.get("/api/operations", params={"service": "checkout", "spanKind": "server"})
    assert r.json()["data"] == [{"name": "charge", "spanKind": "server"}]


def test_trace_by_id_shape_and_exact_microseconds(env, http):
    r = http.get(f"/api/traces/{qd.TRACE_A.hex()}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1 and body["errors"] is None
    (trace,) = body["data"]
    assert trace["traceID"] == qd.TRACE_A.hex() and trace["warnings"] is None
    spans = {s["spanID"]: s for s in trace["spans"]}
    assert set(spans) == {qd.ROOT_SPAN.hex(), qd.CHILD_SPAN.hex(), qd.DB_SPAN.hex()}
    root, child, db = spans[qd.ROOT_SPAN.hex()], spans[qd.CHILD_SPAN.hex()], spans[qd.DB_SPAN.hex()]
    assert root["duration"] == 150123  # 150_123_456 ns
    assert root["startTime"] == us(env, 1)
    assert child["startTime"] == us(env, 1) + 20_000 and child["duration"] == 80_000
    assert root["references"] == []
    assert child["references"] == [
        {"refType": "CHILD_OF", "traceID": qd.TRACE_A.hex(), "spanID": qd.ROOT_SPAN.hex()},
        {"refType": "FOLLOWS_FROM", "traceID": qd.TRACE_B.hex(), "spanID": qd.JOB_SPAN.hex()},
    ]
    tags = {t["key"]: (t["type"], t["value"]) for t in child["tags"]}
    assert tags["span.kind"] == ("string", "server")
    assert tags["otel.status_code"] == ("string", "ERROR")
    assert tags["otel.status_description"] == ("string", "card declined")
    assert tags["error"] == ("bool", True)
    assert tags["otel.scope.name"] == ("string", "io.opentelemetry.http")
    assert tags["payment.method"] == ("string", "card")
    assert {t["key"]: t["value"] for t in db["tags"]}["span.kind"] == "client"
    assert root["logs"] == [{"timestamp": us(env, 1) + 10_000, "fields": [
        {"key": "event", "type": "string", "value": "cache miss"},
        {"key": "cache.key", "type": "string", "value": "cart:42"}]}]
    procs = trace["processes"]
    assert procs[root["processID"]]["serviceName"] == "frontend"
    assert procs[child["processID"]]["serviceName"] == "checkout"
    assert child["processID"] == db["processID"] != root["processID"]
    assert {"key": "service.instance.id", "type": "string", "value": "fe-1"} in procs[root["processID"]]["tags"]
    for s in trace["spans"]:
        assert set(s) == {"traceID", "spanID", "flags", "operationName", "references", "startTime", "duration",
                          "tags", "logs", "processID", "warnings"}


def test_trace_missing_is_404_and_bad_id_is_400(http):
    r = http.get("/api/traces/" + "cd" * 16)
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == 404
    r = http.get("/api/traces/not-a-trace-id'--")
    assert r.status_code == 400


def test_search(env, http):
    base = {"service": "checkout", "start": us(env, 0), "end": us(env, 3600)}
    r = http.get("/api/traces", params=base)
    assert r.status_code == 200, r.text
    assert [t["traceID"] for t in r.json()["data"]] == [qd.TRACE_B.hex(), qd.TRACE_A.hex()]
    r = http.get("/api/traces", params={**base, "operation": "charge"})
    assert [t["traceID"] for t in r.json()["data"]] == [qd.TRACE_A.hex()]
    assert len(r.json()["data"][0]["spans"]) == 3  # the whole trace, both services
    r = http.get("/api/traces", params={**base, "minDuration": "50ms", "maxDuration": "1.2s"})
    assert [t["traceID"] for t in r.json()["data"]] == [qd.TRACE_A.hex()]
    r = http.get("/api/traces", params={**base, "tags": json.dumps({"job.kind": "nightly"})})
    assert [t["traceID"] for t in r.json()["data"]] == [qd.TRACE_B.hex()]
    r = http.get("/api/traces", params={**base, "tags": json.dumps({"error": "true"})})
    assert [t["traceID"] for t in r.json()["data"]] == [qd.TRACE_A.hex()]
    r = http.get("/api/traces", params={**base, "tags": json.dumps({"service.instance.id": "co-1"}), "limit": "1"})
    assert len(r.json()["data"]) == 1
    r = http.get("/api/traces", params={**base, "tags": json.dumps({"job.kind": "x' OR '1'='1"})})
    assert r.json()["data"] == []


def test_search_reads_newest_first_and_answers_as_the_whole_window(env, http):
    """Traces of a service spread over 3 hours, several spans each, some in both the newest slice
    and much earlier: the newest-first search gives, for every limit,
    the traces and order the search over the whole window gives (1 minute, then 4x wider)."""
    t0 = env.data.t0 + 4 * 3600 * qd.NS
    rows, trace_ids = [], []
    for i in range(40):
        trace = (0xA11CE000 + i).to_bytes(16, "big")
        trace_ids.append(trace)
        # Trace i's spans at 3 h - 4.5 min * i, plus an early one; every 7th has one more in the last minute.
        offsets = [10_800 - 270 * i, 60 + i]
        if i % 7 == 0:
            offsets.append(10_800 - 30 + i)
        for k, off in enumerate(offsets):
            rows.append(qd.span(t0 + off * qd.NS, trace, (k + 1).to_bytes(8, "big"), qd.ZERO_SPAN, "op",
                                "SERVER", "newest-first", {"service.name": "newest-first"}, {}, 1000))
    qd.insert_rows(env.client, env.data.db, "otel_traces", qd.SPAN_COLUMNS, rows)
    start_us, end_us = t0 // 1000, (t0 + 10_801 * qd.NS) // 1000
    whole = env.client.query(
        "SELECT lower(hex(TraceId)) FROM otel_trace_index WHERE ServiceName = 'newest-first' "
        "AND Timestamp BETWEEN fromUnixTimestamp64Nano({s:Int64}) AND fromUnixTimestamp64Nano({e:Int64}) "
        "GROUP BY TraceId ORDER BY max(Timestamp) DESC",
        parameters={"s": start_us * 1000, "e": end_us * 1000}, settings={"database": env.data.db}).result_rows
    assert len(whole) == 40
    for limit in (1, 3, 6, 7, 20, 40, 100):
        r = http.get("/api/traces", params={"service": "newest-first", "start": start_us, "end": end_us,
                                            "limit": str(limit)})
        assert [t["traceID"] for t in r.json()["data"]] == [w[0] for w in whole[:limit]], limit


@pytest.mark.parametrize("params", [
    {},
    {"service": "checkout", "limit": "-1"},
    {"service": "checkout", "limit": "99999999"},
    {"service": "checkout", "minDuration": "soon"},
    {"service": "checkout", "tags": "{not json"},
    {"service": "checkout", "start": "0", "end": "99999999999999999"},
])
def test_search_bad_params_are_400(http, params):
    r = http.get("/api/traces", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == 400


def test_dependencies_query_time_join(env, http):
    end_ms = (env.data.t0 + 3600 * qd.NS) // 1_000_000
    r = http.get("/api/dependencies", params={"endTs": end_ms, "lookback": 3600 * 1000})
    assert r.status_code == 200, r.text
    # frontend root -> checkout charge (parent and child inserted separately); checkout->checkout not listed.
    assert r.json()["data"] == [{"parent": "frontend", "child": "checkout", "callCount": 1}]


def test_dependencies_rollup_job(env, http, clickhouse):
    from otelingest.config import ClickHouseConfig

    client = connect(ClickHouseConfig(url=clickhouse.url, database=env.data.db))
    try:
        dependencies.rollup_hour(client, env.data.t0)
        dependencies.rollup_hour(client, env.data.t0)  # idempotent
        rows = client.query(
            f"SELECT Parent, Child, CallCount, ErrorCount FROM {env.data.db}.otel_service_dependencies_1h FINAL"
        ).result_rows
        assert rows == [("frontend", "checkout", 1, 1)]
        # Those computations were too early to be final; three hours after the hour began, a run
        # computes it once more, as final, and the next run has nothing to do.
        final = env.data.t0 + 3 * 3600 * qd.NS + 5
        assert dependencies.backfill(client, now_ns=final) == [env.data.t0]
        assert dependencies.backfill(client, now_ns=final) == []
    finally:
        client.close()


def test_background_job_fills_the_dependency_rollup(env, clickhouse):
    import time

    from otelingest.config import ClickHouseConfig
    from otelingest.jobs.dependencies import DependencyRollup

    # A call in an hour old enough to be final; the job (as the supervisor runs it) computes it.
    hour = 3600 * qd.NS
    old = env.data.t0 - 2 * hour + 10 * qd.NS
    tid = bytes.fromhex("bb" * 16)
    qd.insert_rows(env.client, env.data.db, "otel_traces", qd.SPAN_COLUMNS, [
        qd.span(old, tid, bytes.fromhex("03" * 8), qd.ZERO_SPAN, "poll", "SERVER", "bg-parent", {}, {}, 1000),
        qd.span(old + 1000, tid, bytes.fromhex("04" * 8), bytes.fromhex("03" * 8), "work", "SERVER", "bg-child",
                {}, {}, 500)])
    cfg = ClickHouseConfig(url=clickhouse.url, database=env.data.db)
    job = DependencyRollup(cfg, interval_s=0.2)
    job.start()
    q = f"SELECT Parent, Child, CallCount FROM {env.data.db}.otel_service_dependencies_1h FINAL WHERE Parent = 'bg-parent'"
    deadline = time.monotonic() + 60
    rows = []
    try:
        while time.monotonic() < deadline:
            rows = env.client.query(q).result_rows
            if rows:
                break
            time.sleep(0.2)
    finally:
        job.stop()
    assert rows == [("bg-parent", "bg-child", 1)]
    # Leave the dataset as the other tests know it.
    for table, cond in (("otel_traces", "TraceId = {t:FixedString(16)}"), ("otel_service_dependencies_1h", "Parent = 'bg-parent'")):
        env.client.command(f"ALTER TABLE {env.data.db}.{table} DELETE WHERE {cond} SETTINGS mutations_sync = 2",
                           parameters={"t": tid})


def test_long_window_dependencies_come_from_the_rollup(env, http, clickhouse):
    from otelingest.config import ClickHouseConfig

    hour = 3600 * qd.NS
    old = env.data.t0 - 5 * hour + 10 * qd.NS
    tid = bytes.fromhex("aa" * 16)
    qd.insert_rows(env.client, env.data.db, "otel_traces", qd.SPAN_COLUMNS, [
        qd.span(old, tid, bytes.fromhex("01" * 8), qd.ZERO_SPAN, "cron", "SERVER", "scheduler", {}, {}, 1000)])
    qd.insert_rows(env.client, env.data.db, "otel_traces", qd.SPAN_COLUMNS, [
        qd.span(old + 1000, tid, bytes.fromhex("02" * 8), bytes.fromhex("01" * 8), "run", "SERVER", "worker", {}, {},
                500)])
    client = connect(ClickHouseConfig(url=clickhouse.url, database=env.data.db))
    try:
        dependencies.rollup_hour(client, old)
        # The raw spans go away (as after their TTL): only the rollup still knows the call.
        client.command("ALTER TABLE otel_traces DELETE WHERE TraceId = {t:FixedString(16)} SETTINGS mutations_sync = 2",
                       parameters={"t": tid})
    finally:
        client.close()
    end_ms = (env.data.t0 + hour) // 1_000_000
    r = http.get("/api/dependencies", params={"endTs": end_ms, "lookback": 3 * 24 * 3600 * 1000})
    assert r.status_code == 200, r.text
    assert sorted((d["parent"], d["child"], d["callCount"]) for d in r.json()["data"]) == [
        ("frontend", "checkout", 1), ("scheduler", "worker", 1)]
    # A one-hour window around it reads raw spans: the deleted trace is gone there.
    r = http.get("/api/dependencies", params={"endTs": (old + hour) // 1_000_000, "lookback": 3600 * 1000})
    assert r.json()["data"] == []


def test_search_answers_traces_not_yet_in_the_trace_times_lookup(clickhouse, tmp_path):
    """A view's part becomes visible after its source's: right after an INSERT a search can find
    traces in otel_trace_index that otel_trace_times does not hold yet. Jaeger's and the design's
    searches still answer them, whole, read within the search's window (they dropped them)."""
    import httpx

    def load(client, db):
        data = qd.load_all(client, db)
        client.command(f"TRUNCATE TABLE {db}.otel_trace_times")
        return data

    with qd.make_env(clickhouse, tmp_path, load=load) as e, httpx.Client(base_url=e.url, timeout=30) as http:
        r = http.get("/api/traces", params={"service": "checkout", "start": us(e, 0), "end": us(e, 3600)})
        assert r.status_code == 200, r.text
        assert [(t["traceID"], len(t["spans"])) for t in r.json()["data"]] == [
            (qd.TRACE_B.hex(), 1), (qd.TRACE_A.hex(), 3)]
        r = http.post("/api/v1/traces", json={"service_name": "checkout", "start_time": e.data.t0,
                                              "end_time": e.data.t0 + 3600 * qd.NS})
        assert r.status_code == 200, r.text
        assert [t["trace_id"] for t in r.json()["traces"]] == [qd.TRACE_B.hex(), qd.TRACE_A.hex()]


def test_trace_by_id_answers_a_trace_not_yet_in_the_trace_times_lookup(clickhouse, tmp_path):
    """A trace sent a moment ago whose otel_trace_times row is not visible yet is answered by id
    (Jaeger, Tempo and the design's API), read from the last minutes; an unknown id is still 404."""
    import httpx

    tid = "0102030405060708090a0b0c0d0e0f10"

    def load(client, db):
        client.command(
            f"INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration) VALUES "
            f"(now64(9) - 60, unhex('{tid}'), unhex('0102030405060708'), 'svc', 'op', 1000)")
        client.command(f"TRUNCATE TABLE {db}.otel_trace_times")

    with qd.make_env(clickhouse, tmp_path, load=load) as e, httpx.Client(base_url=e.url, timeout=30) as http:
        r = http.get(f"/api/traces/{tid}")
        assert r.status_code == 200, r.text
        assert [s["operationName"] for s in r.json()["data"][0]["spans"]] == ["op"]
        r = http.get(f"/api/v2/traces/{tid}")  # Tempo
        assert r.status_code == 200, r.text
        r = http.post("/api/v1/traces", json={"trace_id": tid})
        assert r.status_code == 200, r.text
        assert len(r.json()["traces"]) == 1
        assert http.get(f"/api/traces/{'ab' * 16}").status_code == 404
