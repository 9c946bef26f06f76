"""Receiver authentication (bearer / basic from [auth]) and TLS (from [tls]) on both transports,
with the official OTel exporters as clients."""

from __future__ import annotations

import base64
import http.client
import ssl
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from conftest import self_signed_cert
from daemon import Daemon
from load import traces_json

TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, certs: tuple[Path, Path]) -> Iterator[Daemon]:
    key, cert = certs
    config = (f'[auth]\nreceiver_bearer_tokens = ["{TOKEN}"]\nreceiver_basic_users = ["alice:s3cret"]\n'
              f'[tls]\nreceiver_cert_file = "{cert}"\nreceiver_key_file = "{key}"\n')
    d = Daemon(tmp_path_factory.mktemp("auth"), config=config)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def post(d: Daemon, cert: Path, headers: dict[str, str], service: str) -> int:
    ctx = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("localhost", d.http_port, context=ctx, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=traces_json(service, 1, 3),
                     headers={"Content-Type": "application/json", **headers})
        r = conn.getresponse()
        r.read()
        if r.status == 401:
            assert "Bearer" in r.getheader("www-authenticate", "")
        return r.status
    finally:
        conn.close()


def test_http_over_tls_needs_a_credential(daemon: Daemon, certs: tuple[Path, Path]) -> None:
    cert = certs[1]
    assert post(daemon, cert, {}, "auth-none") == 401
    assert post(daemon, cert, {"Authorization": "Bearer wrong"}, "auth-wrong") == 401
    assert post(daemon, cert, {"Authorization": f"Bearer {TOKEN}"}, "auth-bearer") == 200
    basic = base64.b64encode(b"alice:s3cret").decode()
    assert post(daemon, cert, {"Authorization": f"Basic {basic}"}, "auth-basic") == 200
    assert daemon.wait_count_where("otel_traces", "ServiceName IN ('auth-bearer', 'auth-basic')", {}, 6) == 6
    assert daemon.count_where("otel_traces", "ServiceName IN ('auth-none', 'auth-wrong')", {}) == 0


def test_grpc_over_tls_with_the_sdk_exporter(daemon: Daemon, certs: tuple[Path, Path]) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    creds = grpc.ssl_channel_credentials(root_certificates=certs[1].read_bytes())
    for token, service in ((TOKEN, "auth-grpc-ok"), ("wrong", "auth-grpc-bad")):
        exporter = OTLPSpanExporter(endpoint=f"localhost:{daemon.grpc_port}", credentials=creds,
                                    headers={"authorization": f"Bearer {token}"})
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for n in range(4):
            with provider.get_tracer("t").start_as_current_span(f"s{n}"):
                pass
        provider.shutdown()
    assert daemon.wait_count_where("otel_traces", "ServiceName = 'auth-grpc-ok'", {}, 4) == 4
    assert daemon.count_where("otel_traces", "ServiceName = 'auth-grpc-bad'", {}) == 0

    with grpc.secure_channel(f"localhost:{daemon.grpc_port}", creds) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(b"", timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
