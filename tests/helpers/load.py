"""A steady OTLP/HTTP JSON sender for end-to-end tests: counts exactly what the daemon acknowledged.

Every span has a unique (TraceId, SpanId), so a test can check "no loss" (count == acknowledged)
and "no duplicates" (count == distinct ids) in ClickHouse.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter
from typing import Any

_request_ids = itertools.count(1)
# Recent: rows older than the retention are dropped by the tables' TTL.
T0 = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000_000


def traces_json(service: str, request_id: int, spans: int) -> bytes:
    base = T0 + request_id * 1_000_000
    out = []
    for k in range(spans):
        out.append({
            "traceId": f"{request_id:016x}{k:016x}", "spanId": f"{request_id:08x}{k:08x}",
            "name": "load", "kind": 2, "startTimeUnixNano": str(base + k), "endTimeUnixNano": str(base + k + 1000),
            "attributes": [{"key": "request", "value": {"intValue": request_id}},
                           {"key": "payload", "value": {"stringValue": "x" * 64}}],
            "status": {"code": 0},
        })
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "load"}, "spans": out}],
    }]}).encode()



def post_traces(port: int, tenant: str, service: str, request_id: int, spans: int) -> int:
    """POSTs traces_json(service, request_id, spans) as ``tenant`` (X-Scope-OrgID) on a new
    connection (SO_REUSEPORT spreads connections over the receiver workers); the HTTP status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=traces_json(service, request_id, spans),
                     headers={"Content-Type": "application/json", "X-Scope-OrgID": tenant})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()

class Sender(threading.Thread):
    """POSTs span batches until stopped; ``acked`` counts spans answered 200."""

    def __init__(self, port: int, service: str, *, spans: int = 50, pause_s: float = 0.0,
                 stop_on_refusal: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.service, self.spans, self.pause_s = port, service, spans, pause_s
        self.stop_on_refusal = stop_on_refusal
        self.stop_event = threading.Event()
        self.acked = 0
        self.statuses: Counter[Any] = Counter()
        self.refusals: list[tuple[int, dict[str, str]]] = []

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            body = traces_json(self.service, next(_request_ids), self.spans)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
            except (OSError, http.client.HTTPException) as e:
                self.statuses[type(e).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
                continue
            self.statuses[r.status] += 1
            if r.status == 200:
                self.acked += self.spans
            else:
                self.refusals.append((r.status, {k.lower(): v for k, v in r.getheaders()}))
                if self.stop_on_refusal and r.status in (429, 503):
                    break
                time.sleep(0.05)
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
            if self.pause_s:
                time.sleep(self.pause_s)
        if conn is not None:
            conn.close()

    def stop(self) -> int:
        self.stop_event.set()
        self.join(60)
        return self.acked
