"""The design's API (/api/v1/traces|metrics|logs POST, /api/v1/services/stats) over real ClickHouse."""

from __future__ import annotations

import httpx
import pytest

import querydata as qd
from querydata import env, http  # noqa: F401 (pytest fixtures: the served data set, a client)


def window(env, start_s=0, end_s=3600):
    return {"start_time": env.data.t0 + start_s * qd.NS, "end_time": env.data.t0 + end_s * qd.NS}


def test_trace_by_id_has_spans_from_both_services(env, http):
    r = http.post("/api/v1/traces", json={"trace_id": qd.TRACE_A.hex()})
    assert r.status_code == 200, r.text
    (trace,) = r.json()["traces"]
    assert trace["trace_id"] == qd.TRACE_A.hex()
    assert trace["span_count"] == 3
    assert trace["services"] == ["checkout", "frontend"]
    by_id = {s["span_id"]: s for s in trace["spans"]}
    root, child = by_id[qd.ROOT_SPAN.hex()], by_id[qd.CHILD_SPAN.hex()]
    assert root["parent_span_id"] is None
    assert child["parent_span_id"] == qd.ROOT_SPAN.hex()
    assert root["duration_ns"] == qd.ROOT_DURATION
    assert child["status_code"] == "ERROR" and child["status_message"] == "card declined"
    assert child["links"] == [{"trace_id": qd.TRACE_B.hex(), "span_id": qd.JOB_SPAN.hex(), "trace_state": "",
                               "attributes": {"link.reason": "batch"}}]
    assert root["events"] == [{"time": env.data.t0 + qd.NS + 10 * qd.MS, "name": "cache miss",
                               "attributes": {"cache.key": "cart:42"}}]
    assert trace["duration_ns"] == qd.ROOT_DURATION


def test_trace_by_id_missing_is_404(http):
    r = http.post("/api/v1/traces", json={"trace_id": "ab" * 16})
    assert r.status_code == 404
    assert "not found" in r.json()["error"]["message"]


def test_trace_search_by_service_and_duration(env, http):
    r = http.post("/api/v1/traces", json={"service_name": "checkout", **window(env)})
    assert r.status_code == 200, r.text
    ids = [t["trace_id"] for t in r.json()["traces"]]
    assert ids == [qd.TRACE_B.hex(), qd.TRACE_A.hex()]  # newest first
    r = http.post("/api/v1/traces", json={"service_name": "checkout", "min_duration": "50ms", **window(env)})
    assert [t["trace_id"] for t in r.json()["traces"]] == [qd.TRACE_A.hex()]
    r = http.post("/api/v1/traces", json={"service_name": "checkout", "max_duration": 10_000_000, **window(env)})
    assert [t["trace_id"] for t in r.json()["traces"]] == [qd.TRACE_B.hex()]
    r = http.post("/api/v1/traces", json={"service_name": "checkout", "limit": 1, **window(env)})
    assert len(r.json()["traces"]) == 1


