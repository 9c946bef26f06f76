"""Query service latency per query type over a loaded dataset (embedded ClickHouse, real HTTP).

Starts an embedded ClickHouse in a temporary directory, loads 24 hours of data (by default 10 million
spans, 10 million log records and 5 million metric points; ``--scale`` loads a fraction) through the
real hot path: the load generator's templates (otelingest/bench/payloads.py) patched with fresh ids and
timestamps spread evenly over the 24 hours, decoded by ``_native.decode_*`` into Native blocks and
inserted with clickhouse-connect ``raw_insert`` (views fill the lookups and rollups as in production).
Then runs the service-dependency rollup's backfill to completion and prints how long it took: that
is the steady state the query process's rollup job reaches in production, where the hours of a
window that went final are read from ``otel_service_dependencies_1h`` and only the rest is joined
over raw spans (the app's own job is off here, so that it does not race the bench's backfill).
Then serves the query app with uvicorn on a free port and times each query type through HTTP with
the result cache off: the design's API, Grafana-style Prometheus ``query_range`` over 24 h, Loki,
Jaeger search and trace by id, and the Tempo API (TraceQL search, trace by id, TraceQL metrics).
Reports p50/p95/p99, and which query types reach 500 ms at p95 (the design's target).
``--with-ingest RATE`` times the same queries while ``otelingest serve`` stores RATE spans/s plus RATE/2
log records/s and RATE/2 metric points/s from the load generator into the same ClickHouse
(:class:`_Ingest`), and reports the ingest achieved meanwhile (stored per second, CPU, loss).
Run with ``otelingest bench query [--duration S] [--scale F] [--seed N] [--json PATH] [--with-ingest RATE]``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import httpx

from . import loadgen
from .payloads import SEED
from .ports import free_port, free_ports

NS = 1_000_000_000
HOURS = 24
FULL = {"traces": 10_000_000, "logs": 10_000_000, "metrics": 5_000_000}
# The generator's delta histogram, copied as a cumulative one after loading (not in the counts above).
CUMULATIVE_HISTOGRAM = "http.server.latency"
REQUESTS_PER_INSERT = 40  # 20,000 rows per INSERT, about a minute of the 24 hours each
TRACE_IDS = 1000
# Distinct requests per signal: each metrics template has its own resource (host), so a series gets a
# point every TEMPLATES requests.
TEMPLATES = 16


def _load_signal(client: Any, db: str, signal: str, items: int, start: int, seed: int, trace_ids: list[str]) -> int:
    """Send ``items`` of one signal through decode_* -> Native -> raw_insert, timestamps spread over HOURS."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from otelingest import _native

    decode = getattr(_native, f"decode_{signal}")
    templates = loadgen.build_templates(signal, n=TEMPLATES, seed=seed)
    patcher = loadgen.Patcher(0x7000 + len(signal), seed)
    requests = max(1, items // loadgen.ITEMS_PER_REQUEST)
    every = max(1, requests // TRACE_IDS)
    stored = 0
    pending: dict[str, list[bytes]] = {}

    def insert(table: str, blocks: list[bytes]) -> None:
        client.raw_insert(f"{db}.{table}", insert_block=b"".join(blocks), fmt="Native")

    with ThreadPoolExecutor(2) as pool:
        futures = []
        for k in range(requests):
            body = patcher.render(templates[k % len(templates)], now_ns=start + k * HOURS * 3600 * NS // requests)
            if signal == "traces" and k % every == 0:
                req = ExportTraceServiceRequest.FromString(body)
                trace_ids.append(req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex())
            d = decode(body)
            stored += d.items
            for table, _, block in d.blocks:
                pending.setdefault(table, []).append(block)
            if k % REQUESTS_PER_INSERT == REQUESTS_PER_INSERT - 1 or k == requests - 1:
                futures += [pool.submit(insert, t, b) for t, b in pending.items()]
                pending = {}
                # At most a few inserts in flight: memory stays bounded, ClickHouse keeps up.
                while len([f for f in futures if not f.done()]) > 2:
                    time.sleep(0.005)
        for f in futures:
            f.result()
    return stored


def _load(client: Any, db: str, now_ns: int, scale: float, seed: int) -> dict[str, Any]:
    start = now_ns - HOURS * 3600 * NS
    trace_ids: list[str] = []
    counts = {}
    for i, (signal, n) in enumerate(FULL.items()):
        t0 = time.perf_counter()
        counts[signal] = _load_signal(client, db, signal, int(n * scale), start, seed + i, trace_ids)
        print(f"loaded {counts[signal]:,} {signal} over {HOURS} h in {time.perf_counter() - t0:.1f} s", flush=True)
    scrapes = max(1, counts["metrics"] // loadgen.ITEMS_PER_REQUEST)
    return {"start": start, "trace_ids": trace_ids, "counts": counts, "scrape_s": HOURS * 3600 * TEMPLATES // scrapes}


def _prom_names(http: httpx.Client) -> dict[str, str]:
    """The Prometheus names the query service gives the generator's metrics (found, not assumed)."""
    names = http.get("/api/v1/label/__name__/values").json()["data"]
    # The cumulative copy is absent when --only skipped building it (its query is skipped too).
    pick = lambda *parts: next((n for n in names if all(p in n for p in parts)), "absent")  # noqa: E731
    return {"counter": pick("http_server_requests"), "bucket": pick("http_server_duration", "_bucket"),
            "gauge": pick("process_cpu_utilization"), "cumulative_bucket": pick("http_server_latency", "_bucket")}


def _queries(data: dict[str, Any], now_ns: int, prom: dict[str, str]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """query type -> (method, path, params or JSON body)."""
    end_s = now_ns / NS
    hour = {"start": end_s - 3600, "end": end_s}
    day = {"start": data["start"] / NS, "end": end_s}
    day_ns = {"start": str(data["start"]), "end": str(now_ns)}
    c, b, g = prom["counter"], prom["bucket"], prom["gauge"]
    # rate() needs two points of a series in its window: at a small --scale they are hours apart.
    w = f"{max(300, 3 * data['scrape_s'])}s"
    w1 = f"{max(60, 3 * data['scrape_s'])}s"
    return {
        "prom_instant_rate": ("GET", "/api/v1/query", {"query": f"sum by (service_name) (rate({c}[{w}]))", "time": end_s}),
        "prom_range_1h_15s": ("GET", "/api/v1/query_range", {"query": f"sum by (http_route) (rate({c}{{instance=\"7\"}}[{w1}]))", **hour, "step": "15"}),
        "prom_range_24h_5m": ("GET", "/api/v1/query_range", {"query": f"sum by (http_route) (rate({c}[{w}]))", **day, "step": "300"}),
        "prom_range_24h_1m": ("GET", "/api/v1/query_range", {"query": f"sum by (http_route) (rate({c}[{w}]))", **day, "step": "60"}),
        "prom_gauge_avg_24h_1m": ("GET", "/api/v1/query_range", {"query": f"avg({g})", **day, "step": "60"}),
        "prom_histogram_quantile_24h": ("GET", "/api/v1/query_range", {"query": f"histogram_quantile(0.99, sum by (le) (rate({b}[{w}])))", **day, "step": "300"}),
        # The same at the step Grafana picks for a wide 24 h panel: raw points, every histogram bound.
        "prom_histogram_quantile_24h_1m": ("GET", "/api/v1/query_range", {"query": f"histogram_quantile(0.99, sum by (le) (rate({b}[{w}])))", **day, "step": "60"}),
        # The same histogram exported cumulative, the SDKs' default: counter resets and zero points per bound.
        "prom_histogram_quantile_24h_1m_cumulative": ("GET", "/api/v1/query_range", {"query": f"histogram_quantile(0.99, sum by (le) (rate({prom['cumulative_bucket']}[{w}])))", **day, "step": "60"}),
        "prom_labels": ("GET", "/api/v1/labels", hour),
        "jaeger_trace_by_id": ("GET", "/api/traces/{id}", {}),
        "jaeger_search_24h": ("GET", "/api/traces", {"service": "checkout", "start": int(data["start"] / 1000), "end": int(now_ns / 1000), "limit": 20}),
        "jaeger_search_1h_tags": ("GET", "/api/traces", {"service": "cart", "tags": json.dumps({"http.status_code": "500"}), "start": int((now_ns - 3600 * NS) / 1000), "end": int(now_ns / 1000), "limit": 20}),
        "jaeger_dependencies": ("GET", "/api/dependencies", {"endTs": int(now_ns / 1e6), "lookback": HOURS * 3600 * 1000}),
        "loki_line_filter_24h": ("GET", "/loki/api/v1/query_range", {"query": '{service_name="checkout"} |= "payment authorized"', **day_ns, "limit": 100}),
        "loki_count_by_level_24h": ("GET", "/loki/api/v1/query_range", {"query": 'sum by (level) (count_over_time({service_name=~".+"}[5m]))', **day_ns, "step": "300s"}),
        "api_traces_24h": ("POST", "/api/v1/traces", {"service_name": "payment", "min_duration": "40ms", "start_time": data["start"], "end_time": now_ns, "limit": 20}),
        "api_trace_by_id": ("POST", "/api/v1/traces", {"trace_id": "{id}"}),
        "api_logs_24h": ("POST", "/api/v1/logs", {"service_name": "cart", "severity": "ERROR", "search_text": "slow query", "start_time": data["start"], "end_time": now_ns}),
        "api_metrics_p99_24h": ("POST", "/api/v1/metrics", {"metric_name": "process.cpu.utilization", "aggregation": "p99", "step": "5m", "start_time": data["start"], "end_time": now_ns}),
        "api_metrics_rate_24h": ("POST", "/api/v1/metrics", {"metric_name": "http.server.requests", "aggregation": "rate", "step": "5m", "start_time": data["start"], "end_time": now_ns}),
        "api_services_stats": ("GET", "/api/v1/services/stats", {}),
        # Tempo API (Grafana's Tempo datasource): TraceQL search with attribute filters over 24 h,
        # a structural query limited to 20 traces, trace by id, TraceQL metrics over 7 days (the
        # hourly span rollup) and over 24 h from raw spans, tag autocompletion.
        "tempo_search_24h_attrs": ("GET", "/api/search", {"q": '{ resource.service.name = "checkout" && span.http.status_code >= 500 && span.http.route = "/api/cart" }', "start": int(data["start"] / NS), "end": int(end_s), "limit": 20}),
        "tempo_search_24h_structural": ("GET", "/api/search", {"q": '{ kind = server && resource.service.name = "checkout" } > { kind = client && span.http.status_code = 404 }', "start": int(data["start"] / NS), "end": int(end_s), "limit": 20}),
        "tempo_trace_by_id": ("GET", "/api/v2/traces/{id}", {}),
        "tempo_metrics_rate_7d": ("GET", "/api/metrics/query_range", {"q": "{ } | rate() by (resource.service.name)", "start": int(end_s - 7 * 86400), "end": int(end_s), "step": "10m"}),
        "tempo_metrics_raw_24h": ("GET", "/api/metrics/query_range", {"q": "{ span.http.status_code >= 500 } | rate() by (resource.service.name)", **{k: int(v) for k, v in day.items()}, "step": "5m"}),
        "tempo_tags_v2": ("GET", "/api/v2/search/tags", {k: int(v) for k, v in hour.items()}),
        "tempo_tag_values_v2": ("GET", "/api/v2/search/tag/span.http.route/values", {k: int(v) for k, v in hour.items()}),
    }


class EmbeddedServer(NamedTuple):
    url: str
    pid: int | None


SERVE_QUERY_APP = """
import uvicorn
from otelingest import config
from otelingest.query.app import create_app
cfg = config.load(None)
uvicorn.run(create_app(cfg), host="127.0.0.1", port=cfg.query.port, log_level="warning", loop="uvloop")
"""


@contextlib.contextmanager
def _data_dir(keep: str | None) -> Iterator[str]:
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="otelingest-bench-query-") as tmp:
        yield tmp


def _wait_for_mutations(client: Any, db: str, timeout_s: float = 600) -> None:
    """Wait for a migration's background mutations on a reused dataset, so they are not timed."""
    from otelingest.clickhouse import sqlfiles

    deadline = time.monotonic() + timeout_s
    while client.query(sqlfiles.query("bench/pending_mutations"), parameters={"db": db}).result_rows[0][0]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"mutations in {db} still running after {timeout_s:.0f} s")
        time.sleep(0.5)


@contextlib.contextmanager
def _environment(keep: str | None = None) -> Iterator[tuple[str, Any, str, Path, EmbeddedServer]]:
    """Embedded ClickHouse, the schema, and the query app in its own process (uvicorn), as in production.

    Yields the query app's URL, a ClickHouse client, the database, the data dir and ClickHouse's URL
    and pid."""
    import subprocess
    import sys

    from otelingest import config as config_mod
    from otelingest.clickhouse import migrations
    from otelingest.clickhouse.client import connect
    from otelingest.clickhouse.embedded import EmbeddedClickHouse
    from otelingest.config import ClickHouseConfig

    with _data_dir(keep) as tmp:
        http_port, tcp_port = free_ports(2)
        ch = EmbeddedClickHouse(Path(tmp) / "ch", http_port=http_port, tcp_port=tcp_port)
        ch.start()
        try:
            ch.wait_ready(timeout=120)
            port = free_port()
            env = {"OTELINGEST_DATA_DIR": tmp, "OTELINGEST_CLICKHOUSE_URL": ch.url,
                   "OTELINGEST_CLICKHOUSE_DATABASE": "bench", "OTELINGEST_CLICKHOUSE_POOL_MIN": "2",
                   "OTELINGEST_CLICKHOUSE_POOL_MAX": "8", "OTELINGEST_QUERY_PORT": str(port),
                   "OTELINGEST_QUERY_CACHE_TTL_S": "0", "OTELINGEST_QUERY_DEPENDENCIES_ROLLUP_INTERVAL_S": "0"}
            cfg = config_mod.load(None, environ=env)
            migrations.migrate(cfg)
            client = connect(ClickHouseConfig(url=ch.url), with_database=False)
            _wait_for_mutations(client, "bench")
            app = subprocess.Popen([sys.executable, "-c", SERVE_QUERY_APP], env={**os.environ, **env})
            try:
                deadline = time.monotonic() + 60
                while True:
                    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                    if app.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"query app did not start (exit {app.poll()})")
                    time.sleep(0.1)
                yield f"http://127.0.0.1:{port}", client, "bench", Path(tmp), EmbeddedServer(ch.url, ch.pid)
            finally:
                app.terminate()
                app.wait(10)
                client.close()
        finally:
            ch.stop()


def _cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by these processes and their children (those alive now)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
        except psutil.Error:
            continue
    return total


class _Ingest:
    """``--with-ingest RATE``: ``otelingest serve`` writing into the benchmark's database while the
    queries run, fed by the load generator (loadgen) open loop with RATE spans/s plus RATE/2 log
    records/s and RATE/2 metric points/s (MIX: every request carries 500 items, so requests go
    traces, traces, logs, metrics), as a production node is. The daemon runs its own defaults
    (writer batch timeout included), not the ingest bench's short timeout.

    Sends from ``warmup_s`` before the first query until the last one is done, then stops the load
    and the daemon (which stores what its rings hold). The report: rows stored per second per signal
    while the queries ran (ClickHouse's counts at the first and after the last query), CPU of the
    daemon and of ClickHouse over that phase, the load average, and the loss: what the daemon
    acknowledged minus what the tables gained from the first send to the daemon's stop."""

    MIX = {"traces": 2, "logs": 1, "metrics": 1}
    TABLES = {"traces": "otel_traces", "logs": "otel_logs", "metrics": "otel_metrics"}

    def __init__(self, client: Any, ch_url: str, db: str, tmp: Path, rate: float, *, warmup_s: float = 10.0,
                 clickhouse_pid: int | None = None, max_seconds: float = 3600.0) -> None:
        self.client, self.ch_url, self.db, self.dir = client, ch_url, db, tmp / "ingest"
        self.rate, self.warmup_s, self.max_seconds, self.ch_pid = rate, warmup_s, max_seconds, clickhouse_pid
        self.report: dict[str, Any] = {"spans_per_s_target": rate, "logs_per_s_target": rate / 2,
                                       "points_per_s_target": rate / 2}
        self.result: loadgen.LoadResult | None = None

    def _counts(self) -> dict[str, int]:
        from otelingest.clickhouse import sqlfiles

        sql = sqlfiles.query("bench/table_rows")
        return {t: int(self.client.query(sql, parameters={"db": self.db, "table": t}).result_rows[0][0])
                for t in self.TABLES.values()}

    def _cpu(self) -> dict[str, float]:
        assert self.serve.proc is not None
        out = {"daemon": _cpu_seconds([self.serve.proc.pid])}
        if self.ch_pid:
            out["clickhouse"] = _cpu_seconds([self.ch_pid])
        return out

    def __enter__(self) -> _Ingest:
        import threading

        from otelingest.config import DEFAULT_BATCH_TIMEOUT_S

        from .ingest import Serve

        shutil.rmtree(self.dir, ignore_errors=True)  # a kept dataset's last run
        self.dir.mkdir(parents=True, exist_ok=True)
        self.serve = Serve(self.dir, receivers=2, writers=1, clickhouse_url=self.ch_url,
                           env={"OTELINGEST_CLICKHOUSE_DATABASE": self.db,
                                "OTELINGEST_WRITER_BATCH_TIMEOUT_S": str(DEFAULT_BATCH_TIMEOUT_S)})
        self.serve.start()
        # A connection sends one request at a time: at most 10 requests/s each leaves it 100 ms per
        # request, so the sender's connections do not cap the rate (on a saturated machine 4 and 20
        # connections stored the same 21,000-23,000 spans/s of 50,000: the daemon and ClickHouse did).
        requests_per_s = self.rate * 2 / loadgen.ITEMS_PER_REQUEST
        spec = loadgen.LoadSpec(rate=self.rate * 2, duration=self.max_seconds, warmup=0.0,
                                connections=max(4, math.ceil(requests_per_s / 10)), mix=dict(self.MIX),
                                http_port=self.serve.http_port, grpc_port=self.serve.grpc_port)
        self.report["connections"] = spec.connections
        started, self.stop_load = threading.Event(), threading.Event()

        def send() -> None:
            self.result = loadgen.run(spec, progress=False, label="with-ingest", started=started, stop=self.stop_load)

        self.first = self._counts()
        self.sender = threading.Thread(target=send, daemon=True, name="bench-query-ingest")
        self.sender.start()
        if not started.wait(300):  # the senders build their templates first (seconds on a busy machine)
            raise RuntimeError("the load generator did not start sending within 300 s")
        time.sleep(self.warmup_s)  # rings, batches and merges in their steady state before the first query
        self.before, self.cpu0, self.t0 = self._counts(), self._cpu(), time.monotonic()
        self.report["load_average_at_first_query"] = round(os.getloadavg()[0], 2)
        return self

    def __exit__(self, *exc: object) -> None:
        dt = time.monotonic() - self.t0
        after, cpu1 = self._counts(), self._cpu()
        rep = self.report
        rep["load_average_at_last_query"] = round(os.getloadavg()[0], 2)
        rep["seconds"] = round(dt, 1)
        for signal, table in self.TABLES.items():
            rep[f"{signal}_stored_per_s"] = round((after[table] - self.before[table]) / dt)
        for who, t in cpu1.items():
            rep[f"{who}_cpu_percent"] = round(100 * (t - self.cpu0.get(who, t)) / dt, 1)
        self.stop_load.set()
        self.sender.join(120)
        rep["daemon_exit_code"] = self.serve.stop()
        final = self._counts()
        res = self.result
        if res is not None:
            gained = {s: final[t] - self.first[t] for s, t in self.TABLES.items()}
            rep["acknowledged"] = {s: res.accepted.get(s, 0) for s in self.TABLES}
            rep["stored"] = gained
            rep["loss"] = sum(rep["acknowledged"].values()) - sum(gained.values())
            rep["refusals"], rep["errors"] = res.refusals, res.errors
            # Sent over the whole run (warm-up and drain included): below the target, the sender or
            # the daemon's acceptance fell behind; schedule_lag_s says how far the sender did.
            rep["accepted_items_per_s"] = round(res.items_per_s)
            rep["schedule_lag_s"] = round(res.lag_s, 1)
            rep["export_p99_ms"] = round(res.percentile(99), 1)
        else:
            rep["error"] = "the load generator did not report (still sending after 120 s?)"
        shutil.rmtree(self.dir, ignore_errors=True)  # the daemon's rings: 0.5 GB

    def summary(self) -> str:
        r = self.report
        lines = [f"while ingesting ({r['seconds']} s of queries, load average {r['load_average_at_first_query']} at "
                 f"the first query, {r['load_average_at_last_query']} after the last):",
                 f"  stored  {r['traces_stored_per_s']:>9,} spans/s    (target {r['spans_per_s_target']:,.0f})",
                 f"          {r['logs_stored_per_s']:>9,} records/s  (target {r['logs_per_s_target']:,.0f})",
                 f"          {r['metrics_stored_per_s']:>9,} points/s   (target {r['points_per_s_target']:,.0f})"]
        if "daemon_cpu_percent" in r:
            lines.append(f"  CPU     daemon {r['daemon_cpu_percent']}%, ClickHouse {r.get('clickhouse_cpu_percent', '-')}% "
                         "(100% = one core)")
        if "loss" in r:
            lines.append(f"  loss    {r['loss']:,} (acknowledged {sum(r['acknowledged'].values()):,}, stored "
                         f"{sum(r['stored'].values()):,}); refusals {r['refusals']:,}, errors {r['errors']:,}, "
                         f"export p99 {r['export_p99_ms']} ms")
            lines.append(f"  sent    {r['accepted_items_per_s']:,} items/s accepted over the whole run (target "
                         f"{2 * r['spans_per_s_target']:,.0f}) on {r['connections']} connections, "
                         f"schedule lag {r['schedule_lag_s']} s")
        else:
            lines.append(f"  loss    unknown: {r.get('error')}")
        return "\n".join(lines)


def _backfill_dependencies(client: Any, db: str) -> dict[str, Any]:
    """Run the dependency rollup's backfill until no hour is left, as the supervisor's job does."""
    from otelingest.clickhouse.client import connect
    from otelingest.config import ClickHouseConfig
    from otelingest.jobs import dependencies

    t0 = time.perf_counter()
    hours = 0
    with contextlib.closing(connect(ClickHouseConfig(url=client.url, database=db))) as db_client:
        while done := dependencies.backfill(db_client):
            hours += len(done)
    seconds = time.perf_counter() - t0
    print(f"dependency rollup backfill: {hours} hours in {seconds:.1f} s", flush=True)
    return {"hours": hours, "seconds": round(seconds, 1)}


def _cumulative_histogram(client: Any, db: str) -> dict[str, Any]:
    """The delta histogram again as a cumulative one (the SDKs' default), once per dataset."""
    from otelingest.clickhouse import sqlfiles

    points = lambda: client.query(sqlfiles.query("bench/metric_points"),  # noqa: E731
                                  parameters={"db": db, "name": CUMULATIVE_HISTOGRAM}).result_rows[0][0]
    t0 = time.perf_counter()
    if not points():
        client.command(sqlfiles.query("bench/cumulative_histogram"),
                       parameters={"db": db, "source": "http.server.duration", "target": CUMULATIVE_HISTOGRAM})
    n, seconds = points(), time.perf_counter() - t0
    print(f"cumulative histogram: {n:,} points ({seconds:.1f} s)", flush=True)
    return {"points": n, "seconds": round(seconds, 1)}


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main(args: Any) -> int:
    duration = float(getattr(args, "duration", None) or 3.0)
    scale = float(getattr(args, "scale", None) or 1.0)
    seed = getattr(args, "seed", None) or SEED
    results: dict[str, Any] = {}
    only = getattr(args, "only", None) or []
    with_ingest = float(getattr(args, "with_ingest", None) or 0.0)
    results["_load_average_before"] = round(os.getloadavg()[0], 2)
    with _environment(getattr(args, "dataset", None)) as (url, client, db, tmp, ch):
        # A kept dataset (--dataset) is reused when it was loaded at the same scale and seed: its
        # timestamps stay those of the first run, so "now" is that run's.
        marker = tmp / "bench-query-dataset.json"
        saved = json.loads(marker.read_text()) if marker.exists() else None
        if saved and saved["scale"] == scale and saved["seed"] == seed:
            now_ns, data, load_s = saved["now_ns"], saved["data"], saved["load_seconds"]
            print(f"reusing the dataset in {tmp} ({data['counts']})", flush=True)
            if saved.get("ingested"):
                # Stored after the dataset's window: only queries without a window (services stats) see them.
                print(f"  with rows earlier --with-ingest runs stored after its window: {saved['ingested']}", flush=True)
        else:
            now_ns = time.time_ns()
            t0 = time.perf_counter()
            data = _load(client, db, now_ns, scale, seed)
            load_s = time.perf_counter() - t0
            marker.write_text(json.dumps({"scale": scale, "seed": seed, "now_ns": now_ns, "data": data,
                                          "load_seconds": round(load_s, 1)}))
        results["_dataset"] = {"hours": HOURS, "scale": scale, **data["counts"], "load_seconds": round(load_s, 1)}
        results["_dependencies_backfill"] = _backfill_dependencies(client, db)
        # Only the Prometheus queries read the cumulative copy: --only without them skips building it.
        if not only or any(o in "prom_histogram_quantile_24h_1m_cumulative" for o in only):
            results["_cumulative_histogram"] = _cumulative_histogram(client, db)
        ids = data["trace_ids"]
        rnd = random.Random(seed)
        rnd.shuffle(ids)
        # The queries keep the dataset's window: rows the daemon stores meanwhile land after its end, so
        # they compete for CPU, disk and merges without changing what each query reads.
        ingest = (_Ingest(client, ch.url, db, tmp, with_ingest, warmup_s=float(getattr(args, "warmup", None) or 10.0),
                          clickhouse_pid=ch.pid) if with_ingest else contextlib.nullcontext())
        with httpx.Client(base_url=url, timeout=120) as http, ingest:
            if with_ingest:
                print(f"timing the queries while the daemon ingests {with_ingest:,.0f} spans/s, "
                      f"{with_ingest / 2:,.0f} log records/s and {with_ingest / 2:,.0f} metric points/s", flush=True)
            queries = _queries(data, now_ns, _prom_names(http))
            for name, (method, path, params) in queries.items():
                if only and not any(o in name for o in only):
                    continue
                lat: list[float] = []
                deadline = time.perf_counter() + duration
                i = 0
                error = None
                while error is None and (time.perf_counter() < deadline or len(lat) < 5):
                    tid = ids[i % len(ids)]
                    p = path.replace("{id}", tid)
                    body = {k: (tid if v == "{id}" else v) for k, v in params.items()}
                    i += 1
                    t = time.perf_counter()
                    r = http.post(p, json=body) if method == "POST" else http.get(p, params=params)
                    lat.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        error = f"HTTP {r.status_code}: {r.text[:300]}"
                if error is not None:
                    # Reported, not fatal: the other query types still get measured.
                    results[name] = {"error": error, "seconds": round(lat[-1], 2)}
                    print(f"{name:32s} FAILED after {lat[-1] * 1000:.0f} ms: {error}", flush=True)
                    continue
                results[name] = {
                    "n": len(lat), "p50_ms": round(1000 * statistics.median(lat), 1),
                    "p95_ms": round(1000 * _percentile(lat, 0.95), 1), "p99_ms": round(1000 * _percentile(lat, 0.99), 1),
                    "response_bytes": len(r.content),
                }
                row = results[name]
                print(f"{name:32s} n={row['n']:5d}  p50={row['p50_ms']:8.1f} ms  p95={row['p95_ms']:8.1f} ms  "
                      f"p99={row['p99_ms']:8.1f} ms  ({row['response_bytes']:,} B)", flush=True)
        if isinstance(ingest, _Ingest):
            results["_ingest"] = ingest.report
            print(ingest.summary(), flush=True)
            saved = json.loads(marker.read_text())
            ingested = saved.get("ingested", {})
            for signal, n in ingest.report.get("stored", {}).items():
                ingested[signal] = ingested.get(signal, 0) + n
            marker.write_text(json.dumps({**saved, "ingested": ingested}))
        timed = {k: v for k, v in results.items() if not k.startswith("_")}
        results["_over_500ms_p95"] = over = [k for k, v in timed.items() if "error" in v or v["p95_ms"] >= 500]
        results["_load_average_after"] = round(os.getloadavg()[0], 2)
        print(f"p95 >= 500 ms or failed: {', '.join(over) if over else 'none'} ({len(timed) - len(over)} of "
              f"{len(timed)} query types under 500 ms); load average {results['_load_average_before']} before, "
              f"{results['_load_average_after']} after", flush=True)
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0
