"""The supervisor (``otelingest serve``): owns every other process of the daemon.

Modelled on gunicorn's arbiter: signal handlers only enqueue the signal and wake the main loop
through a pipe; the loop dispatches to ``handle_<signal>`` methods and ticks the process table
(:mod:`.children`) and the embedded ClickHouse (:mod:`.storage`). It serves ``/health``, ``/ready``
and ``/metrics`` itself (:mod:`otelingest.selfmon.endpoint`), so those answer while any worker restarts.

Start order: the embedded ClickHouse (when no URL is configured) and the storage watcher that waits
for it and applies migrations, the run directory (:mod:`.rundir`: flags page, rings), the memory
ticker (:mod:`.memory`), then writers, receivers and the query process; the dependency rollup
(:mod:`otelingest.jobs.dependencies`) once the schema is current. Stop order is the reverse:
receivers stop accepting and finish in-flight requests, writers drain every ring and flush every
batch, the query process stops, ClickHouse last, so that nothing acknowledged is left unflushed
when the storage goes away.

Boot fails fast: until the daemon is first ready, any failure the storage watcher or a worker
reports as a boot failure stops everything and :meth:`Supervisor.run` raises
:class:`~otelingest.errors.BootError` with one line naming the cause.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import select
import signal
import threading
from typing import TYPE_CHECKING, Any, Callable

from ..clickhouse.client import base_url
from ..config import Config, keep_restart_only
from ..errors import EXIT_BOOT, EXIT_OK, BootError, ConfigError
from ..selfmon.endpoint import HealthServer
from .children import Children
from .process import sd_notify, set_process_title
from .storage import StorageWatcher

if TYPE_CHECKING:
    from ..jobs.dependencies import DependencyRollup
    from ..selfmon.tablestats import StatsCollector
    from .memory import MemoryTicker

log = logging.getLogger("otelingest.supervisor")

PROCESS_TITLE = "otelingest: supervisor"
# Writers flush everything on stop within writer.stop_timeout_s; this much more and they are killed
# (what they held stays in the rings and their ledger).
WRITER_STOP_EXTRA_S = 15.0
QUERY_STOP_TIMEOUT_S = 10.0
RECEIVER_STOP_EXTRA_S = 15.0


class Supervisor:
    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)

    def __init__(self, cfg: Config, reload: Callable[[], Config] | None = None) -> None:
        self.cfg = cfg
        self._reload = reload
        self.data_dir = cfg.data_path
        self._signals: list[int] = []
        self._stopping = threading.Event()
        self._ready_notified = False
        self._wake_r, self._wake_w = os.pipe()
        self.health: HealthServer | None = None
        self.exit_code = EXIT_OK
        # Why boot failed (one line), once it has; raised from run() after everything stopped.
        self.boot_failure: str | None = None
        # The storage watcher's thread and the main one both publish the schema flags: a reading of
        # the state and its write go together, so a stale reading never lands after a fresh one.
        self._schema_lock = threading.Lock()
        self.storage = StorageWatcher(lambda: self.cfg, self.data_dir, self._stopping, self.fail_boot,
                                      on_ready=self._start_jobs, on_schema=self._publish_schema)
        self.children: Children | None = None
        self.rings: list[Any] = []
        self.flags: Any = None
        self.memory: "MemoryTicker | None" = None
        self.stats: "StatsCollector | None" = None
        self.rollup: "DependencyRollup | None" = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit code.

        Raises:
            BootError: the daemon could not boot (everything it started is stopped first).
        """
        set_process_title(PROCESS_TITLE)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._install_signals()
        readiness = self.storage.state.readiness
        self.health = HealthServer(self.cfg.metrics.host, self.cfg.metrics.port, readiness)
        self.health.start()
        # Imported here: prometheus_client must load after PROMETHEUS_MULTIPROC_DIR is set.
        from ..selfmon.tablestats import StatsCollector

        self.stats = StatsCollector(self.cfg, readiness)
        self.stats.start()
        self.storage.start()
        self._print_listeners()
        try:
            try:
                self._start_workers()
            except (OSError, ValueError) as e:  # ring files, run directory
                log.error("cannot set up the workers: %s", e)
                self.exit_code = EXIT_BOOT
                self._stopping.set()
                return self.exit_code
            self._loop()
        finally:
            self._shutdown()
        if self.boot_failure is not None:
            raise BootError(self.boot_failure)
        return self.exit_code

    @property
    def booted(self) -> bool:
        """Ready once (ClickHouse answered and the schema is current); from then on failures are outages."""
        return self.storage.booted

    def fail_boot(self, cause: str) -> None:
        """Stop everything with EXIT_BOOT; ``cause`` becomes the daemon's last line."""
        if self.boot_failure is None:
            self.boot_failure = " ".join(cause.split())  # one line, even with SQL or a traceback in it
            log.error("cannot boot: %s; stopping", cause)
        self._stop(EXIT_BOOT)

    def _stop(self, code: int) -> None:
        self.exit_code = code
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _on_fatal_child(self, code: int, cause: str | None) -> None:
        if cause is not None:
            self.fail_boot(cause)
        self._stop(code)

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
                self.storage.check_embedded()
                if self.children is not None:
                    self.children.check(self.cfg, self._stopping.is_set)
                self._maybe_notify_ready()

    # --- signals -----------------------------------------------------------------------------------

    def handle_sigterm(self) -> None:
        log.info("stopping (graceful)")
        self._stopping.set()

    handle_sigint = handle_sigterm

    def handle_sighup(self) -> None:
        """Reload the config: retention, memory limits and log level at once; batch and receiver
        limits by a rolling restart of the workers (one at a time, each drains or finishes its
        requests first). Ports, worker counts, data dir and ClickHouse need a full restart."""
        rolled = 0
        if self._reload is not None:
            try:
                new = self._reload()
            except ConfigError as e:
                log.error("SIGHUP: config not reloaded, keeping the running one: %s", e)
                return
            kept = keep_restart_only(self.cfg, new)
            if kept != new:
                log.warning("SIGHUP: changes to ports, worker counts, ring size, data_dir, [clickhouse], [query] or "
                            "[metrics] take effect at the next restart")
            self.cfg = kept
            logging.getLogger().setLevel(self.cfg.log.level.upper())
            if self.children is not None and self.memory is not None:
                from .rundir import write_worker_file

                self.memory.reconfigure(self.cfg.memory)
                write_worker_file(self.children.layout.run_dir, self.cfg, self.children.layout)
                rolled = self.children.roll(("writer", "receiver"))
        log.info("SIGHUP: config reloaded; reapplying retention, rolling restart of %d workers", rolled)
        self.storage.reapply_schema()

    def handle_sigchld(self) -> None:
        # Children are checked on every tick; the wake-up is what matters here.
        pass

    def _maybe_notify_ready(self) -> None:
        if not self._ready_notified and self.storage.state.readiness()[0]:
            self._ready_notified = True
            log.info("ready")
            sd_notify("READY=1\nSTATUS=ready")

    # --- workers and jobs --------------------------------------------------------------------------

    def _start_workers(self) -> None:
        from .flags import StatusPage
        from .memory import MemoryTicker
        from .rundir import Layout, cover_leftovers, open_rings, run_path, write_worker_file

        run_dir = run_path(self.data_dir)
        receivers, writers = cover_leftovers(run_dir, self.cfg.receiver_workers(), self.cfg.writer.workers)
        layout = Layout(run_dir, receivers, writers)
        layout.rings_dir.mkdir(parents=True, exist_ok=True)
        layout.boot_failure_path.unlink(missing_ok=True)
        self.flags = StatusPage.create(layout.status_path, layout.slots)
        # Before any writer starts: the storage watcher may be migrating already.
        self._publish_schema()
        self.rings = open_rings(layout, self.cfg.writer.ring_mib * 1024 * 1024)
        write_worker_file(run_dir, self.cfg, layout)
        children = Children(layout, self.flags, self._on_fatal_child)
        self.memory = MemoryTicker(self.cfg.memory, self.flags, self.rings, children, self.storage.state, self._stopping)
        self.memory.start()
        # Writers first: a receiver may accept as soon as it is up.
        for j in range(layout.writers):
            children.add("writer", j, layout.writer_slot(j))
        for i in range(layout.receivers):
            children.add("receiver", i, layout.receiver_slot(i))
        if _module_exists("otelingest.query.app"):
            children.add("query", 0, layout.query_slot)
        else:
            log.info("query API not started: the module otelingest.query.app is not installed")
        self.children = children
        children.spawn_all()

    def _publish_schema(self) -> None:
        """``schema_pending`` (status) and ``insert_hold`` (the writers' hold, which a rekey lowers
        during its bulk copy). Only this publishes the hold: a ticker republishing a stale reading
        could lower it after a rekey raised it."""
        from .flags import INSERT_HOLD, SCHEMA_PENDING

        with self._schema_lock:
            if self.flags is not None:
                state = self.storage.state
                self.flags.set_flag(SCHEMA_PENDING, not state.schema_current)
                self.flags.set_flag(INSERT_HOLD, state.hold_inserts)

    def _start_jobs(self) -> None:
        """Called by the storage watcher once the schema is first current."""
        interval = self.cfg.query.dependencies_rollup_interval_s
        if interval and not self._stopping.is_set():
            from ..jobs.dependencies import DependencyRollup

            self.rollup = DependencyRollup(self.cfg.clickhouse, interval, self.cfg.query.dependencies_backfill_hours)
            self.rollup.start()

    # --- stop --------------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        sd_notify("STOPPING=1")
        # The memory ticker has stopped: the writers' drain must see the schema as it is now.
        self._publish_schema()
        if self.children is not None:
            self.children.stop_role("receiver", self.cfg.receiver.request_timeout_s + RECEIVER_STOP_EXTRA_S)
            self.children.stop_role("writer", self.cfg.writer.stop_timeout_s + WRITER_STOP_EXTRA_S)
            self.children.stop_role("query", QUERY_STOP_TIMEOUT_S)
        if self.rollup is not None:
            self.rollup.stop()
        if self.stats is not None:
            self.stats.stop()
        self.storage.stop_embedded()
        if self.health is not None:
            self.health.stop()
        log.info("stopped")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False
