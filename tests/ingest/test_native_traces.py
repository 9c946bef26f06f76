"""Spans decoded by ``otelingest._native`` land in ``otel_traces`` exactly as sent."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otelingest import _native
from otlp_payloads import EVERY_KIND, EXPECTED_TEXT, kvs, resource, scope
from otlp_reference import insert, read_back, render, trace_rows

# Recent: rows older than the retention are dropped by TTL as soon as they are inserted.
T0 = (time.time_ns() // 10**9 - 600) * 10**9 + 123_456_789


def full_request() -> ExportTraceServiceRequest:
    full = Span(
        trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), parent_span_id=bytes(range(9, 17)),
        trace_state="k=v", flags=0x301, name="full", kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0, end_time_unix_nano=T0 + 1_500_000,
        attributes=kvs(EVERY_KIND), dropped_attributes_count=3,
        events=[
            Span.Event(time_unix_nano=T0 + 5, name="ev1", attributes=kvs({"a": 1, "b": "x"}), dropped_attributes_count=1),
            Span.Event(time_unix_nano=T0 + 6, name="ev2"),
        ],
        dropped_events_count=4,
        links=[
            Span.Link(trace_id=bytes(range(17, 33)), span_id=bytes(range(33, 41)), trace_state="l=1",
                      attributes=kvs({"link.attr": True}), dropped_attributes_count=2, flags=1),
            Span.Link(),
        ],
        dropped_links_count=5,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom \u00e9"),
    )
    empty = Span(name="empty", start_time_unix_nano=T0)  # every other field absent
    client = Span(trace_id=b"\xff" * 16, span_id=b"\xee" * 8, name="client", kind=Span.SPAN_KIND_CLIENT,
                  start_time_unix_nano=T0 + 10, end_time_unix_nano=T0 + 5, status=Status(code=Status.STATUS_CODE_OK))
    no_service = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="noservice", kind=Span.SPAN_KIND_CONSUMER,
                      start_time_unix_nano=T0, end_time_unix_nano=T0 + 1)
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(
            resource=resource({"service.name": "checkout", "host.name": "h1", "k8s.pod.count": 3}),
            schema_url="https://opentelemetry.io/schemas/1.26.0",
            scope_spans=[
                ScopeSpans(scope=scope("io.lib", "1.2.3", {"scope.attr": 1.25}), schema_url="https://scope/1", spans=[full, empty]),
                ScopeSpans(spans=[client]),
            ],
        ),
        ResourceSpans(scope_spans=[ScopeSpans(spans=[no_service])]),
    ])


COLUMNS = list(next(trace_rows(full_request())).keys())


def test_every_span_field_round_trips(migrated, ch_client):
    req = full_request()
    d = _native.decode_traces(req.SerializeToString())
    assert (d.items, d.rejected, d.rejection_reason) == (4, 0, None)
    assert [(t, rows) for t, rows, _ in d.blocks] == [("otel_traces", 4)]
    assert d.nbytes == sum(len(b) for _, _, b in d.blocks)
    db = migrated.clickhouse.database
    insert(ch_client, db, d)
    got = read_back(ch_client, db, "otel_traces", COLUMNS, "SpanName")
    want = sorted(trace_rows(req), key=lambda r: r["SpanName"])
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        for col in COLUMNS:
            assert g[col] == w[col], (w["SpanName"], col)


def test_attribute_values_render_as_documented(migrated, ch_client):
    req = full_request()
    full = req.resource_spans[0].scope_spans[0].spans[0]
    # The Python reference agrees with the documented table...
    assert {kv.key: render(kv.value) for kv in full.attributes} == EXPECTED_TEXT
    # ...and so does what ClickHouse stores.
    db = migrated.clickhouse.database
    insert(ch_client, db, _native.decode_traces(req.SerializeToString()))
    [row] = read_back(ch_client, db, "otel_traces", ["SpanAttributes", "ServiceName"], "SpanName != 'full' LIMIT 1")
    assert row == {"SpanAttributes": EXPECTED_TEXT, "ServiceName": "checkout"}


def test_blocks_of_several_requests_concatenate_into_one_insert(migrated, ch_client):
    blocks = []
    for i in range(3):
        req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[
            Span(trace_id=bytes([i + 1]) * 16, span_id=bytes([j + 1]) * 8, name=f"s{i}.{j}", start_time_unix_nano=T0 + i)
            for j in range(i + 1)
        ])])])
        blocks += [b for _, _, b in _native.decode_traces(req.SerializeToString()).blocks]
    db = migrated.clickhouse.database
    ch_client.raw_insert(f"{db}.otel_traces", insert_block=b"".join(blocks), fmt="Native")
    rows = read_back(ch_client, db, "otel_traces", ["SpanName", "ServiceName"], "SpanName")
    assert [r["SpanName"] for r in rows] == ["s0.0", "s1.0", "s1.1", "s2.0", "s2.1", "s2.2"]
    assert {r["ServiceName"] for r in rows} == {"unknown_service"}


def test_materialized_views_fill_from_native_blocks(migrated, ch_client):
    db = migrated.clickhouse.database
    insert(ch_client, db, _native.decode_traces(full_request().SerializeToString()))
    n = ch_client.query(f"SELECT count() FROM {db}.otel_trace_index WHERE IsRoot = 1").result_rows[0][0]
    # "full" has a parent; "empty", "client" and "noservice" are roots.
    assert n == 3


def test_wrong_length_ids_reject_only_that_span(migrated, ch_client):
    good = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="good", start_time_unix_nano=T0)
    bad_trace = Span(trace_id=b"\x01" * 15, span_id=b"\x02" * 8, name="bad_trace")
    bad_link = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="bad_link", links=[Span.Link(span_id=b"\x01" * 9)])
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[bad_trace, good, bad_link])])])
    d = _native.decode_traces(req.SerializeToString())
    assert (d.items, d.rejected) == (1, 2)
    assert d.rejection_reason == "span rejected: trace_id has 15 bytes, expected 16 (or empty)"
    db = migrated.clickhouse.database
    insert(ch_client, db, d)
    assert read_back(ch_client, db, "otel_traces", ["SpanName"], "SpanName") == [{"SpanName": "good"}]


def test_empty_request_has_no_blocks():
    d = _native.decode_traces(b"")
    assert (d.items, d.rejected, d.nbytes, d.blocks) == (0, 0, 0, [])


def test_concurrent_decodes_in_threads_give_the_same_blocks():
    # The GIL is released while decoding: threads decode at once, each with its own buffers.
    from concurrent.futures import ThreadPoolExecutor

    bodies = []
    for i in range(8):
        req = full_request()
        req.resource_spans[0].scope_spans[0].spans[0].name = f"full{i}"
        bodies.append(req.SerializeToString())
    want = [_native.decode_traces(b).blocks for b in bodies]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(lambda b: _native.decode_traces(b).blocks, bodies)) == want


def _len_field(num: int, payload: bytes) -> bytes:
    n, length = len(payload), bytearray()
    while n >= 0x80:
        length.append(n & 0x7F | 0x80)
        n >>= 7
    length.append(n)
    return bytes([num << 3 | 2]) + bytes(length) + payload


def test_resource_and_scope_may_come_after_their_spans():
    req = full_request()
    rs = req.resource_spans[0]
    # Wire order: the spans first, then resource, schema URLs and scope (protobuf allows any order).
    ss_parts = [ScopeSpans(spans=ss.spans).SerializeToString() + ScopeSpans(scope=ss.scope, schema_url=ss.schema_url).SerializeToString()
                for ss in rs.scope_spans]
    rs_bytes = b"".join(_len_field(2, p) for p in ss_parts) + ResourceSpans(resource=rs.resource, schema_url=rs.schema_url).SerializeToString()
    body = _len_field(1, rs_bytes) + ExportTraceServiceRequest(resource_spans=req.resource_spans[1:]).SerializeToString()
    assert _native.decode_traces(body).blocks == _native.decode_traces(req.SerializeToString()).blocks
