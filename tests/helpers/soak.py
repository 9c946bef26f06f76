"""The soak (``make soak``; not part of ``make test``): the whole daemon, embedded ClickHouse, under
mixed traces, logs and metrics at 70% of this machine's measured capacity, with queries running.

1. Calibration: senders at full speed for ``--calibrate-s`` seconds; capacity = the rate of "units"
   (one traces request, one logs request and one metrics request of ``--items`` items each) both
   acknowledged and stored (the lower of the two).
2. Soak: paced senders at ``--fraction`` of that rate for ``--minutes``; a query thread runs Jaeger
   searches and a trace lookup in a loop. Every minute: RSS (the daemon's processes, and
   ClickHouse, apart), active parts, query p95 of that minute.
3. Checks: zero refusals, acknowledged == stored == distinct for each signal, every table readable,
   active parts flat (slope over the second half <= ``--max-parts-slope`` per minute); the slopes
   (least squares) of RSS, parts and query p95 per minute are printed, with a JSON summary
   (``--json``).

Usage: ``python tests/helpers/soak.py --minutes 30 --json soak.json``.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # helpers, conftest

import psutil  # noqa: E402
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2  # noqa: E402

from otelingest.config import DEFAULT_BATCH_TIMEOUT_S  # noqa: E402

from daemon import Daemon  # noqa: E402
from traffic import assert_tables_readable, traces_protobuf  # noqa: E402

RUN = uuid.uuid4().int & 0xFFFF_FFFF
_ids = itertools.count(1)


def logs_protobuf(service: str, request_id: int, n: int, base_ns: int) -> bytes:
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = service
    sl = rl.scope_logs.add()
    sl.scope.name = "soak"
    for k in range(n):
        r = sl.log_records.add()
        r.time_unix_nano = base_ns + k
        r.severity_number = 9
        r.severity_text = "INFO"
        r.body.string_value = f"soak line {request_id} {k} user=alice status=200"
        r.trace_id = RUN.to_bytes(4, "big") + request_id.to_bytes(8, "big") + k.to_bytes(4, "big")
        r.span_id = request_id.to_bytes(5, "big") + k.to_bytes(3, "big")
    return req.SerializeToString()


def metrics_protobuf(service: str, request_id: int, n: int, base_ns: int) -> bytes:
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = service
    sm = rm.scope_metrics.add()
    m = sm.metrics.add()
    m.name = "soak_gauge"
    for k in range(n):
        p = m.gauge.data_points.add()
        p.time_unix_nano = base_ns + k
        p.as_double = float(k)
        a = p.attributes.add(key="seq")
        a.value.string_value = f"{RUN}-{request_id}-{k}"
    return req.SerializeToString()


SIGNALS = (("traces", traces_protobuf), ("logs", logs_protobuf), ("metrics", metrics_protobuf))


class Sender(threading.Thread):
    """Sends units (traces + logs + metrics requests) at ``rate`` units/s (0 = as fast as possible)."""

    def __init__(self, port: int, service: str, items: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.service, self.items, self.rate = port, service, items, rate
        self.stop_event = threading.Event()
        self.acked = {s: 0 for s, _ in SIGNALS}
        self.refused = 0
        self.errors = 0
        self.units = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        start = time.monotonic()
        while not self.stop_event.is_set():
            rid = next(_ids)
            for signal, build in SIGNALS:
                # Stamped as sent, as in production: the newest-first trace search and the
                # dependency job then see the shape they were built for.
                body = build(self.service, rid, self.items, base_ns=time.time_ns())
                while not self.stop_event.is_set():
                    try:
                        conn.request("POST", f"/v1/{signal}", body=body, headers={"Content-Type": "application/x-protobuf"})
                        r = conn.getresponse()
                        r.read()
                    except (OSError, http.client.HTTPException):
                        self.errors += 1
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                        time.sleep(0.1)
                        continue
                    if r.status == 200:
                        self.acked[signal] += self.items
                        break
                    self.refused += 1  # resent: a refusal is a failure of the soak, but no loss
                    time.sleep(0.2)
            self.units += 1
            if self.rate:
                ahead = start + self.units / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        conn.close()


class Querier(threading.Thread):
    """Query API load: Jaeger trace search and a trace by id, one after another; latencies kept."""

    def __init__(self, d: Daemon, service: str) -> None:
        super().__init__(daemon=True)
        self.d, self.service = d, service
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, float]] = []  # (monotonic time, seconds)
        self.errors = 0

    def run(self) -> None:
        k = 0
        while not self.stop_event.is_set():
            k += 1
            if k % 2:
                path = f"/api/traces?service={self.service}&limit=20&lookback=2h"
            else:
                rid = max(1, next(_ids) - 50)
                path = f"/api/traces/{RUN:08x}{rid:016x}00000000"
            t = time.monotonic()
            try:
                with urllib.request.urlopen(self.d.query_url + path, timeout=60) as r:
                    r.read()
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    self.errors += 1
            except OSError:
                self.errors += 1
            self.samples.append((t, time.monotonic() - t))
            self.stop_event.wait(0.5)


class RingSampler(threading.Thread):
    """Once a second, the daemon's own /metrics: bytes waiting in the rings (``otel_queue_size``)
    and refusals by reason, so a refusal can be told apart (ring full, memory, disk)."""

    def __init__(self, d: Daemon) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.stop_event = threading.Event()
        self.queue_bytes: list[tuple[float, float]] = []  # (monotonic time, bytes)
        self.refused: dict[str, float] = {}

    def run(self) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        while not self.stop_event.is_set():
            try:
                text = self.d.metrics_text()
            except OSError:
                text = ""
            queue, refused = 0.0, {}
            for fam in text_string_to_metric_families(text):
                for sample in fam.samples:
                    if sample.name == "otel_queue_size":
                        queue = sample.value
                    elif sample.name == "otel_refused_total":
                        reason = sample.labels["reason"]
                        refused[reason] = refused.get(reason, 0.0) + sample.value
            self.queue_bytes.append((time.monotonic(), queue))
            if refused:
                self.refused = refused
            self.stop_event.wait(1.0)

    def max_queue_mib(self, since: float) -> float:
        return max((b for t, b in self.queue_bytes if t >= since), default=0.0) / 2**20


def tree_rss(pid: int) -> tuple[int, int]:
    """RSS of the daemon's own processes (supervisor, workers) and of the embedded ClickHouse."""
    own = clickhouse = 0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
            if "clickhouse" in " ".join(p.cmdline()):
                clickhouse += rss
            else:
                own += rss
        except psutil.Error:
            pass
    return own, clickhouse


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else (values[0] if values else 0.0)


