"""The supervisor (``otelingest serve``): owns every other process of the daemon.

Modelled on gunicorn's arbiter: signal handlers only enqueue the signal and wake the main loop
through a pipe; the loop dispatches to ``handle_<signal>`` methods, watches its children and
restarts the dead with exponential backoff. It serves ``/health``, ``/ready`` and ``/metrics``
itself, so those answer while any worker restarts.

Start order: embedded ClickHouse (when no URL is configured), then the storage watcher that waits
for ClickHouse and applies migrations. Stop order is the reverse: workers first, ClickHouse last,
so that nothing acknowledged is left unflushed when the storage goes away.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import threading
import time
import urllib.request
from typing import TYPE_CHECKING

from . import schema
from .clickhouse.client import base_url, connect
from .clickhouse.embedded import EmbeddedClickHouse
from .config import Config
from .errors import EXIT_OK, SchemaError, StorageError
from .health import HealthServer

if TYPE_CHECKING:
    from .chstats import StatsCollector

log = logging.getLogger("otelingest.supervisor")

PROCESS_TITLE = "otelingest: supervisor"
RESTART_BACKOFF_INITIAL_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
# A child that stayed up this long is healthy again: its next crash restarts at the initial backoff.
RESTART_BACKOFF_RESET_S = 60.0
STORAGE_CHECK_INTERVAL_S = 1.0


def set_process_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:  # pragma: no cover - a declared dependency
        pass


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness or stopping; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(addr)
            s.sendall(message.encode())
        except OSError as e:
            log.warning("sd_notify failed: %s", e)


class Backoff:
    """Exponential restart delay that resets once a child has stayed up long enough."""

    def __init__(self) -> None:
        self.delay = RESTART_BACKOFF_INITIAL_S
        self.started_at = 0.0

    def started(self) -> None:
        self.started_at = time.monotonic()

    def next_delay(self) -> float:
        if time.monotonic() - self.started_at > RESTART_BACKOFF_RESET_S:
            self.delay = RESTART_BACKOFF_INITIAL_S
        d = self.delay
        self.delay = min(self.delay * 2, RESTART_BACKOFF_MAX_S)
        return d


class StorageState:
    """What the supervisor knows of ClickHouse, shared with /ready (reads are lock-free snapshots)."""

    def __init__(self) -> None:
        self.reachable = False
        self.schema_current = False
        self.reason = "starting"

    def readiness(self) -> tuple[bool, str]:
        ok = self.reachable and self.schema_current
        return ok, "ok" if ok else self.reason


class Supervisor:
    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.data_dir = cfg.data_path
        self.storage = StorageState()
        self.clickhouse: EmbeddedClickHouse | None = None
        self._ch_backoff = Backoff()
        self._ch_restart_at: float | None = None
        self._signals: list[int] = []
        self._stopping = threading.Event()
        self._ready_notified = False
        self._wake_r, self._wake_w = os.pipe()
        self.health: HealthServer | None = None
        self.stats: "StatsCollector | None" = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def run(self) -> int:
        set_process_title(PROCESS_TITLE)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._install_signals()
        self.health = HealthServer(self.cfg.metrics.host, self.cfg.metrics.port, self.storage.readiness)
        self.health.start()
        # Imported here: prometheus_client must load after PROMETHEUS_MULTIPROC_DIR is set.
        from .chstats import StatsCollector

        self.stats = StatsCollector(self.cfg, self.storage.readiness)
        self.stats.start()
        if self.cfg.clickhouse.embedded:
            self.clickhouse = EmbeddedClickHouse(
                self.data_dir / "clickhouse",
                http_port=self.cfg.clickhouse.embedded_http_port,
                tcp_port=self.cfg.clickhouse.embedded_tcp_port,
                max_memory_mib=self.cfg.clickhouse.embedded_max_memory_mib,
            )
            self.clickhouse.start()
            self._ch_backoff.started()
        self._print_listeners()
        watcher = threading.Thread(target=self._watch_storage, name="storage-watcher", daemon=True)
        watcher.start()
        try:
            self._loop()
        finally:
            self._shutdown()
        return EXIT_OK

    def _print_listeners(self) -> None:
        c = self.cfg
        lines = [
            f"metrics, /health, /ready  http://{c.metrics.host}:{c.metrics.port}",
            f"OTLP gRPC                 {c.receiver.host}:{c.receiver.grpc_port}",
            f"OTLP HTTP                 http://{c.receiver.host}:{c.receiver.http_port}",
            f"query API                 http://{c.query.host}:{c.query.port}",
            f"ClickHouse HTTP           {base_url(c.clickhouse)}"
            + ("  (embedded, data in " + str(self.data_dir / "clickhouse") + ")" if c.clickhouse.embedded else ""),
        ]
        if c.clickhouse.embedded:
            lines.append(f"ClickHouse native TCP     127.0.0.1:{c.clickhouse.embedded_tcp_port}")
        for line in lines:
            log.info("listening: %s", line)

    def _install_signals(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._enqueue_signal)

    def _enqueue_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _loop(self) -> None:
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._wake_r], [], [], 0.5)
            if readable:
                os.read(self._wake_r, 4096)
            while self._signals:
                sig = self._signals.pop(0)
                handler = getattr(self, f"handle_{signal.Signals(sig).name.lower()}", None)
                if handler:
                    handler()
            if not self._stopping.is_set():
                self._check_clickhouse()
                self._maybe_notify_ready()

    # --- signals -----------------------------------------------------------------------------------

    def handle_sigterm(self) -> None:
        log.info("stopping (graceful)")
        self._stopping.set()

    handle_sigint = handle_sigterm

    def handle_sighup(self) -> None:
        log.info("SIGHUP: reapplying retention from the current config")
        self.storage.schema_current = False

    def handle_sigchld(self) -> None:
        # Children are checked on every tick; the wake-up is what matters here.
        pass

    # --- ClickHouse --------------------------------------------------------------------------------

    def _check_clickhouse(self) -> None:
        ch = self.clickhouse
        if ch is None:
            return
        if ch.alive():
            return
        now = time.monotonic()
        if self._ch_restart_at is None:
            delay = self._ch_backoff.next_delay()
            log.error(
                "embedded ClickHouse exited (code %s): %s; restarting in %.1fs",
                ch.proc.returncode if ch.proc else None, ch.stderr_tail(2), delay,
            )
            self.storage.reachable = False
            self.storage.reason = "embedded ClickHouse restarting"
            self._ch_restart_at = now + delay
        elif now >= self._ch_restart_at:
            self._ch_restart_at = None
            ch.start()
            self._ch_backoff.started()
            log.info("embedded ClickHouse restarted, pid %s", ch.pid)

    def _ping(self) -> bool:
        if self.clickhouse is not None:
            return self.clickhouse.ping()
        try:
            with urllib.request.urlopen(base_url(self.cfg.clickhouse).rstrip("/") + "/ping", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _watch_storage(self) -> None:
        """Wait for ClickHouse, migrate, then keep /ready true to what ClickHouse answers."""
        backoff = Backoff()
        while not self._stopping.is_set():
            reachable = self._ping()
            if reachable and not self.storage.reachable:
                log.info("ClickHouse is reachable at %s", base_url(self.cfg.clickhouse))
            elif not reachable and self.storage.reachable:
                log.warning("ClickHouse is unreachable at %s", base_url(self.cfg.clickhouse))
            self.storage.reachable = reachable
            if not reachable:
                self.storage.reason = "ClickHouse unreachable"
            elif not self.storage.schema_current:
                try:
                    applied, changed = schema.migrate(self.cfg)
                    if applied:
                        log.info("schema migrated to version %d", max(applied))
                    if changed:
                        log.info("retention changed on %s", ", ".join(changed))
                    self.storage.schema_current = True
                    backoff = Backoff()
                except (StorageError, SchemaError) as e:
                    self.storage.reason = f"schema migration failed: {e}"
                    log.error("schema migration failed: %s", e)
                    self._stopping.wait(backoff.next_delay())
                    continue
            self._stopping.wait(STORAGE_CHECK_INTERVAL_S)

    def _maybe_notify_ready(self) -> None:
        if not self._ready_notified and self.storage.readiness()[0]:
            self._ready_notified = True
            log.info("ready")
            sd_notify("READY=1\nSTATUS=ready")

    # --- stop --------------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        sd_notify("STOPPING=1")
        if self.stats is not None:
            self.stats.stop()
        if self.clickhouse is not None:
            code = self.clickhouse.stop()
            log.info("embedded ClickHouse stopped (code %s)", code)
        if self.health is not None:
            self.health.stop()
        log.info("stopped")


def check_storage(cfg: Config) -> bool:
    """True when ClickHouse answers and the schema is current (for the CLI and tests)."""
    try:
        client = connect(cfg.clickhouse, with_database=False)
    except StorageError:
        return False
    try:
        return schema.is_current(client, cfg)
    finally:
        client.close()


