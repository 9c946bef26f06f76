"""Log records decoded by ``otelingest._native`` land in ``otel_logs`` exactly as sent."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from otelingest import _native
from otlp_payloads import EVERY_KIND, EXPECTED_TEXT, av, kvs, resource, scope
from otlp_reference import insert, log_rows, read_back

T0 = (time.time_ns() // 10**9 - 600) * 10**9 + 987_654_321


def request() -> ExportLogsServiceRequest:
    records = [
        LogRecord(time_unix_nano=T0, observed_time_unix_nano=T0 + 7, severity_number=17, severity_text="ERROR",
                  body=av("plain text body"), attributes=kvs(EVERY_KIND), dropped_attributes_count=2, flags=1,
                  trace_id=bytes(range(16)), span_id=bytes(range(8)), event_name="checkout.failed"),
        # Time 0 takes the observed time; everything else absent.
        LogRecord(observed_time_unix_nano=T0 + 1),
    ]
    # One record per body kind.
    records += [LogRecord(time_unix_nano=T0 + 100 + i, body=av(v), severity_text=f"body.{k}")
                for i, (k, v) in enumerate(EVERY_KIND.items())]
    return ExportLogsServiceRequest(resource_logs=[
        ResourceLogs(resource=resource({"service.name": "api", "deployment.environment": "prod"}),
                     schema_url="https://opentelemetry.io/schemas/1.26.0",
                     scope_logs=[ScopeLogs(scope=scope("logger", "0.1", {"a": [1, 2]}), schema_url="s1", log_records=records)]),
        ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(time_unix_nano=T0 + 2, severity_text="nosvc")])]),
    ])


COLUMNS = list(next(log_rows(request())).keys())


def test_every_log_field_round_trips(migrated, ch_client):
    req = request()
    d = _native.decode_logs(req.SerializeToString())
    n = 3 + len(EVERY_KIND)
    assert (d.items, d.rejected) == (n, 0)
    assert [(t, rows) for t, rows, _ in d.blocks] == [("otel_logs", n)]
    db = migrated.clickhouse.database
    insert(ch_client, db, d)
    got = read_back(ch_client, db, "otel_logs", COLUMNS, "Timestamp")
    want = sorted(log_rows(req), key=lambda r: r["Timestamp"])
    assert len(got) == n
    for g, w in zip(got, want):
        for col in COLUMNS:
            assert g[col] == w[col], (w["SeverityText"], col)


def test_body_of_every_kind_renders_as_documented(migrated, ch_client):
    db = migrated.clickhouse.database
    insert(ch_client, db, _native.decode_logs(request().SerializeToString()))
    rows = read_back(ch_client, db, "otel_logs", ["SeverityText", "Body"], "Timestamp")
    bodies = {r["SeverityText"].removeprefix("body."): r["Body"] for r in rows if r["SeverityText"].startswith("body.")}
    assert bodies == EXPECTED_TEXT


def test_time_zero_takes_observed_time_and_missing_service_is_unknown(migrated, ch_client):
    db = migrated.clickhouse.database
    insert(ch_client, db, _native.decode_logs(request().SerializeToString()))
    rows = read_back(ch_client, db, "otel_logs", ["Timestamp", "ObservedTimestamp", "ServiceName", "SeverityText"], "Timestamp")
    assert rows[1] == {"Timestamp": T0 + 1, "ObservedTimestamp": T0 + 1, "ServiceName": "api", "SeverityText": ""}
    assert [r["ServiceName"] for r in rows if r["SeverityText"] == "nosvc"] == ["unknown_service"]


def test_wrong_length_span_id_rejects_only_that_record():
    req = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[
        LogRecord(time_unix_nano=T0, span_id=b"\x01" * 7), LogRecord(time_unix_nano=T0),
    ])])])
    d = _native.decode_logs(req.SerializeToString())
    assert (d.items, d.rejected) == (1, 1)
    assert d.rejection_reason == "log record rejected: span_id has 7 bytes, expected 8 (or empty)"
