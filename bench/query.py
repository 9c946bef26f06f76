"""Query service latency per query type over a loaded dataset (embedded ClickHouse, real HTTP).

Starts an embedded ClickHouse in a temporary directory, loads a synthetic dataset straight into the
schema's tables (traces across services, logs, gauges/counters/histograms over 12 hours at 15 s),
serves the query app with uvicorn on a free port, and times each query type through HTTP with the
result cache off, reporting p50/p95/p99. Run with ``otelingest bench query [--duration S] [--json PATH]``.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

NS = 1_000_000_000
SERVICES = ["frontend", "checkout", "payments", "inventory", "shipping"]
TRACES = 2_000
SPANS_PER_TRACE = 8
LOGS = 100_000
SERIES_PER_METRIC = 20
SCRAPE_S = 15
HOURS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(client: Any, db: str, now_ns: int) -> dict[str, Any]:
    rnd = random.Random(7)
    start = now_ns - HOURS * 3600 * NS
    # Traces: a root in one service, children in the next ones.
    cols: dict[str, list[Any]] = {k: [] for k in (
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName",
        "ResourceAttributes", "SpanAttributes", "Duration", "StatusCode")}
    trace_ids = []
    for t in range(TRACES):
        tid = rnd.randbytes(16)
        trace_ids.append(tid.hex())
        ts = start + rnd.randrange(HOURS * 3600 * NS)
        parent = b"\0" * 8
        for s in range(SPANS_PER_TRACE):
            sid = rnd.randbytes(8)
            svc = SERVICES[s % len(SERVICES)]
            cols["Timestamp"].append(ts + s * 1_000_000)
            cols["TraceId"].append(tid)
            cols["SpanId"].append(sid)
            cols["ParentSpanId"].append(parent)
            cols["SpanName"].append(f"op-{s % 4}")
            cols["SpanKind"].append("SERVER" if s == 0 else "CLIENT")
            cols["ServiceName"].append(svc)
            cols["ResourceAttributes"].append({"service.name": svc, "host.name": f"h{t % 10}"})
            cols["SpanAttributes"].append({"http.route": f"/r{s}", "user.id": str(t % 100)})
            cols["Duration"].append(rnd.randrange(100_000, 500_000_000))
            cols["StatusCode"].append("ERROR" if rnd.random() < 0.02 else "UNSET")
            parent = sid
    client.insert("otel_traces", list(cols.values()), column_names=list(cols), database=db, column_oriented=True)
    # Logs.
    lcols: dict[str, list[Any]] = {k: [] for k in (
        "Timestamp", "SeverityText", "SeverityNumber", "ServiceName", "Body", "ResourceAttributes")}
    sev = [("INFO", 9), ("WARN", 13), ("ERROR", 17), ("DEBUG", 5)]
    for i in range(LOGS):
        s_text, s_num = sev[i % 4]
        svc = SERVICES[i % len(SERVICES)]
        lcols["Timestamp"].append(start + rnd.randrange(HOURS * 3600 * NS))
        lcols["SeverityText"].append(s_text)
        lcols["SeverityNumber"].append(s_num)
        lcols["ServiceName"].append(svc)
        lcols["Body"].append(f"request {i} user={i % 997} status={200 if i % 13 else 500} took={i % 300}ms")
        lcols["ResourceAttributes"].append({"service.name": svc})
    client.insert("otel_logs", list(lcols.values()), column_names=list(lcols), database=db, column_oriented=True)
    # Metrics: a gauge, a cumulative counter and a cumulative histogram, SERIES_PER_METRIC series each.
    mcols: dict[str, list[Any]] = {k: [] for k in (
        "TimeUnix", "StartTimeUnix", "MetricName", "MetricUnit", "MetricType", "AggregationTemporality",
        "IsMonotonic", "ServiceName", "ResourceAttributes", "Attributes", "Value", "Count", "Sum", "BucketCounts",
        "ExplicitBounds")}
    points = HOURS * 3600 // SCRAPE_S
    bounds = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]
    for series in range(SERIES_PER_METRIC):
        svc = SERVICES[series % len(SERVICES)]
        attrs = {"route": f"/r{series}"}
        res = {"service.name": svc}
        buckets = [0] * (len(bounds) + 1)
        for i in range(points):
            ts = start + i * SCRAPE_S * NS
            for b in range(len(buckets)):
                buckets[b] += rnd.randrange(0, 5)
            for name, unit, mtype, temp, mono, value, count, total, bc, eb in (
                ("system.memory.usage", "By", "Gauge", "Unspecified", False, float(rnd.randrange(1 << 20)), 0, None, [], []),
                ("http.server.requests", "{request}", "Sum", "Cumulative", True, float(i * 10 + series), 0, None, [], []),
                ("http.server.duration", "ms", "Histogram", "Cumulative", False, 0.0, sum(buckets),
                 float(sum(buckets) * 40), list(buckets), bounds),
            ):
                for k, v in zip(mcols, (ts, start, name, unit, mtype, temp, mono, svc, res, attrs, value, count, total,
                                        bc, eb)):
                    mcols[k].append(v)
    client.insert("otel_metrics", list(mcols.values()), column_names=list(mcols), database=db, column_oriented=True)
    return {"start": start, "trace_ids": trace_ids}


def _queries(data: dict[str, Any], now_ns: int) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """query type -> (method, path, params or JSON body)."""
    end_s = now_ns / NS
    hour = {"start": end_s - 3600, "end": end_s}
    day = {"start": data["start"] / NS, "end": end_s}
    rnd = random.Random(3)
    return {
        "prom_instant_rate": ("GET", "/api/v1/query", {"query": "sum by (service_name) (rate(http_server_requests_total[5m]))", "time": end_s}),
        "prom_range_1h_15s": ("GET", "/api/v1/query_range", {"query": "rate(http_server_requests_total[1m])", **hour, "step": "15"}),
        "prom_range_12h_5m": ("GET", "/api/v1/query_range", {"query": "sum(rate(http_server_requests_total[5m]))", **day, "step": "300"}),
        "prom_histogram_quantile_12h": ("GET", "/api/v1/query_range", {"query": "histogram_quantile(0.99, sum by (le) (rate(http_server_duration_milliseconds_bucket[5m])))", **day, "step": "300"}),
        "prom_labels": ("GET", "/api/v1/labels", hour),
        "jaeger_trace_by_id": ("GET", "/api/traces/{id}", {}),
        "jaeger_search": ("GET", "/api/traces", {"service": "checkout", "start": int((now_ns - 12 * 3600 * NS) / 1000), "end": int(now_ns / 1000), "limit": 20}),
        "jaeger_dependencies": ("GET", "/api/dependencies", {"endTs": int(now_ns / 1e6), "lookback": 12 * 3600 * 1000}),
        "loki_line_filter": ("GET", "/loki/api/v1/query_range", {"query": '{service_name="frontend"} |= "status=500"', "start": str(now_ns - 12 * 3600 * NS), "end": str(now_ns), "limit": 100}),
        "loki_count_by_level": ("GET", "/loki/api/v1/query_range", {"query": 'sum by (level) (count_over_time({service_name=~".+"}[5m]))', "start": str(now_ns - 12 * 3600 * NS), "end": str(now_ns), "step": "300s"}),
        "api_logs": ("POST", "/api/v1/logs", {"service_name": "payments", "severity": "ERROR", "search_text": "status=500", "start_time": data["start"], "end_time": now_ns}),
        "api_metrics_p99": ("POST", "/api/v1/metrics", {"metric_name": "system.memory.usage", "aggregation": "p99", "step": "5m", "start_time": data["start"], "end_time": now_ns}),
        "api_services_stats": ("GET", "/api/v1/services/stats", {}),
        "_trace_ids": ("", "", {"ids": [rnd.choice(data["trace_ids"]) for _ in range(1000)]}),
    }


@contextlib.contextmanager
def _environment() -> Iterator[tuple[str, Any, str]]:
    import uvicorn

    from otelingest import config as config_mod, schema
    from otelingest.clickhouse.client import connect
    from otelingest.clickhouse.embedded import EmbeddedClickHouse
    from otelingest.config import ClickHouseConfig
    from otelingest.query.app import create_app

    with tempfile.TemporaryDirectory(prefix="otelingest-bench-query-") as tmp:
        ch = EmbeddedClickHouse(Path(tmp) / "ch", http_port=_free_port(), tcp_port=_free_port())
        ch.start()
        try:
            ch.wait_ready(timeout=120)
            cfg = config_mod.load(None, overrides={
                "data_dir": tmp, "clickhouse": {"url": ch.url, "database": "bench", "pool_min": 2, "pool_max": 8},
                "query": {"port": _free_port(), "cache_ttl_s": 0},
            }, environ={})
            schema.migrate(cfg)
            client = connect(ClickHouseConfig(url=ch.url), with_database=False)
            server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=cfg.query.port,
                                                   log_level="warning", loop="uvloop"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            try:
                yield f"http://127.0.0.1:{cfg.query.port}", client, "bench"
            finally:
                server.should_exit = True
                thread.join(timeout=10)
                client.close()
        finally:
            ch.stop()


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main(args: Any) -> int:
    duration = float(getattr(args, "duration", 3.0))
    results: dict[str, dict[str, float]] = {}
    with _environment() as (url, client, db):
        now_ns = time.time_ns()
        t0 = time.perf_counter()
        data = _load(client, db, now_ns)
        print(f"loaded {TRACES * SPANS_PER_TRACE} spans, {LOGS} logs, "
              f"{3 * SERIES_PER_METRIC * HOURS * 3600 // SCRAPE_S} metric points in {time.perf_counter() - t0:.1f}s")
        queries = _queries(data, now_ns)
        ids = queries.pop("_trace_ids")[2]["ids"]
        with httpx.Client(base_url=url, timeout=60) as http:
            for name, (method, path, params) in queries.items():
                lat: list[float] = []
                deadline = time.perf_counter() + duration
                i = 0
                while time.perf_counter() < deadline or len(lat) < 5:
                    p = path.replace("{id}", ids[i % len(ids)])
                    i += 1
                    t = time.perf_counter()
                    r = http.post(p, json=params) if method == "POST" else http.get(p, params=params)
                    lat.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        raise SystemExit(f"{name}: HTTP {r.status_code}: {r.text[:300]}")
                results[name] = {
                    "n": len(lat), "p50_ms": 1000 * statistics.median(lat),
                    "p95_ms": 1000 * _percentile(lat, 0.95), "p99_ms": 1000 * _percentile(lat, 0.99),
                }
                row = results[name]
                print(f"{name:32s} n={row['n']:5d}  p50={row['p50_ms']:8.1f} ms  p95={row['p95_ms']:8.1f} ms  "
                      f"p99={row['p99_ms']:8.1f} ms")
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
