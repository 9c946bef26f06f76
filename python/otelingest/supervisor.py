"""The supervisor (``otelingest serve``): owns every other process of the daemon.

Modelled on gunicorn's arbiter: signal handlers only enqueue the signal and wake the main loop
through a pipe; the loop dispatches to ``handle_<signal>`` methods, watches its children and
restarts the dead with exponential backoff. It serves ``/health``, ``/ready`` and ``/metrics``
itself, so those answer while any worker restarts.

Start order: embedded ClickHouse (when no URL is configured), then the storage watcher that waits
for ClickHouse and applies migrations, the memory limiter, then the rings, writers, receivers and
the query process. Stop order is the reverse: receivers stop accepting and finish in-flight
requests, writers drain every ring and flush every batch, the query process stops, ClickHouse last,
so that nothing acknowledged is left unflushed when the storage goes away.

Children are fresh interpreters (``python -m otelingest.worker ROLE INDEX RUN_DIR``, see
:mod:`otelingest.worker` for why not ``os.fork``), reading the effective config from
``run/worker.json``. Each is watched by exit status and by heartbeat (its slot on the status
page): a dead child is replaced at the same index after a backoff, a hung one (no heartbeat for
``supervisor.heartbeat_timeout_s``) is killed and replaced. A child exiting with EXIT_CONFIG or EXIT_BOOT stops
the supervisor with that code instead of a restart loop. Children are reaped with ``Popen.poll``
(``waitpid`` on their own pid) rather than ``waitpid(-1)``, which would also steal the embedded
ClickHouse's status from its own handle.

The supervisor creates (or, after a restart, re-attaches) the rings, one per receiver->writer
pair in ``run/rings``, so a replaced writer resumes from the release cursor and a replaced
receiver produces into the same rings.

Boot fails fast: until the daemon is first ready, an embedded ClickHouse that exits, a migration
that cannot be applied, credentials ClickHouse refuses, a worker that cannot boot, or ClickHouse
still unreachable (or migrations still failing) after ``supervisor.boot_timeout_s`` stop everything
and :meth:`Supervisor.run` raises :class:`~otelingest.errors.BootError` with one line naming the
cause. After the first ready, outages are ridden out (restarts, retries, spill) as before.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import msgspec

from . import schema
from .clickhouse.client import CREDENTIAL_CODES, base_url
from .clickhouse.embedded import EmbeddedClickHouse
from .config import Config
from .errors import EXIT_BOOT, EXIT_CONFIG, EXIT_OK, BootError, ConfigError, SchemaError, StorageError
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
# Writers flush everything on stop within writer.stop_timeout_s; this much more and they are killed
# (what they held stays in the rings and their ledger).
WRITER_STOP_EXTRA_S = 15.0
QUERY_STOP_TIMEOUT_S = 10.0
RECEIVER_STOP_EXTRA_S = 15.0


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
        # Set while ClickHouse's disk is under its free-space floor (otelingest.diskfloor).
        self.disk_reason = ""
        self.clickhouse_reserved = 0

    def readiness(self) -> tuple[bool, str]:
        ok = self.reachable and self.schema_current
        if ok and self.disk_reason:
            return False, self.disk_reason
        return ok, "ok" if ok else self.reason


@dataclass
class Child:
    """One worker slot: the same role and index across restarts."""

    role: str
    index: int
    slot: int
    proc: subprocess.Popen[bytes] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float | None = None
    spawned_at: float = 0.0
    # Stopped on purpose by a SIGHUP rolling restart: replaced at once, not counted as a crash.
    rolling: bool = False

    @property
    def name(self) -> str:
        return self.role if self.role == "query" else f"{self.role} {self.index}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)

    def __init__(self, cfg: Config, reload: Callable[[], Config] | None = None) -> None:
        self.cfg = cfg
        self._reload = reload
        self._roll: deque[Child] = deque()
        self._rolling: Child | None = None
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
        self.exit_code = EXIT_OK
        # Why boot failed (one line), once it has; raised from run() after everything stopped.
        self.boot_failure: str | None = None
        # Set by the storage watcher before /ready can first answer 200, so no check sees "ready"
        # while still judging failures as boot failures.
        self._booted = False
        self._started_at = time.monotonic()
        self.children: list[Child] = []
        self.rings: list[Any] = []
        self.status: Any = None
        self.limiter: Any = None
        self._memory_breakdown: dict[tuple[str, str], int] = {}
        self.stats: "StatsCollector | None" = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit code.

        Raises:
            BootError: the daemon could not boot (everything it started is stopped first).
        """
        self._started_at = time.monotonic()
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
                keep_free_space_mib=self.cfg.clickhouse.min_free_disk_mib // 2,
            )
            self.clickhouse.start()
            self._ch_backoff.started()
        self._print_listeners()
        watcher = threading.Thread(target=self._watch_storage, name="storage-watcher", daemon=True)
        watcher.start()
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
        return self._booted

    def fail_boot(self, cause: str) -> None:
        """Stop everything with EXIT_BOOT; ``cause`` becomes the daemon's last line."""
        if self.boot_failure is None:
            self.boot_failure = " ".join(cause.split())  # one line, even with SQL or a traceback in it
            log.error("cannot boot: %s; stopping", cause)
        self.exit_code = EXIT_BOOT
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _boot_overdue(self) -> bool:
        return not self.booted and time.monotonic() - self._started_at > self.cfg.supervisor.boot_timeout_s

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
                self._check_children()
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
        if self._reload is not None:
            try:
                new = self._reload()
            except ConfigError as e:
                log.error("SIGHUP: config not reloaded, keeping the running one: %s", e)
                return
            new = self._keep_restart_only(new)
            self.cfg = new
            logging.getLogger().setLevel(new.log.level.upper())
            if self.status is not None:
                from .memory import MemoryLimiter
                from .runtime import write_worker_file

                self.limiter = MemoryLimiter(new.memory, self._memory_reading)
                write_worker_file(self.layout.run_dir, new, self.layout)
                self._roll = deque(c for c in self.children if c.role in ("writer", "receiver"))
        log.info("SIGHUP: config reloaded; reapplying retention, rolling restart of %d workers", len(self._roll))
        self.storage.schema_current = False

    def _keep_restart_only(self, new: Config) -> Config:
        old = self.cfg
        replace = msgspec.structs.replace
        kept = replace(
            new, data_dir=old.data_dir, clickhouse=old.clickhouse, query=old.query, metrics=old.metrics,
            receiver=replace(new.receiver, host=old.receiver.host, grpc_port=old.receiver.grpc_port,
                             http_port=old.receiver.http_port, workers=old.receiver.workers),
            writer=replace(new.writer, workers=old.writer.workers, ring_mib=old.writer.ring_mib),
        )
        if kept != new:
            log.warning("SIGHUP: changes to ports, worker counts, ring size, data_dir, [clickhouse], [query] or "
                        "[metrics] take effect at the next restart")
        return kept

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
        if not self.booted:
            code = ch.proc.returncode if ch.proc else None
            self.fail_boot(f"the embedded ClickHouse exited (code {code}) before the daemon was ready: "
                           f"{ch.stderr_tail(2) or 'no output'} (its log: {ch.root / 'log'})")
            return
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
        from .storagehealth import StorageHealth

        health = StorageHealth(self.cfg, self.storage)
        backoff = Backoff()
        while not self._stopping.is_set():
            reachable = self._ping()
            health.check(reachable)
            if reachable and not self.storage.reachable:
                log.info("ClickHouse is reachable at %s", base_url(self.cfg.clickhouse))
            elif not reachable and self.storage.reachable:
                log.warning("ClickHouse is unreachable at %s", base_url(self.cfg.clickhouse))
            self.storage.reachable = reachable
            if not reachable:
                self.storage.reason = "ClickHouse unreachable"
                if self._boot_overdue():
                    self.fail_boot(f"ClickHouse at {base_url(self.cfg.clickhouse)} did not answer within "
                                   f"{self.cfg.supervisor.boot_timeout_s:g}s; check clickhouse.url (--clickhouse-url) "
                                   "or raise supervisor.boot_timeout_s")
                    return
            elif not self.storage.schema_current:
                try:
                    applied, changed = schema.migrate(self.cfg)
                    if applied:
                        log.info("schema migrated to version %d", max(applied))
                    if changed:
                        log.info("retention changed on %s", ", ".join(changed))
                    self._booted = True
                    self.storage.schema_current = True
                    backoff = Backoff()
                except (StorageError, SchemaError) as e:
                    self.storage.reason = f"schema migration failed: {e}"
                    log.error("schema migration failed: %s", e)
                    if not self.booted:
                        cause = _boot_cause(e, self.cfg)
                        if cause is not None or self._boot_overdue():
                            self.fail_boot(cause or f"schema migration still failing after "
                                                    f"{self.cfg.supervisor.boot_timeout_s:g}s: {e}")
                            return
                    self._stopping.wait(backoff.next_delay())
                    continue
            self._stopping.wait(STORAGE_CHECK_INTERVAL_S)

    def _maybe_notify_ready(self) -> None:
        if not self._ready_notified and self.storage.readiness()[0]:
            self._ready_notified = True
            log.info("ready")
            sd_notify("READY=1\nSTATUS=ready")

    # --- workers -----------------------------------------------------------------------------------

    def _start_workers(self) -> None:
        from .runtime import Layout, write_worker_file
        from .status import StatusPage

        run_dir = self.data_dir / "run"
        (run_dir / "rings").mkdir(parents=True, exist_ok=True)
        receivers, writers = _cover_leftovers(run_dir, self.cfg.receiver_workers(), self.cfg.writer.workers)
        self.layout = Layout(run_dir, receivers, writers)
        self.layout.boot_failure_path.unlink(missing_ok=True)
        self.status = StatusPage.create(self.layout.status_path, self.layout.slots)
        self.rings = self._open_rings()
        self.worker_file = write_worker_file(run_dir, self.cfg, self.layout)
        from .memory import MemoryLimiter

        self.limiter = MemoryLimiter(self.cfg.memory, self._memory_reading)
        threading.Thread(target=self._limit_memory, name="memory-limiter", daemon=True).start()
        # Writers first: a receiver may accept as soon as it is up.
        for j in range(self.layout.writers):
            self.children.append(Child("writer", j, self.layout.writer_slot(j)))
        for i in range(self.layout.receivers):
            self.children.append(Child("receiver", i, self.layout.receiver_slot(i)))
        if _module_exists("otelingest.query.app"):
            self.children.append(Child("query", 0, self.layout.query_slot))
        else:
            log.info("query API not started: the module otelingest.query.app is not installed")
        for child in self.children:
            self._spawn(child)

    def _open_rings(self) -> list[Any]:
        from ._native import RingError, RingFile

        capacity = self.cfg.writer.ring_mib * 1024 * 1024
        rings = []
        for i in range(self.layout.receivers):
            for j in range(self.layout.writers):
                path = self.layout.ring_path(i, j)
                try:
                    ring = RingFile.open_or_create(str(path), capacity)
                    if ring.used_bytes:
                        log.info("ring %s holds %d bytes from the last run; writer %d will store them",
                                 path.name, ring.used_bytes, j)
                except RingError as e:
                    log.warning("ring %s unusable (%s); creating it afresh", path, e)
                    ring = RingFile.create(str(path), capacity)
                rings.append(ring)
        return rings

    def _spawn(self, child: Child) -> None:
        self.status.reset_slot(child.slot)
        cmd = [sys.executable, "-m", "otelingest.worker", child.role, str(child.index), str(self.layout.run_dir)]
        child.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, close_fds=True)
        child.backoff.started()
        child.restart_at = None
        child.spawned_at = time.monotonic()
        log.info("started %s, pid %d", child.name, child.proc.pid)

    def _check_children(self) -> None:
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is not None:
                code = proc.poll()
                if code is None:
                    beat, _held = self.status.slot(child.slot)
                    limit = self.cfg.supervisor.heartbeat_timeout_s
                    if beat < child.spawned_at:  # not one heartbeat of its own yet: still booting
                        limit = max(limit, self.cfg.supervisor.boot_timeout_s)
                    if now - beat > limit:
                        log.error("%s (pid %d) missed its heartbeat for %.0fs; killing it", child.name, proc.pid, now - beat)
                        self._count_restart(child.role, "hung")
                        proc.kill()
                    continue
                self._reaped(child, code)
                if self._stopping.is_set():
                    return
                if child.rolling and code == 0:
                    child.rolling = False
                    self._spawn(child)
                    continue
                child.proc = None
                delay = child.backoff.next_delay()
                child.restart_at = now + delay
                log.error("%s (pid %d) exited with code %s; restarting in %.1fs", child.name, proc.pid, code, delay)
                self._count_restart(child.role, "exit")
            elif child.restart_at is not None and now >= child.restart_at:
                self._spawn(child)
        self._advance_roll()

    def _advance_roll(self) -> None:
        """One worker at a time: the next is stopped once the previous one's replacement beats."""
        cur = self._rolling
        if cur is not None:
            if cur.rolling or not cur.alive() or self.status.slot(cur.slot)[0] <= cur.spawned_at:
                return
            self._rolling = None
        while self._roll:
            child = self._roll.popleft()
            if child.alive() and child.proc is not None:
                child.rolling = True
                self._rolling = child
                log.info("rolling restart: stopping %s (pid %d)", child.name, child.proc.pid)
                child.proc.send_signal(signal.SIGTERM)
                return

    def _reaped(self, child: Child, code: int) -> None:
        from . import metrics

        if child.proc is not None:
            metrics.mark_process_dead(child.proc.pid)
        if code in (EXIT_CONFIG, EXIT_BOOT):
            what = "a config it cannot use" if code == EXIT_CONFIG else "it failed to boot"
            log.error("%s exited with code %d (%s); stopping instead of restarting", child.name, code, what)
            if code == EXIT_BOOT:
                try:
                    cause = self.layout.boot_failure_path.read_text().strip()
                except OSError:
                    cause = f"{child.name} failed to boot (its error is logged above)"
                self.fail_boot(cause)
            self.exit_code = code
            self._stopping.set()

    def _count_restart(self, role: str, reason: str) -> None:
        from . import metrics

        metrics.worker_restarts.labels(role, reason).inc()

    def _memory_reading(self) -> tuple[int, int]:
        """(data bytes, workers' private RSS) for the limiter; the breakdown goes to the gauges."""
        from .memory import private_rss

        held = sum(self.status.slot(c.slot)[1] for c in self.children if c.role != "query")
        ring_bytes = sum(int(r.used_bytes) for r in self.rings)
        rss = {role: private_rss([c.proc.pid for c in self.children if c.role == role and c.proc is not None])
               for role in ("receiver", "writer", "query")}
        self._memory_breakdown = {("rings", "data"): ring_bytes, ("batches", "data"): held,
                                  **{(role, "rss"): v for role, v in rss.items()}}
        return ring_bytes + held, rss["receiver"] + rss["writer"]

    def _limit_memory(self) -> None:
        from . import metrics
        from .status import DISK_LOW, PAUSE_WRITERS, REFUSE, STORAGE_READY

        interval = self.cfg.memory.check_interval_s
        while not self._stopping.is_set():
            try:
                d = self.limiter.tick()
                self.status.set_flag(REFUSE, d.refuse)
                self.status.set_flag(PAUSE_WRITERS, d.pause_writers)
                self.status.usage = d.data_bytes
                for (process, kind), value in self._memory_breakdown.items():
                    metrics.memory_usage.labels(process, kind).set(value)
                metrics.queue_size.set(sum(int(r.used_bytes) for r in self.rings))
            except Exception:  # noqa: BLE001 - the ticker must survive a bad reading
                log.exception("memory limiter tick failed")
            self.status.set_flag(STORAGE_READY, self.storage.readiness()[0])
            self.status.set_flag(DISK_LOW, bool(self.storage.disk_reason))
            self.status.clickhouse_reserved = self.storage.clickhouse_reserved
            self._stopping.wait(interval)

    def _stop_role(self, role: str, timeout: float) -> None:
        """SIGTERM every child of the role, wait up to ``timeout``, then SIGKILL the rest; reap all."""
        group = [c for c in self.children if c.role == role and c.alive()]
        if not group:
            return
        log.info("stopping %d %s process(es)", len(group), role)
        for c in group:
            assert c.proc is not None
            c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for c in group:
            assert c.proc is not None
            try:
                c.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop within %.0fs; killing it", c.name, timeout)
                c.proc.kill()
                c.proc.wait()
            from . import metrics

            metrics.mark_process_dead(c.proc.pid)

    # --- stop --------------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        sd_notify("STOPPING=1")
        receiver_grace = self.cfg.receiver.request_timeout_s + RECEIVER_STOP_EXTRA_S
        self._stop_role("receiver", receiver_grace)
        self._stop_role("writer", self.cfg.writer.stop_timeout_s + WRITER_STOP_EXTRA_S)
        self._stop_role("query", QUERY_STOP_TIMEOUT_S)
        if self.stats is not None:
            self.stats.stop()
        if self.clickhouse is not None:
            code = self.clickhouse.stop()
            log.info("embedded ClickHouse stopped (code %s)", code)
        if self.health is not None:
            self.health.stop()
        log.info("stopped")