def parts_by_table(d: Daemon) -> dict[str, int]:
    """Active parts of each table of the database (where a growth comes from)."""
    rows = d.client().query(
        "SELECT table, count() FROM system.parts WHERE database = 'otel' AND active GROUP BY table ORDER BY table").result_rows
    return {str(t): int(n) for t, n in rows}


def merges_running(d: Daemon) -> int:
    return int(d.client().query("SELECT count() FROM system.merges WHERE database = 'otel'").result_rows[0][0])


def stored(d: Daemon, service: str) -> dict[str, tuple[int, int]]:
    c = d.client()
    q = {
        "traces": "SELECT count(), uniqExact(TraceId, SpanId) FROM otel.otel_traces WHERE ServiceName = {s:String}",
        "logs": "SELECT count(), uniqExact(TraceId, SpanId) FROM otel.otel_logs WHERE ServiceName = {s:String}",
        "metrics": "SELECT count(), uniqExact(Attributes['seq']) FROM otel.otel_metrics WHERE ServiceName = {s:String}",
    }
    out = {}
    for signal, sql in q.items():
        (n, distinct), = c.query(sql, parameters={"s": service}).result_rows
        out[signal] = (int(n), int(distinct))
    return out


# Merges keep up when the active parts stop growing: over the second half their least-squares slope
# stays within this many parts per minute (they oscillate with merges; before the larger batches of
# issue 20 it was +226/min on a quiet machine).
MAX_PARTS_SLOPE = 20.0
# "Flat" for the daemon's RSS and the query p95: the least-squares line over the second half rises
# by less than this share of its mean across that half.
MAX_RSS_RISE = 0.10
MAX_QUERY_P95_RISE = 0.25


