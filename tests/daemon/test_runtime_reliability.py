"""Reliability of the whole daemon: backpressure while ClickHouse is down, graceful stop under
load, a writer killed mid-load. Every acknowledged span must be stored exactly once."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import grpc
import pytest

from conftest import new_embedded_clickhouse
from daemon import Daemon
from load import T0, Sender
from otelingest.clickhouse.embedded import EmbeddedClickHouse


def distinct_spans(d: Daemon, service: str) -> tuple[int, int]:
    (n, distinct), = d.client().query(
        f"SELECT count(), uniqExact(TraceId, SpanId) FROM {d.database}.otel_traces WHERE ServiceName = {{s:String}}",
        parameters={"s": service}).result_rows
    return int(n), int(distinct)


def test_backpressure_while_clickhouse_is_down_then_everything_acknowledged_is_stored(tmp_path: Path) -> None:
    ch = new_embedded_clickhouse(tmp_path / "ch")
    ch.start()
    ch.wait_ready(timeout=120)
    env = {
        "OTELINGEST_WRITER_RING_MIB": "1",
        "OTELINGEST_MEMORY_HARD_LIMIT_MIB": "2",
        "OTELINGEST_MEMORY_SOFT_LIMIT_MIB": "1",
        "OTELINGEST_MEMORY_RSS_LIMIT_MIB": "100000",
        "OTELINGEST_MEMORY_CHECK_INTERVAL_S": "0.05",
        "OTELINGEST_WRITER_RETRY_INITIAL_S": "0.1",
        "OTELINGEST_WRITER_RETRY_MAX_S": "0.5",
        "OTELINGEST_RECEIVER_RETRY_AFTER_S": "1",
        "OTELINGEST_CLICKHOUSE_CONNECT_TIMEOUT_S": "1",
        "OTELINGEST_WRITER_STOP_TIMEOUT_S": "5",
        # No disk spill: this test is about the rings filling and the receivers refusing (the spill
        # absorbing an outage is tests/daemon/test_chaos.py).
        "OTELINGEST_SPILL_AFTER_S": "1000000",
    }
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env)
    try:
        d.start()
        ch.stop()
        sender = Sender(d.http_port, "bp-http", spans=100, stop_on_refusal=True)
        sender.start()
        sender.join(120)
        assert not sender.is_alive()
        status, headers = sender.refusals[0]
        assert status in (429, 503) and headers["retry-after"] == "1"
        acked = sender.acked
        assert acked > 0

        # gRPC clients get RESOURCE_EXHAUSTED or UNAVAILABLE with a RetryInfo hint.
        from google.rpc import error_details_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        req = trace_service_pb2.ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "bp-grpc"
        spans = rs.scope_spans.add().spans
        with grpc.insecure_channel(d.grpc_endpoint) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            grpc_acked = 0
            for k in range(10_000):
                del spans[:]
                for j in range(100):
                    spans.add(trace_id=k.to_bytes(8, "big") + j.to_bytes(8, "big"), span_id=(k * 100 + j + 1).to_bytes(8, "big"),
                              name="grpc-bp", start_time_unix_nano=T0 + j, end_time_unix_nano=T0 + j + 10)
                try:
                    export(req.SerializeToString(), timeout=10)
                except grpc.RpcError as e:
                    err = e
                    break
                grpc_acked += 100
            else:
                pytest.fail("gRPC never refused")
        assert err.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
        hint = dict(err.trailing_metadata())["google.rpc.retryinfo-bin"]
        assert error_details_pb2.RetryInfo.FromString(hint).retry_delay.seconds == 1
        assert d.metric("otel_refused_total") >= 2

        ch.start()
        ch.wait_ready(timeout=120)
        assert d.wait_count_where("otel_traces", "ServiceName = 'bp-http'", {}, acked, timeout=120) == acked
        assert distinct_spans(d, "bp-http") == (acked, acked)
        assert d.wait_count_where("otel_traces", "ServiceName = 'bp-grpc'", {}, grpc_acked, timeout=60) == grpc_acked
        assert distinct_spans(d, "bp-grpc") == (grpc_acked, grpc_acked)
        # Once drained, the daemon accepts again.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            again = Sender(d.http_port, "bp-after", spans=10, stop_on_refusal=True)
            again.start()
            time.sleep(0.5)
            if again.stop() > 0:
                break
        else:
            pytest.fail("the daemon kept refusing after ClickHouse came back")
    finally:
        try:
            d.stop()
        finally:
            ch.stop()


def test_graceful_stop_under_load_stores_everything_acknowledged(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, env={"OTELINGEST_WRITER_BATCH_TIMEOUT_S": "1"})
    d.start()
    senders = [Sender(d.http_port, "graceful", spans=50) for _ in range(3)]
    try:
        for s in senders:
            s.start()
        time.sleep(2.0)
        assert sum(s.acked for s in senders) > 0
        assert d.stop(signal.SIGTERM) == 0
    finally:
        acked = sum(s.stop() for s in senders)
        d.stop()
    assert distinct_spans(d, "graceful") == (acked, acked)
    log = d.log_text()
    assert "stopping 2 receiver process(es)" in log and "stopping 1 writer process(es)" in log


def test_writer_killed_mid_load_is_replaced_without_loss_or_duplicates(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, env={"OTELINGEST_WRITER_BATCH_TIMEOUT_S": "0.5"})
    d.start()
    sender = Sender(d.http_port, "killed", spans=50)
    try:
        sender.start()
        deadline = time.monotonic() + 60
        while d.count_where("otel_traces", "ServiceName = 'killed'", {}) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        victim = d.pid_of("otelingest: writer 0")
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = d.pid_of("otelingest: writer 0")
            if new != victim:
                break
            time.sleep(0.1)
        assert new != victim
        time.sleep(1.5)
        acked = sender.stop()
        assert acked > 0
        assert d.wait_count_where("otel_traces", "ServiceName = 'killed'", {}, acked, timeout=60) == acked
        assert distinct_spans(d, "killed") == (acked, acked)
        assert d.metric("otel_worker_restarts_total", role="writer") == 1
    finally:
        sender.stop()
        d.stop()


def test_hung_receiver_is_killed_and_replaced_at_the_same_index(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, env={"OTELINGEST_SUPERVISOR_HEARTBEAT_TIMEOUT_S": "2"})
    d.start()
    try:
        hung = d.pid_of("otelingest: receiver 1")
        os.kill(hung, signal.SIGSTOP)  # alive, but its event loop no longer runs
        deadline = time.monotonic() + 30
        new = hung
        while new == hung and time.monotonic() < deadline:
            time.sleep(0.2)
            new = d.pid_of("otelingest: receiver 1")
        assert new != hung
        assert "receiver 1 (pid %d) missed its heartbeat" % hung in d.log_text()
        assert d.metric("otel_worker_restarts_total", role="receiver", reason="hung") == 1
        # The replacement serves.
        sender = Sender(d.http_port, "after-hang", spans=10)
        sender.start()
        time.sleep(1.0)
        acked = sender.stop()
        assert acked > 0
        assert d.wait_count_where("otel_traces", "ServiceName = 'after-hang'", {}, acked) == acked
    finally:
        d.stop()


def test_starts_and_accepts_before_clickhouse_is_up(tmp_path: Path) -> None:
    ch = new_embedded_clickhouse(tmp_path / "ch")
    env = {"OTELINGEST_WRITER_RETRY_INITIAL_S": "0.1", "OTELINGEST_WRITER_RETRY_MAX_S": "0.5",
           "OTELINGEST_CLICKHOUSE_CONNECT_TIMEOUT_S": "1", "OTELINGEST_WRITER_STOP_TIMEOUT_S": "5",
           # ClickHouse comes up only after the sending below: a loaded machine must not make that a failed boot.
           "OTELINGEST_SUPERVISOR_BOOT_TIMEOUT_S": "600"}
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env)
    d.start(wait_ready=False)
    try:
        deadline = time.monotonic() + 60
        while not (_port_open(d.http_port) and _port_open(d.grpc_port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert d.http_status("/ready") == 503
        sender = Sender(d.http_port, "early", spans=20)
        sender.start()
        time.sleep(1.0)
        acked = sender.stop()
        assert acked > 0
        ch.start()
        ch.wait_ready(timeout=120)
        d.wait_ready()
        assert d.wait_count_where("otel_traces", "ServiceName = 'early'", {}, acked, timeout=60) == acked
        assert distinct_spans(d, "early") == (acked, acked)
        assert not (d.data_dir / "deadletter").exists()
    finally:
        try:
            d.stop()
        finally:
            ch.stop()


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_sighup_reloads_and_rolls_every_worker_without_losing_data(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, config="[writer]\nbatch_max_items = 10000\n")
    d.start()
    titles = ("otelingest: writer 0", "otelingest: receiver 0", "otelingest: receiver 1")
    sender = Sender(d.http_port, "sighup", spans=20)
    try:
        before = {t: d.pid_of(t) for t in titles}
        sender.start()
        (tmp_path / "otelingest.toml").write_text("[writer]\nbatch_max_items = 500\n[log]\nlevel = \"info\"\n")
        d.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        after = dict(before)
        while any(after[t] == before[t] for t in titles) and time.monotonic() < deadline:
            time.sleep(0.2)
            after = {t: d.pid_of(t) for t in titles}
        assert all(after[t] != before[t] for t in titles), d.log_tail()
        time.sleep(1.0)
        acked = sender.stop()
        assert d.wait_count_where("otel_traces", "ServiceName = 'sighup'", {}, acked) == acked
        assert distinct_spans(d, "sighup") == (acked, acked)
        assert d.metric("otel_worker_restarts_total") == 0  # rolled on purpose, not crashed
        assert d.log_text().count("rolling restart: stopping") == 3
    finally:
        sender.stop()
        d.stop()
