"""max_series_per_metric enforced at ingest, per tenant (docs/tenancy.md, "Series per metric"), and
the per-tenant self-metrics (bounded by tenancy.max_metric_tenants), on the real daemon with one
receiver worker (the count is per worker: exact with one). Remote write as Prometheus encodes it
(400 with the reason, the within-limit samples stored), OTLP/HTTP through the SDK's exporter and
OTLP/gRPC (a partial success with rejected_data_points), another tenant unaffected."""

from __future__ import annotations

import http.client
import time
from typing import Iterator

import grpc
import pytest

from daemon import Daemon
from load import traces_json
from otelingest.bench import promwrite

CONFIG = """
[tenancy]
mode = "header"
max_metric_tenants = 4
[tenancy.defaults]
max_series_per_metric = 3
[tenancy.tenants.free]
max_series_per_metric = 0
[tenancy.tenants.capped]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("tenancy-series"), receivers=1, config=CONFIG)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def rw(d: Daemon, tenant: str, series: list[tuple[str, str]], samples: int = 2) -> tuple[int, bytes]:
    now = int(time.time() * 1000)
    body = promwrite.compress(promwrite.write_request(
        [promwrite.Series({"__name__": name, "job": "j", "pod": pod}, [(now - k, float(k)) for k in range(samples)])
         for name, pod in series]))
    status, _, reply = promwrite.post("127.0.0.1", d.http_port, body, {**promwrite.HEADERS, "X-Scope-OrgID": tenant})
    return status, reply


def series_count(d: Daemon, table: str, name: str, tenant: str) -> tuple[int, int]:
    rows = d.count_where(table, "MetricName = {n:String} AND TenantId = {t:String}", {"n": name, "t": tenant})
    distinct = d.client().query(
        f"SELECT uniqExact(SeriesId) FROM {table} WHERE MetricName = {{n:String}} AND TenantId = {{t:String}}",
        parameters={"n": name, "t": tenant}).result_rows[0][0]
    return rows, int(distinct)


def test_remote_write_new_series_over_the_limit_get_a_400_the_rest_is_stored(daemon: Daemon) -> None:
    status, reply = rw(daemon, "capped", [("rw_capped", f"p{i}") for i in range(5)] + [("rw_other", "p0")])
    assert status == 400
    assert b"4 of 12 data points refused" in reply and b'"rw_capped"' in reply and b"max_series_per_metric" in reply
    # The same three series again pass (known); a sixth does not; another metric has its own count.
    assert rw(daemon, "capped", [("rw_capped", f"p{i}") for i in range(3)])[0] == 204
    assert rw(daemon, "capped", [("rw_capped", "p9")])[0] == 400
    # Another tenant, same series, no limit: all stored.
    assert rw(daemon, "free", [("rw_capped", f"p{i}") for i in range(5)])[0] == 204
    daemon.wait_count_where("otel_prom_samples", "MetricName = 'rw_capped' AND TenantId = 'free'", {}, 10)
    assert daemon.wait_count_where("otel_prom_samples", "MetricName = 'rw_capped' AND TenantId = 'capped'", {}, 12) == 12
    assert series_count(daemon, "otel_prom_samples", "rw_capped", "capped") == (12, 3)
    assert series_count(daemon, "otel_prom_samples", "rw_other", "capped") == (2, 1)
    assert series_count(daemon, "otel_prom_samples", "rw_capped", "free") == (10, 5)
    assert daemon.metric("otel_refused_items_total", signal="metrics", reason="series_limit", tenant="capped") == 6
    assert daemon.metric("otel_refused_total", reason="series_limit", tenant="capped") == 2


def _metrics_request(name: str, series: int) -> bytes:
    """An ExportMetricsServiceRequest of one sum with ``series`` attribute sets, from the SDK."""
    from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "limits"}))
    counter = provider.get_meter("t").create_counter(name)
    for i in range(series):
        counter.add(1, {"pod": f"p{i}"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return encode_metrics(data).SerializeToString()


def test_otlp_http_and_grpc_answer_a_partial_success(daemon: Daemon) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    body = _metrics_request("otlp_capped", 5)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=30)
    try:
        conn.request("POST", "/v1/metrics", body=body,
                     headers={"Content-Type": "application/x-protobuf", "X-Scope-OrgID": "capped"})
        r = conn.getresponse()
        reply = ExportMetricsServiceResponse.FromString(r.read())
    finally:
        conn.close()
    assert r.status == 200
    assert reply.partial_success.rejected_data_points == 2
    assert "2 of 5 data points refused" in reply.partial_success.error_message
    assert "otlp_capped" in reply.partial_success.error_message

    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        reply = ExportMetricsServiceResponse.FromString(
            export(_metrics_request("otlp_capped_grpc", 4), metadata=(("x-scope-orgid", "capped"),), timeout=10))
        assert reply.partial_success.rejected_data_points == 1
        reply = ExportMetricsServiceResponse.FromString(
            export(_metrics_request("otlp_capped_grpc", 4), metadata=(("x-scope-orgid", "free"),), timeout=10))
        assert reply.partial_success.rejected_data_points == 0

    # The SDK's own exporter: a partial success is a success to it (it logs the message).
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    exporter = OTLPMetricExporter(endpoint=f"http://127.0.0.1:{daemon.http_port}/v1/metrics",
                                  headers={"X-Scope-OrgID": "capped"})
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)],
                             resource=Resource.create({"service.name": "limits-sdk"}))
    counter = provider.get_meter("t").create_counter("otlp_capped_sdk")
    for i in range(6):
        counter.add(1, {"pod": f"p{i}"})
    provider.shutdown()  # one export, of 6 points

    assert daemon.wait_count_where("otel_metrics", "MetricName = 'otlp_capped' AND TenantId = 'capped'", {}, 3) == 3
    assert daemon.wait_count_where("otel_metrics", "MetricName = 'otlp_capped_grpc'", {}, 7) == 7
    assert daemon.wait_count_where("otel_metrics", "MetricName = 'otlp_capped_sdk'", {}, 3) == 3
    # The series the receiver counted are the ones the storage computes (SeriesId).
    assert series_count(daemon, "otel_metrics", "otlp_capped", "capped") == (3, 3)
    assert series_count(daemon, "otel_metrics", "otlp_capped_grpc", "capped") == (3, 3)
    assert series_count(daemon, "otel_metrics", "otlp_capped_grpc", "free") == (4, 4)
    assert series_count(daemon, "otel_metrics", "otlp_capped_sdk", "capped") == (3, 3)


def test_self_metrics_per_tenant_bounded_by_max_metric_tenants(daemon: Daemon) -> None:
    # Named: default, free and capped (configured), then the first other tenant seen (4 in all).
    for n, tenant in enumerate(("x-first", "x-second", "x-third")):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=30)
        try:
            conn.request("POST", "/v1/traces", body=traces_json(f"sm-{tenant}", 1, 3 + n),
                         headers={"Content-Type": "application/json", "X-Scope-OrgID": tenant})
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    assert daemon.metric("otel_received_spans_total", transport="http", tenant="x-first") == 3
    assert daemon.metric("otel_received_spans_total", transport="http", tenant="<other>") == 4 + 5
    text = daemon.metrics_text()
    assert 'tenant="x-second"' not in text and 'tenant="x-third"' not in text
    # 401 before any tenant is known: counted without one.
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=traces_json("sm-none", 1, 1), headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 401
    finally:
        conn.close()
    assert daemon.metric("otel_refused_total", reason="unauthenticated", tenant="") == 1


def test_status_shows_each_tenant(daemon: Daemon) -> None:
    import json
    import subprocess
    import sys

    from otelingest.selfmon import status as overview

    assert rw(daemon, "capped", [("st_capped", f"p{i}") for i in range(4)])[0] == 400
    assert rw(daemon, "free", [("st_free", "p0")], samples=5)[0] == 204
    assert daemon.wait_count_where("otel_prom_samples", "MetricName IN ('st_capped', 'st_free')", {}, 11) == 11
    # The supervisor estimates each tenant's storage every minute (the first time at readiness).
    stored = dict(daemon.client().query("SELECT TenantId, count() FROM otel_prom_samples GROUP BY TenantId").result_rows)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (daemon.metric_or_none("otel_tenant_stored_rows", tenant="capped",
                                                                  signal="metrics") or 0) < stored["capped"]:
        time.sleep(1)
    args = ["--data-dir", str(daemon.data_dir), "--metrics-port", str(daemon.metrics_port),
            "--clickhouse-url", daemon.clickhouse_url, "--config", str(daemon.dir / "otelingest.toml")]
    r = subprocess.run([sys.executable, "-m", "otelingest", "status", "--json", *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == overview.EXIT_READY, r.stderr
    s = overview.status_from_dict(json.loads(r.stdout))
    tenants = {t.tenant: t for t in s.tenants}
    assert s.tenancy == "header" and {"capped", "free"} <= set(tenants)
    capped, free = tenants["capped"], tenants["free"]
    assert capped.refused_items["series_limit"] >= 2 and capped.refused_requests >= 1
    assert "series_limit" not in free.refused_items
    assert capped.accepted_total >= 6 and free.accepted_total >= 5
    # Stored items: the samples plus the tenant's OTLP points (otel_metrics); bytes estimated.
    points = dict(daemon.client().query("SELECT TenantId, count() FROM otel_metrics GROUP BY TenantId").result_rows)
    for tenant in ("capped", "free"):
        assert tenants[tenant].rows["metrics"] == stored[tenant] + points.get(tenant, 0)
        assert tenants[tenant].bytes_on_disk > 0
    r = subprocess.run([sys.executable, "-m", "otelingest", "status", *args], capture_output=True, text=True, timeout=120)
    assert "TENANTS  (tenancy header" in r.stdout and "\n  capped " in r.stdout