def _boot_cause(e: StorageError | SchemaError, cfg: Config) -> str | None:
    """The boot-stopping line for a migration failure no retry will fix; None if retrying may help."""
    if isinstance(e, StorageError) and e.code in CREDENTIAL_CODES:
        ch = cfg.clickhouse
        return (f"ClickHouse at {base_url(ch)} refused the credentials of user {ch.user!r} ({e}); "
                "check clickhouse.user and clickhouse.password / password_file")
    if isinstance(e, SchemaError) or not e.retryable:
        return f"the schema cannot be applied: {e}; see `otelingest migrate`"
    return None


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


_RING_NAME = re.compile(r"^r(\d+)-w(\d+)\.ring$")


def _cover_leftovers(run_dir: Path, receivers: int, writers: int) -> tuple[int, int]:
    """Receiver and writer counts for this run: the configured ones, raised if the last run had more
    and left data in rings (or batches in writer ledgers) beyond them, so nothing acknowledged is
    stranded. The extra workers drain them like any other; the next start is back to the config."""
    from ._native import RingFile

    want_r, want_w = receivers, writers
    for path in sorted((run_dir / "rings").glob("r*-w*.ring")):
        m = _RING_NAME.match(path.name)
        if not m:
            continue
        i, j = int(m.group(1)), int(m.group(2))
        if i < receivers and j < writers:
            continue
        try:
            ring = RingFile.attach(str(path))
            held = ring.used_bytes
            ring.close()
        except (OSError, ValueError) as e:
            log.warning("ring %s from the last run unusable (%s); ignored", path, e)
            continue
        if held:
            want_r, want_w = max(want_r, i + 1), max(want_w, j + 1)
    for path in run_dir.glob("writer-*.ledger"):
        m = re.fullmatch(r"writer-(\d+)\.ledger", path.name)
        if m and int(m.group(1)) >= writers:
            try:
                pending = json.loads(path.read_text()).get("batches")
            except (OSError, ValueError):
                pending = None
            if pending:
                want_w = max(want_w, int(m.group(1)) + 1)
    if (want_r, want_w) != (receivers, writers):
        log.warning("the last run left unstored data for %d receiver(s) x %d writer(s); running that many this time "
                    "(configured %d x %d) so it is stored", want_r, want_w, receivers, writers)
    return want_r, want_w
