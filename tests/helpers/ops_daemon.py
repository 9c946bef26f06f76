"""A real ``otelingest serve`` on free loopback ports, for the operations tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from conftest import free_ports, http_request

PORT_NAMES = ("grpc", "http", "query", "metrics", "ch_http", "ch_tcp")


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    data_dir: Path
    log_path: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics']}"

    @property
    def args(self) -> list[str]:
        """The flags that point a client command at this daemon."""
        return [
            "--data-dir", str(self.data_dir),
            "--metrics-port", str(self.ports["metrics"]),
            "--clickhouse-http-port", str(self.ports["ch_http"]),
            "--clickhouse-tcp-port", str(self.ports["ch_tcp"]),
            "--grpc-port", str(self.ports["grpc"]), "--http-port", str(self.ports["http"]),
            "--query-port", str(self.ports["query"]),
        ]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    return http_request(url, timeout=timeout)


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTELINGEST_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(
    tmp_path: Path, *, env: dict[str, str] | None = None, ready: bool = True, extra_args: tuple[str, ...] = ()
) -> Iterator[Daemon]:
    """Start ``otelingest serve`` (embedded ClickHouse) and wait for /ready; SIGTERM it on exit."""
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
    d = Daemon(None, ports, tmp_path / "data", tmp_path / "serve.log")  # type: ignore[arg-type]
    cmd = [sys.executable, "-m", "otelingest", "serve", *d.args, *extra_args]
    with open(d.log_path, "wb") as out:
        d.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env or clean_env())
    try:
        if ready:
            ok = wait_for(lambda: get(d.metrics_url + "/ready")[0] == 200, 90, 0.2)
            assert ok, f"daemon not ready: {get(d.metrics_url + '/ready')} {d.log()[-2000:]}"
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()


def send_spans(daemon: Daemon, count: int, service: str = "ops-test") -> None:
    """POST ``count`` spans as one OTLP/HTTP protobuf request; asserts a 200."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    spans = [
        Span(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op",
             kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=now - 1_000_000, end_time_unix_nano=now)
        for i in range(count)
    ]
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]),
        scope_spans=[ScopeSpans(spans=spans)],
    )])
    http = urllib.request.Request(
        f"http://127.0.0.1:{daemon.ports['http']}/v1/traces", data=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"}, method="POST",
    )
    with urllib.request.urlopen(http, timeout=30) as r:
        assert r.status == 200, r.status
