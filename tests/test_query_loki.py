"""Loki HTTP API and LogQL over real ClickHouse."""

from __future__ import annotations

import pytest

import querydata as qd
from querydata import env, http  # noqa: F401 (pytest fixtures: the served data set, a client)


def window(env, start_s=0, end_s=60):
    return {"start": str(env.data.t0 + start_s * qd.NS), "end": str(env.data.t0 + end_s * qd.NS)}


def lines(resp):
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["resultType"] == "streams"
    entries = [(int(ts), line, s["stream"]) for s in data["result"] for ts, line in s["values"]]
    return entries


def bodies(entries, newest_first=True):
    return [line for _, line, _ in sorted(entries, key=lambda e: e[0], reverse=newest_first)]


def expected(pred, newest_first=True):
    rows = sorted((off, body) for off, svc, sev, _, body in qd.LOGS if pred(svc, sev, body))
    return [b for _, b in (reversed(rows) if newest_first else rows)]


def test_health_check(http):
    r = http.get("/loki/api/v1/query", params={"query": "vector(1)+vector(1)"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "vector"
    assert len(data["result"]) == 1 and data["result"][0]["value"][1] == "2"


def test_line_filter_exact_lines_newest_first(http, env):
    r = http.get("/loki/api/v1/query_range", params={"query": '{service_name="frontend"} |= "card"', **window(env)})
    entries = lines(r)
    # Each stream is newest first, and exactly the matching lines come back.
    assert sorted(b for _, b, _ in entries) == sorted(expected(lambda s, v, b: s == "frontend" and "card" in b))
    for s in r.json()["data"]["result"]:
        ts = [int(t) for t, _ in s["values"]]
        assert ts == sorted(ts, reverse=True)
    r = http.get("/loki/api/v1/query_range", params={"query": '{service_name=~"front.*|checkout"} |= "card"',
                                                      "limit": "2", **window(env)})
    assert bodies(lines(r)) == expected(lambda s, v, b: "card" in b)[:2]
    assert [e[0] for e in lines(r)] == sorted((e[0] for e in lines(r)), reverse=True)


def test_filters_and_direction(http, env):
    def q(query, **kw):
        return lines(http.get("/loki/api/v1/query_range", params={"query": query, **window(env), **kw}))

    assert bodies(q('{service_name="frontend"} != "card" |~ "status=[0-9]+"')) == \
        expected(lambda s, v, b: s == "frontend" and "status=" in b)
    assert bodies(q('{service_name="frontend"} !~ "(?i)USER|card|status"')) == \
        ['{"level":"error","msg":"db timeout","code":"500"}']
    forward = q('{service_name="frontend", level="info"}', direction="forward")
    assert [b for _, b, _ in forward] == expected(lambda s, v, b: s == "frontend" and v == "INFO", newest_first=False)
    assert forward[0][2] == {"service_name": "frontend", "severity_text": "INFO", "level": "info",
                             "service_namespace": "shop", "service_instance_id": "fe-1", "host_name": "h1"}
    assert bodies(q('{severity_text="ERROR", host_name="h1"}')) == \
        expected(lambda s, v, b: s == "frontend" and v == "ERROR")
    assert bodies(q('{service_name="frontend"} | json | code="500"')) == \
        ['{"level":"error","msg":"db timeout","code":"500"}']
    assert bodies(q('{service_name="frontend"} | json | code >= 500')) == \
        ['{"level":"error","msg":"db timeout","code":"500"}']
    assert bodies(q('{service_name="frontend"} | logfmt | status="404"')) == ["method=GET status=404 path=/missing"]
    assert bodies(q('{service_name="frontend"} | logfmt | method=~"P.*"')) == ["method=POST status=200 path=/cart"]
    assert bodies(q('{service_name!="frontend"}')) == expected(lambda s, v, b: s != "frontend")


def test_metric_queries(http, env):
    r = http.get("/loki/api/v1/query_range", params={
        "query": 'sum by (level) (count_over_time({service_name="frontend"}[10s]))',
        "start": str(env.data.t0 + 10 * qd.NS), "end": str(env.data.t0 + 10 * qd.NS), "step": "10s"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    got = {s["metric"]["level"]: s["values"] for s in data["result"]}
    assert got == {"info": [[env.data.t0 / qd.NS + 10, "2"]], "error": [[env.data.t0 / qd.NS + 10, "2"]],
                   "warn": [[env.data.t0 / qd.NS + 10, "2"]]}
    # Lines at t0+1..6 s; windows (t-2s, t] at t = t0+2, +4, +6: two frontend lines each -> rate 1/s.
    r = http.get("/loki/api/v1/query_range", params={
        "query": 'sum(rate({service_name="frontend"}[2s]))', "start": str(env.data.t0 + 2 * qd.NS),
        "end": str(env.data.t0 + 6 * qd.NS), "step": "2"})
    (s,) = r.json()["data"]["result"]
    assert [v[1] for v in s["values"]] == ["1", "1", "1"]
    r = http.get("/loki/api/v1/query", params={
        "query": 'count_over_time({service_name="checkout"} |= "card" [1m])', "time": str(env.data.t0 + 60 * qd.NS)})
    # One series per stream (INFO and ERROR lines are different streams).
    assert sorted((s["metric"]["level"], s["value"][1]) for s in r.json()["data"]["result"]) == \
        [("error", "1"), ("info", "1")]
    r = http.get("/loki/api/v1/query", params={
        "query": 'sum by (service_name) (count_over_time({service_name="checkout"} |= "card" [1m]))',
        "time": str(env.data.t0 + 60 * qd.NS)})
    (s,) = r.json()["data"]["result"]
    assert s == {"metric": {"service_name": "checkout"}, "value": [env.data.t0 / qd.NS + 60, "2"]}
    r = http.get("/loki/api/v1/query_range", params={
        "query": 'sum by (level, detected_level) (count_over_time({service_name="checkout"} | drop __error__[1m]))',
        "start": str(env.data.t0 + 60 * qd.NS), "end": str(env.data.t0 + 60 * qd.NS), "step": "60s"})
    got = {s["metric"]["level"]: s["values"][0][1] for s in r.json()["data"]["result"]}
    assert got == {"info": "1", "error": "1"}


def test_labels_values_series_stats(http, env):
    w = window(env)
    labels = http.get("/loki/api/v1/labels", params=w).json()["data"]
    assert labels == sorted(["service_name", "severity_text", "level", "service_namespace",
                             "service_instance_id", "host_name"])
    assert http.get("/loki/api/v1/label/service_name/values", params=w).json()["data"] == ["checkout", "frontend"]
    assert http.get("/loki/api/v1/label/level/values", params={**w, "query": '{service_name="checkout"}'}
                    ).json()["data"] == ["error", "info"]
    series = http.get("/loki/api/v1/series", params={**w, "match[]": '{service_name="frontend"}'}).json()["data"]
    assert sorted(s["level"] for s in series) == ["error", "info", "warn"]
    stats = http.get("/loki/api/v1/index/stats", params={**w, "query": '{service_name="frontend"}'}).json()
    assert stats["entries"] == 6 and stats["streams"] == 3
    assert stats["bytes"] == sum(len(b) for _, s, _, _, b in qd.LOGS if s == "frontend")


@pytest.mark.parametrize("q", [
    '{service_name="x"', 'service_name="x"', "{}", '{service_name="x"} | line_format "{{.a}}"',
    'count_over_time({a="b"})', 'topk(2, count_over_time({a="b"}[1m]))', '{a="b"} |~ "("',
    '{a=~"("}', "'; DROP TABLE otel_logs; --", "",
])
def test_bad_logql_is_400(http, env, q):
    r = http.get("/loki/api/v1/query_range", params={"query": q, **window(env)})
    assert r.status_code == 400, (q, r.text)


@pytest.mark.parametrize("params", [
    {"limit": "99999999"}, {"limit": "-1"}, {"direction": "sideways"},
    {"start": "0", "end": "99999999999999999999"}, {"start": "100", "end": "10"},
])
def test_bad_params_are_400(http, env, params):
    r = http.get("/loki/api/v1/query_range", params={"query": '{service_name="frontend"}', **window(env), **params})
    assert r.status_code == 400, r.text


def test_sql_metacharacters_are_values(http, env):
    for evil in ["x' OR 1=1 --", "\\\\'", "{m_k:Array(String)}"]:
        q = '{service_name="%s"} |= "%s" | json | a="%s"' % (evil, evil, evil)
        r = http.get("/loki/api/v1/query_range", params={"query": q, **window(env)})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["result"] == []
    assert env.client.command(f"SELECT count() FROM {env.data.db}.otel_logs") == len(qd.LOGS)
