"""A real ``otelingest serve`` for tests: free ports, its own data dir, logs kept for failures.

Reusable by any test that needs the whole daemon::

    with Daemon(tmp_path) as d:            # starts, waits for /ready and the receivers
        ... send OTLP to d.http_url / d.grpc_endpoint ...
        d.wait_count("otel_traces", 100)  # polls ClickHouse until the count is reached
        d.stop()                           # SIGTERM; returns the exit code

Options: ``receivers``/``writers`` (default 2/1 for a 2-core box), ``clickhouse_url`` to use a
server the test controls instead of the embedded one, ``env`` for OTELINGEST_* overrides (the
batch timeout defaults to 0.2 s so rows show up quickly), ``config`` for a TOML text.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from conftest import free_ports

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 120.0


class Daemon:
    # Every daemon of the running test module: drop_rings() frees their ring files (256 MiB per
    # receiver/writer pair, fully allocated) once the module is done, or a suite run fills the disk.
    started: list["Daemon"] = []

    def __init__(
        self,
        tmp_path: Path,
        *,
        receivers: int = 2,
        writers: int = 1,
        clickhouse_url: str | None = None,
        env: dict[str, str] | None = None,
        config: str | None = None,
        args: list[str] | None = None,
        database: str = "otel",
        data_dir: Path | None = None,
    ) -> None:
        self.dir = Path(tmp_path)
        # Elsewhere than the logs when a test puts it on a filesystem of its own (a small tmpfs).
        self.data_dir = Path(data_dir) if data_dir is not None else self.dir / "data"
        (self.grpc_port, self.http_port, self.query_port, self.metrics_port,
         self.ch_http_port, self.ch_tcp_port) = free_ports(6)
        self.clickhouse_url = clickhouse_url or f"http://127.0.0.1:{self.ch_http_port}"
        self.receivers, self.writers = receivers, writers
        self.log_path = self.dir / "daemon.log"
        self.env = dict(os.environ)
        self.env.setdefault("OTELINGEST_WRITER_BATCH_TIMEOUT_S", "0.2")
        self.database = database
        if database != "otel":
            self.env["OTELINGEST_CLICKHOUSE_DATABASE"] = database
        self.env.update(env or {})
        self.argv = [
            sys.executable, "-m", "otelingest", "serve",
            "--data-dir", str(self.data_dir),
            "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
            "--query-port", str(self.query_port), "--metrics-port", str(self.metrics_port),
            "--receivers", str(receivers), "--writers", str(writers),
        ]
        if clickhouse_url:
            self.argv += ["--clickhouse-url", clickhouse_url]
        else:
            self.argv += ["--clickhouse-http-port", str(self.ch_http_port), "--clickhouse-tcp-port", str(self.ch_tcp_port)]
        if config is not None:
            path = self.dir / "otelingest.toml"
            path.write_text(config)
            self.argv += ["--config", str(path)]
        self.argv += args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    # --- addresses ---------------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True) -> "Daemon":
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir)
        log.close()
        Daemon.started.append(self)
        if wait_ready:
            try:
                self.wait_ready()
            except BaseException:
                self.kill()
                raise
        return self

    def kill(self) -> None:
        """SIGKILL the daemon and its children (a start that never got ready)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            kids = []
        self.proc.kill()
        self.proc.wait()
        for k in kids:
            try:
                k.kill()
            except psutil.Error:
                pass

    @classmethod
    def drop_rings(cls) -> None:
        """Delete the ring files of every stopped daemon of the module."""
        for d in cls.started:
            if d.proc is not None and d.proc.poll() is None:
                continue
            for ring in (d.data_dir / "run" / "rings").glob("*.ring"):
                ring.unlink(missing_ok=True)
        cls.started = [d for d in cls.started if d.proc is not None and d.proc.poll() is None]

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until /ready answers 200 and both receiver ports accept connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.http_status("/ready") == 200 and _accepts(self.http_port) and _accepts(self.grpc_port):
                return
            time.sleep(0.1)
        raise TimeoutError(f"otelingest serve not ready after {timeout}s (/ready: {self._ready_body()}):\n"
                           f"{self.log_tail()}")

    def _ready_body(self) -> str:
        try:
            with urllib.request.urlopen(self.metrics_url + "/ready", timeout=2) as r:
                return r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.read().decode(errors="replace")
        except OSError as e:
            return str(e)

    def http_status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"otelingest serve exited with {self.proc.returncode}:\n{self.log_tail()}")

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TimeoutError(f"otelingest serve did not stop in {timeout}s:\n{self.log_tail()}") from None
        return self.proc.returncode

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    # --- inspection --------------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def children(self) -> dict[str, int]:
        """Process title -> pid of the daemon's workers (``otelingest: writer 0`` ...)."""
        import psutil

        assert self.proc is not None
        out = {}
        for p in psutil.Process(self.proc.pid).children(recursive=False):
            try:
                title = " ".join(p.cmdline())
            except psutil.Error:
                continue
            out[title] = p.pid
        return out

    def pid_of(self, title: str) -> int:
        """The pid of the child named ``title`` in ps (e.g. "otelingest: writer 0")."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for t, pid in self.children().items():
                if t.strip() == title:
                    return pid
            time.sleep(0.1)
        raise LookupError(f"no child titled {title!r}: {self.children()}")

    def client(self) -> Any:
        """A clickhouse-connect client on the daemon's ClickHouse and database."""
        if self._client is None:
            import clickhouse_connect

            host, port = self.clickhouse_url.removeprefix("http://").split(":")
            self._client = clickhouse_connect.get_client(host=host, port=int(port), database=self.database,
                                                         autogenerate_session_id=False)
        return self._client

    def count(self, table: str) -> int:
        return int(self.client().query(f"SELECT count() FROM {self.database}.{table}").result_rows[0][0])

    def wait_count(self, table: str, expected: int, timeout: float = 60.0) -> int:
        """Poll until ``table`` holds ``expected`` rows (returns the count seen last)."""
        deadline = time.monotonic() + timeout
        n = -1
        while time.monotonic() < deadline:
            n = self.count(table)
            if n >= expected:
                # Give a duplicate a chance to show itself before declaring the count.
                time.sleep(0.3)
                return self.count(table)
            time.sleep(0.1)
        return n

    def count_where(self, table: str, where: str, params: dict[str, Any]) -> int:
        q = f"SELECT count() FROM {self.database}.{table} WHERE {where}"
        return int(self.client().query(q, parameters=params).result_rows[0][0])

    def wait_count_where(self, table: str, where: str, params: dict[str, Any], expected: int,
                         timeout: float = 60.0) -> int:
        """Like :meth:`wait_count` for the rows matching ``where`` (bound ``params``)."""
        deadline = time.monotonic() + timeout
        n = -1
        while time.monotonic() < deadline:
            n = self.count_where(table, where, params)
            if n >= expected:
                time.sleep(0.3)
                return self.count_where(table, where, params)
            time.sleep(0.1)
        return n

    def metric_or_none(self, name: str, **labels: str) -> float | None:
        """Like :meth:`metric`, None while /metrics does not answer yet."""
        try:
            return self.metric(name, **labels)
        except OSError:
            return None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url + "/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for fam in text_string_to_metric_families(self.metrics_text()):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def assert_nothing_left(data_dir: Path) -> None:
    """No worker or embedded ClickHouse of this data directory still runs (they name it in argv)."""
    deadline = time.monotonic() + 10
    while True:
        left = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(str(data_dir) in arg for arg in p.info["cmdline"] or []):
                    left.append((p.pid, p.info["cmdline"]))
            except psutil.Error:
                continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, left
