"""End-to-end ingest benchmark: ``otelingest serve`` under load, against a Python baseline.

One command, ``otelingest bench ingest [--duration S] [--rate N] [--json PATH]``, does, in order:

1. the sender's own ceiling: the load generator closed-loop against a null sink (no daemon running);
2. starts ``otelingest serve`` (free ports, a temporary data dir, embedded ClickHouse, a short writer
   batch timeout so the end-of-run count is quick), warms up, sends for ``--duration`` seconds open
   loop at ``--rate`` items/s (or closed loop with ``--rate 0``), then waits until the stored counts
   reach what was acknowledged or stop changing; loss = acknowledged - stored;
3. samples CPU and RSS of every ``otelingest: ...`` process (ClickHouse apart) and the stored counts
   once a second, for the report and the plot;
4. storage: bytes per row of the live tables (parts as they are), then the same sample of spans in
   our schema and in the OpenTelemetry Collector ClickHouse exporter's (sql/queries/bench/exporter_schema.sql),
   both after ``OPTIMIZE TABLE ... FINAL``;
5. the baseline on the same machine and payloads, while the daemon is idle: the official protobuf
   decode, rows built in Python, clickhouse-connect inserts of 10,000 rows into a second database
   with the same schema (views included), one process, as fast as it goes;
6. optionally (``--profile``) py-spy samples of the busiest daemon processes during the run.

``--tenants N`` turns tenancy on (``tenancy.mode = "header"``) and spreads the load over N tenants,
each request naming one (``X-Scope-OrgID``, gRPC metadata ``x-scope-orgid``) round robin.

Writes the JSON (``--json``, default bench-ingest.json), a PNG of rate and latency over time next to
it, and prints a human summary.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from otelingest.clickhouse import sqlfiles
from otelingest.config import RetentionConfig
from otelingest.clickhouse.migrations import Migrator, RenderContext, render

from . import loadgen
from .native import _attrs, _render  # noqa: F401  (the Python baseline's attribute rendering)
from .payloads import SEED
from .ports import free_ports

TABLES = {"traces": "otel_traces", "logs": "otel_logs", "metrics": "otel_metrics"}
# Tables the materialized views fill from each signal's raw table (besides the trace-id lookups;
# the metric series' labels since migration 0015).
ROLLUPS = {"traces": ["otel_span_stats_1h"], "metrics": ["otel_metrics_5m", "otel_metrics_1h", "otel_prom_series"]}
# Items of each signal in the JSON's per-CPU-second figures.
ITEM_NAMES = {"traces": "spans", "logs": "records", "metrics": "points"}
DB = "otel"
BASELINE_DB = "otel_baseline"
BATCH_TIMEOUT_S = "0.5"
SETTLE_S = 10.0
STORE_TIMEOUT_S = 180.0
BASELINE_BATCH = 10_000
SAMPLE_ROWS = 2_000_000


# --- the daemon ------------------------------------------------------------------------------------

class Serve:
    """``otelingest serve`` as a child process on free ports, with its own data dir and log."""

    def __init__(self, workdir: Path, *, receivers: int, writers: int, env: dict[str, str],
                 clickhouse_url: str | None = None) -> None:
        """``clickhouse_url``: a running ClickHouse to write to instead of the embedded one."""
        self.dir = workdir
        (self.grpc_port, self.http_port, self.query_port, self.metrics_port,
         self.ch_http_port, self.ch_tcp_port) = free_ports(6)
        self.log_path = workdir / "daemon.log"
        self.env = dict(os.environ)
        self.env["OTELINGEST_WRITER_BATCH_TIMEOUT_S"] = BATCH_TIMEOUT_S
        self.env.update(env)
        self.argv = [
            sys.executable, "-m", "otelingest", "serve", "--data-dir", str(workdir / "data"),
            "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
            "--query-port", str(self.query_port), "--metrics-port", str(self.metrics_port),
            "--clickhouse-http-port", str(self.ch_http_port), "--clickhouse-tcp-port", str(self.ch_tcp_port),
            "--receivers", str(receivers), "--writers", str(writers),
        ]
        if clickhouse_url:
            self.argv += ["--clickhouse-url", clickhouse_url]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"otelingest serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._ready() and _accepts(self.http_port) and _accepts(self.grpc_port):
                return
            time.sleep(0.2)
        raise TimeoutError(f"otelingest serve not ready after {timeout}s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 120.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def client(self, database: str | None = None) -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(host="127.0.0.1", port=self.ch_http_port, database=database or "default",
                                             autogenerate_session_id=False, send_receive_timeout=600)


def daemon_metrics(serve: Serve) -> dict[str, Any]:
    """The daemon's own view of the run from /metrics: refusals by reason, writes, batch sizes, insert time."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{serve.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, Any] = {}
    wanted = ("otel_refused_total", "otel_storage_writes_total", "otel_batch_size_sum", "otel_batch_size_count",
              "otel_storage_write_duration_seconds_sum", "otel_storage_write_duration_seconds_count",
              "otel_rejected_items_total", "otel_worker_restarts_total")
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in wanted and s.value:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("pid",))
                key = f"{s.name}{{{labels}}}" if labels else s.name
                out[key] = out.get(key, 0) + s.value
    return out