def test_times_as_rfc3339(env, http):
    from datetime import datetime, timezone

    start = datetime.fromtimestamp(env.data.t0 / qd.NS, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    r = http.post("/api/v1/traces", json={"service_name": "frontend", "start_time": start,
                                          "end_time": env.data.t0 + 3600 * qd.NS})
    assert [t["trace_id"] for t in r.json()["traces"]] == [qd.TRACE_A.hex()]


def test_logs_filters_newest_first(env, http):
    r = http.post("/api/v1/logs", json={"service_name": "frontend", **window(env)})
    assert r.status_code == 200, r.text
    bodies = [x["body"] for x in r.json()["logs"]]
    assert bodies == [b for _, s, _, _, b in sorted(qd.LOGS, reverse=True) if s == "frontend"]
    r = http.post("/api/v1/logs", json={"severity": "error", **window(env)})
    assert sorted(x["body"] for x in r.json()["logs"]) == sorted(b for _, _, s, _, b in qd.LOGS if s == "ERROR")
    r = http.post("/api/v1/logs", json={"search_text": "CARD", "limit": 2, **window(env)})
    logs = r.json()["logs"]
    assert [x["body"] for x in logs] == ["payment failed: card declined", "card declined by issuer"]
    assert logs[0]["trace_id"] == qd.TRACE_A.hex()


def test_metrics_aggregations(env, http):
    base = {"metric_name": "system.memory.usage", "start_time": env.data.t0,
            "end_time": env.data.t0 + 599 * qd.NS, "step": "5m"}
    r = http.post("/api/v1/metrics", json={**base, "aggregation": "max"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["table"] == "otel_metrics"
    (series,) = body["series"]
    # Points i=0..19 in the first 5 minutes (values 100..119), i=20..39 in the second.
    assert series["points"] == [[env.data.t0, 119.0], [env.data.t0 + 300 * qd.NS, 139.0]]
    r = http.post("/api/v1/metrics", json={**base, "aggregation": "count"})
    assert [p[1] for p in r.json()["series"][0]["points"]] == [20.0, 20.0]
    r = http.post("/api/v1/metrics", json={**base, "aggregation": "avg"})
    assert [p[1] for p in r.json()["series"][0]["points"]] == [109.5, 129.5]
    r = http.post("/api/v1/metrics", json={**base, "aggregation": "p50"})
    assert [p[1] for p in r.json()["series"][0]["points"]] == [110.0, 130.0]


def test_metrics_rate_of_delta_sum(env, http):
    r = http.post("/api/v1/metrics", json={"metric_name": "jobs.processed", "aggregation": "rate",
                                           "start_time": env.data.t0, "end_time": env.data.t0 + 299 * qd.NS,
                                           "step": "300s"})
    assert r.status_code == 200, r.text
    # 20 deltas of 5 in the 300 s bucket.
    assert r.json()["series"][0]["points"] == [[env.data.t0, 100 / 300]]


def test_services_stats(env, http):
    r = http.get("/api/v1/services/stats", params={"start_time": env.data.t0, "end_time": env.data.t0 + 3599 * qd.NS})
    assert r.status_code == 200, r.text
    stats = {s["service_name"]: s for s in r.json()["services"]}
    assert set(stats) == {"frontend", "checkout"}
    assert stats["checkout"]["span_count"] == 3
    assert stats["checkout"]["error_count"] == 1
    assert stats["checkout"]["error_rate"] == pytest.approx(1 / 3)
    assert stats["frontend"]["span_count"] == 1
    assert stats["frontend"]["duration_ns"]["p99"] == pytest.approx(qd.ROOT_DURATION)
    assert stats["frontend"]["log_count"] == 6 and stats["checkout"]["log_count"] == 2
    assert stats["frontend"]["metric_point_count"] == 5 * qd.POINTS
    assert stats["checkout"]["metric_point_count"] == 0


@pytest.mark.parametrize("body,field", [
    ({"trace_id": "zz"}, "trace_id"),
    ({"service_name": "x", "limit": 10**9}, "limit"),
    ({"service_name": "x", "limit": "ten"}, "limit"),
    ({"service_name": "x", "start_time": "yesterday"}, "start_time"),
    ({"service_name": "x", "start_time": 0, "end_time": 10**18 * 9}, "end_time"),
    ({"service_name": "x", "min_duration": "fast"}, "min_duration"),
    ({}, "service_name"),
])
def test_invalid_trace_requests_are_400_with_field(http, body, field):
    r = http.post("/api/v1/traces", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field


def test_invalid_metrics_and_logs_requests(http):
    r = http.post("/api/v1/metrics", json={"metric_name": "m", "aggregation": "median"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "aggregation"
    r = http.post("/api/v1/metrics", json={"aggregation": "avg"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "metric_name"
    r = http.post("/api/v1/metrics", json={"metric_name": "m", "step": "1ms"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "step"
    r = http.post("/api/v1/logs", content=b"{not json")
    assert r.status_code == 400


@pytest.mark.parametrize("evil", ["x' OR 1=1 --", "a\\'; DROP TABLE otel_logs; --", "{service:String}", "\0\n\t'\""])
def test_sql_metacharacters_are_plain_values(env, http, evil):
    for path, body in [
        ("/api/v1/traces", {"service_name": evil, **window(env)}),
        ("/api/v1/logs", {"service_name": evil, "severity": evil, "search_text": evil, **window(env)}),
        ("/api/v1/metrics", {"metric_name": evil, "service_name": evil, **window(env)}),
    ]:
        r = http.post(path, json=body)
        assert r.status_code == 200, r.text
        assert all(not v for v in r.json().values() if isinstance(v, list))
    # The tables are intact.
    assert env.client.command(f"SELECT count() FROM {env.data.db}.otel_logs") == len(qd.LOGS)


def test_query_api_requires_configured_credentials(clickhouse, tmp_path):
    import base64
    import uuid

    from conftest import free_port
    from otelingest import config as config_mod
    from queryserver import serve

    cfg = config_mod.load(None, overrides={
        "data_dir": str(tmp_path / "data"),
        "clickhouse": {"url": clickhouse.url, "database": f"q_{uuid.uuid4().hex[:12]}", "pool_min": 1},
        "query": {"port": free_port()},
        "auth": {"query_bearer_tokens": ["s3cret"], "query_basic_users": ["grafana:pw"]},
    }, environ={})
    # ClickHouse knows no such database: the service starts anyway (clients connect on demand).
    with serve(cfg, cfg.query.port) as url, httpx.Client(base_url=url, timeout=30) as http:
        r = http.get("/api/v1/query", params={"query": "1+1", "time": "4"})
        assert r.status_code == 401 and r.json()["status"] == "error"
        assert "Bearer" in r.headers["www-authenticate"]
        assert http.get("/api/services").json()["errors"][0]["code"] == 401
        assert http.get("/api/services", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = http.get("/api/v1/query", params={"query": "1+1", "time": "4"}, headers={"Authorization": "Bearer s3cret"})
        assert r.json()["data"]["result"] == [4.0, "2"]
        basic = "Basic " + base64.b64encode(b"grafana:pw").decode()
        r = http.get("/loki/api/v1/query", params={"query": "vector(1)+vector(1)"}, headers={"Authorization": basic})
        assert r.status_code == 200


def test_metrics_rate_of_cumulative_counter(env, http):
    r = http.post("/api/v1/metrics", json={"metric_name": "http.server.requests", "aggregation": "rate",
                                           "start_time": env.data.t0, "end_time": env.data.t0 + 599 * qd.NS,
                                           "step": "300s"})
    assert r.status_code == 200, r.text
    # Increases between consecutive points, GET +10 and POST +3 each: 19 in the first bucket (its
    # first point has no predecessor in the window), 20 in the second.
    (series,) = r.json()["series"]
    assert series["points"] == [[env.data.t0, 19 * 13 / 300], [env.data.t0 + 300 * qd.NS, 20 * 13 / 300]]
