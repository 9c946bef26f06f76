"""Metric data points of all five types land in ``otel_metrics`` exactly as sent."""

from __future__ import annotations

import math
import time

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality as AT,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)

from otelingest import _native
from otlp_payloads import kvs, resource, scope
from otlp_reference import insert, metric_rows, read_back

T0 = (time.time_ns() // 10**9 - 600) * 10**9


def request() -> ExportMetricsServiceRequest:
    ex = [
        Exemplar(filtered_attributes=kvs({"user": "u1"}), time_unix_nano=T0 + 3, as_double=0.75,
                 span_id=bytes(range(8)), trace_id=bytes(range(16))),
        Exemplar(time_unix_nano=T0 + 4, as_int=12),
    ]
    metrics = [
        Metric(name="g.double", description="a gauge", unit="1", gauge=Gauge(data_points=[
            NumberDataPoint(attributes=kvs({"cpu": 0}), start_time_unix_nano=T0 - 10, time_unix_nano=T0 + 1, as_double=0.5, flags=1),
            NumberDataPoint(time_unix_nano=T0 + 2, as_int=-(2**62) - 1, exemplars=ex),
            NumberDataPoint(time_unix_nano=T0 + 3),  # no value at all
        ])),
        Metric(name="s.int", unit="By", sum=Sum(aggregation_temporality=AT.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True,
               data_points=[NumberDataPoint(time_unix_nano=T0 + 4, as_int=9_007_199_254_740_993, attributes=kvs({"a": "b"}))])),
        Metric(name="s.double", sum=Sum(aggregation_temporality=AT.AGGREGATION_TEMPORALITY_DELTA,
               data_points=[NumberDataPoint(time_unix_nano=T0 + 5, as_double=-1e-7)])),
        Metric(name="h", unit="ms", histogram=Histogram(aggregation_temporality=AT.AGGREGATION_TEMPORALITY_DELTA, data_points=[
            HistogramDataPoint(time_unix_nano=T0 + 6, start_time_unix_nano=T0, count=10, sum=123.5, bucket_counts=[1, 2, 7],
                               explicit_bounds=[10.0, 100.0], min=0.5, max=99.0, exemplars=ex[:1], flags=1),
            HistogramDataPoint(time_unix_nano=T0 + 7, count=0),  # no sum/min/max: NULL
        ])),
        Metric(name="eh", exponential_histogram=ExponentialHistogram(aggregation_temporality=AT.AGGREGATION_TEMPORALITY_CUMULATIVE, data_points=[
            ExponentialHistogramDataPoint(
                time_unix_nano=T0 + 8, count=20, sum=50.0, scale=-3, zero_count=2, zero_threshold=1e-9,
                positive=ExponentialHistogramDataPoint.Buckets(offset=-2, bucket_counts=[1, 0, 5]),
                negative=ExponentialHistogramDataPoint.Buckets(offset=7, bucket_counts=[3]),
                min=-4.0, max=8.25, exemplars=ex, attributes=kvs({"x": True})),
            ExponentialHistogramDataPoint(time_unix_nano=T0 + 9),
        ])),
        Metric(name="sm", summary=Summary(data_points=[
            SummaryDataPoint(time_unix_nano=T0 + 10, count=4, sum=2.5, quantile_values=[
                SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.6),
                SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=math.inf),
            ]),
            SummaryDataPoint(time_unix_nano=T0 + 11),
        ])),
        Metric(name="nodata"),  # no data: no rows
    ]
    return ExportMetricsServiceRequest(resource_metrics=[
        ResourceMetrics(resource=resource({"service.name": "db"}), schema_url="rs",
                        scope_metrics=[ScopeMetrics(scope=scope("meter", "2"), schema_url="ss", metrics=metrics)]),
    ])


COLUMNS = list(next(metric_rows(request())).keys())


def test_every_point_type_and_field_round_trips(migrated, ch_client):
    req = request()
    d = _native.decode_metrics(req.SerializeToString())
    want = sorted(metric_rows(req), key=lambda r: r["TimeUnix"])
    assert len(want) == 11
    assert (d.items, d.rejected) == (11, 0)
    db = migrated.clickhouse.database
    insert(ch_client, db, d)
    got = read_back(ch_client, db, "otel_metrics", COLUMNS, "TimeUnix")
    assert len(got) == 11
    for g, w in zip(got, want):
        for col in COLUMNS:
            assert g[col] == w[col], (w["MetricName"], w["TimeUnix"] - T0, col)


def test_int_points_keep_exact_value_and_double_points_have_null_value_int(migrated, ch_client):
    db = migrated.clickhouse.database
    insert(ch_client, db, _native.decode_metrics(request().SerializeToString()))
    rows = read_back(ch_client, db, "otel_metrics", ["MetricName", "Value", "ValueInt", "Sum", "Min", "Max"], "TimeUnix")
    by = {(r["MetricName"], i): r for i, r in enumerate(rows)}
    assert by[("s.int", 3)]["ValueInt"] == 9_007_199_254_740_993
    assert by[("s.int", 3)]["Value"] == float(9_007_199_254_740_993)
    assert by[("g.double", 0)]["ValueInt"] is None
    assert by[("h", 6)]["Sum"] is None and by[("h", 6)]["Min"] is None and by[("h", 6)]["Max"] is None
    assert (by[("h", 5)]["Sum"], by[("h", 5)]["Min"], by[("h", 5)]["Max"]) == (123.5, 0.5, 99.0)


def test_bad_exemplar_id_rejects_only_that_point():
    req = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[
        Metric(name="g", gauge=Gauge(data_points=[
            NumberDataPoint(time_unix_nano=T0, as_int=1, exemplars=[Exemplar(trace_id=b"\x01" * 8)]),
            NumberDataPoint(time_unix_nano=T0, as_int=2),
        ])),
    ])])])
    d = _native.decode_metrics(req.SerializeToString())
    assert (d.items, d.rejected) == (1, 1)
    assert d.rejection_reason == "data point rejected: exemplar trace_id has 8 bytes, expected 16 (or empty)"


def _field(num: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([num << 3 | 2, len(payload)]) + payload


def test_metric_data_oneof_takes_the_last_as_protobuf_merging_does():
    gauge = Metric(name="m", gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=T0, as_int=1)]))
    total = Metric(sum=Sum(data_points=[NumberDataPoint(time_unix_nano=T0, as_double=2.0)]))
    concatenated = gauge.SerializeToString() + total.SerializeToString()
    merged = Metric.FromString(concatenated)
    assert merged.WhichOneof("data") == "sum"
    raw = _field(1, _field(2, _field(2, concatenated)))  # request > resource_metrics > scope_metrics > metric
    want = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[merged])])])
    got = _native.decode_metrics(raw)
    assert got.items == 1
    assert got.blocks == _native.decode_metrics(want.SerializeToString()).blocks