def server_events(client: Any) -> dict[str, int]:
    return {str(e): int(v) for e, v in client.query(sqlfiles.query("bench/server_events")).result_rows}


# Counters that say where ClickHouse's time went (the embedded server keeps no query_log).
EVENTS = {
    "InsertQuery": "inserts", "InsertedRows": "inserted_rows", "InsertQueryTimeMicroseconds": "insert_query_us",
    "UserTimeMicroseconds": "query_user_cpu_us", "SystemTimeMicroseconds": "query_system_cpu_us",
    "Merge": "merges", "MergedRows": "merged_rows", "MergesTimeMilliseconds": "merges_ms",
    "MergeTreeDataWriterRows": "rows_written_to_parts", "MergeTreeDataWriterCompressedBytes": "compressed_bytes_written",
    "MergeTreeDataWriterSortingBlocksMicroseconds": "insert_sorting_us",
    "CompressedWriteBufferBytes": "compressed_write_buffer_bytes", "SelectQuery": "selects",
}


def clickhouse_profile(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, Any]:
    """Deltas of the server's counters over the run; per-second CPU of queries (inserts, views) vs merges."""
    d = {name: after.get(ev, 0) - before.get(ev, 0) for ev, name in EVENTS.items() if ev in after}
    out: dict[str, Any] = dict(d)
    if seconds > 0:
        out["query_cpu_percent"] = round((d.get("query_user_cpu_us", 0) + d.get("query_system_cpu_us", 0)) / 1e4 / seconds, 1)
        out["merge_thread_percent"] = round(d.get("merges_ms", 0) / 10 / seconds, 1)
        out["insert_sorting_percent"] = round(d.get("insert_sorting_us", 0) / 1e4 / seconds, 1)
    if d.get("inserts"):
        out["avg_insert_ms"] = round(d.get("insert_query_us", 0) / 1e3 / d["inserts"], 1)
    return out


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- sampling --------------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Once a second: CPU% and RSS of every process of the daemon (by title) and the stored counts."""

    def __init__(self, serve: Serve, tables: list[str], interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.serve, self.tables, self.interval = serve, tables, interval
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.time()
        self._halt = threading.Event()
        self._procs: dict[int, Any] = {}

    def processes(self) -> dict[str, Any]:
        import psutil

        assert self.serve.proc is not None
        out = {}
        try:
            root = psutil.Process(self.serve.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                p = self._procs.setdefault(p.pid, p)
                try:
                    title = " ".join(p.cmdline()).strip()
                except psutil.Error:
                    continue
                if not title.startswith("otelingest:"):
                    title = f"otelingest: clickhouse ({p.pid})" if "clickhouse" in title or "chdb" in title else title
                out[title] = p
        except psutil.Error:
            pass
        return out

    def run(self) -> None:
        import psutil

        client = self.serve.client(DB)
        for p in self.processes().values():
            try:
                p.cpu_percent(None)
            except psutil.Error:
                pass
        while not self._halt.wait(self.interval):
            procs = {}
            for title, p in self.processes().items():
                try:
                    # PSS splits the shared-memory rings among the processes mapping them; RSS counts them in each.
                    mem = p.memory_full_info()
                    procs[title] = {"cpu": p.cpu_percent(None), "rss_mb": mem.rss / 2**20, "pss_mb": mem.pss / 2**20}
                except psutil.Error:
                    continue
            stored = {}
            for t in self.tables:
                try:
                    stored[t] = int(client.query(f"SELECT count() FROM {DB}.{t}").result_rows[0][0])
                except Exception:
                    stored[t] = -1
            self.samples.append({"t": round(time.time() - self.t0, 2), "procs": procs, "stored": stored,
                                 "load": os.getloadavg()[0]})
        client.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _is_clickhouse(title: str) -> bool:
    return title.startswith("otelingest: clickhouse")


def summarize_processes(samples: list[dict[str, Any]], t_from: float, t_to: float) -> dict[str, Any]:
    """Mean CPU% and peak RSS per process over [t_from, t_to] (sampler time)."""
    window = [s for s in samples if t_from <= s["t"] <= t_to] or samples
    per: dict[str, dict[str, list[float]]] = {}
    for s in window:
        for title, v in s["procs"].items():
            d = per.setdefault(title, {"cpu": [], "rss_mb": [], "pss_mb": []})
            for k in d:
                d[k].append(v[k])
    procs = {t: {"cpu_percent": round(loadgen.mean(d["cpu"]), 1), "rss_mb_max": round(max(d["rss_mb"]), 1),
                 "pss_mb_max": round(max(d["pss_mb"]), 1)} for t, d in sorted(per.items())}
    # Totals per sample, then the peak (RSS) and mean (CPU) of those totals.
    d_rss = [sum(v["rss_mb"] for t, v in s["procs"].items() if not _is_clickhouse(t)) for s in window]
    c_rss = [sum(v["rss_mb"] for t, v in s["procs"].items() if _is_clickhouse(t)) for s in window]
    d_pss = [sum(v["pss_mb"] for t, v in s["procs"].items() if not _is_clickhouse(t)) for s in window]
    d_cpu = [sum(v["cpu"] for t, v in s["procs"].items() if not _is_clickhouse(t)) for s in window]
    c_cpu = [sum(v["cpu"] for t, v in s["procs"].items() if _is_clickhouse(t)) for s in window]
    return {
        "processes": procs,
        "daemon_rss_mb": round(max(d_rss, default=0.0), 1), "daemon_pss_mb": round(max(d_pss, default=0.0), 1), "clickhouse_rss_mb": round(max(c_rss, default=0.0), 1),
        "daemon_cpu_percent": round(loadgen.mean(d_cpu), 1), "clickhouse_cpu_percent": round(loadgen.mean(c_cpu), 1),
        "load_average": round(loadgen.mean([s["load"] for s in window]), 2),
    }


def stored_rate(samples: list[dict[str, Any]], table: str, t_from: float, t_to: float) -> float:
    """Rows/s stored between the samples nearest t_from and t_to (sampler time)."""
    pts = [(s["t"], s["stored"].get(table, -1)) for s in samples if s["stored"].get(table, -1) >= 0]
    if len(pts) < 2:
        return 0.0
    a = min(pts, key=lambda p: abs(p[0] - t_from))
    b = min(pts, key=lambda p: abs(p[0] - t_to))
    return (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0.0


def per_cpu_second(item: str, rate: float, r: dict[str, Any]) -> dict[str, int]:
    """Items stored per CPU-second of ClickHouse and of the daemon (all its processes) over the
    measured window, e.g. ``spans_per_clickhouse_cpu_s``. With a mix every signal's figure divides
    by the same CPU (the signals share it)."""
    out = {}
    for who in ("clickhouse", "daemon"):
        cpu = r.get(f"{who}_cpu_percent", 0.0) / 100
        out[f"{item}_per_{who}_cpu_s"] = round(rate / cpu) if cpu > 0 else 0
    return out


def wait_stored(client: Any, expected: dict[str, int], timeout: float = STORE_TIMEOUT_S) -> tuple[dict[str, int], float]:
    """Poll until every table holds what was acknowledged, or its count stops changing for SETTLE_S."""
    start = time.monotonic()
    last: dict[str, int] = {}
    changed = time.monotonic()
    while True:
        now = {t: int(client.query(f"SELECT count() FROM {DB}.{t}").result_rows[0][0]) for t in expected}
        if now != last:
            changed = time.monotonic()
            last = now
        if all(now[t] >= expected[t] for t in expected) or time.monotonic() - changed > SETTLE_S \
                or time.monotonic() - start > timeout:
            return now, time.monotonic() - start
        time.sleep(0.25)


# --- storage ---------------------------------------------------------------------------------------

def table_bytes(client: Any, tables: list[str], database: str = DB) -> dict[str, dict[str, int]]:
    rows = client.query(sqlfiles.query("bench/table_bytes"), parameters={"db": database, "tables": tables}).result_rows
    return {r[0]: {"rows": int(r[1]), "compressed": int(r[2]), "uncompressed": int(r[3]), "parts": int(r[4]),
                   "on_disk": int(r[5])} for r in rows}


def _per_row(b: dict[str, int] | None, rows: int | None = None, key: str = "compressed") -> float:
    if not b:
        return 0.0
    n = rows or b["rows"]
    return round(b[key] / n, 1) if n else 0.0


def storage_report(client: Any, signals: list[str], sample_rows: int) -> dict[str, Any]:
    aux = ["otel_trace_index", "otel_trace_times"]
    live = table_bytes(client, [TABLES[s] for s in signals] + aux + [t for s in signals for t in ROLLUPS.get(s, [])])
    out: dict[str, Any] = {"live_parts_as_they_are": {
        t: {**b, "bytes_per_row": _per_row(b),
            "compression_ratio": round(b["uncompressed"] / b["compressed"], 1) if b["compressed"] else 0.0}
        for t, b in live.items()}}
    if "traces" not in signals or not live.get("otel_traces", {}).get("rows"):
        return out
    ctx = RenderContext(DB, None, {k: int(v) for k, v in asdict_retention().items()})
    text = sqlfiles.query("bench/exporter_schema")
    for stmt in render(text, ctx):
        client.command(stmt.sql)
    t0 = time.monotonic()
    client.command(sqlfiles.query("bench/sample_traces"), parameters={"db": DB, "rows": sample_rows})
    client.command(sqlfiles.query("bench/exporter_fill"), parameters={"db": DB})
    tables = ["bench_traces_sample", "exporter_traces", "exporter_traces_trace_id_ts"]
    for t in tables:
        client.command(f"OPTIMIZE TABLE {DB}.{t} FINAL")
    b = table_bytes(client, tables)
    ours, theirs = b.get("bench_traces_sample"), b.get("exporter_traces")
    rows = ours["rows"] if ours else 0
    ours_bps, theirs_bps = _per_row(ours), _per_row(theirs, rows)
    # Our trace-id lookups (otel_trace_index: a row per span; otel_trace_times: a row per trace) are
    # filled by views on the live tables only: optimized too, so both sides are measured alike.
    for t in aux + ROLLUPS["traces"]:
        client.command(f"OPTIMIZE TABLE {DB}.{t} FINAL")
    aux_b = table_bytes(client, aux + ROLLUPS["traces"])
    rollup_disk = sum(aux_b.get(t, {}).get("on_disk", 0) for t in ROLLUPS["traces"]) / live["otel_traces"]["rows"]
    spans_live = live["otel_traces"]["rows"]
    ours_lookup = sum(aux_b.get(t, {}).get("compressed", 0) for t in aux) / spans_live
    ours_lookup_disk = sum(aux_b.get(t, {}).get("on_disk", 0) for t in aux) / spans_live
    their_lookup = _per_row(b.get("exporter_traces_trace_id_ts"), rows)
    their_lookup_disk = _per_row(b.get("exporter_traces_trace_id_ts"), rows, "on_disk")
    ours_disk, theirs_disk = _per_row(ours, key="on_disk"), _per_row(theirs, rows, "on_disk")
    out["same_spans_optimized"] = {
        "rows": rows, "seconds": round(time.monotonic() - t0, 1),
        "ours_bytes_per_span": ours_bps,
        "exporter_bytes_per_span": theirs_bps,
        "ratio": round(ours_bps / theirs_bps, 3) if theirs_bps else 0.0,
        "ours_compression_ratio": round(ours["uncompressed"] / ours["compressed"], 1) if ours else 0.0,
        "exporter_compression_ratio": round(theirs["uncompressed"] / theirs["compressed"], 1) if theirs else 0.0,
        # On disk: columns plus skip indexes (the exporter's bloom filters), marks and primary index.
        "ours_disk_bytes_per_span": ours_disk, "exporter_disk_bytes_per_span": theirs_disk,
        # The trace-id lookups each schema keeps beside the spans.
        "ours_lookup_bytes_per_span": round(ours_lookup, 1), "exporter_lookup_bytes_per_span": their_lookup,
        "ours_total_disk_bytes_per_span": round(ours_disk + ours_lookup_disk, 1),
        "exporter_total_disk_bytes_per_span": round(theirs_disk + their_lookup_disk, 1),
    }
    tot = out["same_spans_optimized"]
    # Every table a span lands in (spans, trace-id lookups, the hourly span rollup) against the
    # exporter's two: the "all trace tables together".
    tot["ours_all_tables_disk_bytes_per_span"] = round(ours_disk + ours_lookup_disk + rollup_disk, 1)
    tot["exporter_all_tables_disk_bytes_per_span"] = tot["exporter_total_disk_bytes_per_span"]
    tot["all_tables_disk_ratio"] = round(tot["ours_all_tables_disk_bytes_per_span"] / tot["exporter_total_disk_bytes_per_span"], 3) \
        if tot["exporter_total_disk_bytes_per_span"] else 0.0
    tot["total_disk_ratio"] = round(tot["ours_total_disk_bytes_per_span"] / tot["exporter_total_disk_bytes_per_span"], 3) \
        if tot["exporter_total_disk_bytes_per_span"] else 0.0
    return out


def asdict_retention() -> dict[str, Any]:
    import msgspec

    return dict(msgspec.to_builtins(RetentionConfig()))


# --- the Python baseline ---------------------------------------------------------------------------

TRACE_COLUMNS = [
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "Flags", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ResourceSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes", "ScopeSchemaUrl",
    "SpanAttributes", "Duration", "StatusCode", "StatusMessage", "DroppedAttributesCount", "DroppedEventsCount",
    "DroppedLinksCount", "Events.Timestamp", "Events.Name", "Events.Attributes", "Events.DroppedAttributesCount",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes", "Links.Flags",
    "Links.DroppedAttributesCount",
]


def baseline_rows(body: bytes, cols: list[list[Any]]) -> int:
    """Decode with the official protobuf classes and append one row per span to ``cols`` (TRACE_COLUMNS)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest.FromString(body)
    n = 0
    zero8, zero16 = b"\0" * 8, b"\0" * 16
    for rs in req.resource_spans:
        res = _attrs(rs.resource.attributes)
        service = res.get("service.name", "unknown_service")
        for ss in rs.scope_spans:
            scope_attrs = _attrs(ss.scope.attributes)
            for s in ss.spans:
                row = (
                    s.start_time_unix_nano, s.trace_id or zero16, s.span_id or zero8, s.parent_span_id or zero8,
                    s.trace_state, s.flags, s.name, s.kind, service, res, rs.schema_url, ss.scope.name,
                    ss.scope.version, scope_attrs, ss.schema_url, _attrs(s.attributes),
                    max(0, s.end_time_unix_nano - s.start_time_unix_nano), s.status.code, s.status.message,
                    s.dropped_attributes_count, s.dropped_events_count, s.dropped_links_count,
                    [e.time_unix_nano for e in s.events], [e.name for e in s.events],
                    [_attrs(e.attributes) for e in s.events], [e.dropped_attributes_count for e in s.events],
                    [lk.trace_id for lk in s.links], [lk.span_id for lk in s.links],
                    [lk.trace_state for lk in s.links], [_attrs(lk.attributes) for lk in s.links],
                    [lk.flags for lk in s.links], [lk.dropped_attributes_count for lk in s.links],
                )
                for c, v in zip(cols, row):
                    c.append(v)
                n += 1
    return n


