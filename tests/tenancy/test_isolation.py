"""A tenant is a security boundary (docs/tenancy.md): tenants `team-a` and `team-b` each write
traces, logs and metrics with the official OTel SDK exporters and samples with remote write, under
the same service and metric names; then, as `team-b`, every read endpoint (the design's API,
Jaeger, Tempo, Prometheus, Loki) is asked for `team-a`'s data every way a client could: plain
queries, regexes matching everything, matchers and TraceQL/LogQL attributes naming `TenantId` and
`tenant` (which `team-a` wrote as ordinary attributes), `team-a`'s trace ids, label and tag value
listings, metadata, exemplars, dependencies, a cache `team-a` warmed. Nothing of `team-a`'s is ever
answered, and the same requests do answer `team-b`'s own data (so the test is not passing on
empty answers). Malformed tenants are a 400 before any SQL, and in credential mode a header naming
another tenant than the credential's is a 400. The per-tenant query limits: concurrency (429 +
Retry-After in each API's format), range and points (400 naming the limit), for that tenant alone.

One daemon for the module (header mode), and the query app in credential mode over its ClickHouse.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from conftest import free_ports
from daemon import Daemon
from otelingest.bench import promwrite

A, B, LIMITED = "team-a", "team-b", "limited"
# Every value team-a writes carries "alfa", team-b's "bravo" (letters no hex id holds): a leak shows
# as "alfa" in team-b's answers.
CONFIG = """
[tenancy]
mode = "header"
[tenancy.tenants.limited]
max_query_concurrency = 1
max_query_range_days = 2
max_query_points = 100
"""
NS = 1_000_000_000
RW_VALUE = {A: 1000.0, B: 7.0}


@dataclass
class Written:
    """What a tenant wrote: its trace ids (lower-case hex), its marker."""

    tenant: str
    marker: str
    trace_ids: list[str] = field(default_factory=list)


def _write_otlp(d: Daemon, tenant: str, marker: str) -> Written:
    """One trace (shop -> shop-<marker>), logs and metrics (a counter and a histogram with an
    exemplar of the trace) with the SDK's OTLP/HTTP exporters and the tenant header."""
    from opentelemetry import trace
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    headers = {"X-Scope-OrgID": tenant}
    # `tenant` and `TenantId` as ordinary attributes: user data that must never widen a read.
    own = {"tenant": marker, "TenantId": tenant, "owner": marker}
    out = Written(tenant, marker)
    providers = {}
    for service in ("shop", f"shop-{marker}"):
        p = TracerProvider(resource=Resource.create({"service.name": service, **own}))
        p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{d.http_url}/v1/traces", headers=headers)))
        providers[service] = p
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{d.http_url}/v1/metrics", headers=headers),
                                           export_interval_millis=3_600_000)
    meters = MeterProvider(resource=Resource.create({"service.name": "shop", **own}), metric_readers=[reader],
                           exemplar_filter=AlwaysOnExemplarFilter())
    meter = meters.get_meter("isolation")
    orders = meter.create_counter("orders", unit="1", description=f"orders of {marker}")
    latency = meter.create_histogram("latency", unit="ms")
    logs = LoggerProvider(resource=Resource.create({"service.name": "shop", **own}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=f"{d.http_url}/v1/logs", headers=headers)))
    logger = logs.get_logger("isolation")

    parent_tracer = providers["shop"].get_tracer("isolation")
    child_tracer = providers[f"shop-{marker}"].get_tracer("isolation")
    with parent_tracer.start_as_current_span(f"checkout-{marker}", attributes=own) as parent:
        out.trace_ids.append(f"{parent.get_span_context().trace_id:032x}")
        with child_tracer.start_as_current_span(f"charge-{marker}", attributes=own):
            orders.add(3, {"owner": marker})
            latency.record(12.5, {"owner": marker})  # an exemplar of this trace
        for n in range(3):
            logger.emit(severity_number=SeverityNumber.WARN, severity_text="WARN", body=f"hello from {marker} {n}",
                        attributes=own, context=trace.set_span_in_context(parent))
    for p in providers.values():
        p.shutdown()
    logs.shutdown()
    meters.shutdown()
    return out


