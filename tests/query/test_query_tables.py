"""Table selection (raw vs rollups), the result cache, limits and cancellation."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from prometheus_client import REGISTRY

import querydata as qd
from otelingest.config import QueryConfig, RetentionConfig
from otelingest.query.storage.cache import ResultCache
from otelingest.query.errors import Unavailable
from otelingest.query.storage.pool import ClientPool
from otelingest.query.storage.store import Store
from otelingest.query.storage.tables import choose_metrics_table

DAY = 86400
NOW = 1_800_000_000.0


def ns(seconds: float) -> int:
    return int(seconds * qd.NS)


@pytest.mark.parametrize("age_days,span_days,step_s,table", [
    (1, 1, 15, "otel_metrics"),
    (29, 1, 60, "otel_metrics"),
    (31, 1, 60, "otel_metrics_5m"),
    (89, 1, 15, "otel_metrics_5m"),
    (91, 1, 15, "otel_metrics_1h"),
    (365, 365, 86400, "otel_metrics_1h"),
    (2, 2, 300, "otel_metrics_5m"),  # coarse steps over long ranges
    (10, 10, 3600, "otel_metrics_1h"),
    (0.5, 0.5, 300, "otel_metrics"),  # short range: raw even with a coarse step
])
def test_choose_metrics_table(age_days, span_days, step_s, table):
    start = NOW - age_days * DAY
    assert choose_metrics_table(ns(start), ns(start + span_days * DAY), step_s, now_s=NOW) == table


@pytest.mark.parametrize("age_days,metrics,metrics_5m,table", [
    (6, 7, 90, "otel_metrics"),
    (8, 7, 90, "otel_metrics_5m"),  # past the raw table's retention
    (31, 60, 90, "otel_metrics"),  # raw kept longer than the default 30 days
    (15, 7, 14, "otel_metrics_1h"),  # past the 5-minute rollup's too
])
def test_choose_metrics_table_follows_retention(age_days, metrics, metrics_5m, table):
    start = NOW - age_days * DAY
    retention = RetentionConfig(metrics=metrics, metrics_5m=metrics_5m)
    assert choose_metrics_table(ns(start), ns(start + 3600), 60, retention, now_s=NOW) == table


def test_query_past_short_raw_retention_reads_the_rollup(clickhouse, tmp_path):
    """retention.metrics = 7: points ten days old are gone from the raw table (its TTL, applied by a
    merge) but kept in the rollups, and a Prometheus query over them is answered from the rollup."""
    with qd.make_env(clickhouse, tmp_path, retention={"metrics": 7}, cache_ttl_s=0) as e:
        hour = 3600 * qd.NS
        base = (time.time_ns() // hour) * hour - 10 * 24 * hour
        rows = [qd.metric_row(base + i * 600 * qd.NS, base, "short.gauge", "1", "Gauge", "Unspecified", False,
                              {"k": "v"}, value=20.0 + i) for i in range(6)]
        qd.insert_rows(e.client, e.data.db, "otel_metrics", qd.METRIC_COLUMNS, rows)
        e.client.command(f"OPTIMIZE TABLE {e.data.db}.otel_metrics FINAL")
        assert e.client.command(
            f"SELECT count() FROM {e.data.db}.otel_metrics WHERE MetricName = 'short.gauge'") == 0
        with httpx.Client(base_url=e.url, timeout=30) as http:
            r = http.get("/api/v1/query_range", params={
                "query": "max_over_time(short_gauge_ratio[10m])", "start": base / qd.NS,
                "end": (base + hour) / qd.NS, "step": "5m"})
            assert r.status_code == 200, r.text
            (series,) = r.json()["data"]["result"]
            assert max(float(v[1]) for v in series["values"]) == 25.0
            r = http.post("/api/v1/metrics", json={"metric_name": "short.gauge", "aggregation": "max", "step": "10m",
                                                   "start_time": base, "end_time": base + hour})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["table"] == "otel_metrics_5m"
            assert [p[1] for p in body["series"][0]["points"]] == [20.0, 21.0, 22.0, 23.0, 24.0, 25.0]


def test_cache_ttl_bounded_for_recent_windows():
    clock = [NOW]
    cache = ResultCache(QueryConfig(cache_ttl_s=900, recent_window_s=300, recent_cache_ttl_s=10), clock=lambda: clock[0])
    assert cache.ttl_for(ns(NOW - 3600)) == 900
    assert cache.ttl_for(ns(NOW - 60)) == 10
    assert cache.ttl_for(None) == 10
    cache.put("k", 1, 10)
    assert cache.get("k") == (True, 1)
    clock[0] += 11
    assert cache.get("k") == (False, None)


def test_cache_evicts_least_recently_used():
    cache = ResultCache(QueryConfig(cache_max_entries=2), clock=lambda: NOW)
    for k in ("a", "b"):
        cache.put(k, k, 100)
    cache.get("a")
    cache.put("c", "c", 100)
    assert cache.get("b") == (False, None)
    assert cache.get("a") == (True, "a") and cache.get("c") == (True, "c")


@pytest.fixture(scope="module")
def old_env(clickhouse, tmp_path_factory):
    """Gauge points 200 and 60 days old plus recent ones; the raw table is then emptied, so only the
    rollups (filled by their materialized views at insert time) still hold the old points."""
    with qd.make_env(clickhouse, tmp_path_factory.mktemp("q"), cache_ttl_s=900, recent_cache_ttl_s=0) as e:
        hour = 3600 * qd.NS
        now_hour = (time.time_ns() // hour) * hour
        old = {"y": now_hour - 200 * 24 * hour, "q": now_hour - 60 * 24 * hour}
        rows = []
        for key, base in old.items():
            for i in range(4):  # 4 points, 10 minutes apart, values 10..13
                rows.append(qd.metric_row(base + i * 600 * qd.NS, base, "old.gauge", "1", "Gauge", "Unspecified",
                                          False, {"age": key}, value=10.0 + i))
        for i in range(18):  # a counter over three hours, 10 per 10 minutes
            ts = old["y"] + i * 600 * qd.NS
            rows.append(qd.metric_row(ts, old["y"], "old.counter", "", "Sum", "Cumulative", True, {},
                                      value=10.0 * i))
        qd.insert_rows(e.client, e.data.db, "otel_metrics", qd.METRIC_COLUMNS, rows)
        e.client.command(f"TRUNCATE TABLE {e.data.db}.otel_metrics")
        e.old = old
        yield e


def test_one_year_query_reads_rollups(old_env):
    e = old_env
    base = e.old["y"]
    with httpx.Client(base_url=e.url, timeout=30) as http:
        # Instant query just after the hour: the hourly rollup's last value (13) stamped at the hour's end.
        r = http.get("/api/v1/query", params={"query": "old_gauge_ratio", "time": (base + 3600 * qd.NS) / qd.NS + 60})
        assert r.status_code == 200, r.text
        assert [(s["metric"]["age"], s["value"][1]) for s in r.json()["data"]["result"]] == [("y", "13")]
        # A one-year range query at a one-day step: only rollups can answer (raw rows are gone).
        end = time.time_ns()
        r = http.get("/api/v1/query_range", params={
            "query": "max_over_time(old_gauge_ratio[1d])", "start": (end - 365 * DAY * qd.NS) / qd.NS,
            "end": end / qd.NS, "step": "1d"})
        assert r.status_code == 200, r.text
        got = {s["metric"]["age"]: {v[1] for v in s["values"]} for s in r.json()["data"]["result"]}
        assert got == {"y": {"13"}, "q": {"13"}}
        # The design's API over 200 days: aggregated from otel_metrics_1h.
        r = http.post("/api/v1/metrics", json={"metric_name": "old.gauge", "aggregation": "avg", "step": "1h",
                                               "start_time": base - 3600 * qd.NS, "end_time": base + 7200 * qd.NS})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["table"] == "otel_metrics_1h"
        assert body["series"][0]["points"] == [[base, 11.5]]


def test_rate_over_hourly_rollup(old_env):
    # Hourly last values 50, 110, 170 stamped at each hour's end. At the third hour's end a [5m] window
    # is widened to two buckets: samples 110 and 170 an hour apart, extrapolated to the 2 h window:
    # 60 * 7200/3600 / 7200 s = 1/60 per second.
    e = old_env
    end_of_third_hour = (e.old["y"] + 3 * 3600 * qd.NS) / qd.NS
    with httpx.Client(base_url=e.url, timeout=30) as http:
        r = http.get("/api/v1/query", params={"query": "rate(old_counter_total[5m])", "time": end_of_third_hour})
        assert r.status_code == 200, r.text
        (s,) = r.json()["data"]["result"]
        assert float(s["value"][1]) == pytest.approx(1 / 60, rel=1e-12)


def test_sixty_day_old_query_reads_5m_rollup(old_env):
    e = old_env
    base = e.old["q"]
    with httpx.Client(base_url=e.url, timeout=30) as http:
        r = http.post("/api/v1/metrics", json={"metric_name": "old.gauge", "aggregation": "max", "step": "10m",
                                               "start_time": base, "end_time": base + 3600 * qd.NS})
        body = r.json()
        assert body["table"] == "otel_metrics_5m"
        assert [p[1] for p in body["series"][0]["points"]] == [10.0, 11.0, 12.0, 13.0]
        r = http.post("/api/v1/metrics", json={"metric_name": "old.gauge", "aggregation": "p50", "step": "1h",
                                               "start_time": base, "end_time": base + 3599 * qd.NS})
        assert r.json()["series"][0]["points"][0][1] == pytest.approx(11.5, abs=1.0)  # t-digest estimate


def _metric(name):
    return REGISTRY.get_sample_value(name) or 0.0


def test_cache_hits_for_closed_windows_only(old_env):
    e = old_env
    body = {"service_name": "frontend", "start_time": e.data.t0, "end_time": e.data.t0 + 3600 * qd.NS}
    with httpx.Client(base_url=e.url, timeout=30) as http:
        hits, misses = _metric("otel_query_cache_hits_total"), _metric("otel_query_cache_misses_total")
        first = http.post("/api/v1/logs", json=body).json()
        second = http.post("/api/v1/logs", json=body).json()
        assert first == second
        assert _metric("otel_query_cache_misses_total") == misses + 1
        assert _metric("otel_query_cache_hits_total") == hits + 1
        # A window reaching now is not served from the cache (recent_cache_ttl_s = 0 here): new lines show.
        recent = {"service_name": "late", "start_time": time.time_ns() - 600 * qd.NS}
        assert http.post("/api/v1/logs", json=recent).json()["logs"] == []
        now = time.time_ns()
        qd.insert_rows(e.client, e.data.db, "otel_logs", qd.LOG_COLUMNS, [
            [now - qd.NS, now, qd.ZERO_TRACE, qd.ZERO_SPAN, 0, "INFO", 9, "late", "just arrived", {}, "s", {}]])
        assert [x["body"] for x in http.post("/api/v1/logs", json=recent).json()["logs"]] == ["just arrived"]


def test_result_row_limit_is_422(clickhouse, tmp_path):
    with qd.make_env(clickhouse, tmp_path, max_rows=10) as e:
        with httpx.Client(base_url=e.url, timeout=30) as http:
            # Raw samples of a range selector: 2 series x 41 points > 10 rows.
            r = http.get("/api/v1/query", params={"query": "http_server_requests_total[10m]",
                                                  "time": (e.data.t0 + 600 * qd.NS) / qd.NS})
            assert r.status_code == 422, r.text
            assert r.json()["errorType"] == "execution"
            r = http.post("/api/v1/logs", json={"limit": 11})
            assert r.status_code == 200  # limit <= max_limit: fine; 0 rows recent


class _GoneRequest:
    """A request whose client disconnects after a moment."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    async def is_disconnected(self) -> bool:
        return time.monotonic() - self.t0 > 0.3


