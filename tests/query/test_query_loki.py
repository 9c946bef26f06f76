"""Loki HTTP API and LogQL over real ClickHouse."""

from __future__ import annotations

import json

import httpx
import pytest

import querydata as qd
from otelingest.query import logql, promql
from otelingest.query.loki import stream_labels
from otelingest.query.promql import format_value
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


# --- Metric queries over many records: exact values against a brute-force count ---------------------
#
# 600 records about a second apart at irregular nanosecond offsets, over two services, four
# severities ("INFO" and "info" are two streams of one level), three hosts (some records carry
# their resource attributes in another order: the same stream) and json / logfmt / plain bodies.
# Windows and steps are not aligned to seconds, minutes or each other.

MANY = 600
MANY_GAP_NS = 997_331_113


def many_records(t0: int) -> list[tuple[int, str, str, dict[str, str], str, dict[str, str]]]:
    out = []
    for i in range(MANY):
        service = ("api", "web")[i % 2]
        severity = ("INFO", "ERROR", "info", "WARN")[i % 4]
        res = {"service.name": service, "host.name": f"h{i % 3}", "deployment.environment": "prod"}
        if i % 5 == 0:
            res = dict(reversed(list(res.items())))
        body = (f'{{"code":"{500 + i % 7}","msg":"m{i}"}}', f"code={200 + i % 4} path=/p{i % 3}", f"payment ok {i}")[i % 3]
        out.append((t0 + i * MANY_GAP_NS + i * i, service, severity, res, body, {"user": f"u{i % 4}"}))
    return out


@pytest.fixture(scope="module")
def many(clickhouse, tmp_path_factory):
    with qd.make_env(clickhouse, tmp_path_factory.mktemp("many")) as e:
        t0 = e.data.t0 - 3600 * qd.NS
        records = many_records(t0)
        qd.insert_rows(e.client, e.data.db, "otel_logs", ["Timestamp", "SeverityText", "ServiceName", "ResourceAttributes", "Body",
                                                          "LogAttributes"],
                       [[ts, sev, svc, res, body, attrs] for ts, svc, sev, res, body, attrs in records])
        with httpx.Client(base_url=e.url, timeout=30) as client:
            yield client, t0, records


def parsed(body: str, parser: str) -> dict[str, str]:
    if parser == "json":
        try:
            return {k: str(v) for k, v in json.loads(body).items()}
        except ValueError:
            return {}
    return dict(kv.split("=", 1) for kv in body.split() if "=" in kv) if parser == "logfmt" else {}


def brute(records, pred, range_ns, start, end, step, func, group=None):
    """{labels: [[t, value]]}: each step's window (t - range, t], per stream or per ``group(labels)``."""
    out: dict[tuple, list] = {}
    t = start
    while t <= end:
        lines: dict[tuple, int] = {}
        nbytes: dict[tuple, int] = {}
        for ts, svc, sev, res, body, attrs in records:
            if t - range_ns < ts <= t and pred(svc, sev, res, body, attrs):
                lab = stream_labels(svc, sev, res)
                key = tuple(sorted((group(lab, body, attrs) if group else lab).items()))
                lines[key] = lines.get(key, 0) + 1
                nbytes[key] = nbytes.get(key, 0) + len(body.encode())
        for key, n in lines.items():
            v = nbytes[key] if func.startswith("bytes") else n
            if func in ("rate", "bytes_rate"):
                v = v / (range_ns / qd.NS)
            out.setdefault(key, []).append([t / qd.NS, format_value(float(v))])
        t += step
    return out


def matrix(resp):
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["resultType"] == "matrix"
    return {tuple(sorted(s["metric"].items())): s["values"] for s in data["result"]}


def by(*keys):
    return lambda lab, body, attrs: {k: lab[k] for k in keys if lab.get(k)}


def test_sum_by_level_exact_over_unaligned_windows(many):
    http, t0, records = many
    start, end, step, rng = t0 + 12_345_678_901, t0 + 580_100_000_017, 13_700_000_000, 37 * qd.NS
    r = http.get("/loki/api/v1/query_range", params={
        "query": 'sum by (level) (count_over_time({service_name=~".+"}[37s]))', "start": str(start), "end": str(end),
        "step": "13.7s"})
    want = brute(records, lambda *a: True, rng, start, end, step, "count", by("level"))
    assert set(want) == {(("level", "info"),), (("level", "error"),), (("level", "warn"),)}
    assert matrix(r) == want
    # Grafana's log volume query, and sums of rates and bytes (exact: each sum is divided once).
    level_pair = lambda lab, body, attrs: {"level": lab["level"], "detected_level": lab["level"]}  # noqa: E731
    for query, pred, func, group, rng_s in [
        ('sum by (level, detected_level) (count_over_time({service_name="api"} | drop __error__[1m]))',
         lambda s, v: s == "api", "count", level_pair, 60),
        ('sum(rate({service_name=~"api|web"}[8s]))', lambda s, v: True, "rate", lambda *_: {}, 8),
        ('sum by (service_name, severity_text) (bytes_rate({service_name!="web"}[3s]))',
         lambda s, v: s != "web", "bytes_rate", by("service_name", "severity_text"), 3),
        ('sum by (service_name) (bytes_over_time({level=~"info|warn"}[29s]))',
         lambda s, v: v.lower() in ("info", "warn"), "bytes", by("service_name"), 29),
    ]:
        r = http.get("/loki/api/v1/query_range", params={"query": query, "start": str(start), "end": str(end), "step": "13.7s"})
        want = brute(records, lambda s, v, *_, p=pred: p(s, v), rng_s * qd.NS, start, end, step, func, group)
        assert want and matrix(r) == want, query


