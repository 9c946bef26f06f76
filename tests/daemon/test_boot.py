"""A boot that cannot succeed exits 3 with one line naming the cause and what to change, and leaves
no process behind: a port taken (each of the six), the data directory in use, an embedded ClickHouse
that cannot start, credentials ClickHouse refuses, a migration that cannot be applied, and an
external ClickHouse that never answers, a TLS certificate that does not load. (The SQL missing from an installation: test_install.py.)"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import free_port, free_ports, new_embedded_clickhouse
from daemon import assert_nothing_left
from otelingest.clickhouse.embedded import EmbeddedClickHouse

BOOT_TIMEOUT_S = 120


class Boot:
    """``otelingest serve`` on free ports in ``tmp_path``, expected to fail."""

    def __init__(self, tmp_path: Path, *, clickhouse_url: str | None = None, env: dict[str, str] | None = None) -> None:
        self.dir = tmp_path
        self.data_dir = tmp_path / "data"
        tmp_path.mkdir(parents=True, exist_ok=True)
        names = ("grpc", "http", "query", "metrics", "clickhouse-http", "clickhouse-tcp")
        self.ports = dict(zip(names, free_ports(len(names))))
        self.argv = [sys.executable, "-m", "otelingest", "serve", "--data-dir", str(self.data_dir),
                     "--receivers", "1", "--writers", "1"]
        for name in ("grpc", "http", "query", "metrics"):
            self.argv += [f"--{name}-port", str(self.ports[name])]
        if clickhouse_url:
            self.argv += ["--clickhouse-url", clickhouse_url]
        else:
            self.argv += ["--clickhouse-http-port", str(self.ports["clickhouse-http"]),
                          "--clickhouse-tcp-port", str(self.ports["clickhouse-tcp"])]
        self.env = {**os.environ, **(env or {})}

    def run(self) -> tuple[int, str]:
        """(exit code, last line of stderr) once it has exited; asserts nothing of it is left running."""
        p = subprocess.run(self.argv, cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=BOOT_TIMEOUT_S)
        lines = p.stderr.decode(errors="replace").strip().splitlines()
        assert_nothing_left(self.data_dir)
        return p.returncode, lines[-1] if lines else ""


FLAGS = {"grpc": "receiver.grpc_port (--grpc-port)", "http": "receiver.http_port (--http-port)",
         "query": "query.port (--query-port)", "metrics": "metrics.port (--metrics-port)",
         "clickhouse-http": "clickhouse.embedded_http_port (--clickhouse-http-port)",
         "clickhouse-tcp": "clickhouse.embedded_tcp_port (--clickhouse-tcp-port)"}


@pytest.mark.parametrize("which", list(FLAGS))
def test_a_port_taken_stops_the_boot_with_one_line(tmp_path: Path, which: str) -> None:
    boot = Boot(tmp_path)
    port = boot.ports[which]
    host = "127.0.0.1" if which.startswith("clickhouse") else "0.0.0.0"
    with socket.socket() as taken:  # a server already there (a ClickHouse on 8123/9000, say)
        taken.bind((host, port))
        taken.listen()
        code, line = boot.run()
    assert code == 3
    assert line.startswith("otelingest: cannot boot: ") and f"port {port} " in line and "already in use" in line, line
    assert line.endswith(f"change {FLAGS[which]}"), line


def test_a_second_daemon_on_the_same_receiver_ports_is_refused(tmp_path: Path) -> None:
    """The receivers share their ports with SO_REUSEPORT; a second daemon doing the same must not
    silently split the traffic with the first."""
    boot = Boot(tmp_path)
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("0.0.0.0", boot.ports["grpc"]))
        other.listen()
        code, line = boot.run()
    assert code == 3 and "already in use" in line and "--grpc-port" in line, line


def test_a_data_directory_in_use_stops_the_boot(tmp_path: Path) -> None:
    boot = Boot(tmp_path)
    boot.data_dir.mkdir()
    with open(boot.data_dir / "otelingest.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        code, line = boot.run()
    assert code == 3
    assert "is in use by another otelingest (pid 4242)" in line and "--data-dir" in line, line


def test_an_embedded_clickhouse_that_cannot_start_stops_the_boot(tmp_path: Path) -> None:
    """Its data directory is held by another ClickHouse process (`otelingest clickhouse` left running)."""
    boot = Boot(tmp_path)
    other = new_embedded_clickhouse(boot.data_dir / "clickhouse")
    other.start()
    try:
        other.wait_ready()
        code, line = boot.run()
    finally:
        other.stop()
    assert code == 3
    assert "the embedded ClickHouse exited" in line and "before the daemon was ready" in line, line
    assert "lock" in line.lower(), line


def test_a_certificate_that_does_not_load_stops_the_boot(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    boot = Boot(tmp_path, env={"OTELINGEST_TLS_RECEIVER_CERT_FILE": str(tmp_path / "cert.pem"),
                               "OTELINGEST_TLS_RECEIVER_KEY_FILE": str(tmp_path / "key.pem")})
    code, line = boot.run()
    assert code == 3
    assert f"cannot load the TLS certificate {tmp_path / 'cert.pem'}" in line, line
    assert line.endswith("check tls.receiver_cert_file and tls.receiver_key_file"), line


def test_refused_credentials_stop_the_boot(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    boot = Boot(tmp_path, clickhouse_url=clickhouse.url,
                env={"OTELINGEST_CLICKHOUSE_USER": "nobody", "OTELINGEST_CLICKHOUSE_PASSWORD": "wrong"})
    code, line = boot.run()
    assert code == 3
    assert f"ClickHouse at {clickhouse.url} refused the credentials of user 'nobody'" in line, line
    assert "clickhouse.user" in line and "clickhouse.password" in line, line


def test_a_migration_that_cannot_be_applied_stops_the_boot(tmp_path: Path, clickhouse: EmbeddedClickHouse,
                                                           ch_client) -> None:
    """The database already holds an `otel_metrics` of another shape: the rollups' views over it fail."""
    db = f"t_{uuid.uuid4().hex[:12]}"
    ch_client.command(f"CREATE DATABASE {db}")
    ch_client.command(f"CREATE TABLE {db}.otel_metrics (x UInt8) ENGINE = MergeTree ORDER BY x")
    boot = Boot(tmp_path, clickhouse_url=clickhouse.url, env={"OTELINGEST_CLICKHOUSE_DATABASE": db})
    try:
        code, line = boot.run()
    finally:
        ch_client.command(f"DROP DATABASE {db}")
    assert code == 3
    assert line.startswith("otelingest: cannot boot: the schema cannot be applied: "), line