def run_baseline(serve: Serve, seconds: float, seed: int) -> dict[str, Any]:
    """Spans/s stored by the straightforward Python pipeline, end to end, one process."""
    admin = serve.client()
    Migrator(admin, RenderContext(BASELINE_DB, None, asdict_retention())).migrate()
    admin.close()
    client = serve.client(BASELINE_DB)
    templates = loadgen.build_templates("traces", seed=seed + 999)
    patcher = loadgen.Patcher(0xFFFF)
    sent = 0
    cols: list[list[Any]] = [[] for _ in TRACE_COLUMNS]
    pending = 0
    start = time.perf_counter()
    k = 0
    while time.perf_counter() - start < seconds:
        body = patcher.render(templates[k % len(templates)])
        k += 1
        pending += baseline_rows(body, cols)
        if pending >= BASELINE_BATCH:
            client.insert("otel_traces", cols, column_names=TRACE_COLUMNS, column_oriented=True)
            sent += pending
            pending = 0
            cols = [[] for _ in TRACE_COLUMNS]
    if pending:
        client.insert("otel_traces", cols, column_names=TRACE_COLUMNS, column_oriented=True)
        sent += pending
    elapsed = time.perf_counter() - start
    stored = int(client.query("SELECT count() FROM otel_traces").result_rows[0][0])
    client.close()
    return {"baseline_spans_per_s": round(stored / elapsed), "baseline_stored": stored, "baseline_sent": sent,
            "baseline_seconds": round(elapsed, 1)}


