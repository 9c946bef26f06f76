"""Prometheus HTTP API and PromQL over real ClickHouse, with promtool and prometheus-api-client."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import querydata as qd
from querydata import env, http  # noqa: F401 (pytest fixtures: the served data set, a client)


def at(env, seconds: int) -> float:
    return (env.data.t0 + seconds * qd.NS) / qd.NS


T = 300  # seconds after t0: sample i=20


def instant(http, env, q, t=T):
    r = http.get("/api/v1/query", params={"query": q, "time": at(env, t)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    return body["data"]


def values_by(data, label):
    assert data["resultType"] == "vector"
    return {s["metric"].get(label): float(s["value"][1]) for s in data["result"]}


def test_health_checks(http):
    r = http.get("/api/v1/query", params={"query": "1+1", "time": "4"})
    assert r.json() == {"status": "success", "data": {"resultType": "scalar", "result": [4.0, "2"]}}
    r = http.post("/api/v1/query", data={"query": "1+1", "time": "4"})
    assert r.json()["data"]["result"] == [4.0, "2"]
    # vmalert: POST with the parameters in the URL and an empty body.
    r = http.post("/api/v1/query?query=1%2B1&time=4", content=b"")
    assert r.json()["data"]["result"] == [4.0, "2"]
    r = http.get("/api/v1/status/buildinfo")
    assert r.status_code == 200 and "features" not in r.json()["data"]
    assert http.get("/").status_code == 200
    assert http.get("/api/v1/rules").json()["data"] == {"groups": []}
    assert http.get("/api/v1/query_exemplars", params={"query": "nonexistent_metric"}).json()["data"] == []


def test_gauge_selector_labels_and_naming(http, env):
    data = instant(http, env, "system_memory_usage_bytes")
    (series,) = data["result"]
    assert series["metric"] == {"__name__": "system_memory_usage_bytes", "state": "used",
                                "service_name": "frontend", "job": "shop/frontend", "instance": "fe-1"}
    assert series["value"] == [at(env, T), "120"]
    assert values_by(instant(http, env, "system_memory_usage_bytes offset 1m"), "state") == {"used": 116.0}


def test_rate_matches_hand_computed(http, env):
    # GET grows 10 per 15 s: samples at T-45..T in (T-60, T]; Prometheus extrapolation gives exactly 10/15.
    data = instant(http, env, 'rate(http_server_requests_total{http_method="GET"}[1m])')
    (s,) = data["result"]
    assert "__name__" not in s["metric"]
    assert float(s["value"][1]) == pytest.approx(10 / 15, rel=1e-12)
    assert values_by(instant(http, env, "sum by (http_method) (rate(http_server_requests_total[1m]))"),
                     "http_method") == pytest.approx({"GET": 10 / 15, "POST": 3 / 15}, rel=1e-12)
    assert values_by(instant(http, env, "sum(rate(http_server_requests_total[1m]))"), None) == \
        pytest.approx({None: 13 / 15}, rel=1e-12)
    assert values_by(instant(http, env, 'increase(http_server_requests_total{http_method="POST"}[1m])'),
                     "http_method") == pytest.approx({"POST": 12.0}, rel=1e-12)
    assert values_by(instant(http, env, 'irate(http_server_requests_total{http_method=~"G.*"}[1m])'),
                     "http_method") == pytest.approx({"GET": 10 / 15}, rel=1e-12)
    # A delta sum is exposed as a counter: 5 per 15 s.
    assert values_by(instant(http, env, "rate(jobs_processed_total[1m])"), "job") == \
        pytest.approx({"shop/frontend": 5 / 15}, rel=1e-12)


def test_histogram_quantile_matches_hand_computed(http, env):
    # Per 15 s: 2 obs <=10, 4 in (10,50], 2 in (50,100], 2 in (100,500] -> cumulative 2,6,8,10,10.
    # p50: rank 5 in (10,50]: 10 + 40*(5-2)/4 = 40. p90: rank 9 in (100,500]: 100 + 400*(1/2) = 300.
    q = "histogram_quantile({}, rate(http_server_duration_milliseconds_bucket[1m]))"
    assert values_by(instant(http, env, q.format(0.5)), "http_method") == pytest.approx({"GET": 40.0})
    assert values_by(instant(http, env, q.format(0.9)), "http_method") == pytest.approx({"GET": 300.0})
    q = "histogram_quantile(0.9, sum by (le) (rate(http_server_duration_milliseconds_bucket[5m])))"
    assert values_by(instant(http, env, q), None) == pytest.approx({None: 300.0})
    buckets = instant(http, env, "http_server_duration_milliseconds_bucket")
    assert {s["metric"]["le"]: s["value"][1] for s in buckets["result"]} == {
        "10": "42", "50": "126", "100": "168", "500": "210", "+Inf": "210"}
    assert values_by(instant(http, env, "http_server_duration_milliseconds_count"), "http_method") == {"GET": 210.0}
    assert values_by(instant(http, env, "http_server_duration_milliseconds_sum"), "http_method") == {"GET": 2100.0}
    ratio = "http_server_duration_milliseconds_sum / http_server_duration_milliseconds_count"
    assert values_by(instant(http, env, ratio), "http_method") == {"GET": 10.0}


def test_over_time_arithmetic_comparison_topk(http, env):
    assert values_by(instant(http, env, "avg_over_time(system_memory_usage_bytes[1m])"), "state") == {"used": 118.5}
    assert values_by(instant(http, env, "max_over_time(system_memory_usage_bytes[1m])"), "state") == {"used": 120.0}
    assert values_by(instant(http, env, "count_over_time(system_memory_usage_bytes[1m])"), "state") == {"used": 4.0}
    data = instant(http, env, "system_memory_usage_bytes * 2 + 1")
    assert data["result"][0]["value"][1] == "241" and "__name__" not in data["result"][0]["metric"]
    assert values_by(instant(http, env, "http_server_requests_total > 1100"), "http_method") == {"GET": 1200.0}
    assert values_by(instant(http, env, "http_server_requests_total > bool 1100"), "http_method") == \
        {"GET": 1.0, "POST": 0.0}
    assert values_by(instant(http, env, "topk(1, http_server_requests_total)"), "http_method") == {"GET": 1200.0}
    assert values_by(instant(http, env, "count by (job) (http_server_requests_total)"), "job") == {"shop/frontend": 2.0}
    assert values_by(instant(http, env, 'http_server_requests_total{http_method!="GET"}'), "http_method") == \
        {"POST": 1060.0}
    assert values_by(instant(http, env, 'http_server_requests_total{http_method!~"G.*|X"}'), "http_method") == \
        {"POST": 1060.0}
    assert instant(http, env, "nonexistent_metric")["result"] == []


def test_query_range(http, env):
    r = http.post("/api/v1/query_range", data={
        "query": 'rate(http_server_requests_total{http_method="GET"}[1m])',
        "start": at(env, T), "end": at(env, T + 60), "step": "15s"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    (s,) = data["result"]
    assert [p[0] for p in s["values"]] == [at(env, T + 15 * i) for i in range(5)]
    assert all(float(p[1]) == pytest.approx(10 / 15, rel=1e-12) for p in s["values"])
    r = http.get("/api/v1/query_range", params={"query": "1+1", "start": at(env, 0), "end": at(env, 30), "step": 15})
    assert r.json()["data"]["result"] == [{"metric": {}, "values": [[at(env, 0), "2"], [at(env, 15), "2"],
                                                                    [at(env, 30), "2"]]}]


def test_labels_series_metadata(http, env):
    window = {"start": at(env, 0), "end": at(env, 600)}
    names = http.get("/api/v1/label/__name__/values", params=window).json()["data"]
    assert names == sorted([
        "system_memory_usage_bytes", "http_server_requests_total", "jobs_processed_total",
        "http_server_duration_milliseconds_bucket", "http_server_duration_milliseconds_sum",
        "http_server_duration_milliseconds_count"])
    labels = http.get("/api/v1/labels", params=window).json()["data"]
    assert labels == sorted(["__name__", "state", "service_name", "job", "instance", "http_method", "le"])
    # Without match[] both come from the catalog and attribute keys, not from every series: the same.
    everything = {**window, "match[]": '{__name__=~".+"}'}
    assert http.get("/api/v1/labels", params=everything).json()["data"] == labels
    assert http.get("/api/v1/label/__name__/values", params=everything).json()["data"] == names
    vals = http.get("/api/v1/label/http_method/values", params=window).json()["data"]
    assert vals == ["GET", "POST"]
    r = http.get("/api/v1/series", params={**window, "match[]": "http_server_requests_total"})
    assert sorted(s["http_method"] for s in r.json()["data"]) == ["GET", "POST"]
    r = http.get("/api/v1/series", params={**window, "match[]": 'http_server_duration_milliseconds_bucket{le="50"}'})
    assert [s["le"] for s in r.json()["data"]] == ["50"]
    meta = http.get("/api/v1/metadata", params=window).json()["data"]
    assert meta["http_server_requests_total"] == [{"type": "counter", "help": "Requests", "unit": "{request}"}]
    assert meta["http_server_duration_milliseconds"][0]["type"] == "histogram"
    assert meta["system_memory_usage_bytes"][0]["type"] == "gauge"


@pytest.mark.parametrize("q", [
    "sum(", "foo{bar=~\"(\"}", "x @ -100", "a * on(job) group_left b * on(job) group_right c offset",
    "{job=~\".*\"}", "'; DROP TABLE otel_metrics; --", "rate(foo)", "label_replace(up, '~a', 'b', 'c', 'd')",
    "label_replace(up, 'a', 'b', 'c', '(d')", "quantile_over_time(x[5m])", "count_values('~x', up)", "",
])
def test_bad_promql_is_400_bad_data(http, env, q):
    r = http.get("/api/v1/query", params={"query": q, "time": at(env, T)})
    assert r.status_code == 400, (q, r.text)
    assert r.json()["status"] == "error" and r.json()["errorType"] == "bad_data"


@pytest.mark.parametrize("params", [
    {"query": "up", "start": "10", "end": "5", "step": "1"},
    {"query": "up", "start": "0", "end": "86400", "step": "1"},
    {"query": "up", "start": "0", "end": "100", "step": "0"},
    {"query": "up", "start": "yesterday", "end": "100", "step": "1"},
    {"query": "up", "start": "0", "end": "1e30", "step": "1e20"},
    {"query": "up", "start": "0", "end": "100"},
])
def test_bad_range_params_are_400(http, params):
    r = http.get("/api/v1/query_range", params=params)
    assert r.status_code == 400, r.text


def test_sql_metacharacters_in_matchers(http, env):
    for v in ["x' OR 1=1 --", "\\'", "{names:Array(String)}", "a\"b"]:
        q = 'http_server_requests_total{http_method="%s"}' % v.replace("\\", "\\\\").replace('"', '\\"')
        assert instant(http, env, q)["result"] == []
    assert env.client.command(f"SELECT count() FROM {env.data.db}.otel_metrics") == 5 * qd.POINTS


def test_prometheus_api_client(env):
    from prometheus_api_client import PrometheusConnect

    prom = PrometheusConnect(url=env.url, disable_ssl=True)
    assert prom.check_prometheus_connection()
    assert "system_memory_usage_bytes" in prom.all_metrics()
    from datetime import datetime, timezone

    res = prom.custom_query('rate(http_server_requests_total{http_method="GET"}[1m])',
                            params={"time": at(env, T)})
    assert float(res[0]["value"][1]) == pytest.approx(10 / 15, rel=1e-12)
    start = datetime.fromtimestamp(at(env, T), tz=timezone.utc)
    end = datetime.fromtimestamp(at(env, T + 30), tz=timezone.utc)
    res = prom.custom_query_range("system_memory_usage_bytes", start_time=start, end_time=end, step="15")
    assert [v[1] for v in res[0]["values"]] == ["120", "121", "122"]


promtool = shutil.which("promtool")


@pytest.mark.skipif(promtool is None, reason="promtool not installed (make test installs it)")
def test_promtool(env):
    def run(*args):
        p = subprocess.run([promtool, "query", *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    out = run("instant", "--time", str(at(env, T)), env.url, 'sum(rate(http_server_requests_total[1m]))')
    assert out.strip().startswith("{} => 0.8666666666666")
    out = run("instant", "--time", str(at(env, T)), env.url, "system_memory_usage_bytes")
    assert 'state="used"' in out and "=> 120 @[" in out
    out = run("range", "--start", str(at(env, T)), "--end", str(at(env, T + 30)), "--step", "15s", env.url,
              "system_memory_usage_bytes")
    assert "120 @[" in out and "121 @[" in out and "122 @[" in out
    out = run("series", "--match", "http_server_requests_total", "--start", str(at(env, 0)),
              "--end", str(at(env, 600)), env.url)
    assert out.count("http_server_requests_total") == 2
    out = run("labels", "--start", str(at(env, 0)), "--end", str(at(env, 600)), env.url, "http_method")
    assert out.split() == ["GET", "POST"]


def test_increase_with_counter_reset_hand_computed():
    import numpy as np

    from otelingest.query.promql.ranges import range_over_samples as _range_vectorized
    from otelingest.query.promql.values import Samples

    s = Samples({}, np.array([15, 30, 45, 60, 75], dtype=np.int64) * qd.NS,
                np.array([0.0, 10.0, 20.0, 5.0, 15.0]), True)
    lo, hi = np.array([0]), np.array([5])
    starts, ends = np.array([0]), np.array([75 * qd.NS])
    # 0 -> 20, reset to 5 (adds back 20), -> 15: 35; extrapolation stops at the counter's zero point.
    assert _range_vectorized("increase", s, lo, hi, starts, ends)[0] == pytest.approx(35.0)
    assert _range_vectorized("rate", s, lo, hi, starts, ends)[0] == pytest.approx(35.0 / 75)
    assert _range_vectorized("irate", s, lo, hi, starts, ends)[0] == pytest.approx(10.0 / 15)
    assert np.isnan(_range_vectorized("rate", s, np.array([4]), np.array([5]), starts, ends)[0])  # one sample


def test_bucket_quantile_edges():
    import math

    from otelingest.query.promql.quantiles import bucket_quantile

    b = [(10.0, 2.0), (50.0, 6.0), (100.0, 8.0), (math.inf, 10.0)]
    assert bucket_quantile(0.5, b) == pytest.approx(40.0)
    assert bucket_quantile(0.99, b) == 100.0  # in +Inf bucket: the highest finite bound
    assert math.isnan(bucket_quantile(0.5, [(10.0, 1.0)]))  # no +Inf bucket
    assert bucket_quantile(-1, b) == -math.inf and bucket_quantile(2, b) == math.inf


def test_vector_matching_labels(http, env):
    # ignoring(): matched across http_method, and the ignored label leaves the result.
    data = instant(http, env, 'http_server_requests_total{http_method="GET"} - ignoring(http_method) '
                              'http_server_requests_total{http_method="POST"}')
    (s,) = data["result"]
    assert s["value"][1] == "140" and "http_method" not in s["metric"] and "__name__" not in s["metric"]
    # on(): only the listed labels remain.
    data = instant(http, env, "http_server_duration_milliseconds_sum / on(job) http_server_duration_milliseconds_count")
    assert data["result"] == [{"metric": {"job": "shop/frontend"}, "value": [at(env, T), "10"]}]
    # A filtering comparison keeps the left side's labels, name included.
    data = instant(http, env, "http_server_duration_milliseconds_count > http_server_duration_milliseconds_sum / 20")
    assert data["result"][0]["metric"]["__name__"] == "http_server_duration_milliseconds_count"
    # Many-to-many is an execution error, not a guess.
    r = http.get("/api/v1/query", params={"query": "http_server_requests_total + on(job) http_server_requests_total",
                                          "time": at(env, T)})
    assert r.status_code == 422 and r.json()["errorType"] == "execution"


@pytest.mark.parametrize("q", [
    "rate(http_server_requests_total[1000y])", "http_server_requests_total offset 1000y",
    "http_server_requests_total offset -5m", "1e308 * 1e308", "topk(1e20, http_server_requests_total)",
    "sum(rate(http_server_requests_total[1ms]))", 'http_server_requests_total{http_method=~".*.*.*.*.*.*.*.*a"}',
    "histogram_quantile(2, rate(http_server_duration_milliseconds_bucket[1m]))",
])
def test_extreme_but_valid_promql_answers(http, env, q):
    r = http.get("/api/v1/query", params={"query": q, "time": at(env, T)})
    assert r.status_code in (200, 400), (q, r.text)
    assert r.json()["status"] in ("success", "error")
    if r.status_code == 400:
        assert r.json()["errorType"] == "bad_data"


def test_exemplars_link_metrics_to_traces(http, env):
    r = http.get("/api/v1/query_exemplars", params={
        "query": "histogram_quantile(0.9, rate(http_server_duration_milliseconds_bucket[1m]))",
        "start": at(env, 0), "end": at(env, 600)})
    assert r.status_code == 200, r.text
    (series,) = r.json()["data"]
    assert series["seriesLabels"]["__name__"] == "http_server_duration_milliseconds_bucket"
    assert series["seriesLabels"]["le"] == "50"  # 42 ms fell in the (10, 50] bucket
    assert series["exemplars"] == [{
        "labels": {"http_route": "/checkout", "trace_id": qd.TRACE_A.hex(), "span_id": qd.ROOT_SPAN.hex()},
        "value": "42", "timestamp": (env.data.t0 + 300 * qd.NS - 5 * qd.MS) / qd.NS}]
    r = http.get("/api/v1/query_exemplars", params={"query": "system_memory_usage_bytes",
                                                    "start": at(env, 0), "end": at(env, 600)})
    assert r.json()["data"] == []


def test_sort_by_label_and_smoothing(http, env):
    # By the named label (GET < POST), then descending; labels are kept, name included.
    data = instant(http, env, 'sort_by_label(http_server_requests_total, "http_method")')
    assert [s["metric"]["http_method"] for s in data["result"]] == ["GET", "POST"]
    assert data["result"][0]["metric"]["__name__"] == "http_server_requests_total"
    data = instant(http, env, 'sort_by_label_desc(http_server_requests_total, "job", "http_method")')
    assert [s["metric"]["http_method"] for s in data["result"]] == ["POST", "GET"]
    r = http.get("/api/v1/query", params={"query": "sort_by_label(http_server_requests_total, 1)", "time": at(env, T)})
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data"
    # Prometheus 2's holt_winters is the same function as double_exponential_smoothing.
    new = instant(http, env, "double_exponential_smoothing(system_memory_usage_bytes[1m], 0.5, 0.5)")
    old = instant(http, env, "holt_winters(system_memory_usage_bytes[1m], 0.5, 0.5)")
    assert new["result"] == old["result"] and len(new["result"]) == 1
    assert "__name__" not in new["result"][0]["metric"]
    for bad in ("holt_winters(system_memory_usage_bytes[1m], 1, 0.5)",
                "double_exponential_smoothing(system_memory_usage_bytes[1m], 0.5, 0)"):
        r = http.get("/api/v1/query", params={"query": bad, "time": at(env, T)})
        assert r.status_code == 422 and r.json()["errorType"] == "execution", r.text
        assert "factor. Expected: 0 <" in r.json()["error"]


def test_remote_written_series_keep_their_labels_past_the_raw_retention(clickhouse, tmp_path):
    """A remote-written series' labels live in otel_prom_series only (its rollup rows carry none).
    Past the raw retention (30 days) a range is read from the rollups, which are kept 90 and 365
    days: the labels must be kept as long, or the series of a metric answer without them."""
    import time

    import httpx

    start_s = (time.time_ns() // qd.NS // 3600 - 40 * 24) * 3600  # 40 days back, on the hour

    def load(client, db):
        resource = {"otelingest.source": "prometheus.remote_write", "service.name": "node"}
        series, samples = [], []
        for sid, inst in ((1, "a"), (2, "b")):
            series.append([start_s * qd.NS, "up", "node", sid, {**resource, "service.instance.id": inst},
                           {"job": "node", "instance": inst}])
            samples += [["up", "node", sid, (start_s + 15 * i) * qd.NS, float(sid)] for i in range(240)]
        qd.insert_rows(client, db, "otel_prom_series",
                       ["TimeUnix", "MetricName", "ServiceName", "SeriesId", "ResourceAttributes", "Attributes"], series)
        qd.insert_rows(client, db, "otel_prom_samples", ["MetricName", "ServiceName", "SeriesId", "TimeUnix", "Value"],
                       samples)
        client.command(f"OPTIMIZE TABLE {db}.otel_prom_series FINAL")  # the TTL merge the server would run
        return None

    with qd.make_env(clickhouse, tmp_path, load=load) as e, httpx.Client(base_url=e.url, timeout=30) as http:
        assert e.client.query(f"SELECT count() FROM {e.cfg.clickhouse.database}.otel_prom_series").result_rows[0][0] == 2
        r = http.get("/api/v1/query_range", params={"query": "up", "start": start_s + 600, "end": start_s + 3000,
                                                     "step": 600})
        assert r.status_code == 200, r.text
        got = sorted(((s["metric"], s["values"][0][1]) for s in r.json()["data"]["result"]), key=repr)
        assert got == [({"__name__": "up", "instance": "a", "job": "node"}, "1"),
                       ({"__name__": "up", "instance": "b", "job": "node"}, "2")]
