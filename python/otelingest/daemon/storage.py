"""The storage watcher: the embedded ClickHouse's life, the schema, and what /ready says of them.

On its own thread it waits for ClickHouse, applies the migrations (and, after a SIGHUP, the new
retention), then keeps :class:`StorageState` true to what ClickHouse answers, running the disk-floor
and part-health checks (:mod:`otelingest.daemon.storagehealth`) on every tick. The supervisor's main
loop calls :meth:`StorageWatcher.check_embedded` to restart an embedded server that died.

Until the daemon is first ready, failures are boot failures (``fail_boot`` with one line): an
embedded server that exits, credentials ClickHouse refuses, a migration that cannot apply, or
ClickHouse still unreachable after ``supervisor.boot_timeout_s``. After that they are outages,
ridden out with restarts and retries.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

from ..clickhouse import migrations
from ..clickhouse.client import CREDENTIAL_CODES, base_url
from ..clickhouse.embedded import EmbeddedClickHouse
from ..config import Config
from ..errors import SchemaError, StorageError
from .backoff import Backoff

log = logging.getLogger("otelingest.supervisor")

CHECK_INTERVAL_S = 1.0


class StorageState:
    """What the supervisor knows of ClickHouse, shared with /ready (reads are lock-free snapshots)."""

    def __init__(self) -> None:
        self.reachable = False
        self.schema_current = False
        # The writers' hold (daemon.flags insert_hold): up while the schema is not current, except
        # while a rekey copies a table (clickhouse/rekey.py lowers it for the bulk copy only).
        self.hold_inserts = True
        self.reason = "starting"
        # Set while ClickHouse's disk is under its free-space floor (otelingest.daemon.diskfloor).
        self.disk_reason = ""
        self.clickhouse_reserved = 0

    def readiness(self) -> tuple[bool, str]:
        ok = self.reachable and self.schema_current
        if ok and self.disk_reason:
            return False, self.disk_reason
        return ok, "ok" if ok else self.reason


class StorageWatcher:
    """``config`` returns the running config (it changes on SIGHUP); ``fail_boot`` stops the daemon
    with one line; ``on_ready`` runs once, the first time the schema is current."""

    def __init__(self, config: Callable[[], Config], data_dir: Path, stopping: threading.Event,
                 fail_boot: Callable[[str], None], on_ready: Callable[[], None] = lambda: None,
                 on_schema: Callable[[], None] = lambda: None) -> None:
        """``on_schema()`` runs whenever ``state.schema_current`` or ``state.hold_inserts`` changes
        (daemon.flags ``schema_pending`` and ``insert_hold`` follow at once, not a tick later)."""
        self.config = config
        self.on_schema = on_schema
        self.data_dir = data_dir
        self.stopping = stopping
        self.fail_boot = fail_boot
        self.on_ready = on_ready
        self.state = StorageState()
        self.clickhouse: EmbeddedClickHouse | None = None
        # Set before /ready can first answer 200, so no check sees "ready" while still judging
        # failures as boot failures.
        self.booted = False
        self._started_at = time.monotonic()
        self._backoff = Backoff()
        self._restart_at: float | None = None
        self._thread = threading.Thread(target=self._watch, name="storage-watcher", daemon=True)

    def start(self) -> None:
        """Start the embedded server (when no URL is configured), then the watcher thread."""
        ch = self.config().clickhouse
        if ch.embedded:
            self.clickhouse = EmbeddedClickHouse(
                self.data_dir / "clickhouse",
                http_port=ch.embedded_http_port,
                tcp_port=ch.embedded_tcp_port,
                max_memory_mib=ch.embedded_max_memory_mib,
                keep_free_space_mib=ch.min_free_disk_mib // 2,
                merge_threads=ch.embedded_merge_threads,
            )
            self.clickhouse.start()
            self._backoff.started()
        self._thread.start()

    def reapply_schema(self) -> None:
        """Re-run the migrations (a reloaded config's retention) on the next tick."""
        self.state.schema_current = False
        self.state.hold_inserts = True
        self.on_schema()

    def _hold(self, on: bool) -> None:
        """The migration's hold: raised and lowered by a rekey around its bulk copy."""
        self.state.hold_inserts = on
        self.on_schema()

    def stop_embedded(self) -> None:
        if self.clickhouse is not None:
            code = self.clickhouse.stop()
            log.info("embedded ClickHouse stopped (code %s)", code)

    def boot_overdue(self) -> bool:
        return not self.booted and time.monotonic() - self._started_at > self.config().supervisor.boot_timeout_s

    def check_embedded(self) -> None:
        """Restart an embedded server that exited (after a backoff); before the first ready, fail the boot."""
        ch = self.clickhouse
        if ch is None or ch.alive():
            return
        now = time.monotonic()
        if not self.booted:
            code = ch.proc.returncode if ch.proc else None
            self.fail_boot(f"the embedded ClickHouse exited (code {code}) before the daemon was ready: "
                           f"{ch.stderr_tail(2) or 'no output'} (its log: {ch.root / 'log'})")
            return
        if self._restart_at is None:
            delay = self._backoff.next_delay()
            log.error(
                "embedded ClickHouse exited (code %s): %s; restarting in %.1fs",
                ch.proc.returncode if ch.proc else None, ch.stderr_tail(2), delay,
            )
            self.state.reachable = False
            self.state.reason = "embedded ClickHouse restarting"
            self._restart_at = now + delay
        elif now >= self._restart_at:
            self._restart_at = None
            ch.start()
            self._backoff.started()
            log.info("embedded ClickHouse restarted, pid %s", ch.pid)

    def _ping(self) -> bool:
        if self.clickhouse is not None:
            return self.clickhouse.ping()
        try:
            with urllib.request.urlopen(base_url(self.config().clickhouse).rstrip("/") + "/ping", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _watch(self) -> None:
        """Wait for ClickHouse, migrate, then keep the state true to what ClickHouse answers."""
        from .storagehealth import StorageHealth

        state = self.state
        health = StorageHealth(self.config(), state)
        backoff = Backoff()
        while not self.stopping.is_set():
            cfg = self.config()
            url = base_url(cfg.clickhouse)
            reachable = self._ping()
            health.check(reachable)
            if reachable and not state.reachable:
                log.info("ClickHouse is reachable at %s", url)
            elif not reachable and state.reachable:
                log.warning("ClickHouse is unreachable at %s", url)
            state.reachable = reachable
            if not reachable:
                state.reason = "ClickHouse unreachable"
                if self.boot_overdue():
                    self.fail_boot(f"ClickHouse at {url} did not answer within "
                                   f"{cfg.supervisor.boot_timeout_s:g}s; check clickhouse.url (--clickhouse-url) "
                                   "or raise supervisor.boot_timeout_s")
                    return
            elif not state.schema_current:
                try:
                    applied, changed = migrations.migrate(cfg, hold=self._hold)
                    if applied:
                        log.info("schema migrated to version %d", max(applied))
                    if changed:
                        log.info("retention changed on %s", ", ".join(changed))
                    first = not self.booted
                    self.booted = True
                    state.schema_current = True
                    state.hold_inserts = False
                    self.on_schema()
                    backoff = Backoff()
                    if first:
                        self.on_ready()
                except (StorageError, SchemaError) as e:
                    self._hold(True)  # a rekey that failed mid-copy leaves the hold as it found it
                    state.reason = f"schema migration failed: {e}"
                    log.error("schema migration failed: %s", e)
                    if not self.booted:
                        cause = boot_cause(e, cfg)
                        if cause is not None or self.boot_overdue():
                            self.fail_boot(cause or f"schema migration still failing after "
                                                    f"{cfg.supervisor.boot_timeout_s:g}s: {e}")
                            return
                    self.stopping.wait(backoff.next_delay())
                    continue
            self.stopping.wait(CHECK_INTERVAL_S)


def boot_cause(e: StorageError | SchemaError, cfg: Config) -> str | None:
    """The boot-stopping line for a migration failure no retry will fix; None if retrying may help."""
    if isinstance(e, StorageError) and e.code in CREDENTIAL_CODES:
        ch = cfg.clickhouse
        return (f"ClickHouse at {base_url(ch)} refused the credentials of user {ch.user!r} ({e}); "
                "check clickhouse.user and clickhouse.password / password_file")
    if isinstance(e, SchemaError) or not e.retryable:
        return f"the schema cannot be applied: {e}; see `otelingest migrate`"
    return None