# --- profiling -------------------------------------------------------------------------------------

def profile(pids: dict[str, int], seconds: float, outdir: Path) -> dict[str, Any]:
    """py-spy (sampling, native frames off) on each process for ``seconds``; top self-time functions."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return {"error": "py-spy not installed"}
    procs = {}
    for title, pid in pids.items():
        raw = outdir / f"profile-{title.split(': ', 1)[-1].replace(' ', '-')}.txt"
        procs[title] = (raw, subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50", "--format", "raw",
             "--nonblocking", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    out: dict[str, Any] = {}
    for title, (raw, p) in procs.items():
        p.wait(seconds + 60)
        out[title] = top_functions(raw) if raw.exists() else {"error": f"py-spy exited {p.returncode}"}
    return out


def top_functions(raw: Path, n: int = 12) -> dict[str, Any]:
    """Self samples per leaf function from py-spy's collapsed stacks, as % of all samples."""
    leaf: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        fn = stack.split(";")[-1]
        leaf[fn] = leaf.get(fn, 0) + c
    top = sorted(leaf.items(), key=lambda kv: -kv[1])[:n]
    return {"samples": total, "top_self": [[f, round(100 * c / total, 1)] for f, c in top]}


# --- plot ------------------------------------------------------------------------------------------

def plot(path: Path, load: loadgen.LoadResult, samples: list[dict[str, Any]], offset: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = load.timeline
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    ax1.plot([r["t"] for r in tl], [r["items_per_s"] for r in tl], label="accepted items/s (client)")
    st = [(s["t"] - offset, s["stored"].get("otel_traces", -1)) for s in samples]
    st = [p for p in st if p[1] >= 0]
    if len(st) > 1:
        ax1.plot([b[0] for b in st[1:]], [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(st, st[1:])],
                 label="stored spans/s (ClickHouse)", alpha=0.8)
    if load.spec.rate:
        ax1.axhline(load.spec.rate, color="grey", ls="--", lw=0.8, label="target")
    ax1.axvline(load.spec.warmup, color="k", ls=":", lw=0.8)
    ax1.set_ylabel("items/s")
    ax1.legend(loc="lower right")
    ax1.set_title(title)
    ax2.plot([r["t"] for r in tl], [r["p50_ms"] for r in tl], label="p50")
    ax2.plot([r["t"] for r in tl], [r["p99_ms"] for r in tl], label="p99")
    ax2.set_ylabel("export latency (ms)")
    ax2.legend(loc="upper right")
    ts = [s["t"] - offset for s in samples]
    ax3.plot(ts, [sum(v["cpu"] for t, v in s["procs"].items() if not _is_clickhouse(t)) for s in samples],
             label="daemon CPU %")
    ax3.plot(ts, [sum(v["cpu"] for t, v in s["procs"].items() if _is_clickhouse(t)) for s in samples],
             label="ClickHouse CPU %")
    ax3r = ax3.twinx()
    ax3r.plot(ts, [sum(v["pss_mb"] for t, v in s["procs"].items() if not _is_clickhouse(t)) for s in samples],
              color="tab:red", ls="--", label="daemon PSS MB")
    ax3r.plot(ts, [sum(v["rss_mb"] for t, v in s["procs"].items() if _is_clickhouse(t)) for s in samples],
              color="tab:purple", ls=":", label="ClickHouse RSS MB")
    ax3r.set_ylabel("memory (MB)")
    ax3.set_ylabel("CPU % (100 = one core)")
    ax3.set_xlabel("seconds since the load started (dotted: end of warm-up)")
    ax3.legend(loc="upper left")
    ax3r.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the command -----------------------------------------------------------------------------------

def main(args: Any) -> int:
    duration = float(args.duration if args.duration is not None else 60.0)
    rate = None if args.rate == 0 else float(args.rate or 100_000)
    mix = loadgen.parse_mix(args.mix or "traces")
    signals = list(mix)
    json_path = Path(args.json or "bench-ingest.json").resolve()
    png_path = json_path.with_suffix(".png")
    seed = args.seed if args.seed is not None else SEED
    tenants = int(getattr(args, "tenants", 0) or 0)
    spec = loadgen.LoadSpec(rate=rate, duration=duration, warmup=args.warmup, connections=args.connections,
                            processes=args.senders, mix=mix, transport=args.transport, seed=seed, tenants=tenants)
    results: dict[str, Any] = {"command": " ".join(["otelingest", "bench", "ingest", *sys.argv[3:]]),
                               "spec": {k: v for k, v in asdict(spec).items() if k not in ("host",)},
                               "cpus": os.cpu_count(), "load_average_before": round(os.getloadavg()[0], 2)}

    print(f"[ingest] sender ceiling: closed loop against a null sink ({args.senders} process(es), "
          f"{args.connections} connections each) ...", flush=True)
    results["sender_max_items_per_s"] = round(loadgen.sender_ceiling(spec, seconds=min(5.0, max(2.0, duration / 4))))
    print(f"[ingest] sender ceiling: {results['sender_max_items_per_s']:,} items/s", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="otelingest-bench-"))
    env = {"OTELINGEST_RECEIVER_RETRY_AFTER_S": "1"}
    if tenants:
        env["OTELINGEST_TENANCY_MODE"] = "header"
    for kv in args.set or []:
        key, _, value = kv.partition("=")
        env["OTELINGEST_" + key.upper().replace(".", "_")] = value
    results["daemon_env"] = env
    serve = Serve(workdir, receivers=args.receivers, writers=args.writers, env=env)
    sampler: Sampler | None = None
    try:
        print(f"[ingest] starting otelingest serve ({args.receivers} receivers, {args.writers} writers) in {workdir}",
              flush=True)
        serve.start()
        spec.http_port, spec.grpc_port = serve.http_port, serve.grpc_port
        sampler = Sampler(serve, [TABLES[s] for s in signals])
        sampler.start()
        time.sleep(1.5)
        profiler: threading.Thread | None = None
        prof_out: dict[str, Any] = {}
        if args.profile:
            def run_profile() -> None:
                time.sleep(spec.warmup + 2)
                pids = {t: p.pid for t, p in sampler.processes().items()  # type: ignore[union-attr]
                        if t.startswith(("otelingest: receiver", "otelingest: writer"))}
                prof_out.update(profile(pids, min(20.0, duration / 2), json_path.parent))
            profiler = threading.Thread(target=run_profile, daemon=True)
            profiler.start()
        with serve.client(DB) as c:
            events_before = server_events(c)
        load = loadgen.run(spec, label="ingest")
        load_t0 = load.started_at - sampler.t0
        load_end = time.time() - sampler.t0
        client = serve.client(DB)
        expected = {TABLES[s]: load.accepted.get(s, 0) for s in signals}
        stored, drain_s = wait_stored(client, expected)
        try:
            results["daemon_metrics"] = daemon_metrics(serve)
        except OSError as e:
            results["daemon_metrics"] = {"error": str(e)}
        if profiler:
            profiler.join(120)
        sampler.stop()
        m_from, m_to = load_t0 + spec.warmup, load_end
        accepted_spans = load.measured.get("traces", 0) / load.seconds
        results.update({
            "accepted_spans_per_s": round(accepted_spans),
            "accepted_items_per_s": round(load.items_per_s),
            "stored_spans_per_s": round(stored_rate(sampler.samples, "otel_traces", m_from, m_to)),
            "acknowledged": expected, "stored": stored, "drain_seconds": round(drain_s, 1),
            "loss": sum(expected.values()) - sum(stored.values()),
            "loss_by_table": {t: expected[t] - stored[t] for t in expected},
            "p50_ms": round(load.percentile(50), 1), "p99_ms": round(load.percentile(99), 1),
            "max_ms": round(max(load.latencies_ms, default=0.0), 1),
            "refusals": load.refusals, "errors": load.errors, "schedule_lag_s": round(load.lag_s, 2),
            "measured_seconds": round(load.seconds, 1),
        })
        results.update(summarize_processes(sampler.samples, m_from, m_to))
        for sig in signals:
            rate = stored_rate(sampler.samples, TABLES[sig], m_from, m_to)
            results[f"stored_{ITEM_NAMES[sig]}_per_s"] = round(rate)
            results.update(per_cpu_second(ITEM_NAMES[sig], rate, results))
        if tenants:
            results["tenants_stored"] = {TABLES[sig]: int(client.query(
                sqlfiles.query("bench/tenants_stored"), parameters={"db": DB, "table": TABLES[sig]}).result_rows[0][0])
                for sig in signals}
        results["clickhouse_profile"] = clickhouse_profile(events_before, server_events(client),
                                                           time.time() - load.started_at)
        if prof_out:
            results["profile"] = prof_out
        print("[ingest] storage: bytes per row, then the same spans under the exporter's schema ...", flush=True)
        storage = storage_report(client, signals, args.sample_rows)
        results["storage"] = storage
        live = storage["live_parts_as_they_are"]
        same = storage.get("same_spans_optimized", {})
        results["bytes_per_span"] = same.get("ours_bytes_per_span", _per_row(live.get("otel_traces")))
        results["exporter_schema_bytes_per_span"] = same.get("exporter_bytes_per_span", 0.0)
        if same:
            results["all_tables_bytes_per_span"] = {
                "ours": same["ours_all_tables_disk_bytes_per_span"],
                "exporter": same["exporter_all_tables_disk_bytes_per_span"], "ratio": same["all_tables_disk_ratio"]}
        for s, key in (("logs", "bytes_per_log"), ("metrics", "bytes_per_point")):
            if TABLES[s] in live:
                results[key] = live[TABLES[s]]["bytes_per_row"]
                # With the rollups the views fill from it (parts as they are, not optimized).
                rows = live[TABLES[s]]["rows"]
                results[f"{key}_all_tables"] = round(
                    sum(live.get(t, {}).get("compressed", 0) for t in [TABLES[s], *ROLLUPS.get(s, [])]) / rows, 1) \
                    if rows else 0.0
        client.close()
        print(f"[ingest] baseline: Python decode + rows + clickhouse-connect insert for {args.baseline_seconds:.0f} s ...",
              flush=True)
        results.update(run_baseline(serve, args.baseline_seconds, seed))
        base = results["baseline_spans_per_s"]
        results["ratio"] = round(results["stored_spans_per_s"] / base, 1) if base else 0.0
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        code = serve.stop()
        results["daemon_exit_code"] = code
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            results["workdir"] = str(workdir)
    results["timeline"] = load.timeline
    title = (f"otelingest bench ingest: target {rate or 'closed loop'} items/s, {spec.processes}x{spec.connections} "
             f"connections ({spec.transport}), {f'{tenants} tenants' if tenants else 'tenancy off'}, "
             f"load avg {results.get('load_average', 0)}")
    png_note = write_results(results, json_path, png_path, load, sampler.samples if sampler else [], load_t0, title)
    print(render_summary(results, json_path, png_path if png_note is None else None))
    if png_note is not None:
        print(png_note)
    return 0


