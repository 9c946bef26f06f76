"""The supervisor's process table: spawn, heartbeat watch, reap, restart with backoff, rolling restart.

Children are fresh interpreters (``python -m otelingest.daemon.worker ROLE INDEX RUN_DIR``, see
:mod:`otelingest.daemon.worker` for why not ``os.fork``). Each is watched by exit status and by
heartbeat (its slot on the flags page): a dead child is replaced at the same index after a backoff,
a hung one (no heartbeat for ``supervisor.heartbeat_timeout_s``) is killed and replaced. A child
exiting with EXIT_CONFIG or EXIT_BOOT is fatal: the supervisor stops with that code instead of a
restart loop. Children are reaped with ``Popen.poll`` (``waitpid`` on their own pid) rather than
``waitpid(-1)``, which would also steal the embedded ClickHouse's status from its own handle.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..config import Config
from ..errors import EXIT_BOOT, EXIT_CONFIG
from .backoff import Backoff
from .rundir import Layout

log = logging.getLogger("otelingest.supervisor")


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


class Children:
    """Every worker of the daemon. ``on_fatal(code, cause)`` is called when a child exits with
    EXIT_CONFIG or EXIT_BOOT (``cause``: the child's boot-failure line, when it wrote one)."""

    def __init__(self, layout: Layout, flags: Any, on_fatal: Callable[[int, str | None], None]) -> None:
        self.layout = layout
        self.flags = flags
        self.on_fatal = on_fatal
        self.all: list[Child] = []
        self._roll: deque[Child] = deque()
        self._rolling: Child | None = None

    def add(self, role: str, index: int, slot: int) -> Child:
        child = Child(role, index, slot)
        self.all.append(child)
        return child

    def pids(self, role: str) -> list[int]:
        return [c.proc.pid for c in self.all if c.role == role and c.proc is not None]

    def held_bytes(self) -> int:
        """What the receivers and writers report holding outside the rings (open batches)."""
        return sum(self.flags.slot(c.slot)[1] for c in self.all if c.role != "query")

    def spawn(self, child: Child) -> None:
        self.flags.reset_slot(child.slot)
        cmd = [sys.executable, "-m", "otelingest.daemon.worker", child.role, str(child.index), str(self.layout.run_dir)]
        child.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, close_fds=True)
        child.backoff.started()
        child.restart_at = None
        child.spawned_at = time.monotonic()
        log.info("started %s, pid %d", child.name, child.proc.pid)

    def spawn_all(self) -> None:
        for child in self.all:
            self.spawn(child)

    def check(self, cfg: Config, stopping: Callable[[], bool]) -> None:
        """One tick: kill the hung, reap the dead, restart those whose backoff is over, roll on."""
        now = time.monotonic()
        for child in self.all:
            proc = child.proc
            if proc is not None:
                code = proc.poll()
                if code is None:
                    beat, _held = self.flags.slot(child.slot)
                    limit = cfg.supervisor.heartbeat_timeout_s
                    if beat < child.spawned_at:  # not one heartbeat of its own yet: still booting
                        limit = max(limit, cfg.supervisor.boot_timeout_s)
                    if now - beat > limit:
                        log.error("%s (pid %d) missed its heartbeat for %.0fs; killing it", child.name, proc.pid, now - beat)
                        _count_restart(child.role, "hung")
                        proc.kill()
                    continue
                self._reaped(child, code)
                if stopping():
                    return
                if child.rolling and code == 0:
                    child.rolling = False
                    self.spawn(child)
                    continue
                child.proc = None
                delay = child.backoff.next_delay()
                child.restart_at = now + delay
                log.error("%s (pid %d) exited with code %s; restarting in %.1fs", child.name, proc.pid, code, delay)
                _count_restart(child.role, "exit")
            elif child.restart_at is not None and now >= child.restart_at:
                self.spawn(child)
        self._advance_roll()

    def roll(self, roles: Iterable[str]) -> int:
        """Restart every child of ``roles``, one at a time (each drains or finishes its requests
        first); returns how many."""
        wanted = set(roles)
        self._roll = deque(c for c in self.all if c.role in wanted)
        return len(self._roll)

    def _advance_roll(self) -> None:
        """The next child is stopped once the previous one's replacement beats."""
        cur = self._rolling
        if cur is not None:
            if cur.rolling or not cur.alive() or self.flags.slot(cur.slot)[0] <= cur.spawned_at:
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
        from ..selfmon import instruments

        if child.proc is not None:
            instruments.mark_process_dead(child.proc.pid)
        if code in (EXIT_CONFIG, EXIT_BOOT):
            what = "a config it cannot use" if code == EXIT_CONFIG else "it failed to boot"
            log.error("%s exited with code %d (%s); stopping instead of restarting", child.name, code, what)
            cause = None
            if code == EXIT_BOOT:
                try:
                    cause = self.layout.boot_failure_path.read_text().strip()
                except OSError:
                    cause = f"{child.name} failed to boot (its error is logged above)"
            self.on_fatal(code, cause)

    def stop_role(self, role: str, timeout: float) -> None:
        """SIGTERM every child of the role, wait up to ``timeout``, then SIGKILL the rest; reap all."""
        from ..selfmon import instruments

        group = [c for c in self.all if c.role == role and c.alive()]
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
            instruments.mark_process_dead(c.proc.pid)


def _count_restart(role: str, reason: str) -> None:
    from ..selfmon import instruments

    instruments.worker_restarts.labels(role, reason).inc()