def _write_remote(d: Daemon, tenant: str, marker: str, now_ms: int) -> None:
    series = [
        promwrite.Series({"__name__": "rw_requests", "job": "j", "owner": marker, "tenant": marker, "TenantId": tenant},
                         [(now_ms - 30_000, RW_VALUE[tenant]), (now_ms, RW_VALUE[tenant])],
                         [({"trace_id": f"{marker}-exemplar"}, RW_VALUE[tenant], now_ms)]),
        promwrite.Series({"__name__": f"rw_{marker}_only", "job": "j"}, [(now_ms, 1.0)]),
    ]
    body = promwrite.compress(promwrite.write_request(
        series, [("rw_requests", "counter", f"requests of {marker}", ""), (f"rw_{marker}_only", "gauge", marker, "")]))
    status, _, text = promwrite.post("127.0.0.1", d.http_port, body, {**promwrite.HEADERS, "X-Scope-OrgID": tenant})
    assert status == 204, text


@dataclass
class Env:
    d: Daemon
    written: dict[str, Written]
    now_ns: int


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = Daemon(tmp_path_factory.mktemp("isolation"), config=CONFIG)
    d.start()
    try:
        now_ms = int(time.time() * 1000)
        written = {A: _write_otlp(d, A, "alfa"), B: _write_otlp(d, B, "bravo")}
        for tenant, w in written.items():
            _write_remote(d, tenant, w.marker, now_ms)
        for tenant in (A, B):
            where = "TenantId = {t:String}"
            assert d.wait_count_where("otel_traces", where, {"t": tenant}, 2) == 2
            assert d.wait_count_where("otel_logs", where, {"t": tenant}, 3) == 3
            assert d.wait_count_where("otel_metrics", where, {"t": tenant}, 2) == 2
            assert d.wait_count_where("otel_prom_samples", where, {"t": tenant}, 3) == 3
            assert d.wait_count_where("otel_metrics_metadata", where, {"t": tenant}, 2) >= 2
            assert d.wait_count_where("otel_metrics_exemplars", where, {"t": tenant}, 1) == 1
            assert d.wait_count_where("otel_prom_series", where, {"t": tenant}, 2) >= 2
        yield Env(d, written, now_ms * 1_000_000)
    finally:
        d.stop()


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
            ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def q(path: str, **params: Any) -> str:
    return f"{path}?{urllib.parse.urlencode(params)}" if params else path