def test_per_stream_counts_exact_over_unaligned_windows(many):
    http, t0, records = many
    start, end, step = t0 + 61_000_000_333, t0 + 599 * qd.NS, 30 * qd.NS
    r = http.get("/loki/api/v1/query_range", params={
        "query": 'count_over_time({service_name="api"}[1m])', "start": str(start), "end": str(end), "step": "30s"})
    want = brute(records, lambda s, *_: s == "api", 60 * qd.NS, start, end, step, "count")
    # One series per stream: service, severity and resource, whatever the order of the attributes.
    assert len(want) == 2 * 3 and matrix(r) == want
    labels = next(iter(matrix(r)))
    assert dict(labels) == {**dict(labels), "service_name": "api", "deployment_environment": "prod"}
    # Not a sum: the per-stream values aggregated in Python.
    r = http.get("/loki/api/v1/query_range", params={
        "query": 'max by (service_name) (count_over_time({host_name=~"h[12]", level!="warn"}[20s]))',
        "start": str(start), "end": str(end), "step": "30s"})
    per_stream = brute(records, lambda s, v, res, *_: res["host.name"] in ("h1", "h2") and v.lower() != "warn",
                       20 * qd.NS, start, end, step, "count")
    want = {}
    for key, pts in per_stream.items():
        g = (("service_name", dict(key)["service_name"]),)
        for t, v in pts:
            cur = want.setdefault(g, {})
            cur[t] = max(cur.get(t, 0), int(v))
    assert matrix(r) == {g: [[t, str(v)] for t, v in sorted(pts.items())] for g, pts in want.items()}


def test_streams_beyond_a_query_parameter_are_read_in_chunks(many, monkeypatch):
    """Stream resources are read by hash, bound as one parameter (ClickHouse takes 128 KiB): more
    streams than it holds are read a chunk per query, with the same answer."""
    http, t0, records = many
    monkeypatch.setattr(promql, "MAX_BOUND_SERIES", 2)
    start, end, step = t0 + 67_000_000_111, t0 + 593 * qd.NS, 40 * qd.NS
    r = http.get("/loki/api/v1/query_range", params={
        "query": 'count_over_time({deployment_environment="prod"}[1m])', "start": str(start), "end": str(end), "step": "40s"})
    want = brute(records, lambda *_: True, 60 * qd.NS, start, end, step, "count")
    assert len(want) == 12 and matrix(r) == want  # streams: service x its two severities x host


def test_parsed_labels_and_resource_matchers_exact(many):
    http, t0, records = many
    start, end, step = t0 + 30_123_456_789, t0 + 590 * qd.NS, 47_000_000_000
    params = {"start": str(start), "end": str(end), "step": "47s"}
    # `by` a field of the json body, and a json label filter: the generic per-row path.
    r = http.get("/loki/api/v1/query_range", params={
        **params, "query": 'sum by (code) (count_over_time({service_name=~".+"} | json | code=~"50[0-3]" [1m]))'})
    want = brute(records, lambda s, v, res, body, a: parsed(body, "json").get("code", "") in ("500", "501", "502", "503"),
                 60 * qd.NS, start, end, step, "count",
                 lambda lab, body, attrs: {"code": parsed(body, "json")["code"]})
    assert len(want) == 4 and matrix(r) == want
    # A resource matcher with a logfmt label filter, summed by level.
    r = http.get("/loki/api/v1/query_range", params={
        **params, "query": 'sum by (level) (count_over_time({host_name="h1"} | logfmt | code="201" [45s]))'})
    want = brute(records, lambda s, v, res, body, a: res["host.name"] == "h1" and parsed(body, "logfmt").get("code") == "201",
                 45 * qd.NS, start, end, step, "count", by("level"))
    assert want and matrix(r) == want
    # `by` a resource label: from the stream labels (no log attribute of that name).
    r = http.get("/loki/api/v1/query_range", params={
        **params, "query": 'sum by (host_name) (bytes_over_time({service_name="web", deployment_environment=~"pr.d"}[40s]))'})
    want = brute(records, lambda s, *_: s == "web", 40 * qd.NS, start, end, step, "bytes", by("host_name"))
    assert len(want) == 3 and matrix(r) == want
    # By a log attribute.
    r = http.get("/loki/api/v1/query_range", params={
        **params, "query": 'sum by (user) (count_over_time({host_name!="h0", host_name!~"h2"}[1m]))'})
    want = brute(records, lambda s, v, res, *_: res["host.name"] == "h1", 60 * qd.NS, start, end, step, "count",
                 lambda lab, body, attrs: {"user": attrs["user"]})
    assert len(want) == 4 and matrix(r) == want


