"""OTLP load generator: pre-encoded realistic requests over gRPC and HTTP, open or closed loop.

Cheap for the sender by construction: each sender process builds a few templates per signal with
:mod:`otelingest.bench.payloads` (protobuf, a few hundred items each) and records the byte offsets of every
trace id and every nanosecond timestamp in them. A send copies a template and patches, with numpy,
the first 8 bytes of every trace id (sender index and a per-process sequence number: ids never
repeat across sends) and shifts every timestamp so the request's first item is "now". No SDK, no
protobuf encoding in the hot path: HTTP is raw HTTP/1.1 keep-alive on asyncio (uvloop) streams, gRPC
is grpc.aio with generic raw-bytes unary calls.

Pacing: open loop at a target rate (items/s split evenly across processes and connections; a
connection that falls behind sends at once and the report shows the shortfall) or closed loop
(every connection sends back to back: the maximum sustainable rate). Refusals (HTTP 429/502/503/504
with Retry-After, in seconds or as an HTTP date; gRPC RESOURCE_EXHAUSTED/UNAVAILABLE with a RetryInfo
trailer; 1 s when there is no hint) are counted and the same request is retried after the hinted
delay, as an OTLP exporter does; a retry that would start after the run's end is abandoned. Any other
answer, or a broken connection, fails the request (counted, not retried).

The target is any OTLP endpoint (``otelingest loadgen``): extra headers on every request (e.g.
authorization) and TLS verified against a given CA, or plain TCP.

Each process reports every :data:`REPORT_S` seconds to the parent, which prints a progress line
and keeps a per-second timeline (rate, latency percentiles, refusals) for the report and plot.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .payloads import SEED, Generator
from .ports import free_ports

REPORT_S = 0.5
TEMPLATES_PER_SIGNAL = 32
ITEMS_PER_REQUEST = 500
REQUEST_TIMEOUT_S = 30.0
DEFAULT_RETRY_S = 1.0
# HTTP answers an OTLP exporter retries (OTLP/HTTP spec), after Retry-After if given.
HTTP_RETRYABLE = frozenset({429, 502, 503, 504})
# A connection this far behind its schedule stops trying to catch up (the shortfall shows as rate).
MAX_LAG_S = 1.0

SIGNALS = {
    # signal: (HTTP path, gRPC method)
    "traces": ("/v1/traces", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
    "logs": ("/v1/logs", "/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
    "metrics": ("/v1/metrics", "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"),
}


# --- templates -------------------------------------------------------------------------------------

@dataclass
class Template:
    signal: str
    body: bytes
    items: int
    ts_index: np.ndarray  # (n, 8) byte positions of each fixed64 timestamp
    ts_values: np.ndarray  # (n,) int64 original values
    ts_base: int  # earliest item time: shifted to "now" per send
    id_index: np.ndarray  # (m, 16) byte positions of each trace id occurrence
    id_trace: np.ndarray  # (m,) which trace (0..traces-1) each occurrence belongs to
    span_index: np.ndarray  # (k, 8) byte positions of each span id occurrence (span, parent, log record)
    span_trace: np.ndarray  # (k,) the trace of each span id occurrence
    span_values: np.ndarray  # (k,) uint64 original span ids
    traces: int


def _offsets(body: bytes, needle: bytes) -> list[int]:
    out, i = [], body.find(needle)
    while i >= 0:
        out.append(i)
        i = body.find(needle, i + len(needle))
    return out


class _Finder:
    """:func:`_offsets` for many needles of 8 bytes or more in one body: the little-endian uint64 at every
    offset, sorted once, so each needle is a binary search (thousands of ``bytes.find`` scans took
    about 0.2 s per template)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        a = np.frombuffer(body, dtype=np.uint8)
        words = (np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(a, 8)).view("<u8").ravel()
                 if len(a) >= 8 else np.empty(0, dtype=np.uint64))
        self.order = np.argsort(words, kind="stable")
        self.words = words[self.order]

    def offsets(self, needle: bytes) -> list[int]:
        """Non-overlapping occurrences, leftmost first: what :func:`_offsets` returns."""
        if len(needle) < 8:
            return _offsets(self.body, needle)
        key = np.uint64(int.from_bytes(needle[:8], "little"))
        lo, hi = np.searchsorted(self.words, key, "left"), np.searchsorted(self.words, key, "right")
        out: list[int] = []
        after = 0
        for c in sorted(self.order[lo:hi].tolist()):
            if c >= after and self.body[c:c + len(needle)] == needle:
                out.append(c)
                after = c + len(needle)
        return out