def test_client_disconnect_kills_the_query(migrated, clickhouse, ch_client):
    pool = ClientPool(migrated.clickhouse, read_only=True)
    store = Store(pool, QueryConfig(timeout_s=60)).for_tenant("default")
    slow = "SELECT count() FROM numbers_mt(1000000000000) WHERE sipHash64(number) = 42"

    async def run():
        with pytest.raises(Unavailable, match="disconnected"):
            await store.rows(slow, {}, request=_GoneRequest())

    try:
        anyio.run(run)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            running = ch_client.command(
                "SELECT count() FROM system.processes WHERE query LIKE '%sipHash64(number) = 42%' "
                "AND query NOT LIKE '%system.processes%'")
            if running == 0:
                break
            time.sleep(0.1)
        assert running == 0
    finally:
        pool.close()


PUSHDOWN_QUERIES = [
    "rate(reset_counter_total[{r}])", "increase(reset_counter_total[{r}])",
    "sum by (a) (rate(reset_counter_total[{r}]))", "rate(http_server_requests_total[{r}])",
    "rate(jobs_processed_total[{r}])", "delta(system_memory_usage_bytes[{r}])",
    "avg_over_time(system_memory_usage_bytes[{r}])", "max_over_time(system_memory_usage_bytes[{r}])",
    "min_over_time(system_memory_usage_bytes[{r}])", "sum_over_time(system_memory_usage_bytes[{r}])",
    "count_over_time(reset_counter_total[{r}])", "last_over_time(reset_counter_total[{r}])",
    "histogram_quantile(0.9, rate(http_server_duration_milliseconds_bucket[{r}]))",
    "rate(http_server_duration_milliseconds_count[{r}])", "system_memory_usage_bytes", "reset_counter_total",
    "reset_counter_total offset 2m", "rate(reset_counter_total[{r}] offset 1m)",
]


