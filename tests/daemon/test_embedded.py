"""The embedded ClickHouse: start, stop, restart with data kept, and supervision by `serve`."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import free_ports, http_request
from otelingest.clickhouse.embedded import EmbeddedClickHouse
from otelingest.config import ClickHouseConfig
from otelingest.clickhouse.client import connect
from otelingest.errors import StorageError


def test_start_stop_restart_keeps_data(tmp_path):
    http_port, tcp_port = free_ports(2)
    ch = EmbeddedClickHouse(tmp_path / "ch", http_port=http_port, tcp_port=tcp_port)
    ch.start()
    ch.wait_ready(timeout=60)
    client = connect(ClickHouseConfig(url=ch.url), with_database=False)
    assert client.query("SELECT version()").result_rows[0][0].startswith("26.")
    client.command("CREATE TABLE default.kept (n UInt64) ENGINE = MergeTree ORDER BY n")
    client.insert("default.kept", [[i] for i in range(1000)], column_names=["n"])
    client.close()
    assert ch.stop() == 0
    assert not ch.ping()

    ch.start()
    ch.wait_ready(timeout=60)
    client = connect(ClickHouseConfig(url=ch.url), with_database=False)
    assert client.query("SELECT count(), sum(n) FROM default.kept").result_rows == [(1000, 499500)]
    client.close()
    assert ch.stop() == 0


def test_native_tcp_listener_is_up(clickhouse):
    import socket

    with socket.create_connection(("127.0.0.1", clickhouse.tcp_port), timeout=5):
        pass


def test_data_dir_is_exclusive(clickhouse, tmp_path):
    """A second server on a data directory in use fails with a clear error instead of corrupting it."""
    http_port, tcp_port = free_ports(2)
    other = EmbeddedClickHouse(clickhouse.root, http_port=http_port, tcp_port=tcp_port)
    other.start()
    with pytest.raises(StorageError, match="exited|did not answer"):
        other.wait_ready(timeout=20)
    other.stop(timeout=5)
    assert clickhouse.ping()


def _get(url: str) -> tuple[int, bytes]:
    return http_request(url, timeout=2)


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _titles(pid: int) -> dict[str, int]:
    out = {}
    for p in psutil.Process(pid).children(recursive=True):
        try:
            out[" ".join(p.cmdline()).strip()] = p.pid
        except psutil.Error:
            pass
    return out


def _serve_command(tmp_path, *extra: str) -> tuple[list[str], dict[str, int], dict[str, str]]:
    """`otelingest serve` on free ports with its data under tmp_path, and a clean environment."""
    names = ("grpc", "http", "query", "metrics", "ch_http", "ch_tcp")
    ports = dict(zip(names, free_ports(len(names))))
    cmd = [
        sys.executable, "-m", "otelingest", "serve", "--data-dir", str(tmp_path / "data"),
        "--grpc-port", str(ports["grpc"]), "--http-port", str(ports["http"]),
        "--query-port", str(ports["query"]), "--metrics-port", str(ports["metrics"]),
        "--clickhouse-http-port", str(ports["ch_http"]), "--clickhouse-tcp-port", str(ports["ch_tcp"]),
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTELINGEST_")}
    return cmd, ports, env


def test_serve_supervises_clickhouse(tmp_path):
    cmd, ports, env = _serve_command(tmp_path)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{ports['metrics']}"
    try:
        assert _wait(lambda: _get(base + "/health")[0] == 200, 30)
        assert _wait(lambda: _get(base + "/ready")[0] == 200, 60), _get(base + "/ready")
        assert json.loads(_get(base + "/ready")[1]) == {"status": "ready", "reason": "ok"}
        assert _get(base + "/metrics")[0] == 200
        titles = _titles(proc.pid)
        assert "otelingest: clickhouse" in titles
        assert " ".join(psutil.Process(proc.pid).cmdline()).strip() == "otelingest: supervisor"

        # ClickHouse dies: /ready drops, the supervisor restarts it, /ready returns; data kept.
        client = connect(ClickHouseConfig(url=f"http://127.0.0.1:{ports['ch_http']}"), with_database=False)
        client.command("INSERT INTO otel.otel_logs (Timestamp, ServiceName, Body) VALUES (now64(9), 's', 'before crash')")
        client.close()
        os.kill(titles["otelingest: clickhouse"], signal.SIGKILL)
        assert _wait(lambda: _get(base + "/ready")[0] == 503, 15)
        assert _get(base + "/health")[0] == 200
        assert _wait(lambda: _get(base + "/ready")[0] == 200, 60)
        new_pid = _titles(proc.pid).get("otelingest: clickhouse")
        assert new_pid and new_pid != titles["otelingest: clickhouse"]
        client = connect(ClickHouseConfig(url=f"http://127.0.0.1:{ports['ch_http']}"), with_database=False)
        assert client.query("SELECT Body FROM otel.otel_logs").result_rows == [("before crash",)]
        client.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not psutil.pid_exists(new_pid) or psutil.Process(new_pid).status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert "embedded ClickHouse exited" in log and "restarted" in log
    assert "msg=stopped" in log


def test_clickhouse_stops_when_the_supervisor_is_killed(tmp_path):
    """SIGKILL of the supervisor leaves no orphan holding the data directory and the ports."""
    cmd, ports, env = _serve_command(tmp_path, "--receivers", "1")
    with open(tmp_path / "serve.log", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        assert _wait(lambda: _get(f"http://127.0.0.1:{ports['metrics']}/ready")[0] == 200, 90)
        children = [p for p in psutil.Process(proc.pid).children(recursive=True)]
        ch_pid = _titles(proc.pid)["otelingest: clickhouse"]
        client = connect(ClickHouseConfig(url=f"http://127.0.0.1:{ports['ch_http']}"), with_database=False)
        client.command("INSERT INTO otel.otel_logs (Timestamp, ServiceName, Body) VALUES (now64(9), 's', 'kept')")
        client.close()
        proc.kill()
        proc.wait()
        assert _wait(lambda: not psutil.pid_exists(ch_pid), 60), "embedded ClickHouse outlived its supervisor"
        assert _wait(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The data directory is free again and nothing was lost.
    ch = EmbeddedClickHouse(tmp_path / "data" / "clickhouse", http_port=ports["ch_http"], tcp_port=ports["ch_tcp"])
    ch.start()
    try:
        ch.wait_ready(timeout=60)
        client = connect(ClickHouseConfig(url=ch.url), with_database=False)
        assert client.query("SELECT Body FROM otel.otel_logs").result_rows == [("kept",)]
        client.close()
    finally:
        ch.stop()


def test_merge_threads_and_merge_memory_are_the_servers_own(tmp_path):
    """chdb-core's 2 merge threads let merges fall behind the daemon's inserts (docs/benchmarks.md):
    the server runs ``merge_threads`` of them; under a memory cap merges get at most half of it."""
    http_port, tcp_port = free_ports(2)
    ch = EmbeddedClickHouse(tmp_path / "ch", http_port=http_port, tcp_port=tcp_port, max_memory_mib=300,
                            merge_threads=6)
    ch.start()
    try:
        ch.wait_ready(timeout=60)
        client = connect(ClickHouseConfig(url=ch.url), with_database=False)
        rows = dict(client.query(
            "SELECT name, value FROM system.server_settings WHERE name IN ('background_pool_size', "
            "'max_server_memory_usage', 'merges_mutations_memory_usage_soft_limit')").result_rows)
        client.close()
        assert rows == {"background_pool_size": "6", "max_server_memory_usage": str(300 << 20),
                        "merges_mutations_memory_usage_soft_limit": str(150 << 20)}
    finally:
        assert ch.stop() == 0
