"""Secrets never reach the logs or the metrics: configured tokens and passwords, and the
credentials clients present (right or wrong), at debug level, across every process."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import uuid
from pathlib import Path

import grpc
import pytest

from conftest import self_signed_cert
from daemon import Daemon
from load import traces_json
from otelingest.clickhouse.embedded import EmbeddedClickHouse

RECEIVER_TOKEN = f"rx-{uuid.uuid4().hex}"
QUERY_TOKEN = f"qy-{uuid.uuid4().hex}"
BASIC_PASSWORD = f"pw-{uuid.uuid4().hex}"
WRONG_TOKEN = f"wrong-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"wrongpw-{uuid.uuid4().hex}"


def request(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_never_logged(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    config = (f'[log]\nlevel = "debug"\n'
              f'[auth]\nreceiver_bearer_tokens = ["{RECEIVER_TOKEN}"]\nreceiver_basic_users = ["alice:{BASIC_PASSWORD}"]\n'
              f'query_bearer_tokens = ["{QUERY_TOKEN}"]\n')
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, config=config)
    d.start()
    try:
        body = traces_json("secrets", 1, 2)
        ctype = {"Content-Type": "application/json"}
        assert request(d.http_port, "POST", "/v1/traces", body, {**ctype, "Authorization": f"Bearer {RECEIVER_TOKEN}"}) == 200
        assert request(d.http_port, "POST", "/v1/traces", body, {**ctype, "Authorization": basic("alice", BASIC_PASSWORD)}) == 200
        assert request(d.http_port, "POST", "/v1/traces", body, {**ctype, "Authorization": f"Bearer {WRONG_TOKEN}"}) == 401
        assert request(d.http_port, "POST", "/v1/traces", body, {**ctype, "Authorization": basic("alice", WRONG_PASSWORD)}) == 401
        with grpc.insecure_channel(d.grpc_endpoint) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            assert export(b"", timeout=10, metadata=[("authorization", f"Bearer {RECEIVER_TOKEN}")]) == b""
            with pytest.raises(grpc.RpcError) as err:
                export(b"", timeout=10, metadata=[("authorization", f"Bearer {WRONG_TOKEN}")])
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        services = json.dumps({}).encode()
        wait_listening(d.query_port)  # Daemon.start waits for the receivers, not the query process
        assert request(d.query_port, "GET", "/api/services", None, {"Authorization": f"Bearer {QUERY_TOKEN}"}) == 200
        assert request(d.query_port, "GET", "/api/services", None, {"Authorization": f"Bearer {WRONG_TOKEN}"}) == 401
        assert request(d.query_port, "POST", "/api/v1/traces", services, {"Authorization": basic("bob", WRONG_PASSWORD)}) == 401
        assert d.wait_count_where("otel_traces", "ServiceName = 'secrets'", {}, 4) == 4
        metrics = d.metrics_text()
    finally:
        d.stop()
    log = d.log_text()
    assert "level=debug" in log  # the most talkative level was on
    secrets = [RECEIVER_TOKEN, QUERY_TOKEN, BASIC_PASSWORD, WRONG_TOKEN, WRONG_PASSWORD]
    encoded = [basic("alice", BASIC_PASSWORD).split()[1], basic("alice", WRONG_PASSWORD).split()[1],
               basic("bob", WRONG_PASSWORD).split()[1]]
    for secret in secrets + encoded:
        assert secret not in log, f"a credential is in the daemon's log: {secret[:6]}..."
        assert secret not in metrics


def test_query_api_over_tls(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    import ssl

    key, cert = self_signed_cert(tmp_path)
    db = f"t_{uuid.uuid4().hex[:12]}"
    config = (f'[auth]\nquery_bearer_tokens = ["{QUERY_TOKEN}"]\n'
              f'[tls]\nquery_cert_file = "{cert}"\nquery_key_file = "{key}"\n')
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, config=config)
    d.start()
    try:
        wait_listening(d.query_port)
        ctx = ssl.create_default_context(cafile=str(cert))

        def get(headers: dict[str, str]) -> tuple[int, bytes]:
            conn = http.client.HTTPSConnection("localhost", d.query_port, context=ctx, timeout=30)
            try:
                conn.request("GET", "/api/services", headers=headers)
                r = conn.getresponse()
                return r.status, r.read()
            finally:
                conn.close()

        assert get({})[0] == 401
        status, body = get({"Authorization": f"Bearer {QUERY_TOKEN}"})
        assert status == 200, body
        # Plain HTTP on the TLS port is not served.
        with pytest.raises((http.client.HTTPException, OSError)):
            conn = http.client.HTTPConnection("127.0.0.1", d.query_port, timeout=10)
            try:
                conn.request("GET", "/api/services")
                r = conn.getresponse()
                if r.status == 400:  # some servers answer a plain request on a TLS port with 400
                    raise http.client.HTTPException("plain HTTP refused")
            finally:
                conn.close()
    finally:
        d.stop()
    assert QUERY_TOKEN not in d.log_text()