def test_an_unreachable_clickhouse_stops_the_boot_after_the_boot_timeout(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    boot = Boot(tmp_path, clickhouse_url=url, env={"OTELINGEST_SUPERVISOR_BOOT_TIMEOUT_S": "3"})
    t0 = time.monotonic()
    code, line = boot.run()
    assert code == 3
    assert f"ClickHouse at {url} did not answer within 3s" in line and "clickhouse.url" in line, line
    assert time.monotonic() - t0 < 60


def test_a_query_port_taken_while_its_process_restarts_stops_the_daemon_with_one_line(tmp_path: Path) -> None:
    """The port is free at boot (preflight passes), then taken by another program while the query
    process restarts: a boot failure naming the port (exit 3), not a crash restarted in a loop."""
    from daemon import Daemon

    d = Daemon(tmp_path / "d", receivers=1).start()
    try:
        os.kill(d.pid_of("otelingest: query"), 9)
        taken = socket.socket()
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:  # the killed process's socket closes within milliseconds; the restart waits 0.5 s
            try:
                taken.bind(("0.0.0.0", d.query_port))
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        taken.listen()
        with taken:
            assert d.proc is not None
            code = d.proc.wait(BOOT_TIMEOUT_S)
        assert code == 3, d.log_tail()
        last = d.log_text().strip().splitlines()[-1]
        assert f"cannot listen on 0.0.0.0:{d.query_port} for the query API" in last, last
        assert last.endswith("change query.port (--query-port)"), last
    finally:
        d.stop()
