"""The supervisor's background jobs: the dependency rollup runs in the supervisor, with the writing
user, once the schema is current; the read-only query process runs none."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from conftest import http_request
from daemon import Daemon
from otelingest.clickhouse.embedded import EmbeddedClickHouse


def _call(t_ns: int) -> bytes:
    """frontend calls checkout: a parent span and its child, in one request."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    trace = uuid.uuid4().bytes
    for service, span, parent in (("frontend", b"\x01" * 8, b""), ("checkout", b"\x02" * 8, b"\x01" * 8)):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = service
        s = rs.scope_spans.add().spans.add()
        s.trace_id, s.span_id, s.parent_span_id = trace, span, parent
        s.name, s.kind = "GET /cart", 2
        s.start_time_unix_nano, s.end_time_unix_nano = t_ns, t_ns + 1_000_000
    return req.SerializeToString()


def test_the_supervisor_fills_the_dependency_rollup(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"j_{uuid.uuid4().hex[:12]}"
    # Four hours ago is always in an hour that can be final (it ended two hours ago or more): the
    # job computes only such hours.
    t = time.time_ns() - 4 * 3600 * 1_000_000_000
    with Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db,
                env={"OTELINGEST_QUERY_DEPENDENCIES_ROLLUP_INTERVAL_S": "1"}) as d:
        status, _ = http_request(d.http_url + "/v1/traces", _call(t), content_type="application/x-protobuf")
        assert status == 200
        d.wait_count("otel_traces", 2)
        deadline = time.monotonic() + 60
        rows: list = []
        while time.monotonic() < deadline and not rows:
            rows = d.client().query(
                f"SELECT Parent, Child, sum(CallCount) FROM {db}.otel_service_dependencies_1h FINAL GROUP BY Parent, Child"
            ).result_rows
            time.sleep(0.5)
        assert rows == [("frontend", "checkout", 1)]
        log = d.log_text()
    assert "dependency rollup failed" not in log
