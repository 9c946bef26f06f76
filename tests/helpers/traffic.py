"""Clients that count exactly what was acknowledged, and what ClickHouse stored of it: the chaos,
exhaustion and soak scenarios compare the two."""

from __future__ import annotations

import http.client
import itertools
import os
import threading
import time
import uuid
from collections import Counter
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from daemon import Daemon
from load import T0

SPANS_PER_REQUEST = 20
_request_ids = itertools.count(1)
RUN = uuid.uuid4().int & 0xFFFF_FFFF  # distinct ids across test processes sharing a server


def traces_protobuf(service: str, request_id: int, spans: int, filler_bytes: int = 0,
                    base_ns: int | None = None) -> bytes:
    """``filler_bytes``: an attribute of that many random bytes per span, which no codec shrinks (a
    disk fills in a bounded time: the spans alone compress to about 25 bytes each). ``base_ns``: the
    first span's start (default: a millisecond per request after ``T0``, an hour ago)."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    out = rs.scope_spans.add()
    out.scope.name = "chaos"
    base = T0 + request_id * 1_000_000 if base_ns is None else base_ns
    for k in range(spans):
        s = out.spans.add()
        s.trace_id = RUN.to_bytes(4, "big") + request_id.to_bytes(8, "big") + k.to_bytes(4, "big")
        s.span_id = request_id.to_bytes(5, "big") + k.to_bytes(3, "big")
        s.name = "chaos"
        s.kind = 2
        s.start_time_unix_nano = base + k
        s.end_time_unix_nano = base + k + 1000
        a = s.attributes.add(key="request")
        a.value.int_value = request_id
        if filler_bytes:
            s.attributes.add(key="filler").value.bytes_value = os.urandom(filler_bytes)
    return req.SerializeToString()


class ProtoSender(threading.Thread):
    """POSTs protobuf span batches until stopped; counts exactly what was acknowledged.

    ``acked``: spans answered 200. ``refused``: requests answered 429/503 (retryable; a real client
    would resend, this one sends the next batch). ``broken``: requests whose connection failed
    before an answer (outcome unknown to the client).
    """

    def __init__(self, port: int, service: str, *, spans: int = SPANS_PER_REQUEST, pause_s: float = 0.01,
                 filler_bytes: int = 0) -> None:
        super().__init__(daemon=True)
        self.port, self.service, self.spans, self.pause_s = port, service, spans, pause_s
        self.filler_bytes = filler_bytes
        self.stop_event = threading.Event()
        self.acked = 0
        self.refused = 0
        self.broken = 0
        self.statuses: Counter[Any] = Counter()

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            body = traces_protobuf(self.service, next(_request_ids), self.spans, self.filler_bytes)
            sent = False
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    conn.connect()
                sent = True
                conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
                r = conn.getresponse()
                r.read()
            except (OSError, http.client.HTTPException) as e:
                self.statuses[type(e).__name__] += 1
                self.broken += sent
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
                continue
            self.statuses[r.status] += 1
            if r.status == 200:
                self.acked += self.spans
            elif r.status in (429, 503):
                self.refused += 1
                time.sleep(0.1)
            else:
                raise AssertionError(f"unexpected answer {r.status} to a valid request")
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
            time.sleep(self.pause_s)
        if conn is not None:
            conn.close()

    def stop(self) -> int:
        self.stop_event.set()
        self.join(60)
        assert not self.is_alive()
        return self.acked


def stored(d: Daemon, service: str) -> tuple[int, int]:
    (n, distinct), = d.client().query(
        f"SELECT count(), uniqExact(TraceId, SpanId) FROM {d.database}.otel_traces WHERE ServiceName = {{s:String}}",
        parameters={"s": service}).result_rows
    return int(n), int(distinct)


def wait_stored(d: Daemon, service: str, at_least: int, timeout: float = 120.0) -> tuple[int, int]:
    """Poll until ``at_least`` spans of ``service`` are stored and the count stops moving."""
    deadline = time.monotonic() + timeout
    last = (-1, -1)
    while time.monotonic() < deadline:
        try:
            now = stored(d, service)
        except Exception:  # noqa: BLE001 - ClickHouse still starting
            time.sleep(0.2)
            continue
        if now[0] >= at_least and now == last:
            return now
        last = now
        time.sleep(0.5)
    return last


def start_senders(d: Daemon, service: str, n: int = 2, **kw: Any) -> list[ProtoSender]:
    senders = [ProtoSender(d.http_port, service, **kw) for _ in range(n)]
    for s in senders:
        s.start()
    return senders


def wait_acked(senders: list[ProtoSender], at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(s.acked for s in senders) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(s.acked for s in senders) >= at_least, [s.statuses for s in senders]


FAST_RETRY = {
    "OTELINGEST_WRITER_RETRY_INITIAL_S": "0.1",
    "OTELINGEST_WRITER_RETRY_MAX_S": "0.5",
    "OTELINGEST_CLICKHOUSE_CONNECT_TIMEOUT_S": "1",
    "OTELINGEST_RECEIVER_RETRY_AFTER_S": "1",
    "OTELINGEST_WRITER_STOP_TIMEOUT_S": "10",
}


def _retry_memory(read: Any) -> Any:
    """A full read may not fit next to merges in a memory-capped server (the exhaustion scenario's
    200 MiB): MEMORY_LIMIT_EXCEEDED says nothing about the table, so it is tried again."""
    for attempt in range(10):
        try:
            return read()
        except Exception as e:  # noqa: BLE001 - only the memory error is retried
            if "MEMORY_LIMIT_EXCEEDED" not in str(e) or attempt == 9:
                raise
            time.sleep(2)


def assert_tables_readable(d: Daemon) -> None:
    """CHECK TABLE and a full read of every MergeTree table of the daemon's database; no detached part."""
    c = d.client()
    tables = [r[0] for r in c.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        parameters={"db": d.database}).result_rows]
    assert tables
    for t in tables:
        verdict = _retry_memory(lambda: c.raw_query(
            f"CHECK TABLE {d.database}.{t} SETTINGS check_query_single_value_result = 1 FORMAT TabSeparated"
        )).decode().strip()
        assert verdict == "1", (t, verdict)
        _retry_memory(lambda: c.query(f"SELECT sum(cityHash64(*)) FROM {d.database}.{t}"))  # every column of every part
    detached = c.query("SELECT table, name, reason FROM system.detached_parts WHERE database = {db:String}",
                       parameters={"db": d.database}).result_rows
    assert detached == [], detached