def _timestamps_and_ids(signal: str, body: bytes) -> tuple[set[int], int, dict[bytes, set[bytes]]]:
    """Every timestamp value, the earliest item time (span start, log time, point time: not a counter's
    start time), and trace id -> the span ids that belong to it (spans, parents, log records)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    ts: set[int] = set()
    first: list[int] = []
    ids: dict[bytes, set[bytes]] = {}
    if signal == "traces":
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    ts.update((s.start_time_unix_nano, s.end_time_unix_nano))
                    first.append(s.start_time_unix_nano)
                    ts.update(e.time_unix_nano for e in s.events)
                    ids.setdefault(s.trace_id, set()).add(s.span_id)
    elif signal == "logs":
        for rl in ExportLogsServiceRequest.FromString(body).resource_logs:
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    ts.update((r.time_unix_nano, r.observed_time_unix_nano))
                    first.append(r.time_unix_nano)
                    ids.setdefault(r.trace_id, set()).add(r.span_id)
    else:
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in getattr(m, m.WhichOneof("data")).data_points:
                        ts.update((p.time_unix_nano, p.start_time_unix_nano))
                        first.append(p.time_unix_nano)
    ts.discard(0)
    ids.pop(b"", None)
    return ts, min(first, default=0), ids


def make_template(signal: str, body: bytes, items: int) -> Template:
    """Find the patch points by value: nanosecond timestamps and random ids do not occur by chance."""
    ts, first, ids = _timestamps_and_ids(signal, body)
    find = _Finder(body)
    ts_pos: list[int] = []
    ts_val: list[int] = []
    for v in sorted(ts):
        for off in find.offsets(v.to_bytes(8, "little")):
            ts_pos.append(off)
            ts_val.append(v)
    id_pos, id_trace, span_pos, span_trace, span_val = [], [], [], [], []
    for n, (tid, spans) in enumerate(ids.items()):
        for off in find.offsets(tid):
            id_pos.append(off)
            id_trace.append(n)
        for sid in spans:
            for off in find.offsets(sid):
                span_pos.append(off)
                span_trace.append(n)
                span_val.append(int.from_bytes(sid, "little"))
    r8, r16 = np.arange(8, dtype=np.int64), np.arange(16, dtype=np.int64)
    return Template(
        signal, body, items,
        ts_index=np.asarray(ts_pos, dtype=np.int64).reshape(-1, 1) + r8,
        ts_values=np.asarray(ts_val, dtype=np.int64),
        ts_base=first,
        id_index=np.asarray(id_pos, dtype=np.int64).reshape(-1, 1) + r16,
        id_trace=np.asarray(id_trace, dtype=np.int64),
        span_index=np.asarray(span_pos, dtype=np.int64).reshape(-1, 1) + r8,
        span_trace=np.asarray(span_trace, dtype=np.int64),
        span_values=np.asarray(span_val, dtype=np.uint64),
        traces=len(ids),
    )


def build_templates(signal: str, n: int = TEMPLATES_PER_SIGNAL, seed: int = SEED) -> list[Template]:
    g = Generator(seed)
    out = []
    for _ in range(n):
        p = g.traces(ITEMS_PER_REQUEST) if signal == "traces" else (
            g.logs(ITEMS_PER_REQUEST) if signal == "logs" else g.metrics(ITEMS_PER_REQUEST // 5))
        out.append(make_template(signal, p.body, p.items))
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


def _mix64(x: np.ndarray) -> np.ndarray:
    """A bijection of uint64 (splitmix64's finalizer): distinct inputs give distinct, random-looking outputs."""
    x = x * _GOLDEN
    x ^= x >> np.uint64(31)
    x = x * _MIX
    x ^= x >> np.uint64(29)
    return x


class Patcher:
    """Fresh ids, current timestamps and jittered durations for every send of a template.

    Trace ids: 8 bytes from a bijection of (sender, send number, trace in request), so they never repeat,
    and 8 more derived from them; span ids: the template's XOR a per-trace key, so parent links hold.
    """

    def __init__(self, sender: int, seed: int = SEED) -> None:
        self.sender = sender
        self.seq = 0
        self.rng = np.random.default_rng(seed + sender)

    def render(self, t: Template, now_ns: int | None = None) -> bytes:
        self.seq += 1
        buf = bytearray(t.body)
        arr = np.frombuffer(buf, dtype=np.uint8)
        if len(t.ts_values):
            delta = (now_ns or time.time_ns()) - t.ts_base
            jitter = self.rng.integers(0, 20_000, len(t.ts_values))  # < the shortest span (50 us)
            arr[t.ts_index] = (t.ts_values + delta + jitter).view(np.uint8).reshape(-1, 8)
        if t.traces:
            base = np.uint64((self.sender & 0xFFFF) << 48 | (self.seq & 0xFFFF_FFFF) << 16)
            with np.errstate(over="ignore"):
                keys = _mix64(base + np.arange(t.traces, dtype=np.uint64))
                hi = _mix64(keys ^ _MIX)
            ids = np.stack([keys, hi], axis=1)[t.id_trace]
            arr[t.id_index] = ids.view(np.uint8).reshape(-1, 16)
            if len(t.span_values):
                arr[t.span_index] = (t.span_values ^ hi[t.span_trace]).view(np.uint8).reshape(-1, 8)
        return bytes(buf)


# --- senders ---------------------------------------------------------------------------------------

@dataclass
class LoadSpec:
    host: str = "127.0.0.1"
    http_port: int | None = None
    grpc_port: int | None = None
    rate: float | None = 100_000  # items/s over all processes; None = closed loop
    duration: float = 60.0
    warmup: float = 5.0
    connections: int = 8  # per process
    processes: int = 1
    mix: dict[str, int] = field(default_factory=lambda: {"traces": 1})
    transport: str = "both"  # grpc | http | both
    seed: int = SEED
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (HTTP headers, gRPC metadata)
    ca_file: str | None = None  # TLS, the server verified against this CA; None = plain TCP
    # > 0: each request names one of this many tenants (X-Scope-OrgID / gRPC metadata x-scope-orgid),
    # round robin, so the load spreads evenly over them (`bench ingest --tenants`).
    tenants: int = 0


TENANT_HEADER = "x-scope-orgid"


def tenant_ids(n: int) -> list[str]:
    """The tenant ids a load of ``n`` tenants names: ``tenant-0`` ... ``tenant-<n-1>``."""
    return [f"tenant-{i}" for i in range(n)]


def parse_mix(text: str) -> dict[str, int]:
    """``traces:2,logs:1,metrics`` -> {signal: weight}; SystemExit naming an unknown signal."""
    out = {}
    for part in text.split(","):
        name, _, w = part.strip().partition(":")
        if name not in SIGNALS:
            raise SystemExit(f"unknown signal {name!r} (traces, logs, metrics)")
        out[name] = int(w or 1)
    return out


class Refused(Exception):
    def __init__(self, retry_s: float) -> None:
        self.retry_s = retry_s


def retry_after_s(value: str | None) -> float:
    """Seconds from an HTTP Retry-After value (delay-seconds or an HTTP date), else the default."""
    if not value:
        return DEFAULT_RETRY_S
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return DEFAULT_RETRY_S


def client_ssl_context(ca_file: str) -> Any:
    import ssl

    return ssl.create_default_context(cafile=ca_file)


class HttpConn:
    """One HTTP/1.1 keep-alive connection (TLS when ``ssl_ctx``); raw bytes both ways."""

    def __init__(self, host: str, port: int, headers: tuple[tuple[str, str], ...] = (), ssl_ctx: Any = None) -> None:
        self.host, self.port, self.ssl_ctx = host, port, ssl_ctx
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers)

    async def send(self, path: str, body: bytes, tenant: str | None = None) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl_ctx, server_hostname=self.host if self.ssl_ctx else None)
        assert self.reader is not None
        extra = self.extra if tenant is None else f"{self.extra}X-Scope-OrgID: {tenant}\r\n"
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/x-protobuf\r\n"
                f"{extra}Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            self.writer.write(head)
            self.writer.write(body)
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            if "chunked" in headers.get("transfer-encoding", "").lower():
                await self._skip_chunked()
            else:
                n = int(headers.get("content-length", "0"))
                if n:
                    await self.reader.readexactly(n)
            if headers.get("connection", "").lower() == "close":
                self.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise
        if status in HTTP_RETRYABLE:
            raise Refused(retry_after_s(headers.get("retry-after")))
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    async def _skip_chunked(self) -> None:
        assert self.reader is not None
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                    pass
                return
            await self.reader.readexactly(size + 2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _fields(buf: bytes) -> dict[int, int | bytes]:
    """The varint and length-delimited fields of a protobuf message (the last one of each number)."""
    out: dict[int, int | bytes] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < len(buf):
        key = varint()
        if key & 7 == 0:
            out[key >> 3] = varint()
        elif key & 7 == 2:
            n = varint()
            out[key >> 3] = buf[i:i + n]
            i += n
        else:
            break  # not in a RetryInfo
    return out


def retry_info_s(trailers: Any) -> float:
    """Seconds from a google.rpc.RetryInfo trailer (retry_delay: Duration seconds and nanos), else the default."""
    for key, value in trailers or ():
        if key == "google.rpc.retryinfo-bin" and isinstance(value, bytes):
            try:
                delay = _fields(value).get(1)
                if isinstance(delay, bytes):
                    d = _fields(delay)
                    secs, nanos = d.get(1, 0), d.get(2, 0)
                    if isinstance(secs, int) and isinstance(nanos, int):
                        return secs + nanos / 1e9
            except IndexError:
                pass
    return DEFAULT_RETRY_S


class GrpcConn:
    def __init__(self, host: str, port: int, headers: tuple[tuple[str, str], ...] = (),
                 ca_file: str | None = None) -> None:
        import grpc  # type: ignore[import-untyped]

        self.grpc = grpc
        # A local subchannel pool: each GrpcConn is its own TCP connection (SO_REUSEPORT spreads them).
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_send_message_length", 64 << 20)]
        if ca_file:
            with open(ca_file, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self.channel = grpc.aio.secure_channel(f"{host}:{port}", creds, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(f"{host}:{port}", options=options)
        self.metadata = tuple((k.lower(), v) for k, v in headers) or None
        self.calls = {s: self.channel.unary_unary(m, request_serializer=None, response_deserializer=None)
                      for s, (_, m) in SIGNALS.items()}

    async def send(self, signal: str, body: bytes, tenant: str | None = None) -> None:
        metadata = self.metadata if tenant is None else (*(self.metadata or ()), (TENANT_HEADER, tenant))
        try:
            await self.calls[signal](body, timeout=REQUEST_TIMEOUT_S, metadata=metadata)
        except self.grpc.aio.AioRpcError as e:
            if e.code() in (self.grpc.StatusCode.RESOURCE_EXHAUSTED, self.grpc.StatusCode.UNAVAILABLE):
                raise Refused(retry_info_s(e.trailing_metadata())) from None
            raise RuntimeError(f"gRPC {e.code().name}: {e.details()}") from None

    def close(self) -> None:
        pass


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.items: dict[str, int] = {}
        self.requests = 0
        self.refusals = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.lag = 0.0
        # Per signal: refusal answers (each retried), failed requests, refused requests given up at the end.
        self.refused: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.abandoned: dict[str, int] = {}
        self.error_kinds: dict[str, int] = {}

    def count(self, what: dict[str, int], key: str, n: int = 1) -> None:
        what[key] = what.get(key, 0) + n

    def snapshot(self) -> dict[str, Any]:
        out = {"items": self.items, "requests": self.requests, "refusals": self.refusals, "errors": self.errors,
               "latencies": self.latencies, "lag": self.lag, "refused": self.refused, "failed": self.failed,
               "abandoned": self.abandoned, "error_kinds": self.error_kinds}
        self.reset()
        return out


async def _connection(spec: LoadSpec, conn: Any, is_grpc: bool, templates: dict[str, list[Template]],
                      order: list[str], patcher: Patcher, stats: Stats, interval: float | None,
                      start: float, stop_at: float, offset: int, end: Any = None) -> None:
    """``end``: a shared wall-clock time (0 = not set) at which the run ends before ``stop_at``."""
    loop = asyncio.get_running_loop()
    next_t = start
    k = offset
    tenants = tenant_ids(spec.tenants)

    def ended() -> bool:
        return end is not None and 0.0 < end.value <= time.time()

    while True:
        now = loop.time()
        if now >= stop_at or ended():
            break
        if interval is not None:
            if next_t >= stop_at:
                # The next send is due after the run: none (it was one extra per connection), and the
                # run still lasts its duration, which the rate is measured over.
                await asyncio.sleep(stop_at - now)
                break
            if next_t > now:
                await asyncio.sleep(next_t - now)
            elif now - next_t > MAX_LAG_S:
                stats.lag += now - next_t
                next_t = now
            next_t += interval
        signal = order[k % len(order)]
        t = templates[signal][k // len(order) % len(templates[signal])]
        # Each connection starts its round robin at its own share of the tenants, so a run with
        # fewer requests per connection than tenants still names every one.
        tenant = tenants[(k + offset * len(tenants) // max(1, spec.connections)) % len(tenants)] if tenants else None
        k += 1
        body = patcher.render(t)
        while True:
            sent = time.perf_counter()  # uvloop's loop.time() has millisecond resolution
            try:
                if is_grpc:
                    await conn.send(signal, body, tenant)
                else:
                    await conn.send(SIGNALS[signal][0], body, tenant)
            except Refused as r:
                stats.refusals += 1
                stats.count(stats.refused, signal)
                if loop.time() + r.retry_s >= stop_at or ended():
                    stats.count(stats.abandoned, signal)
                    break  # the run is over: this request is abandoned, never counted as accepted
                await asyncio.sleep(r.retry_s)
                continue
            except Exception as e:
                stats.errors += 1
                stats.count(stats.failed, signal)
                stats.count(stats.error_kinds, (str(e) or type(e).__name__)[:160])
                await asyncio.sleep(0.1)
                break
            stats.latencies.append((time.perf_counter() - sent) * 1000)
            stats.requests += 1
            stats.count(stats.items, signal, t.items)
            break
    conn.close()


async def _sender_main(spec: LoadSpec, index: int, out: Any, go: Any, end: Any = None) -> None:
    templates = {s: build_templates(s, seed=spec.seed + 1000 * index + i) for i, s in enumerate(spec.mix)}
    order = [s for s, w in spec.mix.items() for _ in range(w)]
    patcher = Patcher(index, spec.seed)
    stats = Stats()
    kinds = ["grpc"] * spec.connections if spec.transport == "grpc" else (
        ["http"] * spec.connections if spec.transport == "http" else
        ["grpc" if i % 2 else "http" for i in range(spec.connections)])
    ssl_ctx = client_ssl_context(spec.ca_file) if spec.ca_file else None
    conns = [GrpcConn(spec.host, spec.grpc_port, spec.headers, spec.ca_file) if k == "grpc"  # type: ignore[arg-type]
             else HttpConn(spec.host, spec.http_port, spec.headers, ssl_ctx) for k in kinds]  # type: ignore[arg-type]
    out.put(("ready", index, None))
    loop = asyncio.get_running_loop()
    # All processes start together at the wall-clock time the parent sets once every one is ready.
    while go.value == 0.0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(max(0.0, go.value - time.time()))
    start = loop.time()
    stop_at = start + spec.warmup + spec.duration
    interval = None
    if spec.rate:
        per_conn = spec.rate / spec.processes / spec.connections
        interval = ITEMS_PER_REQUEST / per_conn
    tasks = [asyncio.create_task(_connection(spec, c, k == "grpc", templates, order, patcher, stats, interval,
                                             start + (interval or 0) * i / len(conns), stop_at, i, end))
             for i, (c, k) in enumerate(zip(conns, kinds))]

    async def report() -> None:
        while True:
            await asyncio.sleep(REPORT_S)
            out.put(("stats", index, stats.snapshot()))

    reporter = asyncio.create_task(report())
    await asyncio.gather(*tasks)
    reporter.cancel()
    out.put(("stats", index, stats.snapshot()))
    for c in conns:
        if isinstance(c, GrpcConn):
            await c.channel.close()
    out.put(("done", index, None))


def _sender_entry(spec: LoadSpec, index: int, out: Any, go: Any, end: Any = None) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    asyncio.run(_sender_main(spec, index, out, go, end))


# --- the parent: aggregation, progress, summary ---------------------------------------------------

@dataclass
class LoadResult:
    spec: LoadSpec
    accepted: dict[str, int]  # items accepted over the whole run (warm-up included): the loss baseline
    measured: dict[str, int]  # items accepted after the warm-up
    seconds: float  # measurement window
    requests: int
    refusals: int
    errors: int
    lag_s: float
    latencies_ms: list[float]  # after warm-up
    timeline: list[dict[str, float]]  # per second: t, items_per_s, p50_ms, p99_ms, refusals, errors
    started_at: float = 0.0  # wall-clock time the senders started (timeline t = 0)
    all_latencies_ms: list[float] = field(default_factory=list)  # warm-up included
    # Per signal: refusal answers (each retried), failed requests, refused requests abandoned at the end.
    refused: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    abandoned: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)  # failure message -> count

    @property
    def items_per_s(self) -> float:
        return sum(self.measured.values()) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict[str, Any]:
        return {
            "items_per_s": round(self.items_per_s),
            "accepted": dict(self.accepted),
            "requests": self.requests, "refusals": self.refusals, "errors": self.errors,
            "schedule_lag_s": round(self.lag_s, 2),
            "p50_ms": round(self.percentile(50), 2), "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2), "max_ms": round(max(self.latencies_ms, default=0.0), 2),
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def run(spec: LoadSpec, *, progress: bool = True, label: str = "load", started: threading.Event | None = None,
        stop: threading.Event | None = None) -> LoadResult:
    """Send ``spec``'s load and gather the senders' reports. ``started`` is set once the senders have
    built their templates and start sending; ``stop`` (set from another thread) ends the run before
    ``spec.duration``: the senders finish their requests in flight and report, so what was accepted is
    known when a run's length is not (``bench query --with-ingest``)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    go = ctx.Value("d", 0.0)
    end = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_sender_entry, args=(spec, i, out, go, end), daemon=True)
             for i in range(spec.processes)]
    for p in procs:
        p.start()
    ready = 0
    while ready < spec.processes:
        kind, _, _ = out.get(timeout=120)
        ready += kind == "ready"
    go_at = time.time() + 0.3
    go.value = go_at
    if started is not None:
        started.set()
    accepted: dict[str, int] = {}
    measured: dict[str, int] = {}
    requests = refusals = errors = 0
    lag = 0.0
    latencies: list[float] = []
    timeline: list[dict[str, float]] = []
    bucket: dict[str, Any] = {"items": 0, "lat": [], "refusals": 0, "errors": 0}
    all_latencies: list[float] = []
    per_signal: dict[str, dict[str, int]] = {"refused": {}, "failed": {}, "abandoned": {}, "error_kinds": {}}
    bucket_end = go_at + 1.0
    done = 0
    printed = 0.0

    def flush_bucket(t_end: float) -> None:
        nonlocal bucket
        lat = bucket["lat"]
        timeline.append({"t": round(t_end - go_at, 2), "items_per_s": bucket["items"],
                         "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2),
                         "refusals": bucket["refusals"], "errors": bucket["errors"]})
        bucket = {"items": 0, "lat": [], "refusals": 0, "errors": 0}

    while done < spec.processes:
        if stop is not None and stop.is_set() and not end.value:
            end.value = time.time()
        try:
            kind, _, data = out.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
            continue
        now = time.time()
        while now >= bucket_end:
            flush_bucket(bucket_end)
            bucket_end += 1.0
            if progress and timeline and bucket_end - printed >= 1.0:
                printed = bucket_end
                row = timeline[-1]
                phase = "warm-up" if row["t"] <= spec.warmup else "measure"
                print(f"[{label}] t={row['t']:5.0f}s {phase:7} {row['items_per_s']:>9,.0f} items/s  "
                      f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  refusals {row['refusals']}"
                      + (f"  errors {row['errors']}" if row["errors"] else ""), flush=True)
        if kind == "done":
            done += 1
            continue
        if kind != "stats":
            continue
        n = sum(data["items"].values())
        for s, v in data["items"].items():
            accepted[s] = accepted.get(s, 0) + v
        in_window = now - go_at > spec.warmup + REPORT_S / 2
        if in_window:
            for s, v in data["items"].items():
                measured[s] = measured.get(s, 0) + v
            latencies.extend(data["latencies"])
        all_latencies.extend(data["latencies"])
        for key, counts in per_signal.items():
            for s, v in data[key].items():
                counts[s] = counts.get(s, 0) + v
        requests += data["requests"]
        refusals += data["refusals"]
        errors += data["errors"]
        lag += data["lag"]
        bucket["items"] += n
        bucket["lat"].extend(data["latencies"])
        bucket["refusals"] += data["refusals"]
        bucket["errors"] += data["errors"]
    if bucket["items"] or bucket["lat"]:
        flush_bucket(bucket_end)
    for p in procs:
        p.join(10)
    ended = time.time()
    seconds = max(1e-9, min(ended, go_at + spec.warmup + spec.duration) - (go_at + spec.warmup))
    return LoadResult(spec, accepted, measured, seconds, requests, refusals, errors, lag, latencies, timeline, go_at,
                      all_latencies, **per_signal)


# --- a null sink: the sender's own ceiling --------------------------------------------------------

def _null_sink_process(http_port: int, grpc_port: int, ready: Any) -> None:
    import grpc  # type: ignore[import-untyped]
    import uvloop

    uvloop.install()

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.buf = b""
            self.need = -1

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                if self.need < 0:
                    i = self.buf.find(b"\r\n\r\n")
                    if i < 0:
                        return
                    head = self.buf[:i].lower()
                    j = head.find(b"content-length:")
                    n = int(head[j + 15:].split(b"\r\n", 1)[0]) if j >= 0 else 0
                    self.buf = self.buf[i + 4:]
                    self.need = n
                if len(self.buf) < self.need:
                    return
                self.buf = self.buf[self.need:]
                self.need = -1
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")

    async def main() -> None:
        server = grpc.aio.server()

        async def export(request: bytes, context: Any) -> bytes:
            return b""

        for _, method in SIGNALS.values():
            service = method.split("/")[1]
            handler = grpc.method_handlers_generic_handler(service, {"Export": grpc.unary_unary_rpc_method_handler(export)})
            server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{grpc_port}")
        await server.start()
        loop = asyncio.get_running_loop()
        await loop.create_server(Proto, "127.0.0.1", http_port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def sender_ceiling(spec: LoadSpec, seconds: float = 5.0) -> float:
    """Closed-loop items/s of ``spec``'s senders against a null sink in its own process."""
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    hp, gp = free_ports(2)
    sink = ctx.Process(target=_null_sink_process, args=(hp, gp, ready), daemon=True)
    sink.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("null sink did not start")
        null = LoadSpec(host="127.0.0.1", http_port=hp, grpc_port=gp, rate=None, duration=seconds, warmup=1.0,
                        connections=spec.connections, processes=spec.processes, mix=spec.mix,
                        transport=spec.transport, seed=spec.seed)
        return run(null, progress=False, label="null sink").items_per_s
    finally:
        sink.terminate()
        sink.join(5)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0