def test_bucket_pushdown_equals_raw_evaluation(old_env, monkeypatch):
    """Pre-aggregating per bucket in ClickHouse gives exactly what evaluating raw samples gives."""
    import numpy as np

    from otelingest.query.promql import evaluator, parse, source

    e = old_env
    hour = 3600 * qd.NS
    t0 = (time.time_ns() // hour) * hour - hour
    qd.load_metrics(e.client, e.data.db, t0)
    rows = []
    for i in range(qd.POINTS):  # a counter that resets at i=20, two series
        for a, k in (("1", 7.0), ("2", 2.0)):
            v = k * i if i < 20 else k * (i - 20) + 1
            rows.append(qd.metric_row(t0 + i * qd.STEP_S * qd.NS, t0, "reset.counter", "", "Sum", "Cumulative",
                                      True, {"a": a}, value=v))
    qd.insert_rows(e.client, e.data.db, "otel_metrics", qd.METRIC_COLUMNS, rows)
    pool = ClientPool(e.cfg.clickhouse)
    store = Store(pool, e.cfg.query).for_tenant("default")

    raw_reads = []
    real_samples = source.Source.samples

    async def counting_samples(self, *a, **kw):
        raw_reads.append(self.use_buckets)
        return await real_samples(self, *a, **kw)

    monkeypatch.setattr(source.Source, "samples", counting_samples)

    async def both(q: str, start: int, end: int, step: int):
        expr = parse.parse(q)
        raw_reads.clear()
        fast, steps, _ = await evaluator.evaluate(store, expr, start, end, step)
        if step:  # a range query at a 60 s step never reads raw samples
            assert raw_reads == [], q
        slow, _, _ = await evaluator.evaluate(store, expr, start, end, step, use_buckets=False)
        return fast, slow

    try:
        checked = 0
        for r in ("1m", "2m", "3m"):
            for q in PUSHDOWN_QUERIES:
                q = q.format(r=r)
                for start, end, step in ((t0 + 120 * qd.NS, t0 + 660 * qd.NS, 60 * qd.NS),
                                         (t0 + 300 * qd.NS, t0 + 300 * qd.NS, 0)):
                    fast, slow = anyio.run(both, q, start, end, step)
                    f = {tuple(sorted(lab.items())): v for lab, v in fast.series}
                    s = {tuple(sorted(lab.items())): v for lab, v in slow.series}
                    assert f.keys() == s.keys(), q
                    for k in f:
                        assert np.allclose(f[k], s[k], rtol=1e-12, equal_nan=True), (q, k, f[k], s[k])
                        checked += int(np.sum(~np.isnan(s[k])))
        assert checked > 500
    finally:
        pool.close()


def test_hostile_regex_runs_in_linear_time(old_env):
    """`(a+)+b` against "aaaa…a!" backtracks exponentially in Python's re; ClickHouse's RE2 does not,
    and that is where label regexes run. (A regression would hang until the test timeout.)"""
    e = old_env
    now = time.time_ns()
    qd.insert_rows(e.client, e.data.db, "otel_metrics", qd.METRIC_COLUMNS, [
        qd.metric_row(now - 60 * qd.NS, now - 120 * qd.NS, "evil.gauge", "", "Gauge", "Unspecified", False,
                      {"path": "a" * 64 + "!"}, value=1.0)])
    with httpx.Client(base_url=e.url, timeout=60) as http:
        for q, expected in (('evil_gauge{path=~"(a+)+b"}', 0), ('evil_gauge{path!~"(a+)+b"}', 1),
                            ('evil_gauge{path=~"(a+)+!"}', 1), ('{__name__=~"(e+)+vil_gauge"}', 1)):
            r = http.get("/api/v1/query", params={"query": q, "time": now / qd.NS})
            assert r.status_code == 200, r.text
            assert len(r.json()["data"]["result"]) == expected, q
