"""The writer's INSERT settings keep the rollups exact: a metric INSERT is sent without
``optimize_on_insert``, so a rollup part may hold several rows of one series and bucket, and every
reader merges them."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics

from otelingest import _native
from otelingest.ingest.writer.inserter import insert_settings
from otlp_payloads import kvs, resource, scope

FIVE_MIN = 300 * 10**9
# The start of a 5-minute bucket an hour ago: every point below falls in it.
T0 = (time.time_ns() // FIVE_MIN - 12) * FIVE_MIN
HOSTS = ("a", "b", "c")
REQUESTS = 6


def _request(k: int) -> bytes:
    points = [NumberDataPoint(attributes=kvs({"host": h}), time_unix_nano=T0 + (k * 10 + i) * 10**9, as_double=k * 10.0 + i)
              for i, h in enumerate(HOSTS)]
    return ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(
        resource=resource({"service.name": "api"}),
        scope_metrics=[ScopeMetrics(scope=scope("meter"), metrics=[Metric(name="temp", gauge=Gauge(data_points=points))])],
    )]).SerializeToString()


def test_metric_rollups_stay_exact_without_collapsing_on_insert(migrated, ch_client):
    db = migrated.clickhouse.database
    assert insert_settings("t", table=f"{db}.otel_metrics")["optimize_on_insert"] == 0
    # One INSERT of several request blocks, each holding every series once, as a writer's batch does.
    blocks = [b for k in range(REQUESTS) for table, _, b in _native.decode_metrics(_request(k)).blocks if table == "otel_metrics"]
    assert len(blocks) == REQUESTS
    ch_client.raw_insert(f"{db}.otel_metrics", insert_block=b"".join(blocks), fmt="Native",
                         settings=insert_settings("batch-1", table=f"{db}.otel_metrics"))

    for rollup in ("otel_metrics_5m", "otel_metrics_1h"):
        got = ch_client.query(
            f"SELECT SeriesId, sum(Points), sum(ValueSum), min(ValueMin), max(ValueMax), argMinMerge(ValueFirst),"
            f" argMaxMerge(ValueLast) FROM {db}.{rollup} GROUP BY SeriesId ORDER BY argMinMerge(ValueFirst)").result_rows
        want = [(REQUESTS, sum(k * 10.0 + i for k in range(REQUESTS)), float(i), (REQUESTS - 1) * 10.0 + i,
                 float(i), (REQUESTS - 1) * 10.0 + i) for i in range(len(HOSTS))]
        assert [row[1:] for row in got] == want, rollup
        raw_ids = ch_client.query(f"SELECT DISTINCT SeriesId FROM {db}.otel_metrics ORDER BY 1").result_rows
        assert sorted((row[0],) for row in got) == raw_ids
        assert ch_client.query(f"SELECT count() FROM {db}.{rollup} FINAL").result_rows == [(len(HOSTS),)]
    # The series' labels: one row each once merged, whatever the INSERT left.
    assert ch_client.query(
        f"SELECT count(), uniqExact(SeriesId) FROM {db}.otel_prom_series FINAL").result_rows == [(len(HOSTS), len(HOSTS))]