def test_several_matchers_on_one_label(many):
    http, t0, records = many
    params = {"start": str(t0 + 600 * qd.NS), "end": str(t0 + 600 * qd.NS), "step": "60s"}

    def total(query):  # every record is in the one window
        r = http.get("/loki/api/v1/query_range", params={**params, "query": f"sum(count_over_time({query}[11m]))"})
        result = matrix(r)
        return int(result[()][-1][1]) if result else 0

    assert total('{service_name=~"a.*", service_name=~".*i"}') == MANY // 2
    assert total('{service_name=~"a.*", service_name=~"w.*"}') == 0
    assert total('{service_name="api", service_name="api"}') == MANY // 2
    assert total('{service_name="api", service_name="web"}') == 0
    assert total('{level="info", level="error"}') == 0
    assert total('{level="info", detected_level=~"i.*", severity_text!~"INFO|WARN", severity_text!="ERROR"}') == MANY // 4
    assert total('{service_name=~".+", host_name=~"h.", host_name!="h0", service_instance_id=""}') == MANY * 2 // 3


def test_log_query_with_resource_matchers_and_streams(many):
    http, t0, records = many
    r = http.get("/loki/api/v1/query_range", params={
        "query": '{service_name="web", host_name!="h0"} |= "code"', "start": str(t0 - qd.NS), "end": str(t0 + 600 * qd.NS),
        "limit": "1000", "direction": "forward"})
    got = lines(r)
    want = [(ts, body) for ts, svc, sev, res, body, _ in records if svc == "web" and res["host.name"] != "h0" and "code" in body]
    assert [(ts, body) for ts, body, _ in sorted(got, key=lambda e: e[0])] == want
    assert {s for _, _, s in [(0, 0, tuple(sorted(e[2].items()))) for e in got]} == \
        {tuple(sorted(stream_labels(svc, sev, res).items())) for ts, svc, sev, res, body, _ in records
         if svc == "web" and res["host.name"] != "h0" and "code" in body}
    w = {"start": str(t0 - qd.NS), "end": str(t0 + 600 * qd.NS)}  # the start is exclusive
    series = http.get("/loki/api/v1/series", params={**w, "match[]": '{host_name="h1"}'}).json()["data"]
    assert sorted(tuple(sorted(s.items())) for s in series) == sorted(
        {tuple(sorted(stream_labels(svc, sev, res).items())) for _, svc, sev, res, _, _ in records if res["host.name"] == "h1"})
    stats = http.get("/loki/api/v1/index/stats", params={**w, "query": '{service_name="api", host_name=~"h[01]"}'}).json()
    chosen = [(body, sev, res) for _, svc, sev, res, body, _ in records if svc == "api" and res["host.name"] in ("h0", "h1")]
    assert stats == {"streams": 2 * 2, "chunks": 2 * 2, "entries": len(chosen), "bytes": sum(len(b) for b, _, _ in chosen)}
    assert http.get("/loki/api/v1/label/host_name/values", params={**w, "query": '{level="warn"}'}).json()["data"] == ["h0", "h1", "h2"]


def test_filter_reads_body_only_for_line_and_label_filters():
    def fragments(q):
        return logql.compile_filter(logql.parse(q)).fragments

    assert fragments('{service_name=~".+"}') == ["loki_filter"]
    assert fragments('{service_name="a", level="info"}') == ["loki_filter", "loki_filter_service"]
    assert fragments('{host_name="h"} |= "x"') == ["loki_filter", "loki_filter_resource", "loki_filter_line"]
    assert fragments('{level="a", level="b"} | json | code="1"') == ["loki_filter", "loki_filter_columns", "loki_filter_labels"]
    p = logql.compile_filter(logql.parse('{service_name!~"a|b", service_name!~"c", service_name!="d"}')).params
    assert (p["service_nre"], p["service_ne"]) == ("^(?:a|b)$|^(?:c)$", ["d"])