def reads(now_ns: int, own: Written, other: Written) -> list[tuple[str, str, Any, str | None]]:
    """(method, path, JSON body, what the reader's own answer must hold) of every read endpoint,
    the attempts at ``other``'s data among them (expected: None, nothing at all)."""
    start_s, end_s = now_ns // NS - 3600, now_ns // NS + 60
    prom = {"start": start_s, "end": end_s, "step": 60}
    loki = {"start": start_s * NS, "end": end_s * NS, "limit": 1000}
    m, o = own.marker, other.marker
    otid = other.trace_ids[0]
    return [
        # The design's API.
        ("POST", "/api/v1/traces", {"service_name": "shop"}, f"checkout-{m}"),
        ("POST", "/api/v1/traces", {"trace_id": otid}, None),
        ("POST", "/api/v1/logs", {"service_name": "shop"}, f"hello from {m}"),
        ("POST", "/api/v1/logs", {"search_text": o}, None),
        ("POST", "/api/v1/metrics", {"metric_name": "orders", "aggregation": "sum"}, '"shop"'),
        ("GET", "/api/v1/services/stats", None, f"shop-{m}"),
        # Jaeger.
        ("GET", "/api/services", None, f"shop-{m}"),
        ("GET", "/api/services/shop/operations", None, f"checkout-{m}"),
        ("GET", q("/api/operations", service="shop"), None, f"checkout-{m}"),
        ("GET", q("/api/traces", service="shop", limit=100), None, f"checkout-{m}"),
        ("GET", q("/api/traces", service="shop", tags=json.dumps({"TenantId": A})), None,
         f"checkout-{m}" if own.tenant == A else None),
        ("GET", q("/api/traces", service="shop", tags=json.dumps({"tenant": o})), None, None),
        ("GET", f"/api/traces/{otid}", None, None),
        ("GET", q("/api/dependencies", endTs=(now_ns // 1_000_000) + 60_000, lookback=3_600_000), None, f"shop-{m}"),
        # Tempo (TraceQL, the OTLP trace by id).
        ("GET", q("/api/search", q="{}", start=start_s, end=end_s), None, own.trace_ids[0].lstrip("0")),
        ("GET", q("/api/search", q='{ resource.service.name =~ ".+" }', start=start_s, end=end_s), None,
         own.trace_ids[0].lstrip("0")),
        ("GET", q("/api/search", q=f'{{ resource.tenant = "{o}" }}', start=start_s, end=end_s), None, None),
        ("GET", q("/api/search", q=f'{{ .TenantId = "{other.tenant}" }}', start=start_s, end=end_s), None, None),
        ("GET", q("/api/search", tags=f"tenant={o}", start=start_s, end=end_s), None, None),
        ("GET", q("/api/search/tags"), None, "owner"),
        ("GET", q("/api/v2/search/tags"), None, "owner"),
        ("GET", "/api/search/tag/service.name/values", None, f"shop-{m}"),
        ("GET", "/api/search/tag/tenant/values", None, m),
        ("GET", "/api/v2/search/tag/resource.tenant/values", None, m),
        ("GET", "/api/v2/search/tag/name/values", None, f"checkout-{m}"),
        ("GET", q("/api/metrics/query_range", q="{} | rate() by (resource.service.name)", start=start_s, end=end_s,
                  step="60s"), None, f"shop-{m}"),
        ("GET", q("/api/metrics/query", q="{} | count_over_time() by (span.owner)", start=start_s, end=end_s), None, m),
        ("GET", f"/api/v2/traces/{otid}", None, None),
        # Prometheus (PromQL, pushdown and Python paths, listings, metadata, exemplars).
        ("GET", q("/api/v1/query", query='{__name__=~".+"}', time=end_s), None, f'"owner":"{m}"'),
        ("GET", q("/api/v1/query", query='sum by (owner) (rw_requests)', time=end_s), None, m),
        ("GET", q("/api/v1/query", query=f'{{tenant="{o}"}}', time=end_s), None, None),
        ("GET", q("/api/v1/query", query=f'{{TenantId="{A}"}}', time=end_s), None, "rw_requests" if own.tenant == A else None),
        ("GET", q("/api/v1/query_range", query="sum(rw_requests)", **prom), None, f'"{int(RW_VALUE[own.tenant])}"'),
        ("GET", q("/api/v1/query_range", query='count by (__name__) ({__name__=~".+"})', **prom), None, f"rw_{m}_only"),
        ("GET", q("/api/v1/query_range", query='sum by (owner) (rate(rw_requests[5m]))', **prom), None, None),
        ("GET", q("/api/v1/labels", start=start_s, end=end_s), None, "owner"),
        ("GET", q("/api/v1/labels", **{"match[]": '{__name__=~".+"}', "start": start_s, "end": end_s}), None, "owner"),
        ("GET", q("/api/v1/label/__name__/values", start=start_s, end=end_s), None, f"rw_{m}_only"),
        ("GET", q("/api/v1/label/owner/values", start=start_s, end=end_s), None, m),
        ("GET", q("/api/v1/label/tenant/values", start=start_s, end=end_s), None, m),
        ("GET", q("/api/v1/series", **{"match[]": '{__name__=~".+"}', "start": start_s, "end": end_s}), None, m),
        ("GET", q("/api/v1/series", **{"match[]": '{service_name=~".+"}', "start": start_s, "end": end_s}), None, m),
        ("GET", q("/api/v1/metadata"), None, f"requests of {m}"),
        ("GET", q("/api/v1/metadata", metric="rw_requests"), None, f"requests of {m}"),
        ("GET", q("/api/v1/query_exemplars", query='{__name__=~".+"}', start=start_s, end=end_s), None,
         own.trace_ids[0]),
        ("GET", q("/api/v1/query_exemplars", query="rw_requests", start=start_s, end=end_s), None, f"{m}-exemplar"),
        # Loki (LogQL).
        ("GET", q("/loki/api/v1/labels", **loki), None, "owner"),
        ("GET", q("/loki/api/v1/label/service_name/values", **loki), None, "shop"),
        ("GET", q("/loki/api/v1/label/tenant/values", **loki), None, m),
        ("GET", q("/loki/api/v1/series", **{"match[]": '{service_name=~".+"}', **loki}), None, m),
        ("GET", q("/loki/api/v1/query_range", query='{service_name=~".+"}', **loki), None, f"hello from {m}"),
        ("GET", q("/loki/api/v1/query_range", query=f'{{tenant="{o}"}}', **loki), None, None),
        ("GET", q("/loki/api/v1/query_range", query=f'{{service_name=~".+"}} | TenantId = "{A}"', **loki), None,
         f"hello from {m}" if own.tenant == A else None),
        ("GET", q("/loki/api/v1/query_range", query=f'{{service_name=~".+"}} |= "{o}"', **loki), None, None),
        ("GET", q("/loki/api/v1/query_range", query='sum by (tenant) (count_over_time({service_name=~".+"}[1h]))',
                  **loki, step=60), None, m),
        ("GET", q("/loki/api/v1/query", query='sum by (tenant) (count_over_time({service_name=~".+"}[1h]))',
                  time=end_s * NS), None, m),
        ("GET", q("/loki/api/v1/index/stats", query='{service_name=~".+"}', **loki), None, '"entries":3'),
    ]


def _leaks(body: bytes, other: Written, asked: str) -> list[str]:
    """``other``'s markers in an answer, but the trace ids the request itself named (a 404 says
    which trace it did not find)."""
    text = body.decode("utf-8", "replace").lower()
    found = [other.marker] if other.marker in text else []
    for tid in other.trace_ids:
        if tid not in asked and (tid in text or tid.lstrip("0") in text):
            found.append(tid)
    return found


@pytest.mark.parametrize("reader", [B, A])
def test_a_tenant_reads_its_own_data_and_nothing_of_the_other(env: Env, reader: str) -> None:
    other = A if reader == B else B
    own, theirs = env.written[reader], env.written[other]
    failures = []
    for method, path, body, want in reads(env.now_ns, own, theirs):
        status, _, text = request(env.d.query_port, method, path, {"X-Scope-OrgID": reader}, body)
        leaks = _leaks(text, theirs, path + json.dumps(body))
        if leaks:
            failures.append(f"{method} {path}: {other}'s {leaks} answered to {reader}")
        if want is None:
            # Nothing: an empty answer, or 404 for another tenant's trace id.
            if status not in (200, 404):
                failures.append(f"{method} {path}: {status} {text[:200]!r}")
        elif status != 200 or want.lower() not in text.decode("utf-8", "replace").lower():
            failures.append(f"{method} {path}: {status}, {want!r} missing from {reader}'s own answer {text[:300]!r}")
    assert failures == []


def test_another_tenant_s_trace_ids_are_not_found(env: Env) -> None:
    for tid in env.written[A].trace_ids:
        for path, accept in ((f"/api/traces/{tid}", "application/json"), (f"/api/traces/{tid}", "application/protobuf"),
                             (f"/api/v2/traces/{tid}", "application/json"),
                             (f"/api/v2/traces/{tid}", "application/protobuf")):
            status, _, _ = request(env.d.query_port, "GET", path, {"X-Scope-OrgID": B, "Accept": accept})
            assert status == 404, (path, accept)
            status, _, body = request(env.d.query_port, "GET", path, {"X-Scope-OrgID": A, "Accept": accept})
            assert status == 200 and len(body) > 50, (path, accept)
        status, _, _ = request(env.d.query_port, "POST", "/api/v1/traces", {"X-Scope-OrgID": B}, {"trace_id": tid})
        assert status == 404
        status, _, body = request(env.d.query_port, "POST", "/api/v1/traces", {"X-Scope-OrgID": A}, {"trace_id": tid})
        assert status == 200 and json.loads(body)["traces"][0]["span_count"] == 2


def test_a_cache_warmed_by_one_tenant_is_not_served_to_another(env: Env) -> None:
    start_s, end_s = env.now_ns // NS - 600, env.now_ns // NS + 60
    prom = q("/api/v1/query_range", query="sum(rw_requests)", start=start_s, end=end_s, step=30)
    native = ("/api/v1/logs", {"service_name": "shop", "start_time": (start_s) * NS, "end_time": end_s * NS})
    loki = q("/loki/api/v1/query_range", query='{service_name="shop"}', start=start_s * NS, end=end_s * NS)
    for _ in range(2):  # the second round is answered from the cache, for each tenant its own
        for tenant, value, marker in ((A, "1000", "alfa"), (B, "7", "bravo")):
            status, _, body = request(env.d.query_port, "GET", prom, {"X-Scope-OrgID": tenant})
            values = {v for s in json.loads(body)["data"]["result"] for _, v in s["values"]}
            assert status == 200 and values == {value}, (tenant, body[:300])
            status, _, body = request(env.d.query_port, "POST", native[0], {"X-Scope-OrgID": tenant}, native[1])
            bodies = sorted(r["body"] for r in json.loads(body)["logs"])
            assert bodies == [f"hello from {marker} {n}" for n in range(3)], tenant
            status, _, body = request(env.d.query_port, "GET", loki, {"X-Scope-OrgID": tenant})
            lines = sorted(v[1] for s in json.loads(body)["data"]["result"] for v in s["values"])
            assert lines == [f"hello from {marker} {n}" for n in range(3)], tenant
    assert env.d.metric("otel_query_cache_hits_total") >= 6


HOSTILE = ["'; DROP TABLE otel.otel_traces; --", "a|b", "a,b", "team-a|team-b", "team-a,team-b", "a b", "..",
           "x" * 151, "team-a\\", "{tenant:String}", "' OR '1'='1"]
ANY_ENDPOINT = ["/api/v1/query?query=up", "/api/v1/labels", "/api/services", "/api/traces?service=shop",
                "/loki/api/v1/labels", "/api/search?q=%7B%7D", "/api/v1/services/stats"]


def test_malformed_or_missing_tenants_are_refused_before_any_query(env: Env) -> None:
    for path in ANY_ENDPOINT:
        status, _, body = request(env.d.query_port, "GET", path)
        assert status == 401 and b"x-scope-orgid" in body.lower(), path
        for bad in HOSTILE:
            status, _, body = request(env.d.query_port, "GET", path, {"X-Scope-OrgID": bad})
            assert status == 400, (path, bad, status)
            assert b"alfa" not in body and b"bravo" not in body
        # The header twice is two tenants.
        conn = http.client.HTTPConnection("127.0.0.1", env.d.query_port, timeout=30)
        try:
            conn.putrequest("GET", path)
            conn.putheader("X-Scope-OrgID", A)
            conn.putheader("X-Scope-OrgID", B)
            conn.endheaders()
            assert conn.getresponse().status == 400, path
        finally:
            conn.close()
    # Nothing reached ClickHouse: every row is still there.
    assert env.d.count_where("otel_traces", "TenantId IN ('team-a', 'team-b')", {}) == 4


def _format_429(path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 429 and headers.get("retry-after") == "1", (path, status, body[:200])
    if path.startswith("/api/v1/query"):
        assert json.loads(body)["errorType"] == "too_many_requests"
    elif path.startswith("/api/v1/services"):
        assert "max_query_concurrency" in json.loads(body)["error"]["message"]
    elif path.startswith("/api/services"):
        assert json.loads(body)["errors"][0]["code"] == 429
    else:  # Loki and Tempo answer plain text
        assert b"max_query_concurrency" in body


def test_a_tenant_over_its_query_concurrency_waits_alone(env: Env) -> None:
    # A request whose body never comes holds `limited`'s one slot.
    held = socket.create_connection(("127.0.0.1", env.d.query_port), timeout=30)
    try:
        held.sendall(b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nX-Scope-OrgID: limited\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        deadline = time.monotonic() + 20
        while True:
            status, headers, body = request(env.d.query_port, "GET", "/api/v1/query?query=1", {"X-Scope-OrgID": LIMITED})
            if status == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for path in ("/api/v1/query?query=1", "/loki/api/v1/labels", "/api/search?q=%7B%7D", "/api/services",
                     "/api/v1/services/stats"):
            status, headers, body = request(env.d.query_port, "GET", path, {"X-Scope-OrgID": LIMITED})
            _format_429(path, status, headers, body)
            # Another tenant is not held back.
            assert request(env.d.query_port, "GET", path, {"X-Scope-OrgID": B})[0] == 200, path
    finally:
        held.close()
    deadline = time.monotonic() + 20
    while request(env.d.query_port, "GET", "/api/v1/query?query=1", {"X-Scope-OrgID": LIMITED})[0] != 200:
        assert time.monotonic() < deadline, "the slot was not given back"
        time.sleep(0.1)


def test_a_tenant_s_range_and_points_limits(env: Env) -> None:
    end_s = env.now_ns // NS
    long_start = end_s - 3 * 86400  # over limited's 2 days
    cases = [
        ("GET", q("/api/v1/query_range", query="up", start=long_start, end=end_s, step=3600), None),
        ("GET", q("/loki/api/v1/query_range", query='{service_name="shop"}', start=long_start * NS, end=end_s * NS), None),
        ("GET", q("/api/search", q="{}", start=long_start, end=end_s), None),
        ("GET", q("/api/metrics/query_range", q="{} | rate()", start=long_start, end=end_s, step="3600s"), None),
        ("GET", q("/api/traces", service="shop", lookback="72h"), None),
        ("POST", "/api/v1/logs", {"start_time": long_start * NS, "end_time": end_s * NS}),
        ("GET", q("/api/v1/series", **{"match[]": "up", "start": long_start, "end": end_s}), None),
    ]
    for method, path, body in cases:
        status, _, text = request(env.d.query_port, method, path, {"X-Scope-OrgID": LIMITED}, body)
        assert status == 400 and b"max_query_range_days" in text, (path, status, text[:300])
        assert request(env.d.query_port, method, path, {"X-Scope-OrgID": B}, body)[0] == 200, path
    status, _, text = request(env.d.query_port, "GET", cases[0][1], {"X-Scope-OrgID": LIMITED})
    assert json.loads(text)["errorType"] == "bad_data"
    # 101 points (limited may ask for 100).
    points = [
        ("GET", q("/api/v1/query_range", query="up", start=end_s - 101, end=end_s, step=1), None),
        ("GET", q("/loki/api/v1/query_range", query='count_over_time({service_name="shop"}[1m])',
                  start=(end_s - 101) * NS, end=end_s * NS, step=1), None),
        ("GET", q("/api/metrics/query_range", q="{} | rate()", start=end_s - 101, end=end_s, step="1s"), None),
        ("POST", "/api/v1/metrics", {"metric_name": "orders", "start_time": (end_s - 101) * NS, "end_time": end_s * NS,
                                     "step": "1s"}),
    ]
    for method, path, body in points:
        status, _, text = request(env.d.query_port, method, path, {"X-Scope-OrgID": LIMITED}, body)
        assert status == 400 and b"max_query_points" in text, (path, status, text[:300])
        assert request(env.d.query_port, method, path, {"X-Scope-OrgID": B}, body)[0] == 200, path
    ok = q("/api/v1/query_range", query="up", start=end_s - 99, end=end_s, step=1)
    assert request(env.d.query_port, "GET", ok, {"X-Scope-OrgID": LIMITED})[0] == 200


def test_credential_mode_reads_the_credential_s_tenant_and_refuses_another_header(env: Env) -> None:
    """The query app in credential mode over the daemon's ClickHouse: a credential reads its tenant's
    rows; a header naming another tenant is a 400, one naming the same is accepted."""
    import base64

    from queryserver import serve

    from otelingest.config import AuthConfig, ClickHouseConfig, Config, QueryConfig, TenancyConfig

    cfg = Config(
        clickhouse=ClickHouseConfig(url=env.d.clickhouse_url, database="otel"),
        query=QueryConfig(dependencies_rollup_interval_s=0),
        auth=AuthConfig(query_basic_users=["alice:pw-a", "bob:pw-b"]),
        tenancy=TenancyConfig(mode="credential", credentials={"alice": A, "bob": B}),
    )

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    (port,) = free_ports(1)
    path = q("/loki/api/v1/query_range", query='{service_name=~".+"}', start=(env.now_ns // NS - 3600) * NS,
             end=(env.now_ns // NS + 60) * NS)
    with serve(cfg, port):
        status, _, body = request(port, "GET", path, basic("alice", "pw-a"))
        assert status == 200 and b"hello from alfa" in body and b"bravo" not in body
        status, _, body = request(port, "GET", path, basic("bob", "pw-b"))
        assert status == 200 and b"hello from bravo" in body and b"alfa" not in body
        status, _, body = request(port, "GET", path, {**basic("bob", "pw-b"), "X-Scope-OrgID": A})
        assert status == 400 and b"alfa" not in body
        status, _, body = request(port, "GET", path, {**basic("bob", "pw-b"), "X-Scope-OrgID": B})
        assert status == 200 and b"hello from bravo" in body
        for bad in ("a|b", "team-a,team-b", "'; DROP TABLE otel.otel_logs; --"):
            assert request(port, "GET", path, {**basic("bob", "pw-b"), "X-Scope-OrgID": bad})[0] == 400, bad
        assert request(port, "GET", path, basic("bob", "wrong"))[0] == 401
        assert request(port, "GET", path)[0] == 401