def write_results(results: dict[str, Any], json_path: Path, png_path: Path, load: loadgen.LoadResult,
                  samples: list[dict[str, Any]], offset: float, title: str) -> str | None:
    """The JSON first, then the PNG: no plotting failure can lose the run's figures.

    Returns None if the PNG was written, else the one line that says it was not and why.
    """
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    try:
        plot(png_path, load, samples, offset, title)
    except ImportError as e:
        return f"[ingest] PNG not written: matplotlib is not installed ({e}); pip install 'otelingest[bench]'"
    except Exception as e:  # noqa: BLE001 - any plotting failure: the JSON is already written
        return f"[ingest] PNG not written: plotting failed: {type(e).__name__}: {e}"
    return None


def render_summary(r: dict[str, Any], json_path: Path, png_path: Path | None) -> str:
    same = r.get("storage", {}).get("same_spans_optimized", {})
    lines = [
        "",
        "otelingest bench ingest",
        f"  tenants                      {r['spec'].get('tenants') or 'tenancy off'}",
        f"  sender ceiling (null sink)   {r['sender_max_items_per_s']:>12,} items/s",
        f"  accepted                     {r['accepted_spans_per_s']:>12,} spans/s   ({r['accepted_items_per_s']:,} items/s)",
        f"  stored                       {r['stored_spans_per_s']:>12,} spans/s",
        f"  Python baseline              {r.get('baseline_spans_per_s', 0):>12,} spans/s   ratio {r.get('ratio', 0)}x",
        f"  loss                         {r['loss']:>12,}          (acknowledged {sum(r['acknowledged'].values()):,}, "
        f"stored {sum(r['stored'].values()):,}, drained in {r['drain_seconds']} s)",
        f"  export latency               p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms; "
        f"refusals {r['refusals']}, errors {r['errors']}",
        f"  daemon processes             {r['daemon_rss_mb']:,.0f} MB RSS peak (sum; shared rings counted in each), "
        f"{r['daemon_pss_mb']:,.0f} MB PSS peak, {r['daemon_cpu_percent']:.0f}% CPU mean",
        f"  ClickHouse                   {r['clickhouse_rss_mb']:,.0f} MB RSS peak, {r['clickhouse_cpu_percent']:.0f}% CPU mean",
        f"  load average (1 min)         {r['load_average']} on {r['cpus']} CPUs",
        f"  bytes per span               {r['bytes_per_span']} (ours) vs {r['exporter_schema_bytes_per_span']} "
        f"(Collector exporter schema), ratio {same.get('ratio', '-')}, {same.get('rows', 0):,} spans, OPTIMIZE FINAL",
        f"  with trace-id lookups, disk  {same.get('ours_total_disk_bytes_per_span', 0)} (ours) vs "
        f"{same.get('exporter_total_disk_bytes_per_span', 0)} (exporter), ratio {same.get('total_disk_ratio', '-')}",
        f"  all trace tables, disk       {same.get('ours_all_tables_disk_bytes_per_span', 0)} (ours) vs "
        f"{same.get('exporter_all_tables_disk_bytes_per_span', 0)} (exporter), ratio {same.get('all_tables_disk_ratio', '-')}",
    ]
    for item in ITEM_NAMES.values():
        if f"{item}_per_clickhouse_cpu_s" in r:
            lines.append(f"  {item + ' stored/s':28} {r[f'stored_{item}_per_s']:>12,}          per CPU-second: "
                         f"{r[f'{item}_per_clickhouse_cpu_s']:,} ClickHouse, {r[f'{item}_per_daemon_cpu_s']:,} daemon")
    for k in ("bytes_per_log", "bytes_per_point"):
        if k in r:
            lines.append(f"  {k.replace('_', ' '):28} {r[k]} (live parts as they are)")
    for title, p in r.get("processes", {}).items():
        lines.append(f"    {title:40} {p['cpu_percent']:6.1f}% CPU  {p['rss_mb_max']:8.1f} MB RSS  {p['pss_mb_max']:8.1f} MB PSS")
    lines.append(f"  wrote {json_path} and {png_path}" if png_path else f"  wrote {json_path}")
    return "\n".join(lines)
