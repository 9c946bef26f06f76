"""``otelingest status``: one screen about a running daemon, read the way an operator would.

A client only: it reads the daemon's ``/metrics`` twice a second apart (rates) and ``/ready``,
finds the daemon's processes by their titles (``otelingest: supervisor|receiver N|writer N|query|
clickhouse``) under the supervisor that listens on the metrics port, and asks ClickHouse for the
table sizes (``sql/queries/ops/table_stats.sql``). Per-process item rates are not available:
counters are aggregated over every process in ``/metrics``, so the process table shows CPU and RSS.

With tenancy on, a TENANTS table from ``/metrics``: per tenant, items accepted (rate and total),
refused (requests, and items by reason), stored items and estimated bytes on disk (the
supervisor's estimate, at most a minute old: ``otelingest.selfmon.tablestats``); tenants beyond
``tenancy.max_metric_tenants`` are summed as ``<other>``.

Exit status: 0 ready, 2 running but not ready, 1 the metrics endpoint does not answer.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from . import catalog as names
from ..config import Config
from ..clickhouse.sqlfiles import query

EXIT_READY = 0
EXIT_UNREACHABLE = 1
EXIT_NOT_READY = 2
SAMPLE_INTERVAL_S = 1.0
TITLE_PREFIX = "otelingest: "
HTTP_TIMEOUT_S = 5.0

# Sample = (name, sorted label pairs) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

SIGNALS = (
    ("spans", "otel_received_spans_total"),
    ("logs", "otel_received_logs_total"),
    ("metric points", "otel_received_metric_points_total"),
)


@dataclass
class ProcessInfo:
    role: str
    pid: int
    cpu_percent: float
    rss_bytes: int


@dataclass
class TableInfo:
    table: str
    rows: int
    bytes_on_disk: int
    compressed_bytes: int
    uncompressed_bytes: int
    parts: int
    max_partition_parts: int


@dataclass
class TenantInfo:
    tenant: str
    accepted_per_s: float = 0.0  # spans + log records + metric points
    accepted_total: float = 0.0
    refused_items: dict[str, float] = field(default_factory=dict)  # reason -> items since start
    refused_requests: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # signal -> stored items
    bytes_on_disk: int = 0


@dataclass
class Status:
    metrics_url: str
    reachable: bool
    ready: bool = False
    reason: str = ""
    interval_s: float = 0.0
    processes: list[ProcessInfo] = field(default_factory=list)
    # per second, by signal then transport
    received: dict[str, dict[str, float]] = field(default_factory=dict)
    received_total: dict[str, dict[str, float]] = field(default_factory=dict)  # since start
    writes: dict[str, float] = field(default_factory=dict)  # per second, by status
    writes_total: dict[str, float] = field(default_factory=dict)  # batches since start, by status
    refused: dict[str, float] = field(default_factory=dict)  # per second, by reason
    refused_total: dict[str, float] = field(default_factory=dict)  # since start, by reason
    memory: dict[str, float] = field(default_factory=dict)  # "process/kind" -> bytes
    memory_limits: dict[str, float] = field(default_factory=dict)  # soft, hard
    ring_bytes: float | None = None
    spill_bytes: float | None = None
    spill_budget_bytes: float | None = None
    disk_low: bool = False
    disk_free: dict[str, float] = field(default_factory=dict)  # clickhouse (unreserved), spill
    disk_floor: dict[str, float] = field(default_factory=dict)
    detached_parts: dict[str, float] = field(default_factory=dict)  # table -> parts
    detached_rows: dict[str, float] = field(default_factory=dict)  # table -> rows
    data_errors: dict[str, float] = field(default_factory=dict)  # error name -> count
    clickhouse_url: str = ""
    clickhouse_ok: bool = False
    clickhouse_error: str = ""
    clickhouse_version: str = ""
    clickhouse_uptime_s: int = 0
    tables: list[TableInfo] = field(default_factory=list)
    tenancy: str = "off"
    tenants: list[TenantInfo] = field(default_factory=list)

    def exit_code(self) -> int:
        if not self.reachable:
            return EXIT_UNREACHABLE
        return EXIT_READY if self.ready else EXIT_NOT_READY

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


# --- reading the daemon ---------------------------------------------------------------------------


def _http(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def parse_metrics(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """Sum of the samples of ``name`` grouped by one label."""
    out: dict[str, float] = {}
    for (n, labels), v in samples.items():
        if n == name:
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


def rates(before: Samples, after: Samples, name: str, label: str, seconds: float) -> dict[str, float]:
    """Per-second increase of a counter between two samples, by one label (a reset counts from 0)."""
    a, b = by_label(before, name, label), by_label(after, name, label)
    out = {}
    for key, v in b.items():
        prev = a.get(key, 0.0)
        out[key] = (v - prev if v >= prev else v) / seconds
    return out


def single(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def metrics_base(cfg: Config) -> str:
    host = cfg.metrics.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{cfg.metrics.port}"


# --- processes ------------------------------------------------------------------------------------


def find_supervisor(port: int) -> psutil.Process | None:
    """The ``otelingest: supervisor`` process listening on the metrics port (several may run)."""
    for p in psutil.process_iter(["cmdline"]):
        try:
            if " ".join(p.info["cmdline"] or []).strip() != TITLE_PREFIX + "supervisor":
                continue
            for c in p.net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
                    return p
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return None


def _role(p: psutil.Process) -> str | None:
    title = " ".join(p.cmdline()).strip()
    return title[len(TITLE_PREFIX):] if title.startswith(TITLE_PREFIX) else None


def daemon_processes(supervisor: psutil.Process) -> list[psutil.Process]:
    out = [supervisor]
    for child in supervisor.children(recursive=True):
        try:
            if _role(child) is not None:
                out.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _order(role: str) -> tuple[int, str]:
    kind, _, index = role.partition(" ")
    rank = {"supervisor": 0, "receiver": 1, "writer": 2, "query": 3, "clickhouse": 4}.get(kind, 5)
    return rank, index.zfill(4)


# --- ClickHouse -----------------------------------------------------------------------------------


def _clickhouse(cfg: Config, status: Status) -> None:
    from .tablestats import table_stats
    from ..clickhouse.client import as_storage_error, base_url, connect

    status.clickhouse_url = base_url(cfg.clickhouse)
    try:
        client = connect(cfg.clickhouse, read_only=True, with_database=False)
    except Exception as e:  # unreachable or refused: shown, not raised
        status.clickhouse_error = str(as_storage_error(e))
        return
    try:
        version, uptime = client.query(query("ops/server_info")).result_rows[0]
        status.clickhouse_version, status.clickhouse_uptime_s = str(version), int(uptime)
        status.tables = [TableInfo(**t) for t in table_stats(client, cfg.clickhouse.database)]
        status.clickhouse_ok = True
    except Exception as e:
        status.clickhouse_error = str(as_storage_error(e))
    finally:
        client.close()


def _tenant(status: Status, tenant: str) -> TenantInfo:
    for t in status.tenants:
        if t.tenant == tenant:
            return t
    info = TenantInfo(tenant)
    status.tenants.append(info)
    return info


def _tenant_ingest(first: Samples, second: Samples, dt: float, status: Status) -> None:
    for _, metric in SIGNALS:
        for tenant, v in rates(first, second, metric, "tenant", dt).items():
            _tenant(status, tenant).accepted_per_s += v
        for tenant, v in by_label(second, metric, "tenant").items():
            _tenant(status, tenant).accepted_total += v
    for (n, labels), v in second.items():
        d = dict(labels)
        if n == "otel_refused_items_total" and v:
            info = _tenant(status, d.get("tenant", ""))
            reason = d.get("reason", "")
            info.refused_items[reason] = info.refused_items.get(reason, 0.0) + v
        elif n == "otel_refused_total" and v and d.get("tenant"):
            _tenant(status, d["tenant"]).refused_requests += v
        elif n == names.TENANT_STORED_ROWS and v:
            _tenant(status, d.get("tenant", "")).rows[d.get("signal", "")] = int(v)
        elif n == names.TENANT_STORED_BYTES and v:
            _tenant(status, d.get("tenant", "")).bytes_on_disk += int(v)


# --- the whole screen -----------------------------------------------------------------------------


def collect(cfg: Config, *, interval_s: float = SAMPLE_INTERVAL_S) -> Status:
    base = metrics_base(cfg)
    status = Status(metrics_url=base, reachable=False)
    try:
        code, body = _http(base + "/metrics")
        first = parse_metrics(body.decode())
        t0 = time.monotonic()
        ready_code, ready_body = _http(base + "/ready")
    except OSError as e:
        status.reason = f"{base} does not answer: {getattr(e, 'reason', e)}"
        _clickhouse(cfg, status)
        return status
    status.reachable = code == 200
    status.ready = ready_code == 200
    try:
        status.reason = json.loads(ready_body).get("reason", "")
    except ValueError:
        status.reason = ready_body.decode(errors="replace")[:200]

    sup = find_supervisor(cfg.metrics.port)
    procs = daemon_processes(sup) if sup else []
    for p in procs:
        try:
            p.cpu_percent(None)  # primes the counter; the next call measures over the interval
        except psutil.Error:
            pass
    time.sleep(interval_s)
    try:
        second = parse_metrics(_http(base + "/metrics")[1].decode())
    except OSError:
        second = first
    dt = max(time.monotonic() - t0, 1e-3)
    status.interval_s = round(dt, 3)
    for p in procs:
        try:
            role = _role(p)
            if role is None:
                continue
            status.processes.append(ProcessInfo(role, p.pid, p.cpu_percent(None), p.memory_info().rss))
        except psutil.Error:
            continue
    status.processes.sort(key=lambda pi: _order(pi.role))

    for signal, metric in SIGNALS:
        status.received[signal] = rates(first, second, metric, "transport", dt)
        status.received_total[signal] = by_label(second, metric, "transport")
    status.writes = rates(first, second, "otel_storage_writes_total", "status", dt)
    status.writes_total = by_label(second, "otel_storage_writes_total", "status")
    status.refused = rates(first, second, "otel_refused_total", "reason", dt)
    status.refused_total = by_label(second, "otel_refused_total", "reason")
    status.tenancy = cfg.tenancy.mode
    if cfg.tenancy.enabled:
        _tenant_ingest(first, second, dt, status)
    for (n, labels), v in second.items():
        if n == "otel_memory_usage_bytes":
            d = dict(labels)
            status.memory[f"{d.get('process', '')}/{d.get('kind', '')}"] = v
    status.memory_limits = by_label(second, names.MEMORY_LIMIT_BYTES, "limit")
    status.ring_bytes = single(second, "otel_queue_size")
    status.spill_bytes = single(second, names.SPILL_BYTES)
    status.spill_budget_bytes = single(second, names.SPILL_BUDGET_BYTES)
    status.disk_low = bool(single(second, names.DISK_LOW))
    status.disk_free = by_label(second, names.DISK_FREE_BYTES, "disk")
    status.disk_floor = by_label(second, names.DISK_FLOOR_BYTES, "disk")
    status.detached_parts = {k: v for k, v in by_label(second, names.DETACHED_PARTS, "table").items() if v}
    status.detached_rows = {k: v for k, v in by_label(second, names.DETACHED_ROWS, "table").items() if v}
    status.data_errors = {k: v for k, v in by_label(second, names.DATA_ERRORS, "code").items() if v}
    _clickhouse(cfg, status)
    return status


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _rate_line(values: dict[str, float], totals: dict[str, float]) -> str:
    if not values:
        return "0/s"
    rate = "  ".join(f"{k or '-'} {v:,.1f}/s" for k, v in sorted(values.items()))
    return f"{rate}  (total {sum(totals.values()):,.0f})"


def render(s: Status) -> str:
    lines: list[str] = []
    state = "READY" if s.ready else ("NOT READY" if s.reachable else "UNREACHABLE")
    lines.append(f"otelingest  {s.metrics_url}  {state}" + (f" ({s.reason})" if s.reason and s.reason != "ok" else ""))
    if s.reachable:
        lines.append("")
        lines.append(f"{'PROCESS':<16} {'PID':>8} {'CPU%':>7} {'RSS':>11}")
        for p in s.processes:
            lines.append(f"{p.role:<16} {p.pid:>8} {p.cpu_percent:>7.1f} {human_bytes(p.rss_bytes):>11}")
        if not s.processes:
            lines.append("(no otelingest process found listening on the metrics port on this host)")
        lines.append("")
        lines.append(f"INGEST (rates over {s.interval_s:.1f} s)")
        for signal, _ in SIGNALS:
            lines.append(f"  {signal:<14} {_rate_line(s.received.get(signal, {}), s.received_total.get(signal, {}))}")
        lines.append(f"  {'write batches':<14} {_rate_line(s.writes, s.writes_total)}")
        lines.append(f"  {'refused':<14} {_rate_line(s.refused, s.refused_total)}")
        lines.append("")
        used = sum(s.memory.values()) if s.memory else None
        lim = s.memory_limits
        lines.append(
            f"MEMORY  {human_bytes(used)} held  soft limit {human_bytes(lim.get('soft'))}  hard limit {human_bytes(lim.get('hard'))}"
        )
        for key, v in sorted(s.memory.items()):
            lines.append(f"  {key:<24} {human_bytes(v):>11}")
        spill_pct = (
            f" ({100 * s.spill_bytes / s.spill_budget_bytes:.1f}%)"
            if s.spill_bytes is not None and s.spill_budget_bytes else ""
        )
        lines.append(
            f"QUEUES  rings {human_bytes(s.ring_bytes)}  spill {human_bytes(s.spill_bytes)} of {human_bytes(s.spill_budget_bytes)}{spill_pct}"
        )
        if s.disk_free:
            lines.append(
                f"DISK    {'LOW, refusing new data' if s.disk_low else 'ok'}  "
                + "  ".join(f"{k} {human_bytes(v)} free (floor {human_bytes(s.disk_floor.get(k))})"
                            for k, v in sorted(s.disk_free.items()))
            )
        for table, n in sorted(s.detached_parts.items()):
            rows = s.detached_rows.get(table)
            lines.append(f"BROKEN  {table}: {n:.0f} detached part(s)" + (f", {rows:,.0f} rows missing" if rows else "")
                         + " (see the daemon log for the part names)")
        if s.data_errors:
            lines.append("BROKEN  ClickHouse data errors: " + ", ".join(f"{k} x{v:.0f}" for k, v in sorted(s.data_errors.items())))
    lines.append("")
    if s.clickhouse_ok:
        up = s.clickhouse_uptime_s
        lines.append(f"CLICKHOUSE  {s.clickhouse_url}  OK  version {s.clickhouse_version}  up {up // 3600}h{up % 3600 // 60:02d}m")
        lines.append(f"  {'TABLE':<30} {'ROWS':>14} {'ON DISK':>11} {'RATIO':>6} {'PARTS':>6}")
        for t in s.tables:
            ratio = f"{t.uncompressed_bytes / t.compressed_bytes:.1f}" if t.compressed_bytes else "-"
            lines.append(f"  {t.table:<30} {t.rows:>14,} {human_bytes(t.bytes_on_disk):>11} {ratio:>6} {t.parts:>6}")
    else:
        lines.append(f"CLICKHOUSE  {s.clickhouse_url}  UNREACHABLE  {s.clickhouse_error}")
    if s.tenants:
        lines.append("")
        lines.append(f"TENANTS  (tenancy {s.tenancy}; stored and on disk as of the supervisor's last estimate, each minute)")
        lines.append(f"  {'TENANT':<24} {'ACCEPTED/S':>11} {'ACCEPTED':>12} {'REFUSED':>9}  {'REFUSED ITEMS':<28} "
                     f"{'STORED (traces/logs/metrics)':>30} {'ON DISK':>11}")
        for ten in sorted(s.tenants, key=lambda x: (-x.bytes_on_disk, x.tenant)):
            refused = ", ".join(f"{r} {n:,.0f}" for r, n in sorted(ten.refused_items.items())) or "-"
            stored = "/".join(f"{ten.rows.get(sig, 0):,}" for sig in ("traces", "logs", "metrics"))
            lines.append(f"  {ten.tenant or '(none)':<24} {ten.accepted_per_s:>11,.1f} {ten.accepted_total:>12,.0f} "
                         f"{ten.refused_requests:>9,.0f}  {refused:<28} {stored:>30} {human_bytes(ten.bytes_on_disk):>11}")
    return "\n".join(lines) + "\n"


def status_from_dict(d: dict[str, Any]) -> Status:
    """Inverse of :meth:`Status.to_json` (for scripts reading ``--json``)."""
    d = dict(d)
    d["processes"] = [ProcessInfo(**p) for p in d.get("processes", [])]
    d["tables"] = [TableInfo(**t) for t in d.get("tables", [])]
    d["tenants"] = [TenantInfo(**t) for t in d.get("tenants", [])]
    return Status(**d)