def rise(points: list[tuple[float, float]]) -> float:
    """How much the least-squares line over ``points`` rises across them, relative to their mean."""
    if len(points) < 2:
        return 0.0
    mean = statistics.fmean(p[1] for p in points)
    span = points[-1][0] - points[0][0]
    return slope(points) * span / mean if mean else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--fraction", type=float, default=0.7)
    ap.add_argument("--calibrate-s", type=float, default=45.0)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--senders", type=int, default=3)
    ap.add_argument("--json", type=Path)
    # The daemon's own default, not the tests' 0.2 s (tests/daemon.py): a soak is production-shaped,
    # and 0.2-s batches alone made 5 INSERTs per second per table whatever the rate.
    ap.add_argument("--batch-timeout-s", type=float, default=DEFAULT_BATCH_TIMEOUT_S)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="units/s to soak at, without calibration (to compare settings at one rate)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="an OTELINGEST_* override for the daemon (repeatable)")
    ap.add_argument("--max-parts-slope", type=float, default=MAX_PARTS_SLOPE,
                    help="active parts per minute over the second half above which the soak fails")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="otelingest-soak-") as tmp:
        env = {"OTELINGEST_WRITER_BATCH_TIMEOUT_S": str(args.batch_timeout_s)}
        env.update(kv.split("=", 1) for kv in args.env)
        d = Daemon(Path(tmp), env=env)
        d.start()
        try:
            return soak(d, args)
        finally:
            d.stop()


def soak(d: Daemon, args: argparse.Namespace) -> int:
    assert d.proc is not None
    capacity = args.rate / args.fraction if args.rate else calibrate(d, args)
    rate = capacity * args.fraction
    print(f"capacity {capacity:.1f} units/s ({capacity * args.items:.0f} items/s per signal); soak at "
          f"{rate:.1f} units/s for {args.minutes:.0f} min", flush=True)
    return run(d, args, capacity, rate)


def calibrate(d: Daemon, args: argparse.Namespace) -> float:
    """Senders at full speed; returns the units/s both acknowledged and stored."""
    cal = [Sender(d.http_port, "soak-calibration", args.items, 0) for _ in range(args.senders)]
    for s in cal:
        s.start()
    # Capacity is what gets *stored* per second: at full speed the receivers acknowledge faster than
    # the writers insert until the rings fill, so the acknowledged rate alone overestimates it.
    time.sleep(10)  # warm-up: rings fill, merges start
    def stored_traces() -> int:
        return int(d.client().query("SELECT count() FROM otel.otel_traces WHERE ServiceName = 'soak-calibration'")
                   .result_rows[0][0])
    u0, n0, t0 = sum(s.units for s in cal), stored_traces(), time.monotonic()
    time.sleep(args.calibrate_s)
    dt = time.monotonic() - t0
    acked_rate = (sum(s.units for s in cal) - u0) / dt
    stored_rate = (stored_traces() - n0) / args.items / dt
    capacity = min(acked_rate, stored_rate)
    print(f"calibration: acknowledged {acked_rate:.1f} units/s, stored {stored_rate:.1f} units/s", flush=True)
    for s in cal:
        s.stop_event.set()
    for s in cal:
        s.join(60)
    time.sleep(20)  # let the calibration load drain
    return capacity


def run(d: Daemon, args: argparse.Namespace, capacity: float, rate: float) -> int:
    assert d.proc is not None
    # 2. Soak.
    service = f"soak-{RUN}"
    senders = [Sender(d.http_port, service, args.items, rate / args.senders) for _ in range(args.senders)]
    querier = Querier(d, service)
    rings = RingSampler(d)
    for s in senders:
        s.start()
    querier.start()
    rings.start()
    start = time.monotonic()
    minutes: list[dict[str, float]] = []
    while time.monotonic() - start < args.minutes * 60:
        time.sleep(max(0.0, start + 60 * (len(minutes) + 1) - time.monotonic()))
        now = time.monotonic()
        lat = [s for t, s in querier.samples if t >= now - 60]
        by_table = parts_by_table(d)
        parts = sum(by_table.values())
        own, ch = tree_rss(d.proc.pid)
        row = {"minute": len(minutes) + 1, "rss_mib": own / 2**20, "clickhouse_rss_mib": ch / 2**20, "parts": parts,
               "query_p95_ms": 1000 * p95(lat), "queries": len(lat), "parts_by_table": by_table,
               "merges_running": merges_running(d),
               "acked_items": sum(sum(s.acked.values()) for s in senders), "refused": sum(s.refused for s in senders),
               "rings_max_mib": round(rings.max_queue_mib(now - 60), 1), "refused_by_reason": dict(rings.refused)}
        minutes.append(row)
        print(json.dumps(row), flush=True)
    for s in senders:
        s.stop_event.set()
    querier.stop_event.set()
    rings.stop_event.set()
    for s in senders:
        s.join(120)
    querier.join(60)
    acked = {sig: sum(s.acked[sig] for s in senders) for sig, _ in SIGNALS}

    # 3. Checks.
    deadline = time.monotonic() + 300
    counts = stored(d, service)
    while any(counts[s][0] < acked[s] for s in acked) and time.monotonic() < deadline:
        time.sleep(2)
        counts = stored(d, service)
    time.sleep(2)
    counts = stored(d, service)

    readable = True
    try:
        assert_tables_readable(d)
    except AssertionError as e:
        readable = False
        print(f"tables NOT readable: {e}", flush=True)
    half = len(minutes) // 2  # the first half includes the warm-up of caches and merges
    summary: dict[str, Any] = {
        "minutes": args.minutes, "fraction": args.fraction, "capacity_units_per_s": round(capacity, 2),
        "items_per_request": args.items, "rate_units_per_s": round(rate, 2),
        "acknowledged": acked, "stored": {k: v[0] for k, v in counts.items()},
        "distinct": {k: v[1] for k, v in counts.items()},
        "refused": sum(s.refused for s in senders), "send_errors": sum(s.errors for s in senders),
        "query_errors": querier.errors, "tables_readable": readable,
        "rss_mib_first_last": [round(minutes[0]["rss_mib"], 1), round(minutes[-1]["rss_mib"], 1)],
        "rss_slope_mib_per_min_second_half": round(slope([(m["minute"], m["rss_mib"]) for m in minutes[half:]]), 3),
        "clickhouse_rss_slope_mib_per_min_second_half": round(
            slope([(m["minute"], m["clickhouse_rss_mib"]) for m in minutes[half:]]), 3),
        "parts_first_last": [minutes[0]["parts"], minutes[-1]["parts"]],
        "parts_slope_per_min_second_half": round(slope([(m["minute"], m["parts"]) for m in minutes[half:]]), 3),
        "query_p95_ms_first_last": [round(minutes[0]["query_p95_ms"], 1), round(minutes[-1]["query_p95_ms"], 1)],
        "query_p95_slope_ms_per_min_second_half": round(slope([(m["minute"], m["query_p95_ms"]) for m in minutes[half:]]), 3),
        "rss_rise_second_half": round(rise([(m["minute"], m["rss_mib"]) for m in minutes[half:]]), 3),
        "query_p95_rise_second_half": round(rise([(m["minute"], m["query_p95_ms"]) for m in minutes[half:]]), 3),
        "per_minute": minutes,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "per_minute"}, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    parts_flat = summary["parts_slope_per_min_second_half"] <= args.max_parts_slope
    print(f"active parts slope over the second half: {summary['parts_slope_per_min_second_half']:+.1f}/min "
          f"(limit {args.max_parts_slope:+.1f}/min): {'flat' if parts_flat else 'GROWING, merges fall behind'}",
          flush=True)
    rss_rise, p95_rise = summary["rss_rise_second_half"], summary["query_p95_rise_second_half"]
    rss_flat, p95_flat = rss_rise <= MAX_RSS_RISE, p95_rise <= MAX_QUERY_P95_RISE
    print(f"daemon RSS rise over the second half {rss_rise:+.1%} (limit {MAX_RSS_RISE:+.0%}): "
          f"{'flat' if rss_flat else 'GROWING'}; query p95 rise {p95_rise:+.1%} (limit {MAX_QUERY_P95_RISE:+.0%}): "
          f"{'flat' if p95_flat else 'GROWING'}", flush=True)
    ok = (summary["refused"] == 0 and readable and parts_flat and rss_flat and p95_flat
          and all(counts[s] == (acked[s], acked[s]) for s in acked))
    print("SOAK PASSED" if ok else "SOAK FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
